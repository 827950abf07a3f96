//! The settings as given: every environment variable of the Go middleware plus
//! the new ones, each also a `--flag`. Values stay strings here so that
//! [`super::Config::from_raw`] can name the variable in every error.

use clap::Parser;
use cmw_contract::settings::*;

/// claude-middleware: a streaming proxy that spreads Anthropic API calls over
/// the healthy accounts of a claude-relay-service backend.
#[derive(Debug, Default, Clone, Parser)]
#[command(name = "claude-middleware", version, about, long_about = None)]
pub struct RawSettings {
    #[arg(long, env = PORT.env, help = PORT.help("Listen port for traffic, /health, /ready and /metrics"))]
    pub port: Option<String>,
    #[arg(long, env = GIN_MODE.env, help = GIN_MODE.help("debug, release or production (compatibility with the Go middleware; sets the log level)"))]
    pub gin_mode: Option<String>,
    #[arg(long, env = REDIS_HOST.env, help = REDIS_HOST.help("Redis host of the relay"))]
    pub redis_host: Option<String>,
    #[arg(long, env = REDIS_PORT.env, help = REDIS_PORT.help("Redis port"))]
    pub redis_port: Option<String>,
    /// Redis password
    #[arg(long, env = REDIS_PASSWORD.env, hide_env_values = true)]
    pub redis_password: Option<String>,
    #[arg(long, env = REDIS_DB.env, help = REDIS_DB.help("Redis database number"))]
    pub redis_db: Option<String>,
    /// redis://[:password@]host:port/db or rediss://…; overrides REDIS_HOST/PORT/PASSWORD/DB
    #[arg(long, env = REDIS_URL.env, hide_env_values = true)]
    pub redis_url: Option<String>,
    #[arg(long, env = TARGET_URL.env, help = TARGET_URL.help("The claude-relay-service backend"))]
    pub target_url: Option<String>,
    #[arg(long, env = PROXY_TIMEOUT.env, help = PROXY_TIMEOUT.help("Idle-read timeout between upstream chunks, in seconds or as 5m"))]
    pub proxy_timeout: Option<String>,
    #[arg(long, env = MIDDLEWARE_AUTH_ENABLED.env, help = MIDDLEWARE_AUTH_ENABLED.help("Require a client API key"))]
    pub middleware_auth_enabled: Option<String>,
    /// Allowed client keys, comma separated
    #[arg(long, env = MIDDLEWARE_API_KEYS.env, hide_env_values = true)]
    pub middleware_api_keys: Option<String>,
    /// File of allowed client keys (one per line or comma separated), re-read when it changes
    #[arg(long, env = MIDDLEWARE_API_KEYS_FILE.env)]
    pub middleware_api_keys_file: Option<String>,
    #[arg(long, env = MIDDLEWARE_API_KEY_PREFIX.env, help = MIDDLEWARE_API_KEY_PREFIX.help("Required client key prefix"))]
    pub middleware_api_key_prefix: Option<String>,
    #[arg(long, env = LOG_FORMAT.env, help = LOG_FORMAT.help("text or json"))]
    pub log_format: Option<String>,
    #[arg(long, env = ACCOUNT_REFRESH_INTERVAL.env, help = ACCOUNT_REFRESH_INTERVAL.help("How often the account pool is re-read from Redis"))]
    pub account_refresh_interval: Option<String>,
    #[arg(long, env = COOLDOWN_RATE_LIMIT.env, help = COOLDOWN_RATE_LIMIT.help("Cooldown after a 429 that carries no reset time"))]
    pub cooldown_rate_limit: Option<String>,
    #[arg(long, env = COOLDOWN_AUTH.env, help = COOLDOWN_AUTH.help("Cooldown after a 401/403"))]
    pub cooldown_auth: Option<String>,
    #[arg(long, env = COOLDOWN_SERVER_ERROR.env, help = COOLDOWN_SERVER_ERROR.help("Cooldown after a 5xx from the account"))]
    pub cooldown_server_error: Option<String>,
    #[arg(long, env = COOLDOWN_OVERLOADED.env, help = COOLDOWN_OVERLOADED.help("Cooldown after a 529 / overloaded_error with no retry-after"))]
    pub cooldown_overloaded: Option<String>,
    #[arg(long, env = STICKY_SESSION_TTL.env, help = STICKY_SESSION_TTL.help("Session → account affinity, renewed on use; 0 turns stickiness off"))]
    pub sticky_session_ttl: Option<String>,
    #[arg(long, env = MAX_BODY_BYTES.env, help = MAX_BODY_BYTES.help("Larger request bodies get 413"))]
    pub max_body_bytes: Option<String>,
    #[arg(long, env = RETRY_ATTEMPTS.env, help = RETRY_ATTEMPTS.help("Extra attempts on other accounts"))]
    pub retry_attempts: Option<String>,
    #[arg(long, env = SHARED_HEALTH.env, help = SHARED_HEALTH.help("Share cooldowns and stickiness through Redis"))]
    pub shared_health: Option<String>,
    #[arg(long, env = HEALTH_KEY_PREFIX.env, help = HEALTH_KEY_PREFIX.help("Prefix of the proxy's own Redis keys"))]
    pub health_key_prefix: Option<String>,
    #[arg(long, env = TARGET_V1_PATH.env, help = TARGET_V1_PATH.help("Relay path that the proxy's `/v1/` prefix is forwarded to; `/v1` keeps it"))]
    pub target_v1_path: Option<String>,
    /// PEM file of CA certificates trusted for an https TARGET_URL, besides the Web PKI roots
    #[arg(long, env = TARGET_CA_FILE.env)]
    pub target_ca_file: Option<String>,
    #[arg(long, env = SHUTDOWN_DELAY.env, help = SHUTDOWN_DELAY.help("After SIGTERM: how long /ready answers 503 while new connections are still served, before the listener closes"))]
    pub shutdown_delay: Option<String>,
    #[arg(long, env = DRAIN_TIMEOUT.env, help = DRAIN_TIMEOUT.help("How long in-flight requests may finish once the listener closes"))]
    pub drain_timeout: Option<String>,
    #[arg(long, env = CLIENT_IDLE_TIMEOUT.env, help = CLIENT_IDLE_TIMEOUT.help("An HTTP/1 client connection with no request in flight and none started for this long is closed: a request head sent too slowly, an idle keep-alive connection"))]
    pub client_idle_timeout: Option<String>,
    #[arg(long, env = WORKER_THREADS.env, help = WORKER_THREADS.help("Threads serving traffic; 0: one per CPU the process may use. With one, a single-threaded runtime serves everything"))]
    pub worker_threads: Option<String>,
}
