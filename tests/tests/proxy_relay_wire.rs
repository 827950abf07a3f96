//! The proxy's own HTTP/1.1 client to the relay, against a relay that writes
//! its answers by hand on a real loopback socket: an interim answer, bodies
//! delimited by the close, `Connection: close`, chunk extensions and
//! trailers trickled byte by byte, broken heads, a cut body, conflicting
//! lengths, and an idle connection the relay closes. Real binary, real
//! redis-server. Each test asserts what the proxy's client gets, and which
//! relay connection each request came on: reused, or new.

use std::time::Duration;

use cmw_tests::client::{TimedBody, post_and_read, post_messages, read_timed, sse_events};
use cmw_tests::metrics::scrape_sum;
use cmw_tests::proxy::ProxyProcess;
use cmw_tests::raw_relay::{RawRelay, Reply, json_answer, short_sse_events};
use cmw_tests::redis::RedisServer;
use cmw_tests::stack::{assert_anthropic_error, get_json, start_proxy, wait_ready, wait_until};
use serde_json::Value;

/// A JSON message the relay answers with, recognisable in the client's body.
const MESSAGE: &str = r#"{"id":"msg_wire","type":"message","role":"assistant","model":"claude-wire","content":[{"type":"text","text":"over hand-written bytes"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":4}}"#;

/// A proxy in front of a [`RawRelay`], with its Redis.
struct Wire {
    relay: RawRelay,
    proxy: ProxyProcess,
    _redis: RedisServer,
}

impl Wire {
    async fn start() -> Wire {
        let redis = RedisServer::start_with_fixtures();
        let relay = RawRelay::start().await.expect("start the raw relay");
        let proxy = start_proxy(&redis.url(), &relay.url(), &[]);
        wait_ready(&proxy.url()).await;
        Wire {
            relay,
            proxy,
            _redis: redis,
        }
    }

    fn url(&self) -> String {
        self.proxy.url()
    }
}

