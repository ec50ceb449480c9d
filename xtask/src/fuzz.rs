//! `cargo xtask fuzz`: runs the cargo-fuzz targets in `fuzz/` and reports
//! executions and crashes; `smoke_all` is CI's short run of the cheap ones.
//!
//! cargo-fuzz needs nightly-only compiler flags (`-Zsanitizer`, sancov
//! passes); on the project's stable toolchain they are unlocked with
//! `RUSTC_BOOTSTRAP=1`, set only for these builds. cargo-fuzz itself is
//! installed on first use into `build/tools` (pinned version, `--locked`), so
//! nothing outside the checkout is touched. Seeds come from the repository
//! (golden traces, scenarios, built agents) and are copied into
//! `fuzz/corpus/<target>/`, which, like `fuzz/artifacts/`, is not committed.
//!
//! `module_load` links wasmer and Cranelift; instrumented, that build is much
//! slower than the others, so it is not in the CI smoke set (see [`TARGETS`]).

use anyhow::{Context, Result, bail};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The cargo-fuzz release installed into `build/tools`.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// One fuzz target of `fuzz/`.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The `[[bin]]` name.
    pub name: &'static str,
    /// Cheap to build and run: part of the CI smoke run.
    pub cheap: bool,
    /// Cargo features of the fuzz crate it needs.
    pub features: &'static [&'static str],
    /// The cargo-fuzz `--sanitizer`.
    pub sanitizer: &'static str,
    /// What it exercises.
    pub about: &'static str,
}

/// Every target. `module_load` is left out of the smoke set: its instrumented
/// wasmer + Cranelift build alone takes longer than the rest of CI's fuzzing.
pub const TARGETS: &[Target] = &[
    Target {
        name: "module_load",
        cheap: false,
        features: &["sandbox"],
        sanitizer: "address",
        about: "we-sandbox load_module: validation, import/export checks, ABI probe",
    },
    Target {
        name: "module_verify",
        cheap: true,
        features: &[],
        sanitizer: "address",
        about: "we-sign: signature section parsing and verification, key file text",
    },
    Target {
        name: "envelope_decode",
        cheap: true,
        features: &[],
        sanitizer: "address",
        about: "we-ipc read_envelopes, we-abi records, headers and tensors",
    },
    Target {
        name: "trace_read",
        cheap: true,
        features: &[],
        sanitizer: "address",
        about: "we-replay body decoders, TraceReader, recovery and dump",
    },
    Target {
        name: "scenario_parse",
        cheap: true,
        features: &[],
        sanitizer: "address",
        about: "we-runtime Scenario::parse",
    },
];

/// What one fuzzing run did.
#[derive(Clone, Debug, Default)]
pub struct FuzzReport {
    /// The target.
    pub target: String,
    /// Fuzzing time asked for.
    pub seconds: u64,
    /// Seconds the instrumented build took (0 when it was up to date).
    pub build_s: f64,
    /// Inputs executed (libFuzzer's `number_of_executed_units`).
    pub executions: u64,
    /// Executions per second.
    pub execs_per_s: u64,
    /// New corpus entries found in this run.
    pub new_units: u64,
    /// Coverage counters reached (libFuzzer's last `cov:`).
    pub coverage: u64,
    /// Entries in the corpus at the end.
    pub corpus_entries: u64,
    /// Peak resident memory of the fuzzer in MiB.
    pub peak_rss_mb: u64,
    /// Reproducers written for crashes, leaks, timeouts and OOMs.
    pub crashes: Vec<PathBuf>,
    /// The full libFuzzer log.
    pub log: PathBuf,
}

impl fmt::Display for FuzzReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<16} {:>4} s  {:>10} execs ({:>6}/s)  cov {:>6}  corpus {:>5} (+{})  rss {:>5} MiB  build {:>6.1} s  crashes {}",
            self.target,
            self.seconds,
            self.executions,
            self.execs_per_s,
            self.coverage,
            self.corpus_entries,
            self.new_units,
            self.peak_rss_mb,
            self.build_s,
            self.crashes.len()
        )?;
        for c in &self.crashes {
            write!(f, "\n    reproducer: {}", c.display())?;
        }
        Ok(())
    }
}

