//! The model manager: checksums, the LRU budget, preloading, provider choice and
//! the errors when ONNX Runtime is not provisioned.

use std::path::Path;

use we_infer::{Error, ManagerConfig, ModelEntry, ModelManager, ModelRegistry, Provider};

use crate::{config, dylib, manager, models_dir, registry};

/// A registry holding `names`, each a copy of the policy model's entry.
fn policy_copies(names: &[&str]) -> ModelRegistry {
    let policy = registry().get("policy").unwrap().clone();
    let entries = names
        .iter()
        .map(|name| ModelEntry {
            name: (*name).to_owned(),
            ..policy.clone()
        })
        .collect();
    ModelRegistry::from_entries(entries).unwrap()
}

fn policy_size() -> u64 {
    std::fs::metadata(models_dir().join("policy.onnx"))
        .unwrap()
        .len()
}

#[test]
fn a_checksum_mismatch_is_refused_naming_model_and_hashes() {
    let mut entry = registry().get("policy").unwrap().clone();
    let good = entry.blake3.clone();
    entry.blake3 = "ab".repeat(32);
    let reg = ModelRegistry::from_entries(vec![entry]).unwrap();
    let mut m = ModelManager::new(reg, config(1 << 20)).unwrap();
    let err = m.load("policy").unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("policy@1"), "{msg}");
    assert!(msg.contains(&"ab".repeat(32)), "{msg}");
    assert!(msg.contains(&good), "{msg}");
    assert!(!m.is_resident("policy"));
    assert_eq!(m.used_bytes(), 0);
}

#[test]
fn a_tampered_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(models_dir().join("policy.onnx")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(dir.path().join("policy.onnx"), &bytes).unwrap();
    let text = std::fs::read_to_string(models_dir().join("models.toml")).unwrap();
    std::fs::write(dir.path().join("models.toml"), text).unwrap();
    let reg = ModelRegistry::load(dir.path().join("models.toml")).unwrap();
    let mut m = ModelManager::new(reg, config(1 << 20)).unwrap();
    assert!(matches!(
        m.load("policy"),
        Err(Error::ChecksumMismatch { .. })
    ));
    // The untouched models of the same registry still load.
    std::fs::copy(
        models_dir().join("stateful.onnx"),
        dir.path().join("stateful.onnx"),
    )
    .unwrap();
    m.load("stateful").unwrap();
}

#[test]
fn lru_eviction_keeps_the_resident_total_within_the_budget() {
    let size = policy_size();
    let budget = 2 * size + size / 2; // room for two
    let mut m = ModelManager::new(policy_copies(&["a", "b", "c"]), config(budget)).unwrap();
    m.load("a").unwrap();
    m.load("b").unwrap();
    assert_eq!(m.resident_models(), ["a@1", "b@1"]);
    m.load("c").unwrap();
    assert_eq!(
        m.resident_models(),
        ["b@1", "c@1"],
        "a was least recently used"
    );
    assert!(m.used_bytes() <= budget);
    // Touch b, then a comes back and evicts c, now the least recently used.
    m.load("b").unwrap();
    m.load("a").unwrap();
    assert_eq!(m.resident_models(), ["b@1", "a@1"]);
    assert!(!m.is_resident("c"));
    assert_eq!(m.used_bytes(), 2 * size);
    assert!(m.unload("b"));
    assert_eq!(m.used_bytes(), size);
}

#[test]
fn preload_loads_the_hot_list_in_order() {
    let size = policy_size();
    let mut m = ModelManager::new(policy_copies(&["a", "b", "c"]), config(3 * size)).unwrap();
    m.preload(&["c", "a"]).unwrap();
    assert_eq!(m.resident_models(), ["c@1", "a@1"]);
    let err = m.preload(&["b", "nope"]).unwrap_err();
    assert!(matches!(err, Error::UnknownModel { .. }), "{err:?}");
    assert!(m.is_resident("b"), "models before the failure stay loaded");
}

