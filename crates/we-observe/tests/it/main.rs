//! Integration tests of the observer endpoint: real sockets on 127.0.0.1, real
//! WebSocket clients, badly behaved ones included. Every wait is bounded.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};
use we_core::{AgentId, FaultKind, Snapshot, StateObserver};
use we_observe::{Frame, ObserveConfig, WsObserver};

type Client = WebSocket<MaybeTlsStream<TcpStream>>;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn snapshot(tick: u64) -> Snapshot {
    Snapshot {
        tick,
        agent_count: 16,
        faulted: vec![(AgentId::new(5), FaultKind::FuelExhausted)],
        messages_last_tick: 16,
        messages_total: 16 * (tick + 1),
        tick_time_ns: 1_000 + tick,
        fuel_last_tick: 0,
        mailbox_depth_max: 1,
        chain_head: [tick as u8; 32],
        log_tail: vec![format!("line {tick}")],
        regions: Vec::new(),
    }
}

fn connect(addr: SocketAddr) -> Client {
    let (ws, _) = tungstenite::connect(format!("ws://{addr}/")).expect("handshake");
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    ws
}

/// Reads frames until one satisfies `done`, within `limit`.
fn read_until(ws: &mut Client, limit: Duration, mut done: impl FnMut(&Frame) -> bool) -> Frame {
    let deadline = Instant::now() + limit;
    loop {
        assert!(Instant::now() < deadline, "no matching frame in {limit:?}");
        match ws.read().expect("read a frame") {
            Message::Text(text) => {
                let frame: Frame = serde_json::from_str(&text).expect("a Frame");
                if done(&frame) {
                    return frame;
                }
            }
            Message::Close(_) => panic!("closed before a matching frame"),
            _ => {}
        }
    }
}

fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "condition not met in {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_client_gets_the_newest_snapshot_and_every_tick_sample() {
    let mut obs = WsObserver::bind(loopback()).unwrap();
    let mut ws = connect(obs.local_addr());
    for t in 0..50 {
        obs.publish(&snapshot(t));
    }
    // Messages may coalesce ticks; together they carry every tick's sample.
    let mut ticks: Vec<u64> = Vec::new();
    let first = read_until(&mut ws, Duration::from_secs(5), |f| {
        for s in &f.samples {
            if ticks.last().is_none_or(|&l| s.tick > l) {
                ticks.push(s.tick);
            }
        }
        f.tick == 49
    });
    assert_eq!(first.agent_count, 16);
    assert_eq!(first.faulted.len(), 1);
    assert_eq!(first.faulted[0].agent, 5);
    assert_eq!(first.faulted[0].kind, "fuel_exhausted");
    assert_eq!(first.chain_head, "31".repeat(32));
    assert_eq!(first.log_tail, vec!["line 49".to_string()]);
    assert_eq!(ticks, (0..50).collect::<Vec<_>>(), "all samples, in order");
    // Later messages carry only the new ticks.
    for t in 50..60 {
        obs.publish(&snapshot(t));
    }
    let next = read_until(&mut ws, Duration::from_secs(5), |f| f.tick == 59);
    assert!(
        next.samples.iter().all(|s| s.tick >= 50),
        "{:?}",
        next.samples
    );
    assert_eq!(next.samples.last().map(|s| s.tick_time_ns), Some(1_059));
}

#[test]
fn a_late_client_gets_the_recent_history_first() {
    let mut obs = WsObserver::bind(loopback()).unwrap();
    for t in 0..2000 {
        obs.publish(&snapshot(t));
    }
    let mut ws = connect(obs.local_addr());
    let first = read_until(&mut ws, Duration::from_secs(5), |_| true);
    assert_eq!(first.tick, 1999);
    assert_eq!(first.published, 2000);
    assert!(!first.samples.is_empty());
    assert_eq!(first.samples.last().map(|s| s.tick), Some(1999));
}

#[test]
fn connections_over_the_limit_are_refused() {
    let config = ObserveConfig {
        max_clients: 2,
        ..ObserveConfig::default()
    };
    let mut obs = WsObserver::bind_with(loopback(), config).unwrap();
    obs.publish(&snapshot(0));
    let addr = obs.local_addr();
    let mut a = connect(addr);
    let mut b = connect(addr);
    read_until(&mut a, Duration::from_secs(5), |_| true);
    read_until(&mut b, Duration::from_secs(5), |_| true);
    let third = tungstenite::connect(format!("ws://{addr}/"));
    match third {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        Err(e) => panic!("expected a 503, got {e}"),
        Ok(_) => panic!("a third client was let in"),
    }
    assert_eq!(obs.stats().refused, 1);
    // Once one leaves, a new one gets in.
    drop(a);
    wait_for(Duration::from_secs(5), || obs.stats().clients == 1);
    let mut c = connect(addr);
    read_until(&mut c, Duration::from_secs(5), |_| true);
}

