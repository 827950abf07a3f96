//! Step 2: check what the schema cannot, and gather, with what dereference
//! found, everything the renderers need into one [`ValidatedMiddleware`]. The
//! renderers read only that value, never the CR: whatever reaches them has
//! passed here. Pure: no I/O.
//!
//! What the API server checks at admission (ranges, enums, CEL rules, the
//! shape of URLs and durations) lives in `crd.rs`; this step is for what a
//! schema cannot say (a port number out of range inside a URL string, a
//! duration that overflows) and for the metadata the API server fills in.

use cmw_contract::settings::{DRAIN_TIMEOUT, SHUTDOWN_DELAY};
use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use thiserror::Error;
use url::Url;

use super::dereference::Dereferenced;
use crate::crd::{
    AuthSpec, AutoscalingSpec, ClaudeMiddleware, ClaudeMiddlewareSpec, HttpRouteSpec, IngressSpec,
    MonitoringSpec, NetworkPolicySpec, PodDisruptionBudgetSpec, PodSpec, ProxySpec, PullPolicy,
    RedisSpec, RolloutSpec, ServiceMonitorSpec, ServiceSpec, TargetSpec,
};

/// The proxy's drain when the CR sets none (the proxy's `DRAIN_TIMEOUT`
/// default, from the contract).
pub const DEFAULT_DRAIN_SECONDS: i64 = DRAIN_TIMEOUT.default.get().as_secs() as i64;
/// The proxy's lame duck after SIGTERM when the CR sets none (the proxy's
/// `SHUTDOWN_DELAY` default, from the contract).
pub const DEFAULT_SHUTDOWN_DELAY_SECONDS: i64 = SHUTDOWN_DELAY.default.get().as_secs() as i64;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InvalidSpec {
    #[error("spec.target.url {url:?} is not a valid http(s) URL: {reason}")]
    TargetUrl { url: String, reason: String },
    #[error("spec.proxy.{field} {value:?} is not a duration (30s, 5m, 1h or seconds)")]
    Duration { field: &'static str, value: String },
    #[error("spec.metadata is missing {0}")]
    Metadata(&'static str),
}

/// Who the children belong to: they carry its name, live in its namespace
/// and name it as their controller.
#[derive(Clone, Debug, PartialEq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    /// The controller owner reference every child carries (deleting the CR
    /// garbage-collects them; pruning deletes only what it controls).
    pub reference: OwnerReference,
}

/// The backend the proxy forwards to.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub url: String,
    /// Explicit in the URL, else 80/443 by scheme (the NetworkPolicy's egress port).
    pub port: u16,
    pub timeout_seconds: i32,
    /// Where the proxy sends `/v1/…` on the relay; the proxy's default when `None`.
    pub v1_path: Option<String>,
}

/// A CR that passed validation, with its references resolved. A feature that
/// is switched off is `None`, so its renderer returns nothing and the
/// reconciler prunes what an earlier pass made.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedMiddleware {
    pub owner: Owner,
    /// `spec.image`, else the operator's configured default.
    pub image: String,
    pub image_pull_policy: PullPolicy,
    pub image_pull_secrets: Vec<LocalObjectReference>,
    pub replicas: i32,
    pub resources: Option<ResourceRequirements>,
    pub target: Target,
    pub redis: RedisSpec,
    /// `sha256:<hex>` of the Redis password; a change rolls the pods.
    pub redis_password_hash: Option<String>,
    pub auth: AuthSpec,
    pub proxy: ProxySpec,
    /// `spec.proxy.drainTimeout` in seconds (the pods' grace period follows it).
    pub drain_seconds: i64,
    /// `spec.proxy.shutdownDelay` in seconds (the grace period covers it too).
    pub shutdown_delay_seconds: i64,
    pub service: ServiceSpec,
    pub ingress: Option<IngressSpec>,
    pub http_route: Option<HttpRouteSpec>,
    pub service_monitor: Option<ServiceMonitorSpec>,
    pub network_policy: Option<NetworkPolicySpec>,
    pub autoscaling: Option<AutoscalingSpec>,
    pub pod_disruption_budget: Option<PodDisruptionBudgetSpec>,
    pub rollout: RolloutSpec,
    pub pod: PodSpec,
}

pub fn validate(
    cr: &ClaudeMiddleware,
    default_image: &str,
    dereferenced: Dereferenced,
) -> Result<ValidatedMiddleware, InvalidSpec> {
    let owner = owner(cr)?;
    // No `..`: a new spec field does not compile until it is decided here.
    let ClaudeMiddlewareSpec {
        image,
        image_pull_policy,
        image_pull_secrets,
        replicas,
        resources,
        target,
        redis,
        auth,
        proxy,
        service,
        ingress,
        http_route,
        monitoring,
        network_policy,
        autoscaling,
        pod_disruption_budget,
        rollout,
        pod,
    } = cr.spec.clone();
    let MonitoringSpec { service_monitor } = monitoring;
    let TargetSpec {
        url,
        timeout_seconds,
        v1_path,
    } = target;
    let Dereferenced {
        redis_password_hash,
    } = dereferenced;
    let drain_seconds = match &proxy.drain_timeout {
        Some(v) => duration_seconds("drainTimeout", v)?,
        None => DEFAULT_DRAIN_SECONDS,
    };
    let shutdown_delay_seconds = match &proxy.shutdown_delay {
        Some(v) => duration_seconds("shutdownDelay", v)?,
        None => DEFAULT_SHUTDOWN_DELAY_SECONDS,
    };
    Ok(ValidatedMiddleware {
        owner,
        image: image.unwrap_or_else(|| default_image.to_string()),
        image_pull_policy,
        image_pull_secrets,
        replicas,
        resources,
        target: Target {
            port: target_port(&url)?,
            url,
            timeout_seconds,
            v1_path,
        },
        redis,
        redis_password_hash,
        auth,
        proxy,
        drain_seconds,
        shutdown_delay_seconds,
        service,
        ingress: ingress.enabled.then_some(ingress),
        http_route: http_route.enabled.then_some(http_route),
        service_monitor: service_monitor.enabled.then_some(service_monitor),
        network_policy: network_policy.enabled.then_some(network_policy),
        autoscaling: autoscaling.enabled.then_some(autoscaling),
        pod_disruption_budget: pod_disruption_budget
            .enabled
            .then_some(pod_disruption_budget),
        rollout,
        pod,
    })
}

