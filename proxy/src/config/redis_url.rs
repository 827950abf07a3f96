//! Where the relay's Redis lives: `REDIS_URL`, else a URL built from
//! `REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD` and `REDIS_DB`. The URL holds
//! the password, so it is shown only redacted.

use cmw_contract::settings::{REDIS_DB, REDIS_HOST, REDIS_PORT, REDIS_URL};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{ConfigError, RawSettings, number, value};

/// Everything but RFC 3986's unreserved characters is encoded in the password.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

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

pub(super) fn redis_target(raw: &RawSettings) -> Result<RedisTarget, ConfigError> {
    match value(&raw.redis_url) {
        Some(url) => checked_url(url),
        None => url_from_parts(raw),
    }
}

fn checked_url(url: &str) -> Result<RedisTarget, ConfigError> {
    let parsed = redis::parse_redis_url(url)
        .filter(|u| matches!(u.scheme(), "redis" | "rediss"))
        .ok_or_else(|| {
            ConfigError::new(
                REDIS_URL.env,
                "expected redis://[:password@]host:port/db or rediss://…",
            )
        })?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(REDIS_URL.env, "has no host"));
    }
    Ok(RedisTarget {
        url: url.to_string(),
    })
}

fn url_from_parts(raw: &RawSettings) -> Result<RedisTarget, ConfigError> {
    let host = value(&raw.redis_host).unwrap_or(REDIS_HOST.default);
    if host.contains(['/', '@', ' ']) {
        return Err(ConfigError::new(
            REDIS_HOST.env,
            format!("{host:?} is not a host name"),
        ));
    }
    let port = number(
        &raw.redis_port,
        REDIS_PORT,
        |p| *p > 0,
        "a port number (1-65535)",
    )?;
    let db = number(&raw.redis_db, REDIS_DB, |_| true, "a database number")?;
    // The password is not trimmed: spaces may be part of it.
    let password = raw.redis_password.as_deref().filter(|p| !p.is_empty());
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let auth = password
        .map(|p| format!(":{}@", utf8_percent_encode(p, USERINFO)))
        .unwrap_or_default();
    Ok(RedisTarget {
        url: format!("redis://{auth}{host}:{port}/{db}"),
    })
}

/// `redis://:secret@host/0` → `redis://***@host/0`, for logs.
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
    use crate::config::Config;

    fn raw() -> RawSettings {
        RawSettings::default()
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
    fn every_byte_outside_unreserved_is_encoded() {
        let config = Config::from_raw(&RawSettings {
            redis_password: Some("a-b_c.d~e:f/g?h#i[j]k%l".into()),
            ..raw()
        })
        .unwrap();
        assert_eq!(
            config.redis.url,
            "redis://:a-b_c.d~e%3Af%2Fg%3Fh%23i%5Bj%5Dk%25l@localhost:6379/0"
        );
        assert_eq!(
            redact_url_password(&config.redis.url),
            "redis://***@localhost:6379/0"
        );
    }
}
