//! The stand-in relay backend itself, over real sockets with a plain hyper client: answer
//! shapes, stream pacing, every scripted behaviour, disconnect detection, and the binary.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cmw_tests::backend::{Backend, Behaviour, PROXIED_PREFIXES, Times};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// One request over a fresh connection. The handle drives the connection: aborting it
/// closes the socket, which is how a test plays a client that goes away.
async fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (Response<Incoming>, JoinHandle<()>) {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    (response, driver)
}

/// `POST /v1/messages` as account `key`, streaming or not.
async fn messages(
    backend: &Backend,
    key: &str,
    stream: bool,
    extra: &[(&str, &str)],
) -> (Response<Incoming>, JoinHandle<()>) {
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": "hello"}]
    });
    let mut headers = vec![("x-api-key", key), ("content-type", "application/json")];
    headers.extend_from_slice(extra);
    send(
        backend.port(),
        "POST",
        "/v1/messages",
        &headers,
        Bytes::from(body.to_string()),
    )
    .await
}

fn header<'a>(response: &'a Response<Incoming>, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn body_json(response: Response<Incoming>) -> Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// An SSE event as it arrived: its name, its data as JSON, and when it was complete.
#[derive(Debug)]
struct Event {
    name: String,
    data: Value,
    at: Instant,
}

/// Reads SSE events until the body ends, `limit` events arrived, or `idle` passes with no
/// frame. The `Err` is a body error (e.g. the connection was reset).
async fn read_events(
    body: &mut Incoming,
    limit: usize,
    idle: Duration,
) -> Result<Vec<Event>, hyper::Error> {
    let mut events = Vec::new();
    let mut buffer = String::new();
    while events.len() < limit {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(frame)) => frame?,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.push_str(std::str::from_utf8(&data).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let raw: String = buffer.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = Value::Null;
            for line in raw.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap();
                }
            }
            events.push(Event {
                name,
                data,
                at: Instant::now(),
            });
        }
    }
    Ok(events)
}

#[tokio::test]
async fn json_answer_has_the_message_shape_and_names_the_account() {
    let backend = Backend::start().await;
    let (response, _conn) = messages(
        &backend,
        "acc-1",
        false,
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "application/json");
    assert_eq!(header(&response, "x-stand-in-account"), "acc-1");
    let body = body_json(response).await;
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["content"][0]["type"], "text");
    assert!(
        body["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("served by account acc-1")
    );
    assert_eq!(body["stop_reason"], "end_turn");

    let seen = backend.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].api_key.as_deref(), Some("acc-1"));
    assert_eq!(seen[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(seen[0].body_json().unwrap()["max_tokens"], 64);
    assert!(!seen[0].stream);
    assert_eq!(seen[0].status, 200);
    assert!(seen[0].completed.is_some());
    assert_eq!(backend.keys_seen(), ["acc-1"]);
    assert_eq!(backend.count_for("acc-1"), 1);
}

#[tokio::test]
async fn every_proxied_prefix_is_answered_and_others_are_404() {
    let backend = Backend::start().await;
    for prefix in PROXIED_PREFIXES {
        let path = format!("{prefix}messages?beta=true");
        let (response, _conn) = send(
            backend.port(),
            "POST",
            &path,
            &[("x-api-key", "k")],
            Bytes::from("{}"),
        )
        .await;
        assert_eq!(response.status(), 200, "{path}");
    }
    let (response, _conn) = send(backend.port(), "GET", "/v1/models", &[], Bytes::new()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-stand-in-account"), "none");

    let (response, _conn) = send(backend.port(), "GET", "/elsewhere", &[], Bytes::new()).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        body_json(response).await["error"]["type"],
        "not_found_error"
    );
    let (response, _conn) = send(backend.port(), "GET", "/health", &[], Bytes::new()).await;
    assert_eq!(response.status(), 200);

    let paths: Vec<String> = backend.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths[0], "/v1/messages?beta=true");
    assert_eq!(paths.len(), PROXIED_PREFIXES.len() + 3);
}

