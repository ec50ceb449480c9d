//! `cargo xtask bench [--quick] [--only PARTS] [--runs K]`: runs the criterion
//! benchmarks and the reference workloads, and writes `docs/BENCHMARKS.md`.
//!
//! - Criterion benches of we-sandbox, we-ipc, we-sched, we-replay and we-infer,
//!   with short warm-up and measurement times; each figure is shown beside the
//!   baseline its bench measures in the same run (a raw wasmer typed call, a raw
//!   crossbeam send, a raw `Session::run` of the same batch, blake3 over the same
//!   bytes).
//! - The four workloads of `shared/workloads.md` through the release `we
//!   bench-workload` (tracing and metering on) at N in {100, 1,000, 10,000} and
//!   W in {1, 2}: T calibrated so a run lasts about 2 s, median of 3 runs
//!   taken in rounds (every configuration once, then again: a slow spell of
//!   the machine does not take all of one configuration's runs), digests
//!   compared across runs and worker counts; the seed's table of issue 11 and
//!   our ratio to it.
//! - The same workloads with the agents packed (`--pack K`, K = N/2 up to
//!   1,000: several agents per instance, one call for many; see
//!   `docs/ARCHITECTURE.md`), T calibrated for them.
//! - Tracing overhead (the same runs with `--no-trace`), memory styles
//!   (`WE_MEMORY_STYLE`), and scale: ring at N = 100,000 in one process with the
//!   resident memory per idle agent, polled from `/proc`.
//!
//! `--only` takes a comma list of `criterion`, `workloads`, `extra`, `scale`;
//! `--runs K` repeats each measurement K times (default 3); `--out FILE` writes
//! elsewhere; `--we BIN` uses that `we` binary instead of building one.
//! A `## Profiles` section already in `docs/BENCHMARKS.md` is hand-written and
//! kept as it is. Not run in CI; numbers are only as quiet as the machine.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const WORKLOADS: [&str; 4] = ["ring", "compute", "gossip", "infer"];
const SIZES: [u32; 3] = [100, 1_000, 10_000];
const WORKERS: [usize; 2] = [1, 2];
const SCALE_AGENTS: u32 = 100_000;

/// Agents per instance in the packed runs: two packs or more per run, at most
/// 1,000 agents each.
fn pack_for(agents: u32) -> u32 {
    (agents / 2).clamp(1, 1_000)
}
/// The heading of the hand-written section that a regeneration keeps.
const PROFILES_HEADING: &str = "## Profiles";

/// The seed architecture's figures (issue 11): workload, N, best W, rate,
/// tick p99 in ms, the ratio we must reach.
const SEED: [(&str, u32, usize, f64, f64, f64); 6] = [
    ("ring", 1_000, 1, 4.9e6, 0.33, 2.0),
    ("ring", 10_000, 2, 1.9e6, 9.6, 3.0),
    ("compute", 1_000, 2, 104e3, 15.8, 1.0),
    ("gossip", 1_000, 2, 17.8e6, 5.7, 2.0),
    ("gossip", 10_000, 2, 22.9e6, 417.0, 2.0),
    ("infer", 10_000, 2, 1.55e6, 11.3, 2.0),
];

struct Opts {
    quick: bool,
    runs: usize,
    parts: Vec<String>,
    out: PathBuf,
    /// A `we` binary to use instead of building the release one.
    we: Option<PathBuf>,
}

impl Opts {
    fn parse(root: &Path, args: &[String]) -> Result<Self> {
        let mut o = Opts {
            quick: false,
            runs: 3,
            parts: ["criterion", "workloads", "extra", "scale"]
                .map(String::from)
                .to_vec(),
            out: root.join("docs/BENCHMARKS.md"),
            we: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--runs" => {
                    o.runs = it
                        .next()
                        .context("--runs needs a number")?
                        .parse()
                        .context("--runs")?
                }
                "--only" => {
                    o.parts = it
                        .next()
                        .context("--only needs a list")?
                        .split(',')
                        .map(String::from)
                        .collect()
                }
                "--out" => o.out = PathBuf::from(it.next().context("--out needs a path")?),
                "--we" => o.we = Some(PathBuf::from(it.next().context("--we needs a path")?)),
                other => bail!(
                    "bench: unknown argument `{other}` (usage: cargo xtask bench [--quick] [--runs K] [--only criterion,workloads,extra,scale] [--out FILE] [--we BIN])"
                ),
            }
        }
        if o.runs == 0 {
            bail!("--runs must be at least 1");
        }
        Ok(o)
    }

    fn wants(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }

    /// Target wall time of one workload run, in seconds (`shared/workloads.md`:
    /// at least 2 s).
    fn target_s(&self) -> f64 {
        if self.quick { 0.4 } else { 2.0 }
    }
}

