//! The optional UI (R11): `we ui`, a separate process that serves a web page
//! about a run.
//!
//! - **Live** (`--connect 127.0.0.1:PORT`): follows a run started with
//!   `we run --observe 127.0.0.1:PORT` through the observer's read-only
//!   WebSocket (see we-observe): the agent grid coloured by fault, tick time
//!   (p50/p99), messages per tick, mailbox depth, the trace chain head and the
//!   agents' latest log lines. Attach or detach at any time; killing this
//!   process does not touch the run, which never waits on it.
//! - **Trace** (`--trace FILE`): opens a finished trace and scrubs through its
//!   ticks.
//!
//! The page is plain HTML, CSS and JavaScript embedded in the binary
//! (`web/`), drawn on canvas, fetched from this process only: nothing comes from
//! the network. Both the page server and the observer client use loopback only.

pub mod http;
pub mod live;
pub mod stats;
pub mod trace;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The default address of the page.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// What `we ui` is asked to do.
#[derive(Clone, Debug)]
pub struct UiOptions {
    /// The observer endpoint of a run to follow (`we run --observe ADDR`).
    pub connect: Option<SocketAddr>,
    /// Where to serve the page (loopback; port 0 picks a free one).
    pub listen: SocketAddr,
    /// A trace file to scrub.
    pub trace: Option<PathBuf>,
}

impl Default for UiOptions {
    fn default() -> Self {
        UiOptions {
            connect: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trace: None,
        }
    }
}

/// Errors of the UI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither a run to follow nor a trace to open was given.
    #[error("nothing to show: give a run to follow (--connect ADDR) or a trace (--trace FILE)")]
    NothingToShow,
    /// An address that is not loopback.
    #[error("{what} must be a loopback address, not {addr}")]
    NotLoopback {
        /// Which address (`--listen`, `--connect`).
        what: &'static str,
        /// The address given.
        addr: SocketAddr,
    },
    /// The page's port could not be bound.
    #[error("serving the page on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The trace could not be opened.
    #[error("opening trace {}: {source}", path.display())]
    Trace {
        /// The trace file.
        path: PathBuf,
        /// Why.
        source: we_replay::Error,
    },
    /// An operating-system call failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A started UI server.
pub struct UiServer {
    addr: SocketAddr,
    thread: JoinHandle<()>,
}

impl UiServer {
    /// The page's address (with the real port when bound to 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process ends.
    pub fn wait(self) -> Result<()> {
        self.thread.join().map_err(|_| Error::Io {
            op: "the page server thread panicked",
            source: std::io::Error::other("panic"),
        })
    }
}

/// Opens the trace (if any), starts following the run (if any) and serves the
/// page on a background thread.
pub fn start(opts: UiOptions) -> Result<UiServer> {
    if opts.connect.is_none() && opts.trace.is_none() {
        return Err(Error::NothingToShow);
    }
    if !opts.listen.ip().is_loopback() {
        return Err(Error::NotLoopback {
            what: "--listen",
            addr: opts.listen,
        });
    }
    if let Some(addr) = opts.connect
        && !addr.ip().is_loopback()
    {
        return Err(Error::NotLoopback {
            what: "--connect",
            addr,
        });
    }
    let trace = opts
        .trace
        .as_deref()
        .map(trace::TraceView::load)
        .transpose()?;
    let trace_summary = trace.as_ref().map(|t| t.summary().to_string());
    let listener = TcpListener::bind(opts.listen).map_err(|source| Error::Bind {
        addr: opts.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| Error::Io {
        op: "local_addr",
        source,
    })?;
    let live = opts.connect.map(|endpoint| {
        let live = Arc::new(Mutex::new(live::Live::new(endpoint)));
        let follower = Arc::clone(&live);
        (live, follower)
    });
    let live = match live {
        Some((live, follower)) => {
            std::thread::Builder::new()
                .name("we-ui follow".into())
                .spawn(move || live::follow(follower))
                .map_err(|source| Error::Io {
                    op: "starting the follower thread",
                    source,
                })?;
            Some(live)
        }
        None => None,
    };
    let app = Arc::new(http::App {
        live,
        trace,
        trace_summary,
    });
    let thread = std::thread::Builder::new()
        .name("we-ui http accept".into())
        .spawn(move || http::serve(listener, app))
        .map_err(|source| Error::Io {
            op: "starting the page server",
            source,
        })?;
    Ok(UiServer { addr, thread })
}

/// Runs `we ui`: starts the server, prints `we ui: serving http://ADDR/` on
/// stdout (the first line, for scripts and tests), then serves until the
/// process is killed.
pub fn run(opts: UiOptions) -> Result<()> {
    let server = start(opts)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "we ui: serving http://{}/", server.addr())
        .and_then(|()| out.flush())
        .map_err(|source| Error::Io {
            op: "writing to stdout",
            source,
        })?;
    drop(out);
    server.wait()
}
