//! Configuration: [`RawSettings`] (flags and environment, as strings) is turned
//! into a validated [`Config`] by a pure function, so every rule is unit-tested
//! and every error names the variable that caused it.

mod duration;
mod raw;

use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

pub use duration::parse_duration;
pub use raw::RawSettings;

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

/// Where the relay's Redis lives; `REDIS_URL` wins over the separate variables.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// A `redis://` or `rediss://` URL, password included; never logged.
    pub url: String,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url_password(&self.url))
    }
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
    pub proxy_timeout: Duration,
    pub auth: AuthConfig,
    pub account_refresh_interval: Duration,
    pub cooldowns: CooldownDefaults,
    pub sticky_session_ttl: Duration,
    pub max_body_bytes: u64,
    pub retry_attempts: u32,
    pub shared_health: bool,
    pub health_key_prefix: String,
    pub drain_timeout: Duration,
}

impl Config {
    /// Validates the raw settings. Empty values count as unset, as in the Go
    /// middleware's `getEnv(key, default)`.
    pub fn from_raw(raw: &RawSettings) -> Result<Self, ConfigError> {
        let port = parse_port("PORT", value(&raw.port).unwrap_or("8080"))?;
        let debug_logs = match value(&raw.gin_mode).unwrap_or("debug") {
            "debug" => true,
            // The Go program panicked on `production`; here it means release.
            "release" | "production" | "test" => false,
            other => {
                return Err(ConfigError::new(
                    "GIN_MODE",
                    format!("{other:?} is not one of debug, release, production, test"),
                ));
            }
        };
        let log_format = match value(&raw.log_format).unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    format!("{other:?} is not one of text, json"),
                ));
            }
        };
        let redis = redis_target(raw)?;
        let target = parse_target(value(&raw.target_url).unwrap_or("http://localhost:3001"))?;
        let proxy_timeout = duration("PROXY_TIMEOUT", &raw.proxy_timeout, "300")?;
        if proxy_timeout.is_zero() {
            return Err(ConfigError::new("PROXY_TIMEOUT", "must be greater than 0"));
        }
        let auth = auth_config(raw)?;
        let account_refresh_interval = duration(
            "ACCOUNT_REFRESH_INTERVAL",
            &raw.account_refresh_interval,
            "30s",
        )?;
        if account_refresh_interval < Duration::from_millis(100) {
            return Err(ConfigError::new(
                "ACCOUNT_REFRESH_INTERVAL",
                "must be at least 100ms",
            ));
        }
        let cooldowns = CooldownDefaults {
            rate_limit: duration("COOLDOWN_RATE_LIMIT", &raw.cooldown_rate_limit, "1h")?,
            auth: duration("COOLDOWN_AUTH", &raw.cooldown_auth, "30m")?,
            server_error: duration("COOLDOWN_SERVER_ERROR", &raw.cooldown_server_error, "10m")?,
            overloaded: duration("COOLDOWN_OVERLOADED", &raw.cooldown_overloaded, "15s")?,
        };
        let target_v1_path = v1_path(value(&raw.target_v1_path).unwrap_or("/api/v1"))?;
        let max_body_bytes = value(&raw.max_body_bytes)
            .unwrap_or("33554432")
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                ConfigError::new("MAX_BODY_BYTES", "expected a positive number of bytes")
            })?;
        let retry_attempts = value(&raw.retry_attempts)
            .unwrap_or("2")
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= 10)
            .ok_or_else(|| {
                ConfigError::new("RETRY_ATTEMPTS", "expected a whole number from 0 to 10")
            })?;
        let health_key_prefix = value(&raw.health_key_prefix)
            .unwrap_or("claude-middleware:")
            .to_string();
        if health_key_prefix.starts_with("claude:") {
            // The relay owns claude:*; the proxy never writes there.
            return Err(ConfigError::new(
                "HEALTH_KEY_PREFIX",
                "must not start with claude: (the relay's own keys)",
            ));
        }
        Ok(Self {
            port,
            debug_logs,
            log_format,
            redis,
            target,
            target_v1_path,
            proxy_timeout,
            auth,
            account_refresh_interval,
            cooldowns,
            sticky_session_ttl: duration("STICKY_SESSION_TTL", &raw.sticky_session_ttl, "1h")?,
            max_body_bytes,
            retry_attempts,
            shared_health: parse_bool(
                "SHARED_HEALTH",
                value(&raw.shared_health).unwrap_or("true"),
            )?,
            health_key_prefix,
            drain_timeout: duration("DRAIN_TIMEOUT", &raw.drain_timeout, "30s")?,
        })
    }
}

