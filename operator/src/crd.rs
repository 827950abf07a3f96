//! The `ClaudeMiddleware` v1alpha1 API: its fields are documented for users in
//! the README ("`ClaudeMiddleware` reference"), its names in
//! docs/architecture.md.
//!
//! Everything the API server can check is in the schema (required fields, ranges,
//! enums, CEL rules), so a bad CR is refused at `kubectl apply`. What only the
//! operator can check (referenced Secrets) is reported through status.
//!
//! Optional fields are skipped when `None` so that the schema defaults, which are
//! the serialized `Default` of each sub-struct, never contain `null`.

// kube-derive takes one `printcolumn(...)` per column; clippy sees repeated `type_`.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use cmw_contract::{DURATION_PATTERN, settings};
use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "middleware.claude-relay.io";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "ClaudeMiddleware";

/// Desired state of one proxy deployment.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "middleware.claude-relay.io",
    version = "v1alpha1",
    kind = "ClaudeMiddleware",
    plural = "claudemiddlewares",
    singular = "claudemiddleware",
    shortname = "cmw",
    category = "claude",
    namespaced,
    status = "ClaudeMiddlewareStatus",
    derive = "PartialEq",
    doc = "A claude-middleware proxy deployment in front of a claude-relay-service backend",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "string",
        description = "ready/desired",
        json_path = ".status.replicasSummary"
    ),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".status.endpoint"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClaudeMiddlewareSpec {
    /// Proxy image; the operator's configured default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Desired replicas (scale subresource). Ignored on the Deployment when autoscaling is on.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// Container resources; requests 50m/64Mi, limits 200m/128Mi when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    pub target: TargetSpec,
    pub redis: RedisSpec,
    #[serde(default)]
    pub auth: AuthSpec,
    #[serde(default)]
    pub proxy: ProxySpec,
    #[serde(default)]
    pub service: ServiceSpec,
    #[serde(default)]
    pub ingress: IngressSpec,
    #[serde(default)]
    pub http_route: HttpRouteSpec,
    #[serde(default)]
    pub monitoring: MonitoringSpec,
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,
    #[serde(default)]
    pub pod_disruption_budget: PodDisruptionBudgetSpec,
    #[serde(default)]
    pub rollout: RolloutSpec,
    #[serde(default)]
    pub pod: PodSpec,
}

fn default_replicas() -> i32 {
    1
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// The claude-relay-service backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSpec {
    /// Base URL of the backend, http:// or https://.
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/:?#]+(:[0-9]{1,5})?(/.*)?$')").message("target.url must be an http:// or https:// URL with a host"))]
    #[schemars(length(min = 8, max = 2048))]
    pub url: String,
    /// Idle-read timeout between chunks, seconds (PROXY_TIMEOUT).
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: i32,
    /// Where `/v1/…` goes on the relay (TARGET_V1_PATH); the proxy's default
    /// is `/api/v1`, since claude-relay-service has no `/v1` route. `/v1`
    /// forwards it unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Plain segments, none of them `.` or `..` (the proxy refuses those too).
    #[schemars(
        regex(
            pattern = r"^(/([A-Za-z0-9_~-][A-Za-z0-9._~-]*|\.[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\.\.[A-Za-z0-9._~-]+))+$"
        ),
        length(max = 256)
    )]
    pub v1_path: Option<String>,
}

fn default_timeout() -> i32 {
    300
}

/// The relay's Redis (read-only for accounts).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    #[serde(default = "default_redis_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    #[serde(default)]
    #[schemars(range(min = 0, max = 255))]
    pub db: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
}

fn default_redis_port() -> i32 {
    i32::from(settings::REDIS_PORT.default)
}

/// A key of a Secret in the CR's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Client authentication. Keys live only in a Secret, never inline in the CR.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.enabled || has(self.apiKeysSecretRef)").message("auth.apiKeysSecretRef is required when auth.enabled is true"))]
pub struct AuthSpec {
    #[serde(default)]
    pub enabled: bool,
    /// Required prefix of client keys (MIDDLEWARE_API_KEY_PREFIX).
    #[serde(default = "default_prefix")]
    #[schemars(length(max = 64))]
    pub prefix: String,
    /// Secret key holding the allowed keys, one per line or comma separated; mounted as a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys_secret_ref: Option<SecretKeyRef>,
}

fn default_prefix() -> String {
    settings::MIDDLEWARE_API_KEY_PREFIX.default.into()
}