/// `cargo xtask fuzz <target | all | smoke> [--seconds N]`.
pub fn cli(root: &Path, args: &[String]) -> Result<()> {
    let usage = || {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        format!(
            "usage: cargo xtask fuzz <{} | all | smoke> [--seconds N]",
            names.join(" | ")
        )
    };
    let mut target = None;
    let mut seconds = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let v = it.next().with_context(usage)?;
                seconds = Some(
                    v.parse::<u64>()
                        .with_context(|| format!("--seconds: `{v}` is not a number"))?,
                );
            }
            other if target.is_none() && !other.starts_with('-') => target = Some(other),
            other => bail!("unexpected argument `{other}`\n{}", usage()),
        }
    }
    let target = target.with_context(usage)?;
    match target {
        "smoke" => smoke_all(root, seconds.unwrap_or(10)),
        "all" => {
            let reports: Vec<FuzzReport> = TARGETS
                .iter()
                .map(|t| fuzz(root, t.name, seconds.unwrap_or(60)))
                .collect::<Result<_>>()?;
            summarize(&reports)
        }
        name => {
            let report = fuzz(root, name, seconds.unwrap_or(60))?;
            summarize(std::slice::from_ref(&report))
        }
    }
}

/// Prints the reports; fails if any found a crash.
fn summarize(reports: &[FuzzReport]) -> Result<()> {
    println!("fuzz results:");
    for r in reports {
        println!("  {r}");
    }
    let crashed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.crashes.is_empty())
        .map(|r| r.target.as_str())
        .collect();
    if !crashed.is_empty() {
        bail!(
            "fuzzing found crashes in {}; reproduce with `cargo xtask fuzz <target>` after copying the reproducer into fuzz/corpus/<target>/, or `RUSTC_BOOTSTRAP=1 build/tools/bin/cargo-fuzz fuzz run <target> <reproducer>`",
            crashed.join(", ")
        );
    }
    Ok(())
}

/// CI's smoke run: every cheap target for `seconds_each` seconds; fails on
/// the first crash.
pub fn smoke_all(root: &Path, seconds_each: u64) -> Result<()> {
    let mut reports = Vec::new();
    for t in TARGETS.iter().filter(|t| t.cheap) {
        reports.push(fuzz(root, t.name, seconds_each)?);
    }
    summarize(&reports)
}

/// Builds `target` instrumented, seeds its corpus and fuzzes it for
/// `seconds`. A crash is not an error here: it is in the report's `crashes`
/// (with the reproducer written under `fuzz/artifacts/<target>/`).
pub fn fuzz(root: &Path, target: &str, seconds: u64) -> Result<FuzzReport> {
    let Some(spec) = TARGETS.iter().find(|t| t.name == target) else {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        bail!(
            "unknown fuzz target `{target}`; the targets are {}",
            names.join(", ")
        );
    };
    let tool = ensure_cargo_fuzz(root)?;
    let fuzz_dir = root.join("fuzz");
    let corpus = fuzz_dir.join("corpus").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| corpus.display().to_string())?;
    std::fs::create_dir_all(&artifacts).with_context(|| artifacts.display().to_string())?;
    seed_corpus(root, target, &corpus)?;

    let started = Instant::now();
    let mut build = fuzz_command(&tool, root, "build", spec);
    build.arg(target);
    crate::run(build)?;
    let build_s = started.elapsed().as_secs_f64();

    let before = artifact_files(&artifacts)?;
    let log = fuzz_dir.join("artifacts").join(format!("{target}.log"));
    let log_file = std::fs::File::create(&log).with_context(|| log.display().to_string())?;
    let mut cmd = fuzz_command(&tool, root, "run", spec);
    cmd.arg(target)
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        // A single input running this long is a hang.
        .arg("-timeout=20")
        // The sandbox caps guest memory; the fuzzer process stays small too.
        .arg("-rss_limit_mb=2048")
        .arg("-malloc_limit_mb=1024")
        .arg(format!("-artifact_prefix={}/", artifacts.display()));
    let dict = fuzz_dir.join("dicts").join(format!("{target}.dict"));
    if dict.exists() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    cmd.stdout(log_file.try_clone()?).stderr(log_file);
    eprintln!(
        "xtask: fuzzing {target} for {seconds} s ({}); log in {}",
        spec.about,
        log.display()
    );
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", tool.display()))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut report = parse_log(&text);
    report.target = target.to_string();
    report.seconds = seconds;
    report.build_s = build_s;
    report.log = log.clone();
    report.crashes = artifact_files(&artifacts)?
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    if !status.success() && report.crashes.is_empty() {
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "fuzzing {target} failed with {status} and left no reproducer; log {}:\n{}",
            log.display(),
            tail.join("\n")
        );
    }
    for crash in &report.crashes {
        let bytes = std::fs::read(crash).unwrap_or_default();
        let shown: String = bytes.iter().take(256).map(|b| format!("{b:02x}")).collect();
        eprintln!(
            "xtask: {target}: reproducer {} ({} bytes): {shown}{}",
            crash.display(),
            bytes.len(),
            if bytes.len() > 256 { "..." } else { "" }
        );
    }
    Ok(report)
}

