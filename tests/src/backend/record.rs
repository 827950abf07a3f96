//! What the stand-in saw: one [`SeenRequest`] per request, updated as its stream goes on.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;

/// One request as the stand-in received it, and how its answer went.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// Sequence number, from 0, in arrival order (not reset by `reset_records`).
    pub id: u64,
    pub method: String,
    /// Path and query, e.g. `/v1/messages?beta=true`.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The `x-api-key` header (the account id the proxy chose), if any.
    pub api_key: Option<String>,
    /// Whether the body asked for a stream (`"stream": true`).
    pub stream: bool,
    /// The behaviour the request got, as `Debug` text (`"Normal"`, `"RateLimited { .. }"`).
    pub behaviour: String,
    /// The status it was answered with.
    pub status: u16,
    /// When the request head arrived.
    pub started: Instant,
    /// When the whole answer was handed to the connection (streams: after the last event).
    pub completed: Option<Instant>,
    /// When the stand-in noticed that the client had gone before the answer was complete
    /// (the response body was dropped: the connection closed or the request was cancelled).
    pub client_gone: Option<Instant>,
    /// The client's address and port: one per connection, so requests with the
    /// same one came over the same connection.
    pub peer: Option<std::net::SocketAddr>,
}

impl SeenRequest {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Whether the client went away before the answer was complete.
    pub fn client_went_away(&self) -> bool {
        self.client_gone.is_some()
    }
}

/// At most this many requests are kept (the oldest go first), so that a long demo run of
/// the binary does not grow without bound.
pub const MAX_RECORDS: usize = 100_000;

/// The list of [`SeenRequest`]s, shared by the server tasks and the test.
#[derive(Debug)]
pub(crate) struct Records {
    enabled: bool,
    inner: Mutex<RecordsInner>,
}

#[derive(Debug, Default)]
struct RecordsInner {
    next_id: u64,
    seen: VecDeque<SeenRequest>,
}

impl Records {
    /// `enabled = false` keeps nothing (the benchmark mode); ids are still handed out.
    pub(crate) fn new(enabled: bool) -> Records {
        Records {
            enabled,
            inner: Mutex::new(RecordsInner::default()),
        }
    }

    /// Stores a new request (its `id` is assigned here) and returns the id.
    pub(crate) fn add(&self, mut seen: SeenRequest) -> u64 {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        if self.enabled {
            seen.id = id;
            if inner.seen.len() >= MAX_RECORDS {
                inner.seen.pop_front();
            }
            inner.seen.push_back(seen);
        }
        id
    }

    /// Changes the stored request `id`, if it is still stored.
    pub(crate) fn update(&self, id: u64, change: impl FnOnce(&mut SeenRequest)) {
        if !self.enabled {
            return;
        }
        let mut inner = self.lock();
        if let Some(seen) = inner.seen.iter_mut().rev().find(|s| s.id == id) {
            change(seen);
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<SeenRequest> {
        self.lock().seen.iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        self.lock().seen.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecordsInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
