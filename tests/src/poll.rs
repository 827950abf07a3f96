//! The harness's one way to wait: poll a condition until it holds or a
//! deadline passes. Tests wait for what they assert instead of sleeping a
//! fixed time and hoping it happened.

use std::time::{Duration, Instant};

/// How often a condition is checked unless the caller says otherwise.
pub const EVERY: Duration = Duration::from_millis(20);

/// Checks `check` every `every` until it gives `Some`, or `None` once
/// `timeout` has passed. The check always runs at least once.
pub async fn poll<T>(
    timeout: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// [`poll`] for code that cannot await (starting and stopping processes).
pub fn poll_blocking<T>(
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Polls until `check` holds; panics naming `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let held = poll(timeout, EVERY, async || check().await.then_some(())).await;
    assert!(
        held.is_some(),
        "timed out after {timeout:?} waiting for {what}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gives_the_first_value_and_gives_up_at_the_deadline() {
        let mut calls = 0;
        let third = poll(
            Duration::from_secs(5),
            Duration::from_millis(1),
            async || {
                calls += 1;
                (calls == 3).then_some(calls)
            },
        )
        .await;
        assert_eq!(third, Some(3));

        let started = Instant::now();
        let never = poll_blocking(Duration::from_millis(50), Duration::from_millis(5), || {
            None::<()>
        });
        assert_eq!(never, None);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
