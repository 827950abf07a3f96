//! Which account serves a request: the selection state (cooldowns and this
//! proxy's own least-recently-used order) behind one short-held lock, the pure
//! [`choose::choose`], and the classification of what came back.

pub mod choose;
pub mod error_shape;
pub mod outcome;
pub mod retry;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::accounts::Account;
pub use choose::{Cooldown, Selection, SelectionState, choose};
pub use outcome::{
    AnswerHeaders, FailureKind, HeadVerdict, Outcome, RelayFailure, classify_error, classify_head,
    classify_stream_error,
};

/// Shared by all requests. The lock is never held across an await.
#[derive(Default)]
pub struct Selector {
    state: Mutex<SelectionState>,
    picks: std::sync::atomic::AtomicU64,
}

impl Selector {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, SelectionState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Chooses an account and records the pick, in one step, so concurrent
    /// requests spread over accounts of equal priority.
    pub fn pick<'a>(
        &self,
        accounts: &'a [Account],
        preferred: Option<&str>,
        tried: &[Arc<str>],
        now_ms: i64,
    ) -> Selection<'a> {
        let mut state = self.state();
        let selection = choose(accounts, &state, preferred, tried, now_ms);
        if let Selection::Chosen(account) = selection {
            let tick = self
                .picks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            state.last_pick.insert(account.id.clone(), tick);
        }
        selection
    }

    /// Cools an account down; a zero cooldown (reset already past) clears it.
    /// Returns the cooldown now in force, to share with other replicas.
    pub fn cool_down(
        &self,
        id: &Arc<str>,
        kind: FailureKind,
        cooldown: Duration,
        now_ms: i64,
    ) -> Option<Cooldown> {
        let mut state = self.state();
        if cooldown.is_zero() {
            state.cooldowns.remove(id);
            return None;
        }
        let until_ms = now_ms.saturating_add(cooldown.as_millis().min(i64::MAX as u128) as i64);
        let cooldown = Cooldown { until_ms, kind };
        state.cooldowns.insert(id.clone(), cooldown);
        Some(cooldown)
    }

    /// A cooldown learned from another replica; `None` clears it.
    pub fn apply_shared(&self, id: Arc<str>, cooldown: Option<Cooldown>) {
        let mut state = self.state();
        match cooldown {
            Some(cooldown) => {
                state.cooldowns.insert(id, cooldown);
            }
            None => {
                state.cooldowns.remove(&id);
            }
        }
    }

    /// Active cooldowns, for metrics and logs; expired ones are dropped.
    pub fn active_cooldowns(&self, now_ms: i64) -> Vec<(Arc<str>, Cooldown)> {
        let mut state = self.state();
        state.cooldowns.retain(|_, c| c.until_ms > now_ms);
        state
            .cooldowns
            .iter()
            .map(|(id, c)| (id.clone(), *c))
            .collect()
    }
}
