//! The relay's account pool: parsed from its Redis schema (read-only) and
//! refreshed in the background.

mod account;
mod pool;
mod source;

pub use account::{Account, DEFAULT_PRIORITY, Exclusion, Markers, parse_account, short_id};
pub use pool::{Pool, PoolSnapshot, Readiness, RefreshStatus, readiness};
pub use source::{ACCOUNT_KEY_PREFIX, INDEX_KEY, connect, load_accounts};

/// The wall clock in milliseconds: cooldowns and the relay's timestamps are
/// wall-clock times, so that replicas agree on them.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
