//! Children whose kinds come from CRDs a cluster may not have: the Gateway API
//! HTTPRoute and the Prometheus Operator ServiceMonitor. Each is applied or
//! pruned like the built-in children, but a missing CRD only marks that child
//! (a False condition and one Warning Event, see [`super::optional_conditions`])
//! and the rest of the reconcile goes on. They are not watched (a watch on a
//! kind that does not exist fails), so drift is repaired at the periodic
//! resync, and a missing CRD is looked for again every [`MISSING_API_RECHECK`].

use std::time::Duration;

use super::apply::{ChildKind, apply, prune};
use super::error::{Error, Result};
use super::validate::Owner;

/// How soon a CR whose optional child has no CRD is reconciled again, so
/// installing the CRDs is picked up without an edit.
pub const MISSING_API_RECHECK: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionalKind {
    HttpRoute,
    ServiceMonitor,
}

impl OptionalKind {
    /// The condition that reports this child on the CR.
    pub fn condition_type(self) -> &'static str {
        match self {
            Self::HttpRoute => "HTTPRouteApplied",
            Self::ServiceMonitor => "ServiceMonitorApplied",
        }
    }

    /// The reason of its Warning Event (Events of one reason on one object
    /// are merged into one series, so each kind has its own).
    pub fn event_reason(self) -> &'static str {
        match self {
            Self::HttpRoute => "HTTPRouteCRDNotInstalled",
            Self::ServiceMonitor => "ServiceMonitorCRDNotInstalled",
        }
    }

    /// The CR field that asks for it.
    pub fn field(self) -> &'static str {
        match self {
            Self::HttpRoute => "spec.httpRoute",
            Self::ServiceMonitor => "spec.monitoring.serviceMonitor",
        }
    }

    /// Kind and API version, for messages.
    pub fn api(self) -> &'static str {
        match self {
            Self::HttpRoute => "HTTPRoute (gateway.networking.k8s.io/v1)",
            Self::ServiceMonitor => "ServiceMonitor (monitoring.coreos.com/v1)",
        }
    }

    /// What the cluster needs installed.
    pub fn crds(self) -> &'static str {
        match self {
            Self::HttpRoute => "the Gateway API CRDs (standard channel)",
            Self::ServiceMonitor => "the Prometheus Operator CRDs",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Wanted and applied.
    Applied,
    /// Not wanted: absent (pruned if it was there).
    Off,
    /// Wanted, but the cluster does not serve its kind.
    CrdMissing,
}

/// Applies the child of a switched-on feature, else prunes the one an
/// earlier pass applied; a kind the API server does not serve is an
/// [`Outcome`], not an error.
pub async fn apply_or_prune<K: ChildKind>(
    client: &kube::Client,
    owner: &Owner,
    wanted: Option<&K>,
) -> Result<Outcome> {
    match wanted {
        Some(obj) => applied(apply(client, &owner.namespace, obj).await),
        None => pruned(prune::<K>(client, owner).await),
    }
}

/// A 404 on a server-side apply (which creates what is absent) means the
/// API server does not serve the kind at all.
fn kind_not_served(error: &Error) -> bool {
    matches!(error, Error::Kube(kube::Error::Api(status)) if status.code == 404)
}

fn applied<T>(result: Result<T>) -> Result<Outcome> {
    match result {
        Ok(_) => Ok(Outcome::Applied),
        Err(e) if kind_not_served(&e) => Ok(Outcome::CrdMissing),
        Err(e) => Err(e),
    }
}

fn pruned(result: Result<bool>) -> Result<Outcome> {
    match result {
        Ok(_) => Ok(Outcome::Off),
        // Nothing of that kind can exist.
        Err(e) if kind_not_served(&e) => Ok(Outcome::Off),
        Err(e) => Err(e),
    }
}