/// Entry point of `cargo xtask bench`.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let opts = Opts::parse(root, args)?;
    let started = Instant::now();
    let lib = crate::prepare(root)?;
    let we = match &opts.we {
        Some(we) => we.clone(),
        None => crate::build_we(root, crate::Profile::Release)?,
    };
    let machine = Machine::read(root, &lib);
    let mut report = Report::default();

    if opts.wants("criterion") {
        report.criterion = Some(criterion(root, &lib, &opts)?);
    }
    let bench = Bench {
        we: &we,
        root,
        lib: &lib,
    };
    if opts.wants("workloads") {
        let mut configs = Vec::new();
        for workload in WORKLOADS {
            for n in SIZES {
                // One T for both worker counts, so their digests must match.
                let ticks = bench.calibrate(&opts, workload, n, 1, &[], &[])?;
                for w in WORKERS {
                    configs.push(Config::new(workload, n, w, ticks, &[], &[]));
                }
                // Packed runs are several times faster: their own T (from
                // the faster W), so that they too last the target time.
                let pack = pack_for(n).to_string();
                let flags = ["--pack", pack.as_str()];
                let ticks = bench.calibrate(&opts, workload, n, 2, &flags, &[])?;
                for w in WORKERS {
                    configs.push(Config::new(workload, n, w, ticks, &flags, &[]));
                }
            }
        }
        report.workloads = bench.interleaved(&opts, &configs)?;
    }
    if opts.wants("extra") {
        report.extra = extra(&bench, &opts)?;
    }
    if opts.wants("scale") {
        report.scale = scale(&bench, &opts)?;
    }
    let load_end = load_average();
    let elapsed = started.elapsed();
    let previous = std::fs::read_to_string(&opts.out).unwrap_or_default();
    let text = render(&machine, &report, &opts, &load_end, elapsed, &previous);
    std::fs::write(&opts.out, text).with_context(|| opts.out.display().to_string())?;
    eprintln!(
        "xtask: wrote {} in {:.0} s",
        opts.out.display(),
        elapsed.as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------- machine

struct Machine {
    cpu: String,
    cores: usize,
    mem: String,
    kernel: String,
    max_map_count: String,
    rustc: String,
    commit: String,
    load_start: String,
    ort: String,
}

impl Machine {
    fn read(root: &Path, lib: &Path) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let mem = proc_field("/proc/meminfo", "MemTotal")
            .map(|kb| format!("{:.1} GiB", kb as f64 / (1 << 20) as f64))
            .unwrap_or_else(|| "unknown".into());
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into())
        };
        let output = |cmd: &mut Command| {
            cmd.output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        Machine {
            cpu,
            cores,
            mem,
            kernel: read("/proc/sys/kernel/osrelease"),
            max_map_count: read("/proc/sys/vm/max_map_count"),
            rustc: output(Command::new("rustc").arg("-V").current_dir(root)),
            commit: output(
                Command::new("git")
                    .args(["rev-parse", "--short", "HEAD"])
                    .current_dir(root),
            ),
            load_start: load_average(),
            ort: lib
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
        }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A `kB` field of a `/proc` status-like file.
fn proc_field(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

// ---------------------------------------------------------------- criterion

/// One criterion result: median time per iteration and the throughput unit.
struct Crit {
    id: String,
    median_ns: f64,
    /// Elements or bytes per iteration, when the bench declares it.
    throughput: Option<(String, f64)>,
}

#[derive(Default)]
struct CritResults {
    results: BTreeMap<String, Crit>,
    /// Lines the benches print themselves (per-request overhead, record size).
    notes: Vec<String>,
}

impl CritResults {
    fn ns(&self, id: &str) -> Option<f64> {
        self.results.get(id).map(|c| c.median_ns)
    }
}

const BENCHES: [(&str, &str); 5] = [
    ("we-sandbox", "sandbox"),
    ("we-ipc", "ipc"),
    ("we-sched", "sched"),
    ("we-replay", "trace"),
    ("we-infer", "infer"),
];

fn criterion(root: &Path, lib: &Path, opts: &Opts) -> Result<CritResults> {
    let (warm, measure) = if opts.quick {
        ("0.3", "0.7")
    } else {
        ("0.5", "1.5")
    };
    let since = SystemTime::now();
    let mut notes = Vec::new();
    for (package, bench) in BENCHES {
        let mut cmd = crate::cargo();
        cmd.current_dir(root)
            .args(["bench", "--package", package, "--bench", bench, "--"])
            .args(["--warm-up-time", warm, "--measurement-time", measure])
            .arg("--noplot")
            .env("ORT_DYLIB_PATH", lib)
            .stderr(Stdio::inherit());
        eprintln!("xtask: $ cargo bench -p {package} --bench {bench}");
        let out = cmd
            .output()
            .with_context(|| format!("cargo bench -p {package}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        print!("{stdout}");
        if !out.status.success() {
            bail!("cargo bench -p {package} --bench {bench} failed");
        }
        for line in stdout.lines() {
            if line.starts_with("per request:") || line.starts_with("provider:") {
                notes.push(line.trim().to_string());
            }
        }
    }
    let mut results = BTreeMap::new();
    collect_criterion(
        &crate::target_dir(root).join("criterion"),
        since,
        &mut results,
    )?;
    Ok(CritResults { results, notes })
}

/// Walks criterion's output for `new/benchmark.json` written since `since`.
fn collect_criterion(
    dir: &Path,
    since: SystemTime,
    out: &mut BTreeMap<String, Crit>,
) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let est = path.join("estimates.json");
            let fresh = std::fs::metadata(&est)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since);
            if !fresh {
                continue;
            }
            let bench: Value =
                serde_json::from_str(&std::fs::read_to_string(path.join("benchmark.json"))?)?;
            let est: Value = serde_json::from_str(&std::fs::read_to_string(&est)?)?;
            let id = bench["full_id"].as_str().unwrap_or_default().to_string();
            let median_ns = est["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN);
            let throughput = bench["throughput"].as_object().and_then(|t| {
                t.iter()
                    .next()
                    .and_then(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
            });
            out.insert(
                id.clone(),
                Crit {
                    id,
                    median_ns,
                    throughput,
                },
            );
        } else {
            collect_criterion(&path, since, out)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- workloads

struct Bench<'a> {
    we: &'a Path,
    root: &'a Path,
    lib: &'a Path,
}

/// One `we bench-workload` process: its JSON line and what `/proc` showed.
struct Sample {
    json: Value,
    /// Peak resident set (VmHWM), bytes.
    hwm: u64,
    /// Most memory mappings seen at once.
    maps: usize,
}

/// The median of repeated runs of one configuration.
#[derive(Clone)]
struct Measured {
    workload: String,
    agents: u32,
    workers: usize,
    ticks: u64,
    label: String,
    rate: f64,
    p50: f64,
    p99: f64,
    init_s: f64,
    hwm: u64,
    maps: usize,
    digests: Vec<String>,
    load: String,
}

/// Flags and environment of a run compared with another.
type Variant<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

/// One configuration of `we bench-workload`, its T fixed.
struct Config {
    workload: String,
    agents: u32,
    workers: usize,
    ticks: u64,
    flags: Vec<String>,
    env: Vec<(String, String)>,
}

impl Config {
    fn new(
        workload: &str,
        agents: u32,
        workers: usize,
        ticks: u64,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Self {
            workload: workload.to_string(),
            agents,
            workers,
            ticks,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The same configuration with other flags and environment, and the
    /// same T (a run to compare with this one).
    fn variant(&self, flags: &[&str], env: &[(&str, &str)]) -> Self {
        Self::new(
            &self.workload,
            self.agents,
            self.workers,
            self.ticks,
            flags,
            env,
        )
    }
}

impl Bench<'_> {
    /// The medians of `opts.runs` runs of each configuration, taken in
    /// rounds: every configuration once, then every one again. This
    /// machine has spells, minutes long, in which everything runs slower;
    /// runs of one configuration taken back to back can all fall in one,
    /// where rounds spread each configuration's runs over the whole
    /// measurement, and a comparison's two sides (traced and untraced,
    /// say) alternate within minutes of each other.
    fn interleaved(&self, opts: &Opts, configs: &[Config]) -> Result<Vec<Measured>> {
        let mut samples: Vec<Vec<Sample>> = configs.iter().map(|_| Vec::new()).collect();
        for _ in 0..opts.runs {
            for (c, into) in configs.iter().zip(samples.iter_mut()) {
                into.push(self.once(c, false)?);
            }
        }
        Ok(configs
            .iter()
            .zip(samples)
            .map(|(c, samples)| summarize(c, &samples))
            .collect())
    }

    /// A configuration and its variants, interleaved (see
    /// [`Bench::interleaved`]), T calibrated on the first.
    fn compared(
        &self,
        opts: &Opts,
        workload: &str,
        agents: u32,
        flags: &[&str],
        env: &[(&str, &str)],
        variants: &[Variant<'_>],
    ) -> Result<Vec<Measured>> {
        let ticks = self.calibrate(opts, workload, agents, 1, flags, env)?;
        let base = Config::new(workload, agents, 1, ticks, flags, env);
        let mut configs: Vec<Config> = variants.iter().map(|(f, e)| base.variant(f, e)).collect();
        configs.insert(0, base);
        self.interleaved(opts, &configs)
    }

    /// Runs `we bench-workload` once with `c`, polling its memory.
    fn once(&self, c: &Config, count_maps: bool) -> Result<Sample> {
        let Config {
            workload,
            agents,
            workers,
            ticks,
            flags,
            env,
        } = c;
        let mut cmd = Command::new(self.we);
        cmd.current_dir(self.root)
            .arg("bench-workload")
            .args(["--workload", workload])
            .args(["--agents", &agents.to_string()])
            .args(["--ticks", &ticks.to_string()])
            .args(["--workers", &workers.to_string()])
            .arg("--json")
            .args(flags)
            .env("ORT_DYLIB_PATH", self.lib)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let shown = format!(
            "we bench-workload --workload {workload} --agents {agents} --ticks {ticks} --workers {workers} {}{}",
            flags.join(" "),
            env.iter()
                .map(|(k, v)| format!(" ({k}={v})"))
                .collect::<String>()
        );
        let mut child = cmd.spawn().with_context(|| shown.clone())?;
        let status_path = format!("/proc/{}/status", child.id());
        let maps_path = format!("/proc/{}/maps", child.id());
        let (mut hwm, mut maps) = (0u64, 0usize);
        let mut last_maps = Instant::now() - Duration::from_secs(1);
        // Bounded by the child's life: it exits or we return on error.
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if let Some(kb) = proc_field(&status_path, "VmHWM") {
                hwm = hwm.max(kb * 1024);
            }
            if count_maps && last_maps.elapsed() > Duration::from_millis(200) {
                if let Ok(text) = std::fs::read_to_string(&maps_path) {
                    maps = maps.max(text.lines().count());
                }
                last_maps = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut stdout = String::new();
        if let Some(mut out) = child.stdout.take() {
            use std::io::Read as _;
            out.read_to_string(&mut stdout)?;
        }
        if !status.success() {
            bail!("{shown} failed with {status}");
        }
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .with_context(|| format!("{shown}: no JSON line in its output"))?;
        let json: Value = serde_json::from_str(line).with_context(|| format!("{shown}: {line}"))?;
        eprintln!("xtask: {shown} -> {line}");
        Ok(Sample { json, hwm, maps })
    }

    /// The T that makes one run last about the target wall time, from a
    /// short probe run.
    fn calibrate(
        &self,
        opts: &Opts,
        workload: &str,
        agents: u32,
        workers: usize,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Result<u64> {
        let target = opts.target_s();
        let ticks_for =
            |per_tick: f64| ((target / per_tick.max(1e-7)).ceil() as u64).clamp(5, 200_000);
        let probe_ticks = 5;
        let mut probe_run = Config::new(workload, agents, workers, probe_ticks, flags, env);
        let probe = self.once(&probe_run, false)?;
        // The median tick, not the mean: the first ticks of a big run fault
        // its buffers in and would make T too small to get past them.
        let median_s = num(&probe.json, "p50_ms") / 1e3;
        let mean_s = num(&probe.json, "wall_s") / probe_ticks as f64;
        let per_tick = if median_s.is_finite() && median_s > 0.0 {
            median_s
        } else {
            mean_s
        };
        // Five ticks still overstate a fast run's tick (warm-up): a second
        // probe of about a quarter of the target measures the steady tick
        // (its median, or its mean if lower), and T gets a tenth more, so
        // that a run lasts at least the target.
        let second = (ticks_for(per_tick) / 4).max(probe_ticks);
        probe_run.ticks = second;
        let probe = self.once(&probe_run, false)?;
        let mean_s = num(&probe.json, "wall_s") / second as f64;
        let median_s = num(&probe.json, "p50_ms") / 1e3;
        let steady = [mean_s, median_s]
            .into_iter()
            .filter(|s| s.is_finite() && *s > 0.0)
            .fold(f64::INFINITY, f64::min);
        if !steady.is_finite() {
            return Ok(ticks_for(per_tick));
        }
        Ok(ticks_for(steady / 1.1))
    }

    /// The median of `opts.runs` runs with `ticks` ticks.
    #[allow(clippy::too_many_arguments)]
    fn repeat(
        &self,
        opts: &Opts,
        workload: &str,
        agents: u32,
        workers: usize,
        ticks: u64,
        flags: &[&str],
        env: &[(&str, &str)],
        count_maps: bool,
    ) -> Result<Measured> {
        let config = Config::new(workload, agents, workers, ticks, flags, env);
        let mut samples = Vec::new();
        for _ in 0..opts.runs {
            samples.push(self.once(&config, count_maps)?);
        }
        Ok(summarize(&config, &samples))
    }
}

/// The medians of `samples`, runs of `c`.
fn summarize(c: &Config, samples: &[Sample]) -> Measured {
    let rate_key = if c.workload == "infer" {
        "inferences_per_s"
    } else {
        "messages_per_s"
    };
    let med = |key: &str| median(samples.iter().map(|s| num(&s.json, key)).collect());
    let mut digests: Vec<String> = samples
        .iter()
        .map(|s| s.json["digest"].as_str().unwrap_or("?").to_string())
        .collect();
    digests.dedup();
    let mut label = String::new();
    for f in &c.flags {
        let _ = write!(label, "{f} ");
    }
    for (k, v) in &c.env {
        let _ = write!(label, "{k}={v} ");
    }
    Measured {
        workload: c.workload.clone(),
        agents: c.agents,
        workers: c.workers,
        ticks: c.ticks,
        label: label.trim().to_string(),
        rate: med(rate_key),
        p50: med("p50_ms"),
        p99: med("p99_ms"),
        init_s: med("init_s"),
        hwm: samples.iter().map(|s| s.hwm).max().unwrap_or(0),
        maps: samples.iter().map(|s| s.maps).max().unwrap_or(0),
        digests,
        load: load_average(),
    }
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Tracing overhead, what metering costs and memory styles.
fn extra(bench: &Bench<'_>, opts: &Opts) -> Result<Vec<(String, Measured, Measured)>> {
    let mut out = Vec::new();
    // Each comparison's two sides run alternately (`Bench::compared`), so a
    // spell of the machine falls on both.
    let mut pair = |what: &str, mut runs: Vec<Measured>| {
        if runs.len() == 2
            && let (Some(b), Some(a)) = (runs.pop(), runs.pop())
        {
            out.push((what.to_string(), a, b));
        }
    };
    for (workload, n) in [("ring", 1_000), ("ring", 10_000), ("gossip", 1_000)] {
        let runs = bench.compared(opts, workload, n, &[], &[], &[(&["--no-trace"], &[])])?;
        pair("tracing", runs);
    }
    for (workload, n) in [("ring", 1_000), ("ring", 10_000), ("gossip", 1_000)] {
        let pack = pack_for(n).to_string();
        let packed = ["--pack", pack.as_str()];
        let untraced = ["--pack", pack.as_str(), "--no-trace"];
        let runs = bench.compared(opts, workload, n, &packed, &[], &[(&untraced, &[])])?;
        pair("tracing, packed", runs);
    }
    // Fuel by region (what runs use) against a check per basic block and
    // against none, packed as the workload targets are met.
    for (workload, n) in [("ring", 1_000), ("compute", 1_000), ("infer", 10_000)] {
        let pack = pack_for(n).to_string();
        let packed = ["--pack", pack.as_str()];
        let blocks = ["--pack", pack.as_str(), "--metering", "blocks"];
        let off = ["--pack", pack.as_str(), "--metering", "off"];
        let mut runs = bench.compared(
            opts,
            workload,
            n,
            &packed,
            &[],
            &[(&blocks, &[]), (&off, &[])],
        )?;
        if runs.len() == 3 {
            let off = runs.remove(2);
            let regions = runs[0].clone();
            pair("metering: blocks", runs);
            pair("metering: off", vec![regions, off]);
        }
    }
    for (workload, n) in [("ring", 10_000), ("compute", 1_000)] {
        let runs = bench.compared(
            opts,
            workload,
            n,
            &[],
            &[("WE_MEMORY_STYLE", "static")],
            &[(&[], &[("WE_MEMORY_STYLE", "dynamic")])],
        )?;
        pair("memory style", runs);
    }
    Ok(out)
}

struct Scale {
    /// `(agents, one-tick untraced run)`: the resident memory after init.
    idle: Vec<Measured>,
    /// Ring at [`SCALE_AGENTS`], traced, per worker count.
    runs: Vec<Measured>,
}

fn scale(bench: &Bench<'_>, opts: &Opts) -> Result<Option<Scale>> {
    let mut idle = Vec::new();
    for n in [1_000, 10_000, SCALE_AGENTS] {
        idle.push(bench.repeat(opts, "ring", n, 1, 1, &["--no-trace"], &[], true)?);
    }
    let ticks = if opts.quick { 5 } else { 20 };
    let mut runs = Vec::new();
    for w in WORKERS {
        runs.push(bench.repeat(opts, "ring", SCALE_AGENTS, w, ticks, &[], &[], true)?);
    }
    Ok(Some(Scale { idle, runs }))
}

// ---------------------------------------------------------------- report

#[derive(Default)]
struct Report {
    criterion: Option<CritResults>,
    workloads: Vec<Measured>,
    extra: Vec<(String, Measured, Measured)>,
    scale: Option<Scale>,
}

fn rate_text(r: f64) -> String {
    if !r.is_finite() {
        "n/a".into()
    } else if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn ns_text(ns: f64) -> String {
    if !ns.is_finite() {
        "n/a".into()
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn unit(workload: &str) -> &'static str {
    match workload {
        "infer" => "inferences/s",
        "compute" => "agent-steps/s",
        _ => "msgs/s",
    }
}

fn render(
    m: &Machine,
    r: &Report,
    opts: &Opts,
    load_end: &str,
    elapsed: Duration,
    previous: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Generated by `cargo xtask bench{}` (commit {}, {:.0} s); everything above\n\
         `{PROFILES_HEADING}` is rewritten on each run, that section is kept. Tracing and\n\
         metering are on unless a row says otherwise. Medians of {} runs.\n",
        if opts.quick { " --quick" } else { "" },
        m.commit,
        elapsed.as_secs_f64(),
        opts.runs,
    );
    let _ = writeln!(s, "## Machine\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| CPU | {} |", m.cpu);
    let _ = writeln!(s, "| cores (available) | {} |", m.cores);
    let _ = writeln!(s, "| memory | {} |", m.mem);
    let _ = writeln!(s, "| kernel | {} |", m.kernel);
    let _ = writeln!(s, "| vm.max_map_count | {} |", m.max_map_count);
    let _ = writeln!(s, "| rustc | {} |", m.rustc);
    let _ = writeln!(s, "| ONNX Runtime | {} |", m.ort);
    let _ = writeln!(
        s,
        "| load average (1, 5, 15 min) | start {}; end {} |\n",
        m.load_start, load_end
    );

    if !r.workloads.is_empty() {
        render_seed(&mut s, &r.workloads);
    }
    if let Some(c) = &r.criterion {
        render_baselines(&mut s, c, &r.workloads);
    }
    if !r.workloads.is_empty() {
        render_workloads(&mut s, &r.workloads);
    }
    if !r.extra.is_empty() {
        render_extra(&mut s, &r.extra);
    }
    if let Some(sc) = &r.scale {
        render_scale(&mut s, sc);
    }
    if let Some(c) = &r.criterion {
        render_criterion(&mut s, c);
    }
    match previous.find(&format!("\n{PROFILES_HEADING}")) {
        Some(at) => s.push_str(previous[at..].trim_start_matches('\n')),
        None => {
            let _ = writeln!(
                s,
                "{PROFILES_HEADING}\n\n(Hand-written: profiles of the hottest paths, what they \
                 showed, the fixes and their before/after figures.)"
            );
        }
    }
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn best<'a>(w: &'a [Measured], workload: &str, n: u32) -> Option<&'a Measured> {
    best_labelled(w, workload, n, |label| label.is_empty())
}

/// The best W among the runs of `workload` at `n` whose label `which` takes.
fn best_labelled<'a>(
    w: &'a [Measured],
    workload: &str,
    n: u32,
    which: impl Fn(&str) -> bool,
) -> Option<&'a Measured> {
    w.iter()
        .filter(|m| m.workload == workload && m.agents == n && which(&m.label))
        .max_by(|a, b| a.rate.total_cmp(&b.rate))
}

/// Whether a run had its agents packed.
fn packed(label: &str) -> bool {
    label.starts_with("--pack")
}

fn render_seed(s: &mut String, w: &[Measured]) {
    let _ = writeln!(s, "## Against the seed's architecture\n");
    let _ = writeln!(
        s,
        "The seed's figures are issue 11's (Node.js, worker_threads, one instance per agent, \
         no metering, no trace, 2-vCPU EPYC); ours are the best W of this run, first with \
         one instance per agent as the seed, then with the agents packed (`pack = K`: K \
         agents of a group share one instance and one call; metering and tracing stay on, \
         isolation between the agents of one pack is given up).\n"
    );
    let _ = writeln!(
        s,
        "| workload | N | seed W | seed rate | seed p99 | our W | our rate | our p99 | ratio | packed: K, W | rate | p99 | ratio | target | met (alone / packed) |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    let met = |ratio: f64, target: f64| if ratio >= target { "yes" } else { "**no**" };
    for (workload, n, sw, srate, sp99, target) in SEED {
        let Some(m) = best(w, workload, n) else {
            continue;
        };
        let ratio = m.rate / srate;
        let (packed_cells, packed_met) = match best_labelled(w, workload, n, packed) {
            Some(p) => {
                let r = p.rate / srate;
                (
                    format!(
                        "{}, {} | {} | {:.2} ms | {r:.2}x",
                        p.label.trim_start_matches("--pack ").trim(),
                        p.workers,
                        rate_text(p.rate),
                        p.p99
                    ),
                    met(r, target),
                )
            }
            None => ("n/a | | |".to_string(), "n/a"),
        };
        let _ = writeln!(
            s,
            "| {workload} | {n} | {sw} | {} {} | {sp99} ms | {} | {} | {:.2} ms | {ratio:.2}x | {packed_cells} | {target}x | {} / {packed_met} |",
            rate_text(srate),
            unit(workload),
            m.workers,
            rate_text(m.rate),
            m.p99,
            met(ratio, target),
        );
    }
    for (what, which) in [
        (
            "one instance per agent",
            (|l: &str| l.is_empty()) as fn(&str) -> bool,
        ),
        ("packed", packed as fn(&str) -> bool),
    ] {
        if let Some(m) = w
            .iter()
            .filter(|m| m.workload == "ring" && m.agents == 10_000 && which(&m.label))
            .min_by(|a, b| a.p99.total_cmp(&b.p99))
        {
            let _ = writeln!(
                s,
                "\nring N = 10,000 tick p99, {what} (best W = {}): {:.2} ms (target at most 3 ms: {}).",
                m.workers,
                m.p99,
                if m.p99 <= 3.0 { "met" } else { "**missed**" }
            );
        }
    }
    let get = |wk: &str, n: u32, workers: usize| {
        w.iter().find(|m| {
            m.workload == wk && m.agents == n && m.workers == workers && m.label.is_empty()
        })
    };
    if let (Some(a), Some(b)) = (get("compute", 1_000, 1), get("compute", 1_000, 2)) {
        let x = b.rate / a.rate;
        let _ = writeln!(
            s,
            "compute N = 1,000: W = 2 is {x:.2}x W = 1 (target at least 1.8x: {}).",
            if x >= 1.8 { "met" } else { "**missed**" }
        );
    }
    s.push('\n');
}

fn render_baselines(s: &mut String, c: &CritResults, w: &[Measured]) {
    let _ = writeln!(s, "## Each figure beside its baseline\n");
    let _ = writeln!(
        s,
        "Criterion medians of the same `cargo xtask bench` run; the baseline is measured by \
         the same bench binary, right before or after.\n"
    );
    let _ = writeln!(s, "| what | ours | baseline | ratio | target |");
    let _ = writeln!(s, "|---|---:|---:|---:|---|");
    fn row(
        s: &mut String,
        what: &str,
        ours: Option<f64>,
        base: Option<f64>,
        base_what: &str,
        target: &str,
    ) {
        if let (Some(o), Some(b)) = (ours, base) {
            let _ = writeln!(
                s,
                "| {what} | {} | {} ({base_what}) | {:.2}x | {target} |",
                ns_text(o),
                ns_text(b),
                o / b
            );
        }
    }
    row(
        s,
        "`agent_step` through the sandbox (ring agent, idle tick)",
        c.ns("call/sandbox_agent_step"),
        c.ns("call/raw_wasmer_typed_call"),
        "raw wasmer typed call",
        "at most 3x",
    );
    row(
        s,
        "`agent_receive` of 1 message that sends 1",
        c.ns("call/sandbox_agent_receive_1msg_send_1"),
        c.ns("call/raw_wasmer_typed_call"),
        "raw wasmer typed call",
        "",
    );
    row(
        s,
        "`agent_step` with 1 message that sends 1 (ABI v2, what a tick calls)",
        c.ns("call/sandbox_agent_step_with_inbox_1msg_send_1"),
        c.ns("call/raw_wasmer_typed_call"),
        "raw wasmer typed call",
        "",
    );
    row(
        s,
        "the same per agent of a pack of 1,000 stepped by one call",
        c.ns("call/sandbox_pack_step_1msg_send_1_per_agent")
            .map(|ns| ns / 1_000.0),
        c.ns("call/raw_wasmer_typed_call"),
        "raw wasmer typed call",
        "",
    );
    for n in ["10000", "1000000"] {
        let per = |id: &str| {
            c.ns(&format!("ipc/{n}/{id}/{n}"))
                .map(|ns| ns / n.parse::<f64>().unwrap_or(1.0))
        };
        row(
            s,
            &format!("bus commit per message ({n} per commit)"),
            per("commit_send"),
            per("crossbeam_send_recv"),
            "crossbeam send+recv of the same 24 bytes",
            "",
        );
        row(
            s,
            &format!("bus flip per message ({n} per commit)"),
            per("flip"),
            per("crossbeam_send_recv"),
            "crossbeam send+recv",
            "",
        );
    }
    let per_req = |id: &str| c.ns(&format!("policy_1000/{id}")).map(|ns| ns / 1000.0);
    row(
        s,
        "inference per request, batch of 1,000 through the backend",
        per_req("backend_run_1000_requests_batched"),
        per_req("raw_session_run_batch_1000"),
        "raw `Session::run` of the same batch",
        "overhead at most 5 µs",
    );
    if let (Some(o), Some(b)) = (
        per_req("backend_run_1000_requests_batched"),
        per_req("raw_session_run_batch_1000"),
    ) {
        let over = (o - b) / 1e3;
        let _ = writeln!(
            s,
            "| → inference overhead per request | {over:.3} µs | | | {} |",
            if over <= 5.0 { "met" } else { "**missed**" }
        );
    }
    row(
        s,
        "inference per request, unbatched",
        per_req("backend_run_1000_requests_unbatched"),
        per_req("raw_session_run_1000_x_batch_1"),
        "raw `Session::run`, batch of 1",
        "",
    );
    let trace = |suffix: &str| {
        c.results
            .iter()
            .find(|(k, _)| k.starts_with("trace_10k_agents/") && k.contains(suffix))
            .map(|(_, v)| v.median_ns)
    };
    row(
        s,
        "trace: encode and chain one 10k-agent record",
        trace("encode_and_chain"),
        trace("blake3_baseline"),
        "blake3 over the same bytes",
        "",
    );
    row(
        s,
        "trace: write one 10k-agent record to a file",
        trace("write_record_fsync_never"),
        trace("blake3_baseline"),
        "blake3 over the same bytes",
        "",
    );
    row(
        s,
        "trace: read and verify one record",
        trace("read_and_verify"),
        trace("blake3_baseline"),
        "blake3 over the same bytes",
        "",
    );
    let per_agent = |id: &str| c.ns(id).map(|ns| ns / 100.0);
    let native = c.ns("compute/native_agent_step");
    row(
        s,
        "compute agent step (10,000 rounds of xorshift64) in a pack of 100, fuel by region",
        per_agent("compute/sandbox_pack_agent_step"),
        native,
        "the same loop compiled natively",
        "",
    );
    row(
        s,
        "the same, unmetered (measurement only)",
        per_agent("compute/sandbox_pack_agent_step_unmetered"),
        native,
        "the same loop compiled natively",
        "",
    );
    s.push('\n');
    let two_thread_tick = c.ns("compute/native_two_thread_tick");
    if let Some(native) = native.filter(|ns| *ns > 0.0) {
        // Two threads each stepping agents back to back, nothing else: no
        // runtime on two cores can step compute agents faster.
        let ceiling = 2.0 * 1e9 / native;
        let seed = SEED
            .iter()
            .find(|row| row.0 == "compute")
            .map_or(0.0, |row| row.3);
        let ours = best_labelled(w, "compute", 1_000, packed).map(|m| m.rate);
        let share = |rate: f64| format!("{} is {:.1} %", rate_text(rate), 100.0 * rate / ceiling);
        let _ = writeln!(
            s,
            "compute's ceiling on this machine: two cores each running the native step back \
             to back make {} agent-steps/s. The seed's {}{}.",
            rate_text(ceiling),
            share(seed),
            ours.map_or(String::new(), |r| format!(
                "; ours (compute N = 1,000, packed, best W) {}",
                share(r)
            )),
        );
        if let Some(tick) = two_thread_tick.filter(|ns| *ns > 0.0) {
            // The same, with the two threads meeting after every tick.
            let lockstep = 1_000.0 * 1e9 / tick;
            let _ = writeln!(
                s,
                "In lockstep (each of two threads runs 500 native steps, then they meet at a \
                 barrier, as a tick loop's workers do: {} a tick of 1,000), they make {} \
                 agent-steps/s, {:.1} % of the ceiling; the seed's figure is {:.1} % of that{}.",
                ns_text(tick),
                rate_text(lockstep),
                100.0 * lockstep / ceiling,
                100.0 * seed / lockstep,
                ours.map_or(String::new(), |r| format!(
                    ", ours {:.1} %",
                    100.0 * r / lockstep
                )),
            );
        }
        s.push('\n');
    }
    for note in &c.notes {
        let _ = writeln!(s, "- we-infer bench: {note}");
    }
    s.push('\n');
}

fn render_workloads(s: &mut String, w: &[Measured]) {
    let _ = writeln!(s, "## Reference workloads\n");
    let _ = writeln!(
        s,
        "`we bench-workload --workload W --agents N --ticks T --workers W` (release build, \
         tracing into a temporary file, metering on); T chosen so one run lasts about the \
         target time; rate and latencies are medians of runs taken in rounds (every \
         configuration once, then every one again), so that a slow spell of the machine \
         does not take all the runs of one configuration; `pack` is `--pack K` (agents per \
         instance; 1: each alone), with its own T; `digests` says whether every run with the \
         same N and T (both worker counts, and both pack sizes when T is the same) gave the \
         same workload digest.\n"
    );
    let _ = writeln!(
        s,
        "| workload | N | W | pack | T | rate | p50 tick | p99 tick | init | peak RSS | load | digests |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    );
    for m in w {
        let same_n: Vec<&String> = w
            .iter()
            .filter(|o| o.workload == m.workload && o.agents == m.agents && o.ticks == m.ticks)
            .flat_map(|o| o.digests.iter())
            .collect();
        let consistent = same_n.windows(2).all(|p| p[0] == p[1]);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} {} | {:.3} ms | {:.3} ms | {:.3} s | {} | {} | {} |",
            m.workload,
            m.agents,
            m.workers,
            if packed(&m.label) {
                m.label.trim_start_matches("--pack ").trim()
            } else {
                "1"
            },
            m.ticks,
            rate_text(m.rate),
            unit(&m.workload),
            m.p50,
            m.p99,
            m.init_s,
            mib(m.hwm),
            m.load,
            if consistent {
                format!(
                    "same `{}…`",
                    m.digests.first().map_or("", |d| &d[..d.len().min(12)])
                )
            } else {
                "**DIFFER**".to_string()
            }
        );
    }
    s.push('\n');
}

fn render_extra(s: &mut String, e: &[(String, Measured, Measured)]) {
    let _ = writeln!(s, "## Tracing overhead, metering and memory styles\n");
    let _ = writeln!(
        s,
        "Same T for both columns, W = 1, medians; the runs of A and B alternate (A, B, A, B, \
         ...), so a slow spell of the machine falls on both. Tracing target: at most 10 \
         percent.\n"
    );
    let _ = writeln!(
        s,
        "| what | workload | N | T | A | rate A | B | rate B | B/A | p99 A | p99 B |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---|---:|---|---:|---:|---:|---:|");
    for (what, a, b) in e {
        let name = |m: &Measured| {
            if m.label.is_empty() {
                "traced".to_string()
            } else {
                format!("`{}`", m.label)
            }
        };
        let _ = writeln!(
            s,
            "| {what} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.3} ms | {:.3} ms |",
            a.workload,
            a.agents,
            a.ticks,
            name(a),
            rate_text(a.rate),
            name(b),
            rate_text(b.rate),
            b.rate / a.rate,
            a.p99,
            b.p99
        );
    }
    let _ = writeln!(
        s,
        "\nTracing overhead = 1 - rate(traced) / rate(`--no-trace`) = 1 - 1/(B/A) for the \
         tracing rows. Metering rows: A is fuel by region (what runs use), B a check per basic \
         block (`--metering blocks`, the wasmer-middlewares scheme) or no metering at all \
         (`--metering off`, measurement only); what metering costs = 1 - 1/(B/A) against \
         `off`.\n"
    );
}

fn render_scale(s: &mut String, sc: &Scale) {
    let _ = writeln!(s, "## Scale: {SCALE_AGENTS} agents in one process\n");
    let _ = writeln!(
        s,
        "Idle: `ring --ticks 1 --no-trace`; peak resident set (VmHWM) and most memory \
         mappings seen, polled from `/proc` every 10 ms (mappings every 200 ms). Resident \
         memory per idle agent is the slope between the two largest N.\n"
    );
    let _ = writeln!(s, "| N | init | peak RSS | RSS / agent | mappings |");
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|");
    for m in &sc.idle {
        let _ = writeln!(
            s,
            "| {} | {:.3} s | {} | {:.1} KiB | {} |",
            m.agents,
            m.init_s,
            mib(m.hwm),
            m.hwm as f64 / 1024.0 / f64::from(m.agents),
            m.maps
        );
    }
    if let [.., a, b] = sc.idle.as_slice() {
        let slope = (b.hwm as f64 - a.hwm as f64) / f64::from(b.agents - a.agents) / 1024.0;
        let _ = writeln!(
            s,
            "\nResident memory per idle agent (slope {} → {}): **{slope:.1} KiB**.\n",
            a.agents, b.agents
        );
    }
    let _ = writeln!(
        s,
        "| ring N | W | T | rate | p50 tick | p99 tick | init | peak RSS | mappings | load |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for m in &sc.runs {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} msgs/s | {:.2} ms | {:.2} ms | {:.2} s | {} | {} | {} |",
            m.agents,
            m.workers,
            m.ticks,
            rate_text(m.rate),
            m.p50,
            m.p99,
            m.init_s,
            mib(m.hwm),
            m.maps,
            m.load
        );
    }
    s.push('\n');
}

fn render_criterion(s: &mut String, c: &CritResults) {
    let _ = writeln!(s, "## All criterion results\n");
    let _ = writeln!(s, "| bench | median | per element / byte rate |");
    let _ = writeln!(s, "|---|---:|---:|");
    for crit in c.results.values() {
        let per = match &crit.throughput {
            Some((kind, n)) if kind == "Bytes" || kind == "BytesDecimal" => {
                format!("{:.2} GB/s", n / crit.median_ns)
            }
            Some((_, n)) if *n > 0.0 => ns_text(crit.median_ns / n),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "| `{}` | {} | {} |",
            crit.id,
            ns_text(crit.median_ns),
            per
        );
    }
    s.push('\n');
}
