//! The validated input of the renderers: the CR plus what the operator worked
//! out (resolved image, the target's port, the Secret-data hash). Building it is
//! the "validate" step: it checks what the schema cannot.

use thiserror::Error;
use url::Url;

use crate::crd::ClaudeMiddleware;

/// Default proxy drain (proxy.md: DRAIN_TIMEOUT 30s).
pub const DEFAULT_DRAIN_SECONDS: i64 = 30;
/// Default proxy lame duck (proxy.md: SHUTDOWN_DELAY 5s).
pub const DEFAULT_SHUTDOWN_DELAY_SECONDS: i64 = 5;
/// Extra time on top of the drain before the kubelet kills the pod.
pub const GRACE_MARGIN_SECONDS: i64 = 15;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InvalidSpec {
    #[error("spec.target.url {url:?} is not a valid http(s) URL: {reason}")]
    TargetUrl { url: String, reason: String },
    #[error("spec.proxy.{field} {value:?} is not a duration (30s, 5m, 1h or seconds)")]
    Duration { field: &'static str, value: String },
    #[error("spec.metadata is missing {0}")]
    Metadata(&'static str),
}

#[derive(Clone, Debug)]
pub struct RenderInput<'a> {
    pub cr: &'a ClaudeMiddleware,
    pub name: String,
    pub namespace: String,
    pub image: String,
    pub target_port: u16,
    pub drain_seconds: i64,
    pub shutdown_delay_seconds: i64,
    /// sha256 of the Redis password Secret data; a change rolls the pods.
    pub redis_password_hash: Option<String>,
}

impl<'a> RenderInput<'a> {
    pub fn new(
        cr: &'a ClaudeMiddleware,
        default_image: &str,
        redis_password_hash: Option<String>,
    ) -> Result<Self, InvalidSpec> {
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
        let target_port = target_port(&cr.spec.target.url)?;
        let drain_seconds = match &cr.spec.proxy.drain_timeout {
            Some(v) => parse_duration_seconds(v).ok_or_else(|| InvalidSpec::Duration {
                field: "drainTimeout",
                value: v.clone(),
            })?,
            None => DEFAULT_DRAIN_SECONDS,
        };
        let shutdown_delay_seconds = match &cr.spec.proxy.shutdown_delay {
            Some(v) => parse_duration_seconds(v).ok_or_else(|| InvalidSpec::Duration {
                field: "shutdownDelay",
                value: v.clone(),
            })?,
            None => DEFAULT_SHUTDOWN_DELAY_SECONDS,
        };
        let image = cr
            .spec
            .image
            .clone()
            .unwrap_or_else(|| default_image.to_string());
        Ok(Self {
            cr,
            name,
            namespace,
            image,
            target_port,
            drain_seconds,
            shutdown_delay_seconds,
            redis_password_hash,
        })
    }

    pub fn autoscaling(&self) -> bool {
        self.cr.spec.autoscaling.enabled
    }
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

/// `30s`, `5m`, `1h` or plain seconds (the proxy's duration syntax).
pub fn parse_duration_seconds(raw: &str) -> Option<i64> {
    let (digits, unit) = match raw.char_indices().last()? {
        (i, 's') => (&raw[..i], 1),
        (i, 'm') => (&raw[..i], 60),
        (i, 'h') => (&raw[..i], 3600),
        _ => (raw, 1),
    };
    digits.parse::<i64>().ok()?.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_port_from_url_or_scheme() {
        assert_eq!(target_port("http://claude-relay:3001"), Ok(3001));
        assert_eq!(target_port("http://relay"), Ok(80));
        assert_eq!(target_port("https://relay.example/api"), Ok(443));
        assert!(target_port("ftp://relay").is_err());
        assert!(target_port("http://").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_seconds("30s"), Some(30));
        assert_eq!(parse_duration_seconds("5m"), Some(300));
        assert_eq!(parse_duration_seconds("1h"), Some(3600));
        assert_eq!(parse_duration_seconds("45"), Some(45));
        assert_eq!(parse_duration_seconds("x"), None);
        assert_eq!(parse_duration_seconds(""), None);
    }
}