#[test]
fn a_model_larger_than_the_whole_budget_is_an_error() {
    let size = policy_size();
    let mut m = ModelManager::new(policy_copies(&["a"]), config(size - 1)).unwrap();
    let err = m.load("a").unwrap_err();
    assert!(matches!(err, Error::ModelTooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains(&size.to_string()), "{err}");
    assert_eq!(m.used_bytes(), 0);
}

#[test]
fn declared_memory_bytes_override_the_file_size() {
    let mut entry = registry().get("policy").unwrap().clone();
    entry.memory_bytes = Some(10 << 20);
    let reg = ModelRegistry::from_entries(vec![entry]).unwrap();
    let mut m = ModelManager::new(reg, config(1 << 20)).unwrap();
    assert!(matches!(m.load("policy"), Err(Error::ModelTooLarge { .. })));
}

#[test]
fn a_registry_signature_that_differs_from_the_model_is_refused() {
    let mut entry = registry().get("policy").unwrap().clone();
    entry.inputs[0].name = "observation".to_owned();
    let reg = ModelRegistry::from_entries(vec![entry]).unwrap();
    let mut m = ModelManager::new(reg, config(1 << 20)).unwrap();
    let err = m.load("policy").unwrap_err();
    assert!(matches!(err, Error::Signature { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("observation") && msg.contains("obs"), "{msg}");
}

#[test]
fn a_missing_model_file_is_an_error() {
    let mut entry = registry().get("policy").unwrap().clone();
    entry.path = Path::new("/nonexistent/policy.onnx").to_path_buf();
    let reg = ModelRegistry::from_entries(vec![entry]).unwrap();
    let mut m = ModelManager::new(reg, config(1 << 20)).unwrap();
    let err = m.load("policy").unwrap_err();
    assert!(matches!(err, Error::ModelRead { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/policy.onnx"));
}

#[test]
fn a_missing_runtime_library_says_how_to_provision_it() {
    let cfg = ManagerConfig {
        dylib: Some("/nonexistent/libonnxruntime.so.1.31.1".into()),
        ..ManagerConfig::default()
    };
    let err = ModelManager::new(registry(), cfg).unwrap_err();
    assert!(matches!(err, Error::OrtNotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/libonnxruntime.so.1.31.1"),
        "{msg}"
    );
    assert!(msg.contains("cargo xtask provision-ort"), "{msg}");
    assert!(msg.contains("ORT_DYLIB_PATH"), "{msg}");
}

#[test]
fn a_file_that_is_not_onnx_runtime_is_refused() {
    let cfg = ManagerConfig {
        dylib: Some(models_dir().join("policy.onnx")),
        ..ManagerConfig::default()
    };
    let err = ModelManager::new(registry(), cfg).unwrap_err();
    assert!(matches!(err, Error::OrtVersion { .. }), "{err:?}");
    assert!(
        err.to_string().contains("cargo xtask provision-ort"),
        "{err}"
    );
}

#[test]
fn cpu_sessions_describe_their_reproducible_settings() {
    let mut m = manager();
    m.load("policy").unwrap();
    let d = m.describe();
    println!("describe: {d}");
    assert!(d.starts_with("onnxruntime 1."), "{d}");
    let lib = std::fs::canonicalize(dylib()).unwrap();
    assert!(d.contains(&lib.display().to_string()), "{d}");
    assert!(
        d.contains("cpu (intra_threads=1, inter_threads=1, sequential, deterministic_compute"),
        "{d}"
    );
    assert_eq!(m.resident_provider("policy"), Some("cpu"));
}

#[test]
fn cuda_falls_back_to_cpu_and_says_why() {
    let cfg = ManagerConfig {
        provider: Provider::Cuda { device_id: 0 },
        ..config(1 << 20)
    };
    let mut m = ModelManager::new(registry(), cfg).unwrap();
    m.load("policy").unwrap();
    let d = m.describe();
    println!("describe: {d}");
    match m.resident_provider("policy") {
        Some("cuda") => assert!(d.contains("cuda device 0"), "{d}"),
        Some("cpu") => assert!(
            d.contains("cuda requested but not available") || d.contains("fell back to cpu"),
            "{d}"
        ),
        other => panic!("unexpected provider {other:?}"),
    }
}

#[test]
fn without_an_explicit_path_the_library_comes_from_ort_dylib_path() {
    let cfg = ManagerConfig {
        dylib: None,
        ..ManagerConfig::default()
    };
    match std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        Some(_) => {
            ModelManager::new(registry(), cfg).unwrap();
        }
        None => {
            let err = ModelManager::new(registry(), cfg).unwrap_err();
            assert!(matches!(err, Error::OrtPathUnset { .. }), "{err:?}");
            assert!(
                err.to_string().contains("cargo xtask provision-ort"),
                "{err}"
            );
        }
    }
}
