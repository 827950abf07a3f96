//! The client to the relay backend (http or https): HTTP/1.1 connections
//! kept in one pool, newest first.
//!
//! There is one backend, so the pool is a stack, not a map: hyper-util's
//! generic client hashes the scheme and authority on every checkout and
//! return, and spawns a task per request to put the connection back. Here a
//! connection goes back when its answer's body has ended ([`Lease::release`]),
//! and is closed when the body is dropped before its end (the client went
//! away), which also cancels the request upstream.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

mod idle;

/// Connections to the backend fail fast; waiting on a dead backend helps nobody.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The read buffer of a backend connection.
const READ_BUFFER_BYTES: usize = 8 * 1024;
/// Idle connections kept at most; more are closed when their answer ends.
const MAX_IDLE: usize = 256;

type Sender = SendRequest<Full<Bytes>>;
type IdleStack = Mutex<idle::IdleStack<Sender>>;

/// Why a request got no answer head from the backend.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be opened (refused, unreachable, TLS).
    #[error("{0}")]
    Connect(String),
    /// The connection broke before the answer's head.
    #[error("{0}")]
    Request(String),
}

pub struct UpstreamClient {
    /// Plain TCP; its connections skip the TLS stream type, whose size every
    /// connection would otherwise carry (a few KiB per open stream).
    http: HttpConnector,
    /// For an `https` target only.
    https: Option<HttpsConnector<HttpConnector>>,
    /// The backend's scheme and authority: what the connector dials.
    target: Uri,
    handshake: http1::Builder,
    idle: Arc<IdleStack>,
}

impl UpstreamClient {
    /// `origin`: the backend's scheme and authority ([`crate::forward::Target::origin`]).
    pub fn new(origin: Uri) -> Result<Self, rustls::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let https = if origin.scheme() == Some(&http::uri::Scheme::HTTPS) {
            Some(
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_webpki_roots(Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))?
                    .https_only()
                    .enable_http1()
                    .wrap_connector(http.clone()),
            )
        } else {
            None
        };
        let mut handshake = http1::Builder::new();
        // Reads of at most 8 KiB, as nginx's proxy_buffer_size: SSE events are
        // small, and a buffer that grew for one large answer would stay with
        // the connection for every stream after it.
        handshake.read_buf_exact_size(Some(READ_BUFFER_BYTES));
        Ok(Self {
            http,
            https,
            target: origin,
            handshake,
            idle: Arc::new(Mutex::new(idle::IdleStack::new(MAX_IDLE, IDLE_TIMEOUT))),
        })
    }

    /// Sends `request` (origin-form URI, `Host` set) on an idle connection,
    /// or a new one, and returns the answer's head with the connection leased
    /// until its body ends.
    pub async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        if let Some(mut sender) = self.take_idle() {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, self.lease(sender))),
                // The backend closed the idle connection as the request went
                // out, before writing it: send it again on a new connection.
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::Request(source_text(&error.into_error()))),
                },
            }
        }
        let mut sender = self.connect().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| SendError::Request(source_text(&error)))?;
        Ok((response, self.lease(sender)))
    }

    /// The newest idle connection that can take a request; closed and
    /// expired ones met on the way are dropped.
    fn take_idle(&self) -> Option<Sender> {
        lock(&self.idle).take(Instant::now(), Sender::is_ready)
    }

    async fn connect(&self) -> Result<Sender, SendError> {
        match &self.https {
            None => {
                self.handshake(dial(self.http.clone(), &self.target).await?)
                    .await
            }
            Some(https) => {
                self.handshake(dial(https.clone(), &self.target).await?)
                    .await
            }
        }
    }

    /// HTTP/1.1 on a connected stream; the connection runs as its own task.
    async fn handshake<T>(&self, io: T) -> Result<Sender, SendError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, connection) = self
            .handshake
            .handshake(io)
            .await
            .map_err(|error| SendError::Connect(source_text(&error)))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "backend connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn lease(&self, sender: Sender) -> Lease {
        Lease {
            sender: Some(sender),
            idle: self.idle.clone(),
        }
    }
}

/// A connection in use by one answer. [`Lease::release`] puts it back once
/// the answer's body has ended; dropped unreleased, the connection closes.
pub struct Lease {
    sender: Option<Sender>,
    idle: Arc<IdleStack>,
}

impl Lease {
    /// The answer's body has ended: the connection can take the next request.
    pub fn release(&mut self) {
        let Some(mut sender) = self.sender.take() else {
            return;
        };
        if sender.is_ready() {
            push_idle(&self.idle, sender);
        } else if !sender.is_closed() {
            // The connection has not yet seen the end it delivered (another
            // thread runs it): wait for it rather than lose the connection.
            let idle = self.idle.clone();
            tokio::spawn(async move {
                if sender.ready().await.is_ok() {
                    push_idle(&idle, sender);
                }
            });
        }
    }
}

/// A new connection to `target` through `connector`.
async fn dial<C>(mut connector: C, target: &Uri) -> Result<C::Response, SendError>
where
    C: Service<Uri>,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connect_error = |error: C::Error| SendError::Connect(source_text(error.into().as_ref()));
    poll_fn(|cx| connector.poll_ready(cx))
        .await
        .map_err(connect_error)?;
    connector.call(target.clone()).await.map_err(connect_error)
}

fn push_idle(idle: &IdleStack, sender: Sender) {
    let now = Instant::now();
    lock(idle).push(sender, now);
}

/// The stack holds no invariant a panic elsewhere could break.
fn lock(idle: &IdleStack) -> std::sync::MutexGuard<'_, idle::IdleStack<Sender>> {
    idle.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The innermost cause, which says what actually happened (refused, reset…).
fn source_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
