//! Live mode: a client of the observer endpoint that keeps the newest state.
//!
//! A thread connects to `we run --observe ADDR`, reads [`Frame`]s and folds them
//! into [`Live`]; when the run ends or is not there yet, it retries, so the UI
//! can be started before, during or after a run and follows the next one. The
//! page reads [`Live::view`] through the HTTP server. Nothing here can reach
//! the run: the observer only ever sends.

use crate::stats::{TICK_WINDOW, rolling_quantile};
use serde::Serialize;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tungstenite::Message;
use we_observe::{Fault, Frame, Grid, TickSample};

/// Ticks of history the UI keeps.
pub const KEPT_TICKS: usize = 4096;
/// Ticks the charts show.
pub const CHART_TICKS: usize = 300;
/// A run that sent nothing for this long is shown as idle.
const IDLE_AFTER: Duration = Duration::from_millis(1500);
/// Wait between connection attempts.
const RETRY_EVERY: Duration = Duration::from_millis(300);
/// How long a connection attempt or handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one blocking read waits before the thread looks around again.
const READ_TIMEOUT: Duration = Duration::from_millis(500);
/// Largest message accepted from the observer.
const MAX_FRAME_BYTES: usize = 64 << 20;

/// The connection to the observer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// Trying to connect (no run, or not yet).
    Connecting,
    /// Connected and reading.
    Connected,
}

/// What the UI knows of the live run.
#[derive(Debug)]
pub struct Live {
    endpoint: SocketAddr,
    link: Link,
    /// Successful connections so far (a new one is a new attach or a new run).
    attaches: u64,
    last_error: Option<String>,
    frame: Option<Frame>,
    frame_at: Option<Instant>,
    samples: VecDeque<TickSample>,
}

impl Live {
    /// Nothing known yet about the run at `endpoint`.
    pub fn new(endpoint: SocketAddr) -> Live {
        Live {
            endpoint,
            link: Link::Connecting,
            attaches: 0,
            last_error: None,
            frame: None,
            frame_at: None,
            samples: VecDeque::with_capacity(KEPT_TICKS),
        }
    }

    /// A new connection: the history may belong to another run, so forget it.
    pub fn attached(&mut self) {
        self.link = Link::Connected;
        self.attaches += 1;
        self.last_error = None;
        self.samples.clear();
        self.frame = None;
        self.frame_at = None;
    }

    /// The connection ended (or could not be made), with why.
    pub fn detached(&mut self, why: String) {
        self.link = Link::Connecting;
        self.last_error = Some(why);
    }

    /// Folds in one message: the newest snapshot replaces the old one and its
    /// samples extend the history (a sample at or before the newest known tick
    /// is a repeat, unless the ticks went back: then it is a new run).
    pub fn apply(&mut self, mut frame: Frame, now: Instant) {
        let went_back = self.frame.as_ref().is_some_and(|f| frame.tick < f.tick);
        if went_back {
            self.samples.clear();
        }
        for sample in frame.samples.drain(..) {
            if self.samples.back().is_some_and(|s| sample.tick <= s.tick) {
                continue;
            }
            if self.samples.len() == KEPT_TICKS {
                self.samples.pop_front();
            }
            self.samples.push_back(sample);
        }
        self.frame = Some(frame);
        self.frame_at = Some(now);
    }

