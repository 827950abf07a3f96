//! The proxy core end to end: the real `claude-middleware` binary, a real
//! redis-server loaded with the relay fixtures, and the stand-in relay backend,
//! all over real sockets. Each test asserts what the client and the backend saw.

use std::time::{Duration, Instant};

use cmw_contract::PROXIED_PREFIXES;
use cmw_tests::backend::{Backend, Behaviour, Options, Times};
use cmw_tests::client::{http, post_messages, read_timed, sse_events};
use cmw_tests::fixture_accounts::{A1, A2, A3, A7, SCHEDULABLE_IN_ORDER, UNSCHEDULABLE, name_of};
use cmw_tests::poll::{EVERY, poll};
use cmw_tests::ports::free_port;
use cmw_tests::proxy::ProxyProcess;
use cmw_tests::redis::RedisServer;
use cmw_tests::stack::{
    CLIENT_KEY, Stack, assert_anthropic_error, get_json, raw_request, served_by, start_proxy,
    wait_ready, wait_until,
};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_unknown_routes() {
    let stack = Stack::start(&[]).await;
    let response = http()
        .get(format!("{}/health", stack.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        serde_json::json!({"status": "ok", "service": "claude-middleware"})
    );
    let (status, body) = get_json(&format!("{}/ready", stack.url())).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["accounts"], 4,
        "the fixture has four schedulable accounts: {body}"
    );

    for path in ["/", "/admin", "/v2/messages", "/v1x"] {
        let (status, body) = get_json(&format!("{}{path}", stack.url())).await;
        assert_eq!(status, 404, "{path}");
        assert_anthropic_error(&body, "not_found_error");
    }
    // Sent raw: an HTTP client library would normalise the path first.
    for path in ["/v1/../admin", "/v1/%2e%2e/health", "/v1/./messages"] {
        let answer = raw_request(
            stack.proxy.port(),
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{path}: dot segments are refused, not normalised: {answer}"
        );
        assert!(answer.contains("invalid_request_error"), "{answer}");
    }
    assert!(
        stack.backend.requests().is_empty(),
        "nothing reached the backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_six_prefixes_and_methods_are_proxied() {
    let stack = Stack::start(&[]).await;
    let client = http();
    for prefix in PROXIED_PREFIXES {
        for method in [
            reqwest::Method::GET,
            reqwest::Method::POST,
            reqwest::Method::DELETE,
        ] {
            let url = format!("{}{prefix}messages?beta=true", stack.url());
            let response = client
                .request(method.clone(), &url)
                .json(&cmw_tests::client::messages_body(false))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{method} {url}");
        }
    }
    let seen = stack.backend.requests();
    assert_eq!(seen.len(), PROXIED_PREFIXES.len() * 3);
    for (request, prefix) in seen
        .iter()
        .zip(PROXIED_PREFIXES.iter().flat_map(|p| [p; 3]))
    {
        // `/v1/` is mapped onto the relay's `/api/v1/` (TARGET_V1_PATH).
        let on_relay = if *prefix == "/v1/" {
            "/api/v1/"
        } else {
            prefix
        };
        assert_eq!(request.path, format!("{on_relay}messages?beta=true"));
    }
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[2].method, "DELETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_choice_order_on_the_fixture() {
    let stack = Stack::start(&[]).await;
    // a3 has the best priority: it takes every request while healthy.
    for _ in 0..3 {
        let (status, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
        assert_eq!((status, account.as_str()), (200, "a3"));
    }
    // With a3 rate limited, the priority-50 accounts share the load, least
    // recently used first (never used here: the relay's lastUsedAt decides).
    stack.backend.script(
        A3,
        Behaviour::RateLimited {
            reset_in: Duration::from_secs(300),
        },
        Times::Always,
    );
    stack.backend.reset_records();
    let mut order = Vec::new();
    for _ in 0..6 {
        let (status, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
        assert_eq!(status, 200);
        order.push(account);
    }
    assert_eq!(order, ["a7", "a2", "a1", "a7", "a2", "a1"]);
    // a3 was tried once (the 429), then never again while cooling down.
    assert_eq!(stack.backend.count_for(A3), 1);
    for id in UNSCHEDULABLE {
        assert_eq!(
            stack.backend.count_for(id),
            0,
            "{} got traffic",
            name_of(id)
        );
    }
    // What the backend saw follows the fixture's order of preference: the
    // best account (its 429), then the others in turn.
    let [best, rest @ ..] = SCHEDULABLE_IN_ORDER;
    let expected: Vec<&str> = [best]
        .into_iter()
        .chain(rest)
        .chain(rest)
        .map(name_of)
        .collect();
    assert_eq!(stack.accounts_seen(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_on_account_errors() {
    let stack = Stack::start(&[]).await;
    let failures = [
        Behaviour::RateLimited {
            reset_in: Duration::from_secs(600),
        },
        Behaviour::Unauthorized,
        Behaviour::Overloaded,
        Behaviour::ServerError(500),
        Behaviour::ServerError(503),
    ];
    for failure in failures {
        // Fresh state per case, so no earlier cooldown interferes.
        let proxy = stack.fresh_proxy(&[]).await;
        stack.backend.script(A3, failure.clone(), Times::Always);

        let (status, account) = served_by(post_messages(&proxy.url(), false, &[]).await).await;
        assert_eq!(
            status, 200,
            "{failure:?}: the client gets the next account's answer"
        );
        assert_eq!(account, "a7", "{failure:?}");
        let seen: Vec<_> = stack.backend.keys_seen();
        assert_eq!(seen, [A3, A7], "{failure:?}: a3 first, then a7");
        // The failed account stays benched.
        let (_, account) = served_by(post_messages(&proxy.url(), false, &[]).await).await;
        assert_ne!(account, "a3", "{failure:?}");
        assert_eq!(stack.backend.count_for(A3), 1, "{failure:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_passed_through_without_retry() {
    let stack = Stack::start(&[]).await;
    stack.backend.script(
        A3,
        Behaviour::Status {
            status: 400,
            headers: vec![],
            body:
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"bad model"}}"#
                    .into(),
        },
        Times::Once,
    );
    let response = post_messages(&stack.url(), false, &[]).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "bad model");
    assert_eq!(
        stack.backend.keys_seen(),
        [A3],
        "a 400 is the request's fault: no retry"
    );
    let (_, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
    assert_eq!(account, "a3", "and no cooldown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_healthy_account_left_answers_429_with_retry_after() {
    let stack = Stack::start(&[("RETRY_ATTEMPTS", "2")]).await;
    for id in [A1, A2, A3, A7] {
        stack.backend.script(
            id,
            Behaviour::RateLimited {
                reset_in: Duration::from_secs(120),
            },
            Times::Always,
        );
    }
    // First request: three attempts (1 + 2 retries), the last 429 is passed on.
    let response = post_messages(&stack.url(), false, &[]).await;
    assert_eq!(response.status(), 429);
    assert_eq!(stack.accounts_seen(), ["a3", "a7", "a2"]);
    // Second: only a1 is left; it fails too, its 429 is passed on.
    let response = post_messages(&stack.url(), false, &[]).await;
    assert_eq!(response.status(), 429);
    assert_eq!(stack.backend.requests().len(), 4);
    // Third: every account is known bad. The proxy answers itself and sends
    // nothing to the backend.
    let response = post_messages(&stack.url(), false, &[]).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (100..=121).contains(&retry_after),
        "retry-after {retry_after}"
    );
    let body: Value = response.json().await.unwrap();
    assert_anthropic_error(&body, "rate_limit_error");
    assert_eq!(
        stack.backend.requests().len(),
        4,
        "no traffic to accounts known bad"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_backend_gives_502_and_benches_no_account() {
    let redis = RedisServer::start_with_fixtures();
    let port = free_port();
    let target = format!("http://127.0.0.1:{port}");
    let proxy = start_proxy(&redis.url(), &target, &[]);
    wait_ready(&proxy.url()).await;
    for _ in 0..3 {
        let response = post_messages(&proxy.url(), false, &[]).await;
        assert_eq!(response.status(), 502);
        let body: Value = response.json().await.unwrap();
        assert_anthropic_error(&body, "api_error");
    }
    // The backend comes up on that port: a3 serves at once, so no account
    // was benched for the backend's outage.
    let backend = Backend::start_with(Options {
        port,
        ..Options::default()
    })
    .await
    .unwrap();
    let (status, account) = served_by(post_messages(&proxy.url(), false, &[]).await).await;
    assert_eq!((status, account.as_str()), (200, "a3"));
    assert_eq!(backend.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_rewritten_for_the_backend() {
    let stack = Stack::start(&[
        ("MIDDLEWARE_AUTH_ENABLED", "true"),
        ("MIDDLEWARE_API_KEYS", CLIENT_KEY),
    ])
    .await;
    let response = post_messages(
        &stack.url(),
        false,
        &[
            ("x-api-key", CLIENT_KEY),
            ("x-custom-auth", "authenticator sk-ant-api03-client-secret"),
            ("x-forwarded-for", "203.0.113.9"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "should not pass"),
            ("anthropic-beta", "prompt-caching-2024-07-31"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let seen = stack.backend.last_request().unwrap();
    assert_eq!(
        seen.header("x-api-key"),
        Some(A3),
        "the account id is the backend key"
    );
    assert_eq!(
        seen.header("x-custom-auth"),
        Some(A3),
        "sk-ant secrets are replaced"
    );
    assert_eq!(
        seen.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31")
    );
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-hop"), None);
    let all_headers = format!("{:?}", seen.headers);
    assert!(
        !all_headers.contains(CLIENT_KEY),
        "client key forwarded: {all_headers}"
    );
    assert!(
        !all_headers.contains("sk-ant"),
        "client secret forwarded: {all_headers}"
    );
    assert_eq!(seen.body_json().unwrap()["model"], "claude-sonnet-4-5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_auth() {
    let other_key = "cr_second_key_for_tests";
    let stack = Stack::start(&[
        ("MIDDLEWARE_AUTH_ENABLED", "true"),
        ("MIDDLEWARE_API_KEYS", &format!("{CLIENT_KEY}, {other_key}")),
    ])
    .await;
    let base = stack.url();
    let cases: [(&[(&str, &str)], u16); 8] = [
        (&[], 401),
        (&[("x-api-key", "cr_short")], 401),
        (&[("x-api-key", "sk_wrong_prefix_key_01")], 401),
        (&[("x-api-key", "cr_unknown_key_000001")], 401),
        (&[("authorization", "Basic Y3JfdGVzdA==")], 401),
        (&[("x-api-key", CLIENT_KEY)], 200),
        (&[("authorization", "Bearer cr_second_key_for_tests")], 200),
        (&[("api-key", CLIENT_KEY)], 200),
    ];
    for (headers, expected) in cases {
        let response = post_messages(&base, false, headers).await;
        assert_eq!(response.status().as_u16(), expected, "{headers:?}");
        let text = response.text().await.unwrap();
        if expected == 401 {
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_anthropic_error(&body, "authentication_error");
            for (_, value) in headers {
                assert!(
                    !text.contains(value.trim_start_matches("Bearer ")),
                    "401 echoes the key: {text}"
                );
            }
        }
    }
    assert_eq!(
        stack.backend.requests().len(),
        3,
        "refused requests never reach the backend"
    );
    // Health and readiness stay open for probes.
    assert_eq!(get_json(&format!("{base}/health")).await.0, 200);
    assert_eq!(get_json(&format!("{base}/ready")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413() {
    let stack = Stack::start(&[("MAX_BODY_BYTES", "2000")]).await;
    let client = http();
    let big = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(5000)}]});
    // Declared length over the limit.
    let response = client
        .post(format!("{}/v1/messages", stack.url()))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_anthropic_error(
        &response.json::<Value>().await.unwrap(),
        "invalid_request_error",
    );
    // Chunked, no length declared: cut while reading.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..10)
        .map(|_| Ok(bytes::Bytes::from(vec![b'a'; 500])))
        .collect();
    let response = client
        .post(format!("{}/v1/messages", stack.url()))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(
        stack.backend.requests().is_empty(),
        "nothing reached the backend"
    );
    // Just under the limit passes. A new client: the connection the 413 cut
    // short of its body may be closing, and a pooled reuse would race it.
    let small = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(1500)}]});
    let response = http()
        .post(format!("{}/v1/messages", stack.url()))
        .json(&small)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_forwarded_as_they_arrive() {
    let stack = Stack::start(&[]).await;
    // 10 deltas 300 ms apart: about 4 s from first to last event.
    let response = post_messages(
        &stack.url(),
        true,
        &[("x-test-events", "10"), ("x-test-gap-ms", "300")],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = read_timed(response).await;
    assert!(body.error.is_none(), "{:?}", body.error);
    let events = sse_events(&body.text());
    assert_eq!(events.first().map(String::as_str), Some("message_start"));
    assert_eq!(events.last().map(String::as_str), Some("message_stop"));
    let first = body.arrival_of("message_start").unwrap();
    let last = body.arrival_of("message_stop").unwrap();
    // A buffering proxy would deliver everything at the end, at once.
    assert!(
        last - first >= Duration::from_secs(2),
        "events arrived together: first {first:?}, last {last:?}"
    );
    assert!(
        body.chunks.len() >= 8,
        "only {} chunks: the stream was buffered",
        body.chunks.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_cuts_a_stalled_stream_but_not_a_slow_healthy_one() {
    let stack = Stack::start(&[("PROXY_TIMEOUT", "1")]).await;
    // Events every 700 ms for about 6 s: longer than PROXY_TIMEOUT in total,
    // but never idle that long. Not cut.
    stack.backend.script(
        A3,
        Behaviour::SlowStream {
            gap: Duration::from_millis(700),
        },
        Times::Once,
    );
    let response = post_messages(&stack.url(), true, &[("x-test-events", "6")]).await;
    let body = read_timed(response).await;
    assert!(body.error.is_none(), "healthy stream cut: {:?}", body.error);
    assert!(body.text().contains("message_stop"));

    // Stalled after two events: cut after about a second of silence.
    stack
        .backend
        .script(A3, Behaviour::StallAfter { events: 2 }, Times::Once);
    let started = Instant::now();
    let response = post_messages(&stack.url(), true, &[]).await;
    assert_eq!(response.status(), 200);
    let body = read_timed(response).await;
    assert!(
        body.error.is_some(),
        "a stalled stream must end in an error, not hang"
    );
    assert!(!body.text().contains("message_stop"));
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_serving_while_redis_is_down_and_recovers() {
    let mut stack = Stack::start(&[]).await;
    let (status, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
    assert_eq!((status, account.as_str()), (200, "a3"));

    stack.redis.stop();
    let base = stack.url();
    wait_until(
        "/ready to report Redis down",
        Duration::from_secs(15),
        async || {
            let (_, body) = get_json(&format!("{base}/ready")).await;
            body["status"] == "degraded"
        },
    )
    .await;
    let (status, body) = get_json(&format!("{base}/ready")).await;
    assert_eq!(status, 200, "still serving from the last pool: {body}");
    assert!(
        body["reason"].as_str().unwrap_or("").contains("Redis"),
        "{body}"
    );
    for _ in 0..5 {
        let (status, account) = served_by(post_messages(&base, false, &[]).await).await;
        assert_eq!(
            (status, account.as_str()),
            (200, "a3"),
            "last good pool still serves"
        );
    }
    let metrics = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("claude_middleware_redis_errors_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // Redis comes back, with a3 switched off by the relay meanwhile: the new
    // pool is picked up on its own.
    stack.redis.restart_with_fixtures();
    stack
        .redis
        .cli(&["HSET", &format!("claude:account:{A3}"), "isActive", "false"]);
    wait_ready(&base).await;
    wait_until(
        "a3 to leave the pool",
        Duration::from_secs(15),
        async || {
            let (_, account) = served_by(post_messages(&base, false, &[]).await).await;
            account != "a3"
        },
    )
    .await;
    let (_, body) = get_json(&format!("{base}/ready")).await;
    assert_eq!(body["accounts"], 3, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_with_redis_down_and_becomes_ready_on_first_load() {
    let redis_port = free_port();
    let backend = Backend::start().await;
    let redis_url = format!("redis://127.0.0.1:{redis_port}/0");
    let proxy = start_proxy(&redis_url, &backend.url(), &[]);
    let (status, body) = get_json(&format!("{}/ready", proxy.url())).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    let response = post_messages(&proxy.url(), false, &[]).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(backend.requests().is_empty());

    let _redis = RedisServer::start_on_port_with_fixtures(redis_port);
    wait_ready(&proxy.url()).await;
    let (status, account) = served_by(post_messages(&proxy.url(), false, &[]).await).await;
    assert_eq!((status, account.as_str()), (200, "a3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_missing_falls_back_to_scan() {
    let stack = Stack::start(&[]).await;
    stack.redis.cli(&["DEL", "claude:account:index"]);
    // A stray non-hash key under the account prefix must be skipped.
    stack
        .redis
        .cli(&["SET", "claude:account:stray", "not a hash"]);
    // An account that only a SCAN can find: a fifth schedulable one. Until a
    // refresh through the fallback succeeds, the proxy keeps its last pool of
    // four (and a failed refresh would still answer 200 "degraded").
    let only_scan_finds = "9dbf1b07-e4a0-4c8d-f5ab-2b3c4d5e6f99";
    let copied = stack.redis.cli(&[
        "COPY",
        &format!("claude:account:{A1}"),
        &format!("claude:account:{only_scan_finds}"),
    ]);
    assert_eq!(copied.trim(), "1", "COPY: {copied}");
    let mut last = (0, Value::Null);
    let fresh = poll(Duration::from_secs(10), EVERY, async || {
        last = get_json(&format!("{}/ready", stack.url())).await;
        (last.0 == 200 && last.1["status"] == "ready" && last.1["accounts"] == 5).then_some(())
    })
    .await;
    assert!(
        fresh.is_some(),
        "no fresh pool read through SCAN: {} {}",
        last.0,
        last.1
    );
    let (_, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
    assert_eq!(account, "a3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_streams_then_exits_zero() {
    let mut stack = Stack::start(&[("DRAIN_TIMEOUT", "20s")]).await;
    // About 3 s of stream.
    let response = post_messages(
        &stack.url(),
        true,
        &[("x-test-events", "15"), ("x-test-gap-ms", "200")],
    )
    .await;
    assert_eq!(response.status(), 200);
    let reader = tokio::spawn(read_timed(response));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.proxy.sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are refused while the stream goes on.
    let refused = http().get(format!("{}/health", stack.url())).send().await;
    assert!(
        refused.is_err(),
        "new connections must be refused while draining"
    );

    let body = reader.await.unwrap();
    assert!(
        body.error.is_none(),
        "the in-flight stream was cut: {:?}",
        body.error
    );
    assert!(
        body.text().contains("message_stop"),
        "the stream did not complete"
    );
    let status = tokio::task::block_in_place(|| stack.proxy.wait_exit(Duration::from_secs(15)));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        stack.proxy.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_cuts_streams_that_outlast_it() {
    let mut stack = Stack::start(&[("DRAIN_TIMEOUT", "1s")]).await;
    // About 20 s of stream: far longer than the drain timeout.
    let response = post_messages(
        &stack.url(),
        true,
        &[("x-test-events", "100"), ("x-test-gap-ms", "200")],
    )
    .await;
    let reader = tokio::spawn(read_timed(response));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    stack.proxy.sigterm();
    let status = tokio::task::block_in_place(|| stack.proxy.wait_exit(Duration::from_secs(15)));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        stack.proxy.logs()
    );
    let body = reader.await.unwrap();
    assert!(
        !body.text().contains("message_stop"),
        "the stream should have been cut"
    );
    assert!(
        signalled.elapsed() >= Duration::from_millis(900),
        "cut before DRAIN_TIMEOUT"
    );
}

#[test]
fn bad_configuration_stops_start_up_with_one_line() {
    let cases = [
        (vec![("PORT", "eighty")], "PORT"),
        (vec![("TARGET_URL", "relay:3001")], "TARGET_URL"),
        (vec![("REDIS_URL", "http://redis")], "REDIS_URL"),
        (vec![("PROXY_TIMEOUT", "soon")], "PROXY_TIMEOUT"),
        (
            vec![("MIDDLEWARE_AUTH_ENABLED", "true")],
            "MIDDLEWARE_API_KEYS",
        ),
        (
            vec![("ACCOUNT_REFRESH_INTERVAL", "often")],
            "ACCOUNT_REFRESH_INTERVAL",
        ),
        (vec![("MAX_BODY_BYTES", "-1")], "MAX_BODY_BYTES"),
        (vec![("RETRY_ATTEMPTS", "many")], "RETRY_ATTEMPTS"),
        (vec![("DRAIN_TIMEOUT", "x")], "DRAIN_TIMEOUT"),
        (
            vec![("COOLDOWN_RATE_LIMIT", "forever")],
            "COOLDOWN_RATE_LIMIT",
        ),
    ];
    for (env, variable) in cases {
        let (status, stderr) = ProxyProcess::spawn_expect_exit(&env);
        assert!(!status.success(), "{env:?} should not start");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line for {env:?}: {stderr}");
        assert!(
            lines[0].contains(variable),
            "{variable} not named: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gin_mode_production_starts_and_json_logs_hold_no_secrets() {
    let stack = Stack::start(&[
        ("GIN_MODE", "production"),
        ("LOG_FORMAT", "json"),
        ("MIDDLEWARE_AUTH_ENABLED", "true"),
        ("MIDDLEWARE_API_KEYS", CLIENT_KEY),
    ])
    .await;
    let response = post_messages(&stack.url(), false, &[("x-api-key", CLIENT_KEY)]).await;
    assert_eq!(response.status(), 200);
    let _ = post_messages(
        &stack.url(),
        false,
        &[("x-api-key", "cr_wrong_key_0000001")],
    )
    .await;
    let request_lines = |logs: &str| -> Vec<Value> {
        logs.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["message"] == "request")
            .collect()
    };
    // A line is written when its response has ended, which may follow the
    // client's read by a moment.
    wait_until("both request lines", Duration::from_secs(5), async || {
        request_lines(&stack.proxy.logs()).len() >= 2
    })
    .await;
    let logs = stack.proxy.logs();
    let request_lines = request_lines(&logs);
    assert_eq!(request_lines.len(), 2, "one JSON line per request: {logs}");
    assert_eq!(request_lines[0]["status"], 200);
    assert_eq!(request_lines[0]["account"], &A3[..8]);
    assert_eq!(request_lines[1]["status"], 401);
    for secret in [CLIENT_KEY, "cr_wrong_key_0000001", A1, A2, A3, A7] {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }
}
