//! Health shared by all replicas through Redis, under the proxy's own key
//! prefix (never the relay's keys): account cooldowns and session stickiness
//! as keys with TTLs, plus a pub/sub nudge so every replica hears of a new
//! cooldown at once. Everything here is best effort: without Redis each
//! replica keeps its own memory, and the request path never waits long.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::selection::{Cooldown, FailureKind, Selector};

/// A session lookup waits at most this for Redis before using local memory.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(100);
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// A cooldown as stored and published; `until_ms == 0` clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CooldownMessage {
    pub account: String,
    pub kind: String,
    pub until_ms: i64,
}

impl CooldownMessage {
    pub fn to_cooldown(&self) -> Option<Cooldown> {
        (self.until_ms > 0).then_some(())?;
        Some(Cooldown {
            until_ms: self.until_ms,
            kind: FailureKind::from_label(&self.kind)?,
        })
    }
}

pub struct SharedHealth {
    enabled: bool,
    prefix: String,
    conn: ArcSwapOption<ConnectionManager>,
}

impl SharedHealth {
    pub fn new(enabled: bool, prefix: String) -> Self {
        Self {
            enabled,
            prefix,
            conn: ArcSwapOption::empty(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Called by the refresher once it has a connection.
    pub fn set_connection(&self, conn: &ConnectionManager) {
        if self.enabled && self.conn.load().is_none() {
            self.conn.store(Some(Arc::new(conn.clone())));
        }
    }

    fn connection(&self) -> Option<ConnectionManager> {
        self.conn.load().as_deref().cloned()
    }

    pub fn cooldown_key(&self, account: &str) -> String {
        format!("{}cooldown:{account}", self.prefix)
    }

    pub fn session_key(&self, session: &str) -> String {
        format!("{}session:{session}", self.prefix)
    }

    pub fn channel(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// Stores the cooldown with a TTL and tells the other replicas. A zero
    /// `until_ms` removes it. Runs in the background.
    pub fn publish_cooldown(&self, account: &str, cooldown: Option<Cooldown>, now_ms: i64) {
        let Some(mut conn) = self.connection() else {
            return;
        };
        let message = CooldownMessage {
            account: account.to_string(),
            kind: cooldown.map_or("cleared", |c| c.kind.as_str()).to_string(),
            until_ms: cooldown.map_or(0, |c| c.until_ms),
        };
        let key = self.cooldown_key(account);
        let channel = self.channel();
        let ttl_ms = (message.until_ms - now_ms).max(0) as u64;
        tokio::spawn(async move {
            let Ok(payload) = serde_json::to_string(&message) else {
                return;
            };
            let mut pipe = redis::pipe();
            if ttl_ms > 0 {
                pipe.cmd("SET")
                    .arg(&key)
                    .arg(&payload)
                    .arg("PX")
                    .arg(ttl_ms)
                    .ignore();
            } else {
                pipe.cmd("DEL").arg(&key).ignore();
            }
            pipe.cmd("PUBLISH").arg(&channel).arg(&payload).ignore();
            let result =
                tokio::time::timeout(WRITE_TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
            if !matches!(result, Ok(Ok(()))) {
                tracing::debug!("could not share a cooldown through Redis; kept locally");
            }
        });
    }

    /// The cooldowns other replicas stored for these accounts.
    pub async fn load_cooldowns(&self, accounts: &[Arc<str>]) -> Vec<(Arc<str>, Option<Cooldown>)> {
        let Some(mut conn) = self.connection() else {
            return Vec::new();
        };
        if accounts.is_empty() {
            return Vec::new();
        }
        let keys: Vec<String> = accounts.iter().map(|a| self.cooldown_key(a)).collect();
        let values: Vec<Option<String>> =
            match tokio::time::timeout(WRITE_TIMEOUT, conn.mget(&keys)).await {
                Ok(Ok(values)) => values,
                _ => return Vec::new(),
            };
        accounts
            .iter()
            .zip(values)
            .map(|(account, value)| {
                let cooldown = value
                    .and_then(|v| serde_json::from_str::<CooldownMessage>(&v).ok())
                    .and_then(|m| m.to_cooldown());
                (account.clone(), cooldown)
            })
            .collect()
    }

    /// The session's account as stored by any replica; `None` when unknown or
    /// when Redis does not answer in time.
    pub async fn session_account(&self, session: &str) -> Option<String> {
        let mut conn = self.connection()?;
        let key = self.session_key(session);
        match tokio::time::timeout(LOOKUP_TIMEOUT, conn.get::<_, Option<String>>(&key)).await {
            Ok(Ok(value)) => value,
            _ => None,
        }
    }

    /// Stores (and renews) the session's account with the TTL, in the background.
    pub fn put_session(&self, session: &str, account: &str, ttl: Duration) {
        let Some(mut conn) = self.connection() else {
            return;
        };
        let key = self.session_key(session);
        let account = account.to_string();
        let ttl_ms = ttl.as_millis().max(1) as u64;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                WRITE_TIMEOUT,
                conn.pset_ex::<_, _, ()>(&key, &account, ttl_ms),
            )
            .await;
        });
    }
}

/// Applies the other replicas' cooldowns as they are published, resubscribing
/// after any Redis failure, until shutdown.
pub async fn run_subscriber(
    shared: Arc<SharedHealth>,
    selector: Arc<Selector>,
    redis_url: String,
    mut shutdown: watch::Receiver<bool>,
) {
    if !shared.enabled() {
        return;
    }
    loop {
        tokio::select! {
            result = subscribe_once(&shared, &selector, &redis_url) => {
                if let Err(error) = result {
                    tracing::debug!(%error, "cooldown subscription interrupted; retrying");
                }
            }
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn subscribe_once(
    shared: &SharedHealth,
    selector: &Selector,
    redis_url: &str,
) -> redis::RedisResult<()> {
    let client = redis::Client::open(redis_url)?;
    let mut pubsub = tokio::time::timeout(WRITE_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
    pubsub.subscribe(shared.channel()).await?;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let Ok(payload) = message.get_payload::<String>() else {
            continue;
        };
        let Ok(parsed) = serde_json::from_str::<CooldownMessage>(&payload) else {
            continue;
        };
        selector.apply_shared(Arc::from(parsed.account.as_str()), parsed.to_cooldown());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_under_the_prefix() {
        let shared = SharedHealth::new(true, "claude-middleware:".into());
        assert_eq!(shared.cooldown_key("a1"), "claude-middleware:cooldown:a1");
        assert_eq!(shared.session_key("s1"), "claude-middleware:session:s1");
        assert_eq!(shared.channel(), "claude-middleware:events");
    }

    #[test]
    fn messages_round_trip() {
        let message = CooldownMessage {
            account: "a1".into(),
            kind: "rate_limited".into(),
            until_ms: 42,
        };
        let parsed: CooldownMessage =
            serde_json::from_str(&serde_json::to_string(&message).unwrap()).unwrap();
        assert_eq!(
            parsed.to_cooldown(),
            Some(Cooldown {
                until_ms: 42,
                kind: FailureKind::RateLimited
            })
        );
        let cleared = CooldownMessage {
            until_ms: 0,
            kind: "cleared".into(),
            ..message
        };
        assert_eq!(cleared.to_cooldown(), None);
    }
}
