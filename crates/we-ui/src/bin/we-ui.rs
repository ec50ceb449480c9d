//! `we-ui`: the UI as a stand-alone binary (the same as `we ui`).
//!
//! ```text
//! we-ui [--connect 127.0.0.1:PORT] [--listen 127.0.0.1:8080] [--trace FILE]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use we_ui::{DEFAULT_LISTEN, UiOptions};

const USAGE: &str = "usage: we-ui [--connect ADDR] [--listen ADDR] [--trace FILE]

  --connect ADDR   follow the run started with `we run --observe ADDR`
  --listen ADDR    serve the page here (default 127.0.0.1:8080; port 0 picks one)
  --trace FILE     open a finished trace and scrub through its ticks";

fn parse(args: impl Iterator<Item = String>) -> Result<UiOptions, String> {
    let mut opts = UiOptions::default();
    let mut args = args.peekable();
    let addr = |flag: &str, v: Option<String>| -> Result<SocketAddr, String> {
        let v = v.ok_or(format!("{flag} needs an address"))?;
        v.parse()
            .map_err(|e| format!("{flag} {v}: not an IP:PORT address ({e})"))
    };
    opts.listen = addr("--listen", Some(DEFAULT_LISTEN.to_string()))?;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = || inline.clone().or_else(|| args.next());
        match flag.as_str() {
            "--connect" => opts.connect = Some(addr("--connect", value())?),
            "--listen" => opts.listen = addr("--listen", value())?,
            "--trace" => {
                opts.trace = Some(PathBuf::from(value().ok_or("--trace needs a file")?));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    Ok(opts)
}

fn main() {
    let opts = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = we_ui::run(opts) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