/// Name, namespace and uid are set on every object the API server returns;
/// checked anyway, since a child without them would be misplaced or orphaned.
fn owner(cr: &ClaudeMiddleware) -> Result<Owner, InvalidSpec> {
    let name = cr
        .metadata
        .name
        .clone()
        .ok_or(InvalidSpec::Metadata("name"))?;
    let namespace = cr
        .metadata
        .namespace
        .clone()
        .ok_or(InvalidSpec::Metadata("namespace"))?;
    let reference = cr
        .controller_owner_ref(&())
        .ok_or(InvalidSpec::Metadata("uid"))?;
    Ok(Owner {
        name,
        namespace,
        reference,
    })
}

/// The port the proxy dials on the backend: explicit, else 80/443 by scheme.
pub fn target_port(raw: &str) -> Result<u16, InvalidSpec> {
    let bad = |reason: &str| InvalidSpec::TargetUrl {
        url: raw.to_string(),
        reason: reason.into(),
    };
    let url = Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    url.port_or_known_default().ok_or_else(|| bad("no port"))
}

fn duration_seconds(field: &'static str, raw: &str) -> Result<i64, InvalidSpec> {
    parse_duration_seconds(raw).ok_or_else(|| InvalidSpec::Duration {
        field,
        value: raw.to_string(),
    })
}

/// A duration in whole seconds, read with the proxy's own parser.
pub fn parse_duration_seconds(raw: &str) -> Option<i64> {
    let duration = cmw_contract::parse_duration(raw).ok()?;
    i64::try_from(duration.as_secs()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testdata::{TEST_IMAGE, full, minimal};

    #[test]
    fn target_port_from_url_or_scheme() {
        assert_eq!(target_port("http://claude-relay:3001"), Ok(3001));
        assert_eq!(target_port("http://relay"), Ok(80));
        assert_eq!(target_port("https://relay.example/api"), Ok(443));
        assert!(target_port("ftp://relay").is_err());
        assert!(target_port("http://").is_err());
        // The schema's pattern allows five digits; only a parse sees the range.
        assert!(target_port("http://relay:99999").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_seconds("30s"), Some(30));
        assert_eq!(parse_duration_seconds("5m"), Some(300));
        assert_eq!(parse_duration_seconds("1h"), Some(3600));
        assert_eq!(parse_duration_seconds("45"), Some(45));
        assert_eq!(parse_duration_seconds("x"), None);
        assert_eq!(parse_duration_seconds(""), None);
        assert_eq!(parse_duration_seconds("9999999999999999999h"), None);
    }

    #[test]
    fn switched_off_features_are_none_and_defaults_apply() {
        let v = validate(&minimal(), TEST_IMAGE, Dereferenced::default()).expect("valid");
        assert_eq!(v.image, TEST_IMAGE);
        assert_eq!(v.drain_seconds, DEFAULT_DRAIN_SECONDS);
        assert_eq!(v.shutdown_delay_seconds, DEFAULT_SHUTDOWN_DELAY_SECONDS);
        assert_eq!(v.target.port, 3001);
        assert!(v.ingress.is_none() && v.autoscaling.is_none());
        assert!(v.network_policy.is_some() && v.pod_disruption_budget.is_some());
        assert_eq!(v.owner.reference.kind, "ClaudeMiddleware");
        assert_eq!(v.owner.reference.controller, Some(true));
    }

    #[test]
    fn full_cr_carries_its_image_drain_and_secret_hash() {
        let hash = Dereferenced {
            redis_password_hash: Some("sha256:x".into()),
        };
        let v = validate(&full(), "default", hash).expect("valid");
        assert_ne!(v.image, "default");
        assert_eq!(v.drain_seconds, 60);
        assert_eq!(v.shutdown_delay_seconds, 10);
        assert_eq!(v.target.port, 443);
        assert_eq!(v.redis_password_hash.as_deref(), Some("sha256:x"));
        assert!(v.ingress.is_some() && v.autoscaling.is_some());
    }

    #[test]
    fn invalid_input_names_the_field() {
        let mut cr = minimal();
        cr.spec.target.url = "http://relay:99999".into();
        let err = validate(&cr, TEST_IMAGE, Dereferenced::default()).expect_err("bad port");
        assert!(err.to_string().contains("spec.target.url"), "{err}");

        let mut cr = minimal();
        cr.spec.proxy.drain_timeout = Some("9999999999999999999h".into());
        let err = validate(&cr, TEST_IMAGE, Dereferenced::default()).expect_err("overflow");
        assert!(err.to_string().contains("spec.proxy.drainTimeout"), "{err}");

        let mut cr = minimal();
        cr.metadata.uid = None;
        assert_eq!(
            validate(&cr, TEST_IMAGE, Dereferenced::default()),
            Err(InvalidSpec::Metadata("uid"))
        );
    }
}