    /// What the page shows, as of `now`.
    pub fn view(&self, now: Instant) -> LiveView<'_> {
        let since = self.frame_at.map(|at| now.saturating_duration_since(at));
        let state = match (self.link, since) {
            (Link::Connecting, None) => "waiting",
            (Link::Connecting, Some(_)) => "ended",
            (Link::Connected, None) => "attached",
            (Link::Connected, Some(d)) if d > IDLE_AFTER => "idle",
            (Link::Connected, Some(_)) => "running",
        };
        let start = self.samples.len().saturating_sub(CHART_TICKS + TICK_WINDOW);
        let recent: Vec<&TickSample> = self.samples.iter().skip(start).collect();
        let tick_ms: Vec<f64> = recent.iter().map(|s| s.tick_time_ns as f64 / 1e6).collect();
        let p50 = rolling_quantile(&tick_ms, TICK_WINDOW, 0.5);
        let p99 = rolling_quantile(&tick_ms, TICK_WINDOW, 0.99);
        let shown = recent.len().saturating_sub(CHART_TICKS);
        let window = &recent[recent.len().saturating_sub(TICK_WINDOW)..];
        let window_ns: u64 = window.iter().map(|s| s.tick_time_ns).sum();
        let window_messages: u64 = window.iter().map(|s| s.messages).sum();
        LiveView {
            mode: "live",
            endpoint: self.endpoint.to_string(),
            link: self.link,
            state,
            attaches: self.attaches,
            last_error: self.last_error.as_deref(),
            since_last_ms: since.map(|d| d.as_millis() as u64),
            frame: self.frame.as_ref().map(|f| FrameView {
                tick: f.tick,
                agent_count: f.agent_count,
                faulted: &f.faulted,
                messages_last_tick: f.messages_last_tick,
                messages_total: f.messages_total,
                tick_time_ns: f.tick_time_ns,
                fuel_last_tick: f.fuel_last_tick,
                mailbox_depth_max: f.mailbox_depth_max,
                chain_head: &f.chain_head,
                log_tail: &f.log_tail,
                grids: &f.grids,
            }),
            stats: Stats {
                window: window.len(),
                p50_ms: p50.last().copied().unwrap_or(0.0),
                p99_ms: p99.last().copied().unwrap_or(0.0),
                messages_per_tick: if window.is_empty() {
                    0.0
                } else {
                    window_messages as f64 / window.len() as f64
                },
                messages_per_s: if window_ns == 0 {
                    0.0
                } else {
                    window_messages as f64 * 1e9 / window_ns as f64
                },
                ticks_per_s: if window_ns == 0 {
                    0.0
                } else {
                    window.len() as f64 * 1e9 / window_ns as f64
                },
            },
            series: Series {
                tick: recent.iter().skip(shown).map(|s| s.tick).collect(),
                tick_ms: tick_ms.iter().skip(shown).copied().collect(),
                p50_ms: p50.iter().skip(shown).copied().collect(),
                p99_ms: p99.iter().skip(shown).copied().collect(),
                messages: recent.iter().skip(shown).map(|s| s.messages).collect(),
                mailbox_depth_max: recent
                    .iter()
                    .skip(shown)
                    .map(|s| s.mailbox_depth_max)
                    .collect(),
                fuel: recent.iter().skip(shown).map(|s| s.fuel).collect(),
            },
        }
    }
}

/// The JSON of `/api/live`.
#[derive(Debug, Serialize)]
pub struct LiveView<'a> {
    mode: &'static str,
    endpoint: String,
    link: Link,
    /// `waiting` (never connected), `attached` (no tick yet), `running`,
    /// `idle` (connected, no new tick lately), `ended` (the run went away).
    state: &'static str,
    attaches: u64,
    last_error: Option<&'a str>,
    since_last_ms: Option<u64>,
    frame: Option<FrameView<'a>>,
    stats: Stats,
    series: Series,
}

#[derive(Debug, Serialize)]
struct FrameView<'a> {
    tick: u64,
    agent_count: u32,
    faulted: &'a [Fault],
    messages_last_tick: u64,
    messages_total: u64,
    tick_time_ns: u64,
    fuel_last_tick: u64,
    mailbox_depth_max: u32,
    chain_head: &'a str,
    log_tail: &'a [String],
    grids: &'a [Grid],
}

/// Numbers over the last [`TICK_WINDOW`] ticks.
#[derive(Debug, Serialize)]
struct Stats {
    window: usize,
    p50_ms: f64,
    p99_ms: f64,
    messages_per_tick: f64,
    messages_per_s: f64,
    ticks_per_s: f64,
}

/// Per-tick series for the charts, oldest first; `p50_ms`/`p99_ms` are rolling
/// over [`TICK_WINDOW`] ticks.
#[derive(Debug, Serialize)]
struct Series {
    tick: Vec<u64>,
    tick_ms: Vec<f64>,
    p50_ms: Vec<f64>,
    p99_ms: Vec<f64>,
    messages: Vec<u64>,
    mailbox_depth_max: Vec<u32>,
    fuel: Vec<u64>,
}

