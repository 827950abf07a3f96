//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager):
//! every replica waits for the Lease, only the holder runs the controller, and
//! a replica that loses the Lease stops reconciling at once.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::controller::{ControllerConfig, run_controller};
use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub duration_seconds: u64,
    /// How long before expiry the holder renews.
    pub grace_seconds: u64,
}

/// Why [`run_as_leader`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Shutdown was requested (before or after leading).
    Stopped,
    /// The Lease was lost while leading; the process should exit and restart.
    LostLeadership,
}

/// Runs the controller while holding the Lease, until `stop` turns true or
/// leadership is lost. The Lease is released on the way out, so a standby
/// replica takes over without waiting for it to expire.
pub async fn run_as_leader(
    client: Client,
    lease: LeaseConfig,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Result<Outcome, LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client.clone(), &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(lease.duration_seconds)
        .with_grace(lease.grace_seconds)
        .build()
        .await?;
    let (mut leader, lease_task) = manager.watch().await;
    info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "waiting for leadership");

    let mut stop_wait = stop.clone();
    let became_leader = tokio::select! {
        r = leader.wait_for(|l| *l) => r.is_ok(),
        _ = stop_wait.wait_for(|s| *s) => false,
    };
    let mut outcome = Outcome::Stopped;
    if became_leader && !*stop.borrow() {
        info!(identity = %lease.identity, "became leader");
        metrics.leader.set(1);
        let (lost_tx, mut lost_rx) = watch::channel(false);
        let mut lost = leader.clone();
        let mut stop_run = stop.clone();
        let until = async move {
            tokio::select! {
                r = lost.wait_for(|l| !*l) => if r.is_ok() { let _ = lost_tx.send(true); },
                _ = stop_run.wait_for(|s| *s) => {}
            }
        };
        run_controller(client, config, metrics.clone(), until).await;
        metrics.leader.set(0);
        if *lost_rx.borrow_and_update() {
            warn!(identity = %lease.identity, "lost leadership");
            outcome = Outcome::LostLeadership;
        }
    }
    // Dropping the last receiver makes the lease task release the Lease.
    drop(leader);
    match tokio::time::timeout(Duration::from_secs(10), lease_task).await {
        Ok(Ok(Ok(_manager))) => info!(identity = %lease.identity, "lease released"),
        Ok(Ok(Err(e))) => warn!(error = %e, "releasing the lease failed"),
        Ok(Err(e)) => warn!(error = %e, "lease task panicked"),
        Err(_) => warn!("lease task did not stop in time"),
    }
    Ok(outcome)
}
