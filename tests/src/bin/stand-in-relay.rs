//! The stand-in claude-relay-service backend as a program, for the demo and the benchmarks.
//!
//! `stand-in-relay --port P [--fast]` prints `stand-in-relay listening on 127.0.0.1:P` once it
//! accepts connections and serves until SIGTERM or Ctrl-C. `--port 0` (the default, or the
//! `PORT` variable) takes a free port. `--fast` keeps no record of requests. `--fork-routes`
//! serves only the routes of claude-relay-service (no bare `/v1/`).

use clap::Parser;
use cmw_tests::backend::{Backend, Options};

#[derive(Debug, Parser)]
#[command(
    name = "stand-in-relay",
    about = "Stand-in claude-relay-service backend (Anthropic Messages API shapes)"
)]
struct Args {
    /// Port on 127.0.0.1 (0 = a free port).
    #[arg(long, env = "PORT", default_value_t = 0)]
    port: u16,
    /// Benchmark mode: keep no record of requests.
    #[arg(long)]
    fast: bool,
    /// Serve only claude-relay-service's routes: `/api/v1/…`, no bare `/v1/…`.
    #[arg(long)]
    fork_routes: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let backend = Backend::start_blocking(Options {
        port: args.port,
        record: !args.fast,
        worker_threads: threads,
        fork_routes: args.fork_routes,
    })?;
    println!("stand-in-relay listening on {}", backend.addr());
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    signals.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        anyhow::Ok(())
    })?;
    // Closes the listener and every connection before the process ends.
    drop(backend);
    Ok(())
}
