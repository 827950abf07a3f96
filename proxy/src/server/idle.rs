//! Closes an HTTP/1 connection on which nothing has happened for a while: a
//! client sending its request head too slowly (slowloris), or an idle
//! keep-alive connection. One timer per connection, looked at once per
//! period, where hyper's header-read timeout made, polled and dropped a timer
//! for every request (about 1k instructions per request, `bench/cost.sh`).
//!
//! A connection is closed at the end of a period in which no request started
//! and none was in flight, so between one and two periods after its last
//! request ended or its unfinished head began. A long stream is never cut:
//! its request is in flight until its response body is dropped.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

/// What a connection's requests have done, counted as they start and end.
#[derive(Debug, Default)]
pub struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
}

impl Activity {
    /// A request has started; it is in flight until the guard is dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        // Relaxed: requests start and end in the connection's own task,
        // which reads these.
        self.started.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    fn in_flight(&self) -> bool {
        self.finished.load(Ordering::Relaxed) != self.started()
    }
}

/// A request in flight on its connection, until dropped (once its answer is
/// written, or when the client leaves first).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// Serves `connection` until it ends (`Some` of its output), or stops (`None`:
/// the caller drops it, which closes it) at the end of a `period` in which
/// no request started and none was in flight. Pinned by the caller: a
/// connection's future is its task's largest part, and taken by value it
/// would be stored twice.
pub async fn close_when_idle<F: Future>(
    mut connection: Pin<&mut F>,
    activity: &Activity,
    period: Duration,
) -> Option<F::Output> {
    let mut tick = pin!(tokio::time::sleep(period));
    let mut started_before = activity.started();
    std::future::poll_fn(|cx| {
        // The connection first: a head that has just come in is served, not
        // cut by a period that ended at the same moment.
        if let Poll::Ready(output) = connection.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        while tick.as_mut().poll(cx).is_ready() {
            let started = activity.started();
            if started == started_before && !activity.in_flight() {
                return Poll::Ready(None);
            }
            started_before = started;
            tick.as_mut().reset(tokio::time::Instant::now() + period);
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    const PERIOD: Duration = Duration::from_secs(30);

    /// A connection that never ends by itself.
    fn forever() -> std::future::Pending<()> {
        std::future::pending()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_with_no_request_is_closed_after_one_period() {
        let activity = Arc::new(Activity::default());
        let start = Instant::now();
        assert_eq!(
            close_when_idle(pin!(forever()), &activity, PERIOD).await,
            None
        );
        assert_eq!(start.elapsed(), PERIOD);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_its_connection_open() {
        let activity = Arc::new(Activity::default());
        let in_flight = activity.start();
        let connection = pin!(forever());
        let watched = close_when_idle(connection, &activity, PERIOD);
        let outcome = tokio::time::timeout(PERIOD * 10, watched).await;
        assert!(outcome.is_err(), "closed while a request was in flight");
        drop(in_flight);
    }

    #[tokio::test(start_paused = true)]
    async fn after_its_last_request_ends_a_connection_lasts_one_to_two_periods() {
        let activity = Arc::new(Activity::default());
        let start = Instant::now();
        let requests = {
            let activity = Arc::clone(&activity);
            async move {
                // One short request 10 s in, then nothing.
                tokio::time::sleep(Duration::from_secs(10)).await;
                drop(activity.start());
                std::future::pending::<()>().await;
            }
        };
        assert_eq!(
            close_when_idle(pin!(requests), &activity, PERIOD).await,
            None
        );
        assert_eq!(start.elapsed(), PERIOD * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_ends_gives_its_output() {
        let activity = Arc::new(Activity::default());
        assert_eq!(
            close_when_idle(pin!(async { 7 }), &activity, PERIOD).await,
            Some(7)
        );
    }
}
