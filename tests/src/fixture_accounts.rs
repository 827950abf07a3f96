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
