//! Pure renderers: one file (or folder) per child kind, no I/O. Each takes the
//! [`ValidatedMiddleware`] (never the CR itself) and returns the object to
//! server-side apply, or `None` when the feature is off, so the reconciler
//! prunes it.

pub mod deployment;
pub mod hpa;
pub mod http_route;
pub mod ingress;
pub mod labels;
pub mod network_policy;
pub mod pdb;
pub mod service;
pub mod service_monitor;

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
pub(crate) mod testdata;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::reconcile::validate::ValidatedMiddleware;
use http_route::HTTPRoute;
use service_monitor::ServiceMonitor;

/// The proxy's container port (its `PORT` default, from the contract),
/// named `http`.
pub const CONTAINER_PORT: i32 = cmw_contract::settings::PORT.default as i32;
pub const PORT_NAME: &str = "http";

/// Everything one CR wants to exist. `None` means "must not exist". A new kind
/// is a new field here; `reconcile::apply::apply_children` and the golden test
/// destructure this struct without `..`, so they fail to compile until the new
/// kind is applied (or pruned) and checked too.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    pub deployment: Deployment,
    pub service: Service,
    pub network_policy: Option<NetworkPolicy>,
    pub ingress: Option<Ingress>,
    pub hpa: Option<HorizontalPodAutoscaler>,
    pub pdb: Option<PodDisruptionBudget>,
    /// Kinds from CRDs the cluster may lack: see `reconcile::optional`.
    pub http_route: Option<HTTPRoute>,
    pub service_monitor: Option<ServiceMonitor>,
}

pub fn render(v: &ValidatedMiddleware) -> Children {
    Children {
        deployment: deployment::render(v),
        service: service::render(v),
        network_policy: network_policy::render(v),
        ingress: ingress::render(v),
        hpa: hpa::render(v),
        pdb: pdb::render(v),
        http_route: http_route::render(v),
        service_monitor: service_monitor::render(v),
    }
}
