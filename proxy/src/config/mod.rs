//! Configuration: [`RawSettings`] (flags and environment, as strings) is turned
//! into a validated [`Config`] by a pure function, so every rule is unit-tested
//! and every error names the variable that caused it. Names and defaults come
//! from the contract shared with the operator ([`cmw_contract::settings`]).

mod raw;
mod redis_url;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use cmw_contract::settings::*;
use cmw_contract::{Setting, SettingDuration};
use http::Uri;

pub use cmw_contract::parse_duration;
pub use raw::RawSettings;
pub use redis_url::{RedisTarget, redact_url_password};

/// One clear line naming the variable: start-up stops with it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl ConfigError {
    fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self {
            variable,
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The client-auth part of the configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub enabled: bool,
    pub prefix: String,
    /// Keys from `MIDDLEWARE_API_KEYS`.
    pub inline_keys: Vec<String>,
    /// `MIDDLEWARE_API_KEYS_FILE`, re-read when it changes.
    pub keys_file: Option<PathBuf>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("enabled", &self.enabled)
            .field("prefix", &self.prefix)
            .field("inline_keys", &self.inline_keys.len())
            .field("keys_file", &self.keys_file)
            .finish()
    }
}

/// Default cooldowns, used when a response names no reset time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CooldownDefaults {
    pub rate_limit: Duration,
    pub auth: Duration,
    pub server_error: Duration,
    /// 529 / `overloaded_error`: Anthropic is overloaded for everyone, so the
    /// account is only rested briefly (see README, "Cooldowns").
    pub overloaded: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub port: u16,
    /// True for GIN_MODE=debug (the Go default): debug logs.
    pub debug_logs: bool,
    pub log_format: LogFormat,
    pub redis: RedisTarget,
    pub target: Uri,
    /// Where `/v1/…` goes on the relay: claude-relay-service serves the
    /// Messages API under `/api/v1/` and has no `/v1/` route.
    pub target_v1_path: String,
    /// `TARGET_CA_FILE`: CA certificates trusted for the https target
    /// besides the Web PKI roots; read at start-up ([`crate::target_ca`]).
    pub target_ca_file: Option<PathBuf>,
    pub proxy_timeout: Duration,
    pub auth: AuthConfig,
    pub account_refresh_interval: Duration,
    pub cooldowns: CooldownDefaults,
    pub sticky_session_ttl: Duration,
    pub max_body_bytes: u64,
    pub retry_attempts: u32,
    pub shared_health: bool,
    pub health_key_prefix: String,
    /// Lame duck after SIGTERM: `/ready` is 503 but connections are still
    /// accepted, until load balancers have stopped sending new ones.
    pub shutdown_delay: Duration,
    pub drain_timeout: Duration,
    /// An HTTP/1 connection with no request for one to two of these is closed.
    pub client_idle_timeout: Duration,
    /// Threads serving traffic; `0`: one per CPU the process may use.
    pub worker_threads: u32,
}