#[test]
fn a_stuck_client_never_delays_publish_and_is_dropped() {
    let config = ObserveConfig {
        stall_timeout: Duration::from_millis(300),
        send_interval: Duration::from_millis(1),
        poll_interval: Duration::from_millis(1),
        ..ObserveConfig::default()
    };
    let mut obs = WsObserver::bind_with(loopback(), config).unwrap();
    let addr = obs.local_addr();
    // A client that completes the handshake and then never reads.
    let stuck = connect(addr);
    // A well-behaved one, reading on its own thread until the final tick.
    const FINAL: u64 = 1_000_000;
    let mut good = connect(addr);
    let reader = std::thread::spawn(move || {
        read_until(&mut good, Duration::from_secs(20), |f| f.tick == FINAL).tick
    });
    // Big snapshots fill the stuck client's socket quickly.
    let big = "x".repeat(16 << 10);
    let mut slowest = Duration::ZERO;
    let began = Instant::now();
    let mut t = 0;
    while began.elapsed() < Duration::from_secs(2) {
        let mut s = snapshot(t);
        s.log_tail = vec![big.clone(); 4];
        let at = Instant::now();
        obs.publish(&s);
        slowest = slowest.max(at.elapsed());
        t += 1;
        std::thread::sleep(Duration::from_micros(500));
    }
    // Publishing is a copy and an atomic swap; even on a loaded machine it is
    // far below this bound, which only a blocking publish would exceed.
    assert!(
        slowest < Duration::from_millis(100),
        "slowest publish {slowest:?}"
    );
    wait_for(Duration::from_secs(5), || obs.stats().stalled >= 1);
    // The good client still gets the newest tick.
    obs.publish(&snapshot(FINAL));
    assert_eq!(reader.join().unwrap(), FINAL);
    assert_eq!(obs.stats().stalled, 1, "only the stuck client was dropped");
    drop(stuck);
}

#[test]
fn a_killed_client_is_forgotten() {
    let mut obs = WsObserver::bind(loopback()).unwrap();
    obs.publish(&snapshot(0));
    let mut ws = connect(obs.local_addr());
    read_until(&mut ws, Duration::from_secs(5), |_| true);
    wait_for(Duration::from_secs(5), || obs.stats().clients == 1);
    // Vanish without a close handshake, as a killed process does.
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.shutdown(std::net::Shutdown::Both).unwrap();
    }
    drop(ws);
    for t in 1..100 {
        obs.publish(&snapshot(t));
        std::thread::sleep(Duration::from_millis(2));
    }
    wait_for(Duration::from_secs(5), || obs.stats().clients == 0);
}

#[test]
fn inbound_data_is_ignored_and_oversized_input_only_costs_its_sender() {
    let mut obs = WsObserver::bind(loopback()).unwrap();
    let addr = obs.local_addr();
    let mut chatty = connect(addr);
    let mut rude = connect(addr);
    chatty.send(Message::text("hello")).unwrap();
    chatty.send(Message::binary(vec![1u8; 100])).unwrap();
    rude.send(Message::binary(vec![0u8; 1 << 20])).unwrap_or(());
    for t in 0..10 {
        obs.publish(&snapshot(t));
    }
    let f = read_until(&mut chatty, Duration::from_secs(5), |f| f.tick == 9);
    assert_eq!(f.agent_count, 16);
    wait_for(Duration::from_secs(5), || obs.stats().clients == 1);
}

#[test]
fn pages_from_other_origins_are_refused() {
    let obs = WsObserver::bind(loopback()).unwrap();
    let addr = obs.local_addr();
    let mut request =
        tungstenite::client::IntoClientRequest::into_client_request(format!("ws://{addr}/"))
            .unwrap();
    request
        .headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    match tungstenite::connect(request) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        Err(e) => panic!("expected a 403, got {e}"),
        Ok(_) => panic!("a foreign origin was let in"),
    }
    let mut request =
        tungstenite::client::IntoClientRequest::into_client_request(format!("ws://{addr}/"))
            .unwrap();
    request
        .headers_mut()
        .insert("Origin", "http://127.0.0.1:8080".parse().unwrap());
    assert!(tungstenite::connect(request).is_ok());
}

#[test]
fn dropping_the_observer_sends_the_last_snapshot_and_closes() {
    let config = ObserveConfig {
        send_interval: Duration::from_secs(3600),
        ..ObserveConfig::default()
    };
    let mut obs = WsObserver::bind_with(loopback(), config).unwrap();
    let mut ws = connect(obs.local_addr());
    obs.publish(&snapshot(0));
    read_until(&mut ws, Duration::from_secs(5), |f| f.tick == 0);
    // The send interval holds this one back; dropping flushes it.
    obs.publish(&snapshot(1));
    drop(obs);
    read_until(&mut ws, Duration::from_secs(5), |f| f.tick == 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no close");
        match ws.read() {
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

#[test]
fn a_plain_http_request_is_answered_and_closed() {
    let obs = WsObserver::bind(loopback()).unwrap();
    let mut s = TcpStream::connect(obs.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    // Not a WebSocket upgrade: the handshake fails and the socket is closed
    // (with or without an error reply); the endpoint serves nothing else.
    let text = String::from_utf8_lossy(&reply);
    assert!(!text.contains("101 Switching"), "{text}");
}
