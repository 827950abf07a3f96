//! The proxy in front of claude-relay-service as that relay really behaves
//! (the fork that accepts an account id as `x-api-key`, and upstream where it
//! differs): the fields and markers it leaves in Redis, its own error shapes,
//! its per-IP limit, its framing and its routes. Real binary, real
//! redis-server, the stand-in relay reproducing each behaviour over sockets.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cmw_tests::backend::{Backend, Behaviour, ForkFramingRelay, Options, Times};
use cmw_tests::client::{http, messages_body, post_messages, read_timed, sse_events};
use cmw_tests::fixture_accounts::rate_limits::{self, SCHEDULABLE, UNSCHEDULABLE};
use cmw_tests::fixture_accounts::{A3, seed_recent_limits};
use cmw_tests::metrics::{metric_sum, metrics_text, scrape_sum};
use cmw_tests::redis::{RedisServer, fixtures_dir};
use cmw_tests::stack::{Stack, served_by, start_proxy, wait_ready, wait_until};
use serde_json::Value;

/// The raw account id that served (the stand-in's `x-stand-in-account`).
async fn served_id(base: &str) -> (u16, String) {
    let response = post_messages(base, false, &[]).await;
    let status = response.status().as_u16();
    let account = response
        .headers()
        .get("x-stand-in-account")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let _ = response.bytes().await;
    (status, account)
}

/// Seconds left of a3's cooldown for `reason`, as `/metrics` says.
async fn a3_cooldown(base: &str, reason: &str) -> f64 {
    scrape_sum(
        base,
        "claude_middleware_account_cooldown_seconds",
        &[("account", &A3[..8]), ("reason", reason)],
    )
    .await
}

/// Issue 11 §1: every time-bound rule is decided by time. The fork's limit
/// without an end time ends an hour after `rateLimitedAt`, the fields its
/// remove leaves behind keep nobody out, upstream's ended auto-stop is over,
/// and the relays' markers beside the hash keep an account out while they last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_rate_limits_end_by_time_and_markers_are_honoured() {
    let redis = RedisServer::start();
    redis.load_file(fixtures_dir().join("relay-rate-limits.redis"));
    // r3 limited 59 min 52 s ago: back 8 s from now; r7's breaker opened 52 s ago: back in 8 s.
    seed_recent_limits(
        &redis,
        Duration::from_secs(3600 - 8),
        Duration::from_secs(60 - 8),
    );
    let backend = Backend::start().await;
    let proxy = start_proxy(&redis.url(), &backend.url(), &[]);
    wait_ready(&proxy.url()).await;

    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        let (status, account) = served_id(&proxy.url()).await;
        assert_eq!(status, 200);
        seen.insert(account);
    }
    let expected: BTreeSet<String> = SCHEDULABLE.iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, expected, "the pool right after loading");

    // The two recent ones come back by time alone: nothing in Redis changes.
    let started = Instant::now();
    wait_until(
        "r3 and r7 to serve again",
        Duration::from_secs(40),
        async || {
            let (_, account) = served_id(&proxy.url()).await;
            seen.insert(account);
            seen.contains(rate_limits::R3_FORK_LIMIT_RECENT)
                && seen.contains(rate_limits::R7_CIRCUIT_OPEN)
        },
    )
    .await;
    println!(
        "r3 and r7 back after {:.1} s (due after 8 s, refresh 1 s)",
        started.elapsed().as_secs_f64()
    );
    for never in [rate_limits::R1_UNTIL_2030, rate_limits::R6_TEMP_UNAVAILABLE] {
        assert_eq!(backend.count_for(never), 0, "{never} got traffic");
        assert!(UNSCHEDULABLE.contains(&never));
    }
    // Once its marker expires, r6 is back too.
    redis.cli(&[
        "DEL",
        &format!(
            "temp_unavailable:claude-official:{}",
            rate_limits::R6_TEMP_UNAVAILABLE
        ),
    ]);
    wait_until(
        "r6 to serve once its marker is gone",
        Duration::from_secs(20),
        async || served_id(&proxy.url()).await.1 == rate_limits::R6_TEMP_UNAVAILABLE,
    )
    .await;
    assert_eq!(backend.count_for(rate_limits::R1_UNTIL_2030), 0);
}

