//! One relay account, read from its `claude:account:{id}` hash, and the
//! relay's own rules for whether it may be scheduled.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;

/// Statuses the relay sets on accounts that must not get traffic.
const BROKEN_STATUSES: [&str; 6] = [
    "error",
    "banned",
    "oauth_revoked",
    "unauthorized",
    "blocked",
    "temp_error",
];

/// The relay's default priority; lower is preferred.
pub const DEFAULT_PRIORITY: u32 = 50;

/// A schedulable account. The id is the credential the relay accepts in
/// `x-api-key`, so it is never logged whole: use [`Account::short_id`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: Arc<str>,
    /// The id as the `x-api-key` value, made once per pool load rather than
    /// on every request; `None` when the id is not a valid header value.
    key_header: Option<HeaderValue>,
    pub name: String,
    pub priority: u32,
    /// The relay's `lastUsedAt` (RFC 3339 text sorts chronologically); empty
    /// when never used. Only a tie-breaker: this proxy tracks its own picks.
    pub relay_last_used: String,
}

impl Account {
    pub fn new(id: &str, name: String, priority: u32, relay_last_used: String) -> Self {
        Self {
            id: Arc::from(id),
            key_header: HeaderValue::from_str(id).ok(),
            name,
            priority,
            relay_last_used,
        }
    }

    /// The id as the backend's `x-api-key` value, if it can be one.
    pub fn key_header(&self) -> Option<&HeaderValue> {
        self.key_header.as_ref()
    }

    /// The first 8 characters, as the relay's UI shows them; safe to log.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }
}

pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Why an account in Redis is not in the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusion {
    Inactive,
    NotSchedulable,
    BrokenStatus,
    RelayRateLimited,
    /// A short-lived marker the relay keeps beside the hash says so (see [`Markers`]).
    RelayMarked,
    NotAnAccount,
}

/// The relays' default rate limit when they wrote no end time: the fork's
/// `isAccountRateLimited` (and upstream's fallback) is "until `rateLimitedAt`
/// + 1 hour".
pub const RELAY_RATE_LIMIT_WITHOUT_END: i64 = 3_600_000;
/// How long the fork's circuit breaker refuses an account once it opened
/// (`circuitBreakerService.js`: OPEN for 60 s, then half-open).
pub const CIRCUIT_OPEN_MS: i64 = 60_000;
/// Upstream's cleanup restores a five-hour auto-stop one minute after the
/// session window ends, or 5 h 1 min after the stop when no window is known.
const FIVE_HOUR_RESTORE_GRACE_MS: i64 = 60_000;
const FIVE_HOURS_MS: i64 = 5 * 3_600_000;

/// Short-lived markers kept outside the account hash, as keys with a TTL,
/// read beside it on every refresh. Each one keeps the account out while it
/// is in force, as the relay that writes it does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Markers {
    /// Upstream's `temp_unavailable:claude-official:<id>` exists (after a
    /// 401, 403, 429, 529 or 5xx; the relay's scheduler skips the account).
    pub temp_unavailable: bool,
    /// Upstream's `account:overload:<id>` exists (after a 529, when the
    /// relay's overload handling is on).
    pub overloaded: bool,
    /// The fork's `circuit_breaker:<id>` hash: `state` and
    /// `lastStateChangeTime` (epoch ms). The fork refuses an OPEN account with
    /// a 503 for [`CIRCUIT_OPEN_MS`].
    pub circuit_state: Option<String>,
    pub circuit_changed_at: Option<String>,
}

impl Markers {
    fn in_force(&self, now_ms: i64) -> bool {
        let circuit_open = self.circuit_state.as_deref() == Some("OPEN")
            && self
                .circuit_changed_at
                .as_deref()
                .and_then(parse_instant_ms)
                .is_some_and(|at| now_ms < at + CIRCUIT_OPEN_MS);
        self.temp_unavailable || self.overloaded || circuit_open
    }
}

/// Reads a hash as the relay wrote it, with the markers kept beside it.
/// `now_ms` is the wall clock in milliseconds: every time-bound rule is
/// decided by time, never by whether a field is present, because the fork's
/// `removeAccountRateLimit` leaves its fields behind (HSET never deletes).
pub fn parse_account(
    id: &str,
    fields: &HashMap<String, String>,
    markers: &Markers,
    now_ms: i64,
) -> Result<Account, Exclusion> {
    if fields.is_empty() || id.is_empty() {
        return Err(Exclusion::NotAnAccount);
    }
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    if field("isActive") != "true" {
        return Err(Exclusion::Inactive);
    }
    if BROKEN_STATUSES.contains(&field("status")) {
        return Err(Exclusion::BrokenStatus);
    }
    if relay_rate_limit_active(&field, now_ms) {
        return Err(Exclusion::RelayRateLimited);
    }
    if field("schedulable") == "false" && !auto_stop_over(&field, now_ms) {
        return Err(Exclusion::NotSchedulable);
    }
    if markers.in_force(now_ms) {
        return Err(Exclusion::RelayMarked);
    }
    Ok(Account::new(
        id,
        field("name").to_string(),
        field("priority").trim().parse().unwrap_or(DEFAULT_PRIORITY),
        field("lastUsedAt").to_string(),
    ))
}

