//! The registry file: hashes match the committed models, malformed entries are refused.

use std::path::Path;

use we_infer::{DType, Error, ModelRegistry};

use crate::{models_dir, registry};

#[test]
fn registry_hashes_match_the_model_files() {
    let reg = registry();
    let names: Vec<&str> = reg.entries().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["policy", "hunter", "multi_io", "stateful", "mean_pool"]
    );
    for entry in reg.entries() {
        let bytes = std::fs::read(&entry.path).unwrap();
        assert_eq!(
            blake3::hash(&bytes).to_hex().as_str(),
            entry.blake3,
            "{}: blake3 in models.toml differs from {}; rerun `python3 fixtures/models/gen.py`",
            entry.id(),
            entry.path.display()
        );
    }
}

#[test]
fn registry_resolves_paths_versions_and_signatures() {
    let reg = registry();
    let policy = reg.get("policy").unwrap();
    assert_eq!(policy.version, 1);
    assert!(policy.batchable);
    assert_eq!(policy.path, models_dir().join("policy.onnx"));
    assert_eq!(policy.inputs[0].name, "obs");
    assert_eq!(policy.inputs[0].dtype, DType::F32);
    assert_eq!(policy.inputs[0].shape, [-1, 16]);
    assert_eq!(reg.get("policy@1").unwrap().id(), "policy@1");
    assert!(matches!(
        reg.get("policy@2"),
        Err(Error::UnknownModel { .. })
    ));
    assert!(!reg.get("stateful").unwrap().batchable);
}

#[test]
fn highest_version_wins_without_a_pin() {
    let hash = "0".repeat(64);
    let text = format!(
        r#"
[[model]]
name = "m"
version = 1
path = "a.onnx"
blake3 = "{hash}"
inputs = [{{ name = "x", dtype = "f32", shape = [1] }}]
outputs = [{{ name = "y", dtype = "f32", shape = [1] }}]

[[model]]
name = "m"
version = 3
path = "b.onnx"
blake3 = "{hash}"
inputs = [{{ name = "x", dtype = "f32", shape = [1] }}]
outputs = [{{ name = "y", dtype = "f32", shape = [1] }}]
"#
    );
    let reg =
        ModelRegistry::from_toml_str(&text, Path::new("/r"), Path::new("/r/models.toml")).unwrap();
    assert_eq!(reg.get("m").unwrap().version, 3);
    assert_eq!(reg.get("m@1").unwrap().path, Path::new("/r/a.onnx"));
}

fn parse(entry: &str) -> Result<ModelRegistry, Error> {
    ModelRegistry::from_toml_str(entry, Path::new("."), Path::new("test.toml"))
}

#[test]
fn malformed_entries_are_refused_with_the_problem_named() {
    let hash = "a".repeat(64);
    let cases = [
        (
            "[[model]]\nname = \"m\"\nversion = 1\npath = \"m.onnx\"\nblake3 = \"xyz\"\n\
             inputs = [{ name = \"x\", dtype = \"f32\", shape = [1] }]\n\
             outputs = [{ name = \"y\", dtype = \"f32\", shape = [1] }]\n"
                .to_owned(),
            "not 64 lowercase hex digits",
        ),
        (
            format!(
                "[[model]]\nname = \"m\"\nversion = 1\npath = \"m.onnx\"\nblake3 = \"{hash}\"\nbatchable = true\n\
                 inputs = [{{ name = \"x\", dtype = \"f32\", shape = [4] }}]\n\
                 outputs = [{{ name = \"y\", dtype = \"f32\", shape = [-1] }}]\n"
            ),
            "needs a dynamic dim 0",
        ),
        (
            format!(
                "[[model]]\nname = \"m\"\nversion = 1\npath = \"m.onnx\"\nblake3 = \"{hash}\"\n\
                 inputs = [{{ name = \"x\", dtype = \"f32\", shape = [1] }}, {{ name = \"x\", dtype = \"f32\", shape = [1] }}]\n\
                 outputs = [{{ name = \"y\", dtype = \"f32\", shape = [1] }}]\n"
            ),
            "listed twice",
        ),
        (
            format!(
                "[[model]]\nname = \"m\"\nversion = 1\npath = \"m.onnx\"\nblake3 = \"{hash}\"\n\
                 inputs = [{{ name = \"x\", dtype = \"f16\", shape = [1] }}]\n\
                 outputs = [{{ name = \"y\", dtype = \"f32\", shape = [1] }}]\n"
            ),
            "f16",
        ),
    ];
    for (text, expected) in cases {
        let err = parse(&text).expect_err(expected).to_string();
        assert!(err.contains("test.toml"), "error names the registry: {err}");
        assert!(err.contains(expected), "expected `{expected}` in: {err}");
    }
}

#[test]
fn a_missing_registry_file_is_an_error_naming_it() {
    let err = ModelRegistry::load("/nonexistent/models.toml").unwrap_err();
    assert!(matches!(err, Error::RegistryRead { .. }));
    assert!(
        err.to_string().contains("/nonexistent/models.toml"),
        "{err}"
    );
}
