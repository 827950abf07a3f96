//! The relay's account pool: parsed from its Redis schema (read-only) and
//! refreshed in the background.

mod account;
mod pool;
mod refresher;
mod source;

pub use account::{Account, DEFAULT_PRIORITY, Exclusion, parse_account, short_id};
pub use pool::{Pool, PoolSnapshot, Readiness, RefreshStatus, readiness};
pub use refresher::{now_ms, run_refresher};
pub use source::{ACCOUNT_KEY_PREFIX, INDEX_KEY, connect, load_accounts};
