//! The settings as given: every environment variable of the Go middleware plus
//! the new ones, each also a `--flag`. Values stay strings here so that
//! [`super::Config::from_raw`] can name the variable in every error.

use clap::Parser;

/// claude-middleware: a streaming proxy that spreads Anthropic API calls over
/// the healthy accounts of a claude-relay-service backend.
#[derive(Debug, Default, Clone, Parser)]
#[command(name = "claude-middleware", version, about, long_about = None)]
pub struct RawSettings {
    /// Listen port for traffic, /health, /ready and /metrics [default: 8080]
    #[arg(long, env = "PORT")]
    pub port: Option<String>,
    /// debug, release or production (compatibility with the Go middleware; sets the log level) [default: debug]
    #[arg(long, env = "GIN_MODE")]
    pub gin_mode: Option<String>,
    /// Redis host of the relay [default: localhost]
    #[arg(long, env = "REDIS_HOST")]
    pub redis_host: Option<String>,
    /// Redis port [default: 6379]
    #[arg(long, env = "REDIS_PORT")]
    pub redis_port: Option<String>,
    /// Redis password [default: none]
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,
    /// Redis database number [default: 0]
    #[arg(long, env = "REDIS_DB")]
    pub redis_db: Option<String>,
    /// redis://[:password@]host:port/db or rediss://…; overrides REDIS_HOST/PORT/PASSWORD/DB
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// The claude-relay-service backend [default: http://localhost:3001]
    #[arg(long, env = "TARGET_URL")]
    pub target_url: Option<String>,
    /// Idle-read timeout between upstream chunks, in seconds or as 5m [default: 300]
    #[arg(long, env = "PROXY_TIMEOUT")]
    pub proxy_timeout: Option<String>,
    /// Require a client API key [default: false]
    #[arg(long, env = "MIDDLEWARE_AUTH_ENABLED")]
    pub middleware_auth_enabled: Option<String>,
    /// Allowed client keys, comma separated
    #[arg(long, env = "MIDDLEWARE_API_KEYS", hide_env_values = true)]
    pub middleware_api_keys: Option<String>,
    /// File of allowed client keys (one per line or comma separated), re-read when it changes
    #[arg(long, env = "MIDDLEWARE_API_KEYS_FILE")]
    pub middleware_api_keys_file: Option<String>,
    /// Required client key prefix [default: cr_]
    #[arg(long, env = "MIDDLEWARE_API_KEY_PREFIX")]
    pub middleware_api_key_prefix: Option<String>,
    /// text or json [default: text]
    #[arg(long, env = "LOG_FORMAT")]
    pub log_format: Option<String>,
    /// How often the account pool is re-read from Redis [default: 30s]
    #[arg(long, env = "ACCOUNT_REFRESH_INTERVAL")]
    pub account_refresh_interval: Option<String>,
    /// Cooldown after a 429 that carries no reset time [default: 1h]
    #[arg(long, env = "COOLDOWN_RATE_LIMIT")]
    pub cooldown_rate_limit: Option<String>,
    /// Cooldown after a 401/403 [default: 30m]
    #[arg(long, env = "COOLDOWN_AUTH")]
    pub cooldown_auth: Option<String>,
    /// Cooldown after a 5xx from the account [default: 10m]
    #[arg(long, env = "COOLDOWN_SERVER_ERROR")]
    pub cooldown_server_error: Option<String>,
    /// Cooldown after a 529 / overloaded_error with no retry-after [default: 15s]
    #[arg(long, env = "COOLDOWN_OVERLOADED")]
    pub cooldown_overloaded: Option<String>,
    /// Session → account affinity, renewed on use; 0 turns stickiness off [default: 1h]
    #[arg(long, env = "STICKY_SESSION_TTL")]
    pub sticky_session_ttl: Option<String>,
    /// Larger request bodies get 413 [default: 33554432]
    #[arg(long, env = "MAX_BODY_BYTES")]
    pub max_body_bytes: Option<String>,
    /// Extra attempts on other accounts [default: 2]
    #[arg(long, env = "RETRY_ATTEMPTS")]
    pub retry_attempts: Option<String>,
    /// Share cooldowns and stickiness through Redis [default: true]
    #[arg(long, env = "SHARED_HEALTH")]
    pub shared_health: Option<String>,
    /// Prefix of the proxy's own Redis keys [default: claude-middleware:]
    #[arg(long, env = "HEALTH_KEY_PREFIX")]
    pub health_key_prefix: Option<String>,
    /// Relay path that the proxy's `/v1/` prefix is forwarded to; `/v1` keeps it [default: /api/v1]
    #[arg(long, env = "TARGET_V1_PATH")]
    pub target_v1_path: Option<String>,
    /// How long in-flight requests may finish after SIGTERM [default: 30s]
    #[arg(long, env = "DRAIN_TIMEOUT")]
    pub drain_timeout: Option<String>,
}