/// Empty or whitespace-only means unset.
fn value(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn parse_port(variable: &'static str, text: &str) -> Result<u16, ConfigError> {
    text.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
        ConfigError::new(variable, format!("{text:?} is not a port number (1-65535)"))
    })
}

fn parse_bool(variable: &'static str, text: &str) -> Result<bool, ConfigError> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            variable,
            format!("{text:?} is not true or false"),
        )),
    }
}

fn duration(
    variable: &'static str,
    raw: &Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = value(raw).unwrap_or(default);
    parse_duration(text).map_err(|reason| ConfigError::new(variable, format!("{text:?}: {reason}")))
}

fn parse_target(text: &str) -> Result<Uri, ConfigError> {
    let invalid = |why: &str| ConfigError::new("TARGET_URL", format!("{text:?} {why}"));
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
            "TARGET_V1_PATH",
            format!("{text:?} is not an absolute path like /api/v1 (letters, digits, - . _ ~)"),
        ));
    }
    Ok(path.to_string())
}

fn redis_target(raw: &RawSettings) -> Result<RedisTarget, ConfigError> {
    if let Some(url) = value(&raw.redis_url) {
        let parsed = redis::parse_redis_url(url)
            .filter(|u| matches!(u.scheme(), "redis" | "rediss"))
            .ok_or_else(|| {
                ConfigError::new(
                    "REDIS_URL",
                    "expected redis://[:password@]host:port/db or rediss://…",
                )
            })?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::new("REDIS_URL", "has no host"));
        }
        return Ok(RedisTarget {
            url: url.to_string(),
        });
    }
    let host = value(&raw.redis_host).unwrap_or("localhost");
    if host.contains(['/', '@', ' ']) {
        return Err(ConfigError::new(
            "REDIS_HOST",
            format!("{host:?} is not a host name"),
        ));
    }
    let port = parse_port("REDIS_PORT", value(&raw.redis_port).unwrap_or("6379"))?;
    let db_text = value(&raw.redis_db).unwrap_or("0");
    let db = db_text.parse::<u32>().map_err(|_| {
        ConfigError::new("REDIS_DB", format!("{db_text:?} is not a database number"))
    })?;
    // The password is not trimmed: spaces may be part of it.
    let password = raw.redis_password.as_deref().filter(|p| !p.is_empty());
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let auth = password
        .map(|p| format!(":{}@", percent_encode_userinfo(p)))
        .unwrap_or_default();
    Ok(RedisTarget {
        url: format!("redis://{auth}{host}:{port}/{db}"),
    })
}

