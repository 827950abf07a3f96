//! Pure classification of an upstream answer: success, the client's own
//! error (passed through), or the account's failure with a cooldown.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

use crate::config::CooldownDefaults;

/// Why an account is cooled down. Also the metric and log label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    RateLimited,
    AuthFailed,
    Overloaded,
    ServerError,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::AuthFailed => "auth_failed",
            Self::Overloaded => "overloaded",
            Self::ServerError => "server_error",
        }
    }

    /// The inverse of [`FailureKind::as_str`].
    pub fn from_label(label: &str) -> Option<Self> {
        [
            Self::RateLimited,
            Self::AuthFailed,
            Self::Overloaded,
            Self::ServerError,
        ]
        .into_iter()
        .find(|k| k.as_str() == label)
    }

    /// Anthropic's error type for the same condition, for SSE error events.
    pub fn from_error_type(error_type: &str) -> Option<Self> {
        match error_type {
            "rate_limit_error" => Some(Self::RateLimited),
            "authentication_error" | "permission_error" => Some(Self::AuthFailed),
            "overloaded_error" => Some(Self::Overloaded),
            "api_error" => Some(Self::ServerError),
            _ => None,
        }
    }

    fn default_cooldown(self, defaults: &CooldownDefaults) -> Duration {
        match self {
            Self::RateLimited => defaults.rate_limit,
            Self::AuthFailed => defaults.auth,
            Self::Overloaded | Self::ServerError => defaults.server_error,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx/3xx: forward it.
    Success,
    /// A 4xx about the request itself (400, 404, 413…): forward it, no retry.
    ClientError,
    /// The account failed: cool it down for `cooldown` and try another.
    AccountFailure {
        kind: FailureKind,
        cooldown: Duration,
    },
}

/// Classifies a response head. `now_ms` is the wall clock, for reset headers.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    defaults: &CooldownDefaults,
    now_ms: i64,
) -> Outcome {
    let kind = match status.as_u16() {
        429 => FailureKind::RateLimited,
        401 | 403 => FailureKind::AuthFailed,
        529 => FailureKind::Overloaded,
        500 | 502 | 503 | 504 => FailureKind::ServerError,
        400..=499 => return Outcome::ClientError,
        _ if status.is_server_error() => FailureKind::ServerError,
        _ => return Outcome::Success,
    };
    account_failure(kind, headers, defaults, now_ms)
}

/// The failure of `kind`, cooled down until the response's reset time when it
/// names one, else for the configured default.
pub fn account_failure(
    kind: FailureKind,
    headers: &HeaderMap,
    defaults: &CooldownDefaults,
    now_ms: i64,
) -> Outcome {
    let cooldown = match kind {
        FailureKind::RateLimited | FailureKind::Overloaded => reset_from_headers(headers, now_ms),
        _ => None,
    }
    .unwrap_or_else(|| kind.default_cooldown(defaults));
    Outcome::AccountFailure { kind, cooldown }
}

/// Longest cooldown a header may ask for: weekly subscription limits exist.
const MAX_HEADER_COOLDOWN: Duration = Duration::from_secs(8 * 86400);

/// When the account may be used again, as the response says:
/// `anthropic-ratelimit-unified-reset` (epoch seconds), else `retry-after`
/// (seconds or an HTTP date), else the latest `anthropic-ratelimit-*-reset`
/// (RFC 3339). A reset time already past gives zero.
pub fn reset_from_headers(headers: &HeaderMap, now_ms: i64) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let until_ms = |at_ms: i64| Duration::from_millis(at_ms.saturating_sub(now_ms).max(0) as u64);

    let cooldown = if let Some(epoch) = text("anthropic-ratelimit-unified-reset")
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        until_ms((epoch * 1000.0) as i64)
    } else if let Some(retry_after) = text("retry-after").and_then(parse_retry_after(now_ms)) {
        retry_after
    } else {
        headers
            .iter()
            .filter(|(name, _)| {
                let name = name.as_str();
                name.starts_with("anthropic-ratelimit-") && name.ends_with("-reset")
            })
            .filter_map(|(_, value)| value.to_str().ok()?.trim().parse::<jiff::Timestamp>().ok())
            .map(|at| until_ms(at.as_millisecond()))
            .max()?
    };
    Some(cooldown.min(MAX_HEADER_COOLDOWN))
}

