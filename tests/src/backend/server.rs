//! The accept loop: hyper (HTTP/1.1 and h2c) on a real loopback socket, on a runtime of its
//! own so that a test blocking its own thread (waiting for a child process) never freezes
//! the streams the stand-in is sending.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::respond::{Shared, handle};

/// Serves connections until `shutdown` changes or its sender is dropped. Connections and
/// stream tasks live on the caller's runtime and end with it.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Events must leave as soon as they are written: no Nagle delay.
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream, peer, shared.clone(), shutdown.clone()));
                }
                // Out of file descriptors and the like: wait instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(shared, req, Some(peer)).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        _ = shutdown.changed() => {}
    }
}
