//! Pure account selection: best priority first, then least recently picked by
//! this proxy, skipping accounts in cooldown and those already tried.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::outcome::FailureKind;
use crate::accounts::Account;

/// An account cooled down until `until_ms` (wall clock, so replicas agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooldown {
    pub until_ms: i64,
    pub kind: FailureKind,
}

/// What the selector knows besides the pool. Both maps are looked up for
/// every account of the pool on every request: hashed with foldhash (the
/// keys are account ids from Redis, not chosen by clients), not SipHash.
#[derive(Debug, Default)]
pub struct SelectionState {
    pub cooldowns: HashMap<Arc<str>, Cooldown, foldhash::fast::RandomState>,
    /// Pick counter value at each account's last pick; higher is more recent.
    pub last_pick: HashMap<Arc<str>, u64, foldhash::fast::RandomState>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Selection<'a> {
    Chosen(&'a Account),
    /// Nothing usable. `retry_after` is the time until the earliest cooldown
    /// ends (None when no cooldown explains it, e.g. an empty pool).
    NoneAvailable {
        retry_after: Option<Duration>,
        all_rate_limited: bool,
    },
}

/// Chooses an account. `preferred` (a sticky session's account) wins while it
/// is usable; `tried` are the accounts this request already failed on.
pub fn choose<'a>(
    accounts: &'a [Account],
    state: &SelectionState,
    preferred: Option<&str>,
    tried: &[Arc<str>],
    now_ms: i64,
) -> Selection<'a> {
    let cooling = |a: &Account| {
        state
            .cooldowns
            .get(&a.id)
            .filter(|c| c.until_ms > now_ms)
            .copied()
    };
    let usable = |a: &&Account| !tried.contains(&a.id) && cooling(a).is_none();

    if let Some(preferred) = preferred
        && let Some(account) = accounts.iter().filter(usable).find(|a| &*a.id == preferred)
    {
        return Selection::Chosen(account);
    }
    let best = accounts.iter().filter(usable).min_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then_with(|| last_pick(state, a).cmp(&last_pick(state, b)))
            .then_with(|| a.relay_last_used.cmp(&b.relay_last_used))
            .then_with(|| a.id.cmp(&b.id))
    });
    if let Some(account) = best {
        return Selection::Chosen(account);
    }
    let cooldowns: Vec<Cooldown> = accounts.iter().filter_map(cooling).collect();
    let retry_after = cooldowns
        .iter()
        .map(|c| c.until_ms)
        .min()
        .map(|until| Duration::from_millis((until - now_ms).max(0) as u64));
    Selection::NoneAvailable {
        retry_after,
        all_rate_limited: !cooldowns.is_empty()
            && cooldowns.iter().all(|c| c.kind == FailureKind::RateLimited),
    }
}

fn last_pick(state: &SelectionState, account: &Account) -> u64 {
    state.last_pick.get(&account.id).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn account(id: &str, priority: u32, relay_last_used: &str) -> Account {
        Account::new(id, id.to_string(), priority, relay_last_used.to_string())
    }

    fn fixture_like() -> Vec<Account> {
        vec![
            account("a1", 50, "2026-11-25T10:00:00.000Z"),
            account("a2", 50, "2026-11-25T09:00:00.000Z"),
            account("a3", 10, ""),
            account("a7", 50, "2026-11-20T00:00:00.000Z"),
        ]
    }

    fn chosen<'a>(s: Selection<'a>) -> &'a str {
        match s {
            Selection::Chosen(a) => &a.id,
            other => panic!("expected a choice, got {other:?}"),
        }
    }

    fn pick(accounts: &[Account], state: &mut SelectionState, counter: &mut u64) -> String {
        let id = chosen(choose(accounts, state, None, &[], NOW)).to_string();
        *counter += 1;
        state.last_pick.insert(id.as_str().into(), *counter);
        id
    }

    #[test]
    fn best_priority_first() {
        let accounts = fixture_like();
        let mut state = SelectionState::default();
        let mut counter = 0;
        for _ in 0..3 {
            assert_eq!(pick(&accounts, &mut state, &mut counter), "a3");
        }
    }

    #[test]
    fn least_recently_used_within_a_priority() {
        let accounts = fixture_like();
        let mut state = SelectionState::default();
        state.cooldowns.insert(
            "a3".into(),
            Cooldown {
                until_ms: NOW + 10_000,
                kind: FailureKind::RateLimited,
            },
        );
        let mut counter = 0;
        // Never picked here: the relay's lastUsedAt breaks the tie (oldest first).
        let order: Vec<String> = (0..6)
            .map(|_| pick(&accounts, &mut state, &mut counter))
            .collect();
        assert_eq!(order, ["a7", "a2", "a1", "a7", "a2", "a1"]);
    }

    #[test]
    fn cooldown_expiry_returns_the_account() {
        let accounts = fixture_like();
        let mut state = SelectionState::default();
        state.cooldowns.insert(
            "a3".into(),
            Cooldown {
                until_ms: NOW,
                kind: FailureKind::RateLimited,
            },
        );
        assert_eq!(chosen(choose(&accounts, &state, None, &[], NOW)), "a3");
    }

    #[test]
    fn tried_accounts_are_skipped() {
        let accounts = fixture_like();
        let state = SelectionState::default();
        let tried: Vec<Arc<str>> = vec!["a3".into(), "a7".into()];
        assert_eq!(chosen(choose(&accounts, &state, None, &tried, NOW)), "a2");
    }

    #[test]
    fn preferred_wins_while_usable() {
        let accounts = fixture_like();
        let mut state = SelectionState::default();
        assert_eq!(
            chosen(choose(&accounts, &state, Some("a1"), &[], NOW)),
            "a1"
        );
        state.cooldowns.insert(
            "a1".into(),
            Cooldown {
                until_ms: NOW + 1,
                kind: FailureKind::AuthFailed,
            },
        );
        assert_eq!(
            chosen(choose(&accounts, &state, Some("a1"), &[], NOW)),
            "a3"
        );
        assert_eq!(
            chosen(choose(&accounts, &state, Some("gone"), &[], NOW)),
            "a3"
        );
    }

    #[test]
    fn none_left_reports_earliest_reset() {
        let accounts = fixture_like();
        let mut state = SelectionState::default();
        for (i, a) in accounts.iter().enumerate() {
            state.cooldowns.insert(
                a.id.clone(),
                Cooldown {
                    until_ms: NOW + 5_000 + i as i64 * 1000,
                    kind: FailureKind::RateLimited,
                },
            );
        }
        assert_eq!(
            choose(&accounts, &state, None, &[], NOW),
            Selection::NoneAvailable {
                retry_after: Some(Duration::from_secs(5)),
                all_rate_limited: true
            }
        );
        state.cooldowns.insert(
            "a1".into(),
            Cooldown {
                until_ms: NOW + 9_000,
                kind: FailureKind::ServerError,
            },
        );
        assert!(matches!(
            choose(&accounts, &state, None, &[], NOW),
            Selection::NoneAvailable {
                all_rate_limited: false,
                ..
            }
        ));
    }

    #[test]
    fn empty_pool() {
        let state = SelectionState::default();
        assert_eq!(
            choose(&[], &state, None, &[], NOW),
            Selection::NoneAvailable {
                retry_after: None,
                all_rate_limited: false
            }
        );
    }
}