/// The body as JSON (`Null` when it is not).
fn json_of(body: &TimedBody) -> Value {
    serde_json::from_str(&body.text()).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interim_100_continue_is_passed_over_for_the_final_answer() {
    let wire = Wire::start().await;
    wire.relay.reply(
        Reply::new("HTTP/1.1 100 Continue\r\n\r\n")
            .then_pause(Duration::from_millis(50))
            .then_write(json_answer("", MESSAGE)),
    );
    let (status, body) = post_and_read(&wire.url(), false).await;
    let (next, _) = post_and_read(&wire.url(), false).await;
    let connections = wire.relay.connection_of_each_request();
    println!(
        "tried: 100 Continue, then a 200 JSON answer, then another request; \
         observed: {status} {:?} (error {:?}), then {next}, on relay connections {connections:?}",
        body.text(),
        body.error
    );
    assert_eq!(status, 200);
    assert_eq!(body.error, None);
    assert_eq!(body.text(), MESSAGE);
    assert_eq!(next, 200);
    assert_eq!(
        connections,
        [0, 0],
        "the connection was not reused after an answer with an interim head"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_delimited_by_the_close_arrives_whole_and_the_next_request_dials_anew() {
    let wire = Wire::start().await;
    let (first, rest) = MESSAGE.split_at(MESSAGE.len() / 2);
    wire.relay.reply(
        Reply::new(format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{first}"
        ))
        .then_pause(Duration::from_millis(50))
        .then_write(rest)
        .then_close(),
    );
    let (status, body) = post_and_read(&wire.url(), false).await;
    let (next, _) = post_and_read(&wire.url(), false).await;
    let connections = wire.relay.connection_of_each_request();
    println!(
        "tried: a 200 with neither length nor chunks, ended by the relay's close; \
         observed: {status} {:?} (error {:?}), then {next}, on relay connections {connections:?}",
        body.text(),
        body.error
    );
    assert_eq!(status, 200);
    assert_eq!(body.error, None);
    assert_eq!(body.text(), MESSAGE);
    assert_eq!(next, 200);
    assert_eq!(connections, [0, 1]);
}

/// The relay says `Connection: close` but keeps the socket open and would
/// answer on it: only the proxy's reading of the header keeps it from
/// sending the next request there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_on_a_length_answer_is_honoured() {
    let wire = Wire::start().await;
    wire.relay
        .reply(Reply::new(json_answer("connection: close\r\n", MESSAGE)));
    let (status, body) = post_and_read(&wire.url(), false).await;
    let (next, _) = post_and_read(&wire.url(), false).await;
    let connections = wire.relay.connection_of_each_request();
    println!(
        "tried: a 200 with content-length and `Connection: close` (socket left open); \
         observed: {status} {:?} (error {:?}), then {next}, on relay connections {connections:?}",
        body.text(),
        body.error
    );
    assert_eq!(status, 200);
    assert_eq!(body.error, None);
    assert_eq!(body.text(), MESSAGE);
    assert_eq!(next, 200);
    assert_eq!(
        connections,
        [0, 1],
        "a connection the relay said it closes was used again"
    );
}

/// `events` as a chunked body: one chunk per event, except the delta, split
/// over two; each size in upper-case hex, then white space and extensions
/// (one a quoted string holding a `;`, RFC 9112 §7.1.1); then the last
/// chunk, with an extension, and a trailer section.
fn chunked_with_extensions_and_trailers(events: &[String]) -> String {
    let mut body = String::new();
    for (i, event) in events.iter().enumerate() {
        let pieces = match event.split_once("trickled") {
            Some((before, after)) => vec![format!("{before}trick"), format!("led{after}")],
            None => vec![event.clone()],
        };
        for piece in pieces {
            body.push_str(&format!(
                "{:X} ;seq={i};note=\"a; b\"\r\n{piece}\r\n",
                piece.len()
            ));
        }
    }
    body.push_str("0;last\r\nx-relay-trailer: done\r\nx-relay-checksum: 1234\r\n\r\n");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_stream_trickled_byte_by_byte_arrives_exactly_and_its_connection_is_reused() {
    let wire = Wire::start().await;
    let events = short_sse_events("trickled");
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
         transfer-encoding: chunked\r\ntrailer: x-relay-trailer, x-relay-checksum\r\n\r\n{}",
        chunked_with_extensions_and_trailers(&events)
    );
    let written = answer.len();
    wire.relay
        .reply(Reply::byte_by_byte(answer, Duration::from_millis(1)));
    let (status, body) = post_and_read(&wire.url(), true).await;
    let (next, _) = post_and_read(&wire.url(), false).await;
    let connections = wire.relay.connection_of_each_request();
    let text = body.text();
    println!(
        "tried: a chunked SSE answer with chunk extensions and trailers, {written} bytes written \
         one per TCP segment; observed: {status}, events {:?} in {} chunks (error {:?}), \
         then {next}, on relay connections {connections:?}",
        sse_events(&text),
        body.chunks.len(),
        body.error
    );
    assert_eq!(status, 200);
    assert_eq!(body.error, None);
    assert_eq!(
        text,
        events.concat(),
        "the events were not passed on exactly"
    );
    assert_eq!(next, 200);
    assert_eq!(
        connections,
        [0, 0],
        "the connection was not reused after a cleanly ended chunked answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_answer_heads_get_a_502_and_their_connection_is_dropped() {
    let mut wire = Wire::start().await;
    let base = wire.url();
    let oversized = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-padding: {}\r\n\
         content-length: 2\r\n\r\n{{}}",
        "a".repeat(70 * 1024)
    );
    let cases = [
        (
            "a status that is no number",
            "HTTP/1.1 abc OK\r\ncontent-length: 2\r\n\r\n{}".to_string(),
        ),
        ("a head of 70 KiB", oversized),
        (
            "101 Switching Protocols",
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
                .to_string(),
        ),
    ];
    for (case, answer) in cases {
        let before = wire.relay.requests().len();
        // Left open: the relay would answer a next request on it.
        wire.relay.reply(Reply::new(answer));
        let (status, body) = post_and_read(&base, false).await;
        let (health, _) = get_json(&format!("{base}/health")).await;
        let (next, _) = post_and_read(&base, false).await;
        let connections = wire.relay.connection_of_each_request()[before..].to_vec();
        let error = json_of(&body);
        println!(
            "tried: {case}; observed: {status} {error}, /health {health}, \
             then {next}, on relay connections {connections:?}"
        );
        assert_eq!(status, 502, "{case}: {}", body.text());
        assert_anthropic_error(&error, "api_error");
        assert_eq!(health, 200, "{case}: the proxy stopped answering");
        assert_eq!(next, 200, "{case}");
        assert_eq!(connections.len(), 2, "{case}: {connections:?}");
        assert_ne!(
            connections[0], connections[1],
            "{case}: the connection of a broken head was used again"
        );
    }
    assert!(wire.proxy.is_running(), "{}", wire.proxy.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_short_ends_in_an_error_and_the_stream_is_not_left_counted() {
    let wire = Wire::start().await;
    let base = wire.url();
    let sent = &MESSAGE[..40];
    wire.relay.reply(
        Reply::new(format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{sent}",
            MESSAGE.len()
        ))
        .then_pause(Duration::from_millis(500))
        .then_close(),
    );
    let response = post_messages(&base, false, &[]).await;
    let status = response.status().as_u16();
    let open = scrape_sum(&base, "claude_middleware_inflight_streams", &[]).await;
    let body = read_timed(response).await;
    wait_until(
        "claude_middleware_inflight_streams back to 0",
        Duration::from_secs(3),
        async || scrape_sum(&base, "claude_middleware_inflight_streams", &[]).await == 0.0,
    )
    .await;
    let broken = scrape_sum(
        &base,
        "claude_middleware_requests_total",
        &[("outcome", "stream_error")],
    )
    .await;
    println!(
        "tried: content-length {} but {} bytes, then the relay closed; observed: {status}, \
         {:?} (error {:?}), inflight_streams {open} while open then 0, stream_error {broken}",
        MESSAGE.len(),
        sent.len(),
        body.text(),
        body.error
    );
    assert_eq!(status, 200);
    assert_eq!(open, 1.0, "the open answer was not counted as a stream");
    assert!(
        body.error.is_some(),
        "a cut body must not end cleanly: {:?}",
        body.text()
    );
    assert!(sent.starts_with(&body.text()), "{:?}", body.text());
    assert_eq!(broken, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_content_lengths_get_a_502_and_the_connection_is_dropped() {
    let wire = Wire::start().await;
    // Left open: the relay would answer a next request on it.
    wire.relay.reply(Reply::new(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
         content-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
    ));
    let (status, body) = post_and_read(&wire.url(), false).await;
    let (next, _) = post_and_read(&wire.url(), false).await;
    let connections = wire.relay.connection_of_each_request();
    let error = json_of(&body);
    println!(
        "tried: Content-Length 5 and Content-Length 6 in one head; observed: {status} {error}, \
         then {next}, on relay connections {connections:?}"
    );
    assert_eq!(status, 502, "{}", body.text());
    assert_anthropic_error(&error, "api_error");
    assert_eq!(next, 200);
    assert_eq!(
        connections,
        [0, 1],
        "the connection of an ambiguous answer was used again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_the_relay_closed_is_replaced_without_failing_the_request() {
    let wire = Wire::start().await;
    wire.relay.reply(
        Reply::new(json_answer("", MESSAGE)).then_close_when_idle_for(Duration::from_millis(200)),
    );
    let (first, _) = post_and_read(&wire.url(), false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (second, body) = post_and_read(&wire.url(), false).await;
    let connections = wire.relay.connection_of_each_request();
    println!(
        "tried: a kept-alive answer, the relay closing the idle connection after 200 ms, \
         a request 500 ms later; observed: {first}, then {second} {:?} (error {:?}), \
         on relay connections {connections:?}",
        body.text(),
        body.error
    );
    assert_eq!(first, 200);
    assert_eq!(second, 200, "{}", body.text());
    assert_eq!(body.text(), RawRelay::DEFAULT_BODY);
    assert_eq!(connections, [0, 1]);
}