/// Locks `live`, also after a panic elsewhere (the data stays consistent: every
/// update is a few assignments).
pub fn lock(live: &Mutex<Live>) -> std::sync::MutexGuard<'_, Live> {
    live.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Follows the observer at the endpoint of `live` for ever: connects, reads,
/// reconnects. Meant for its own thread.
pub fn follow(live: Arc<Mutex<Live>>) {
    let endpoint = lock(&live).endpoint;
    loop {
        let why = match session(endpoint, &live) {
            Ok(()) => "the run closed the connection".to_string(),
            Err(e) => e,
        };
        lock(&live).detached(why);
        std::thread::sleep(RETRY_EVERY);
    }
}

/// One connection, until it ends.
fn session(endpoint: SocketAddr, live: &Mutex<Live>) -> Result<(), String> {
    let stream = TcpStream::connect_timeout(&endpoint, CONNECT_TIMEOUT)
        .map_err(|e| format!("connecting to {endpoint}: {e}"))?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(CONNECT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(CONNECT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let (mut ws, _) =
        tungstenite::client::client_with_config(format!("ws://{endpoint}/"), stream, Some(config))
            .map_err(|e| format!("handshake with {endpoint}: {e}"))?;
    ws.get_ref()
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|e| e.to_string())?;
    lock(live).attached();
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => match serde_json::from_str::<Frame>(&text) {
                Ok(frame) => lock(live).apply(frame, Instant::now()),
                Err(e) => return Err(format!("a message from {endpoint} is not a frame: {e}")),
            },
            Ok(Message::Close(_)) => return Ok(()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(tungstenite::Error::ConnectionClosed) => return Ok(()),
            Err(e) => return Err(format!("reading from {endpoint}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tick: u64, samples: std::ops::Range<u64>) -> Frame {
        Frame {
            tick,
            agent_count: 4,
            samples: samples
                .map(|t| TickSample {
                    tick: t,
                    tick_time_ns: 1_000_000 * (t + 1),
                    messages: 4,
                    ..TickSample::default()
                })
                .collect(),
            ..Frame::default()
        }
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    #[test]
    fn samples_are_merged_without_repeats() {
        let mut live = Live::new(addr());
        live.attached();
        let now = Instant::now();
        live.apply(frame(9, 0..10), now);
        live.apply(frame(12, 5..13), now);
        let ticks: Vec<u64> = live.samples.iter().map(|s| s.tick).collect();
        assert_eq!(ticks, (0..13).collect::<Vec<_>>());
        let view = live.view(now);
        assert_eq!(view.state, "running");
        assert_eq!(view.series.tick.len(), 13);
        assert_eq!(view.stats.window, 13);
        assert_eq!(view.stats.p50_ms, 7.0);
        assert_eq!(view.stats.messages_per_tick, 4.0);
    }

    #[test]
    fn ticks_going_back_start_a_new_history() {
        let mut live = Live::new(addr());
        live.attached();
        let now = Instant::now();
        live.apply(frame(99, 90..100), now);
        live.apply(frame(3, 0..4), now);
        let ticks: Vec<u64> = live.samples.iter().map(|s| s.tick).collect();
        assert_eq!(ticks, vec![0, 1, 2, 3]);
    }

    #[test]
    fn history_is_bounded() {
        let mut live = Live::new(addr());
        live.attached();
        let now = Instant::now();
        let n = KEPT_TICKS as u64 + 100;
        live.apply(frame(n - 1, 0..n), now);
        assert_eq!(live.samples.len(), KEPT_TICKS);
        assert_eq!(live.samples.front().map(|s| s.tick), Some(100));
        assert_eq!(live.view(now).series.tick.len(), CHART_TICKS);
    }

    #[test]
    fn the_state_follows_the_link_and_the_clock() {
        let mut live = Live::new(addr());
        let t0 = Instant::now();
        assert_eq!(live.view(t0).state, "waiting");
        live.attached();
        assert_eq!(live.view(t0).state, "attached");
        live.apply(frame(0, 0..1), t0);
        assert_eq!(live.view(t0).state, "running");
        assert_eq!(live.view(t0 + Duration::from_secs(5)).state, "idle");
        live.detached("gone".into());
        assert_eq!(live.view(t0).state, "ended");
        assert_eq!(live.view(t0).last_error, Some("gone"));
    }
}
