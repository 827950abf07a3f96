//! Pure classification of an upstream answer: success, the client's own
//! error (passed through), the account's failure with a cooldown, or the
//! relay's own refusal (passed through, no account blamed).

use std::time::Duration;

use http::{HeaderMap, StatusCode};

use super::error_shape::{AccountRefusal, ErrorShape, error_shape};
use crate::config::CooldownDefaults;
use crate::upstream::RelayHeaders;

/// What is read of an answer's headers: the relay's lines as it sent them,
/// or a map.
pub trait AnswerHeaders {
    /// The first value of `name` (given in lowercase), when it is text.
    fn text(&self, name: &str) -> Option<&str>;
    /// Each header whose value is text: its name (in any case), its value.
    fn texts(&self) -> impl Iterator<Item = (&str, &str)>;
}

impl AnswerHeaders for HeaderMap {
    fn text(&self, name: &str) -> Option<&str> {
        self.get(name)?.to_str().ok()
    }

    fn texts(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
    }
}

impl AnswerHeaders for RelayHeaders {
    fn text(&self, name: &str) -> Option<&str> {
        let value = match name {
            // Asked of every answer, and noted when the head was read.
            "content-type" => self.content_type()?,
            _ => self.get(name)?,
        };
        std::str::from_utf8(value).ok()
    }

    fn texts(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().filter_map(|(name, value)| {
            Some((
                std::str::from_utf8(name).ok()?,
                std::str::from_utf8(value).ok()?,
            ))
        })
    }
}

/// Why an account is cooled down. Also the metric and log label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    RateLimited,
    AuthFailed,
    Overloaded,
    ServerError,
    /// The fork's circuit breaker refuses the account for a minute.
    CircuitOpen,
}

/// How long the fork's circuit breaker stays open (`circuitBreakerService.js`).
const CIRCUIT_OPEN: Duration = Duration::from_secs(60);

impl RelayFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Limited => "relay_limited",
            Self::Error => "relay_error",
        }
    }
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::AuthFailed => "auth_failed",
            Self::Overloaded => "overloaded",
            Self::ServerError => "server_error",
            Self::CircuitOpen => "circuit_open",
        }
    }

    /// The inverse of [`FailureKind::as_str`].
    pub fn from_label(label: &str) -> Option<Self> {
        [
            Self::RateLimited,
            Self::AuthFailed,
            Self::Overloaded,
            Self::ServerError,
            Self::CircuitOpen,
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
            Self::Overloaded => defaults.overloaded,
            Self::ServerError => defaults.server_error,
            Self::CircuitOpen => CIRCUIT_OPEN,
        }
    }

    /// The failure a status means when the body does not say more.
    fn from_status(status: u16) -> Option<Self> {
        match status {
            429 => Some(Self::RateLimited),
            401 | 403 => Some(Self::AuthFailed),
            529 => Some(Self::Overloaded),
            500..=599 => Some(Self::ServerError),
            _ => None,
        }
    }
}

/// An answer the relay gave on its own: no account is to blame, so none is
/// cooled down and no other is tried; the client gets it as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayFailure {
    /// Its own limit (the fork's per-IP limit): a 429 not in Anthropic's shape.
    Limited,
    /// Anything else of its own: no account available, an internal error,
    /// a route it does not have, a 5xx from a load balancer in front of it.
    Error,
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
    /// The relay's own answer: forward it, blame no account, no retry.
    RelayFailure(RelayFailure),
}

/// What a response head says before its body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadVerdict {
    /// 2xx/3xx: forward it (a stream's first event may still be an error).
    Success,
    /// A 4xx about the request itself (400, 404, 413…): forward it, no retry.
    ClientError,
    /// 401, 403, 429, 5xx: whose failure it is depends on the body's shape.
    NeedsBody,
}

pub fn classify_head(status: StatusCode) -> HeadVerdict {
    match status.as_u16() {
        401 | 403 | 429 => HeadVerdict::NeedsBody,
        400..=499 => HeadVerdict::ClientError,
        _ if status.is_server_error() || status.as_u16() > 599 => HeadVerdict::NeedsBody,
        _ => HeadVerdict::Success,
    }
}

/// Classifies an error answer (a [`HeadVerdict::NeedsBody`] head) by its
/// body. `now_ms` is the wall clock, for reset headers.
pub fn classify_error(
    status: StatusCode,
    headers: &impl AnswerHeaders,
    body: &[u8],
    defaults: &CooldownDefaults,
    now_ms: i64,
) -> Outcome {
    let verdict = match error_shape(body) {
        ErrorShape::Anthropic {
            status: wrapped,
            error_type,
        } => anthropic_failure(wrapped.or(Some(status.as_u16())), error_type.as_deref()),
        ErrorShape::RelayRefusedAccount(refusal) => Verdict::Account(refused_kind(refusal)),
        ErrorShape::Relay if status == StatusCode::TOO_MANY_REQUESTS => {
            Verdict::Relay(RelayFailure::Limited)
        }
        ErrorShape::Relay => Verdict::Relay(RelayFailure::Error),
    };
    verdict.into_outcome(headers, defaults, now_ms)
}

