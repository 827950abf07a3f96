//! The `claude-middleware` binary: configuration from flags and environment
//! (the Go middleware's variables), then [`claude_middleware::run::run`].

use std::process::ExitCode;

use clap::Parser;

use claude_middleware::config::{Config, RawSettings};
use claude_middleware::run::{StartError, run};

fn main() -> ExitCode {
    let config = match Config::from_raw(&RawSettings::parse()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("claude-middleware: {error}");
            return ExitCode::from(2);
        }
    };
    claude_middleware::logging::init(&config);
    // Every stream holds two sockets; a 1024 soft limit would cap it at ~500.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open file limit"),
    }
    let runtime = match runtime_for(config.serving_threads()) {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("claude-middleware: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ StartError::Config(_)) => {
            eprintln!("claude-middleware: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("claude-middleware: {error}");
            ExitCode::FAILURE
        }
    }
}

/// One serving thread: a current-thread runtime, which runs every task on
/// it without the multi-thread scheduler's work-stealing, atomics and
/// wake-ups (about 800 instructions per request less, `bench/cost.sh`, and
/// faster than nginx on one core). More: the multi-thread runtime, one
/// worker per thread. Blocking work has its own pool in both.
fn runtime_for(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
    };
    builder.enable_all().build()
}
