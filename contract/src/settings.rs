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

/// A default as an operator would write it; `None` for a setting without one.
pub trait DefaultText {
    fn default_text(&self) -> Option<String>;
}

impl DefaultText for () {
    fn default_text(&self) -> Option<String> {
        None
    }
}

macro_rules! impl_default_text {
    ($($ty:ty),*) => {$(
        impl DefaultText for $ty {
            fn default_text(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}
impl_default_text!(u16, u32, u64, bool, &str, SettingDuration);

/// Declares each setting as a constant named like its variable (so the two
/// cannot differ) and [`all`], the list the documentation is checked against.
macro_rules! settings {
    ($($(#[$doc:meta])* $name:ident: $ty:ty = $default:expr;)*) => {
        $(
            $(#[$doc])*
            pub const $name: Setting<$ty> = Setting { env: stringify!($name), default: $default };
        )*

        /// Every setting's variable and its default as text (`None`: unset by default).
        pub fn all() -> Vec<(&'static str, Option<String>)> {
            vec![$(($name.env, $name.default.default_text())),*]
        }
    };
}

settings! {
    // The Go middleware's variables: same names, same defaults.
    PORT: u16 = 8080;
    GIN_MODE: &str = "debug";
    REDIS_HOST: &str = "localhost";
    REDIS_PORT: u16 = 6379;
    REDIS_PASSWORD: () = ();
    REDIS_DB: u32 = 0;
    TARGET_URL: &str = "http://localhost:3001";
    PROXY_TIMEOUT: SettingDuration = SettingDuration::from_secs(300);
    MIDDLEWARE_AUTH_ENABLED: bool = false;
    MIDDLEWARE_API_KEYS: () = ();
    MIDDLEWARE_API_KEY_PREFIX: &str = "cr_";

    // The proxy's own.
    MIDDLEWARE_API_KEYS_FILE: () = ();
    REDIS_URL: () = ();
    LOG_FORMAT: &str = "text";
    ACCOUNT_REFRESH_INTERVAL: SettingDuration = SettingDuration::from_secs(30);
    COOLDOWN_RATE_LIMIT: SettingDuration = SettingDuration::from_secs(3600);
    COOLDOWN_AUTH: SettingDuration = SettingDuration::from_secs(1800);
    COOLDOWN_SERVER_ERROR: SettingDuration = SettingDuration::from_secs(600);
    COOLDOWN_OVERLOADED: SettingDuration = SettingDuration::from_secs(15);
    STICKY_SESSION_TTL: SettingDuration = SettingDuration::from_secs(3600);
    MAX_BODY_BYTES: u64 = 33_554_432;
    RETRY_ATTEMPTS: u32 = 2;
    SHARED_HEALTH: bool = true;
    HEALTH_KEY_PREFIX: &str = "claude-middleware:";
    TARGET_V1_PATH: &str = "/api/v1";
    TARGET_CA_FILE: () = ();
    SHUTDOWN_DELAY: SettingDuration = SettingDuration::from_secs(5);
    DRAIN_TIMEOUT: SettingDuration = SettingDuration::from_secs(30);
    CLIENT_IDLE_TIMEOUT: SettingDuration = SettingDuration::from_secs(30);
    WORKER_THREADS: u32 = 0;
}

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