/// Classifies the data of a stream's first event when it is an `error`:
/// Anthropic's own event, or the relay's wrapper naming Anthropic's status.
pub fn classify_stream_error(
    headers: &impl AnswerHeaders,
    data: &[u8],
    defaults: &CooldownDefaults,
    now_ms: i64,
) -> Outcome {
    let verdict = match error_shape(data) {
        ErrorShape::Anthropic { status, error_type } => {
            anthropic_failure(status, error_type.as_deref())
        }
        ErrorShape::RelayRefusedAccount(refusal) => Verdict::Account(refused_kind(refusal)),
        ErrorShape::Relay => Verdict::Relay(RelayFailure::Error),
    };
    verdict.into_outcome(headers, defaults, now_ms)
}

enum Verdict {
    Account(FailureKind),
    Client,
    Relay(RelayFailure),
}

impl Verdict {
    fn into_outcome(
        self,
        headers: &impl AnswerHeaders,
        defaults: &CooldownDefaults,
        now_ms: i64,
    ) -> Outcome {
        match self {
            Verdict::Account(kind) => account_failure(kind, headers, defaults, now_ms),
            Verdict::Client => Outcome::ClientError,
            Verdict::Relay(failure) => Outcome::RelayFailure(failure),
        }
    }
}

fn refused_kind(refusal: AccountRefusal) -> FailureKind {
    match refusal {
        AccountRefusal::Credential => FailureKind::AuthFailed,
        AccountRefusal::CircuitOpen => FailureKind::CircuitOpen,
    }
}

/// Anthropic's error, by the status it came with and its `error.type`:
/// 429 and 529 say it all; else the type is the more specific (an
/// `overloaded_error` on a 500); else the status. A type that is no account's
/// failure (`invalid_request_error`…) is the client's.
fn anthropic_failure(status: Option<u16>, error_type: Option<&str>) -> Verdict {
    let by_type = error_type.map(FailureKind::from_error_type);
    let kind = match status {
        Some(429) => Some(FailureKind::RateLimited),
        Some(529) => Some(FailureKind::Overloaded),
        _ => None,
    }
    .or(by_type.flatten())
    .or(status.and_then(FailureKind::from_status));
    match (kind, by_type) {
        (Some(kind), _) => Verdict::Account(kind),
        (None, Some(None)) => Verdict::Client,
        _ if status.is_some_and(|s| (400..500).contains(&s)) => Verdict::Client,
        // An `error` event in Anthropic's shape that names nothing.
        _ => Verdict::Account(FailureKind::ServerError),
    }
}

/// The failure of `kind`, cooled down until the response's reset time when it
/// names one, else for the configured default.
pub fn account_failure(
    kind: FailureKind,
    headers: &impl AnswerHeaders,
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
pub fn reset_from_headers(headers: &impl AnswerHeaders, now_ms: i64) -> Option<Duration> {
    let text = |name: &str| headers.text(name).map(str::trim);
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
            .texts()
            .filter(|(name, _)| is_reset_header(name))
            .filter_map(|(_, value)| value.trim().parse::<jiff::Timestamp>().ok())
            .map(|at| until_ms(at.as_millisecond()))
            .max()?
    };
    Some(cooldown.min(MAX_HEADER_COOLDOWN))
}

/// The answer's `retry-after` (seconds or an HTTP date), capped like a reset.
pub fn retry_after(headers: &impl AnswerHeaders, now_ms: i64) -> Option<Duration> {
    let text = headers.text("retry-after")?.trim();
    parse_retry_after(now_ms)(text).map(|d| d.min(MAX_HEADER_COOLDOWN))
}

