//! Prometheus metrics, served as text on `/metrics`.

mod handles;

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::selection::FailureKind;
use crate::usage::{ModelFamily, Usage};
use handles::{RequestCounters, TokenCounters};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub status: u16,
    pub outcome: RequestOutcome,
}

/// How a proxied request ended, as a metric label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Completed, whatever the status the backend gave.
    Completed,
    /// Refused by the proxy itself (auth, body size, no account, bad path).
    Refused,
    /// The backend could not be reached or timed out before answering.
    BackendError,
    /// The stream broke: upstream error or idle timeout after the head was sent.
    StreamError,
    /// The client went away before the end.
    ClientClosed,
    /// The relay's own limit (its per-IP limit), passed to the client.
    RelayLimited,
    /// The relay's own error (no account, internal), passed to the client.
    RelayError,
}

impl RequestOutcome {
    /// Every outcome, each at its own discriminant.
    pub const ALL: [RequestOutcome; 7] = [
        Self::Completed,
        Self::Refused,
        Self::BackendError,
        Self::StreamError,
        Self::ClientClosed,
        Self::RelayLimited,
        Self::RelayError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Refused => "refused",
            Self::BackendError => "backend_error",
            Self::StreamError => "stream_error",
            Self::ClientClosed => "client_closed",
            Self::RelayLimited => "relay_limited",
            Self::RelayError => "relay_error",
        }
    }
}

/// The label value is the log's word (`relay_limited`), so that a query and
/// a log search use the same one.
impl EncodeLabelValue for RequestOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabels {
    /// The first 8 characters of the id: the whole id is a credential.
    pub account: String,
    pub reason: &'static str,
}

/// Tokens by account (8-character prefix), model family and kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub account: String,
    pub model_family: &'static str,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountIdLabels {
    /// The first 8 characters of the id.
    pub account: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub upstream_latency: Histogram,
    pub time_to_first_byte: Histogram,
    pub retries: Family<ReasonLabels, Counter>,
    pub inflight_streams: Gauge,
    pub pool_accounts: Gauge,
    pub cooling_accounts: Gauge,
    pub account_cooldown_seconds: Family<AccountLabels, Gauge<f64, AtomicU64>>,
    pub account_healthy: Family<AccountIdLabels, Gauge>,
    pub redis_errors: Counter,
    pub redis_last_success_age_seconds: Gauge<f64, AtomicU64>,
    pub tokens: Family<TokenLabels, Counter>,
    pub session_repins: Counter,
    /// Handles into `requests` and `tokens`, resolved on first use.
    request_counters: RequestCounters,
    token_counters: TokenCounters,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ]
    .into_iter()
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("claude_middleware");
        let metrics = Self {
            requests: Family::default(),
            upstream_latency: Histogram::new(latency_buckets()),
            time_to_first_byte: Histogram::new(latency_buckets()),
            retries: Family::default(),
            inflight_streams: Gauge::default(),
            pool_accounts: Gauge::default(),
            cooling_accounts: Gauge::default(),
            account_cooldown_seconds: Family::default(),
            account_healthy: Family::default(),
            redis_errors: Counter::default(),
            redis_last_success_age_seconds: Gauge::default(),
            tokens: Family::default(),
            session_repins: Counter::default(),
            request_counters: RequestCounters::default(),
            token_counters: TokenCounters::default(),
            registry: Registry::default(),
        };
        metrics.register_usage(&mut registry);
        registry.register(
            "requests",
            "Proxied requests by route prefix, final status and outcome",
            metrics.requests.clone(),
        );
        registry.register(
            "upstream_latency_seconds",
            "Time from sending a request to the backend to its response head",
            metrics.upstream_latency.clone(),
        );
        registry.register(
            "time_to_first_byte_seconds",
            "Time from the client's request to the first body byte sent back",
            metrics.time_to_first_byte.clone(),
        );
        registry.register(
            "retries",
            "Attempts retried on another account, by the failure that caused them",
            metrics.retries.clone(),
        );
        registry.register(
            "inflight_streams",
            "Responses currently streaming to clients",
            metrics.inflight_streams.clone(),
        );
        registry.register(
            "pool_accounts",
            "Schedulable accounts in the current pool",
            metrics.pool_accounts.clone(),
        );
        registry.register(
            "cooling_accounts",
            "Accounts in cooldown",
            metrics.cooling_accounts.clone(),
        );
        registry.register(
            "account_cooldown_seconds",
            "Seconds until an account in cooldown returns to rotation, by account and reason",
            metrics.account_cooldown_seconds.clone(),
        );
        registry.register(
            "account_healthy",
            "1 when a schedulable account is in rotation, 0 while it cools down",
            metrics.account_healthy.clone(),
        );
        registry.register(
            "redis_errors",
            "Failed account refreshes from Redis",
            metrics.redis_errors.clone(),
        );
        registry.register(
            "redis_last_success_age_seconds",
            "Seconds since Redis last answered an account refresh (-1 before the first)",
            metrics.redis_last_success_age_seconds.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    fn register_usage(&self, registry: &mut Registry) {
        registry.register(
            "tokens",
            "Tokens of successful answers as Anthropic counts them, by account, model family and \
             kind (input, output, cache_read, cache_creation); the prompt-cache hit ratio is \
             cache_read / (input + cache_read + cache_creation)",
            self.tokens.clone(),
        );
        registry.register(
            "session_repins",
            "Requests of a sticky session served by another account than the session's, \
             because that one was cooling down or failed (its prompt cache is lost)",
            self.session_repins.clone(),
        );
    }

    /// Adds one answer's tokens.
    pub fn record_usage(&self, account: &str, model_family: ModelFamily, usage: &Usage) {
        self.token_counters
            .add(&self.tokens, account, model_family, usage);
    }

    /// Counts one proxied request.
    pub fn record_request(&self, labels: RequestLabels) {
        self.request_counters.inc(&self.requests, labels);
    }

    pub fn record_retry(&self, kind: FailureKind) {
        self.retries
            .get_or_create(&ReasonLabels {
                reason: kind.as_str(),
            })
            .inc();
    }

    pub fn observe_ttfb(&self, elapsed: Duration) {
        self.time_to_first_byte.observe(elapsed.as_secs_f64());
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