fn auth_config(raw: &RawSettings) -> Result<AuthConfig, ConfigError> {
    let enabled = parse_bool(
        "MIDDLEWARE_AUTH_ENABLED",
        value(&raw.middleware_auth_enabled).unwrap_or("false"),
    )?;
    let prefix = raw
        .middleware_api_key_prefix
        .clone()
        .unwrap_or_else(|| "cr_".to_string());
    let inline_keys = crate::auth::parse_key_list(value(&raw.middleware_api_keys).unwrap_or(""));
    let keys_file = value(&raw.middleware_api_keys_file).map(PathBuf::from);
    if enabled && inline_keys.is_empty() && keys_file.is_none() {
        // Fail closed and say so, rather than letting every request through.
        return Err(ConfigError::new(
            "MIDDLEWARE_API_KEYS",
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

fn percent_encode_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `redis://:secret@host/0` → `redis://:***@host/0`, for logs.
pub fn redact_url_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawSettings {
        RawSettings::default()
    }

    #[test]
    fn defaults_match_the_go_middleware() {
        let config = Config::from_raw(&raw()).unwrap();
        assert_eq!(config.port, 8080);
        assert!(config.debug_logs);
        assert_eq!(config.redis.url, "redis://localhost:6379/0");
        assert_eq!(config.target, "http://localhost:3001");
        assert_eq!(config.proxy_timeout, Duration::from_secs(300));
        assert!(!config.auth.enabled);
        assert_eq!(config.auth.prefix, "cr_");
        assert_eq!(config.account_refresh_interval, Duration::from_secs(30));
        assert_eq!(config.cooldowns.rate_limit, Duration::from_secs(3600));
        assert_eq!(config.cooldowns.auth, Duration::from_secs(1800));
        assert_eq!(config.cooldowns.server_error, Duration::from_secs(600));
        assert_eq!(config.cooldowns.overloaded, Duration::from_secs(15));
        assert_eq!(config.target_v1_path, "/api/v1");
        assert_eq!(config.sticky_session_ttl, Duration::from_secs(3600));
        assert_eq!(config.max_body_bytes, 33_554_432);
        assert_eq!(config.retry_attempts, 2);
        assert!(config.shared_health);
        assert_eq!(config.health_key_prefix, "claude-middleware:");
        assert_eq!(config.drain_timeout, Duration::from_secs(30));
        assert_eq!(config.log_format, LogFormat::Text);
    }

    #[test]
    fn gin_mode_production_is_release_not_a_crash() {
        let config = Config::from_raw(&RawSettings {
            gin_mode: Some("production".into()),
            ..raw()
        })
        .unwrap();
        assert!(!config.debug_logs);
    }

    #[test]
    fn empty_values_mean_default() {
        let config = Config::from_raw(&RawSettings {
            port: Some("".into()),
            target_url: Some(" ".into()),
            ..raw()
        })
        .unwrap();
        assert_eq!(config.port, 8080);
        assert_eq!(config.target, "http://localhost:3001");
    }

    #[test]
    fn each_error_names_its_variable() {
        let cases: Vec<(RawSettings, &str)> = vec![
            (
                RawSettings {
                    port: Some("abc".into()),
                    ..raw()
                },
                "PORT",
            ),
            (
                RawSettings {
                    port: Some("70000".into()),
                    ..raw()
                },
                "PORT",
            ),
            (
                RawSettings {
                    gin_mode: Some("loud".into()),
                    ..raw()
                },
                "GIN_MODE",
            ),
            (
                RawSettings {
                    redis_port: Some("x".into()),
                    ..raw()
                },
                "REDIS_PORT",
            ),
            (
                RawSettings {
                    redis_db: Some("-1".into()),
                    ..raw()
                },
                "REDIS_DB",
            ),
            (
                RawSettings {
                    redis_url: Some("http://x".into()),
                    ..raw()
                },
                "REDIS_URL",
            ),
            (
                RawSettings {
                    target_url: Some("localhost:3001".into()),
                    ..raw()
                },
                "TARGET_URL",
            ),
            (
                RawSettings {
                    target_url: Some("ftp://relay".into()),
                    ..raw()
                },
                "TARGET_URL",
            ),
            (
                RawSettings {
                    proxy_timeout: Some("soon".into()),
                    ..raw()
                },
                "PROXY_TIMEOUT",
            ),
            (
                RawSettings {
                    proxy_timeout: Some("0".into()),
                    ..raw()
                },
                "PROXY_TIMEOUT",
            ),
            (
                RawSettings {
                    middleware_auth_enabled: Some("maybe".into()),
                    ..raw()
                },
                "MIDDLEWARE_AUTH_ENABLED",
            ),
            (
                RawSettings {
                    max_body_bytes: Some("big".into()),
                    ..raw()
                },
                "MAX_BODY_BYTES",
            ),
            (
                RawSettings {
                    retry_attempts: Some("-1".into()),
                    ..raw()
                },
                "RETRY_ATTEMPTS",
            ),
            (
                RawSettings {
                    log_format: Some("xml".into()),
                    ..raw()
                },
                "LOG_FORMAT",
            ),
            (
                RawSettings {
                    drain_timeout: Some("1 fortnight".into()),
                    ..raw()
                },
                "DRAIN_TIMEOUT",
            ),
            (
                RawSettings {
                    shared_health: Some("perhaps".into()),
                    ..raw()
                },
                "SHARED_HEALTH",
            ),
            (
                RawSettings {
                    health_key_prefix: Some("claude:mine:".into()),
                    ..raw()
                },
                "HEALTH_KEY_PREFIX",
            ),
        ];
        for (settings, variable) in cases {
            let error = Config::from_raw(&settings).unwrap_err();
            assert_eq!(error.variable, variable, "{error}");
            assert!(error.to_string().contains(variable));
            assert!(!error.to_string().contains('\n'));
        }
    }

    #[test]
    fn auth_enabled_without_keys_fails_closed() {
        let error = Config::from_raw(&RawSettings {
            middleware_auth_enabled: Some("true".into()),
            ..raw()
        })
        .unwrap_err();
        assert_eq!(error.variable, "MIDDLEWARE_API_KEYS");
        let ok = Config::from_raw(&RawSettings {
            middleware_auth_enabled: Some("true".into()),
            middleware_api_keys: Some("cr_one_1234567, cr_two_1234567".into()),
            ..raw()
        })
        .unwrap();
        assert_eq!(
            ok.auth.inline_keys,
            vec!["cr_one_1234567", "cr_two_1234567"]
        );
    }

    #[test]
    fn redis_url_overrides_parts_and_password_is_encoded() {
        let config = Config::from_raw(&RawSettings {
            redis_url: Some("redis://:pw@redis.example:6380/2".into()),
            redis_host: Some("ignored".into()),
            ..raw()
        })
        .unwrap();
        assert_eq!(config.redis.url, "redis://:pw@redis.example:6380/2");
        assert_eq!(
            format!("{:?}", config.redis),
            "redis://***@redis.example:6380/2"
        );

        let config = Config::from_raw(&RawSettings {
            redis_host: Some("redis".into()),
            redis_port: Some("6390".into()),
            redis_password: Some("p@ss word".into()),
            redis_db: Some("3".into()),
            ..raw()
        })
        .unwrap();
        assert_eq!(config.redis.url, "redis://:p%40ss%20word@redis:6390/3");
        assert!(redis::parse_redis_url(&config.redis.url).is_some());
    }

    #[test]
    fn durations_accept_units() {
        let config = Config::from_raw(&RawSettings {
            account_refresh_interval: Some("5s".into()),
            cooldown_rate_limit: Some("2m".into()),
            proxy_timeout: Some("600".into()),
            sticky_session_ttl: Some("0".into()),
            ..raw()
        })
        .unwrap();
        assert_eq!(config.account_refresh_interval, Duration::from_secs(5));
        assert_eq!(config.cooldowns.rate_limit, Duration::from_secs(120));
        assert_eq!(config.proxy_timeout, Duration::from_secs(600));
        assert_eq!(config.sticky_session_ttl, Duration::ZERO);
    }

    #[test]
    fn v1_path_is_a_plain_absolute_path() {
        let with = |path: &str| {
            Config::from_raw(&RawSettings {
                target_v1_path: Some(path.into()),
                ..raw()
            })
        };
        assert_eq!(with("/v1").unwrap().target_v1_path, "/v1");
        assert_eq!(with("/claude/v1/").unwrap().target_v1_path, "/claude/v1");
        for bad in [
            "api/v1",
            "/api/../admin",
            "/api//v1",
            "/api?x=1",
            "/",
            "/a b",
        ] {
            let error = with(bad).unwrap_err().to_string();
            assert!(error.contains("TARGET_V1_PATH"), "{bad}: {error}");
        }
    }
}
