//! The accounts of `shared/fixtures/relay-accounts.redis`, by the fixture's
//! names. Schedulable: a1, a2, a3 (priority 10, preferred) and a7 (its relay
//! rate limit has ended). The others are excluded by the relay's own rules.

pub const A1: &str = "0b7f3a52-6c1e-4d0a-9a51-1f3c2b9e0a11";
pub const A2: &str = "2c4e6a80-7d2f-4b1c-8e3a-5a6b7c8d9e22";
pub const A3: &str = "3d5f7b91-8e3a-4c2d-9f4b-6b7c8d9e0f33";
pub const A4_INACTIVE: &str = "4e6a8ca2-9f4b-4d3e-a05c-7c8d9e0f1a44";
pub const A5_NOT_SCHEDULABLE: &str = "5f7b9db3-a05c-4e4f-b16d-8d9e0f1a2b55";
pub const A6_ERROR: &str = "6a8caec4-b16d-4f5a-c27e-9e0f1a2b3c66";
pub const A7: &str = "7b9dbfd5-c27e-4a6b-d38f-0f1a2b3c4d77";
pub const A8_RATE_LIMITED: &str = "8cae0ae6-d38f-4b7c-e49a-1a2b3c4d5e88";

/// The schedulable accounts, best first: a3 by priority, then the 50s by the
/// relay's `lastUsedAt`, oldest first.
pub const SCHEDULABLE_IN_ORDER: [&str; 4] = [A3, A7, A2, A1];

/// Accounts that must never receive traffic.
pub const UNSCHEDULABLE: [&str; 4] = [A4_INACTIVE, A5_NOT_SCHEDULABLE, A6_ERROR, A8_RATE_LIMITED];

/// The fixture's short name of an account id ("a3"), for readable assertions.
pub fn name_of(id: &str) -> &'static str {
    match id {
        A1 => "a1",
        A2 => "a2",
        A3 => "a3",
        A4_INACTIVE => "a4",
        A5_NOT_SCHEDULABLE => "a5",
        A6_ERROR => "a6",
        A7 => "a7",
        A8_RATE_LIMITED => "a8",
        _ => "unknown",
    }
}

/// The accounts of `tests/fixtures/relay-rate-limits.redis`, and the two that
/// [`seed_recent_limits`] writes relative to the time of the test.
pub mod rate_limits {
    pub const R1_UNTIL_2030: &str = "9a000001-0000-4000-8000-000000000001";
    pub const R2_FORK_LIMIT_OVER: &str = "9a000002-0000-4000-8000-000000000002";
    pub const R3_FORK_LIMIT_RECENT: &str = "9a000003-0000-4000-8000-000000000003";
    pub const R4_STALE_AFTER_REMOVE: &str = "9a000004-0000-4000-8000-000000000004";
    pub const R5_UPSTREAM_ENDED: &str = "9a000005-0000-4000-8000-000000000005";
    pub const R6_TEMP_UNAVAILABLE: &str = "9a000006-0000-4000-8000-000000000006";
    pub const R7_CIRCUIT_OPEN: &str = "9a000007-0000-4000-8000-000000000007";

    /// Schedulable right after loading the file and [`super::seed_recent_limits`].
    pub const SCHEDULABLE: [&str; 3] =
        [R2_FORK_LIMIT_OVER, R4_STALE_AFTER_REMOVE, R5_UPSTREAM_ENDED];
    /// Kept out, each by one rule.
    pub const UNSCHEDULABLE: [&str; 4] = [
        R1_UNTIL_2030,
        R3_FORK_LIMIT_RECENT,
        R6_TEMP_UNAVAILABLE,
        R7_CIRCUIT_OPEN,
    ];
}

/// Writes the two time-bound cases as the fork of claude-relay-service would:
/// r3 rate limited `limited_ago` before now with no end time (its
/// `markAccountRateLimited`), and r7 with its circuit breaker opened
/// `opened_ago` before now (`circuitBreakerService.js`: a hash with `state`
/// and `lastStateChangeTime` in epoch ms, TTL 3900 s).
pub fn seed_recent_limits(
    redis: &crate::redis::RedisServer,
    limited_ago: std::time::Duration,
    opened_ago: std::time::Duration,
) {
    use rate_limits::{R3_FORK_LIMIT_RECENT, R7_CIRCUIT_OPEN};
    let now = std::time::SystemTime::now();
    let limited_at = crate::backend::rfc3339(now - limited_ago);
    let opened_at_ms = (now - opened_ago)
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        .to_string();
    for (id, name) in [
        (R3_FORK_LIMIT_RECENT, "r3 fork limit recent"),
        (R7_CIRCUIT_OPEN, "r7 fork circuit open"),
    ] {
        redis.cli(&["SADD", "claude:account:index", id]);
        redis.cli(&[
            "HSET",
            &format!("claude:account:{id}"),
            "id",
            id,
            "name",
            name,
            "isActive",
            "true",
            "accountType",
            "shared",
            "status",
            "active",
            "priority",
            "50",
        ]);
    }
    redis.cli(&[
        "HSET",
        &format!("claude:account:{R3_FORK_LIMIT_RECENT}"),
        "rateLimitStatus",
        "limited",
        "rateLimitedAt",
        &limited_at,
    ]);
    redis.cli(&[
        "HSET",
        &format!("circuit_breaker:{R7_CIRCUIT_OPEN}"),
        "state",
        "OPEN",
        "failures",
        "5",
        "lastFailureTime",
        &opened_at_ms,
        "lastStateChangeTime",
        &opened_at_ms,
    ]);
    redis.cli(&[
        "EXPIRE",
        &format!("circuit_breaker:{R7_CIRCUIT_OPEN}"),
        "3900",
    ]);
}
