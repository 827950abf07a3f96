//! Pure renderers: one file per child kind, no I/O. Each takes the validated
//! [`RenderInput`] and returns the object to server-side apply (or `None` when
//! the feature is off, so the reconciler prunes it).

pub mod deployment;
pub mod hpa;
pub mod http_route;
pub mod ingress;
pub mod input;
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

pub use input::{InvalidSpec, RenderInput};

/// The proxy's container port (proxy.md: PORT, default 8080), named `http`.
pub const CONTAINER_PORT: i32 = 8080;
pub const PORT_NAME: &str = "http";

/// Everything one CR wants to exist. `None` means "must not exist".
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    pub deployment: Deployment,
    pub service: Service,
    pub network_policy: Option<NetworkPolicy>,
    pub ingress: Option<Ingress>,
    pub hpa: Option<HorizontalPodAutoscaler>,
    pub pdb: Option<PodDisruptionBudget>,
}

pub fn render(input: &RenderInput<'_>) -> Children {
    Children {
        deployment: deployment::render(input),
        service: service::render(input),
        network_policy: network_policy::render(input),
        ingress: ingress::render(input),
        hpa: hpa::render(input),
        pdb: pdb::render(input),
    }
}