/// Issue 11 §2: the fork's per-IP limit (every client behind the proxy is one
/// IP to it) is the relay's, not an account's: passed on with its status and
/// `retry-after`, no account benched, no retry, counted as `relay_limited`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_ip_limit_benches_no_account() {
    let stack = Stack::start(&[]).await;
    stack.backend.limit_per_ip(Some(2));
    for _ in 0..2 {
        assert_eq!(
            served_by(post_messages(&stack.url(), false, &[]).await)
                .await
                .0,
            200
        );
    }
    let limited = post_messages(&stack.url(), false, &[]).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "900");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "Too Many Requests", "{body}");
    // The same for a stream.
    let limited = post_messages(&stack.url(), true, &[]).await;
    assert_eq!(limited.status(), 429);
    let _ = limited.bytes().await;
    assert_eq!(
        stack.backend.requests().len(),
        4,
        "no retry on other accounts"
    );

    let metrics = metrics_text(&stack.url()).await;
    assert_eq!(
        metric_sum(
            &metrics,
            "claude_middleware_requests_total",
            &[("outcome", "relay_limited")]
        ),
        2.0
    );
    assert_eq!(
        metric_sum(&metrics, "claude_middleware_retries_total", &[]),
        0.0
    );
    assert_eq!(
        metric_sum(&metrics, "claude_middleware_cooling_accounts", &[]),
        0.0
    );

    // The limit lifts: the best account serves at once, nobody was benched.
    stack.backend.limit_per_ip(None);
    let (status, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
    assert_eq!((status, account.as_str()), (200, "a3"));
}

/// Issue 11 §2: the relay's own 5xx (no account of its own, an internal
/// error, a load balancer's page) is passed on and blames no account, while
/// its refusal of one account (circuit breaker, unknown id) does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_errors_of_its_own_blame_no_account() {
    let stack = Stack::start(&[]).await;
    for (status, body) in [
        (
            500,
            r#"{"error":"Relay service error","message":"No available accounts in any associated pools","timestamp":"2026-12-03T07:00:00.000Z"}"#,
        ),
        (
            500,
            r#"{"error":"Relay service error","message":"accountId is not defined"}"#,
        ),
        (502, "<html><body>502 Bad Gateway</body></html>"),
    ] {
        stack.backend.reset_records();
        stack.backend.script(
            A3,
            Behaviour::Status {
                status,
                headers: vec![],
                body: body.into(),
            },
            Times::Once,
        );
        let response = post_messages(&stack.url(), false, &[]).await;
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.text().await.unwrap(), body);
        assert_eq!(stack.backend.requests().len(), 1, "no retry for {body}");
    }
    assert_eq!(
        scrape_sum(
            &stack.url(),
            "claude_middleware_requests_total",
            &[("outcome", "relay_error")]
        )
        .await,
        3.0
    );
    let (status, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
    assert_eq!(
        (status, account.as_str()),
        (200, "a3"),
        "a3 was not benched"
    );

    // The fork's circuit breaker for a3: a3 is cooled for the breaker's minute.
    stack.backend.script(
        A3,
        Behaviour::Status {
            status: 503,
            headers: vec![],
            body: r#"{"error":{"type":"service_unavailable","message":"Service temporarily unavailable. Please try again later."}}"#.into(),
        },
        Times::Once,
    );
    let (status, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
    assert_eq!(status, 200);
    assert_ne!(account, "a3");
    let cooldown = a3_cooldown(&stack.url(), "circuit_open").await;
    assert!(cooldown > 50.0 && cooldown <= 60.0, "{cooldown}");
}

/// Issue 11 §3: the fork answers a streaming request that Anthropic refused
/// with `200` and one `event: error` wrapping the status and Anthropic's body
/// as a string. Classified by that status and the nested `error.type`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relays_streamed_error_is_classified_by_its_status() {
    let stack = Stack::start(&[]).await;
    for (status, reason, default_cooldown) in [
        (429, "rate_limited", 3600.0),
        (529, "overloaded", 15.0),
        (401, "auth_failed", 1800.0),
    ] {
        let proxy = stack.fresh_proxy(&[]).await;
        stack
            .backend
            .script(A3, Behaviour::relay_stream_error(status), Times::Once);
        let response = post_messages(&proxy.url(), true, &[]).await;
        assert_eq!(response.status(), 200);
        let account = response.headers()["x-stand-in-account"]
            .to_str()
            .unwrap()
            .to_string();
        let events = sse_events(&read_timed(response).await.text());
        assert_eq!(events.first().map(String::as_str), Some("message_start"));
        assert_eq!(events.last().map(String::as_str), Some("message_stop"));
        assert_ne!(account, A3, "{status}: failed over to another account");

        let metrics = metrics_text(&proxy.url()).await;
        assert_eq!(
            metric_sum(
                &metrics,
                "claude_middleware_retries_total",
                &[("reason", reason)]
            ),
            1.0,
            "{status}"
        );
        let cooldown = metric_sum(
            &metrics,
            "claude_middleware_account_cooldown_seconds",
            &[("account", &A3[..8]), ("reason", reason)],
        );
        assert!(
            cooldown > default_cooldown - 10.0 && cooldown <= default_cooldown,
            "{status}: cooldown {cooldown}"
        );
    }
}

