//! The guide's commands (docs/guide/README.md), run for real: scaffold an
//! agent, run its native tests, build it, run it with a trace, verify the
//! trace by replay. Everything happens in a temporary copy of the agents
//! workspace, so no scaffolded agent is left in `agents/`.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd`, asserting success; returns its output.
fn ok(mut cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{shown} failed with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A copy of the agents workspace with no members yet; path dependencies on
/// the repository's crates made absolute.
fn agents_workspace(tmp: &Path) -> PathBuf {
    let root = root();
    let agents = tmp.join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    let manifest = std::fs::read_to_string(root.join("agents/Cargo.toml")).unwrap();
    let start = manifest.find("members = [").unwrap();
    let end = start + manifest[start..].find(']').unwrap() + 1;
    let crates = root.join("crates");
    let manifest = format!("{}members = []{}", &manifest[..start], &manifest[end..])
        .replace("\"../crates/", &format!("\"{}/", crates.display()));
    std::fs::write(agents.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(root.join("agents/Cargo.lock"), agents.join("Cargo.lock")).unwrap();
    std::fs::copy(
        root.join("rust-toolchain.toml"),
        tmp.join("rust-toolchain.toml"),
    )
    .unwrap();
    // The scaffolded scenario trusts the development key, as the fixtures do.
    std::fs::create_dir_all(tmp.join("fixtures/keys")).unwrap();
    std::fs::copy(
        root.join("fixtures/keys/dev.pub"),
        tmp.join("fixtures/keys/dev.pub"),
    )
    .unwrap();
    agents
}

#[test]
fn the_guide_commands_scaffold_test_build_run_and_replay_an_agent() {
    let root = root();
    let tmp = TempDir(std::env::temp_dir().join(format!("we-guide-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&tmp.0);
    let agents = agents_workspace(&tmp.0);
    let built = tmp.0.join("build/agents");
    let xtask = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.current_dir(&root)
            .env("WE_AGENTS_WORKSPACE", &agents)
            .env("WE_AGENTS_DIR", &built);
        cmd
    };
    let cargo = || Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));

    // 1. cargo xtask new-agent guide-demo
    let mut cmd = xtask();
    cmd.args(["new-agent", "guide-demo", "--agents-dir"])
        .arg(&agents);
    let out = ok(cmd);
    assert!(stdout(&out).contains("created"), "{}", stdout(&out));
    let manifest = std::fs::read_to_string(agents.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("\"guide-demo\","), "{manifest}");

    // 2. (cd agents && cargo test -p guide-demo); a target dir of its own
    // that stays warm between runs.
    let mut cmd = cargo();
    cmd.current_dir(&agents)
        .args(["test", "-p", "guide-demo"])
        .env("CARGO_TARGET_DIR", root.join("target/guide-agents"));
    let out = ok(cmd);
    let text = stdout(&out);
    assert!(text.contains("test result: ok. 2 passed"), "{text}");

    // 3. cargo xtask build-agents
    let mut cmd = xtask();
    cmd.arg("build-agents");
    ok(cmd);
    assert!(built.join("guide-demo.wasm").exists());

    // 4. cargo xtask we run agents/guide-demo/scenario.toml --trace ...
    let trace = tmp.0.join("guide-demo.trace");
    let mut cmd = xtask();
    cmd.args(["we", "run"])
        .arg(agents.join("guide-demo/scenario.toml"))
        .arg("--trace")
        .arg(&trace);
    let out = ok(cmd);
    let text = stdout(&out);
    assert!(text.contains("agents       100"), "{text}");
    assert!(text.contains("messages     10000 delivered"), "{text}");
    assert!(text.contains("faults       none"), "{text}");
    let head = text
        .lines()
        .find_map(|l| l.strip_prefix("chain head"))
        .map(|h| h.trim().to_string())
        .expect("a chain head");

    // 5. cargo xtask we replay verify <trace>
    let mut cmd = xtask();
    cmd.args(["we", "replay", "verify"]).arg(&trace);
    let out = ok(cmd);
    let text = stdout(&out);
    assert!(text.contains("verified     100 ticks"), "{text}");
    assert!(text.contains(&format!("chain head   {head}")), "{text}");
}