fn parse_retry_after(now_ms: i64) -> impl Fn(&str) -> Option<Duration> {
    move |text| {
        if let Ok(seconds) = text.parse::<f64>() {
            return (seconds.is_finite() && seconds >= 0.0)
                .then(|| Duration::from_secs_f64(seconds.min(1e9)));
        }
        let at = httpdate::parse_http_date(text).ok()?;
        let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64;
        Some(Duration::from_millis(
            at_ms.saturating_sub(now_ms).max(0) as u64
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const NOW_MS: i64 = 1_800_000_000_000;

    fn defaults() -> CooldownDefaults {
        CooldownDefaults {
            rate_limit: Duration::from_secs(3600),
            auth: Duration::from_secs(1800),
            server_error: Duration::from_secs(600),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn failure(status: u16, h: &HeaderMap) -> (FailureKind, Duration) {
        match classify(
            StatusCode::from_u16(status).unwrap(),
            h,
            &defaults(),
            NOW_MS,
        ) {
            Outcome::AccountFailure { kind, cooldown } => (kind, cooldown),
            other => panic!("{status} gave {other:?}"),
        }
    }

    #[test]
    fn statuses() {
        let none = HeaderMap::new();
        let ok = |s: u16| classify(StatusCode::from_u16(s).unwrap(), &none, &defaults(), NOW_MS);
        assert_eq!(ok(200), Outcome::Success);
        assert_eq!(ok(304), Outcome::Success);
        assert_eq!(ok(400), Outcome::ClientError);
        assert_eq!(ok(404), Outcome::ClientError);
        assert_eq!(ok(413), Outcome::ClientError);
        assert_eq!(
            failure(429, &none),
            (FailureKind::RateLimited, Duration::from_secs(3600))
        );
        assert_eq!(
            failure(401, &none),
            (FailureKind::AuthFailed, Duration::from_secs(1800))
        );
        assert_eq!(
            failure(403, &none),
            (FailureKind::AuthFailed, Duration::from_secs(1800))
        );
        assert_eq!(
            failure(529, &none),
            (FailureKind::Overloaded, Duration::from_secs(600))
        );
        for s in [500, 502, 503, 504] {
            assert_eq!(
                failure(s, &none),
                (FailureKind::ServerError, Duration::from_secs(600))
            );
        }
    }

    #[test]
    fn unified_reset_wins() {
        let h = headers(&[
            ("anthropic-ratelimit-unified-reset", "1800000002"),
            ("retry-after", "60"),
        ]);
        assert_eq!(failure(429, &h).1, Duration::from_secs(2));
    }

    #[test]
    fn retry_after_seconds_and_date() {
        assert_eq!(
            failure(429, &headers(&[("retry-after", "17")])).1,
            Duration::from_secs(17)
        );
        let at = std::time::UNIX_EPOCH + Duration::from_millis(NOW_MS as u64 + 90_000);
        let date = httpdate::fmt_http_date(at);
        assert_eq!(
            failure(429, &headers(&[("retry-after", &date)])).1,
            Duration::from_secs(90)
        );
    }

    #[test]
    fn latest_per_limit_reset() {
        let h = headers(&[
            ("anthropic-ratelimit-requests-reset", "2027-01-15T08:00:05Z"),
            ("anthropic-ratelimit-tokens-reset", "2027-01-15T08:00:30Z"),
        ]);
        // NOW_MS is 2027-01-15T08:00:00Z.
        assert_eq!(failure(429, &h).1, Duration::from_secs(30));
    }

    #[test]
    fn past_reset_means_no_cooldown() {
        let h = headers(&[("anthropic-ratelimit-unified-reset", "1700000000")]);
        assert_eq!(failure(429, &h).1, Duration::ZERO);
    }

    #[test]
    fn absurd_reset_is_capped() {
        let h = headers(&[("retry-after", "99999999999")]);
        assert_eq!(failure(429, &h).1, MAX_HEADER_COOLDOWN);
    }

    #[test]
    fn auth_failures_ignore_reset_headers() {
        let h = headers(&[("retry-after", "5")]);
        assert_eq!(failure(401, &h).1, Duration::from_secs(1800));
    }

    #[test]
    fn sse_error_types() {
        assert_eq!(
            FailureKind::from_error_type("rate_limit_error"),
            Some(FailureKind::RateLimited)
        );
        assert_eq!(
            FailureKind::from_error_type("overloaded_error"),
            Some(FailureKind::Overloaded)
        );
        assert_eq!(
            FailureKind::from_error_type("authentication_error"),
            Some(FailureKind::AuthFailed)
        );
        assert_eq!(
            FailureKind::from_error_type("permission_error"),
            Some(FailureKind::AuthFailed)
        );
        assert_eq!(
            FailureKind::from_error_type("api_error"),
            Some(FailureKind::ServerError)
        );
        assert_eq!(FailureKind::from_error_type("invalid_request_error"), None);
    }
}
