//! The proxy Deployment: rollout settings and the pod template. The pod is
//! built in `pod.rs`, its container in `container.rs` (environment in
//! `env.rs`), and both security contexts in `security.rs`.

mod container;
mod env;
mod pod;
mod security;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use container::{CONTAINER_NAME, default_resources};
pub use pod::GRACE_MARGIN_SECONDS;
pub use security::RUN_AS;

use super::labels::{child_meta, common_labels, label_selector};
use crate::reconcile::validate::ValidatedMiddleware;

/// Pod-template annotation with the hash of the Redis password Secret data.
pub const REDIS_PASSWORD_HASH_ANNOTATION: &str = "middleware.claude-relay.io/redis-password-hash";
pub const API_KEYS_DIR: &str = "/etc/claude-middleware/api-keys";
pub const API_KEYS_FILE: &str = "keys";

pub fn render(v: &ValidatedMiddleware) -> Deployment {
    Deployment {
        metadata: child_meta(&v.owner),
        spec: Some(DeploymentSpec {
            // Left to the HPA when autoscaling is on, so SSA releases the field.
            replicas: v.autoscaling.is_none().then_some(v.replicas),
            selector: label_selector(&v.owner.name),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(v.rollout.max_unavailable.clone()),
                    max_surge: Some(v.rollout.max_surge.clone()),
                }),
            }),
            revision_history_limit: Some(5),
            template: PodTemplateSpec {
                metadata: Some(template_meta(v)),
                spec: Some(pod::pod_spec(v)),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The user's pod labels and annotations, our labels over them, and the
/// Redis password hash (a new password rolls the pods).
fn template_meta(v: &ValidatedMiddleware) -> ObjectMeta {
    let mut labels = v.pod.labels.clone();
    labels.extend(common_labels(&v.owner.name));
    let mut annotations = v.pod.annotations.clone();
    if let Some(hash) = &v.redis_password_hash {
        annotations.insert(REDIS_PASSWORD_HASH_ANNOTATION.into(), hash.clone());
    }
    ObjectMeta {
        labels: Some(labels),
        annotations: non_empty(annotations),
        ..Default::default()
    }
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{EnvVar, Probe};

    use super::*;
    use crate::render::testdata::{full, minimal, validated};

    fn env_of(d: &Deployment) -> BTreeMap<String, EnvVar> {
        let c = &d
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        c.env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect()
    }

    #[test]
    fn minimal_env_and_replicas() {
        let cr = minimal();
        let d = render(&validated(&cr, None));
        let env = env_of(&d);
        assert_eq!(
            env["TARGET_URL"].value.as_deref(),
            Some("http://claude-relay:3001")
        );
        assert_eq!(env["PROXY_TIMEOUT"].value.as_deref(), Some("300"));
        assert_eq!(env["REDIS_PORT"].value.as_deref(), Some("6379"));
        assert!(!env.contains_key("REDIS_PASSWORD"));
        assert!(!env.contains_key("MIDDLEWARE_API_KEYS_FILE"));
        assert_eq!(d.spec.as_ref().unwrap().replicas, Some(1));
    }

    #[test]
    fn hardened_pod() {
        let cr = minimal();
        let d = render(&validated(&cr, None));
        let pod = d.spec.unwrap().template.spec.unwrap();
        let sc = pod.containers[0].security_context.clone().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.run_as_user, Some(65532));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
        assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(pod.termination_grace_period_seconds, Some(45));
        let c = &pod.containers[0];
        let path = |p: &Option<Probe>| p.clone().unwrap().http_get.unwrap().path.unwrap();
        assert_eq!(path(&c.liveness_probe), "/health");
        assert_eq!(path(&c.readiness_probe), "/ready");
        let spread = pod.topology_spread_constraints.unwrap();
        assert_eq!(spread[0].topology_key, "kubernetes.io/hostname");
        assert_eq!(spread[0].when_unsatisfiable, "ScheduleAnyway");
    }

    #[test]
    fn full_secrets_hash_and_autoscaling() {
        let cr = full();
        let d = render(&validated(&cr, Some("abc123".into())));
        let spec = d.spec.clone().unwrap();
        assert_eq!(spec.replicas, None, "replicas left to the HPA");
        let annotations = spec.template.metadata.unwrap().annotations.unwrap();
        assert_eq!(annotations[REDIS_PASSWORD_HASH_ANNOTATION], "abc123");
        let env = env_of(&d);
        let pw = env["REDIS_PASSWORD"]
            .value_from
            .clone()
            .unwrap()
            .secret_key_ref
            .unwrap();
        assert_eq!(
            (pw.name.as_str(), pw.key.as_str()),
            ("redis-auth", "password")
        );
        assert_eq!(
            env["MIDDLEWARE_API_KEYS_FILE"].value.as_deref(),
            Some("/etc/claude-middleware/api-keys/keys")
        );
        assert_eq!(env["DRAIN_TIMEOUT"].value.as_deref(), Some("1m"));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.termination_grace_period_seconds, Some(75));
        let vol = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "api-keys")
            .unwrap();
        let items = vol.secret.unwrap().items.unwrap();
        assert_eq!(
            (items[0].key.as_str(), items[0].path.as_str()),
            ("keys", "keys")
        );
        let mount = pod.containers[0].volume_mounts.clone().unwrap();
        assert!(mount.iter().any(|m| m.mount_path == API_KEYS_DIR
            && m.read_only == Some(true)
            && m.sub_path.is_none()));
    }
}