/// A cargo-fuzz command for `sub` (`build` or `run`) with the target's options.
fn fuzz_command(tool: &Path, root: &Path, sub: &str, spec: &Target) -> Command {
    let mut cmd = Command::new(tool);
    cmd.current_dir(root)
        .args(["fuzz", sub, "--fuzz-dir"])
        .arg(root.join("fuzz"))
        .arg("--target-dir")
        .arg(root.join("fuzz/target"))
        .args(["--sanitizer", spec.sanitizer])
        // Release with debug assertions (cargo-fuzz's default): overflow and
        // other debug checks are part of what is fuzzed.
        .env("RUSTC_BOOTSTRAP", "1")
        // The fuzz workspace has its own target dir; don't inherit ours.
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null());
    if !spec.features.is_empty() {
        cmd.arg("--features").arg(spec.features.join(","));
    }
    cmd
}

/// The cargo-fuzz binary in `build/tools`, installed there if missing.
fn ensure_cargo_fuzz(root: &Path) -> Result<PathBuf> {
    let tools = root.join("build/tools");
    let bin = tools.join("bin/cargo-fuzz");
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION} into {}",
        tools.display()
    );
    let mut cmd = crate::cargo();
    cmd.current_dir(root)
        .args([
            "install",
            "--locked",
            "--version",
            CARGO_FUZZ_VERSION,
            "--root",
        ])
        .arg(&tools)
        .arg("cargo-fuzz")
        .env_remove("CARGO_TARGET_DIR");
    crate::run(cmd)?;
    if !bin.exists() {
        bail!(
            "cargo install reported success but {} is missing",
            bin.display()
        );
    }
    Ok(bin)
}

/// Reproducer files in an artifact directory.
fn artifact_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if ["crash-", "leak-", "timeout-", "oom-", "slow-unit-"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Copies the repository's seeds for `target` into its corpus (once each).
fn seed_corpus(root: &Path, target: &str, corpus: &Path) -> Result<()> {
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    let mut from_dir = |dir: &Path, ext: &str| -> Result<()> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == ext) {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                seeds.push((name, std::fs::read(&path)?));
            }
        }
        Ok(())
    };
    match target {
        "module_load" | "module_verify" => {
            from_dir(&root.join("build/agents"), "wasm")?;
            seeds.push(("empty-module".into(), b"\0asm\x01\0\0\0".to_vec()));
        }
        "trace_read" => from_dir(&root.join("fixtures/golden"), "trace")?,
        "scenario_parse" => {
            from_dir(&root.join("fixtures/scenarios"), "toml")?;
            from_dir(&root.join("fixtures/golden"), "toml")?;
        }
        "envelope_decode" => seeds.extend(envelope_seeds()),
        _ => {}
    }
    for (name, bytes) in seeds {
        let path = corpus.join(format!("seed-{name}"));
        if !path.exists() {
            std::fs::write(&path, bytes).with_context(|| path.display().to_string())?;
        }
    }
    Ok(())
}