/// `anthropic-ratelimit-*-reset`, in any case.
fn is_reset_header(name: &str) -> bool {
    const PREFIX: &str = "anthropic-ratelimit-";
    const SUFFIX: &str = "-reset";
    let name = name.as_bytes();
    name.len() >= PREFIX.len()
        && name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX.as_bytes())
        && name[name.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX.as_bytes())
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
            overloaded: Duration::from_secs(15),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    /// A head with an Anthropic-shaped error body, as the relay passes it on.
    fn classify(
        status: StatusCode,
        headers: &HeaderMap,
        defaults: &CooldownDefaults,
        now_ms: i64,
    ) -> Outcome {
        match classify_head(status) {
            HeadVerdict::Success => Outcome::Success,
            HeadVerdict::ClientError => Outcome::ClientError,
            HeadVerdict::NeedsBody => {
                let body = br#"{"type":"error","error":{"type":"whatever","message":"x"}}"#;
                classify_error(status, headers, body, defaults, now_ms)
            }
        }
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
            (FailureKind::Overloaded, Duration::from_secs(15))
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

    fn error(status: u16, body: &str) -> Outcome {
        classify_error(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
            &defaults(),
            NOW_MS,
        )
    }

    fn account(kind: FailureKind, secs: u64) -> Outcome {
        Outcome::AccountFailure {
            kind,
            cooldown: Duration::from_secs(secs),
        }
    }

    #[test]
    fn anthropic_errors_blame_the_account() {
        let anthropic = |t: &str| format!(r#"{{"type":"error","error":{{"type":"{t}"}}}}"#);
        assert_eq!(
            error(429, &anthropic("rate_limit_error")),
            account(FailureKind::RateLimited, 3600)
        );
        assert_eq!(
            error(401, &anthropic("authentication_error")),
            account(FailureKind::AuthFailed, 1800)
        );
        assert_eq!(
            error(500, &anthropic("api_error")),
            account(FailureKind::ServerError, 600)
        );
        // The type is the more specific: an overload on a 500 or 503.
        assert_eq!(
            error(503, &anthropic("overloaded_error")),
            account(FailureKind::Overloaded, 15)
        );
        assert_eq!(
            error(529, &anthropic("api_error")),
            account(FailureKind::Overloaded, 15)
        );
    }

    #[test]
    fn the_relays_own_errors_blame_no_account() {
        let ip_limit = r#"{"error":"Too Many Requests","message":"Too many requests from this IP, please try again later.","retryAfter":900}"#;
        assert_eq!(
            error(429, ip_limit),
            Outcome::RelayFailure(RelayFailure::Limited)
        );
        assert_eq!(
            error(
                500,
                r#"{"error":"Relay service error","message":"No available accounts in any associated pools"}"#
            ),
            Outcome::RelayFailure(RelayFailure::Error)
        );
        assert_eq!(
            error(502, "<html>bad gateway</html>"),
            Outcome::RelayFailure(RelayFailure::Error)
        );
        assert_eq!(error(503, ""), Outcome::RelayFailure(RelayFailure::Error));
        assert_eq!(
            error(
                401,
                r#"{"error":"Invalid API key","message":"Invalid API key format"}"#
            ),
            Outcome::RelayFailure(RelayFailure::Error)
        );
    }

    #[test]
    fn the_relay_refusing_one_account_blames_it() {
        assert_eq!(
            error(
                503,
                r#"{"error":{"type":"service_unavailable","message":"x"}}"#
            ),
            account(FailureKind::CircuitOpen, 60)
        );
        assert_eq!(
            error(
                401,
                r#"{"error":"Invalid API key","message":"Account is disabled"}"#
            ),
            account(FailureKind::AuthFailed, 1800)
        );
    }

    fn stream_error(data: &str) -> Outcome {
        classify_stream_error(&HeaderMap::new(), data.as_bytes(), &defaults(), NOW_MS)
    }

    #[test]
    fn streamed_errors_by_status_then_type() {
        let wrapped = |status: u16, details: &str| {
            serde_json::json!({"error": "Claude API error", "status": status, "details": details})
                .to_string()
        };
        let details = |t: &str| format!(r#"{{"type":"error","error":{{"type":"{t}"}}}}"#);
        assert_eq!(
            stream_error(&wrapped(429, &details("rate_limit_error"))),
            account(FailureKind::RateLimited, 3600)
        );
        assert_eq!(
            stream_error(&wrapped(429, "not json")),
            account(FailureKind::RateLimited, 3600)
        );
        assert_eq!(
            stream_error(&wrapped(529, &details("overloaded_error"))),
            account(FailureKind::Overloaded, 15)
        );
        assert_eq!(
            stream_error(&wrapped(403, &details("permission_error"))),
            account(FailureKind::AuthFailed, 1800)
        );
        assert_eq!(
            stream_error(&wrapped(500, &details("overloaded_error"))),
            account(FailureKind::Overloaded, 15)
        );
        assert_eq!(
            stream_error(&wrapped(400, &details("invalid_request_error"))),
            Outcome::ClientError
        );
        // Anthropic's own event: by its type.
        assert_eq!(
            stream_error(&details("rate_limit_error")),
            account(FailureKind::RateLimited, 3600)
        );
        assert_eq!(
            stream_error(&details("invalid_request_error")),
            Outcome::ClientError
        );
        assert_eq!(
            stream_error(r#"{"type":"error","error":{}}"#),
            account(FailureKind::ServerError, 600)
        );
        // The relay's own stream error (it could not reach Anthropic).
        assert_eq!(
            stream_error(r#"{"error":"connect ECONNREFUSED","code":"ECONNREFUSED"}"#),
            Outcome::RelayFailure(RelayFailure::Error)
        );
    }

    #[test]
    fn heads() {
        let head = |s: u16| classify_head(StatusCode::from_u16(s).unwrap());
        assert_eq!(head(200), HeadVerdict::Success);
        assert_eq!(head(304), HeadVerdict::Success);
        assert_eq!(head(404), HeadVerdict::ClientError);
        assert_eq!(head(413), HeadVerdict::ClientError);
        for s in [401, 403, 429, 500, 502, 503, 504, 529] {
            assert_eq!(head(s), HeadVerdict::NeedsBody, "{s}");
        }
    }
}
