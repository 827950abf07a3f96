//! The listener: HTTP/1.1 and HTTP/2 (prior knowledge) on one port, with a
//! lame duck and a graceful drain on shutdown.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::CONNECTION;
use http::{HeaderValue, Request, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use crate::forward::Peer;
use crate::routes::handle;
use crate::state::App;

/// Slow clients get this long to send their request head (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head accepted; beyond it the client gets 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;

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
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let server = Acceptor {
        app: &app,
        listener: &listener,
        builder: &builder,
        graceful: &graceful,
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
        "shutting down: refusing new connections, draining in-flight requests"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("drained; exiting"),
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
    builder: &'a auto::Builder<TokioExecutor>,
    graceful: &'a GracefulShutdown,
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
        // Per connection: its X-Forwarded-For value is made once, not per request.
        let peer = Peer::new(peer);
        let service = service_fn(move |request: Request<Incoming>| {
            let (app, peer) = (app.clone(), peer.clone());
            async move {
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
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let connection = self
            .builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = self.graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}