impl Default for AuthSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            prefix: default_prefix(),
            api_keys_secret_ref: None,
        }
    }
}

/// Proxy tuning; unset fields keep the proxy's own defaults.
/// Durations accept `30s`, `5m`, `1h` or plain seconds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub account_refresh_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub cooldown_rate_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub cooldown_auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub cooldown_server_error: Option<String>,
    /// After a 529 / overloaded_error with no retry-after (proxy default 15s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub cooldown_overloaded: Option<String>,
    /// `0` turns stickiness off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub sticky_session_ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 1073741824))]
    pub max_body_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub retry_attempts: Option<i32>,
    /// Share cooldowns/stickiness through Redis; `false` for a read-only Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_health: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub health_key_prefix: Option<String>,
    /// After SIGTERM, how long the proxy keeps accepting new connections
    /// (its readiness already failing) before it stops and drains (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(s|m|h)?$"))]
    pub shutdown_delay: Option<String>,
    /// How long in-flight streams may finish once the proxy stops accepting (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub drain_timeout: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn default_service_port() -> i32 {
    8080
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            type_: ServiceType::default(),
            port: default_service_port(),
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub host: Option<String>,
    #[serde(default = "default_path")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("ingress.path must start with /"))]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTls>,
    /// Extra annotations; they override the streaming-safe defaults, except that
    /// `nginx.ingress.kubernetes.io/rewrite-target` is never set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn default_path() -> String {
    "/".into()
}

impl Default for IngressSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            class_name: None,
            host: None,
            path: default_path(),
            tls: None,
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressTls {
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// A Gateway API HTTPRoute (gateway.networking.k8s.io/v1) to the Service,
/// beside or instead of `ingress`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.enabled || (has(self.parentRefs) && size(self.parentRefs) > 0)").message("httpRoute.parentRefs must name at least one Gateway when httpRoute.enabled is true"))]
pub struct HttpRouteSpec {
    #[serde(default)]
    pub enabled: bool,
    /// The Gateways (or their listeners) the route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub parent_refs: Vec<GatewayParentRef>,
    /// Host names the route answers; every host of the Gateway's listeners when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub hostnames: Vec<String>,
    /// Path prefix routed to the proxy (never rewritten: the proxy routes on the original path).
    #[serde(default = "default_path")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("httpRoute.path must start with /"))]
    #[schemars(length(max = 1024))]
    pub path: String,
    #[serde(default)]
    pub timeouts: HttpRouteTimeouts,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for HttpRouteSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            parent_refs: Vec::new(),
            hostnames: Vec::new(),
            path: default_path(),
            timeouts: HttpRouteTimeouts::default(),
            annotations: BTreeMap::new(),
        }
    }
}

/// A Gateway API ParentReference (a Gateway by default).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayParentRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The Gateway's namespace; the CR's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// A listener of the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// `gateway.networking.k8s.io` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub group: Option<String>,
    /// `Gateway` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub kind: Option<String>,
}

/// Gateway API route timeouts (`1h`, `30m`, `10s`, `500ms`; `0s` turns one off).
/// Both default to `0s`: a finite request timeout would cut every stream that
/// runs longer; idle streams are cut by the proxy (`target.timeoutSeconds`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("duration(self.request) == duration('0s') || duration(self.backendRequest) <= duration(self.request)").message("httpRoute.timeouts.backendRequest must not be longer than httpRoute.timeouts.request"))]
pub struct HttpRouteTimeouts {
    #[serde(default = "zero_duration")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub request: String,
    #[serde(default = "zero_duration")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub backend_request: String,
}

fn zero_duration() -> String {
    "0s".into()
}

impl Default for HttpRouteTimeouts {
    fn default() -> Self {
        Self {
            request: zero_duration(),
            backend_request: zero_duration(),
        }
    }
}

/// Monitoring the Prometheus Operator way.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    #[serde(default)]
    pub service_monitor: ServiceMonitorSpec,
}

/// A ServiceMonitor (monitoring.coreos.com/v1) scraping the proxy's `/metrics`
/// through the Service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    #[serde(default)]
    pub enabled: bool,
    /// Scrape interval (`30s`, `1m`); Prometheus's own when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"))]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"))]
    pub scrape_timeout: Option<String>,
    /// Extra labels on the ServiceMonitor, e.g. the ones your Prometheus's
    /// `serviceMonitorSelector` wants (`release: kube-prometheus-stack`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Who may reach the proxy port; all namespaces when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<NetworkPolicyPeer>>,
}

