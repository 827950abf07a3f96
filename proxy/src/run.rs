//! Start-up and shutdown: listen, start the background tasks, serve, drain.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use cmw_contract::settings::MIDDLEWARE_API_KEYS_FILE;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, ConfigError};
use crate::keys_file::{combined_keys, read_keys_file, watch_keys_file};
use crate::refresh::Refresher;
use crate::server::{Stop, serve};
use crate::shared_health::run_subscriber;
use crate::state::App;
use crate::target_ca;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on port {port}: {source}")]
    Listen { port: u16, source: std::io::Error },
    #[error("{0}")]
    Setup(String),
}

/// Runs the proxy until SIGTERM or SIGINT, then drains and returns.
pub async fn run(config: Config) -> Result<(), StartError> {
    let keys_file_text = read_keys_at_start(&config)?;
    let keys = combined_keys(&config.auth.inline_keys, keys_file_text.as_deref());
    if config.auth.enabled && keys.is_empty() {
        return Err(ConfigError {
            variable: MIDDLEWARE_API_KEYS_FILE.env,
            reason: "MIDDLEWARE_AUTH_ENABLED is true but the keys file holds no key".to_string(),
        }
        .into());
    }

    // Before listening, like the keys file: an unusable CA file stops start-up.
    let target_roots = target_ca::read_at_start(&config)?;

    let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.port));
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Listen {
            port: config.port,
            source,
        })?;
    let app = Arc::new(App::new(config, keys, target_roots).map_err(StartError::Setup)?);
    tracing::info!(
        port = app.config.port,
        target = %app.config.target,
        redis = ?app.config.redis,
        auth = app.config.auth.enabled,
        keys = app.auth.key_count(),
        retry_attempts = app.config.retry_attempts,
        threads = app.config.serving_threads(),
        "claude-middleware listening"
    );

    let (stop_tasks, tasks_stopped) = watch::channel(false);
    spawn_background_tasks(&app, keys_file_text, &tasks_stopped);
    serve(app, listener, shutdown_signal()).await;
    let _ = stop_tasks.send(true);
    Ok(())
}

/// The keys file's text, read once before listening: an unreadable file stops start-up.
fn read_keys_at_start(config: &Config) -> Result<Option<String>, ConfigError> {
    let Some(path) = &config.auth.keys_file else {
        return Ok(None);
    };
    read_keys_file(path).map(Some).map_err(|e| ConfigError {
        variable: MIDDLEWARE_API_KEYS_FILE.env,
        reason: format!("cannot read {}: {e}", path.display()),
    })
}

/// The pool refresher, the shared-health subscriber and the keys-file
/// watcher, each given what it uses, until `stopped` changes.
fn spawn_background_tasks(
    app: &App,
    keys_file_text: Option<String>,
    stopped: &watch::Receiver<bool>,
) {
    let refresher = Refresher {
        pool: app.pool.clone(),
        selector: app.selector.clone(),
        shared_health: app.shared_health.clone(),
        metrics: app.metrics.clone(),
        redis_url: app.config.redis.url.clone(),
        interval: app.config.account_refresh_interval,
    };
    tokio::spawn(refresher.run(stopped.clone()));
    tokio::spawn(run_subscriber(
        app.shared_health.clone(),
        app.selector.clone(),
        app.config.redis.url.clone(),
        stopped.clone(),
    ));
    if let (Some(path), Some(text)) = (app.config.auth.keys_file.clone(), keys_file_text) {
        tokio::spawn(watch_keys_file(
            app.auth.clone(),
            app.config.auth.inline_keys.clone(),
            path,
            text,
            stopped.clone(),
        ));
    }
}

/// SIGTERM (Kubernetes) or SIGINT (a terminal).
async fn shutdown_signal() -> Stop {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => {
            tracing::info!("SIGTERM received");
            Stop::Terminate
        }
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("SIGINT received");
            Stop::Interrupt
        }
    }
}
