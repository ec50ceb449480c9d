//! Tidy checks, run under `cargo test -p xtask`: house rules a compiler does
//! not enforce.
//!
//! - every Rust source file opens with a `//!` doc saying what it is for;
//! - forbidden dependency edges (architecture invariants): we-core and we-abi
//!   name no engine, only we-sandbox names wasmer, only we-infer names ort,
//!   we-abi has no dependencies at all.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name == "build" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_source_file_opens_with_a_module_doc() {
        let root = root();
        let mut files = Vec::new();
        for dir in ["crates", "xtask", "agents"] {
            rust_files(&root.join(dir), &mut files);
        }
        assert!(files.len() > 20, "found only {} files", files.len());
        let missing: Vec<String> = files
            .iter()
            .filter(|f| {
                let text = std::fs::read_to_string(f).unwrap_or_default();
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                !first.starts_with("//!")
            })
            .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "files without a leading //! doc: {missing:?}"
        );
    }

    /// `(crate, dependency)` edges that must not exist, directly or not.
    const FORBIDDEN: &[(&str, &str)] = &[
        ("we-core", "wasmer"),
        ("we-core", "ort"),
        ("we-abi", "wasmer"),
        ("we-sched", "wasmer"),
        ("we-ipc", "wasmer"),
        ("we-replay", "wasmer"),
        ("we-runtime", "wasmer"),
        ("we-runtime", "ort"),
        ("we-sandbox", "ort"),
        ("we-infer", "wasmer"),
        ("we-agent", "wasmer"),
    ];

    /// Engines may be named only by their one crate.
    const OWNERS: &[(&str, &str)] = &[("wasmer", "we-sandbox"), ("ort", "we-infer")];

    #[test]
    fn forbidden_dependency_edges_are_absent() {
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root())
            .args(["metadata", "--format-version", "1"])
            .output()
            .expect("cargo metadata runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let packages = meta["packages"].as_array().expect("packages");
        let name_of = |id: &str| -> String {
            packages
                .iter()
                .find(|p| p["id"] == id)
                .and_then(|p| p["name"].as_str())
                .unwrap_or("")
                .to_string()
        };
        let nodes = meta["resolve"]["nodes"].as_array().expect("resolve");
        let deps_of = |name: &str| -> Vec<String> {
            nodes
                .iter()
                .filter(|n| name_of(n["id"].as_str().unwrap_or("")) == name)
                .flat_map(|n| n["deps"].as_array().cloned().unwrap_or_default())
                .filter(|d| {
                    // Normal (non-dev) dependencies only.
                    d["dep_kinds"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k["kind"].is_null()))
                })
                .map(|d| name_of(d["pkg"].as_str().unwrap_or("")))
                .collect()
        };
        // Transitive closure of normal dependencies.
        let closure = |start: &str| -> Vec<String> {
            let mut seen = vec![];
            let mut stack = vec![start.to_string()];
            while let Some(n) = stack.pop() {
                for d in deps_of(&n) {
                    if !seen.contains(&d) {
                        seen.push(d.clone());
                        stack.push(d);
                    }
                }
            }
            seen
        };
        for (krate, dep) in FORBIDDEN {
            let all = closure(krate);
            assert!(
                !all.iter().any(|d| d == dep),
                "architecture invariant broken: {krate} depends on {dep}"
            );
        }
        assert!(
            deps_of("we-abi").is_empty(),
            "we-abi must have no dependencies"
        );
        let workspace: Vec<String> = packages
            .iter()
            .filter(|p| p["source"].is_null())
            .filter_map(|p| p["name"].as_str().map(String::from))
            .collect();
        for (engine, owner) in OWNERS {
            for krate in &workspace {
                if krate != owner && deps_of(krate).iter().any(|d| d == engine) {
                    panic!("{krate} names {engine} directly; only {owner} may");
                }
            }
        }
    }
}
