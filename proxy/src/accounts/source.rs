//! Reads the relay's accounts from Redis, read-only: ids from the index set
//! (or a `SCAN` when the index is missing), then each hash and the relay's
//! short-lived markers beside it in one pipeline. Never `KEYS`, never a write
//! to the relay's keys.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::account::{Account, Markers, parse_account};

pub const INDEX_KEY: &str = "claude:account:index";
pub const ACCOUNT_KEY_PREFIX: &str = "claude:account:";
const SCAN_BATCH: usize = 500;
/// Upstream claude-relay-service's markers (keys with a TTL), and the fork's
/// circuit breaker hash; see [`Markers`].
pub const TEMP_UNAVAILABLE_PREFIX: &str = "temp_unavailable:claude-official:";
pub const OVERLOAD_PREFIX: &str = "account:overload:";
pub const CIRCUIT_BREAKER_PREFIX: &str = "circuit_breaker:";
/// Replies per account in the pipeline: HGETALL, EXISTS, EXISTS, HMGET.
const REPLIES_PER_ACCOUNT: usize = 4;

/// The accounts that may be scheduled, and how many ids Redis listed.
pub struct Loaded {
    pub accounts: Vec<Account>,
    pub listed: usize,
}

/// Lists account ids, then reads their hashes in one round trip.
pub async fn load_accounts(
    conn: &mut ConnectionManager,
    now_ms: i64,
) -> redis::RedisResult<Loaded> {
    let mut ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(INDEX_KEY)
        .query_async(conn)
        .await?;
    if ids.is_empty() {
        ids = scan_account_ids(conn).await?;
    }
    ids.sort();
    ids.dedup();
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.cmd("HGETALL").arg(format!("{ACCOUNT_KEY_PREFIX}{id}"));
        pipe.cmd("EXISTS")
            .arg(format!("{TEMP_UNAVAILABLE_PREFIX}{id}"));
        pipe.cmd("EXISTS").arg(format!("{OVERLOAD_PREFIX}{id}"));
        pipe.cmd("HMGET")
            .arg(format!("{CIRCUIT_BREAKER_PREFIX}{id}"))
            .arg("state")
            .arg("lastStateChangeTime");
    }
    let replies: Vec<redis::Value> = if ids.is_empty() {
        Vec::new()
    } else {
        pipe.query_async(conn).await?
    };
    let mut accounts = Vec::with_capacity(ids.len());
    for (id, reply) in ids.iter().zip(replies.chunks(REPLIES_PER_ACCOUNT)) {
        let [fields, temp_unavailable, overloaded, circuit] = reply else {
            return Err(unexpected_reply());
        };
        let fields: HashMap<String, String> = redis::from_redis_value_ref(fields)?;
        let (circuit_state, circuit_changed_at): (Option<String>, Option<String>) =
            redis::from_redis_value_ref(circuit)?;
        let markers = Markers {
            temp_unavailable: redis::from_redis_value_ref(temp_unavailable)?,
            overloaded: redis::from_redis_value_ref(overloaded)?,
            circuit_state,
            circuit_changed_at,
        };
        if let Ok(account) = parse_account(id, &fields, &markers, now_ms) {
            accounts.push(account);
        }
    }
    Ok(Loaded {
        accounts,
        listed: ids.len(),
    })
}

fn unexpected_reply() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "pipeline answered with fewer replies than commands",
    ))
}

/// Fallback when the index set is absent: `SCAN MATCH claude:account:*`,
/// keeping only hashes (the pattern also matches the index and other keys).
async fn scan_account_ids(conn: &mut ConnectionManager) -> redis::RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{ACCOUNT_KEY_PREFIX}*"))
            .arg("COUNT")
            .arg(SCAN_BATCH)
            .query_async(conn)
            .await?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    if keys.is_empty() {
        return Ok(keys);
    }
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("TYPE").arg(key);
    }
    let types: Vec<String> = pipe.query_async(conn).await?;
    Ok(keys
        .into_iter()
        .zip(types)
        .filter(|(_, kind)| kind == "hash")
        .filter_map(|(key, _)| key.strip_prefix(ACCOUNT_KEY_PREFIX).map(str::to_string))
        .collect())
}

/// A connection manager that reconnects by itself, with bounded timeouts so a
/// slow Redis cannot stall the refresher for long.
pub async fn connect(url: &str, timeout: Duration) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    ConnectionManager::new_with_config(client, config).await
}
