//! [`WsObserver`]: the runtime-side observer and its WebSocket server thread.
//!
//! The runtime calls [`WsObserver::publish`] after every tick. Publishing copies
//! the snapshot into the back slot of a triple buffer (reusing the slot's
//! allocations) and swaps it in with one atomic exchange: no lock, no syscall,
//! no formatting, nothing that depends on any client. Everything else happens on
//! one server thread that owns the reading half: it accepts connections on a
//! loopback port, turns the newest snapshot into JSON ([`crate::wire::Frame`])
//! at most every `send_interval`, and writes it to every client.
//!
//! All sockets are non-blocking and the thread never waits on one client. A
//! client that stops reading first fills its socket buffer; from then on it is
//! sent nothing new (only the newest state matters), and after `stall_timeout`
//! it is dropped. A killed client shows up as a write or read error and is
//! dropped at once. Inbound messages are read (so the socket does not clog and
//! close handshakes complete) and ignored; their size is capped. There are at
//! most `max_clients` connections, handshakes included; one more is answered
//! `503` and closed. Browsers are only let in from a loopback origin.

use crate::triple::{Reader, Writer, triple_buffer};
use crate::wire::{Frame, TickSample};
use crate::{Error, Result};
use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::handshake::server::{ErrorResponse, Request, Response, ServerHandshake};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, Utf8Bytes, WebSocket};
use we_core::{Snapshot, StateObserver};

/// Ticks whose samples travel with every published snapshot, so a server that
/// reads less often than ticks commit still sees each tick's numbers.
pub const RECENT_TICKS: usize = 256;
/// Samples a client's first message carries.
pub const HISTORY_TICKS: usize = 1024;
/// Connections accepted per loop turn, so a connection flood cannot starve the
/// clients already served.
const ACCEPTS_PER_TURN: usize = 16;
/// Inbound messages read per client per loop turn.
const READS_PER_TURN: usize = 16;
/// Largest inbound message or frame; anything bigger closes the connection.
const MAX_INBOUND_BYTES: usize = 4 << 10;
/// Most bytes queued for one client; beyond that it is dropped.
const MAX_QUEUED_BYTES: usize = 16 << 20;

/// Settings of the observer endpoint.
#[derive(Clone, Copy, Debug)]
pub struct ObserveConfig {
    /// Most simultaneous connections (handshakes included).
    pub max_clients: usize,
    /// Least time between two messages to a client.
    pub send_interval: Duration,
    /// How long a client may leave its socket full before it is dropped.
    pub stall_timeout: Duration,
    /// How long a WebSocket handshake may take.
    pub handshake_timeout: Duration,
    /// How often the server thread wakes up.
    pub poll_interval: Duration,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        ObserveConfig {
            max_clients: 8,
            send_interval: Duration::from_millis(50),
            stall_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(2),
            poll_interval: Duration::from_millis(10),
        }
    }
}

/// Counters of the endpoint, for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObserverStats {
    /// Snapshots published by the runtime.
    pub published: u64,
    /// Connections open now (handshakes included).
    pub clients: u64,
    /// Connections accepted so far.
    pub accepted: u64,
    /// Connections refused because `max_clients` were open.
    pub refused: u64,
    /// Clients dropped because they stopped reading.
    pub stalled: u64,
    /// Messages written to clients.
    pub messages_sent: u64,
}

#[derive(Default)]
struct Counters {
    clients: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    stalled: AtomicU64,
    messages_sent: AtomicU64,
}

/// What travels through the triple buffer.
#[derive(Clone)]
struct Slot {
    snapshot: Snapshot,
    /// Snapshots published when this one was (1-based count).
    published: u64,
    /// Sample of publish number `k` is at `(k - 1) % RECENT_TICKS`.
    recent: Box<[TickSample; RECENT_TICKS]>,
}