impl Config {
    /// Validates the raw settings. Empty values count as unset, as in the Go
    /// middleware's `getEnv(key, default)`.
    pub fn from_raw(raw: &RawSettings) -> Result<Self, ConfigError> {
        let proxy_timeout = duration(&raw.proxy_timeout, PROXY_TIMEOUT)?;
        if proxy_timeout.is_zero() {
            return Err(ConfigError::new(
                PROXY_TIMEOUT.env,
                "must be greater than 0",
            ));
        }
        let account_refresh_interval =
            duration(&raw.account_refresh_interval, ACCOUNT_REFRESH_INTERVAL)?;
        if account_refresh_interval < Duration::from_millis(100) {
            return Err(ConfigError::new(
                ACCOUNT_REFRESH_INTERVAL.env,
                "must be at least 100ms",
            ));
        }
        let client_idle_timeout = duration(&raw.client_idle_timeout, CLIENT_IDLE_TIMEOUT)?;
        if client_idle_timeout < Duration::from_secs(1) {
            return Err(ConfigError::new(
                CLIENT_IDLE_TIMEOUT.env,
                "must be at least 1s",
            ));
        }
        let target = parse_target(value(&raw.target_url).unwrap_or(TARGET_URL.default))?;
        Ok(Self {
            port: number(&raw.port, PORT, |p| *p > 0, "a port number (1-65535)")?,
            debug_logs: debug_logs(raw)?,
            log_format: log_format(raw)?,
            redis: redis_url::redis_target(raw)?,
            target_v1_path: v1_path(value(&raw.target_v1_path).unwrap_or(TARGET_V1_PATH.default))?,
            target_ca_file: target_ca_file(raw, &target)?,
            target,
            proxy_timeout,
            auth: auth_config(raw)?,
            account_refresh_interval,
            cooldowns: CooldownDefaults {
                rate_limit: duration(&raw.cooldown_rate_limit, COOLDOWN_RATE_LIMIT)?,
                auth: duration(&raw.cooldown_auth, COOLDOWN_AUTH)?,
                server_error: duration(&raw.cooldown_server_error, COOLDOWN_SERVER_ERROR)?,
                overloaded: duration(&raw.cooldown_overloaded, COOLDOWN_OVERLOADED)?,
            },
            sticky_session_ttl: duration(&raw.sticky_session_ttl, STICKY_SESSION_TTL)?,
            max_body_bytes: number(
                &raw.max_body_bytes,
                MAX_BODY_BYTES,
                |n| *n > 0,
                "a positive number of bytes",
            )?,
            retry_attempts: number(
                &raw.retry_attempts,
                RETRY_ATTEMPTS,
                |n| *n <= 10,
                "a whole number from 0 to 10",
            )?,
            shared_health: boolean(&raw.shared_health, SHARED_HEALTH)?,
            health_key_prefix: health_key_prefix(raw)?,
            // 5 s (contract): kube-proxy and in-cluster ingress controllers
            // usually drop a terminating endpoint within 1-2 s; 5 s covers a
            // busy node without making every rollout noticeably slower.
            shutdown_delay: duration(&raw.shutdown_delay, SHUTDOWN_DELAY)?,
            drain_timeout: duration(&raw.drain_timeout, DRAIN_TIMEOUT)?,
            client_idle_timeout,
            worker_threads: number(
                &raw.worker_threads,
                WORKER_THREADS,
                |n| *n <= MAX_WORKER_THREADS,
                "a whole number from 0 (one per CPU) to 1024",
            )?,
        })
    }
}

const MAX_WORKER_THREADS: u32 = 1024;

impl Config {
    /// The threads that serve traffic: `WORKER_THREADS`, or with `0` the
    /// CPUs this process may use (its affinity and its cgroup's CPU quota,
    /// so a pod limited to one CPU gets one).
    pub fn serving_threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n as usize,
        }
    }
}

/// Empty or whitespace-only means unset.
fn value(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A number, or the setting's default when unset; `valid` adds the range.
fn number<T: FromStr + Copy>(
    raw: &Option<String>,
    setting: Setting<T>,
    valid: impl Fn(&T) -> bool,
    expected: &str,
) -> Result<T, ConfigError> {
    let Some(text) = value(raw) else {
        return Ok(setting.default);
    };
    text.parse::<T>()
        .ok()
        .filter(valid)
        .ok_or_else(|| ConfigError::new(setting.env, format!("{text:?} is not {expected}")))
}

fn boolean(raw: &Option<String>, setting: Setting<bool>) -> Result<bool, ConfigError> {
    let Some(text) = value(raw) else {
        return Ok(setting.default);
    };
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            setting.env,
            format!("{text:?} is not true or false"),
        )),
    }
}

fn duration(
    raw: &Option<String>,
    setting: Setting<SettingDuration>,
) -> Result<Duration, ConfigError> {
    let Some(text) = value(raw) else {
        return Ok(setting.default.get());
    };
    parse_duration(text)
        .map_err(|reason| ConfigError::new(setting.env, format!("{text:?}: {reason}")))
}