/// A few well-formed inboxes: a direct message, a topic message and an
/// inference result carrying an f32 tensor (layouts of docs/ABI.md).
fn envelope_seeds() -> Vec<(String, Vec<u8>)> {
    fn record(out: &mut Vec<u8>, sender: u32, kind: u16, channel: u32, payload: &[u8]) {
        out.extend(sender.to_le_bytes());
        out.extend(kind.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(channel.to_le_bytes());
        out.extend((payload.len() as u32).to_le_bytes());
        out.extend(payload);
        out.resize(out.len().next_multiple_of(8), 0);
    }
    let mut direct = Vec::new();
    record(&mut direct, 3, 0, 0, &42u64.to_le_bytes());
    record(&mut direct, 5, 1, 9, b"topic payload");
    let mut tensor = Vec::new();
    tensor.extend(1u16.to_le_bytes());
    tensor.extend([0, 0]);
    tensor.extend([1u8, 2]);
    tensor.extend(6u16.to_le_bytes());
    tensor.extend(16u32.to_le_bytes());
    tensor.extend(2u64.to_le_bytes());
    tensor.extend(2u64.to_le_bytes());
    tensor.extend(b"logits");
    for v in [0.5f32, -1.0, 2.0, 0.0] {
        tensor.extend(v.to_le_bytes());
    }
    let mut infer = Vec::new();
    record(&mut infer, u32::MAX, 2, 7, &tensor);
    vec![
        ("direct-and-topic".into(), direct),
        ("inference-result".into(), infer),
    ]
}

/// Reads libFuzzer's final stats and last status line.
fn parse_log(text: &str) -> FuzzReport {
    let mut r = FuzzReport::default();
    let stat = |key: &str| -> Option<u64> {
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    r.executions = stat("stat::number_of_executed_units:").unwrap_or(0);
    r.execs_per_s = stat("stat::average_exec_per_sec:").unwrap_or(0);
    r.new_units = stat("stat::new_units_added:").unwrap_or(0);
    r.peak_rss_mb = stat("stat::peak_rss_mb:").unwrap_or(0);
    // Status lines look like `#1234\tNEW    cov: 567 ft: 890 corp: 12/3456b ...`.
    let field = |line: &str, key: &str| -> Option<u64> {
        let rest = line.split(key).nth(1)?;
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    if let Some(line) = text
        .lines()
        .rev()
        .find(|l| l.starts_with('#') && l.contains("cov: "))
    {
        r.coverage = field(line, "cov: ").unwrap_or(0);
        r.corpus_entries = field(line, "corp: ").unwrap_or(0);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libfuzzer_stats() {
        let log = "INFO: seed\n#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #4096\tpulse  cov: 120 ft: 300 corp: 25/900b lim: 40 exec/s: 2048 rss: 40Mb\n\
                   Done 5000 runs in 2 second(s)\n\
                   stat::number_of_executed_units: 5000\n\
                   stat::average_exec_per_sec:     2500\n\
                   stat::new_units_added:          24\n\
                   stat::slowest_unit_time_sec:    0\n\
                   stat::peak_rss_mb:              41\n";
        let r = parse_log(log);
        assert_eq!(r.executions, 5000);
        assert_eq!(r.execs_per_s, 2500);
        assert_eq!(r.new_units, 24);
        assert_eq!(r.peak_rss_mb, 41);
        assert_eq!(r.coverage, 120);
        assert_eq!(r.corpus_entries, 25);
    }

    #[test]
    fn every_target_has_a_source_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for t in TARGETS {
            let path = root.join(format!("fuzz/fuzz_targets/{}.rs", t.name));
            assert!(path.exists(), "{} is missing", path.display());
        }
        assert!(TARGETS.iter().any(|t| t.cheap));
    }
}