/// A [`StateObserver`] that streams snapshots to WebSocket clients on loopback.
///
/// Dropping it stops the server thread after a last message to each client.
pub struct WsObserver {
    writer: Writer<Slot>,
    recent: Box<[TickSample; RECENT_TICKS]>,
    published: u64,
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    published_shared: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl WsObserver {
    /// Listens on `addr` (a loopback address; port 0 picks one) with the default
    /// [`ObserveConfig`].
    pub fn bind(addr: SocketAddr) -> Result<WsObserver> {
        WsObserver::bind_with(addr, ObserveConfig::default())
    }

    /// Listens on `addr` with `config`.
    pub fn bind_with(addr: SocketAddr, config: ObserveConfig) -> Result<WsObserver> {
        if !addr.ip().is_loopback() {
            return Err(Error::NotLoopback { addr });
        }
        if config.max_clients == 0 {
            return Err(Error::Config {
                what: "max_clients must be at least 1",
            });
        }
        let listener = TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Socket {
            op: "local_addr",
            source,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| Error::Socket {
                op: "set_nonblocking",
                source,
            })?;
        let initial = Slot {
            snapshot: Snapshot::default(),
            published: 0,
            recent: Box::new([TickSample::default(); RECENT_TICKS]),
        };
        let (writer, reader) = triple_buffer(initial);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let server = Server {
            listener,
            config,
            reader,
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
            conns: Vec::new(),
            merged: 0,
            history: VecDeque::with_capacity(HISTORY_TICKS),
            pending: Vec::new(),
            fresh: false,
            generation: 0,
            latest: None,
            last_send: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("we-observe {local_addr}"))
            .spawn(move || server.run())
            .map_err(|source| Error::Thread { source })?;
        Ok(WsObserver {
            writer,
            recent: Box::new([TickSample::default(); RECENT_TICKS]),
            published: 0,
            local_addr,
            stop,
            counters,
            published_shared: Arc::new(AtomicU64::new(0)),
            thread: Some(thread),
        })
    }

    /// The address the endpoint listens on (with the real port when bound to 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The endpoint's counters now.
    pub fn stats(&self) -> ObserverStats {
        let c = &self.counters;
        ObserverStats {
            published: self.published_shared.load(Ordering::Relaxed),
            clients: c.clients.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            stalled: c.stalled.load(Ordering::Relaxed),
            messages_sent: c.messages_sent.load(Ordering::Relaxed),
        }
    }

    /// A handle that reads the same counters from another thread.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            counters: Arc::clone(&self.counters),
            published: Arc::clone(&self.published_shared),
        }
    }
}

/// Reads an observer's counters while the runtime owns the observer.
#[derive(Clone)]
pub struct StatsHandle {
    counters: Arc<Counters>,
    published: Arc<AtomicU64>,
}

impl StatsHandle {
    /// The endpoint's counters now.
    pub fn stats(&self) -> ObserverStats {
        let c = &self.counters;
        ObserverStats {
            published: self.published.load(Ordering::Relaxed),
            clients: c.clients.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            stalled: c.stalled.load(Ordering::Relaxed),
            messages_sent: c.messages_sent.load(Ordering::Relaxed),
        }
    }
}

impl StateObserver for WsObserver {
    /// Copies `snapshot` into the triple buffer; never blocks, never fails.
    fn publish(&mut self, snapshot: &Snapshot) {
        self.published += 1;
        let at = ((self.published - 1) % RECENT_TICKS as u64) as usize;
        if let Some(sample) = self.recent.get_mut(at) {
            *sample = TickSample::of(snapshot);
        }
        let slot = self.writer.back_mut();
        copy_snapshot(&mut slot.snapshot, snapshot);
        slot.published = self.published;
        *slot.recent = *self.recent;
        self.writer.publish();
        self.published_shared
            .store(self.published, Ordering::Relaxed);
    }
}

impl Drop for WsObserver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            // The thread's loop turns are bounded (non-blocking sockets), so this
            // returns within about one poll interval. A panic there has already
            // been reported by the thread itself.
            let _ = thread.join();
        }
    }
}

