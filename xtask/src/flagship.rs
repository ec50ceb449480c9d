//! `cargo xtask run predator-prey [--ui] [we run args]`: the flagship demo.
//!
//! Runs `fixtures/scenarios/predator-prey.toml` with a trace recorded into
//! `build/predator-prey.trace`, re-executes the trace with `we replay verify`,
//! checks that the replay ends on the run's chain head, and prints it. With
//! `--ui` the run also streams snapshots to `we ui`, which serves a live page
//! with the grid drawn; the run is then ten times longer (3,000 ticks) so it
//! can be watched, and the page stays up after it until interrupted.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The scenario, relative to the workspace root.
const SCENARIO: &str = "fixtures/scenarios/predator-prey.toml";
/// Where the live run's observer listens with `--ui`.
const OBSERVE: &str = "127.0.0.1:7071";
/// Where the page is served with `--ui`.
const PAGE: &str = "127.0.0.1:8080";
/// Ticks of the run with `--ui`.
const UI_TICKS: u64 = 3000;

/// Runs the demo.
pub(crate) fn run(root: &Path, extra: &[String]) -> Result<()> {
    let ui = extra.iter().any(|a| a == "--ui");
    let rest: Vec<String> = extra.iter().filter(|a| *a != "--ui").cloned().collect();
    let lib = super::prepare(root)?;
    let we = super::build_we(root, super::Profile::Debug)?;
    let trace = root.join("build/predator-prey.trace");
    let scenario = if ui {
        ui_scenario(root)?
    } else {
        root.join(SCENARIO)
    };
    let mut args: Vec<String> = vec![
        "run".into(),
        scenario.display().to_string(),
        "--trace".into(),
        trace.display().to_string(),
    ];
    args.extend(rest);
    let mut page = None;
    if ui {
        args.extend(["--observe".into(), OBSERVE.into()]);
        let child = Command::new(&we)
            .args(["ui", "--connect", OBSERVE, "--listen", PAGE])
            .env("ORT_DYLIB_PATH", &lib)
            .spawn()
            .context("starting `we ui`")?;
        eprintln!("xtask: the live page is at http://{PAGE}/ (the run starts now)");
        page = Some(child);
    }
    let run_out = capture(&we, &args, &lib)?;
    let run_head = field(&run_out, "chain head").context("the run printed no chain head")?;
    let verify_out = capture(
        &we,
        &[
            "replay".into(),
            "verify".into(),
            trace.display().to_string(),
        ],
        &lib,
    )?;
    let verified = field(&verify_out, "chain head").context("the replay printed no chain head")?;
    if verified != run_head {
        bail!("the replay ended on chain head {verified}, the run on {run_head}");
    }
    println!("replay-verified chain head {verified}");
    if let Some(mut child) = page {
        eprintln!("xtask: the page stays up at http://{PAGE}/; Ctrl-C to quit");
        let _ = child.wait();
    }
    Ok(())
}

/// The demo's scenario with [`UI_TICKS`] ticks, written to
/// `build/predator-prey-ui.toml` (paths made relative to `build/`).
fn ui_scenario(root: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(root.join(SCENARIO))
        .with_context(|| format!("reading {SCENARIO}"))?;
    if !text.contains("\nticks = 300\n") {
        bail!("{SCENARIO}: expected `ticks = 300`");
    }
    let text = text
        .replace("\nticks = 300\n", &format!("\nticks = {UI_TICKS}\n"))
        .replace("\"../../build/agents/", "\"agents/")
        .replace("\"../models/", "\"../fixtures/models/")
        .replace("\"../keys/", "\"../fixtures/keys/");
    let path = root.join("build/predator-prey-ui.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Runs `we args`, echoing and returning its standard output.
fn capture(we: &Path, args: &[String], lib: &Path) -> Result<String> {
    eprintln!("xtask: $ we {}", args.join(" "));
    let out = Command::new(we)
        .args(args)
        .env("ORT_DYLIB_PATH", lib)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {}", we.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    if !out.status.success() {
        bail!("`we {}` failed with {}", args.join(" "), out.status);
    }
    Ok(text)
}

/// The value of a `name   value` summary line.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
        .next_back()
}
