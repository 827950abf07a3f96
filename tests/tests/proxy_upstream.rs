//! The proxy's connections to the relay: kept and reused between answers,
//! given up when the client leaves, and replaced when the relay restarts.
//! Real binary, real redis-server, the stand-in relay over loopback sockets;
//! the stand-in records each request's client address, one per connection.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use cmw_tests::backend::{Backend, Options};
use cmw_tests::client::post_messages;
use cmw_tests::stack::Stack;
use futures_util::StreamExt;

/// The connections (client addresses) the stand-in saw requests on.
fn connections(backend: &Backend) -> BTreeSet<SocketAddr> {
    backend.requests().iter().filter_map(|r| r.peer).collect()
}

async fn answered(base: &str, stream: bool) -> u16 {
    let response = post_messages(base, stream, &[]).await;
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_one_after_another_share_one_connection() {
    let stack = Stack::start(&[]).await;
    stack.backend.reset_records();
    for round in 0..6 {
        assert_eq!(answered(&stack.url(), round % 2 == 1).await, 200);
    }
    let seen = stack
        .backend
        .wait_for_requests(6, Duration::from_secs(5))
        .await;
    let used = connections(&stack.backend);
    println!(
        "tried: 6 answers in turn (JSON and SSE); observed {} requests over {} connection(s)",
        seen.len(),
        used.len()
    );
    assert_eq!(seen.len(), 6);
    assert_eq!(
        used.len(),
        1,
        "a finished answer's connection was not reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_left_mid_stream_is_not_reused() {
    let stack = Stack::start(&[]).await;
    stack.backend.reset_records();
    let response = post_messages(
        &stack.url(),
        true,
        &[("x-test-events", "200"), ("x-test-gap-ms", "50")],
    )
    .await;
    let mut body = response.bytes_stream();
    let _ = body.next().await;
    drop(body);
    let cancelled = stack.backend.wait_for_cancel(Duration::from_secs(10)).await;
    assert!(cancelled.is_some(), "the relay never saw the client leave");
    assert_eq!(answered(&stack.url(), false).await, 200);
    let requests = stack.backend.requests();
    let (left, next) = (requests[0].peer, requests[requests.len() - 1].peer);
    println!(
        "tried: a stream left after its first event, then a request; observed connections {left:?} then {next:?}"
    );
    assert!(left.is_some() && next.is_some());
    assert_ne!(
        left, next,
        "a connection with half an answer unread was used again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_relay_gets_new_connections_and_no_request_fails() {
    let Stack {
        redis,
        backend,
        proxy,
    } = Stack::start(&[]).await;
    let base = proxy.url();
    for _ in 0..3 {
        assert_eq!(answered(&base, false).await, 200);
    }
    // The relay goes and comes back on the same address: every pooled
    // connection is closed under the proxy.
    let port = backend.port();
    drop(backend);
    let backend = Backend::start_with(Options {
        port,
        ..Options::default()
    })
    .await
    .expect("restart the stand-in on its port");
    let mut statuses = Vec::new();
    for round in 0..6 {
        statuses.push(answered(&base, round % 2 == 0).await);
    }
    println!(
        "tried: 6 requests after the relay restarted; observed {statuses:?} over {} connection(s)",
        connections(&backend).len()
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(connections(&backend).len(), 1);
    drop(redis);
}
