//! Where the Go middleware failed: streamed errors, reset-header cooldowns,
//! health shared across replicas, sticky sessions, hot-reloaded keys and
//! metrics. Real binary, real redis-server, stand-in backend, real sockets.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cmw_tests::backend::{Behaviour, Times};
use cmw_tests::client::{http, post_messages, read_timed, sse_events};
use cmw_tests::fixture_accounts::{A3, A7, name_of};
use cmw_tests::metrics::{metric_sum, metrics_text};
use cmw_tests::stack::{Stack, get_json, served_by, start_proxy, wait_ready, wait_until};
use serde_json::json;

fn rate_limited(seconds: u64) -> Behaviour {
    Behaviour::RateLimited {
        reset_in: Duration::from_secs(seconds),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_error_event_fails_over_to_a_clean_stream() {
    let stack = Stack::start(&[]).await;
    stack.backend.script(
        A3,
        Behaviour::SseError {
            error_type: "rate_limit_error".into(),
        },
        Times::Always,
    );
    let response = post_messages(&stack.url(), true, &[]).await;
    assert_eq!(response.status(), 200);
    let served = response.headers()["x-stand-in-account"]
        .to_str()
        .unwrap()
        .to_string();
    let body = read_timed(response).await;
    let events = sse_events(&body.text());
    assert_eq!(name_of(&served), "a7", "the next account served");
    assert_eq!(
        events.first().map(String::as_str),
        Some("message_start"),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e == "error"),
        "the client saw the error: {events:?}"
    );
    assert_eq!(stack.accounts_seen(), ["a3", "a7"]);
    // a3 is cooling down now: the next request does not try it.
    let (_, account) = served_by(post_messages(&stack.url(), true, &[]).await).await;
    assert_ne!(account, "a3");
    assert_eq!(stack.backend.count_for(A3), 1);
    let metrics = metrics_text(&stack.url()).await;
    assert_eq!(
        metric_sum(
            &metrics,
            "claude_middleware_retries_total",
            &[("reason", "rate_limited")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_errors_of_each_kind_and_of_the_request_itself() {
    let stack = Stack::start(&[]).await;
    for error_type in ["overloaded_error", "authentication_error", "api_error"] {
        let proxy = stack.fresh_proxy(&[]).await;
        stack.backend.script(
            A3,
            Behaviour::SseError {
                error_type: error_type.into(),
            },
            Times::Once,
        );
        let (status, account) = served_by(post_messages(&proxy.url(), true, &[]).await).await;
        assert_eq!((status, account.as_str()), (200, "a7"), "{error_type}");
    }
    // invalid_request_error is the request's own fault: passed through, no retry.
    let proxy = stack.fresh_proxy(&[]).await;
    stack.backend.script(
        A3,
        Behaviour::SseError {
            error_type: "invalid_request_error".into(),
        },
        Times::Once,
    );
    let body = read_timed(post_messages(&proxy.url(), true, &[]).await).await;
    assert!(
        body.text().contains("invalid_request_error"),
        "{}",
        body.text()
    );
    assert_eq!(stack.accounts_seen(), ["a3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_account_passes_its_streamed_error_on() {
    let stack = Stack::start(&[("RETRY_ATTEMPTS", "1")]).await;
    stack.backend.script_any(
        Behaviour::SseError {
            error_type: "overloaded_error".into(),
        },
        Times::Always,
    );
    let body = read_timed(post_messages(&stack.url(), true, &[]).await).await;
    assert_eq!(
        sse_events(&body.text()),
        ["error"],
        "the last error is forwarded as is"
    );
    assert_eq!(stack.backend.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_with_a_near_reset_returns_the_account_after_the_reset() {
    let stack = Stack::start(&[("COOLDOWN_RATE_LIMIT", "1h")]).await;
    stack.backend.script(A3, rate_limited(2), Times::Once);
    let limited_at = Instant::now();
    let (_, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
    assert_eq!(account, "a7");
    let (_, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
    assert_ne!(account, "a3", "still cooling right after the 429");
    // Back after about two seconds, not the hour of COOLDOWN_RATE_LIMIT.
    let base = stack.url();
    wait_until("a3 to return", Duration::from_secs(10), async || {
        served_by(post_messages(&base, false, &[]).await).await.1 == "a3"
    })
    .await;
    let back_after = limited_at.elapsed();
    assert!(
        back_after >= Duration::from_millis(900),
        "back too early: {back_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooldown_seen_by_one_replica_steers_the_other() {
    let stack = Stack::start(&[]).await;
    // A slow refresh: only the pub/sub nudge can tell it in time.
    let other = start_proxy(
        &stack.redis.url(),
        &stack.backend.url(),
        &[("ACCOUNT_REFRESH_INTERVAL", "60s")],
    );
    wait_ready(&other.url()).await;
    stack.backend.script(A3, rate_limited(300), Times::Always);

    let (_, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
    assert_eq!(account, "a7");
    assert_eq!(stack.backend.count_for(A3), 1);
    // The other replica hears of it through Redis within a second.
    let other_url = other.url();
    let started = Instant::now();
    wait_until(
        "the other replica to bench a3",
        Duration::from_secs(5),
        async || {
            let text = metrics_text(&other_url).await;
            metric_sum(
                &text,
                "claude_middleware_account_healthy",
                &[("account", &A3[..8])],
            ) == 0.0
        },
    )
    .await;
    let heard_after = started.elapsed();
    let (_, account) = served_by(post_messages(&other.url(), false, &[]).await).await;
    assert_ne!(account, "a3");
    assert_eq!(
        stack.backend.count_for(A3),
        1,
        "the other replica never tried a3"
    );
    assert!(heard_after < Duration::from_secs(5));
    // The shared state lives under the proxy's own prefix, with a TTL.
    let ttl: i64 = stack
        .redis
        .cli(&["PTTL", &format!("claude-middleware:cooldown:{A3}")])
        .parse()
        .unwrap();
    assert!(ttl > 200_000, "cooldown key TTL {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_shared_health_replicas_learn_on_their_own_and_write_nothing() {
    let stack = Stack::start(&[("SHARED_HEALTH", "false")]).await;
    let before = stack.redis.cli(&["DBSIZE"]);
    stack.backend.script(A3, rate_limited(300), Times::Always);
    let (_, account) = served_by(post_messages(&stack.url(), false, &[]).await).await;
    assert_eq!(account, "a7");
    let _ = post_messages(
        &stack.url(),
        false,
        &[("x-claude-code-session-id", "s-local")],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stack.redis.cli(&["DBSIZE"]),
        before,
        "nothing written to Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_written_to_the_relays_keys() {
    let stack = Stack::start(&[]).await;
    let snapshot = |stack: &Stack| {
        let mut keys: Vec<String> = stack
            .redis
            .cli(&["--scan", "--pattern", "claude:*"])
            .lines()
            .map(String::from)
            .collect();
        keys.sort();
        keys.iter()
            .map(|k| format!("{k}={}", stack.redis.cli(&["DUMP", k])))
            .collect::<Vec<_>>()
    };
    let before = snapshot(&stack);
    stack.backend.script(A3, rate_limited(300), Times::Once);
    for session in ["s1", "s2", "s3"] {
        let _ = served_by(
            post_messages(&stack.url(), true, &[("x-claude-code-session-id", session)]).await,
        )
        .await;
    }
    // The proxy writes its own keys in the background: wait for them, then
    // check that the relay's are as they were.
    let own = || {
        stack
            .redis
            .cli(&["--scan", "--pattern", "claude-middleware:*"])
    };
    wait_until("the proxy's own keys", Duration::from_secs(5), async || {
        let own = own();
        own.contains("claude-middleware:cooldown:") && own.contains("claude-middleware:session:s1")
    })
    .await;
    assert_eq!(snapshot(&stack), before, "the relay's keys changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_stick_to_their_account_and_move_when_it_cools() {
    let stack = Stack::start(&[]).await;
    // Take a3 (the preferred account) out, so that three accounts of equal
    // priority remain and stickiness is visible.
    stack.backend.script(A3, rate_limited(300), Times::Always);
    let _ = served_by(post_messages(&stack.url(), false, &[]).await).await;

    let session = [("x-claude-code-session-id", "conversation-1")];
    let mut accounts = Vec::new();
    for _ in 0..5 {
        let (status, account) = served_by(post_messages(&stack.url(), true, &session).await).await;
        assert_eq!(status, 200);
        accounts.push(account);
        // Requests without a session in between spread over the pool.
        let _ = served_by(post_messages(&stack.url(), false, &[]).await).await;
    }
    let first = accounts[0].clone();
    assert!(
        accounts.iter().all(|a| *a == first),
        "session moved: {accounts:?}"
    );

    let spread: HashSet<String> = {
        let mut seen = HashSet::new();
        for _ in 0..3 {
            seen.insert(
                served_by(post_messages(&stack.url(), false, &[]).await)
                    .await
                    .1,
            );
        }
        seen
    };
    assert_eq!(
        spread.len(),
        3,
        "requests without a session spread: {spread:?}"
    );

    // The session's account cools down: the session moves and sticks again.
    let sticky_id = stack
        .backend
        .requests()
        .iter()
        .find(|r| name_of(r.api_key.as_deref().unwrap_or("")) == first)
        .and_then(|r| r.api_key.clone())
        .unwrap();
    stack
        .backend
        .script(&sticky_id, rate_limited(300), Times::Always);
    let mut moved = Vec::new();
    for _ in 0..4 {
        let (status, account) = served_by(post_messages(&stack.url(), true, &session).await).await;
        assert_eq!(status, 200);
        moved.push(account);
    }
    assert!(
        moved.iter().all(|a| *a == moved[0] && *a != first),
        "{first} → {moved:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_can_come_from_metadata_user_id_and_is_shared_by_replicas() {
    let stack = Stack::start(&[]).await;
    let other = start_proxy(&stack.redis.url(), &stack.backend.url(), &[]);
    wait_ready(&other.url()).await;
    stack.backend.script(A3, rate_limited(300), Times::Always);
    let _ = served_by(post_messages(&stack.url(), false, &[]).await).await;

    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 16,
        "metadata": {"user_id": "user_4f2a_account__session_6c1d2e3f-0000-4000-8000-000000000001"},
        "messages": [{"role": "user", "content": "hi"}],
    });
    let send = |base: String| {
        let body = body.clone();
        async move {
            let response = http()
                .post(format!("{base}/v1/messages"))
                .json(&body)
                .send()
                .await
                .unwrap();
            served_by(response).await.1
        }
    };
    let first = send(stack.url()).await;
    // The other replica would pick by its own LRU; stickiness overrides it.
    let _ = served_by(post_messages(&other.url(), false, &[]).await).await;
    let _ = served_by(post_messages(&other.url(), false, &[]).await).await;
    for _ in 0..3 {
        assert_eq!(
            send(other.url()).await,
            first,
            "the session moved between replicas"
        );
    }
    assert_eq!(
        stack
            .redis
            .cli(&[
                "GET",
                "claude-middleware:session:6c1d2e3f-0000-4000-8000-000000000001"
            ])
            .len(),
        A7.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_session_ttl_zero_turns_stickiness_off() {
    let stack = Stack::start(&[("STICKY_SESSION_TTL", "0")]).await;
    stack.backend.script(A3, rate_limited(300), Times::Always);
    let _ = served_by(post_messages(&stack.url(), false, &[]).await).await;
    let mut seen = HashSet::new();
    for _ in 0..3 {
        seen.insert(
            served_by(
                post_messages(&stack.url(), false, &[("x-claude-code-session-id", "c")]).await,
            )
            .await
            .1,
        );
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

/// Writes keys the way the kubelet updates a mounted Secret: a new timestamped
/// directory, then an atomic rename of the `..data` symlink.
fn write_secret_volume(dir: &std::path::Path, generation: u32, keys: &str) {
    let data_dir = dir.join(format!("..2026_{generation}"));
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join("keys"), keys).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(data_dir.file_name().unwrap(), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    let link = dir.join("keys");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink("..data/keys", &link).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_keys_file_takes_effect_without_a_restart() {
    let volume = tempfile::tempdir().unwrap();
    let (old_key, new_key) = ("cr_old_key_000000001", "cr_new_key_000000002");
    write_secret_volume(volume.path(), 1, &format!("{old_key}\n"));
    let keys_file = volume.path().join("keys");
    let mut stack = Stack::start(&[
        ("MIDDLEWARE_AUTH_ENABLED", "true"),
        ("MIDDLEWARE_API_KEYS_FILE", keys_file.to_str().unwrap()),
    ])
    .await;
    let base = stack.url();
    assert_eq!(
        post_messages(&base, false, &[("x-api-key", old_key)])
            .await
            .status(),
        200
    );
    assert_eq!(
        post_messages(&base, false, &[("x-api-key", new_key)])
            .await
            .status(),
        401
    );

    // A long stream admitted with the old key, in flight across the change.
    let in_flight = post_messages(
        &base,
        true,
        &[
            ("x-api-key", old_key),
            ("x-test-events", "20"),
            ("x-test-gap-ms", "200"),
        ],
    )
    .await;
    assert_eq!(in_flight.status(), 200);
    let reader = tokio::spawn(read_timed(in_flight));

    write_secret_volume(volume.path(), 2, &format!("# rotated\n{new_key}\n"));
    let changed = Instant::now();
    wait_until(
        "the old key to be refused",
        Duration::from_secs(10),
        async || {
            post_messages(&base, false, &[("x-api-key", old_key)])
                .await
                .status()
                == 401
        },
    )
    .await;
    assert!(changed.elapsed() < Duration::from_secs(10));
    assert_eq!(
        post_messages(&base, false, &[("x-api-key", new_key)])
            .await
            .status(),
        200
    );
    let body = reader.await.unwrap();
    assert!(
        body.error.is_none() && body.text().contains("message_stop"),
        "in-flight stream interrupted"
    );
    assert!(stack.proxy.is_running(), "no restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_the_traffic() {
    let stack = Stack::start(&[]).await;
    let base = stack.url();
    let before = metrics_text(&base).await;
    let ok = |text: &str| {
        metric_sum(
            text,
            "claude_middleware_requests_total",
            &[("route", "/v1/"), ("status", "200")],
        )
    };
    assert_eq!(ok(&before), 0.0);
    assert_eq!(
        metric_sum(&before, "claude_middleware_pool_accounts", &[]),
        4.0
    );

    for _ in 0..3 {
        let _ = served_by(post_messages(&base, false, &[]).await).await;
    }
    let _ = read_timed(post_messages(&base, true, &[]).await).await;
    stack.backend.script(A3, rate_limited(120), Times::Once);
    let _ = served_by(post_messages(&base, false, &[]).await).await;
    let _ = http().get(format!("{base}/nothing")).send().await;

    let after = metrics_text(&base).await;
    assert_eq!(ok(&after), 5.0, "{after}");
    assert_eq!(
        metric_sum(
            &after,
            "claude_middleware_retries_total",
            &[("reason", "rate_limited")]
        ),
        1.0
    );
    assert_eq!(
        metric_sum(&after, "claude_middleware_cooling_accounts", &[]),
        1.0
    );
    let cooldown = metric_sum(
        &after,
        "claude_middleware_account_cooldown_seconds",
        &[("account", &A3[..8]), ("reason", "rate_limited")],
    );
    assert!(
        (60.0..=121.0).contains(&cooldown),
        "seconds until reset: {cooldown}"
    );
    assert_eq!(
        metric_sum(
            &after,
            "claude_middleware_account_healthy",
            &[("account", &A7[..8])]
        ),
        1.0
    );
    assert!(
        metric_sum(
            &after,
            "claude_middleware_upstream_latency_seconds_count",
            &[]
        ) >= 6.0,
        "{after}"
    );
    assert!(
        metric_sum(
            &after,
            "claude_middleware_time_to_first_byte_seconds_count",
            &[]
        ) >= 5.0,
        "{after}"
    );
    assert_eq!(
        metric_sum(&after, "claude_middleware_inflight_streams", &[]),
        0.0
    );
    let (status, _) = get_json(&format!("{base}/ready")).await;
    assert_eq!(status, 200);
}
