//! The client to the relay backend (http or https): HTTP/1.1 connections
//! kept in one pool, newest first, each read and written by the task of the
//! client request it serves.
//!
//! There is one backend, so the pool is a stack, not a map, and a connection
//! is no task of its own: a generic client (hyper's) runs each connection as
//! a task and hands every piece of the body across a channel, which cost
//! more per request than everything else the proxy does. Here the answer's
//! body reads its connection when the client's side polls it
//! ([`RelayBody`]); it goes back to the pool when the body has ended, and is
//! closed when the body is dropped before its end (the client went away),
//! which also cancels the request upstream.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{StatusCode, Uri};
use rustls::RootCertStore;

mod body;
/// Public for the fuzz target of what the relay sends (`fuzz/`).
pub mod codec;
mod connection;
mod idle;
mod relay_headers;
mod stream;

pub use body::{RelayBody, RelayBodyError};
use codec::BodyDecoder;
pub use codec::RequestHead;
use connection::Connection;
pub use relay_headers::RelayHeaders;
use stream::Dialer;
pub use stream::DialerError;

/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept at most; more are closed when their answer ends.
const MAX_IDLE: usize = 256;

type IdlePool = Mutex<idle::IdleStack<Connection>>;

/// Why a request got no answer head from the backend.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be opened (refused, unreachable, TLS).
    #[error("{0}")]
    Connect(String),
    /// The connection broke, or the answer was malformed, before its head ended.
    #[error("{0}")]
    Request(String),
}

/// The relay's answer: its head, and its body still to be read from the
/// connection.
pub struct RelayResponse {
    pub status: StatusCode,
    pub headers: RelayHeaders,
    pub body: RelayBody,
}

pub struct UpstreamClient {
    dialer: Dialer,
    idle: Arc<IdlePool>,
}

impl UpstreamClient {
    /// `origin`: the backend's scheme and authority ([`crate::forward::Target::origin`]);
    /// `extra_roots`: CAs trusted for an https backend besides the Web PKI roots.
    pub fn new(origin: &Uri, extra_roots: RootCertStore) -> Result<Self, DialerError> {
        Ok(Self {
            dialer: Dialer::new(origin, extra_roots)?,
            idle: Arc::new(Mutex::new(idle::IdleStack::new(MAX_IDLE, IDLE_TIMEOUT))),
        })
    }

    /// Sends the request (`head` with `Host` and no framing headers) on an
    /// idle connection, or a new one, and returns the answer with its body
    /// still to be read from the connection.
    /// `now`: when the request goes out (the caller's clock read, shared with
    /// its deadline and latency: a clock read is dear on some VMs).
    pub async fn send(
        &self,
        head: RequestHead,
        body: &Bytes,
        now: Instant,
    ) -> Result<RelayResponse, SendError> {
        let (method, head) = head.finish(body.len());
        if let Some(mut connection) = self.take_idle(now) {
            match connection.exchange(&head, body, &method).await {
                Ok(answer) => return Ok(self.answer(connection, answer)),
                // The backend had closed the idle connection as the request
                // went out: send it again on a new connection.
                Err(error) if error.is_stale_connection() => {}
                Err(error) => return Err(SendError::Request(error_text(&error))),
            }
        }
        let stream = self
            .dialer
            .dial()
            .await
            .map_err(|error| SendError::Connect(error_text(&error)))?;
        let mut connection = Connection::new(stream);
        match connection.exchange(&head, body, &method).await {
            Ok(answer) => Ok(self.answer(connection, answer)),
            Err(error) => Err(SendError::Request(error_text(&error))),
        }
    }

    fn answer(&self, connection: Connection, head: codec::ResponseHead) -> RelayResponse {
        let body = RelayBody::new(
            connection,
            BodyDecoder::new(head.framing),
            head.reusable,
            self.idle.clone(),
        );
        RelayResponse {
            status: head.status,
            headers: head.headers,
            body,
        }
    }

    /// The newest idle connection that can take a request; closed and
    /// expired ones met on the way are dropped.
    fn take_idle(&self, now: Instant) -> Option<Connection> {
        lock(&self.idle).take(now, Connection::is_usable)
    }
}

fn push_idle(idle: &IdlePool, connection: Connection) {
    let now = Instant::now();
    lock(idle).push(connection, now);
}

/// The stack holds no invariant a panic elsewhere could break.
fn lock(idle: &IdlePool) -> std::sync::MutexGuard<'_, idle::IdleStack<Connection>> {
    idle.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The error and its causes, innermost last (refused, reset…).
fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let next_text = next.to_string();
        if !text.contains(&next_text) {
            text.push_str(": ");
            text.push_str(&next_text);
        }
        cause = next.source();
    }
    text
}
