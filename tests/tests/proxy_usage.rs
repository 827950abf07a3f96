//! Token usage and the prompt cache, per account, from the answers as they
//! stream past (issue 15 §3). The stand-in plays Anthropic's prompt cache per
//! account: a conversation that stays on its account reads the cache, one
//! moved to another account writes it again. Real binary, real redis-server.

use cmw_tests::backend::{Behaviour, CACHED_PROMPT_TOKENS, Times};
use cmw_tests::client::{post_messages, read_timed, sse_events};
use cmw_tests::fixture_accounts::A3;
use cmw_tests::metrics::{metric_sum, metrics_text};
use cmw_tests::stack::Stack;

const TOKENS: &str = "claude_middleware_tokens_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_cache_hits_per_account_and_session_repins() {
    let stack = Stack::start(&[]).await;
    let session = [("x-claude-code-session-id", "5f0d6c2e-usage-test")];
    // Streamed: the first request writes the cache, the next two read it.
    for _ in 0..3 {
        let response = post_messages(&stack.url(), true, &session).await;
        assert_eq!(response.status(), 200);
        let events = sse_events(&read_timed(response).await.text());
        assert_eq!(events.last().map(String::as_str), Some("message_stop"));
    }
    // A JSON answer carries the same usage.
    let response = post_messages(&stack.url(), false, &session).await;
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await;

    let a3 = &A3[..8];
    let metrics = metrics_text(&stack.url()).await;
    let tokens = |kind: &str| {
        metric_sum(
            &metrics,
            TOKENS,
            &[("account", a3), ("model_family", "sonnet"), ("kind", kind)],
        )
    };
    assert_eq!(tokens("input"), 4.0 * 12.0);
    assert_eq!(tokens("cache_creation"), CACHED_PROMPT_TOKENS as f64);
    assert_eq!(tokens("cache_read"), 3.0 * CACHED_PROMPT_TOKENS as f64);
    // 5 deltas per stream (message_delta's running total), 5 in the JSON answer.
    assert_eq!(tokens("output"), 4.0 * 5.0);
    assert_eq!(
        metric_sum(&metrics, "claude_middleware_session_repins_total", &[]),
        0.0
    );

    // The session's account is rate limited: the session moves, and its cache is lost.
    stack.backend.script(
        A3,
        Behaviour::RateLimited {
            reset_in: std::time::Duration::from_secs(60),
        },
        Times::Once,
    );
    let response = post_messages(&stack.url(), true, &session).await;
    let moved_to = response.headers()["x-stand-in-account"]
        .to_str()
        .unwrap()
        .to_string();
    let _ = read_timed(response).await;
    assert_ne!(moved_to, A3);
    let metrics = metrics_text(&stack.url()).await;
    assert_eq!(
        metric_sum(&metrics, "claude_middleware_session_repins_total", &[]),
        1.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            TOKENS,
            &[("account", &moved_to[..8]), ("kind", "cache_creation")]
        ),
        CACHED_PROMPT_TOKENS as f64,
        "the new account wrote the cache again"
    );
}
