//! The `we` command: run scenarios, verify replays, inspect traces, benchmark
//! reference workloads.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use we_cli::{InferenceMode, hex};
use we_replay::{DumpFilter, FsyncPolicy, TraceReader};
use we_runtime::{RunOptions, RunSummary, Scenario};

#[derive(Parser)]
#[command(
    name = "we",
    version,
    about = "wasm-engine: a deterministic multi-agent runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Fsync {
    /// Leave flushing to the OS.
    Never,
    /// fsync after every tick.
    Tick,
    /// fsync once when the run ends (default).
    Finish,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum InferenceArg {
    /// Feed back the recorded results (works anywhere).
    Recorded,
    /// Recompute and compare bitwise.
    Recompute,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and print a summary.
    Run {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Worker threads (default: the scenario's value, else all cores).
        #[arg(long)]
        workers: Option<usize>,
        /// Record a hash-chained trace into FILE.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// When the trace is forced to disk.
        #[arg(long, value_enum, default_value = "finish")]
        fsync: Fsync,
        /// Run twice (1 worker and --workers, at least 2) and compare every tick.
        #[arg(long)]
        check_determinism: bool,
        /// Print only the summary, no progress bar.
        #[arg(long)]
        quiet: bool,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
        /// Stream live snapshots to `we ui --connect ADDR` from this loopback
        /// address (off unless given; the run never waits on a viewer).
        #[arg(long, value_name = "ADDR")]
        observe: Option<SocketAddr>,
        /// DEVELOPMENT ONLY: run modules that carry no signature. The summary
        /// and the trace header say so; a bad or untrusted signature is still
        /// refused.
        #[arg(long)]
        allow_unsigned: bool,
    },
    /// Generate an ed25519 key pair: PREFIX.key (secret, 0600) and PREFIX.pub.
    Keygen {
        /// Path prefix of the two files.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
    /// Sign an agent module (appends a `we.signature` custom section).
    Sign {
        /// The module (.wasm).
        module: PathBuf,
        /// The secret key file (from `we keygen`).
        #[arg(long)]
        key: PathBuf,
        /// Where to write the signed module (default: in place).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Serve a web page about a live run (`--connect`) or a finished trace (`--trace`).
    Ui {
        /// The observer endpoint of a run started with `we run --observe ADDR`.
        #[arg(long, value_name = "ADDR")]
        connect: Option<SocketAddr>,
        /// Where to serve the page (loopback; port 0 picks one).
        #[arg(long, value_name = "ADDR", default_value = we_ui::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// A trace file to scrub through.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
    },
    /// Replay commands.
    Replay {
        #[command(subcommand)]
        command: ReplayCommand,
    },
    /// Dump a trace as JSON lines, or summarise it; or describe an agent
    /// module (.wasm): signature, ABI version, imports, capabilities.
    Inspect {
        /// The trace file, or a module.
        trace: PathBuf,
        /// Print the header, tick count and chain head only.
        #[arg(long)]
        summary: bool,
        /// Only ticks in A..=B (`5..9`, `5..`, `..9`, `7`).
        #[arg(long)]
        ticks: Option<String>,
        /// Only these agents (repeat or comma-separate).
        #[arg(long, value_delimiter = ',')]
        agent: Vec<u32>,
    },
    /// Run a reference workload of shared/workloads.md and print one JSON line.
    BenchWorkload {
        /// ring, compute, gossip or infer.
        #[arg(long)]
        workload: String,
        /// Number of agents.
        #[arg(long)]
        agents: u32,
        /// Number of ticks.
        #[arg(long)]
        ticks: u64,
        /// Worker threads.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Directory holding the built agents (ring.wasm, ...).
        #[arg(long, default_value = "build/agents")]
        agents_dir: PathBuf,
        /// Directory holding models.toml (for `infer`).
        #[arg(long, default_value = "fixtures/models")]
        models_dir: PathBuf,
        /// Record no trace (tracing is on by default, into a temporary file).
        #[arg(long)]
        no_trace: bool,
        /// Public key the agents are signed with.
        #[arg(long, default_value = "fixtures/keys/dev.pub")]
        trusted_key: PathBuf,
        /// Fuel metering: `regions` (what runs use: a check per call and per
        /// loop iteration). Measurement only, to see what metering costs:
        /// `blocks` (a check per basic block, the wasmer-middlewares scheme)
        /// and `off` (none). Never a way to run scenarios.
        #[arg(long, default_value = "regions", value_parser = ["regions", "blocks", "off"])]
        metering: String,
        /// Agents per instance (`pack` of the scenario group): 1 gives each
        /// agent its own sandbox; K > 1 runs them K to an instance.
        #[arg(long, default_value_t = 1)]
        pack: u32,
        /// Print JSON (the default and only format).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ReplayCommand {
    /// Re-execute a trace and compare it tick by tick.
    Verify {
        /// The trace file.
        trace: PathBuf,
        /// Where inference results come from.
        #[arg(long, value_enum, default_value = "recorded")]
        inference: InferenceArg,
        /// Worker threads for the replay.
        #[arg(long)]
        workers: Option<usize>,
        /// Directory the recorded scenario's module paths are relative to.
        #[arg(long)]
        modules_dir: Option<PathBuf>,
    },
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenario,
            workers,
            trace,
            fsync,
            check_determinism,
            quiet,
            json,
            observe,
            allow_unsigned,
        } => {
            if check_determinism {
                return cmd_check(&scenario, workers, allow_unsigned);
            }
            let options = RunOptions {
                workers,
                log_tail_lines: 256,
                allow_unsigned,
                share_orchestrator_cpu: we_cli::orchestrator_cpu_shared(),
                record_on_worker: we_cli::record_on_worker(),
                ..RunOptions::default()
            };
            cmd_run(scenario, options, trace, fsync, quiet, json, observe)
        }
        Command::Keygen { out } => cmd_keygen(&out),
        Command::Sign { module, key, out } => cmd_sign(&module, &key, out.as_deref()),
        Command::Ui {
            connect,
            listen,
            trace,
        } => Ok(we_ui::run(we_ui::UiOptions {
            connect,
            listen,
            trace,
        })?),
        Command::Replay {
            command:
                ReplayCommand::Verify {
                    trace,
                    inference,
                    workers,
                    modules_dir,
                },
        } => cmd_verify(&trace, inference, workers, modules_dir.as_deref()),
        Command::Inspect {
            trace,
            summary,
            ticks,
            agent,
        } => cmd_inspect(&trace, summary, ticks.as_deref(), agent),
        Command::BenchWorkload {
            workload,
            agents,
            ticks,
            workers,
            agents_dir,
            models_dir,
            no_trace,
            trusted_key,
            metering,
            pack,
            json: _,
        } => cmd_bench(
            &workload,
            agents,
            ticks,
            workers,
            BenchPaths {
                agents: &agents_dir,
                models: &models_dir,
                key: &trusted_key,
            },
            BenchMode {
                trace: !no_trace,
                metering: we_sandbox::Metering::from_name(&metering).unwrap_or_default(),
                pack,
            },
        ),
    }
}

fn fsync_policy(f: Fsync) -> FsyncPolicy {
    match f {
        Fsync::Never => FsyncPolicy::Never,
        Fsync::Tick => FsyncPolicy::EveryTick,
        Fsync::Finish => FsyncPolicy::OnFinish,
    }
}

fn cmd_run(
    path: PathBuf,
    options: RunOptions,
    trace: Option<PathBuf>,
    fsync: Fsync,
    quiet: bool,
    json: bool,
    observe: Option<SocketAddr>,
) -> Result<()> {
    let mut runtime = we_cli::build_from_file(&path, options)?;
    if let Some(trace) = &trace {
        we_cli::record_to(&mut runtime, trace, fsync_policy(fsync))?;
    }
    if let Some(addr) = observe {
        let observer = we_observe::WsObserver::bind(addr)?;
        eprintln!(
            "observing on ws://{0}/ (watch with `we ui --connect {0}`)",
            observer.local_addr()
        );
        runtime.set_observer(Box::new(observer));
    }
    let ticks = runtime.scenario().ticks;
    let bar = if quiet || json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(ticks);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} ticks {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };
    // Resident memory, sampled about 20 times over the run (for soak tests).
    let every = (ticks / 20).max(1);
    let mut rss_samples: Vec<(u64, u64)> = Vec::new();
    let summary = runtime
        .run(|t| {
            if t % 16 == 0 {
                bar.set_position(t + 1);
            }
            if t % every == 0 || t + 1 == ticks {
                rss_samples.push((t, rss_bytes()));
            }
        })
        .with_context(|| format!("running {}", path.display()))?;
    bar.finish_and_clear();
    let p50 = runtime.tick_times().quantile_ms(0.5);
    let p99 = runtime.tick_times().quantile_ms(0.99);
    if json {
        let mut value = summary_json(&summary, p50, p99);
        value["peak_rss_bytes"] = serde_json::json!(peak_rss_bytes());
        value["rss_samples"] = serde_json::json!(rss_samples);
        println!("{value}");
    } else {
        print_summary(&path, &summary, p50, p99);
        if let Some(trace) = &trace {
            println!("trace        {}", trace.display());
        }
        let tail: Vec<&str> = runtime.log_tail().collect();
        if !tail.is_empty() && !quiet {
            println!("last agent log lines:");
            for line in tail.iter().rev().take(10).rev() {
                println!("  {line}");
            }
        }
    }
    Ok(())
}

fn cmd_check(path: &Path, workers: Option<usize>, allow_unsigned: bool) -> Result<()> {
    let scenario = Scenario::load(path)?;
    let w = workers.unwrap_or(2).max(2);
    let ticks = we_cli::check_determinism(&scenario, w, allow_unsigned)?;
    println!("deterministic: {ticks} ticks identical with 1 and {w} workers");
    Ok(())
}

fn cmd_verify(
    trace: &Path,
    inference: InferenceArg,
    workers: Option<usize>,
    modules_dir: Option<&Path>,
) -> Result<()> {
    let mode = match inference {
        InferenceArg::Recorded => InferenceMode::Recorded,
        InferenceArg::Recompute => InferenceMode::Recompute,
    };
    let out = we_cli::verify_trace(trace, mode, workers, modules_dir, None)?;
    println!(
        "verified     {} ticks of {} ({:.2} s)",
        out.ticks,
        trace.display(),
        out.wall_s
    );
    println!("digest       {}", hex(&out.workload_digest));
    println!("chain head   {}", hex(&out.chain_head));
    if let Some((offset, bytes)) = out.torn_tail {
        println!(
            "torn tail    {bytes} bytes at offset {offset}: an unfinished last record (the run was cut short), not verified"
        );
    }
    Ok(())
}

fn parse_ticks(text: &str) -> Result<std::ops::RangeInclusive<u64>> {
    let num = |s: &str, default: u64| -> Result<u64> {
        if s.is_empty() {
            Ok(default)
        } else {
            s.parse()
                .with_context(|| format!("--ticks: `{s}` is not a tick number"))
        }
    };
    Ok(match text.split_once("..") {
        Some((a, b)) => num(a, 0)?..=num(b.trim_start_matches('='), u64::MAX)?,
        None => {
            let t = num(text, 0)?;
            t..=t
        }
    })
}

fn cmd_keygen(prefix: &Path) -> Result<()> {
    let (secret, public) = we_sign::generate_keypair()?;
    let with_ext = |ext: &str| {
        let mut p = prefix.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    let (key, pub_path) = (with_ext(".key"), with_ext(".pub"));
    secret.save(&key)?;
    public.save(&pub_path)?;
    println!("key id       {}", public.key_id());
    println!("secret key   {} (keep it private)", key.display());
    println!(
        "public key   {} (list it in [security] trusted_keys)",
        pub_path.display()
    );
    Ok(())
}

fn cmd_sign(module: &Path, key: &Path, out: Option<&Path>) -> Result<()> {
    let secret = we_sign::SecretKey::load(key)?;
    let bytes =
        std::fs::read(module).with_context(|| format!("reading module {}", module.display()))?;
    let signed = we_sign::sign_module(&module.display().to_string(), &bytes, &secret)?;
    let dest = out.unwrap_or(module);
    std::fs::write(dest, &signed).with_context(|| format!("writing {}", dest.display()))?;
    println!(
        "signed       {} with key {} ({} bytes)",
        dest.display(),
        secret.key_id(),
        signed.len()
    );
    Ok(())
}

/// `we inspect module.wasm`: what the module is and declares.
fn cmd_inspect_module(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.display().to_string();
    println!("module       {name}");
    println!("bytes        {}", bytes.len());
    println!("blake3       {}", hex(blake3::hash(bytes).as_bytes()));
    let code = match we_sign::signature_key_id(&name, bytes)? {
        Some(id) => {
            println!(
                "signature    key {id} (verified against the scenario's trusted keys at run time)"
            );
            &bytes[..bytes.len() - we_sign::module::SECTION_LEN]
        }
        None => {
            println!("signature    none (refused unless a run passes --allow-unsigned)");
            bytes
        }
    };
    println!(
        "runtime ABI  {}..={}",
        we_abi::ABI_VERSION_MIN,
        we_abi::ABI_VERSION_MAX
    );
    let mut sandbox = we_sandbox::Sandbox::new(we_sandbox::SandboxConfig::default());
    match sandbox.load_module(&name, code) {
        Ok(m) => {
            use we_core::AgentHost;
            if let Some(info) = sandbox.module_info(m) {
                println!("module ABI   {}", info.abi_version);
                println!("imports      {}", info.imports.join(" "));
                println!("capabilities");
                for line in info.capabilities.to_string().lines() {
                    println!("  {line}");
                }
            }
            println!("loads        yes");
        }
        Err(e) => println!("loads        no: {e}"),
    }
    Ok(())
}

fn cmd_inspect(trace: &Path, summary: bool, ticks: Option<&str>, agents: Vec<u32>) -> Result<()> {
    if let Ok(bytes) = std::fs::read(trace)
        && bytes.starts_with(b"\0asm")
    {
        return cmd_inspect_module(trace, &bytes);
    }
    let mut reader =
        TraceReader::open(trace).with_context(|| format!("opening trace {}", trace.display()))?;
    if summary {
        let s = reader.summarize()?;
        println!("trace        {}", trace.display());
        println!("runtime      {}", s.header.runtime_version);
        println!("seed         {}", s.header.seed);
        println!("agents       {}", s.header.agent_count);
        for (name, hash) in &s.header.modules {
            println!("module       {name} blake3 {}", hex(hash));
        }
        for note in &s.header.notes {
            println!("note         {note}");
        }
        println!("ticks        {}", s.ticks);
        if let (Some(a), Some(b)) = (s.first_tick, s.last_tick) {
            println!("tick range   {a}..={b}");
        }
        println!("bytes        {}", s.bytes);
        println!("chain head   {}", hex(&s.chain_head));
        return Ok(());
    }
    let filter = DumpFilter {
        ticks: ticks.map(parse_ticks).transpose()?,
        agents: if agents.is_empty() {
            None
        } else {
            Some(agents)
        },
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    we_replay::dump_jsonl(&mut reader, &mut out, filter)?;
    Ok(())
}

/// Resident set size of this process in bytes (0 where /proc is missing).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Peak resident set size of this process in bytes (`VmHWM`; 0 where /proc
/// is missing).
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn summary_json(s: &RunSummary, p50: f64, p99: f64) -> serde_json::Value {
    serde_json::json!({
        "ticks": s.ticks,
        "agents": s.agents,
        "workers": s.workers,
        "messages_delivered": s.messages_delivered,
        "messages_refused": s.messages_refused,
        "inferences": s.inferences,
        "faults": s.faults_by_kind,
        "ticks_per_s": s.ticks as f64 / s.wall_s.max(1e-9),
        "wall_s": s.wall_s,
        "p50_ms": p50,
        "p99_ms": p99,
        "digest": hex(&s.workload_digest),
        "chain_head": hex(&s.chain_head),
        "capability_refusals": s.capability_refusals,
        "injected": s.injected,
        "restarts": s.restarts,
        "dead_letters": s.dead_letters,
        "unsigned_modules": s.unsigned_modules,
    })
}

fn print_summary(path: &Path, s: &RunSummary, p50: f64, p99: f64) {
    if !s.unsigned_modules.is_empty() {
        println!(
            "WARNING      UNSIGNED MODULES ALLOWED (--allow-unsigned, development only): {}",
            s.unsigned_modules.join(", ")
        );
    }
    println!("scenario     {}", path.display());
    for (module, key) in &s.signed_modules {
        println!("signed       {module} by key {key}");
    }
    println!("ticks        {}", s.ticks);
    println!("agents       {}", s.agents);
    println!("workers      {}", s.workers);
    println!(
        "messages     {} delivered, {} refused",
        s.messages_delivered, s.messages_refused
    );
    if s.inferences > 0 || !s.inference_provider.is_empty() {
        println!("inferences   {} ({})", s.inferences, s.inference_provider);
    }
    if s.faults.is_empty() {
        println!("faults       none");
    } else {
        let by_kind: Vec<String> = s
            .faults_by_kind
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        println!("faults       {} ({})", s.faults.len(), by_kind.join(", "));
        for (agent, tick, kind) in s.faults.iter().take(20) {
            println!(
                "  agent {} at tick {}: {kind}",
                agent.index,
                tick_text(*tick)
            );
        }
        if s.faults.len() > 20 {
            println!("  ... {} more", s.faults.len() - 20);
        }
    }
    if s.capability_refusals > 0 {
        println!(
            "capabilities {} effects refused (not declared by their module)",
            s.capability_refusals
        );
    }
    if !s.injected.is_empty() {
        let by_kind: Vec<String> = s
            .injected
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        println!("injected     {}", by_kind.join(", "));
    }
    if s.restarts > 0 || s.dead_letters > 0 {
        println!(
            "supervision  {} restarts, {} dead letters",
            s.restarts, s.dead_letters
        );
    }
    println!(
        "speed        {:.1} ticks/s, {:.0} messages/s, tick p50 {p50:.3} ms, p99 {p99:.3} ms",
        s.ticks as f64 / s.wall_s.max(1e-9),
        s.messages_delivered as f64 / s.wall_s.max(1e-9)
    );
    println!("digest       {}", hex(&s.workload_digest));
    if s.chain_head != [0; 32] {
        println!("chain head   {}", hex(&s.chain_head));
    }
}

fn tick_text(t: u64) -> String {
    if t == u64::MAX {
        "init".into()
    } else {
        t.to_string()
    }
}

/// How `bench-workload` runs.
struct BenchMode {
    trace: bool,
    metering: we_sandbox::Metering,
    pack: u32,
}

/// Where `bench-workload` finds its inputs.
struct BenchPaths<'a> {
    agents: &'a Path,
    models: &'a Path,
    key: &'a Path,
}

fn cmd_bench(
    workload: &str,
    agents: u32,
    ticks: u64,
    workers: usize,
    paths: BenchPaths<'_>,
    mode: BenchMode,
) -> Result<()> {
    let BenchMode {
        trace,
        metering,
        pack,
    } = mode;
    let BenchPaths {
        agents: dir,
        models,
        key,
    } = paths;
    let module = match workload {
        "ring" | "compute" | "gossip" | "infer" => dir.join(format!("{workload}.wasm")),
        other => bail!("unknown workload `{other}`: expected ring, compute, gossip or infer"),
    };
    let module = std::fs::canonicalize(&module).with_context(|| {
        format!(
            "agent module {} (run `cargo xtask build-agents`)",
            module.display()
        )
    })?;
    let key = std::fs::canonicalize(key)
        .with_context(|| format!("trusted key {} (--trusted-key)", key.display()))?;
    let mut text = format!(
        "seed = 0\nticks = {ticks}\n[limits]\nmailbox_capacity = {cap}\n[security]\ntrusted_keys = [{key:?}]\n",
        cap = agents.max(4096),
    );
    if workload == "infer" {
        let registry = std::fs::canonicalize(models.join("models.toml"))
            .with_context(|| format!("model registry in {}", models.display()))?;
        text.push_str(&format!(
            "[inference]\nregistry = {registry:?}\npreload = [\"policy\"]\n[inference.postprocess]\npolicy = \"argmax\"\n"
        ));
    }
    text.push_str(&format!(
        "[[agents]]\nname = \"{workload}\"\nmodule = {module:?}\ncount = {agents}\npack = {pack}\n"
    ));
    let scenario = Scenario::parse("bench-workload", text.as_bytes(), PathBuf::new())?;
    let options = RunOptions {
        workers: Some(workers),
        share_orchestrator_cpu: we_cli::orchestrator_cpu_shared(),
        record_on_worker: we_cli::record_on_worker(),
        ..RunOptions::default()
    };
    let mut config = we_cli::sandbox_config(&scenario);
    config.metering = metering;
    let mut runtime = we_cli::build_with_sandbox(scenario, options, config)?;
    let trace_file = std::env::temp_dir().join(format!("we-bench-{}.trace", std::process::id()));
    if trace {
        we_cli::record_to(&mut runtime, &trace_file, FsyncPolicy::Never)?;
    }
    let summary = runtime.run(|_| {});
    if trace {
        let _ = std::fs::remove_file(&trace_file);
    }
    let summary = summary?;
    let times = runtime.tick_times();
    let (rate_key, count) = if workload == "infer" {
        ("inferences_per_s", summary.inferences)
    } else {
        ("messages_per_s", summary.messages_delivered)
    };
    let mut line = serde_json::json!({
        "workload": workload,
        "agents": agents,
        "ticks": ticks,
        "workers": summary.workers,
        "trace": trace,
        "metering": metering.name(),
        "pack": pack,
        "wall_s": summary.wall_s,
        "init_s": summary.init_s,
        "ticks_per_s": summary.ticks as f64 / summary.wall_s.max(1e-9),
        "p50_ms": times.quantile_ms(0.5),
        "p99_ms": times.quantile_ms(0.99),
        "digest": hex(&summary.workload_digest),
    });
    line[rate_key] = serde_json::json!(count as f64 / summary.wall_s.max(1e-9));
    println!("{line}");
    Ok(())
}