/// Issue 11 §4: the fork's non-streamed answers carry `transfer-encoding:
/// chunked` and a `content-length`. The transfer coding frames the body: the
/// stale length is dropped, the request counts as completed and the upstream
/// connection stays in the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_with_content_length_completes_and_reuses_the_connection() {
    let redis = RedisServer::start_with_fixtures();
    let relay = ForkFramingRelay::start().await.unwrap();
    let proxy = start_proxy(&redis.url(), &relay.url(), &[]);
    wait_ready(&proxy.url()).await;
    let client = http();
    for _ in 0..3 {
        let response = client
            .post(format!("{}/v1/messages", proxy.url()))
            .json(&messages_body(false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let length = response.headers().get("content-length").cloned();
        let body = response.bytes().await.unwrap();
        if let Some(length) = length {
            assert_eq!(length.to_str().unwrap(), body.len().to_string());
        }
        let message: Value = serde_json::from_slice(&body).expect("a whole JSON message");
        assert_eq!(message["type"], "message");
    }
    wait_until(
        "three completed requests",
        Duration::from_secs(5),
        async || {
            scrape_sum(
                &proxy.url(),
                "claude_middleware_requests_total",
                &[("outcome", "completed")],
            )
            .await
                == 3.0
        },
    )
    .await;
    let metrics = metrics_text(&proxy.url()).await;
    assert_eq!(
        metric_sum(
            &metrics,
            "claude_middleware_requests_total",
            &[("outcome", "client_closed")]
        ),
        0.0
    );
}

/// Issue 11 §5: an overload is Anthropic's, for everyone: the account rests
/// for COOLDOWN_OVERLOADED (15 s by default) and another is tried after a
/// short backoff; a `retry-after` longer than the proxy holds a request is
/// passed to the client rather than waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overload_rests_the_account_briefly() {
    let stack = Stack::start(&[("COOLDOWN_OVERLOADED", "2s")]).await;
    stack.backend.script(A3, Behaviour::Overloaded, Times::Once);
    let (status, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
    assert_eq!(status, 200);
    assert_ne!(account, "a3");
    let metrics = metrics_text(&stack.url()).await;
    assert_eq!(
        metric_sum(
            &metrics,
            "claude_middleware_retries_total",
            &[("reason", "overloaded")]
        ),
        1.0
    );
    let cooldown = metric_sum(
        &metrics,
        "claude_middleware_account_cooldown_seconds",
        &[("account", &A3[..8]), ("reason", "overloaded")],
    );
    assert!(cooldown > 0.0 && cooldown <= 2.0, "{cooldown}");
    wait_until(
        "a3 back after its 2 s rest",
        Duration::from_secs(10),
        async || {
            served_by(post_messages(&stack.url(), false, &[]).await)
                .await
                .1
                == "a3"
        },
    )
    .await;

    // retry-after: 1 is honoured before the next account is tried.
    stack.backend.reset_records();
    stack.backend.script(
        A3,
        Behaviour::error_with_headers(529, &[("retry-after", "1")]),
        Times::Once,
    );
    let sent = Instant::now();
    let (status, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
    assert_eq!(status, 200);
    assert_ne!(account, "a3");
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );

    // retry-after: 30 is the client's to honour.
    wait_until("a3 back", Duration::from_secs(10), async || {
        served_by(post_messages(&stack.url(), false, &[]).await)
            .await
            .1
            == "a3"
    })
    .await;
    stack.backend.reset_records();
    stack.backend.script(
        A3,
        Behaviour::error_with_headers(529, &[("retry-after", "30")]),
        Times::Once,
    );
    let response = post_messages(&stack.url(), false, &[]).await;
    assert_eq!(response.status(), 529);
    assert_eq!(response.headers()["retry-after"], "30");
    let _ = response.bytes().await;
    assert_eq!(stack.backend.requests().len(), 1);
}

/// Issue 11 §5, default: 529 rests an account for 15 s, not the 10 min of a
/// server error, so an API-wide overload cannot empty the pool for long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_overload_cooldown_is_short() {
    let stack = Stack::start(&[]).await;
    stack.backend.script(
        A3,
        Behaviour::SseError {
            error_type: "overloaded_error".into(),
        },
        Times::Once,
    );
    let response = post_messages(&stack.url(), true, &[]).await;
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await;
    let cooldown = a3_cooldown(&stack.url(), "overloaded").await;
    assert!(cooldown > 5.0 && cooldown <= 15.0, "{cooldown}");
}