/// Overwrites `dst` with `src`, reusing `dst`'s allocations. Naming every field
/// makes a new `Snapshot` field a compile error here rather than a silent gap.
fn copy_snapshot(dst: &mut Snapshot, src: &Snapshot) {
    let Snapshot {
        tick,
        agent_count,
        faulted,
        messages_last_tick,
        messages_total,
        tick_time_ns,
        fuel_last_tick,
        mailbox_depth_max,
        chain_head,
        log_tail,
        regions,
    } = src;
    dst.tick = *tick;
    dst.agent_count = *agent_count;
    dst.faulted.clone_from(faulted);
    dst.messages_last_tick = *messages_last_tick;
    dst.messages_total = *messages_total;
    dst.tick_time_ns = *tick_time_ns;
    dst.fuel_last_tick = *fuel_last_tick;
    dst.mailbox_depth_max = *mailbox_depth_max;
    dst.chain_head = *chain_head;
    dst.log_tail.clone_from(log_tail);
    dst.regions.clone_from(regions);
}

type OriginCheck = fn(&Request, Response) -> std::result::Result<Response, ErrorResponse>;

/// Lets in clients without an `Origin` (programs) and pages served from a
/// loopback host; any other web page is refused, so a site open in a browser
/// cannot read the run.
// The signature is tungstenite's handshake callback; its error type is theirs.
#[allow(clippy::result_large_err)]
fn check_origin(
    request: &Request,
    response: Response,
) -> std::result::Result<Response, ErrorResponse> {
    let origin = request
        .headers()
        .get("origin")
        .map(|v| v.to_str().unwrap_or("invalid"));
    match origin {
        None => Ok(response),
        Some(origin) if origin_is_loopback(origin) => Ok(response),
        Some(_) => {
            let mut refusal = ErrorResponse::new(Some("origin not allowed".into()));
            *refusal.status_mut() = tungstenite::http::StatusCode::FORBIDDEN;
            Err(refusal)
        }
    }
}

/// Whether a browser `Origin` (`http://127.0.0.1:8080`) names a loopback host.
pub fn origin_is_loopback(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        rest.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 << 10)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_QUEUED_BYTES)
        .max_message_size(Some(MAX_INBOUND_BYTES))
        .max_frame_size(Some(MAX_INBOUND_BYTES))
}

enum Conn {
    Handshake {
        mid: MidHandshake<ServerHandshake<TcpStream, OriginCheck>>,
        since: Instant,
    },
    Open(Client),
    Gone,
}

struct Client {
    ws: WebSocket<TcpStream>,
    /// Generation of the last message queued to it.
    sent: u64,
    /// Its next message must carry the whole history (first message, or after
    /// it missed some).
    needs_history: bool,
    /// Since when its socket has been full, if it is.
    stalled_since: Option<Instant>,
}

/// What a client's turn asks of the server.
enum Turn {
    Keep,
    Drop,
    Stalled,
}

struct Server {
    listener: TcpListener,
    config: ObserveConfig,
    reader: Reader<Slot>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    conns: Vec<Conn>,
    /// Publish count of the newest sample merged into `history`.
    merged: u64,
    history: VecDeque<TickSample>,
    /// Samples not yet sent in a message.
    pending: Vec<TickSample>,
    /// Whether a snapshot newer than the last message is waiting.
    fresh: bool,
    /// Number of messages built so far.
    generation: u64,
    /// The newest message.
    latest: Option<Utf8Bytes>,
    last_send: Option<Instant>,
}

impl Server {
    fn run(mut self) {
        loop {
            let stopping = self.stop.load(Ordering::Acquire);
            self.take_snapshot();
            if !stopping {
                self.accept();
            }
            self.build_message(stopping);
            self.serve();
            if stopping {
                self.close_all();
                return;
            }
            std::thread::sleep(self.config.poll_interval);
        }
    }

