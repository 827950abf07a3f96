//! Faults and hostile input, injected for real: Redis killed or frozen, a
//! backend that resets, stalls or dawdles, clients that vanish or flood, and
//! malformed HTTP. Each test prints what it tried and what it observed.

use std::time::{Duration, Instant};

use cmw_tests::backend::{Behaviour, Times};
use cmw_tests::client::{http, messages_body, post_messages, read_timed, sse_events};
use cmw_tests::fixture_accounts::A3;
use cmw_tests::stack::{
    CLIENT_KEY, Stack, get_json, raw_request, read_until_closed, served_by, wait_ready,
};
use futures_util::StreamExt;
use serde_json::Value;

/// The proxy on one serving thread: its current-thread runtime, as in a pod
/// limited to one CPU (and in `make bench`). The tests that take it are the
/// ones where one thread could stall: Redis frozen, clients leaving, a drain
/// of a thousand streams, slow heads.
const ONE_THREAD: (&str, &str) = ("WORKER_THREADS", "1");

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

async fn metric(base: &str, name: &str) -> f64 {
    let text = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_for_30_seconds_under_steady_load() {
    let mut stack = Stack::start(&[]).await;
    let base = stack.url();
    let load = {
        let base = base.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(40) {
                let (status, _) = served_by(post_messages(&base, false, &[]).await).await;
                statuses.push(status);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            statuses
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.redis.stop();
    println!("tried: killed redis-server under a steady 10 req/s load");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, ready) = get_json(&format!("{base}/ready")).await;
    let errors = metric(&base, "claude_middleware_redis_errors_total").await;
    println!("observed during the outage: /ready {status} {ready}, redis_errors_total {errors}");
    assert_eq!(status, 200, "still serving from the last pool");
    assert_eq!(ready["status"], "degraded");
    assert!(errors > 0.0);
    tokio::time::sleep(Duration::from_secs(25)).await;
    stack.redis.restart_with_fixtures();
    println!("tried: restarted redis-server after 30 s");
    let recovered = Instant::now();
    wait_ready(&base).await;
    println!(
        "observed: ready again {:?} after the restart",
        recovered.elapsed()
    );
    let age = metric(&base, "claude_middleware_redis_last_success_age_seconds").await;
    assert!(age < 5.0, "redis_last_success_age_seconds {age}");
    let statuses = load.await.unwrap();
    let failed = statuses.iter().filter(|s| **s != 200).count();
    println!(
        "observed: {} requests during 40 s, {failed} not 200",
        statuses.len()
    );
    assert!(statuses.len() > 100);
    assert_eq!(
        failed, 0,
        "requests failed while Redis was down: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_does_not_stall_requests() {
    let stack = Stack::start(&[ONE_THREAD]).await;
    let base = stack.url();
    stack.redis.pause(Duration::from_secs(8));
    println!("tried: froze redis-server (SIGSTOP) for 8 s");
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let session = format!("frozen-{i}");
        let started = Instant::now();
        let (status, _) =
            served_by(post_messages(&base, false, &[("x-claude-code-session-id", &session)]).await)
                .await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, 200);
    }
    println!("observed: 10 requests with sessions, slowest {slowest:?}");
    // Far below the 8 s freeze: the request path never waits on Redis long.
    assert!(
        slowest < Duration::from_secs(3),
        "a request waited on Redis: {slowest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_faults_get_the_documented_answers() {
    let stack = Stack::start(&[("PROXY_TIMEOUT", "2")]).await;
    let base = stack.url();

    stack
        .backend
        .script(A3, Behaviour::ResetAfter { events: 3 }, Times::Once);
    let body = read_timed(post_messages(&base, true, &[]).await).await;
    println!(
        "tried: backend reset after 3 events; observed: body error {:?}",
        body.error.is_some()
    );
    assert!(
        body.error.is_some(),
        "a reset stream must not look complete"
    );
    assert!(body.text().contains("message_start") && !body.text().contains("message_stop"));

    stack.backend.script(
        A3,
        Behaviour::SlowHeaders {
            delay: Duration::from_secs(5),
        },
        Times::Once,
    );
    let started = Instant::now();
    let response = post_messages(&base, false, &[]).await;
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap();
    println!(
        "tried: backend head after 5 s with PROXY_TIMEOUT=2; observed {status} after {:?}",
        started.elapsed()
    );
    assert_eq!(status, 504);
    assert_eq!(answer["type"], "error");

    stack
        .backend
        .script(A3, Behaviour::StallAfter { events: 1 }, Times::Once);
    let body = read_timed(post_messages(&base, true, &[]).await).await;
    println!(
        "tried: backend stalled after its first event; observed body error {:?}",
        body.error.is_some()
    );
    assert!(body.error.is_some());

    // None of these benched an account: they are the backend's faults.
    let (_, account) = served_by(post_messages(&base, false, &[]).await).await;
    assert_eq!(account, "a3");
    assert_eq!(
        metric(&base, "claude_middleware_inflight_streams").await,
        0.0,
        "a stream task hung"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_leak_no_file_descriptors() {
    let stack = Stack::start(&[("RUST_LOG", "warn")]).await;
    let base = stack.url();
    let pid = stack.proxy.pid();
    let client = http();
    let send = |i: usize| {
        let (base, client) = (base.clone(), client.clone());
        async move {
            let stream = i.is_multiple_of(10);
            let request = client
                .post(format!("{base}/v1/messages"))
                .header("x-test-events", "3")
                .json(&messages_body(stream || i % 10 == 1));
            let response = request.send().await.expect("request");
            if i % 10 == 1 {
                // A client that leaves mid-stream.
                let mut body = response.bytes_stream();
                let _ = body.next().await;
                return 200;
            }
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
    };
    let warm: Vec<u16> = futures_util::stream::iter(0..200)
        .map(send)
        .buffer_unordered(20)
        .collect()
        .await;
    assert!(warm.iter().all(|s| *s == 200));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = open_fds(pid);
    let started = Instant::now();
    let statuses: Vec<u16> = futures_util::stream::iter(0..10_000)
        .map(send)
        .buffer_unordered(20)
        .collect()
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = open_fds(pid);
    println!(
        "tried: 10,000 requests (JSON, streams, 1,000 clients leaving mid-stream) at concurrency 20 in {:?}; observed fds {before} → {after}",
        started.elapsed()
    );
    assert!(statuses.iter().all(|s| *s == 200), "not all 200");
    // Pooled keep-alive connections come and go; a leak grows with the count.
    assert!(
        after <= before + 25,
        "file descriptors leaked: {before} → {after}"
    );
    assert_eq!(
        metric(&base, "claude_middleware_inflight_streams").await,
        0.0,
        "stream tasks hung"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_stream_cancels_the_upstream_within_a_second() {
    let stack = Stack::start(&[ONE_THREAD]).await;
    let response = post_messages(
        &stack.url(),
        true,
        &[("x-test-events", "200"), ("x-test-gap-ms", "100")],
    )
    .await;
    let mut body = response.bytes_stream();
    let _ = body.next().await;
    let left = Instant::now();
    drop(body);
    let seen = stack
        .backend
        .wait_for_cancel(Duration::from_secs(10))
        .await
        .expect("no cancel seen");
    let after = seen.client_gone.map(|t| t.saturating_duration_since(left));
    println!(
        "tried: client dropped a stream after its first chunk; observed: backend saw the cancel after {after:?}"
    );
    assert!(
        after.is_some_and(|d| d < Duration::from_secs(1)),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_streams_drain_on_sigterm() {
    let mut stack = Stack::start(&[
        ONE_THREAD,
        ("SHUTDOWN_DELAY", "0"),
        ("DRAIN_TIMEOUT", "30s"),
        ("RUST_LOG", "warn"),
    ])
    .await;
    let base = stack.url();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut readers = Vec::new();
    for _ in 0..1000 {
        let request = client
            .post(format!("{base}/v1/messages"))
            .header("x-test-events", "30")
            .header("x-test-gap-ms", "100")
            .json(&messages_body(true));
        readers.push(tokio::spawn(async move {
            let response = request.send().await.map_err(|e| format!("{e:?}"))?;
            let body = read_timed(response).await;
            Ok::<_, String>(body.error.is_none() && body.text().contains("message_stop"))
        }));
    }
    let open = async || metric(&base, "claude_middleware_inflight_streams").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while open().await < 1000.0 {
        assert!(
            Instant::now() < deadline,
            "never reached 1,000 open streams"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_kb: u64 = std::fs::read_to_string(format!("/proc/{}/status", stack.proxy.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let signalled = Instant::now();
    stack.proxy.sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = http().get(format!("{base}/health")).send().await.is_err();
    let mut completed = 0;
    for reader in readers {
        if reader.await.unwrap() == Ok(true) {
            completed += 1;
        }
    }
    let exit = tokio::task::block_in_place(|| stack.proxy.wait_exit(Duration::from_secs(40)));
    println!(
        "tried: SIGTERM with 1,000 open streams (RSS {rss_kb} kB); observed: {completed} completed in {:?}, new connection refused: {refused}, exit {exit:?}",
        signalled.elapsed()
    );
    assert!(refused, "new connections accepted while draining");
    assert_eq!(completed, 1000, "streams cut before DRAIN_TIMEOUT");
    assert_eq!(exit.and_then(|s| s.code()), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http_gets_clear_answers_and_nothing_slips_through() {
    let stack = Stack::start(&[
        ("MIDDLEWARE_AUTH_ENABLED", "true"),
        ("MIDDLEWARE_API_KEYS", CLIENT_KEY),
    ])
    .await;
    let port = stack.proxy.port();
    let status_of = |answer: &str| answer.split(' ').nth(1).unwrap_or("none").to_string();

    let huge = format!(
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nx-api-key: {CLIENT_KEY}\r\nx-big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let answer = raw_request(port, &huge).await;
    println!(
        "tried: a 100 KiB header section; observed {}",
        status_of(&answer)
    );
    assert_eq!(status_of(&answer), "431");

    let mut invalid =
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-api-key: ".to_vec();
    invalid.extend_from_slice(b"cr_\xff\xfe\xfd_invalid_utf8\r\n\r\n");
    let answer = raw_bytes(port, &invalid).await;
    println!(
        "tried: a key that is not UTF-8; observed {}",
        status_of(&answer)
    );
    assert_eq!(status_of(&answer), "401");

    let duplicate = format!(
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nx-api-key: {CLIENT_KEY}\r\nx-api-key: cr_someone_else_0001\r\nConnection: close\r\n\r\n"
    );
    let answer = raw_request(port, &duplicate).await;
    println!(
        "tried: two x-api-key headers; observed {}",
        status_of(&answer)
    );
    assert_eq!(status_of(&answer), "401");

    let conflicting_lengths = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {CLIENT_KEY}\r\nContent-Length: 2\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{{}}"
    );
    let answer = raw_request(port, &conflicting_lengths).await;
    println!(
        "tried: two different Content-Length values; observed {}",
        status_of(&answer)
    );
    assert_eq!(status_of(&answer), "400");

    // CL.TE: a body that hides a second request after a chunked end.
    let smuggle = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: {CLIENT_KEY}\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let answer = raw_request(port, &smuggle).await;
    println!(
        "tried: Content-Length with Transfer-Encoding (smuggling); observed {}",
        status_of(&answer)
    );
    // Transfer-Encoding wins (RFC 9112 §6.3): one chunked request with an
    // empty body is answered, then the connection closes, so the request
    // hidden after the chunked end is never read.
    assert_eq!(status_of(&answer), "200", "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    // The answer has arrived, so whatever the proxy forwarded is recorded.
    let seen = stack.backend.requests();
    assert!(
        seen.iter().all(|r| !r.path.contains("admin")),
        "a smuggled request reached the backend"
    );
    assert!(
        seen.iter()
            .all(|r| r.body.is_empty() || r.body_json().is_some()),
        "a smuggled body reached the backend"
    );
    assert!(
        seen.len() <= 1,
        "{} requests reached the backend",
        seen.len()
    );

    let http10 = format!(
        "POST /v1/messages HTTP/1.0\r\nHost: x\r\nx-api-key: {CLIENT_KEY}\r\nx-test-events: 3\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n{body}",
        len = messages_body(true).to_string().len(),
        body = messages_body(true)
    );
    let answer = raw_request(port, &http10).await;
    println!(
        "tried: an HTTP/1.0 client asking for a stream; observed {}",
        answer.lines().next().unwrap_or("")
    );
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    assert!(
        answer.contains("message_stop"),
        "the stream did not reach an HTTP/1.0 client: {answer}"
    );
    assert!(
        !answer
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked sent to HTTP/1.0"
    );
}

async fn raw_bytes(port: u16, request: &[u8]) -> String {
    read_until_closed(port, request).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_a_full_run_hold_no_key_token_or_password() {
    let mut stack = Stack::start(&[]).await;
    let password = "redis-pass-Zq81x";
    stack.redis.cli(&["CONFIG", "SET", "requirepass", password]);
    let redis_url = format!("redis://:{password}@127.0.0.1:{}/0", stack.redis.port());
    let proxy = cmw_tests::stack::start_proxy(
        &redis_url,
        &stack.backend.url(),
        &[
            ("MIDDLEWARE_AUTH_ENABLED", "true"),
            ("MIDDLEWARE_API_KEYS", CLIENT_KEY),
            ("GIN_MODE", "debug"),
        ],
    );
    wait_ready(&proxy.url()).await;
    let base = proxy.url();
    let _ = post_messages(
        &base,
        false,
        &[
            ("x-api-key", CLIENT_KEY),
            ("x-other", "sk-ant-api03-client"),
        ],
    )
    .await;
    let _ = read_timed(
        post_messages(
            &base,
            true,
            &[("authorization", &format!("Bearer {CLIENT_KEY}"))],
        )
        .await,
    )
    .await;
    let _ = post_messages(&base, false, &[("x-api-key", "cr_wrong_key_00000001")]).await;
    stack.backend.script(
        A3,
        Behaviour::RateLimited {
            reset_in: Duration::from_secs(60),
        },
        Times::Once,
    );
    let _ = post_messages(&base, false, &[("x-api-key", CLIENT_KEY)]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = proxy.logs();
    let fixture =
        std::fs::read_to_string(cmw_tests::redis::fixtures_dir().join("relay-accounts.redis"))
            .unwrap();
    let mut secrets: Vec<String> = vec![
        CLIENT_KEY.into(),
        "cr_wrong_key_00000001".into(),
        "sk-ant-api03-client".into(),
        password.into(),
    ];
    // Every account id (the relay credential) and every stored token.
    for word in fixture.split_whitespace() {
        let word = word.trim_matches('"');
        if word.len() == 36 && word.matches('-').count() == 4 || word.starts_with("enc:") {
            secrets.push(word.to_string());
        }
    }
    let found: Vec<&String> = secrets
        .iter()
        .filter(|s| logs.contains(s.as_str()))
        .collect();
    println!(
        "tried: a debug-level run with auth, streams, a 401 and a failover; checked {} secrets; found {found:?}",
        secrets.len()
    );
    assert!(found.is_empty(), "secrets in the logs: {found:?}\n{logs}");
    assert!(logs.lines().count() >= 4, "the run logged nothing: {logs}");
    drop(proxy);
    stack
        .redis
        .cli(&["-a", password, "CONFIG", "SET", "requirepass", ""]);
    stack.proxy.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_idle_connections_are_closed_but_a_long_stream_is_not() {
    let stack = Stack::start(&[("CLIENT_IDLE_TIMEOUT", "1s"), ONE_THREAD]).await;
    let port = stack.proxy.port();

    // Slowloris: a head that never ends.
    let partial = b"POST /v1/messages HTTP/1.1\r\nHost: proxy\r\ncontent-type: appl";
    let (answer, slow_head_closed) = read_until_closed(port, partial).await;
    println!(
        "tried: a request head cut short and left; observed: {answer:?}, closed after {slow_head_closed:?}"
    );
    assert!(
        slow_head_closed
            .is_some_and(|d| d >= Duration::from_millis(900) && d < Duration::from_secs(3)),
        "a head left unfinished was closed after {slow_head_closed:?}, not within one to two periods of 1 s"
    );

    // A keep-alive connection left idle after its answer.
    let request = b"GET /health HTTP/1.1\r\nHost: proxy\r\n\r\n";
    let (answer, idle_closed) = read_until_closed(port, request).await;
    println!(
        "tried: one request, then an idle keep-alive connection; observed: closed after {idle_closed:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        idle_closed.is_some_and(|d| d >= Duration::from_millis(900) && d < Duration::from_secs(3)),
        "an idle keep-alive connection was closed after {idle_closed:?}"
    );

    // A stream that lasts three periods, with gaps shorter than one.
    let response = post_messages(
        &stack.url(),
        true,
        &[("x-test-events", "15"), ("x-test-gap-ms", "200")],
    )
    .await;
    assert_eq!(response.status(), 200);
    let body = read_timed(response).await;
    let events = sse_events(&body.text());
    let lasted = body.arrival_of("message_stop");
    println!(
        "tried: a stream of 15 deltas 200 ms apart with a 1 s idle timeout; observed: {} events, \
         message_stop after {lasted:?}, error {:?}",
        events.len(),
        body.error
    );
    assert!(body.error.is_none(), "{:?}", body.error);
    assert_eq!(events.last().map(String::as_str), Some("message_stop"));
    assert!(
        lasted.is_some_and(|d| d >= Duration::from_secs(2)),
        "{lasted:?}"
    );
}

/// `WORKER_THREADS` picks the runtime: one thread serves everything with
/// `1`; with `2`, two workers beside the main thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_threads_set_the_threads_that_serve() {
    // One more at most: a blocking-pool thread (a name lookup) may linger.
    for (threads, expected) in [("1", 1..=2), ("2", 3..=4)] {
        let stack = Stack::start(&[("WORKER_THREADS", threads)]).await;
        let base = stack.url();
        for stream in [false, true] {
            let (status, _) = served_by(post_messages(&base, stream, &[]).await).await;
            assert_eq!(status, 200);
        }
        let count = std::fs::read_dir(format!("/proc/{}/task", stack.proxy.pid()))
            .map_or(0, |tasks| tasks.count());
        println!("observed: WORKER_THREADS={threads}: {count} threads");
        assert!(expected.contains(&count), "{count} threads");
    }
}
