//! The listener: HTTP/1.1 and HTTP/2 (prior knowledge) on one port, with a
//! lame duck and a graceful drain on shutdown.

mod drain;
mod idle;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::CONNECTION;
use http::{HeaderValue, Request, Version};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use self::drain::{Drain, Entry};
use self::idle::{Activity, InFlightBody, close_when_idle};
use crate::forward::Peer;
use crate::response::ProxyBody;
use crate::routes::handle;
use crate::state::App;

/// Largest request head accepted; beyond it the client gets 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;
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
    let mut http1 = http1::Builder::new();
    http1
        // Slow heads and idle keep-alive connections are closed per
        // connection instead (`idle`), without a timer per request.
        .header_read_timeout(None)
        // The head limit itself: the buffer's maximum alone is not one, as a
        // read may fill the buffer's whole spare capacity past it.
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_HEADER_BYTES)
        // One buffer for head and body, written with one write: answers are
        // small JSON or SSE events, and queueing each chunk for a writev
        // cost 555 instructions per request more (bench/cost.sh).
        .writev(false);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2.timer(TokioTimer::new());
    let drain = Drain::default();
    let server = Acceptor {
        app: &app,
        listener: &listener,
        builders: Arc::new(Builders {
            http1,
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

/// How connections are served, one builder per protocol.
struct Builders {
    http1: http1::Builder,
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
            let activity = Arc::new(Activity::default());
            let service = service(app, peer, Arc::clone(&activity));
            let result = serve_protocol(&builders, entry, stream, http2, service, &activity).await;
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

async fn serve_protocol<S>(
    builders: &Builders,
    entry: Entry,
    stream: TcpStream,
    http2: bool,
    service: S,
    activity: &Activity,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<Incoming, ResBody = InFlightBody<ProxyBody>>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = TokioIo::new(stream);
    if http2 {
        entry
            .watch(builders.http2.serve_connection(io, service))
            .await
    } else {
        let connection = entry.watch(builders.http1.serve_connection(io, service));
        let served = close_when_idle(connection, activity, builders.client_idle_timeout).await;
        served.unwrap_or_else(|| {
            tracing::debug!("closed a connection with no request in flight for the idle timeout");
            Ok(())
        })
    }
}

/// The proxy's routes for one connection from `peer`.
fn service(
    app: Arc<App>,
    peer: IpAddr,
    activity: Arc<Activity>,
) -> impl hyper::service::HttpService<
    Incoming,
    ResBody = InFlightBody<ProxyBody>,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone {
    // Per connection: its X-Forwarded-For value is made once, not per request.
    let peer = Peer::new(peer);
    service_fn(move |request: Request<Incoming>| {
        let (app, peer) = (app.clone(), peer.clone());
        let in_flight = activity.start();
        // Boxed: hyper keeps one slot the size of this future for the whole
        // life of the connection; the request's state (several KiB) then
        // goes as soon as the response head is out, not when the stream ends.
        Box::pin(async move {
            let http1 = request.version() < Version::HTTP_2;
            let mut response = handle(app.clone(), request, Some(&peer)).await;
            // Once draining, end each HTTP/1 keep-alive connection after its
            // response: the client reconnects, and the Service sends the new
            // connection to a pod that is not going away.
            if http1 && app.is_draining() {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, std::convert::Infallible>(
                response.map(|body| InFlightBody::new(body, in_flight)),
            )
        })
    })
}
