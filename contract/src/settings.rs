//! The proxy's environment variables and their defaults. The proxy reads
//! these names and falls back to these values; the operator renders the same
//! names. Empty values count as unset, as in the Go middleware.

use std::fmt::Display;

use crate::duration::SettingDuration;

/// One environment variable of the proxy and the value it takes when unset.
/// `Setting<()>` has no default: unset means the feature is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting<T> {
    pub env: &'static str,
    pub default: T,
}

impl<T: Display> Setting<T> {
    /// A `--help` line that shows the default.
    pub fn help(&self, what: &str) -> String {
        format!("{what} [default: {}]", self.default)
    }
}

const fn with_default<T>(env: &'static str, default: T) -> Setting<T> {
    Setting { env, default }
}

const fn without_default(env: &'static str) -> Setting<()> {
    Setting { env, default: () }
}

// The Go middleware's variables: same names, same defaults.
pub const PORT: Setting<u16> = with_default("PORT", 8080);
pub const GIN_MODE: Setting<&str> = with_default("GIN_MODE", "debug");
pub const REDIS_HOST: Setting<&str> = with_default("REDIS_HOST", "localhost");
pub const REDIS_PORT: Setting<u16> = with_default("REDIS_PORT", 6379);
pub const REDIS_PASSWORD: Setting<()> = without_default("REDIS_PASSWORD");
pub const REDIS_DB: Setting<u32> = with_default("REDIS_DB", 0);
pub const TARGET_URL: Setting<&str> = with_default("TARGET_URL", "http://localhost:3001");
pub const PROXY_TIMEOUT: Setting<SettingDuration> =
    with_default("PROXY_TIMEOUT", SettingDuration::from_secs(300));
pub const MIDDLEWARE_AUTH_ENABLED: Setting<bool> = with_default("MIDDLEWARE_AUTH_ENABLED", false);
pub const MIDDLEWARE_API_KEYS: Setting<()> = without_default("MIDDLEWARE_API_KEYS");
pub const MIDDLEWARE_API_KEY_PREFIX: Setting<&str> =
    with_default("MIDDLEWARE_API_KEY_PREFIX", "cr_");

// The proxy's own.
pub const MIDDLEWARE_API_KEYS_FILE: Setting<()> = without_default("MIDDLEWARE_API_KEYS_FILE");
pub const REDIS_URL: Setting<()> = without_default("REDIS_URL");
pub const LOG_FORMAT: Setting<&str> = with_default("LOG_FORMAT", "text");
pub const ACCOUNT_REFRESH_INTERVAL: Setting<SettingDuration> =
    with_default("ACCOUNT_REFRESH_INTERVAL", SettingDuration::from_secs(30));
pub const COOLDOWN_RATE_LIMIT: Setting<SettingDuration> =
    with_default("COOLDOWN_RATE_LIMIT", SettingDuration::from_secs(3600));
pub const COOLDOWN_AUTH: Setting<SettingDuration> =
    with_default("COOLDOWN_AUTH", SettingDuration::from_secs(1800));
pub const COOLDOWN_SERVER_ERROR: Setting<SettingDuration> =
    with_default("COOLDOWN_SERVER_ERROR", SettingDuration::from_secs(600));
pub const STICKY_SESSION_TTL: Setting<SettingDuration> =
    with_default("STICKY_SESSION_TTL", SettingDuration::from_secs(3600));
pub const MAX_BODY_BYTES: Setting<u64> = with_default("MAX_BODY_BYTES", 33_554_432);
pub const RETRY_ATTEMPTS: Setting<u32> = with_default("RETRY_ATTEMPTS", 2);
pub const SHARED_HEALTH: Setting<bool> = with_default("SHARED_HEALTH", true);
pub const HEALTH_KEY_PREFIX: Setting<&str> =
    with_default("HEALTH_KEY_PREFIX", "claude-middleware:");
pub const DRAIN_TIMEOUT: Setting<SettingDuration> =
    with_default("DRAIN_TIMEOUT", SettingDuration::from_secs(30));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_shows_the_default_as_an_operator_writes_it() {
        assert_eq!(
            DRAIN_TIMEOUT.help("How long in-flight requests may finish"),
            "How long in-flight requests may finish [default: 30s]"
        );
        assert_eq!(MAX_BODY_BYTES.help("x"), "x [default: 33554432]");
    }
}