    /// Takes the newest snapshot, if any, and merges its samples.
    fn take_snapshot(&mut self) {
        if !self.reader.update() {
            return;
        }
        let slot = self.reader.current();
        let first = self
            .merged
            .saturating_add(1)
            .max(slot.published.saturating_sub(RECENT_TICKS as u64 - 1))
            .max(1);
        for k in first..=slot.published {
            let Some(sample) = slot.recent.get(((k - 1) % RECENT_TICKS as u64) as usize) else {
                continue;
            };
            if self.history.len() == HISTORY_TICKS {
                self.history.pop_front();
            }
            self.history.push_back(*sample);
            if self.pending.len() == HISTORY_TICKS {
                self.pending.remove(0);
            }
            self.pending.push(*sample);
        }
        self.merged = slot.published;
        self.fresh = true;
    }

    fn accept(&mut self) {
        for _ in 0..ACCEPTS_PER_TURN {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // A connection that failed before we took it; try the next.
                Err(_) => continue,
            };
            if self.open_count() >= self.config.max_clients {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                refuse(stream);
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = stream.set_nodelay(true);
            self.counters.accepted.fetch_add(1, Ordering::Relaxed);
            let start =
                ServerHandshake::start(stream, check_origin as OriginCheck, Some(ws_config()));
            let conn = match start.handshake() {
                Ok(ws) => Conn::Open(Client::new(ws)),
                Err(HandshakeError::Interrupted(mid)) => Conn::Handshake {
                    mid,
                    since: Instant::now(),
                },
                Err(HandshakeError::Failure(_)) => continue,
            };
            self.conns.push(conn);
        }
    }

    fn open_count(&self) -> usize {
        self.conns.len()
    }

    /// Builds the next message when a new snapshot waits and the send interval
    /// has passed (or the server is stopping).
    fn build_message(&mut self, stopping: bool) {
        if !self.fresh {
            return;
        }
        let due = self
            .last_send
            .is_none_or(|at| at.elapsed() >= self.config.send_interval);
        if !due && !stopping {
            return;
        }
        let slot = self.reader.current();
        let mut frame = Frame::of(&slot.snapshot, slot.published);
        frame.samples = std::mem::take(&mut self.pending);
        if let Ok(text) = serde_json::to_string(&frame) {
            self.latest = Some(Utf8Bytes::from(text));
            self.generation += 1;
        }
        self.fresh = false;
        self.last_send = Some(Instant::now());
    }

    /// A message with the whole recent history, for a client's first message.
    fn history_message(&self) -> Option<Utf8Bytes> {
        let slot = self.reader.current();
        if slot.published == 0 {
            return None;
        }
        let mut frame = Frame::of(&slot.snapshot, slot.published);
        frame.samples = self.history.iter().copied().collect();
        serde_json::to_string(&frame).ok().map(Utf8Bytes::from)
    }

    fn serve(&mut self) {
        let mut conns = std::mem::take(&mut self.conns);
        let mut history: Option<Option<Utf8Bytes>> = None;
        for conn in &mut conns {
            let taken = std::mem::replace(conn, Conn::Gone);
            *conn = match taken {
                Conn::Handshake { mid, since } => match mid.handshake() {
                    Ok(ws) => Conn::Open(Client::new(ws)),
                    Err(HandshakeError::Interrupted(mid))
                        if since.elapsed() < self.config.handshake_timeout =>
                    {
                        Conn::Handshake { mid, since }
                    }
                    Err(_) => Conn::Gone,
                },
                Conn::Open(mut client) => {
                    let turn = client.turn(
                        self.generation,
                        self.latest.as_ref(),
                        &mut history,
                        || self.history_message(),
                        self.config.stall_timeout,
                        &self.counters,
                    );
                    match turn {
                        Turn::Keep => Conn::Open(client),
                        Turn::Drop => Conn::Gone,
                        Turn::Stalled => {
                            self.counters.stalled.fetch_add(1, Ordering::Relaxed);
                            Conn::Gone
                        }
                    }
                }
                Conn::Gone => Conn::Gone,
            };
        }
        conns.retain(|c| !matches!(c, Conn::Gone));
        self.conns = conns;
        self.counters
            .clients
            .store(self.conns.len() as u64, Ordering::Relaxed);
    }

