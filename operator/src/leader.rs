//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager):
//! every replica waits for the Lease, only the holder runs the controller, and
//! a replica that loses the Lease stops reconciling at once. A standby is
//! ready (`/readyz`) once it sees another replica hold a live Lease.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::controller::{ControllerConfig, run_controller};
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// How often a replica waiting for the Lease reads it to learn whether it is
/// a standby (kube-lease-manager reports only this replica's own gains).
const STANDBY_POLL: Duration = Duration::from_secs(2);

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
/// replica takes over without waiting for it to expire. `readiness` is
/// marked by the controller's watches, or earlier once this replica is known
/// to be a standby.
pub async fn run_as_leader(
    client: Client,
    lease: LeaseConfig,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    readiness: Readiness,
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

    let leases: Api<Lease> = Api::namespaced(client.clone(), &lease.namespace);
    let standby = async {
        standby_known(&leases, &lease.name, &lease.identity).await;
        info!(identity = %lease.identity, "standby: another replica holds the Lease");
        readiness.mark_initialized();
    };
    let became_leader = until_leading(&mut leader, stop.clone(), standby).await;
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
        run_controller(client, config, metrics.clone(), readiness, until).await;
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

/// Waits until this replica leads (true) or `stop` turns true (false), running
/// `standby` alongside until it completes.
async fn until_leading(
    leader: &mut watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    standby: impl Future<Output = ()>,
) -> bool {
    tokio::pin!(standby);
    let mut standby_done = false;
    loop {
        tokio::select! {
            r = leader.wait_for(|l| *l) => return r.is_ok(),
            _ = stop.wait_for(|s| *s) => return false,
            () = &mut standby, if !standby_done => standby_done = true,
        }
    }
}

/// Resolves once another identity holds a live Lease.
async fn standby_known(leases: &Api<Lease>, name: &str, identity: &str) {
    loop {
        if let Ok(Some(lease)) = leases.get_opt(name).await
            && held_by_another(&lease, identity, Timestamp::now())
        {
            return;
        }
        tokio::time::sleep(STANDBY_POLL).await;
    }
}

/// Whether the Lease names a holder other than `identity` and was renewed
/// less than its duration ago.
pub fn held_by_another(lease: &Lease, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return false;
    };
    let (Some(holder), Some(renewed), Some(seconds)) = (
        spec.holder_identity.as_deref(),
        spec.renew_time.as_ref(),
        spec.lease_duration_seconds,
    ) else {
        return false;
    };
    let expires = renewed
        .0
        .checked_add(SignedDuration::from_secs(i64::from(seconds)));
    !holder.is_empty() && holder != identity && expires.is_ok_and(|e| e > now)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    use super::*;

    fn lease(holder: &str, renewed: i64) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).expect("time"))),
                lease_duration_seconds: Some(15),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_live_lease_of_another_replica_makes_a_standby() {
        let now = Timestamp::from_second(1_000).expect("time");
        assert!(held_by_another(&lease("b", 990), "a", now));
        assert!(!held_by_another(&lease("a", 990), "a", now), "our own");
        assert!(!held_by_another(&lease("b", 980), "a", now), "expired");
        assert!(!held_by_another(&lease("", 990), "a", now), "released");
        assert!(!held_by_another(&Lease::default(), "a", now), "empty");
    }
}
