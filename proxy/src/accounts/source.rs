//! Reads the relay's accounts from Redis, read-only: ids from the index set
//! (or a `SCAN` when the index is missing), hashes in one pipeline. Never
//! `KEYS`, never a write to the relay's keys.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::account::{Account, parse_account};

pub const INDEX_KEY: &str = "claude:account:index";
pub const ACCOUNT_KEY_PREFIX: &str = "claude:account:";
const SCAN_BATCH: usize = 500;

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
    }
    let hashes: Vec<HashMap<String, String>> = if ids.is_empty() {
        Vec::new()
    } else {
        pipe.query_async(conn).await?
    };
    let accounts = ids
        .iter()
        .zip(&hashes)
        .filter_map(|(id, fields)| parse_account(id, fields, now_ms).ok())
        .collect();
    Ok(Loaded {
        accounts,
        listed: ids.len(),
    })
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
