//! The stand-in claude-relay-service backend.
//!
//! A real HTTP server on 127.0.0.1 (hyper, HTTP/1.1 and h2c) that answers every path under
//! the proxied prefixes ([`PROXIED_PREFIXES`], the contract's list) with the Anthropic
//! Messages API shapes: a `message` JSON object, or an SSE stream when the body has `"stream": true`
//! (`message_start`, `content_block_start`, N × `content_block_delta`, `content_block_stop`,
//! `message_delta`, `message_stop`). The text says `served by account <x-api-key>` and the
//! response carries `x-stand-in-account: <x-api-key>` (`none` when the request had none).
//! `GET /health` answers 200; other paths 404.
//!
//! Per-request controls (headers): `x-test-events: N` deltas (default 5), `x-test-gap-ms: M`
//! between SSE events (default 0), `x-test-body-bytes: B` extra text bytes.
//!
//! Per-account scripts ([`Backend::script`], keyed by the `x-api-key` value, i.e. the account
//! id): see [`Behaviour`] and [`Times`].
//!
//! Every request is recorded ([`Backend::requests`]), including whether the client went away
//! before its stream completed.
//!
//! The `stand-in-relay` binary is scripted over HTTP under [`CONTROL_PREFIX`]
//! (`/__stand-in/script`, `/__stand-in/requests`, ...; see the `control` module source).
//!
//! ```no_run
//! # async fn demo() {
//! use cmw_tests::backend::{Backend, Behaviour, Times};
//! use std::time::Duration;
//! let backend = Backend::start().await;
//! backend.script("acc-1", Behaviour::RateLimited { reset_in: Duration::from_secs(2) }, Times::Once);
//! // ... point the proxy's TARGET_URL at backend.url() and send requests ...
//! assert_eq!(backend.count_for("acc-1"), 1);
//! # }
//! ```

mod anthropic;
mod body;
mod control;
mod fork_framing;
mod record;
mod respond;
mod script;
mod server;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use anthropic::{
    DEFAULT_MODEL, error_json, relay_ip_limit_json, relay_stream_error_frame, rfc3339, sse_frame,
};
pub use control::CONTROL_PREFIX;
pub use fork_framing::ForkFramingRelay;
pub use record::{MAX_RECORDS, SeenRequest};
pub use respond::{CACHED_PROMPT_TOKENS, PROXIED_PREFIXES, RELAY_IP_LIMIT_BLOCK_SECS};
pub use script::{Behaviour, Times};

use crate::poll::poll;
use respond::Shared;

/// How a [`Backend`] runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Port on 127.0.0.1; 0 = a free one (from [`crate::ports::free_port`]). Pass the port of
    /// a dropped stand-in to start one again on the same address.
    pub port: u16,
    /// Keep a [`SeenRequest`] per request (off for benchmarks: no per-request bookkeeping).
    pub record: bool,
    /// Worker threads of the stand-in's own runtime.
    pub worker_threads: usize,
    /// Serve only the routes of the fork of claude-relay-service (`/api/v1/`,
    /// `/claude/v1/`, ... but no bare `/v1/`, which gets its 404).
    pub fork_routes: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            port: 0,
            record: true,
            worker_threads: 2,
            fork_routes: false,
        }
    }
}

/// A running stand-in relay backend. Stops (and closes every connection) on drop; the drop
/// returns once the port is free again.
pub struct Backend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    /// Starts a recording stand-in on a free loopback port.
    ///
    /// It runs on a runtime of its own (threads of its own), so a test that blocks its
    /// thread, e.g. waiting for the proxy process to exit, does not freeze its streams.
    pub async fn start() -> Backend {
        Backend::start_blocking(Options::default()).expect("start the stand-in relay backend")
    }

    /// Starts a stand-in with these options.
    pub async fn start_with(options: Options) -> std::io::Result<Backend> {
        Backend::start_blocking(options)
    }

    /// Starts a stand-in from synchronous code (no runtime needed).
    pub fn start_blocking(options: Options) -> std::io::Result<Backend> {
        let port = match options.port {
            0 => crate::ports::free_port(),
            port => port,
        };
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.worker_threads.max(1))
            .thread_name("stand-in-relay")
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared::new(options.record, options.fork_routes));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("stand-in-relay".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => server::serve(listener, serving, shutdown_rx).await,
                        Err(e) => eprintln!("stand-in relay: {e}"),
                    }
                });
                // Dropping the runtime here ends every connection and stream task.
            })?;
        Ok(Backend {
            addr,
            shared,
            shutdown,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, for the proxy's `TARGET_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Scripts the answers for requests whose `x-api-key` is `key` (an account id).
    /// Scripts queue up: see [`Times`] for how long each applies.
    pub fn script(&self, key: &str, behaviour: Behaviour, times: Times) {
        self.shared.scripts.push(Some(key), behaviour, times);
    }

    /// Scripts the answers for requests of any account that has no script of its own left.
    pub fn script_any(&self, behaviour: Behaviour, times: Times) {
        self.shared.scripts.push(None, behaviour, times);
    }

    /// Turns on the fork's per-IP limit: `points` requests per client address,
    /// then 429 `Too Many Requests` with `retry-after: 900`; `None` turns it off.
    pub fn limit_per_ip(&self, points: Option<usize>) {
        self.shared.ip_limit.set(points);
    }

    /// Forgets every script: all accounts are answered normally again.
    pub fn clear_scripts(&self) {
        self.shared.scripts.clear();
    }

    /// Forgets the recorded requests (ids keep counting up).
    pub fn reset_records(&self) {
        self.shared.records.clear();
    }

    /// Every recorded request, in arrival order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.records.snapshot()
    }

    /// The `x-api-key` of every recorded request that had one, in arrival order.
    pub fn keys_seen(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter_map(|r| r.api_key)
            .collect()
    }

    /// How many recorded requests carried this `x-api-key`.
    pub fn count_for(&self, key: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.api_key.as_deref() == Some(key))
            .count()
    }

    /// The most recent recorded request, if any.
    pub fn last_request(&self) -> Option<SeenRequest> {
        self.requests().pop()
    }

    /// Waits until `done` holds for the recorded requests or `timeout` passes; whether it held.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&[SeenRequest]) -> bool) -> bool {
        let every = Duration::from_millis(10);
        poll(timeout, every, async || {
            done(&self.requests()).then_some(())
        })
        .await
        .is_some()
    }

    /// Waits until at least `n` requests were recorded (or `timeout`); returns them all.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<SeenRequest> {
        self.wait_for(timeout, |seen| seen.len() >= n).await;
        self.requests()
    }

    /// Waits until some request's client went away before its answer completed; returns
    /// that request, or `None` after `timeout`.
    pub async fn wait_for_cancel(&self, timeout: Duration) -> Option<SeenRequest> {
        self.wait_for(timeout, |seen| {
            seen.iter().any(SeenRequest::client_went_away)
        })
        .await;
        self.requests()
            .into_iter()
            .find(SeenRequest::client_went_away)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        // Wait until the listener and every connection are closed, so that the port is free
        // again and clients see the connections go when the stand-in goes.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
