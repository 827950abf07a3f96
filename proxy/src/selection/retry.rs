//! Pure retry policy: after an account failed, whether another account is
//! tried, and after how long.

use std::time::Duration;

use super::FailureKind;

/// First backoff after an overload; it doubles with each attempt.
const OVERLOAD_BACKOFF: Duration = Duration::from_millis(100);
/// Longest the proxy waits before the next attempt. A `retry-after` beyond it
/// is the client's to honour: the answer is passed on rather than held.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

/// How long to wait before trying another account, or `None` to answer the
/// client with this failure now. `retry_after` is what the answer asked for,
/// `attempt` counts from 0, and `jitter` is a random number in `[0, 1)`.
///
/// An overload (529, `overloaded_error`) is Anthropic's, for every account:
/// an immediate retry would most likely meet it again, so the next account
/// is tried after a short jittered backoff, or after `retry-after`. Every
/// other failure belongs to the account, and another one is tried at once.
pub fn retry_delay(
    kind: FailureKind,
    retry_after: Option<Duration>,
    attempt: u32,
    jitter: f64,
) -> Option<Duration> {
    if kind != FailureKind::Overloaded {
        return Some(Duration::ZERO);
    }
    let jitter = jitter.clamp(0.0, 1.0);
    let wait = match retry_after {
        Some(asked) if asked > MAX_RETRY_WAIT => return None,
        // Honour it, spread by up to a tenth so replicas do not retry in step.
        Some(asked) => asked.mul_f64(1.0 + jitter / 10.0),
        // "Full jitter" between half and all of the exponential step.
        None => OVERLOAD_BACKOFF
            .saturating_mul(1 << attempt.min(5))
            .mul_f64(0.5 + jitter / 2.0),
    };
    Some(wait.min(MAX_RETRY_WAIT))
}

/// A random number in `[0, 1)`, for jitter: the standard library's hasher is
/// randomly keyed per process, which is all the randomness needed here.
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (RandomState::new().hash_one(nanos) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_failures_retry_at_once() {
        for kind in [
            FailureKind::RateLimited,
            FailureKind::AuthFailed,
            FailureKind::ServerError,
            FailureKind::CircuitOpen,
        ] {
            assert_eq!(
                retry_delay(kind, Some(Duration::from_secs(900)), 0, 0.5),
                Some(Duration::ZERO)
            );
        }
    }

    #[test]
    fn overload_backs_off_with_jitter() {
        let delay = |attempt, jitter| retry_delay(FailureKind::Overloaded, None, attempt, jitter);
        assert_eq!(delay(0, 0.0), Some(Duration::from_millis(50)));
        assert_eq!(delay(0, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(delay(1, 1.0), Some(Duration::from_millis(200)));
        assert_eq!(delay(9, 1.0), Some(MAX_RETRY_WAIT));
    }

    #[test]
    fn overload_honours_retry_after() {
        let delay = |secs: f64| {
            retry_delay(
                FailureKind::Overloaded,
                Some(Duration::from_secs_f64(secs)),
                0,
                0.0,
            )
        };
        assert_eq!(delay(1.0), Some(Duration::from_secs(1)));
        assert_eq!(delay(2.0), Some(Duration::from_secs(2)));
        // Longer than the proxy holds a request: the client gets the 529.
        assert_eq!(delay(30.0), None);
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }
}