fn debug_logs(raw: &RawSettings) -> Result<bool, ConfigError> {
    match value(&raw.gin_mode).unwrap_or(GIN_MODE.default) {
        "debug" => Ok(true),
        // The Go program panicked on `production`; here it means release.
        "release" | "production" | "test" => Ok(false),
        other => Err(ConfigError::new(
            GIN_MODE.env,
            format!("{other:?} is not one of debug, release, production, test"),
        )),
    }
}

fn log_format(raw: &RawSettings) -> Result<LogFormat, ConfigError> {
    match value(&raw.log_format).unwrap_or(LOG_FORMAT.default) {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(ConfigError::new(
            LOG_FORMAT.env,
            format!("{other:?} is not one of text, json"),
        )),
    }
}

fn health_key_prefix(raw: &RawSettings) -> Result<String, ConfigError> {
    let prefix = value(&raw.health_key_prefix).unwrap_or(HEALTH_KEY_PREFIX.default);
    if prefix.starts_with("claude:") {
        // The relay owns claude:*; the proxy never writes there.
        return Err(ConfigError::new(
            HEALTH_KEY_PREFIX.env,
            "must not start with claude: (the relay's own keys)",
        ));
    }
    Ok(prefix.to_string())
}

fn parse_target(text: &str) -> Result<Uri, ConfigError> {
    let invalid = |why: &str| ConfigError::new(TARGET_URL.env, format!("{text:?} {why}"));
    let uri: Uri = text.parse().map_err(|_| invalid("is not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if uri.query().is_some() {
        return Err(invalid("must not have a query"));
    }
    Ok(uri)
}

/// Refused with an http target rather than ignored: the certificates would
/// never be checked, and a mistyped scheme would go unnoticed.
fn target_ca_file(raw: &RawSettings, target: &Uri) -> Result<Option<PathBuf>, ConfigError> {
    let Some(path) = value(&raw.target_ca_file) else {
        return Ok(None);
    };
    if target.scheme() != Some(&http::uri::Scheme::HTTPS) {
        return Err(ConfigError::new(
            TARGET_CA_FILE.env,
            format!(
                "{path:?} is set but TARGET_URL is not https:// (a CA file applies only to an https relay)"
            ),
        ));
    }
    Ok(Some(PathBuf::from(path)))
}

/// An absolute path of plain segments, without a trailing slash: it replaces
/// the `/v1` of a client path, so `..`, a query or an empty segment would
/// reach somewhere else on the relay.
fn v1_path(text: &str) -> Result<String, ConfigError> {
    let path = text.trim_end_matches('/');
    let valid_segment = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    if !path.starts_with('/') || !path[1..].split('/').all(valid_segment) {
        return Err(ConfigError::new(
            TARGET_V1_PATH.env,
            format!("{text:?} is not an absolute path like /api/v1 (letters, digits, - . _ ~)"),
        ));
    }
    Ok(path.to_string())
}

fn auth_config(raw: &RawSettings) -> Result<AuthConfig, ConfigError> {
    let enabled = boolean(&raw.middleware_auth_enabled, MIDDLEWARE_AUTH_ENABLED)?;
    let prefix = raw
        .middleware_api_key_prefix
        .clone()
        .unwrap_or_else(|| MIDDLEWARE_API_KEY_PREFIX.default.to_string());
    let inline_keys = crate::auth::parse_key_list(value(&raw.middleware_api_keys).unwrap_or(""));
    let keys_file = value(&raw.middleware_api_keys_file).map(PathBuf::from);
    if enabled && inline_keys.is_empty() && keys_file.is_none() {
        // Fail closed and say so, rather than letting every request through.
        return Err(ConfigError::new(
            MIDDLEWARE_API_KEYS.env,
            "MIDDLEWARE_AUTH_ENABLED is true but no keys are set (MIDDLEWARE_API_KEYS or MIDDLEWARE_API_KEYS_FILE)",
        ));
    }
    Ok(AuthConfig {
        enabled,
        prefix,
        inline_keys,
        keys_file,
    })
}

#[cfg(test)]
mod tests;
