//! `claude-middleware-operator`: `run` (default) runs the controller behind a
//! leader Lease with an admin server; `crd` prints the CRD YAML.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use cmw_operator::admin::{self, AdminState};
use cmw_operator::leader::{LeaseConfig, Outcome, run_as_leader};
use cmw_operator::metrics::Metrics;
use cmw_operator::readiness::Readiness;
use cmw_operator::{ControllerConfig, crd, run_controller};
use kube::Client;
use tokio::sync::watch;
use tracing::info;

const DEFAULT_IMAGE: &str = concat!(
    "ghcr.io/claude-middleware/claude-middleware:",
    env!("CARGO_PKG_VERSION")
);

#[derive(Parser, Debug)]
#[command(
    name = "claude-middleware-operator",
    version,
    about = "Runs ClaudeMiddleware proxies on Kubernetes",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller (the default).
    Run(RunArgs),
    /// Print the CustomResourceDefinition YAML.
    Crd,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Namespace to watch; empty watches all namespaces.
    #[arg(long, env = "WATCH_NAMESPACE", default_value = "")]
    namespace: String,
    /// Proxy image for CRs that do not set spec.image.
    #[arg(long, env = "PROXY_IMAGE", default_value = DEFAULT_IMAGE)]
    proxy_image: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8081")]
    metrics_addr: SocketAddr,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Take a Lease before reconciling, so that only one replica acts.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    #[arg(long, env = "LEASE_NAME", default_value = "claude-middleware-operator")]
    lease_name: String,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Identity in the Lease and in Events.
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run(cli.run)) {
        Command::Crd => {
            print!("{}", crd::crd_yaml()?);
            Ok(())
        }
        Command::Run(args) => run(args).await,
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let client = Client::try_default()
        .await
        .context("no Kubernetes client configuration")?;
    let metrics = Arc::new(Metrics::default());
    // Not ready until the watches have listed or the replica is a known standby.
    let readiness = Readiness::default();

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let admin_state = AdminState {
        metrics: metrics.clone(),
        readiness: readiness.clone(),
    };
    let admin = tokio::spawn(admin::serve(
        args.metrics_addr,
        admin_state,
        stopped(stop_rx.clone()),
    ));
    info!(addr = %args.metrics_addr, "admin server listening");
    tokio::spawn(async move {
        terminated().await;
        info!("termination requested");
        let _ = stop_tx.send(true);
    });

    let config = ControllerConfig {
        namespace: (!args.namespace.is_empty()).then(|| args.namespace.clone()),
        proxy_image: args.proxy_image.clone(),
        instance: args.pod_name.clone(),
    };

    let mut code = Ok(());
    if !args.leader_election {
        metrics.leader.set(1);
        let stop = stopped(stop_rx.clone());
        run_controller(client, config, metrics, readiness.clone(), stop).await;
    } else {
        let lease = LeaseConfig {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            identity: args
                .pod_name
                .clone()
                .unwrap_or_else(|| format!("operator-{}", std::process::id())),
            duration_seconds: 15,
            grace_seconds: 5,
        };
        let outcome = run_as_leader(
            client,
            lease,
            config,
            metrics,
            readiness.clone(),
            stop_rx.clone(),
        )
        .await
        .context("leader election")?;
        if outcome == Outcome::LostLeadership {
            // Exit non-zero so the pod restarts and queues for the Lease again.
            code = Err(anyhow::anyhow!("lost leadership"));
        }
    }
    readiness.mark_stopping();
    admin.abort();
    info!("stopped");
    code
}
