//! The listener: HTTP/1.1 (the proxy's own server, [`http1`]) and HTTP/2
//! (prior knowledge, hyper's) on one port, with a lame duck and a graceful
//! drain on shutdown.

mod drain;
pub mod http1;
mod idle;

use std::future::Future;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use self::drain::{Drain, Entry};
use self::idle::{Activity, close_when_idle};
use crate::client_head::ClientHead;
use crate::forward::headers::relay_response_map;
use crate::forward::{ClientBody, Peer};
use crate::routes::handle;
use crate::state::App;
/// What an HTTP/2 connection with prior knowledge starts with. No HTTP/1
/// request starts with `PRI`, so its first three bytes decide.
const HTTP2_PREFACE_START: &[u8] = b"PRI";

/// Why the server is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM (Kubernetes, `docker stop`): load balancers may still send new
    /// connections for a moment, so keep serving them during `SHUTDOWN_DELAY`.
    Terminate,
    /// SIGINT (a terminal's Ctrl-C): nothing balances to us, drain at once.
    Interrupt,
}

/// Serves until `stop` completes; then, for SIGTERM, a lame duck of
/// `SHUTDOWN_DELAY` (`/ready` answers 503 but new connections are still
/// served, so none is refused while endpoints and load balancers catch up);
/// then stops accepting and lets in-flight requests finish for up to
/// `DRAIN_TIMEOUT`.
pub async fn serve(app: Arc<App>, listener: TcpListener, stop: impl Future<Output = Stop>) {
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2.timer(TokioTimer::new());
    let drain = Drain::default();
    let server = Acceptor {
        app: &app,
        listener: &listener,
        builders: Arc::new(Builders {
            http2,
            client_idle_timeout: app.config.client_idle_timeout,
        }),
        drain: &drain,
    };

    let why = server.accept_until(stop).await;
    app.start_draining();
    if why == Stop::Terminate && !app.config.shutdown_delay.is_zero() {
        tracing::info!(
            shutdown_delay_s = app.config.shutdown_delay.as_secs_f64(),
            "SIGTERM: /ready answers 503; still accepting until load balancers let go"
        );
        server
            .accept_until(tokio::time::sleep(app.config.shutdown_delay))
            .await;
    }
    drop(listener);
    tracing::info!(
        drain_timeout_s = app.config.drain_timeout.as_secs_f64(),
        inflight_streams = app.metrics.inflight_streams.get(),
        open_connections = drain.open_connections(),
        "shutting down: refusing new connections, draining in-flight requests"
    );
    tokio::select! {
        () = drain.drain() => tracing::info!("drained; exiting"),
        () = tokio::time::sleep(app.config.drain_timeout) => tracing::warn!(
            inflight_streams = app.metrics.inflight_streams.get(),
            "drain timeout reached; cutting the remaining streams"
        ),
    }
}

/// The accept loop's parts, borrowed for each phase of the server's life.
struct Acceptor<'a> {
    app: &'a Arc<App>,
    listener: &'a TcpListener,
    builders: Arc<Builders>,
    drain: &'a Drain,
}

/// How connections are served.
struct Builders {
    http2: http2::Builder<TokioExecutor>,
    /// An HTTP/1 connection with no request for this long is closed (a
    /// head sent too slowly, an idle keep-alive connection).
    client_idle_timeout: Duration,
}

impl Acceptor<'_> {
    /// Accepts and serves connections until `until` completes; returns its output.
    async fn accept_until<T>(&self, until: impl Future<Output = T>) -> T {
        tokio::pin!(until);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => self.serve_connection(stream, peer.ip()),
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                output = &mut until => return output,
            }
        }
    }

    fn serve_connection(&self, stream: TcpStream, peer: IpAddr) {
        let _ = stream.set_nodelay(true);
        let app = self.app.clone();
        let builders = self.builders.clone();
        let entry = self.drain.enter();
        tokio::spawn(async move {
            let first_bytes = is_http2(&stream);
            let http2 = match tokio::time::timeout(builders.client_idle_timeout, first_bytes).await
            {
                Ok(Ok(http2)) => http2,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "connection ended before its first bytes");
                    return;
                }
                Err(_) => return,
            };
            let peer = Peer::new(peer);
            let result = match http2 {
                true => serve_http2(&builders, entry, stream, app, peer).await,
                false => serve_http1(&builders, entry, stream, app, peer).await,
            };
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

/// Whether the connection speaks HTTP/2 (prior knowledge), from its first
/// bytes, peeked so that hyper reads them again. Asking hyper-util's `auto`
/// server instead hands HTTP/1 the sniffed bytes first, and its read buffer
/// then grows to 16 KiB on every connection.
async fn is_http2(stream: &TcpStream) -> std::io::Result<bool> {
    let mut start = [0u8; HTTP2_PREFACE_START.len()];
    loop {
        let n = stream.peek(&mut start).await?;
        if n == 0 || start[..n] != HTTP2_PREFACE_START[..n] {
            return Ok(false);
        }
        if n == start.len() {
            return Ok(true);
        }
        // "P" or "PR" so far: peek returns at once while data waits, so pause.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn serve_http1(
    builders: &Builders,
    entry: Entry,
    stream: TcpStream,
    app: Arc<App>,
    peer: Peer,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let activity = Arc::new(Activity::default());
    let connection = pin!(entry.watch(http1::serve(app, stream, peer, Arc::clone(&activity))));
    match close_when_idle(connection, &activity, builders.client_idle_timeout).await {
        Some(served) => Ok(served?),
        None => {
            tracing::debug!("closed a connection with no request in flight for the idle timeout");
            Ok(())
        }
    }
}

async fn serve_http2(
    builders: &Builders,
    entry: Entry,
    stream: TcpStream,
    app: Arc<App>,
    peer: Peer,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let service = service_fn(move |request: Request<Incoming>| {
        let (app, peer) = (app.clone(), peer.clone());
        // Boxed: hyper keeps one slot the size of this future per stream.
        Box::pin(async move {
            let (head, body) = request.into_parts();
            let head = ClientHead::from(head);
            let body = ClientBody::Incoming(body);
            let mut response = handle(&app, &head, body, Some(&peer)).await;
            // hyper writes the answer's head from its map.
            if let Some(relay) = response.body_mut().take_relay_headers() {
                response.headers_mut().extend(relay_response_map(&relay));
            }
            Ok::<_, std::convert::Infallible>(response)
        })
    });
    let io = TokioIo::new(stream);
    Ok(entry
        .watch(builders.http2.serve_connection(io, service))
        .await?)
}
