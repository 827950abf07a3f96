//! The proxy container: image, port, environment, resources, probes on the
//! proxy's `/health` and `/ready`, and its security context.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, Probe, ResourceRequirements, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::env::env;
use super::security::container_security_context;
use crate::reconcile::validate::ValidatedMiddleware;
use crate::render::{CONTAINER_PORT, PORT_NAME};

pub const CONTAINER_NAME: &str = "proxy";

pub fn container(v: &ValidatedMiddleware, volume_mounts: Vec<VolumeMount>) -> Container {
    Container {
        name: CONTAINER_NAME.into(),
        image: Some(v.image.clone()),
        image_pull_policy: Some(v.image_pull_policy.as_str().into()),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.into()),
            container_port: CONTAINER_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        env: Some(env(v)),
        resources: Some(v.resources.clone().unwrap_or_else(default_resources)),
        liveness_probe: Some(probe("/health", 10, 3)),
        readiness_probe: Some(probe("/ready", 5, 2)),
        security_context: Some(container_security_context()),
        volume_mounts: Some(volume_mounts),
        ..Default::default()
    }
}

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(PORT_NAME.into()),
            scheme: Some("HTTP".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        success_threshold: Some(1),
        ..Default::default()
    }
}

pub fn default_resources() -> ResourceRequirements {
    let q = |s: &str| Quantity(s.into());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), q("50m")),
            ("memory".into(), q("64Mi")),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".into(), q("200m")),
            ("memory".into(), q("128Mi")),
        ])),
        ..Default::default()
    }
}
