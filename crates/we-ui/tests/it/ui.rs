//! The UI end to end: browser tests of the live page and the trace scrubber,
//! killing the UI mid-run, attaching and detaching, the command line.

use crate::browser::node;
use crate::process::{Proc, get_json, http_get, spawn_ui, wait_for};
use crate::{MIXED_EXTRA_AGENTS, MIXED_FAULTS, build, mixed_scenario};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use we_core::{Snapshot, StateObserver};
use we_observe::WsObserver;
use we_replay::FsyncPolicy;
use we_runtime::{RunSummary, Runtime};

fn loopback0() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn observe(rt: &mut Runtime) -> SocketAddr {
    let obs = WsObserver::bind(loopback0()).unwrap();
    let addr = obs.local_addr();
    rt.set_observer(Box::new(obs));
    addr
}

/// Steps `rt` with a pause after each tick until `node` ends; returns its
/// status. Fails if the run ends first or after `limit`.
fn step_while_running(rt: &mut Runtime, node: &mut Proc, pause: Duration, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = node.try_status() {
            assert!(
                status.success(),
                "browser check failed: {status}\n{}",
                node.output()
            );
            return;
        }
        assert!(!rt.finished(), "the run ended before the browser check did");
        assert!(
            Instant::now() < deadline,
            "browser check still running after {limit:?}\n{}",
            node.output()
        );
        rt.step().unwrap();
        std::thread::sleep(pause);
    }
}

/// `UPDATE_SCREENSHOT=1` refreshes docs/ui.png from the live-page test.
fn update_screenshot() -> bool {
    std::env::var_os("UPDATE_SCREENSHOT").is_some()
}

fn docs_png() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/ui.png")
}

#[test]
fn the_page_shows_the_agent_count_and_an_advancing_tick() {
    let ring = 500;
    let agents = ring + MIXED_EXTRA_AGENTS;
    let dir = tempfile::tempdir().unwrap();
    let mut rt = build(mixed_scenario(ring, 1_000_000));
    // With a trace, so the page has a chain head to show.
    we_cli::record_to(&mut rt, &dir.path().join("live.trace"), FsyncPolicy::Never).unwrap();
    let ws = observe(&mut rt);
    // A few ticks first, so the faults are there when the page opens.
    for _ in 0..20 {
        rt.step().unwrap();
    }
    let (_ui, page) = spawn_ui(&["--connect", &ws.to_string()]);
    let shot = dir.path().join("ui.png");
    let mut browser = node(
        "live",
        &format!("http://{page}/"),
        &[
            format!("agents={agents}"),
            format!("screenshot={}", shot.display()),
            // For docs/ui.png, long enough that the charts show a steady run
            // rather than the browser's own start-up.
            if update_screenshot() {
                "settle_ms=9000".into()
            } else {
                "settle_ms=1000".into()
            },
        ],
    );
    step_while_running(
        &mut rt,
        &mut browser,
        Duration::from_millis(15),
        Duration::from_secs(150),
    );
    let out = browser.output();
    assert!(out.contains("TICKS "), "{out}");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    if update_screenshot() {
        std::fs::write(docs_png(), &png).unwrap();
    }
    // The page's numbers are the run's.
    let live = get_json(page, "/api/live");
    assert_eq!(live["frame"]["agent_count"], agents);
    assert_eq!(
        live["frame"]["faulted"].as_array().unwrap().len(),
        MIXED_FAULTS
    );
}

fn run_to_end(rt: &mut Runtime) -> RunSummary {
    rt.run(|_| {}).unwrap()
}