#[tokio::test]
async fn sse_answer_streams_events_spread_out_in_anthropic_order() {
    let backend = Backend::start().await;
    let sent = Instant::now();
    let (response, _conn) = messages(
        &backend,
        "acc-2",
        true,
        &[("x-test-events", "4"), ("x-test-gap-ms", "150")],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "text/event-stream");
    assert_eq!(header(&response, "x-stand-in-account"), "acc-2");
    let mut body = response.into_body();
    let events = read_events(&mut body, usize::MAX, Duration::from_secs(10))
        .await
        .unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let text: String = events
        .iter()
        .filter_map(|e| e.data["delta"]["text"].as_str())
        .collect();
    assert!(text.starts_with("served by account acc-2"), "{text}");
    assert_eq!(events[0].data["message"]["model"], "claude-sonnet-4-5");

    // 8 gaps of 150 ms: the first event must not wait for the last.
    let first = events[0].at - sent;
    let total = events[events.len() - 1].at - sent;
    assert!(
        total >= Duration::from_millis(8 * 150),
        "whole stream took {total:?}"
    );
    assert!(
        first < total / 2,
        "first event after {first:?} of {total:?}"
    );

    let seen = backend.last_request().unwrap();
    assert!(seen.stream);
    assert!(seen.completed.is_some());
    assert!(!seen.client_went_away());
}

#[tokio::test]
async fn body_bytes_pad_the_answer() {
    let backend = Backend::start().await;
    let (response, _conn) =
        messages(&backend, "acc", false, &[("x-test-body-bytes", "10000")]).await;
    let body = body_json(response).await;
    assert!(body["content"][0]["text"].as_str().unwrap().len() >= 10_000);
}

#[tokio::test]
async fn rate_limited_answers_429_with_reset_headers() {
    let backend = Backend::start().await;
    backend.script(
        "acc",
        Behaviour::RateLimited {
            reset_in: Duration::from_secs(120),
        },
        Times::Once,
    );
    let (response, _conn) = messages(&backend, "acc", true, &[]).await;
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "retry-after"), "120");
    let reset: u64 = header(&response, "anthropic-ratelimit-unified-reset")
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 110..=now + 130).contains(&reset),
        "reset {reset}, now {now}"
    );
    let body = body_json(response).await;
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");

    // Once: the next request is normal.
    let (response, _conn) = messages(&backend, "acc", false, &[]).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn status_behaviours_give_anthropic_errors() {
    let backend = Backend::start().await;
    let cases = [
        (Behaviour::Unauthorized, 401, "authentication_error"),
        (Behaviour::Overloaded, 529, "overloaded_error"),
        (Behaviour::ServerError(500), 500, "api_error"),
        (Behaviour::ServerError(502), 502, "api_error"),
        (Behaviour::ServerError(503), 503, "api_error"),
        (Behaviour::ServerError(504), 504, "api_error"),
    ];
    for (behaviour, status, error_type) in cases {
        backend.script("acc", behaviour, Times::Once);
        let (response, _conn) = messages(&backend, "acc", false, &[]).await;
        assert_eq!(response.status(), status);
        assert_eq!(header(&response, "content-type"), "application/json");
        assert_eq!(body_json(response).await["error"]["type"], error_type);
    }

    backend.script(
        "acc",
        Behaviour::Status {
            status: 418,
            headers: vec![("x-custom".into(), "yes".into())],
            body: "{\"teapot\":true}".into(),
        },
        Times::Once,
    );
    let (response, _conn) = messages(&backend, "acc", false, &[]).await;
    assert_eq!(response.status(), 418);
    assert_eq!(header(&response, "x-custom"), "yes");
    assert_eq!(body_json(response).await["teapot"], true);

    let statuses: Vec<u16> = backend.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 529, 500, 502, 503, 504, 418]);
}

#[tokio::test]
async fn scripts_are_per_account_counted_and_have_a_wildcard() {
    let backend = Backend::start().await;
    backend.script("bad", Behaviour::Overloaded, Times::N(2));
    backend.script_any(Behaviour::ServerError(503), Times::Always);
    assert_eq!(messages(&backend, "bad", false, &[]).await.0.status(), 529);
    assert_eq!(messages(&backend, "good", false, &[]).await.0.status(), 503);
    assert_eq!(messages(&backend, "bad", false, &[]).await.0.status(), 529);
    // Its own script used up, "bad" falls to the wildcard.
    assert_eq!(messages(&backend, "bad", false, &[]).await.0.status(), 503);
    backend.clear_scripts();
    assert_eq!(messages(&backend, "bad", false, &[]).await.0.status(), 200);
    assert_eq!(backend.count_for("bad"), 4);
    backend.reset_records();
    assert!(backend.requests().is_empty());
}

