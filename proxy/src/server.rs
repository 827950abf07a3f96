//! The listener: HTTP/1.1 and HTTP/2 (prior knowledge) on one port, with a
//! graceful drain on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::routes::handle;
use crate::state::App;

/// Slow clients get this long to send their request head (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head accepted; beyond it the client gets 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Serves until `shutdown` completes, then stops accepting and lets in-flight
/// requests finish for up to `DRAIN_TIMEOUT`.
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = service_fn(move |request| {
                    let app = app.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(app, request, Some(peer.ip())).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }

    app.start_draining();
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
