//! The current account pool: an immutable snapshot swapped in whole by the
//! refresher, so the request path reads it without a lock.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use super::Account;

/// Accounts ordered by priority (best first), as read at `loaded_at`.
#[derive(Debug)]
pub struct PoolSnapshot {
    pub accounts: Vec<Account>,
    pub loaded_at: Instant,
    /// How many ids Redis listed, schedulable or not.
    pub listed: usize,
}

/// What the refresher last saw of Redis, for `/ready` and metrics.
#[derive(Debug, Clone, Default)]
pub struct RefreshStatus {
    pub last_success: Option<Instant>,
    /// The latest failure, cleared by a success. Never holds a password.
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
}

#[derive(Default)]
pub struct Pool {
    snapshot: ArcSwapOption<PoolSnapshot>,
    status: Mutex<RefreshStatus>,
}

impl Pool {
    pub fn new() -> Self {
        Self::default()
    }

    /// `None` until the first successful load.
    pub fn snapshot(&self) -> Option<Arc<PoolSnapshot>> {
        self.snapshot.load_full()
    }

    pub fn publish(&self, mut accounts: Vec<Account>, listed: usize) {
        accounts.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
        self.snapshot.store(Some(Arc::new(PoolSnapshot {
            accounts,
            loaded_at: Instant::now(),
            listed,
        })));
        let mut status = self.status_guard();
        status.last_success = Some(Instant::now());
        status.last_error = None;
        status.consecutive_failures = 0;
    }

    pub fn record_failure(&self, error: String) {
        let mut status = self.status_guard();
        status.last_error = Some(error);
        status.consecutive_failures += 1;
    }

    pub fn status(&self) -> RefreshStatus {
        self.status_guard().clone()
    }

    fn status_guard(&self) -> std::sync::MutexGuard<'_, RefreshStatus> {
        // A poisoned status is still a valid status.
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Readiness as `/ready` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Serving from the last good pool while Redis does not answer.
    Degraded {
        redis_error: String,
        pool_age: Duration,
    },
    NotReady {
        reason: String,
    },
}

/// Pure: what `/ready` should say given the pool and the refresh status.
pub fn readiness(
    snapshot: Option<&PoolSnapshot>,
    status: &RefreshStatus,
    refresh_interval: Duration,
    now: Instant,
) -> Readiness {
    let Some(snapshot) = snapshot else {
        return Readiness::NotReady {
            reason: match &status.last_error {
                Some(error) => format!("account pool not loaded yet: {error}"),
                None => "account pool not loaded yet".to_string(),
            },
        };
    };
    if snapshot.accounts.is_empty() {
        return Readiness::NotReady {
            reason: format!(
                "no schedulable account among the {} in Redis",
                snapshot.listed
            ),
        };
    }
    let fresh = status
        .last_success
        .is_some_and(|t| now.saturating_duration_since(t) <= refresh_interval * 2);
    if status.last_error.is_none() && fresh {
        return Readiness::Ready;
    }
    Readiness::Degraded {
        redis_error: status
            .last_error
            .clone()
            .unwrap_or_else(|| "no answer from Redis within the refresh window".to_string()),
        pool_age: now.saturating_duration_since(snapshot.loaded_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str, priority: u32) -> Account {
        Account::new(id, id.to_string(), priority, String::new())
    }

    #[test]
    fn publish_orders_by_priority() {
        let pool = Pool::new();
        assert!(pool.snapshot().is_none());
        pool.publish(
            vec![account("b", 50), account("a", 50), account("c", 10)],
            5,
        );
        let ids: Vec<_> = pool
            .snapshot()
            .unwrap()
            .accounts
            .iter()
            .map(|a| a.id.to_string())
            .collect();
        assert_eq!(ids, ["c", "a", "b"]);
    }

    #[test]
    fn readiness_states() {
        let interval = Duration::from_secs(30);
        let now = Instant::now();
        let never = RefreshStatus {
            last_error: Some("connection refused".into()),
            ..Default::default()
        };
        assert!(matches!(
            readiness(None, &never, interval, now),
            Readiness::NotReady { reason } if reason.contains("connection refused")
        ));

        let snapshot = PoolSnapshot {
            accounts: vec![account("a", 50)],
            loaded_at: now,
            listed: 1,
        };
        let ok = RefreshStatus {
            last_success: Some(now),
            ..Default::default()
        };
        assert_eq!(
            readiness(Some(&snapshot), &ok, interval, now),
            Readiness::Ready
        );

        let failing = RefreshStatus {
            last_success: Some(now),
            last_error: Some("timed out".into()),
            consecutive_failures: 1,
        };
        assert!(matches!(
            readiness(Some(&snapshot), &failing, interval, now),
            Readiness::Degraded { redis_error, .. } if redis_error == "timed out"
        ));
        let later = now + Duration::from_secs(61);
        assert!(matches!(
            readiness(Some(&snapshot), &ok, interval, later),
            Readiness::Degraded { .. }
        ));

        let empty = PoolSnapshot {
            accounts: vec![],
            loaded_at: now,
            listed: 8,
        };
        assert!(matches!(
            readiness(Some(&empty), &ok, interval, now),
            Readiness::NotReady { .. }
        ));
    }
}