#[tokio::test]
async fn sse_error_is_a_200_stream_whose_first_event_is_an_error() {
    let backend = Backend::start().await;
    backend.script(
        "acc",
        Behaviour::SseError {
            error_type: "overloaded_error".into(),
        },
        Times::Once,
    );
    let (response, _conn) = messages(&backend, "acc", true, &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "text/event-stream");
    let mut body = response.into_body();
    let events = read_events(&mut body, usize::MAX, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "error");
    assert_eq!(events[0].data["type"], "error");
    assert_eq!(events[0].data["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn slow_headers_delay_the_head_and_slow_stream_spreads_events() {
    let backend = Backend::start().await;
    backend.script(
        "acc",
        Behaviour::SlowHeaders {
            delay: Duration::from_millis(400),
        },
        Times::Once,
    );
    let sent = Instant::now();
    let (response, _conn) = messages(&backend, "acc", false, &[]).await;
    assert!(sent.elapsed() >= Duration::from_millis(400));
    assert_eq!(response.status(), 200);

    backend.script(
        "acc",
        Behaviour::SlowStream {
            gap: Duration::from_millis(60),
        },
        Times::Once,
    );
    let sent = Instant::now();
    let (response, _conn) = messages(&backend, "acc", true, &[("x-test-events", "3")]).await;
    let events = read_events(
        &mut response.into_body(),
        usize::MAX,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(events.len(), 8);
    assert!(sent.elapsed() >= Duration::from_millis(7 * 60));
}

#[tokio::test]
async fn stall_after_sends_some_events_then_nothing_and_sees_the_client_leave() {
    let backend = Backend::start().await;
    backend.script("acc", Behaviour::StallAfter { events: 2 }, Times::Once);
    let (response, conn) = messages(&backend, "acc", true, &[]).await;
    let mut body = response.into_body();
    let first = read_events(&mut body, usize::MAX, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(first.len(), 2, "{first:?}");
    // Still nothing, and the body has not ended: it is stalled.
    let idle = tokio::time::timeout(Duration::from_millis(300), body.frame()).await;
    assert!(idle.is_err(), "a stalled stream produced {idle:?}");
    assert!(backend.requests()[0].client_gone.is_none());

    // The client gives up: the stand-in notices.
    drop(body);
    conn.abort();
    let gone = backend
        .wait_for_cancel(Duration::from_secs(5))
        .await
        .expect("client disconnect recorded");
    assert!(gone.completed.is_none());
}

#[tokio::test]
async fn reset_after_breaks_the_body() {
    let backend = Backend::start().await;
    backend.script("acc", Behaviour::ResetAfter { events: 3 }, Times::Once);
    let (response, _conn) = messages(&backend, "acc", true, &[]).await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut events = 0;
    // hyper reports the truncated body as an error, never as a clean end.
    loop {
        match read_events(&mut body, 1, Duration::from_secs(5)).await {
            Ok(got) if got.is_empty() => panic!("body ended cleanly after {events} events"),
            Ok(got) => events += got.len(),
            Err(_) => break,
        }
    }
    assert_eq!(events, 3);

    // A JSON answer can be cut too.
    backend.script("acc", Behaviour::ResetAfter { events: 1 }, Times::Once);
    let (response, _conn) = messages(&backend, "acc", false, &[]).await;
    assert!(response.into_body().collect().await.is_err());
}

#[tokio::test]
async fn a_client_leaving_mid_stream_is_recorded() {
    let backend = Backend::start().await;
    let (response, conn) = messages(
        &backend,
        "acc",
        true,
        &[("x-test-events", "50"), ("x-test-gap-ms", "40")],
    )
    .await;
    let mut body = response.into_body();
    let events = read_events(&mut body, 3, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
    let left = Instant::now();
    drop(body);
    conn.abort();
    let seen = backend
        .wait_for_cancel(Duration::from_secs(5))
        .await
        .expect("client disconnect recorded");
    assert_eq!(seen.api_key.as_deref(), Some("acc"));
    assert!(seen.completed.is_none());
    assert!(seen.client_gone.unwrap() >= left);
}

/// The binary under the process harness the proxy tests use (it follows the same
/// conventions: `PORT`, `GET /health`), which also tests that harness.
#[tokio::test]
async fn the_binary_serves_under_the_process_harness_and_stops_on_sigterm() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_stand-in-relay"));
    let mut relay = cmw_tests::proxy::ProxyProcess::start_binary(bin, &[("RUST_LOG", "info")]);
    assert!(relay.is_running());
    assert!(
        relay.stdout().contains(&format!(
            "stand-in-relay listening on 127.0.0.1:{}",
            relay.port()
        )),
        "{}",
        relay.logs()
    );
    assert_eq!(relay.url(), format!("http://127.0.0.1:{}", relay.port()));
    let (response, _conn) = send(
        relay.port(),
        "POST",
        "/v1/messages",
        &[("x-api-key", "acc-9")],
        Bytes::from("{}"),
    )
    .await;
    assert_eq!(header(&response, "x-stand-in-account"), "acc-9");

    relay.sigterm();
    let status = relay
        .wait_exit(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(!relay.is_running());
}

#[tokio::test]
async fn the_binary_in_fast_mode_announces_its_port() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stand-in-relay"))
        .args(["--port", "0", "--fast", "--threads", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    /// Kills the child even when an assertion fails.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _child = KillOnDrop(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("stand-in-relay listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    let (response, _conn) = send(
        port,
        "POST",
        "/v1/messages",
        &[("x-api-key", "k"), ("x-test-events", "2")],
        Bytes::from(r#"{"stream":true}"#),
    )
    .await;
    let events = read_events(
        &mut response.into_body(),
        usize::MAX,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(events.len(), 7);
}

#[tokio::test]
async fn scripts_can_be_set_over_http_for_the_binary() {
    let backend = Backend::start().await;
    let spec = json!({"account": "acc", "behaviour": "server_error", "status": 502, "times": 2});
    let (response, _conn) = send(
        backend.port(),
        "POST",
        "/__stand-in/script",
        &[],
        Bytes::from(spec.to_string()),
    )
    .await;
    assert_eq!(response.status(), 200);
    let (response, _conn) = send(
        backend.port(),
        "POST",
        "/__stand-in/script",
        &[],
        Bytes::from(r#"{"behaviour":"explode"}"#),
    )
    .await;
    assert_eq!(response.status(), 400);

    assert_eq!(messages(&backend, "acc", false, &[]).await.0.status(), 502);
    assert_eq!(messages(&backend, "acc", false, &[]).await.0.status(), 502);
    assert_eq!(messages(&backend, "acc", false, &[]).await.0.status(), 200);

    let (response, _conn) = send(
        backend.port(),
        "GET",
        "/__stand-in/requests",
        &[],
        Bytes::new(),
    )
    .await;
    let seen = body_json(response).await;
    let statuses: Vec<u64> = seen
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [502, 502, 200],
        "control requests are not recorded"
    );
    assert_eq!(seen[0]["api_key"], "acc");

    let (response, _conn) = send(
        backend.port(),
        "DELETE",
        "/__stand-in/requests",
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(backend.requests().is_empty());
}

#[tokio::test]
async fn a_dropped_backend_closes_its_streams_and_can_start_again_on_its_port() {
    let backend = Backend::start().await;
    let port = backend.port();
    let (response, _conn) = messages(&backend, "acc", true, &[("x-test-gap-ms", "200")]).await;
    let mut body = response.into_body();
    assert_eq!(
        read_events(&mut body, 1, Duration::from_secs(5))
            .await
            .unwrap()
            .len(),
        1
    );
    drop(backend);
    // The stream is cut, not finished.
    let rest = read_events(&mut body, usize::MAX, Duration::from_secs(5)).await;
    assert!(rest.is_err(), "{rest:?}");
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());

    let again = Backend::start_with(cmw_tests::backend::Options {
        port,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(again.port(), port);
    assert_eq!(messages(&again, "acc", false, &[]).await.0.status(), 200);
}

#[tokio::test]
async fn error_with_headers_carries_only_the_given_reset_header() {
    let backend = Backend::start().await;
    let reset = cmw_tests::backend::rfc3339(std::time::SystemTime::now() + Duration::from_secs(5));
    backend.script(
        "acc",
        Behaviour::error_with_headers(429, &[("anthropic-ratelimit-tokens-reset", &reset)]),
        Times::Once,
    );
    let (response, _conn) = messages(&backend, "acc", false, &[]).await;
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "anthropic-ratelimit-tokens-reset"), reset);
    assert!(response.headers().get("retry-after").is_none());
    assert_eq!(
        body_json(response).await["error"]["type"],
        "rate_limit_error"
    );
}
