//! The browser side: provisions Debian's chromium, Node.js and playwright-core
//! when missing (once per test binary), and runs `tests/node/browser.mjs`.

use crate::process::Proc;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Debian's chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

fn run(what: &str, cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: could not start: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn apt_install(packages: &[&str]) -> Result<(), String> {
    run(
        "apt-get update",
        Command::new("apt-get")
            .args(["update", "-q"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    run(
        &format!("apt-get install {}", packages.join(" ")),
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn node_works() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn provision() -> Result<(), String> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push("chromium");
    }
    if !node_works() {
        missing.extend(["nodejs", "npm"]);
    }
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    if !Path::new(CHROMIUM).exists() {
        return Err(format!("{CHROMIUM} is still missing after apt-get"));
    }
    let dir = node_dir();
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        run(
            "npm ci",
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir),
        )?;
    }
    Ok(())
}

/// Makes sure chromium, node and playwright-core are there; fails the test
/// with the reason when they cannot be installed.
pub fn ensure_tools() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = READY.get_or_init(provision) {
        panic!("provisioning the browser tools failed: {e}");
    }
}

/// Starts `browser.mjs MODE URL ARGS...`.
pub fn node(mode: &str, url: &str, args: &[String]) -> Proc {
    ensure_tools();
    let mut cmd = Command::new("node");
    cmd.arg(node_dir().join("browser.mjs"))
        .arg(mode)
        .arg(url)
        .args(args)
        .env("WE_CHROMIUM", CHROMIUM)
        .current_dir(node_dir());
    Proc::spawn(&format!("browser.mjs {mode}"), cmd)
}
