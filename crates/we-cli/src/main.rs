//! The `we` command: run scenarios, benchmark reference workloads.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use we_cli::hex;
use we_runtime::{RunOptions, RunSummary, Scenario};

#[derive(Parser)]
#[command(name = "we", version, about = "wasm-engine: a deterministic multi-agent runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
        /// Print only the summary, no progress bar.
        #[arg(long)]
        quiet: bool,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
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
        /// Print JSON (the default and only format).
        #[arg(long)]
        json: bool,
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
            quiet,
            json,
        } => cmd_run(scenario, workers, quiet, json),
        Command::BenchWorkload {
            workload,
            agents,
            ticks,
            workers,
            agents_dir,
            json: _,
        } => cmd_bench(&workload, agents, ticks, workers, &agents_dir),
    }
}

fn cmd_run(path: PathBuf, workers: Option<usize>, quiet: bool, json: bool) -> Result<()> {
    let options = RunOptions {
        workers,
        log_tail_lines: 256,
        ..RunOptions::default()
    };
    let mut runtime = we_cli::build_from_file(&path, options)?;
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
    let summary = runtime
        .run(|t| {
            if t % 16 == 0 {
                bar.set_position(t + 1);
            }
        })
        .with_context(|| format!("running {}", path.display()))?;
    bar.finish_and_clear();
    let p50 = runtime.tick_times().quantile_ms(0.5);
    let p99 = runtime.tick_times().quantile_ms(0.99);
    if json {
        println!("{}", summary_json(&summary, p50, p99));
    } else {
        print_summary(&path, &summary, p50, p99);
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
    })
}

fn print_summary(path: &std::path::Path, s: &RunSummary, p50: f64, p99: f64) {
    println!("scenario     {}", path.display());
    println!("ticks        {}", s.ticks);
    println!("agents       {}", s.agents);
    println!("workers      {}", s.workers);
    println!("messages     {} delivered, {} refused", s.messages_delivered, s.messages_refused);
    if s.inferences > 0 {
        println!("inferences   {}", s.inferences);
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
            println!("  agent {} at tick {}: {kind}", agent.index, tick_text(*tick));
        }
        if s.faults.len() > 20 {
            println!("  ... {} more", s.faults.len() - 20);
        }
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

fn cmd_bench(workload: &str, agents: u32, ticks: u64, workers: usize, dir: &std::path::Path) -> Result<()> {
    let module = match workload {
        "ring" | "compute" | "gossip" | "infer" => dir.join(format!("{workload}.wasm")),
        other => bail!("unknown workload `{other}`: expected ring, compute, gossip or infer"),
    };
    let module = std::fs::canonicalize(&module)
        .with_context(|| format!("agent module {} (run `cargo xtask build-agents`)", module.display()))?;
    let text = format!(
        "seed = 0\nticks = {ticks}\n[limits]\nmailbox_capacity = {cap}\n[[agents]]\nname = \"{workload}\"\nmodule = {module:?}\ncount = {agents}\n",
        cap = agents.max(4096),
    );
    let scenario = Scenario::parse("bench-workload", text.as_bytes(), PathBuf::new())?;
    let options = RunOptions {
        workers: Some(workers),
        ..RunOptions::default()
    };
    let mut runtime = we_cli::build(scenario, options)?;
    let summary = runtime.run(|_| {})?;
    let times = runtime.tick_times();
    let rate_key = if workload == "infer" {
        "inferences_per_s"
    } else {
        "messages_per_s"
    };
    let count = if workload == "infer" {
        summary.inferences
    } else {
        summary.messages_delivered
    };
    let mut line = serde_json::json!({
        "workload": workload,
        "agents": agents,
        "ticks": ticks,
        "workers": summary.workers,
        "wall_s": summary.wall_s,
        "ticks_per_s": summary.ticks as f64 / summary.wall_s.max(1e-9),
        "p50_ms": times.quantile_ms(0.5),
        "p99_ms": times.quantile_ms(0.99),
        "digest": hex(&summary.workload_digest),
    });
    line[rate_key] = serde_json::json!(count as f64 / summary.wall_s.max(1e-9));
    println!("{line}");
    Ok(())
}