/// Issue 11 §6: the fork serves the Messages API under `/api/v1/` and has no
/// `/v1/` route, while clients set up the usual way (Claude Code, the SDKs)
/// send `/v1/messages`. TARGET_V1_PATH (default `/api/v1`) maps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_requests_reach_the_relays_api_route() {
    let redis = RedisServer::start_with_fixtures();
    let backend = Backend::start_with(Options {
        fork_routes: true,
        ..Options::default()
    })
    .await
    .unwrap();
    let proxy = start_proxy(&redis.url(), &backend.url(), &[]);
    wait_ready(&proxy.url()).await;
    let response = http()
        .post(format!("{}/v1/messages?beta=true", proxy.url()))
        .json(&messages_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        sse_events(&read_timed(response).await.text())
            .last()
            .map(String::as_str),
        Some("message_stop")
    );
    assert_eq!(
        backend.last_request().unwrap().path,
        "/api/v1/messages?beta=true"
    );
    // Other prefixes are the relay's own and go through unchanged.
    let (status, _) = served_by(
        http()
            .post(format!("{}/claude/v1/messages", proxy.url()))
            .json(&messages_body(false))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(backend.last_request().unwrap().path, "/claude/v1/messages");

    // Without the mapping the fork answers its 404, passed on as is.
    let unmapped = start_proxy(&redis.url(), &backend.url(), &[("TARGET_V1_PATH", "/v1")]);
    wait_ready(&unmapped.url()).await;
    let response = post_messages(&unmapped.url(), false, &[]).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Route /v1/messages not found", "{body}");
}
