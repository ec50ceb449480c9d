//! Benchmark: the `ring` workload with and without an attached UI.
//!
//! ```text
//! cargo run --release -p we-ui --example ring-observe -- \
//!     [--agents 10000] [--ticks 200] [--workers 2] [--runs 3] [--no-trace]
//! ```
//!
//! Runs the ring `--runs` times without an observer and `--runs` times with a
//! [`we_observe::WsObserver`] and a UI process attached to it (this example
//! started again as `--ui-child`, which runs `we_ui::run`), alternating, and
//! prints one JSON line per run and a summary: the digests must be identical
//! and the tick times the same within noise. The scenario is the one of
//! `we bench-workload --workload ring` (seed 0, trace on by default).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use we_observe::WsObserver;
use we_replay::FsyncPolicy;
use we_runtime::{RunOptions, Scenario};

struct Args {
    agents: u32,
    ticks: u64,
    workers: usize,
    runs: usize,
    trace: bool,
}

fn parse() -> Args {
    let mut a = Args {
        agents: 10_000,
        ticks: 200,
        workers: 2,
        runs: 3,
        trace: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut v = || it.next().expect("a value");
        match flag.as_str() {
            "--agents" => a.agents = v().parse().unwrap(),
            "--ticks" => a.ticks = v().parse().unwrap(),
            "--workers" => a.workers = v().parse().unwrap(),
            "--runs" => a.runs = v().parse().unwrap(),
            "--no-trace" => a.trace = false,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn agents_dir() -> PathBuf {
    std::env::var_os("WE_AGENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../build/agents"))
}

fn scenario(a: &Args) -> Scenario {
    let module = std::fs::canonicalize(agents_dir().join("ring.wasm"))
        .expect("build/agents/ring.wasm (run `cargo xtask build-agents`)");
    let text = format!(
        "seed = 0\nticks = {}\n[limits]\nmailbox_capacity = {}\n[[agents]]\nname = \"ring\"\nmodule = {module:?}\ncount = {}\n",
        a.ticks,
        a.agents.max(4096),
        a.agents
    );
    Scenario::parse("bench-workload", text.as_bytes(), PathBuf::new()).unwrap()
}

/// The UI process: this example again, as `--ui-child ENDPOINT`.
struct Ui {
    child: Child,
    page: SocketAddr,
}

impl Ui {
    fn start(endpoint: SocketAddr) -> Ui {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ui-child", &endpoint.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let page = line
            .trim()
            .trim_start_matches("we ui: serving http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        Ui { child, page }
    }

    fn state(&self) -> String {
        let mut s = TcpStream::connect(self.page).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let body = reply.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["state"].as_str().unwrap_or("").to_string()
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Outcome {
    digest: String,
    /// The runtime's own tick time (it stops the clock before publishing).
    mean_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Wall time of each `step()`, publishing included.
    step_mean_ms: f64,
    step_p50_ms: f64,
    /// Seconds spent stepping.
    ticks_s: f64,
    /// CPU seconds of the observer's server thread and of the UI process
    /// while the ticks ran.
    observer_cpu_s: f64,
    ui_cpu_s: f64,
}

/// CPU seconds (user + system) from a `/proc/.../stat` line.
fn stat_cpu_s(stat: &str) -> f64 {
    // Fields after the `(comm)`: state is field 3; utime, stime are 14, 15.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// CPU seconds of this process's threads named `we-observe*`.
fn observer_cpu_s() -> f64 {
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with("we-observe") {
            total +=
                stat_cpu_s(&std::fs::read_to_string(task.path().join("stat")).unwrap_or_default());
        }
    }
    total
}

fn process_cpu_s(pid: u32) -> f64 {
    stat_cpu_s(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

fn run_once(a: &Args, with_ui: bool) -> Outcome {
    let options = RunOptions {
        workers: Some(a.workers),
        ..RunOptions::default()
    };
    let mut runtime = we_cli::build(scenario(a), options).unwrap();
    let trace = std::env::temp_dir().join(format!("we-ring-observe-{}.trace", std::process::id()));
    if a.trace {
        we_cli::record_to(&mut runtime, &trace, FsyncPolicy::Never).unwrap();
    }
    let mut ui = None;
    if with_ui {
        let obs = WsObserver::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let endpoint = obs.local_addr();
        runtime.set_observer(Box::new(obs));
        let started = Ui::start(endpoint);
        let deadline = Instant::now() + Duration::from_secs(30);
        while started.state() != "attached" {
            assert!(Instant::now() < deadline, "the UI did not attach");
            std::thread::sleep(Duration::from_millis(20));
        }
        ui = Some(started);
    }
    // Instantiation and `agent_init` are not what is measured.
    runtime.start().unwrap();
    let cpu0 = (
        observer_cpu_s(),
        ui.as_ref().map_or(0.0, |u| process_cpu_s(u.child.id())),
    );
    let began = Instant::now();
    let mut step_ns = Vec::with_capacity(a.ticks as usize);
    while !runtime.finished() {
        let at = Instant::now();
        runtime.step().unwrap();
        step_ns.push(at.elapsed().as_nanos() as f64);
    }
    let ticks_s = began.elapsed().as_secs_f64();
    let cpu1 = (
        observer_cpu_s(),
        ui.as_ref().map_or(0.0, |u| process_cpu_s(u.child.id())),
    );
    let summary = runtime.run(|_| {}).unwrap();
    if let Some(ui) = &ui {
        assert_eq!(ui.state(), "running", "the UI followed the run to its end");
    }
    drop(ui);
    let _ = std::fs::remove_file(&trace);
    let times = runtime.tick_times();
    let mean_ms = times.ns.iter().sum::<u64>() as f64 / times.ns.len().max(1) as f64 / 1e6;
    let step_mean_ms = step_ns.iter().sum::<f64>() / step_ns.len().max(1) as f64 / 1e6;
    Outcome {
        digest: we_cli::hex(&summary.workload_digest),
        mean_ms,
        p50_ms: times.quantile_ms(0.5),
        p99_ms: times.quantile_ms(0.99),
        step_mean_ms,
        step_p50_ms: median(step_ns) / 1e6,
        ticks_s,
        observer_cpu_s: cpu1.0 - cpu0.0,
        ui_cpu_s: cpu1.1 - cpu0.1,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--ui-child") {
        let connect = args.next().unwrap().parse().unwrap();
        we_ui::run(we_ui::UiOptions {
            connect: Some(connect),
            listen: "127.0.0.1:0".parse().unwrap(),
            trace: None,
        })
        .unwrap();
        return;
    }
    let a = parse();
    let mut plain = Vec::new();
    let mut observed = Vec::new();
    for i in 0..a.runs {
        for with_ui in [false, true] {
            let o = run_once(&a, with_ui);
            println!(
                "{}",
                serde_json::json!({
                    "run": i, "ui": with_ui, "agents": a.agents, "ticks": a.ticks,
                    "workers": a.workers, "trace": a.trace, "ticks_s": o.ticks_s,
                    "tick_mean_ms": o.mean_ms, "p50_ms": o.p50_ms, "p99_ms": o.p99_ms,
                    "step_mean_ms": o.step_mean_ms, "step_p50_ms": o.step_p50_ms,
                    "observer_cpu_s": o.observer_cpu_s, "ui_cpu_s": o.ui_cpu_s,
                    "digest": o.digest,
                })
            );
            if with_ui {
                observed.push(o);
            } else {
                plain.push(o);
            }
        }
    }
    let same = plain
        .iter()
        .chain(&observed)
        .all(|o| o.digest == plain[0].digest);
    let m = |v: &[Outcome], f: fn(&Outcome) -> f64| median(v.iter().map(f).collect());
    let (p50_a, p50_b) = (m(&plain, |o| o.p50_ms), m(&observed, |o| o.p50_ms));
    let (mean_a, mean_b) = (m(&plain, |o| o.mean_ms), m(&observed, |o| o.mean_ms));
    println!(
        "{}",
        serde_json::json!({
            "summary": true,
            "digests_identical": same,
            "median_p50_ms": { "without_ui": p50_a, "with_ui": p50_b,
                "change_pct": (p50_b / p50_a - 1.0) * 100.0 },
            "median_tick_mean_ms": { "without_ui": mean_a, "with_ui": mean_b,
                "change_pct": (mean_b / mean_a - 1.0) * 100.0 },
            "median_p99_ms": { "without_ui": m(&plain, |o| o.p99_ms),
                "with_ui": m(&observed, |o| o.p99_ms) },
            "median_step_mean_ms": { "without_ui": m(&plain, |o| o.step_mean_ms),
                "with_ui": m(&observed, |o| o.step_mean_ms),
                "change_pct": (m(&observed, |o| o.step_mean_ms) / m(&plain, |o| o.step_mean_ms) - 1.0) * 100.0 },
            "median_ticks_s": { "without_ui": m(&plain, |o| o.ticks_s),
                "with_ui": m(&observed, |o| o.ticks_s) },
            "median_cpu_s_with_ui": { "observer_thread": m(&observed, |o| o.observer_cpu_s),
                "ui_process": m(&observed, |o| o.ui_cpu_s) },
        })
    );
    assert!(same, "digests differ");
}