/// Both relays' rule: a limit marked by `rateLimitStatus=limited` (the fork,
/// upstream) or `rateLimitAutoStopped=true` (upstream) lasts until
/// `rateLimitEndAt` when it is readable, else until `rateLimitedAt` + 1 h.
/// A mark with neither time readable is not a limit: neither relay keeps an
/// account out on it, and the proxy's own cooldowns catch a real 429.
fn relay_rate_limit_active<'a>(field: &impl Fn(&str) -> &'a str, now_ms: i64) -> bool {
    let marked = field("rateLimitStatus") == "limited" || field("rateLimitAutoStopped") == "true";
    if !marked {
        return false;
    }
    if let Some(end_ms) = parse_instant_ms(field("rateLimitEndAt")) {
        return now_ms < end_ms;
    }
    parse_instant_ms(field("rateLimitedAt"))
        .is_some_and(|at_ms| now_ms < at_ms + RELAY_RATE_LIMIT_WITHOUT_END)
}

/// Upstream sets `schedulable=false` itself when it stops an account for a
/// rate limit (`rateLimitAutoStopped`) or a five-hour warning
/// (`fiveHourAutoStopped`), and its cleanup job sets it back once that is
/// over. An admin's `schedulable=false` has neither mark and stays.
fn auto_stop_over<'a>(field: &impl Fn(&str) -> &'a str, now_ms: i64) -> bool {
    let rate_limit_stop = field("rateLimitAutoStopped") == "true";
    let five_hour_stop = field("fiveHourAutoStopped") == "true";
    if !rate_limit_stop && !five_hour_stop {
        return false;
    }
    let rate_limit_over = !rate_limit_stop || !relay_rate_limit_active(field, now_ms);
    let five_hour_over = !five_hour_stop || five_hour_window_over(field, now_ms);
    rate_limit_over && five_hour_over
}

fn five_hour_window_over<'a>(field: &impl Fn(&str) -> &'a str, now_ms: i64) -> bool {
    if let Some(end_ms) = parse_instant_ms(field("sessionWindowEnd")) {
        return now_ms > end_ms + FIVE_HOUR_RESTORE_GRACE_MS;
    }
    parse_instant_ms(field("fiveHourStoppedAt"))
        .is_some_and(|at_ms| now_ms > at_ms + FIVE_HOURS_MS + FIVE_HOUR_RESTORE_GRACE_MS)
}

pub(crate) fn parse_instant_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(number) = text.parse::<i64>() {
        // Heuristic: epoch seconds are below 10^11 until the year 5138.
        return Some(if number < 100_000_000_000 {
            number * 1000
        } else {
            number
        });
    }
    parse_rfc3339_ms(text)
}

fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000_000; // 2026-11-18T09:46:40Z
    const NONE: Markers = Markers {
        temp_unavailable: false,
        overloaded: false,
        circuit_state: None,
        circuit_changed_at: None,
    };
    const MINUTE: i64 = 60_000;

    fn iso(ms: i64) -> String {
        jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
    }

    fn schedulable(pairs: &[(&str, &str)]) -> bool {
        let mut fields = hash(&[("isActive", "true")]);
        fields.extend(hash(pairs));
        parse_account("id", &fields, &NONE, NOW).is_ok()
    }

    fn hash(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn active_account_parses_with_priority() {
        let a = parse_account(
            "3d5f7b91-8e3a",
            &hash(&[("isActive", "true"), ("priority", "10"), ("name", "a3")]),
            &NONE,
            NOW,
        )
        .unwrap();
        assert_eq!(a.priority, 10);
        assert_eq!(a.short_id(), "3d5f7b91");
        let a = parse_account("x", &hash(&[("isActive", "true")]), &NONE, NOW).unwrap();
        assert_eq!(a.priority, DEFAULT_PRIORITY);
    }

    #[test]
    fn relay_exclusions() {
        let check =
            |pairs: &[(&str, &str)]| parse_account("id", &hash(pairs), &NONE, NOW).unwrap_err();
        assert_eq!(check(&[("isActive", "false")]), Exclusion::Inactive);
        assert_eq!(check(&[("name", "no isActive")]), Exclusion::Inactive);
        assert_eq!(
            check(&[("isActive", "true"), ("schedulable", "false")]),
            Exclusion::NotSchedulable
        );
        for status in BROKEN_STATUSES {
            assert_eq!(
                check(&[("isActive", "true"), ("status", status)]),
                Exclusion::BrokenStatus
            );
        }
        assert_eq!(
            check(&[
                ("isActive", "true"),
                ("rateLimitStatus", "limited"),
                ("rateLimitEndAt", "2030-01-01T00:00:00.000Z")
            ]),
            Exclusion::RelayRateLimited
        );
        assert_eq!(
            parse_account("id", &HashMap::new(), &NONE, NOW).unwrap_err(),
            Exclusion::NotAnAccount
        );
    }

    #[test]
    fn expired_relay_rate_limit_is_schedulable() {
        let fields = hash(&[
            ("isActive", "true"),
            ("rateLimitStatus", "limited"),
            ("rateLimitEndAt", "2026-11-10T00:00:00.000Z"),
        ]);
        assert!(parse_account("id", &fields, &NONE, NOW).is_ok());
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2000-03-01T00:00:00.5Z"),
            Some(951_868_800_500)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-26T05:00:00+01:00"),
            parse_rfc3339_ms("2026-11-26T04:00:00Z")
        );
        assert_eq!(parse_instant_ms("1795000000"), Some(1_795_000_000_000));
        assert_eq!(parse_instant_ms("1795000000000"), Some(1_795_000_000_000));
        assert_eq!(parse_instant_ms("garbage"), None);
    }

    /// The fork's limit: `rateLimitStatus=limited`, `rateLimitedAt`, no end.
    #[test]
    fn fork_limit_without_end_lasts_one_hour() {
        let limited_at = |ago_ms: i64| iso(NOW - ago_ms);
        assert!(!schedulable(&[
            ("rateLimitStatus", "limited"),
            ("rateLimitedAt", &limited_at(59 * MINUTE))
        ]));
        assert!(schedulable(&[
            ("rateLimitStatus", "limited"),
            ("rateLimitedAt", &limited_at(61 * MINUTE))
        ]));
        // What the fork's removeAccountRateLimit leaves behind: the same two
        // fields, days old, and the account used since.
        assert!(schedulable(&[
            ("rateLimitStatus", "limited"),
            ("rateLimitedAt", "2026-11-01T08:00:00.000Z"),
            ("lastUsedAt", "2026-11-17T08:00:00.000Z"),
        ]));
        // A mark with no readable time is no limit (the relays agree).
        assert!(schedulable(&[("rateLimitStatus", "limited")]));
        assert!(schedulable(&[
            ("rateLimitStatus", "limited"),
            ("rateLimitedAt", "garbage")
        ]));
    }

    /// Upstream's limit: an end time, `rateLimitAutoStopped` and `schedulable=false`.
    #[test]
    fn upstream_limit_with_end_and_auto_stop() {
        let upstream = |end_ms: i64| {
            schedulable(&[
                ("rateLimitStatus", "limited"),
                ("rateLimitedAt", &iso(NOW - 10 * MINUTE)),
                ("rateLimitEndAt", &iso(end_ms)),
                ("rateLimitAutoStopped", "true"),
                ("schedulable", "false"),
            ])
        };
        assert!(!upstream(NOW + MINUTE));
        // Over by time, before the relay's cleanup job has set schedulable back.
        assert!(upstream(NOW - 1));
        // The end time wins over the one-hour rule, both ways.
        assert!(!schedulable(&[
            ("rateLimitStatus", "limited"),
            ("rateLimitedAt", &iso(NOW - 3 * 60 * MINUTE)),
            ("rateLimitEndAt", &iso(NOW + 2 * 60 * MINUTE)),
        ]));
        // An admin's schedulable=false, with no auto-stop mark, stays.
        assert!(!schedulable(&[
            ("schedulable", "false"),
            ("rateLimitEndAt", &iso(NOW - MINUTE))
        ]));
    }

    #[test]
    fn upstream_five_hour_auto_stop() {
        let stopped = |window_end_ms: i64| {
            schedulable(&[
                ("schedulable", "false"),
                ("fiveHourAutoStopped", "true"),
                ("sessionWindowEnd", &iso(window_end_ms)),
            ])
        };
        assert!(!stopped(NOW + 30 * MINUTE));
        assert!(!stopped(NOW - MINUTE / 2));
        assert!(stopped(NOW - 2 * MINUTE));
        assert!(!schedulable(&[
            ("schedulable", "false"),
            ("fiveHourAutoStopped", "true"),
            ("fiveHourStoppedAt", &iso(NOW - 60 * MINUTE)),
        ]));
        assert!(schedulable(&[
            ("schedulable", "false"),
            ("fiveHourAutoStopped", "true"),
            ("fiveHourStoppedAt", &iso(NOW - 302 * MINUTE)),
        ]));
    }

    #[test]
    fn markers_keep_an_account_out_while_in_force() {
        let fields = hash(&[("isActive", "true")]);
        let with = |markers: Markers| parse_account("id", &fields, &markers, NOW);
        assert_eq!(
            with(Markers {
                temp_unavailable: true,
                ..NONE
            })
            .unwrap_err(),
            Exclusion::RelayMarked
        );
        assert_eq!(
            with(Markers {
                overloaded: true,
                ..NONE
            })
            .unwrap_err(),
            Exclusion::RelayMarked
        );
        let circuit = |state: &str, changed_ago_ms: i64| Markers {
            circuit_state: Some(state.into()),
            circuit_changed_at: Some((NOW - changed_ago_ms).to_string()),
            ..NONE
        };
        assert!(with(circuit("OPEN", 10_000)).is_err());
        assert!(with(circuit("OPEN", CIRCUIT_OPEN_MS + 1)).is_ok());
        assert!(with(circuit("HALF_OPEN", 10_000)).is_ok());
        assert!(with(circuit("CLOSED", 10_000)).is_ok());
    }
}