    /// Sends a close frame to every client (best effort) and drops them all.
    fn close_all(&mut self) {
        for conn in &mut self.conns {
            if let Conn::Open(client) = conn {
                let _ = client.ws.close(None);
                let _ = client.ws.flush();
            }
        }
        self.conns.clear();
        self.counters.clients.store(0, Ordering::Relaxed);
    }
}

impl Client {
    fn new(ws: WebSocket<TcpStream>) -> Client {
        Client {
            ws,
            sent: 0,
            needs_history: true,
            stalled_since: None,
        }
    }

    /// One turn: read and ignore what the client sent, finish a pending write,
    /// queue the newest message if the socket has room.
    fn turn(
        &mut self,
        generation: u64,
        latest: Option<&Utf8Bytes>,
        history: &mut Option<Option<Utf8Bytes>>,
        make_history: impl FnOnce() -> Option<Utf8Bytes>,
        stall_timeout: Duration,
        counters: &Counters,
    ) -> Turn {
        for _ in 0..READS_PER_TURN {
            match self.ws.read() {
                // Inbound data is ignored; control frames are answered by
                // tungstenite itself on the next write or flush.
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return Turn::Drop,
            }
        }
        if self.stalled_since.is_some() {
            match self.ws.flush() {
                Ok(()) => self.stalled_since = None,
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return Turn::Drop,
            }
        }
        if let Some(since) = self.stalled_since {
            if since.elapsed() >= stall_timeout {
                return Turn::Stalled;
            }
            if generation > self.sent {
                // It missed a message: its next one carries the history.
                self.needs_history = true;
            }
            return Turn::Keep;
        }
        let message = if self.needs_history {
            history.get_or_insert_with(make_history).clone()
        } else if generation > self.sent {
            latest.cloned()
        } else {
            None
        };
        let Some(message) = message else {
            return Turn::Keep;
        };
        self.needs_history = false;
        self.sent = generation;
        counters.messages_sent.fetch_add(1, Ordering::Relaxed);
        match self.ws.send(Message::Text(message)) {
            Ok(()) => Turn::Keep,
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                self.stalled_since = Some(Instant::now());
                Turn::Keep
            }
            Err(_) => Turn::Drop,
        }
    }
}

/// Answers a connection over the limit with `503` and closes it. The socket is
/// fresh, so the short reply fits its buffer; a failure only means the client
/// is already gone.
fn refuse(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(true);
    let _ = stream.write_all(
        b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 21\r\n\r\ntoo many connections\n",
    );
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_are_recognised() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:3000",
            "http://localhost",
            "http://[::1]:9",
            "https://127.0.0.2",
        ] {
            assert!(origin_is_loopback(ok), "{ok}");
        }
        for bad in [
            "http://example.com",
            "http://127.0.0.1.evil.com",
            "null",
            "file://",
            "http://10.0.0.1:80",
            "http://localhost.evil:80",
        ] {
            assert!(!origin_is_loopback(bad), "{bad}");
        }
    }

    #[test]
    fn non_loopback_addresses_are_refused() {
        let addr: SocketAddr = "0.0.0.0:0".parse().unwrap();
        assert!(matches!(
            WsObserver::bind(addr),
            Err(Error::NotLoopback { .. })
        ));
    }

    #[test]
    fn copy_snapshot_copies_every_field() {
        let src = Snapshot {
            tick: 1,
            agent_count: 2,
            faulted: vec![(we_core::AgentId::new(1), we_core::FaultKind::Injected)],
            messages_last_tick: 3,
            messages_total: 4,
            tick_time_ns: 5,
            fuel_last_tick: 6,
            mailbox_depth_max: 7,
            chain_head: [8; 32],
            log_tail: vec!["x".into()],
            regions: vec![(9, vec![1, 2, 3])],
        };
        let mut dst = Snapshot {
            log_tail: vec!["old".into(), "older".into()],
            ..Snapshot::default()
        };
        copy_snapshot(&mut dst, &src);
        assert_eq!(dst, src);
    }
}