fn default_true() -> bool {
    true
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            from: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must be <= autoscaling.maxReplicas"))]
pub struct AutoscalingSpec {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU utilization target (percent of requests); 80 when neither target is set.
    #[serde(
        default,
        rename = "targetCPUUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 1000))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// Average memory utilization target (percent of requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub target_memory_utilization_percentage: Option<i32>,
}

fn default_min_replicas() -> i32 {
    1
}
fn default_max_replicas() -> i32 {
    3
}

impl Default for AutoscalingSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            min_replicas: default_min_replicas(),
            max_replicas: default_max_replicas(),
            target_cpu_utilization_percentage: None,
            target_memory_utilization_percentage: None,
        }
    }
}

/// PodDisruptionBudget; maxUnavailable 1 when more than one replica runs (or autoscaling is on).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.minAvailable) && has(self.maxUnavailable))").message("set at most one of podDisruptionBudget.minAvailable and podDisruptionBudget.maxUnavailable"))]
pub struct PodDisruptionBudgetSpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
}

impl Default for PodDisruptionBudgetSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            max_unavailable: None,
            min_available: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    #[serde(default = "one")]
    pub max_unavailable: IntOrString,
    #[serde(default = "one")]
    pub max_surge: IntOrString,
}

fn one() -> IntOrString {
    IntOrString::Int(1)
}

impl Default for RolloutSpec {
    fn default() -> Self {
        Self {
            max_unavailable: one(),
            max_surge: one(),
        }
    }
}

/// Pod template settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Spread across nodes (kubernetes.io/hostname, ScheduleAnyway) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// Observed state, kstatus-compliant.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaudeMiddlewareStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub updated_replicas: i32,
    /// `ready/desired`, for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas_summary: Option<String>,
    /// The pods' label selector as a string (scale subresource, HPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// In-cluster URL of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// The CRD as YAML, exactly what `claude-middleware-operator crd` prints and `crds/` holds.
pub fn crd_yaml() -> Result<String, serde_norway::Error> {
    let body = serde_norway::to_string(&ClaudeMiddleware::crd())?;
    Ok(format!(
        "# Generated by `claude-middleware-operator crd`; do not edit.\n# Regenerate: cargo run -p claude-middleware-operator -- crd > crds/claudemiddleware.yaml\n---\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_crd_is_current() {
        let generated = crd_yaml().expect("serialize CRD");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/claudemiddleware.yaml");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &generated).expect("write crds/claudemiddleware.yaml");
        }
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "crds/claudemiddleware.yaml is stale; regenerate it with\n  cargo run -p claude-middleware-operator -- crd > crds/claudemiddleware.yaml\n(or UPDATE_GOLDEN=1 cargo test -p claude-middleware-operator)"
        );
    }

    #[test]
    fn minimal_cr_deserializes_with_defaults() {
        let cr: ClaudeMiddleware = serde_norway::from_str(
            "apiVersion: middleware.claude-relay.io/v1alpha1\nkind: ClaudeMiddleware\nmetadata: {name: relay, namespace: ai}\nspec:\n  target: {url: \"http://claude-relay:3001\"}\n  redis: {host: redis}\n",
        )
        .expect("minimal CR");
        assert_eq!(cr.spec.replicas, 1);
        assert_eq!(cr.spec.target.timeout_seconds, 300);
        assert_eq!(cr.spec.redis.port, 6379);
        assert_eq!(cr.spec.auth.prefix, "cr_");
        assert!(cr.spec.network_policy.enabled);
        assert_eq!(cr.spec.service.port, 8080);
        assert!(!cr.spec.autoscaling.enabled);
    }

    #[test]
    fn schema_carries_cel_rules_and_subresources() {
        let crd = serde_json::to_string(&ClaudeMiddleware::crd()).expect("json");
        assert!(crd.contains("self.minReplicas <= self.maxReplicas"));
        assert!(crd.contains("!self.enabled || has(self.apiKeysSecretRef)"));
        assert!(crd.contains("\"labelSelectorPath\":\".status.selector\""));
        assert!(crd.contains("\"shortNames\":[\"cmw\"]"));
        assert!(crd.contains("\"categories\":[\"claude\"]"));
    }
}
