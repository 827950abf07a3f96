//! Keeps the pool current: re-reads Redis every refresh interval, keeps the
//! last good pool when Redis fails, and retries quickly until the first load.
//! Each good refresh also picks up the cooldowns other replicas stored, in
//! case a pub/sub nudge was missed.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::accounts::{Pool, connect, load_accounts, now_ms};
use crate::metrics::Metrics;
use crate::selection::Selector;
use crate::shared_health::SharedHealth;

/// Redis must answer within this; a slow Redis is a failed refresh, not a stall.
const REDIS_TIMEOUT: Duration = Duration::from_secs(3);
/// Retry period while no pool has been loaded yet.
const FIRST_LOAD_RETRY: Duration = Duration::from_millis(500);

/// What the refresher reads from and keeps current.
pub struct Refresher {
    pub pool: Arc<Pool>,
    pub selector: Arc<Selector>,
    pub shared_health: Arc<SharedHealth>,
    pub metrics: Arc<Metrics>,
    pub redis_url: String,
    pub interval: Duration,
}

impl Refresher {
    /// Refreshes every interval until shutdown.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut conn: Option<ConnectionManager> = None;
        loop {
            if refresh_once(&self.pool, &self.redis_url, &mut conn).await {
                if let Some(conn) = &conn {
                    self.shared_health.set_connection(conn);
                }
                self.sync_shared_cooldowns().await;
            } else {
                self.metrics.redis_errors.inc();
            }
            let wait = if self.pool.snapshot().is_none() {
                self.interval.min(FIRST_LOAD_RETRY)
            } else {
                self.interval
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn sync_shared_cooldowns(&self) {
        if !self.shared_health.enabled() {
            return;
        }
        let Some(pool) = self.pool.snapshot() else {
            return;
        };
        let ids: Vec<Arc<str>> = pool.accounts.iter().map(|a| a.id.clone()).collect();
        for (id, cooldown) in self.shared_health.load_cooldowns(&ids).await {
            if cooldown.is_some() {
                self.selector.apply_shared(id, cooldown);
            }
        }
    }
}

/// One refresh; false when Redis failed (the last good pool stays).
async fn refresh_once(pool: &Pool, redis_url: &str, conn: &mut Option<ConnectionManager>) -> bool {
    if conn.is_none() {
        match tokio::time::timeout(REDIS_TIMEOUT, connect(redis_url, REDIS_TIMEOUT)).await {
            Ok(Ok(manager)) => *conn = Some(manager),
            Ok(Err(error)) => return fail(pool, format!("cannot connect to Redis: {error}")),
            Err(_) => return fail(pool, "cannot connect to Redis: timed out".to_string()),
        }
    }
    let Some(manager) = conn.as_mut() else {
        return false;
    };
    match tokio::time::timeout(REDIS_TIMEOUT, load_accounts(manager, now_ms())).await {
        Ok(Ok(loaded)) => {
            let first = pool.snapshot().is_none() || pool.status().last_error.is_some();
            if first {
                tracing::info!(
                    schedulable = loaded.accounts.len(),
                    listed = loaded.listed,
                    "account pool loaded from Redis"
                );
            }
            pool.publish(loaded.accounts, loaded.listed);
            true
        }
        Ok(Err(error)) => fail(pool, format!("reading accounts from Redis failed: {error}")),
        Err(_) => fail(pool, "reading accounts from Redis timed out".to_string()),
    }
}

fn fail(pool: &Pool, error: String) -> bool {
    let status = pool.status();
    // Log the first failure of an outage, not every retry.
    if status.consecutive_failures == 0 {
        if pool.snapshot().is_some() {
            tracing::warn!(%error, "Redis unavailable; serving with the last account pool");
        } else {
            tracing::warn!(%error, "Redis unavailable; not ready until the account pool loads");
        }
    }
    pool.record_failure(error);
    false
}
