//! A small HTTP/1.1 server on std::net for the page and its JSON.
//!
//! It answers `GET` (and `HEAD`) only, one request per connection, with the
//! embedded page assets and the live or trace JSON. It listens on loopback only,
//! answers only requests whose `Host` is a loopback name (so a web site cannot
//! reach it through DNS rebinding), bounds the request head, the time a client
//! may take, and the number of connections served at once.

use crate::live::{Live, lock};
use crate::trace::TraceView;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections served at once; more are answered 503.
const MAX_CONNECTIONS: usize = 32;
/// Largest request head read.
const MAX_HEAD_BYTES: usize = 8 << 10;
/// How long a client may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE_CSS: &str = include_str!("../web/style.css");

/// What the server shows.
pub struct App {
    /// The live run, when following one.
    pub live: Option<Arc<Mutex<Live>>>,
    /// The trace, when one was opened.
    pub trace: Option<TraceView>,
    /// `/api/trace` rendered once.
    pub trace_summary: Option<String>,
}

/// An HTTP answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Content type.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
}

impl Answer {
    fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status,
            content_type,
            body: body.into(),
        }
    }

    fn json(value: &impl serde::Serialize) -> Answer {
        match serde_json::to_vec(value) {
            Ok(body) => Answer::new(200, "application/json", body),
            Err(e) => Answer::new(500, "text/plain; charset=utf-8", e.to_string()),
        }
    }

    fn text(status: u16, text: &str) -> Answer {
        Answer::new(status, "text/plain; charset=utf-8", text)
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Serves `listener` for ever.
pub fn serve(listener: TcpListener, app: Arc<App>) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
            let _ = write_answer(&mut stream, &Answer::text(503, "busy\n"), false);
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let guard = Active(Arc::clone(&active));
        let app = Arc::clone(&app);
        let spawned = std::thread::Builder::new()
            .name("we-ui http".into())
            .spawn(move || {
                let _guard = guard;
                handle(stream, &app);
            });
        // A thread that could not start dropped its guard with the closure.
        drop(spawned);
    }
}

/// Counts a connection being served until dropped.
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn handle(mut stream: TcpStream, app: &App) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Some(head) = read_head(&mut stream) else {
        let _ = write_answer(&mut stream, &Answer::text(431, "bad request head\n"), false);
        return;
    };
    let (answer, with_body) = match parse_head(&head) {
        Ok(request) => (
            route(app, &request, Instant::now()),
            request.method != "HEAD",
        ),
        Err(answer) => (answer, true),
    };
    let _ = write_answer(&mut stream, &answer, with_body);
}

/// Reads up to the blank line that ends the head, within the size and time limits.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let began = Instant::now();
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD_BYTES || began.elapsed() > IO_TIMEOUT {
            return None;
        }
        match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => head.extend_from_slice(buf.get(..n)?),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    String::from_utf8(head).ok()
}

/// A parsed request line and the headers that matter.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `HEAD`.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
}

/// Parses a request head; refuses anything but a `GET`/`HEAD` to a loopback `Host`.
pub fn parse_head(head: &str) -> Result<Request, Answer> {
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Answer::text(400, "bad request line\n"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Answer::text(400, "HTTP/1.x only\n"));
    }
    if method != "GET" && method != "HEAD" {
        return Err(Answer::text(405, "GET only\n"));
    }
    let host = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("host"))
        .map(|(_, value)| value.trim());
    if !host.is_some_and(host_is_loopback) {
        return Err(Answer::text(
            421,
            "this server answers to loopback names only\n",
        ));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
    })
}

/// Whether a `Host` header (`127.0.0.1:8080`, `localhost`, `[::1]:80`) names
/// this machine's loopback.
pub fn host_is_loopback(host: &str) -> bool {
    we_observe::server::origin_is_loopback(&format!("http://{host}"))
}

/// The answer to `request`.
pub fn route(app: &App, request: &Request, now: Instant) -> Answer {
    match request.path.as_str() {
        "/" | "/index.html" => Answer::new(200, "text/html; charset=utf-8", INDEX_HTML),
        "/app.js" => Answer::new(200, "text/javascript; charset=utf-8", APP_JS),
        "/style.css" => Answer::new(200, "text/css; charset=utf-8", STYLE_CSS),
        "/favicon.ico" => Answer::new(204, "image/x-icon", Vec::new()),
        "/api/mode" => Answer::json(&serde_json::json!({
            "live": app.live.is_some(),
            "trace": app.trace.is_some(),
            "version": env!("CARGO_PKG_VERSION"),
        })),
        "/api/live" => match &app.live {
            Some(live) => Answer::json(&lock(live).view(now)),
            None => Answer::text(404, "not following a run (start with --connect)\n"),
        },
        "/api/trace" => match &app.trace_summary {
            Some(json) => Answer::new(200, "application/json", json.as_bytes()),
            None => Answer::text(404, "no trace opened (start with --trace)\n"),
        },
        "/api/trace/tick" => {
            let Some(trace) = &app.trace else {
                return Answer::text(404, "no trace opened (start with --trace)\n");
            };
            let index = request
                .query
                .split('&')
                .find_map(|kv| kv.strip_prefix("i="))
                .and_then(|v| v.parse::<usize>().ok());
            match index.and_then(|i| trace.tick(i)) {
                Some(value) => Answer::json(&value),
                None => Answer::text(404, "no such tick index\n"),
            }
        }
        _ => Answer::text(404, "not found\n"),
    }
}

fn write_answer(stream: &mut TcpStream, answer: &Answer, with_body: bool) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\nContent-Security-Policy: default-src 'self'; style-src 'self' 'unsafe-inline'\r\n\
         Connection: close\r\n\r\n",
        answer.status,
        reason(answer.status),
        answer.content_type,
        answer.body.len()
    );
    stream.write_all(head.as_bytes())?;
    if with_body {
        stream.write_all(&answer.body)?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App {
            live: Some(Arc::new(Mutex::new(Live::new(
                "127.0.0.1:9".parse().unwrap(),
            )))),
            trace: None,
            trace_summary: None,
        }
    }

    #[test]
    fn requests_are_parsed() {
        let r =
            parse_head("GET /api/trace/tick?i=3 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n").unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/api/trace/tick");
        assert_eq!(r.query, "i=3");
    }

    #[test]
    fn foreign_hosts_and_methods_are_refused() {
        let status = |head: &str| parse_head(head).err().map(|a| a.status);
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
            Some(421)
        );
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), Some(421));
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
            Some(405)
        );
        assert_eq!(status("GET /\r\n\r\n"), Some(400));
        assert_eq!(status("GET / HTTP/1.1\r\nhost: localhost:1\r\n\r\n"), None);
    }

    #[test]
    fn routes_answer_assets_and_json() {
        let app = app();
        let get = |path: &str| {
            let req =
                parse_head(&format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")).unwrap();
            route(&app, &req, Instant::now())
        };
        assert_eq!(get("/").status, 200);
        assert!(String::from_utf8_lossy(&get("/").body).contains("<canvas"));
        assert_eq!(get("/app.js").status, 200);
        assert_eq!(get("/style.css").status, 200);
        assert_eq!(get("/nope").status, 404);
        assert_eq!(get("/api/trace").status, 404);
        let live = get("/api/live");
        assert_eq!(live.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&live.body).unwrap();
        assert_eq!(v["state"], "waiting");
        let mode: serde_json::Value = serde_json::from_slice(&get("/api/mode").body).unwrap();
        assert_eq!(mode["live"], true);
        assert_eq!(mode["trace"], false);
    }
}