#[test]
fn killing_the_ui_mid_run_leaves_the_run_and_its_digest_unchanged() {
    const TICKS: u64 = 600;
    let dir = tempfile::tempdir().unwrap();
    let baseline = {
        let mut rt = build(mixed_scenario(64, TICKS));
        we_cli::record_to(&mut rt, &dir.path().join("a.trace"), FsyncPolicy::Never).unwrap();
        run_to_end(&mut rt)
    };

    let mut rt = build(mixed_scenario(64, TICKS));
    we_cli::record_to(&mut rt, &dir.path().join("b.trace"), FsyncPolicy::Never).unwrap();
    let ws = observe(&mut rt);
    let (mut ui, page) = spawn_ui(&["--connect", &ws.to_string()]);
    let mut browser = node("kill", &format!("http://{page}/"), &["agents=74".into()]);
    let mut killed_at = None;
    let deadline = Instant::now() + Duration::from_secs(150);
    while !rt.finished() {
        let t = rt.step().unwrap();
        if killed_at.is_none() {
            // Keep the run going slowly until the page is attached, and make
            // sure the kill lands well before the end.
            let ready = if t + 100 >= TICKS {
                Some(browser.wait_line("ATTACHED", Duration::from_secs(120)))
            } else {
                browser.try_line("ATTACHED")
            };
            if ready.is_some() {
                ui.kill();
                killed_at = Some(t);
            } else {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        assert!(Instant::now() < deadline, "the run took too long");
    }
    let killed_at = killed_at.unwrap();
    assert!(
        killed_at + 100 <= TICKS,
        "killed at {killed_at}, not mid-run"
    );
    let summary = run_to_end(&mut rt);
    assert_eq!(summary.ticks, TICKS);
    assert_eq!(
        summary.workload_digest, baseline.workload_digest,
        "digest with a killed UI"
    );
    assert_eq!(summary.chain_head, baseline.chain_head, "trace chain head");
    // The page noticed the UI was gone rather than hanging.
    let status = browser.finish(Duration::from_secs(60));
    assert!(status.success(), "{}", browser.output());
    assert!(browser.output().contains("OFFLINE"), "{}", browser.output());
}

#[test]
fn a_finished_trace_can_be_scrubbed_in_the_browser() {
    const TICKS: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.trace");
    let mut rt = build(mixed_scenario(32, TICKS));
    we_cli::record_to(&mut rt, &path, FsyncPolicy::Never).unwrap();
    let summary = run_to_end(&mut rt);
    assert_eq!(summary.faults.len(), MIXED_FAULTS);

    let (_ui, page) = spawn_ui(&["--trace", path.to_str().unwrap()]);
    let t = get_json(page, "/api/trace");
    assert_eq!(t["count"], TICKS);
    assert_eq!(
        t["chain_head"].as_str().unwrap(),
        we_cli::hex(&summary.chain_head)
    );
    let last = get_json(page, &format!("/api/trace/tick?i={}", TICKS - 1));
    assert_eq!(last["faulted"].as_array().unwrap().len(), MIXED_FAULTS);
    assert_eq!(last["agent_count"], 32 + MIXED_EXTRA_AGENTS);
    assert_eq!(http_get(page, "/api/trace/tick?i=40").0, 404);

    let mut browser = node(
        "trace",
        &format!("http://{page}/"),
        &[format!("ticks={TICKS}"), format!("faulted={MIXED_FAULTS}")],
    );
    let status = browser.finish(Duration::from_secs(120));
    assert!(status.success(), "{}", browser.output());
    assert!(
        browser.output().contains("SCRUBBED"),
        "{}",
        browser.output()
    );
}

fn snapshot(tick: u64, agents: u32) -> Snapshot {
    Snapshot {
        tick,
        agent_count: agents,
        messages_last_tick: u64::from(agents),
        tick_time_ns: 100_000,
        ..Snapshot::default()
    }
}

/// A free loopback port (bound, then released).
fn free_port() -> SocketAddr {
    TcpListener::bind(loopback0())
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn the_ui_attaches_and_detaches_as_runs_come_and_go() {
    let endpoint = free_port();
    // The UI starts before any run.
    let (_ui, page) = spawn_ui(&["--connect", &endpoint.to_string()]);
    // A second UI, to be killed while the first goes on.
    let (mut other, other_page) = spawn_ui(&["--connect", &endpoint.to_string()]);
    assert_eq!(get_json(page, "/api/live")["state"], "waiting");

    let state = |page| get_json(page, "/api/live");
    {
        let mut run = WsObserver::bind(endpoint).unwrap();
        let mut t = 0;
        let mut publish_until = |what: &str, cond: &mut dyn FnMut() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !cond() {
                assert!(Instant::now() < deadline, "{what}");
                run.publish(&snapshot(t, 12));
                t += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        publish_until("both UIs attach", &mut || {
            state(page)["state"] == "running" && state(other_page)["state"] == "running"
        });
        other.kill();
        let before = state(page)["frame"]["tick"].as_u64().unwrap();
        publish_until("the first UI goes on", &mut || {
            state(page)["frame"]["tick"].as_u64().unwrap() > before + 20
        });
        let v = state(page);
        assert_eq!(v["frame"]["agent_count"], 12);
        assert_eq!(v["attaches"], 1);
        assert!(v["series"]["tick"].as_array().unwrap().len() > 20);
    }
    // The run ended (observer dropped): the UI says so and keeps the last state.
    wait_for("the UI sees the run end", Duration::from_secs(10), || {
        state(page)["state"] == "ended"
    });
    assert_eq!(state(page)["frame"]["agent_count"], 12);

    // A new run on the same endpoint: the UI follows it, history reset.
    let mut run = WsObserver::bind(endpoint).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut t = 0;
    loop {
        run.publish(&snapshot(t, 7));
        t += 1;
        std::thread::sleep(Duration::from_millis(10));
        let v = state(page);
        if v["attaches"] == 2 && v["frame"]["agent_count"] == 7 {
            assert_eq!(v["state"], "running");
            break;
        }
        assert!(Instant::now() < deadline, "no second attach: {v}");
    }
}

#[test]
fn the_command_line_refuses_what_it_cannot_serve() {
    let ui = env!("CARGO_BIN_EXE_we-ui");
    let out = Command::new(ui).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to show"),
        "{out:?}"
    );
    let out = Command::new(ui)
        .args(["--connect", "127.0.0.1:9", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loopback"),
        "{out:?}"
    );
    let out = Command::new(ui)
        .args(["--trace", "/nonexistent/run.trace"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("opening trace"),
        "{out:?}"
    );
    let out = Command::new(ui).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--connect"));
}
