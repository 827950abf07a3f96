//! Tells every open connection that the server is draining, and waits for
//! them to end.
//!
//! hyper-util's `GracefulShutdown` does this with one watch channel: each
//! poll of each connection polls the channel's `changed()`, which locks the
//! list of waiters that all connections share (about 0.45k instructions per
//! request, `bench/cost.sh`, and a lock every core contends for). Here a
//! connection has a waker slot of its own, entered in the list when it opens
//! and taken out when it ends; a poll costs an atomic load and a waker
//! comparison.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use hyper_util::server::graceful::GracefulConnection;
use pin_project_lite::pin_project;
use tokio::sync::Notify;

/// A connection that can be asked to finish the exchange in progress and
/// close.
pub trait Graceful: Future {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

/// hyper's connections (HTTP/2).
impl<C: GracefulConnection> Graceful for C {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        GracefulConnection::graceful_shutdown(self);
    }
}

/// The server's open connections, and whether it drains.
#[derive(Default)]
pub struct Drain {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    draining: AtomicBool,
    next_id: AtomicU64,
    /// The waker slot of each open connection.
    open: Mutex<HashMap<u64, Arc<AtomicWaker>>>,
    /// Told when the last connection ends.
    all_closed: Notify,
}

impl Shared {
    fn open(&self) -> MutexGuard<'_, HashMap<u64, Arc<AtomicWaker>>> {
        // The map is whole after any panic: an insert or a remove.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drain {
    /// A connection just accepted, counted among the open ones until the
    /// entry is dropped (a drain waits for it from now on).
    pub fn enter(&self) -> Entry {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let waker = Arc::new(AtomicWaker::new());
        self.shared.open().insert(id, Arc::clone(&waker));
        Entry {
            waker,
            id,
            shared: Arc::clone(&self.shared),
        }
    }

    /// Asks every open connection to close once its request is answered
    /// (idle ones at once), and waits until all have ended.
    pub async fn drain(&self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        for waker in self.shared.open().values() {
            waker.wake();
        }
        loop {
            let closed = self.shared.all_closed.notified();
            let mut closed = std::pin::pin!(closed);
            // Registered before looking, so that a last close in between is not missed.
            closed.as_mut().enable();
            if self.shared.open().is_empty() {
                return;
            }
            closed.await;
        }
    }

    /// Open connections (watched and not yet ended).
    pub fn open_connections(&self) -> usize {
        self.shared.open().len()
    }
}

/// An open connection's place among the [`Drain`]'s; it leaves when dropped.
pub struct Entry {
    waker: Arc<AtomicWaker>,
    id: u64,
    shared: Arc<Shared>,
}

impl Entry {
    /// Serves `connection` until it ends; once the server drains, it is
    /// asked to finish the request it is answering and close.
    pub fn watch<C: Graceful>(self, connection: C) -> Watched<C> {
        Watched {
            connection,
            entry: self,
            closing: false,
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut open = self.shared.open();
        open.remove(&self.id);
        if open.is_empty() {
            drop(open);
            self.shared.all_closed.notify_waiters();
        }
    }
}

pin_project! {
    /// A connection watched by [`Drain`].
    pub struct Watched<C> {
        #[pin]
        connection: C,
        entry: Entry,
        closing: bool,
    }
}

impl<C: Graceful> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if !*this.closing {
            // Registered before the flag is read: a drain that starts in
            // between sets the flag first, then wakes this slot.
            this.entry.waker.register(cx.waker());
            if this.entry.shared.draining.load(Ordering::SeqCst) {
                *this.closing = true;
                this.connection.as_mut().graceful_shutdown();
            }
        }
        this.connection.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    /// A real HTTP/1 connection on one end of an in-memory pipe, answering
    /// each request after `delay`; the other end is the client's.
    fn connection(
        delay: Duration,
    ) -> (
        impl GracefulConnection<Output = hyper::Result<()>>,
        DuplexStream,
    ) {
        let (server, client) = tokio::io::duplex(4096);
        let service = service_fn(move |_request| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from("done"))))
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(server), service);
        (connection, client)
    }

    #[tokio::test]
    async fn with_nothing_open_a_drain_ends_at_once() {
        let drain = Drain::default();
        tokio::time::timeout(Duration::from_secs(1), drain.drain())
            .await
            .expect("a drain with no connection ended");
    }

    #[tokio::test]
    async fn an_idle_connection_closes_and_a_busy_one_finishes_its_answer_first() {
        let drain = Arc::new(Drain::default());
        let (idle, _idle_client) = connection(Duration::ZERO);
        let idle = tokio::spawn(drain.enter().watch(idle));
        let (busy, mut busy_client) = connection(Duration::from_millis(300));
        let busy = tokio::spawn(drain.enter().watch(busy));
        busy_client
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(drain.open_connections(), 2);

        let draining = tokio::spawn({
            let drain = Arc::clone(&drain);
            async move { drain.drain().await }
        });
        let idle_ended = tokio::time::timeout(Duration::from_secs(1), idle).await;
        assert!(idle_ended.is_ok(), "the idle connection was not closed");

        let mut answer = Vec::new();
        busy_client.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(answer.ends_with("done"), "{answer:?}");
        assert!(busy.await.is_ok());
        tokio::time::timeout(Duration::from_secs(1), draining)
            .await
            .expect("the drain ended once both connections had")
            .unwrap();
        assert_eq!(drain.open_connections(), 0);
    }

    #[tokio::test]
    async fn a_connection_that_comes_during_a_drain_closes_at_its_first_poll() {
        let drain = Arc::new(Drain::default());
        let held = drain.enter();
        let draining = tokio::spawn({
            let drain = Arc::clone(&drain);
            async move { drain.drain().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (late, _client) = connection(Duration::ZERO);
        let late = drain.enter().watch(late);
        tokio::time::timeout(Duration::from_secs(1), late)
            .await
            .expect("the late connection was not closed")
            .unwrap();
        assert!(
            !draining.is_finished(),
            "the drain ended with a connection still open"
        );
        drop(held);
        tokio::time::timeout(Duration::from_secs(1), draining)
            .await
            .expect("the drain did not end after the last connection")
            .unwrap();
    }
}
