//! Log output: text or JSON, level from GIN_MODE unless RUST_LOG says more.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

pub fn init(config: &Config) {
    let default_level = if config.debug_logs { "debug" } else { "info" };
    // hyper and the Redis client are noisy at debug; keep them at info.
    let default_filter =
        format!("{default_level},hyper=info,hyper_util=info,redis=info,rustls=info");
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout);
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}
