//! One relay account, read from its `claude:account:{id}` hash, and the
//! relay's own rules for whether it may be scheduled.

use std::collections::HashMap;
use std::sync::Arc;

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
    pub name: String,
    pub priority: u32,
    /// The relay's `lastUsedAt` (RFC 3339 text sorts chronologically); empty
    /// when never used. Only a tie-breaker: this proxy tracks its own picks.
    pub relay_last_used: String,
}

impl Account {
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
    NotAnAccount,
}

/// Reads a hash as the relay wrote it. `now_ms` is the wall clock in
/// milliseconds, for the relay's `rateLimitEndAt`.
pub fn parse_account(
    id: &str,
    fields: &HashMap<String, String>,
    now_ms: i64,
) -> Result<Account, Exclusion> {
    if fields.is_empty() || id.is_empty() {
        return Err(Exclusion::NotAnAccount);
    }
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    if field("isActive") != "true" {
        return Err(Exclusion::Inactive);
    }
    if field("schedulable") == "false" {
        return Err(Exclusion::NotSchedulable);
    }
    if BROKEN_STATUSES.contains(&field("status")) {
        return Err(Exclusion::BrokenStatus);
    }
    if field("rateLimitStatus") == "limited" && relay_limit_active(field("rateLimitEndAt"), now_ms)
    {
        return Err(Exclusion::RelayRateLimited);
    }
    Ok(Account {
        id: Arc::from(id),
        name: field("name").to_string(),
        priority: field("priority").trim().parse().unwrap_or(DEFAULT_PRIORITY),
        relay_last_used: field("lastUsedAt").to_string(),
    })
}

/// `rateLimitEndAt` is an ISO timestamp in the relay; epoch milliseconds or
/// seconds are accepted too. A limit with no readable end still counts, as the
/// relay itself would keep the account out.
fn relay_limit_active(end_at: &str, now_ms: i64) -> bool {
    match parse_instant_ms(end_at) {
        Some(end_ms) => end_ms > now_ms,
        None => true,
    }
}

fn parse_instant_ms(text: &str) -> Option<i64> {
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

    const NOW: i64 = 1_795_000_000_000; // 2026-11-18

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
            NOW,
        )
        .unwrap();
        assert_eq!(a.priority, 10);
        assert_eq!(a.short_id(), "3d5f7b91");
        let a = parse_account("x", &hash(&[("isActive", "true")]), NOW).unwrap();
        assert_eq!(a.priority, DEFAULT_PRIORITY);
    }

    #[test]
    fn relay_exclusions() {
        let check = |pairs: &[(&str, &str)]| parse_account("id", &hash(pairs), NOW).unwrap_err();
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
            parse_account("id", &HashMap::new(), NOW).unwrap_err(),
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
        assert!(parse_account("id", &fields, NOW).is_ok());
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
}
