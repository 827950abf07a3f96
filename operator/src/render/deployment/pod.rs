//! The pod spec: the proxy container, a scratch `/tmp`, the API-key Secret
//! mounted as a directory, spreading over nodes, the user's scheduling
//! settings, and a grace period long enough for the proxy's drain.

use k8s_openapi::api::core::v1::{
    EmptyDirVolumeSource, KeyToPath, PodSpec, SecretVolumeSource, TopologySpreadConstraint, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::container::container;
use super::security::pod_security_context;
use super::{API_KEYS_DIR, API_KEYS_FILE, non_empty};
use crate::reconcile::validate::ValidatedMiddleware;
use crate::render::labels::label_selector;

/// Extra time on top of the drain before the kubelet kills the pod.
pub const GRACE_MARGIN_SECONDS: i64 = 15;

pub fn pod_spec(v: &ValidatedMiddleware) -> PodSpec {
    let (volumes, mounts) = volumes(v);
    let pod = &v.pod;
    PodSpec {
        containers: vec![container(v, mounts)],
        volumes: Some(volumes),
        security_context: Some(pod_security_context()),
        // The proxy never talks to the API server.
        automount_service_account_token: Some(false),
        // Service links would inject REDIS_PORT=tcp://… for a Service named redis.
        enable_service_links: Some(false),
        // No shell in the image for a preStop sleep: the proxy drains on SIGTERM
        // itself, so give it the drain time plus a margin.
        termination_grace_period_seconds: Some(v.drain_seconds + GRACE_MARGIN_SECONDS),
        service_account_name: pod.service_account_name.clone(),
        priority_class_name: pod.priority_class_name.clone(),
        node_selector: non_empty(pod.node_selector.clone()),
        tolerations: (!pod.tolerations.is_empty()).then(|| pod.tolerations.clone()),
        affinity: pod.affinity.clone(),
        topology_spread_constraints: Some(
            pod.topology_spread_constraints
                .clone()
                .unwrap_or_else(|| default_spread(v)),
        ),
        image_pull_secrets: (!v.image_pull_secrets.is_empty())
            .then(|| v.image_pull_secrets.clone()),
        ..Default::default()
    }
}

fn volumes(v: &ValidatedMiddleware) -> (Vec<Volume>, Vec<VolumeMount>) {
    // The root filesystem is read-only; give the process a small scratch /tmp.
    let mut volumes = vec![Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("16Mi".into())),
        }),
        ..Default::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "tmp".into(),
        mount_path: "/tmp".into(),
        ..Default::default()
    }];
    if let Some(secret) = &v.auth.api_keys_secret_ref {
        volumes.push(Volume {
            name: "api-keys".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.name.clone()),
                items: Some(vec![KeyToPath {
                    key: secret.key.clone(),
                    path: API_KEYS_FILE.into(),
                    mode: None,
                }]),
                default_mode: Some(0o440),
                optional: Some(false),
            }),
            ..Default::default()
        });
        // A directory mount (not subPath) so the kubelet's atomic updates reach
        // the proxy, which re-reads the file.
        mounts.push(VolumeMount {
            name: "api-keys".into(),
            mount_path: API_KEYS_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    (volumes, mounts)
}

fn default_spread(v: &ValidatedMiddleware) -> Vec<TopologySpreadConstraint> {
    vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "kubernetes.io/hostname".into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(label_selector(&v.owner.name)),
        ..Default::default()
    }]
}
