//! The proxy Deployment: env per the proxy contract (proxy.md), hardened pod,
//! probes, rollout settings, and a drain-friendly grace period.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext,
    TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::{child_meta, common_labels, label_selector};
use super::{CONTAINER_PORT, PORT_NAME, RenderInput};

pub const CONTAINER_NAME: &str = "proxy";
/// Pod-template annotation with the hash of the Redis password Secret data.
pub const REDIS_PASSWORD_HASH_ANNOTATION: &str = "middleware.claude-relay.io/redis-password-hash";
pub const API_KEYS_DIR: &str = "/etc/claude-middleware/api-keys";
pub const API_KEYS_FILE: &str = "keys";
/// The distroless nonroot user.
pub const RUN_AS: i64 = 65532;

pub fn render(input: &RenderInput<'_>) -> Deployment {
    let spec = &input.cr.spec;
    let mut template_labels = spec.pod.labels.clone();
    template_labels.extend(common_labels(input.cr));
    let mut template_annotations = spec.pod.annotations.clone();
    if let Some(hash) = &input.redis_password_hash {
        template_annotations.insert(REDIS_PASSWORD_HASH_ANNOTATION.into(), hash.clone());
    }

    let (volumes, mounts) = volumes(input);
    let container = Container {
        name: CONTAINER_NAME.into(),
        image: Some(input.image.clone()),
        image_pull_policy: Some(spec.image_pull_policy.as_str().into()),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.into()),
            container_port: CONTAINER_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        env: Some(env(input)),
        resources: Some(spec.resources.clone().unwrap_or_else(default_resources)),
        liveness_probe: Some(probe("/health", 10, 3)),
        readiness_probe: Some(probe("/ready", 5, 2)),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    };

    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        // The proxy never talks to the API server.
        automount_service_account_token: Some(false),
        // Service links would inject REDIS_PORT=tcp://… for a Service named redis.
        enable_service_links: Some(false),
        // No shell in the image for a preStop sleep: the proxy drains on SIGTERM
        // itself, so give it the drain time plus a margin.
        termination_grace_period_seconds: Some(
            input.drain_seconds + super::input::GRACE_MARGIN_SECONDS,
        ),
        service_account_name: spec.pod.service_account_name.clone(),
        priority_class_name: spec.pod.priority_class_name.clone(),
        node_selector: non_empty(spec.pod.node_selector.clone()),
        tolerations: (!spec.pod.tolerations.is_empty()).then(|| spec.pod.tolerations.clone()),
        affinity: spec.pod.affinity.clone(),
        topology_spread_constraints: Some(
            spec.pod
                .topology_spread_constraints
                .clone()
                .unwrap_or_else(|| default_spread(input)),
        ),
        image_pull_secrets: (!spec.image_pull_secrets.is_empty())
            .then(|| spec.image_pull_secrets.clone()),
        ..Default::default()
    };

    Deployment {
        metadata: child_meta(input.cr),
        spec: Some(DeploymentSpec {
            // Left to the HPA when autoscaling is on, so SSA releases the field.
            replicas: (!input.autoscaling()).then_some(spec.replicas),
            selector: label_selector(input.cr),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(spec.rollout.max_unavailable.clone()),
                    max_surge: Some(spec.rollout.max_surge.clone()),
                }),
            }),
            revision_history_limit: Some(5),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(template_labels),
                    annotations: non_empty(template_annotations),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The proxy's environment (names exactly as proxy.md). Tuning variables are
/// set only when the CR sets them, so the proxy's own defaults apply otherwise.
fn env(input: &RenderInput<'_>) -> Vec<EnvVar> {
    let spec = &input.cr.spec;
    let mut env = vec![
        plain("PORT", CONTAINER_PORT.to_string()),
        plain("TARGET_URL", spec.target.url.clone()),
        plain("PROXY_TIMEOUT", spec.target.timeout_seconds.to_string()),
        plain("REDIS_HOST", spec.redis.host.clone()),
        plain("REDIS_PORT", spec.redis.port.to_string()),
        plain("REDIS_DB", spec.redis.db.to_string()),
    ];
    if let Some(secret) = &spec.redis.password_secret_ref {
        env.push(EnvVar {
            name: "REDIS_PASSWORD".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.name.clone(),
                    key: secret.key.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            value: None,
        });
    }
    env.push(plain(
        "MIDDLEWARE_AUTH_ENABLED",
        spec.auth.enabled.to_string(),
    ));
    env.push(plain("MIDDLEWARE_API_KEY_PREFIX", spec.auth.prefix.clone()));
    if spec.auth.api_keys_secret_ref.is_some() {
        env.push(plain(
            "MIDDLEWARE_API_KEYS_FILE",
            format!("{API_KEYS_DIR}/{API_KEYS_FILE}"),
        ));
    }
    let p = &spec.proxy;
    if let Some(level) = p.log_level {
        let mode = match level {
            crate::crd::LogLevel::Debug => "debug",
            crate::crd::LogLevel::Info => "release",
        };
        env.push(plain("GIN_MODE", mode.into()));
    }
    if let Some(format) = p.log_format {
        let f = match format {
            crate::crd::LogFormat::Text => "text",
            crate::crd::LogFormat::Json => "json",
        };
        env.push(plain("LOG_FORMAT", f.into()));
    }
    let optional: [(&str, Option<String>); 12] = [
        ("TARGET_V1_PATH", spec.target.v1_path.clone()),
        (
            "ACCOUNT_REFRESH_INTERVAL",
            p.account_refresh_interval.clone(),
        ),
        ("COOLDOWN_RATE_LIMIT", p.cooldown_rate_limit.clone()),
        ("COOLDOWN_AUTH", p.cooldown_auth.clone()),
        ("COOLDOWN_SERVER_ERROR", p.cooldown_server_error.clone()),
        ("COOLDOWN_OVERLOADED", p.cooldown_overloaded.clone()),
        ("STICKY_SESSION_TTL", p.sticky_session_ttl.clone()),
        ("MAX_BODY_BYTES", p.max_body_bytes.map(|v| v.to_string())),
        ("RETRY_ATTEMPTS", p.retry_attempts.map(|v| v.to_string())),
        ("SHARED_HEALTH", p.shared_health.map(|v| v.to_string())),
        ("HEALTH_KEY_PREFIX", p.health_key_prefix.clone()),
        ("DRAIN_TIMEOUT", p.drain_timeout.clone()),
    ];
    env.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| plain(k, v))),
    );
    env
}

fn volumes(input: &RenderInput<'_>) -> (Vec<Volume>, Vec<VolumeMount>) {
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
    if let Some(secret) = &input.cr.spec.auth.api_keys_secret_ref {
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

fn plain(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
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

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
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

fn default_spread(input: &RenderInput<'_>) -> Vec<TopologySpreadConstraint> {
    vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "kubernetes.io/hostname".into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(label_selector(input.cr)),
        ..Default::default()
    }]
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testdata::{full, input, minimal};

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
        let d = render(&input(&cr, None));
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
        let d = render(&input(&cr, None));
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
        let d = render(&input(&cr, Some("abc123".into())));
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
