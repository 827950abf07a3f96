//! The proxy's HTTP/1.1 server as a client writing raw bytes on a real TCP
//! socket sees it: keep-alive, pipelining, chunked request bodies,
//! `Expect: 100-continue`, HEAD, HTTP/1.0, `Connection: close`, malformed
//! heads, bodies over the limit or cut short, absolute-form targets, and a
//! client that leaves before its answer. Real binary, real redis-server,
//! stand-in relay.
//!
//! Only what any correct HTTP/1.1 server must do (RFC 9112) is asserted: not
//! the body of an error answer, header order or case, nor whether the status
//! line says `HTTP/1.0` or `HTTP/1.1`. Each test prints what it tried and what
//! it observed.

use std::time::{Duration, Instant};

use cmw_tests::backend::{Behaviour, Times};
use cmw_tests::client::messages_body;
use cmw_tests::stack::{CLIENT_KEY, Stack, read_until_closed};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any one answer may take to arrive.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the proxy forwards `/v1/messages` (the default `TARGET_V1_PATH`
/// is `/api/v1`).
const RELAY_MESSAGES_PATH: &str = "/api/v1/messages";

/// A stack whose proxy requires [`CLIENT_KEY`], on one serving thread (the
/// current-thread runtime, as in a pod limited to one CPU): the server's
/// reads, writes and the watch for a client leaving share it.
async fn stack_with_auth(extra: &[(&str, &str)]) -> Stack {
    let mut env = vec![
        ("MIDDLEWARE_AUTH_ENABLED", "true"),
        ("MIDDLEWARE_API_KEYS", CLIENT_KEY),
        ("WORKER_THREADS", "1"),
    ];
    env.extend_from_slice(extra);
    Stack::start(&env).await
}

/// A non-stream Messages body, as the bytes sent.
fn json_body() -> String {
    messages_body(false).to_string()
}

/// `POST /v1/messages` with [`CLIENT_KEY`], a Content-Length body and these
/// extra header lines (each ending in `\r\n`).
fn post_messages(body: &str, extra: &str) -> String {
    format!(
        "POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nx-api-key: {CLIENT_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

/// The status code of an answer read as text (`0` when there is none).
fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// One answer as read off the wire.
#[derive(Debug)]
struct Answer {
    /// `HTTP/1.1 200 OK`.
    status_line: String,
    status: u16,
    headers: Vec<(String, String)>,
    /// The body, de-chunked when it came chunked.
    body: Vec<u8>,
    /// Whether the body was chunked.
    chunked: bool,
}

impl Answer {
    /// A header's value, its name compared case-insensitively.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the `Connection` header lists this option.
    fn connection_has(&self, option: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(','))
            .any(|o| o.trim().eq_ignore_ascii_case(option))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `200 (content-length 57) {"status":...}`, for the printed lines.
    fn summary(&self) -> String {
        let framing = match (self.chunked, self.header("content-length")) {
            (true, _) => "chunked".to_string(),
            (false, Some(len)) => format!("content-length {len}"),
            (false, None) => "no length".to_string(),
        };
        let text = self.text();
        let text: String = text.chars().take(80).collect();
        format!("{:?} ({framing}) {text:?}", self.status_line)
    }
}

/// How the server ended (or did not end) a wait for the connection to close.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// EOF or a reset, with nothing more read.
    Closed,
    /// Bytes arrived instead.
    Bytes(String),
    /// Still open, silent.
    Open,
}

/// A client connection that reads answers one at a time, by their framing,
/// so that the connection can be used again after each.
struct Conn {
    stream: TcpStream,
    /// Read but not yet consumed.
    buf: Vec<u8>,
}

impl Conn {
    async fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).await.unwrap();
    }

    /// Reads more into `buf`; `false` at EOF. Panics after `deadline`.
    async fn fill(&mut self, deadline: Instant, what: &str) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(Err(e)) => panic!(
                "{what}: read failed ({e}) after {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Err(_) => panic!(
                "{what}: nothing more within {ANSWER_TIMEOUT:?}; so far {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Takes one `\r\n`-ended line off the buffer, reading as needed.
    async fn line(&mut self, deadline: Instant, what: &str) -> String {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return line;
            }
            assert!(
                self.fill(deadline, what).await,
                "{what}: closed in the middle of a line: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Takes exactly `n` bytes off the buffer, reading as needed.
    async fn exactly(&mut self, n: usize, deadline: Instant, what: &str) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(
                self.fill(deadline, what).await,
                "{what}: closed after {} of {n} body bytes",
                self.buf.len()
            );
        }
        self.buf.drain(..n).collect()
    }

    /// Reads one answer head (status line and headers), interim ones too.
    async fn read_head(&mut self) -> Answer {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        let what = "an answer head";
        let status_line = self.line(deadline, what).await;
        assert!(
            status_line.starts_with("HTTP/1.1 ") || status_line.starts_with("HTTP/1.0 "),
            "not a status line: {status_line:?}"
        );
        let status = status_of(&status_line);
        let mut headers = Vec::new();
        loop {
            let line = self.line(deadline, what).await;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("a header line without a colon: {line:?}"));
            headers.push((name.to_string(), value.trim().to_string()));
        }
        Answer {
            status_line,
            status,
            headers,
            body: Vec::new(),
            chunked: false,
        }
    }

    /// Reads one whole answer by its framing (RFC 9112 §6.3): none for an
    /// answer to HEAD, 1xx, 204 and 304; chunked; Content-Length; else until
    /// the server closes.
    async fn read_answer(&mut self, to_head: bool) -> Answer {
        let mut answer = self.read_head().await;
        self.read_body(&mut answer, to_head).await;
        answer
    }

    /// Reads the body of the answer whose head is `answer`, by its framing.
    async fn read_body(&mut self, answer: &mut Answer, to_head: bool) {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        let what = "an answer body";
        if to_head || answer.status < 200 || answer.status == 204 || answer.status == 304 {
            return;
        }
        let chunked = answer
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().trim_end().ends_with("chunked"));
        if chunked {
            answer.chunked = true;
            loop {
                let size_line = self.line(deadline, what).await;
                let size = size_line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size, 16)
                    .unwrap_or_else(|_| panic!("a bad chunk size line: {size_line:?}"));
                if size == 0 {
                    // Trailers, up to the empty line.
                    while !self.line(deadline, what).await.is_empty() {}
                    break;
                }
                let data = self.exactly(size, deadline, what).await;
                answer.body.extend_from_slice(&data);
                let end = self.line(deadline, what).await;
                assert!(end.is_empty(), "chunk data not followed by CRLF: {end:?}");
            }
        } else if let Some(len) = answer.header("content-length") {
            let len: usize = len.parse().expect("a numeric content-length");
            answer.body = self.exactly(len, deadline, what).await;
        } else {
            while self.fill(deadline, what).await {}
            answer.body = std::mem::take(&mut self.buf);
        }
    }

    /// Waits up to `within` for the server to close: whether it did, or sent
    /// more bytes, or neither.
    async fn end_within(&mut self, within: Duration) -> End {
        if !self.buf.is_empty() {
            return End::Bytes(String::from_utf8_lossy(&self.buf).into_owned());
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(within, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => End::Closed,
            Ok(Ok(n)) => End::Bytes(String::from_utf8_lossy(&chunk[..n]).into_owned()),
            Err(_) => End::Open,
        }
    }
}

/// Asserts that the stand-in got exactly one request, the proxied
/// `POST /v1/messages` with this body, byte for byte.
async fn assert_backend_got_one(stack: &Stack, body: &str) {
    let seen = stack
        .backend
        .wait_for_requests(1, Duration::from_secs(2))
        .await;
    assert_eq!(seen.len(), 1, "backend requests: {seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, RELAY_MESSAGES_PATH);
    assert_eq!(
        String::from_utf8_lossy(&seen[0].body),
        body,
        "the backend got another body"
    );
}

/// Asserts that nothing reached the stand-in (after `settle`, for requests
/// that got no answer to wait for).
async fn assert_backend_got_nothing(stack: &Stack, settle: Duration, case: &str) {
    tokio::time::sleep(settle).await;
    let seen = stack.backend.requests();
    assert!(
        seen.is_empty(),
        "{case}: {} request(s) reached the backend: {:?}",
        seen.len(),
        seen.iter()
            .map(|r| (
                r.path.clone(),
                String::from_utf8_lossy(&r.body).into_owned()
            ))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_pipelining_and_connection_close() {
    let stack = stack_with_auth(&[]).await;
    let port = stack.proxy.port();
    let body = json_body();

    // Keep-alive: requests one after the other on one connection.
    stack.backend.reset_records();
    let mut conn = Conn::open(port).await;
    conn.send("GET /health HTTP/1.1\r\nHost: proxy\r\n\r\n")
        .await;
    let health = conn.read_answer(false).await;
    conn.send(post_messages(&body, "")).await;
    let message = conn.read_answer(false).await;
    let stream_body = messages_body(true).to_string();
    conn.send(post_messages(&stream_body, "x-test-events: 3\r\n"))
        .await;
    let stream = conn.read_answer(false).await;
    conn.send("GET /health HTTP/1.1\r\nHost: proxy\r\n\r\n")
        .await;
    let after_stream = conn.read_answer(false).await;
    println!(
        "tried: GET /health, POST /v1/messages, a streamed POST, GET /health on one connection; \
         observed: {} / {} / {} / {}",
        health.summary(),
        message.summary(),
        stream.summary(),
        after_stream.summary()
    );
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(message.status, 200, "{}", message.text());
    assert_eq!(message.json()["type"], "message", "{}", message.text());
    assert_eq!(stream.status, 200);
    assert!(
        stream
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{:?}",
        stream.headers
    );
    let stream_text = stream.text();
    assert!(
        stream_text.contains("event: message_start"),
        "{stream_text}"
    );
    assert!(stream_text.contains("event: message_stop"), "{stream_text}");
    assert_eq!(after_stream.status, 200);
    assert_eq!(after_stream.json()["status"], "ok");
    assert_eq!(
        conn.end_within(Duration::from_millis(200)).await,
        End::Open,
        "a keep-alive connection closed or sent more after its answers"
    );
    let seen = stack
        .backend
        .wait_for_requests(2, Duration::from_secs(2))
        .await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(String::from_utf8_lossy(&seen[0].body), body);
    assert_eq!(String::from_utf8_lossy(&seen[1].body), stream_body);
    drop(conn);

    // Pipelining: three requests in one write.
    stack.backend.reset_records();
    let mut conn = Conn::open(port).await;
    let pipelined = format!(
        "GET /health HTTP/1.1\r\nHost: proxy\r\n\r\n{}GET /ready HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n",
        post_messages(&body, "")
    );
    conn.send(pipelined).await;
    let first = conn.read_answer(false).await;
    let second = conn.read_answer(false).await;
    let third = conn.read_answer(false).await;
    let end = conn.end_within(Duration::from_secs(5)).await;
    println!(
        "tried: GET /health, POST /v1/messages, GET /ready with Connection: close in one write; \
         observed: {} / {} / {}, then {end:?}",
        first.summary(),
        second.summary(),
        third.summary()
    );
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["status"], "ok", "first answer out of order");
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(
        second.json()["type"],
        "message",
        "second answer out of order"
    );
    assert_eq!(third.status, 200);
    assert_eq!(third.json()["status"], "ready", "third answer out of order");
    assert!(third.connection_has("close"), "{:?}", third.headers);
    assert_eq!(end, End::Closed);
    assert_backend_got_one(&stack, &body).await;

    // Connection: close on an HTTP/1.1 request, answered by the proxy itself
    // and by the relay.
    for (case, request) in [
        (
            "GET /health",
            "GET /health HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n".to_string(),
        ),
        (
            "POST /v1/messages",
            post_messages(&body, "Connection: close\r\n"),
        ),
    ] {
        stack.backend.reset_records();
        let mut conn = Conn::open(port).await;
        conn.send(request).await;
        let answer = conn.read_answer(false).await;
        let end = conn.end_within(Duration::from_secs(5)).await;
        println!(
            "tried: {case} with Connection: close; observed: {}, connection header {:?}, then {end:?}",
            answer.summary(),
            answer.header("connection")
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(answer.connection_has("close"), "{:?}", answer.headers);
        assert_eq!(end, End::Closed, "{case}: the server kept the connection");
    }
    assert_backend_got_one(&stack, &body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_chunked_expect_continue_and_limits() {
    let stack = stack_with_auth(&[("MAX_BODY_BYTES", "16384")]).await;
    let port = stack.proxy.port();
    let body = json_body();

    // A chunked body over three chunks, one with an extension, and trailers.
    stack.backend.reset_records();
    let (a, rest) = body.split_at(10);
    let (b, c) = rest.split_at(rest.len() / 2);
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nx-api-key: {CLIENT_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{a}\r\n{:x};x=y\r\n{b}\r\n{:X}\r\n{c}\r\n0\r\nX-Trailer: t\r\n\r\n",
        a.len(),
        b.len(),
        c.len()
    );
    let mut conn = Conn::open(port).await;
    conn.send(&request).await;
    let answer = conn.read_answer(false).await;
    conn.send("GET /health HTTP/1.1\r\nHost: proxy\r\n\r\n")
        .await;
    let next = conn.read_answer(false).await;
    println!(
        "tried: a chunked body in 3 chunks (an extension, a trailer); observed: {}, then {}",
        answer.summary(),
        next.summary()
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["type"], "message");
    assert_eq!(next.status, 200, "the connection was not usable after it");
    assert_backend_got_one(&stack, &body).await;
    drop(conn);

    // A malformed chunk size.
    stack.backend.reset_records();
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nx-api-key: {CLIENT_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
         zz\r\n{body}\r\n0\r\n\r\n"
    );
    let (answer, closed) = read_until_closed(port, request.as_bytes()).await;
    println!(
        "tried: a chunk size `zz`; observed: {:?}, closed after {closed:?}",
        answer.lines().next()
    );
    assert_eq!(status_of(&answer), 400, "{answer}");
    assert!(
        closed.is_some(),
        "the connection stayed open after a framing error"
    );
    assert_backend_got_nothing(&stack, Duration::ZERO, "bad chunk size").await;

    // Expect: 100-continue, authenticated: 100, then the body, then 200.
    stack.backend.reset_records();
    let mut conn = Conn::open(port).await;
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nx-api-key: {CLIENT_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    conn.send(&head).await;
    let started = Instant::now();
    let interim = conn.read_head().await;
    let interim_after = started.elapsed();
    conn.send(&body).await;
    let answer = conn.read_answer(false).await;
    println!(
        "tried: Expect: 100-continue with a valid key, head only; observed: {:?} after \
         {interim_after:?}, then after the body {}",
        interim.status_line,
        answer.summary()
    );
    assert_eq!(interim.status, 100, "{:?}", interim.status_line);
    assert!(interim.status_line.starts_with("HTTP/1.1 100"));
    assert!(interim_after < Duration::from_secs(5));
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["type"], "message");
    assert_backend_got_one(&stack, &body).await;
    drop(conn);

    // Expect: 100-continue with a wrong key: 401, with or without a 100 first.
    stack.backend.reset_records();
    let mut conn = Conn::open(port).await;
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nx-api-key: cr_wrong_key_00000001\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    conn.send(&head).await;
    let mut answer = conn.read_head().await;
    let sent_100 = answer.status == 100;
    if sent_100 {
        conn.send(&body).await;
        answer = conn.read_answer(false).await;
    } else {
        conn.read_body(&mut answer, false).await;
    }
    let end = conn.end_within(Duration::from_millis(500)).await;
    println!(
        "tried: Expect: 100-continue with a wrong key, head only; observed: 100 sent: {sent_100}, \
         then {}, then {end:?}",
        answer.summary()
    );
    assert_eq!(answer.status, 401, "{}", answer.text());
    assert_backend_got_nothing(&stack, Duration::ZERO, "wrong key").await;
    drop(conn);

    // A declared Content-Length above MAX_BODY_BYTES, body not (all) sent.
    stack.backend.reset_records();
    let mut conn = Conn::open(port).await;
    conn.send(format!(
        "POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nx-api-key: {CLIENT_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"model\":"
    ))
    .await;
    let answer = conn.read_answer(false).await;
    println!(
        "tried: Content-Length 100000 over MAX_BODY_BYTES=16384; observed: {}",
        answer.summary()
    );
    assert_eq!(answer.status, 413, "{}", answer.text());
    assert_backend_got_nothing(&stack, Duration::ZERO, "declared too large").await;
    drop(conn);

    // A chunked body that grows past MAX_BODY_BYTES.
    stack.backend.reset_records();
    let big = "a".repeat(20_000);
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nx-api-key: {CLIENT_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    let mut conn = Conn::open(port).await;
    conn.send(&request).await;
    let answer = conn.read_answer(false).await;
    println!(
        "tried: a 20000-byte chunked body over MAX_BODY_BYTES=16384; observed: {}",
        answer.summary()
    );
    assert_eq!(answer.status, 413, "{}", answer.text());
    assert_backend_got_nothing(&stack, Duration::ZERO, "chunked too large").await;
    drop(conn);

    // A body shorter than its Content-Length, then a half-close.
    stack.backend.reset_records();
    let short = post_messages(&body, "").replace(
        &format!("Content-Length: {}", body.len()),
        &format!("Content-Length: {}", body.len() + 50),
    );
    let mut conn = Conn::open(port).await;
    conn.send(&short).await;
    conn.stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(ANSWER_TIMEOUT, conn.stream.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest).into_owned();
    println!(
        "tried: a body 50 bytes short of its Content-Length, then a half-close; observed: {:?}, \
         closed: {}",
        rest.lines().next(),
        read.is_ok()
    );
    assert!(
        read.is_ok(),
        "the server kept a half-closed connection open"
    );
    assert!(
        rest.is_empty() || (400..500).contains(&status_of(&rest)),
        "a cut body was answered with {rest:?}"
    );
    assert_backend_got_nothing(&stack, Duration::from_millis(500), "cut body, half-close").await;

    // The same, then a full close.
    stack.backend.reset_records();
    let mut conn = Conn::open(port).await;
    conn.send(&short).await;
    drop(conn);
    println!("tried: a body 50 bytes short of its Content-Length, then a close");
    assert_backend_got_nothing(&stack, Duration::from_secs(1), "cut body, close").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_http10_and_absolute_form() {
    let stack = stack_with_auth(&[]).await;
    let port = stack.proxy.port();
    let body = json_body();

    // HEAD: headers, no body; the next answer on the connection is clean.
    let mut conn = Conn::open(port).await;
    conn.send("HEAD /health HTTP/1.1\r\nHost: proxy\r\n\r\n")
        .await;
    let head = conn.read_answer(true).await;
    let stray = conn.end_within(Duration::from_millis(300)).await;
    conn.send("GET /health HTTP/1.1\r\nHost: proxy\r\n\r\n")
        .await;
    let get = conn.read_answer(false).await;
    println!(
        "tried: HEAD /health, then GET /health on the same connection; observed: {:?} \
         (content-length {:?}), then {stray:?}, then {}",
        head.status_line,
        head.header("content-length"),
        get.summary()
    );
    assert_eq!(head.status, 200);
    assert_eq!(stray, End::Open, "bytes after the answer to HEAD");
    assert_eq!(get.status, 200);
    assert_eq!(get.json()["status"], "ok");
    if let (Some(head_len), Some(get_len)) =
        (head.header("content-length"), get.header("content-length"))
    {
        assert_eq!(head_len, get_len, "HEAD announced another length than GET");
    }
    drop(conn);

    // HTTP/1.0 without keep-alive: answered, then closed.
    let mut conn = Conn::open(port).await;
    conn.send("GET /health HTTP/1.0\r\nHost: proxy\r\n\r\n")
        .await;
    let answer = conn.read_answer(false).await;
    let end = conn.end_within(Duration::from_secs(5)).await;
    println!(
        "tried: GET /health HTTP/1.0; observed: {}, then {end:?}",
        answer.summary()
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["status"], "ok");
    assert!(!answer.chunked, "chunked sent to HTTP/1.0");
    assert_eq!(end, End::Closed, "an HTTP/1.0 connection was kept");
    drop(conn);

    // HTTP/1.0 with Connection: keep-alive and a length-framed answer.
    let mut conn = Conn::open(port).await;
    conn.send("GET /health HTTP/1.0\r\nHost: proxy\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let first = conn.read_answer(false).await;
    conn.send("GET /ready HTTP/1.0\r\nHost: proxy\r\n\r\n")
        .await;
    let second = conn.read_answer(false).await;
    let end = conn.end_within(Duration::from_secs(5)).await;
    println!(
        "tried: GET /health HTTP/1.0 with Connection: keep-alive, then GET /ready HTTP/1.0; \
         observed: {} (connection {:?}), then {}, then {end:?}",
        first.summary(),
        first.header("connection"),
        second.summary()
    );
    assert_eq!(first.status, 200);
    assert!(
        first.header("content-length").is_some(),
        "{:?}",
        first.headers
    );
    assert!(first.connection_has("keep-alive"), "{:?}", first.headers);
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["status"], "ready");
    assert_eq!(
        end,
        End::Closed,
        "an HTTP/1.0 connection without keep-alive was kept"
    );
    drop(conn);

    // Absolute-form target: routed by its path.
    stack.backend.reset_records();
    let mut conn = Conn::open(port).await;
    let request = post_messages(&body, "").replacen(
        "POST /v1/messages ",
        "POST http://example/v1/messages ",
        1,
    );
    conn.send(&request).await;
    let answer = conn.read_answer(false).await;
    println!(
        "tried: POST http://example/v1/messages (absolute form); observed: {}",
        answer.summary()
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["type"], "message");
    assert_backend_got_one(&stack, &body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_heads_get_400_and_a_close() {
    let stack = stack_with_auth(&[]).await;
    let port = stack.proxy.port();
    let body = json_body();
    let cases: [(&str, String, &[u16]); 5] = [
        (
            "a garbage request line",
            "hello\r\n\r\n".to_string(),
            &[400],
        ),
        (
            "a request line with no version",
            "GET /health\r\nHost: proxy\r\n\r\n".to_string(),
            &[400],
        ),
        (
            "a header line without a colon",
            "GET /health HTTP/1.1\r\nHost: proxy\r\nno colon here\r\n\r\n".to_string(),
            &[400],
        ),
        (
            "Content-Length: abc",
            post_messages(&body, "").replace(
                &format!("Content-Length: {}", body.len()),
                "Content-Length: abc",
            ),
            &[400],
        ),
        (
            "Transfer-Encoding: gzip (not chunked last)",
            format!(
                "POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nx-api-key: {CLIENT_KEY}\r\n\
                 Content-Type: application/json\r\nTransfer-Encoding: gzip\r\n\r\n{body}"
            ),
            &[400, 501],
        ),
    ];
    for (case, request, expected) in cases {
        stack.backend.reset_records();
        let (answer, closed) = read_until_closed(port, request.as_bytes()).await;
        println!(
            "tried: {case}; observed: {:?}, closed after {closed:?}",
            answer.lines().next()
        );
        assert!(
            expected.contains(&status_of(&answer)),
            "{case}: expected {expected:?}, got {answer:?}"
        );
        assert_eq!(
            answer.matches("HTTP/1.").count(),
            1,
            "{case}: more than one answer: {answer:?}"
        );
        assert!(closed.is_some(), "{case}: the connection stayed open");
        assert_backend_got_nothing(&stack, Duration::ZERO, case).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_before_its_answer_head_cancels_the_relay_request() {
    let stack = stack_with_auth(&[]).await;
    let port = stack.proxy.port();

    // The relay holds its answer head for 2 s; the client leaves at once.
    let delay = Duration::from_secs(2);
    stack.backend.reset_records();
    stack
        .backend
        .script_any(Behaviour::SlowHeaders { delay }, Times::Once);
    let mut conn = Conn::open(port).await;
    conn.send(post_messages(&json_body(), "")).await;
    let seen = stack
        .backend
        .wait_for_requests(1, Duration::from_secs(5))
        .await;
    assert_eq!(seen.len(), 1, "the request never reached the backend");
    let left = Instant::now();
    drop(conn);
    // Had the relay request lived on, the stand-in would have answered it
    // (and recorded its status) once the delay was over.
    tokio::time::sleep(delay + Duration::from_secs(1)).await;
    let seen = stack.backend.requests();
    println!(
        "tried: closed the connection {:?} after the request reached a relay that holds its \
         head for {delay:?}; observed: relay answer recorded {:?} with status {}",
        left.saturating_duration_since(seen[0].started),
        seen[0]
            .completed
            .map(|c| c.saturating_duration_since(seen[0].started)),
        seen[0].status
    );
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].completed.is_none() && seen[0].status == 0,
        "the relay request outlived its client by {delay:?}"
    );

    // A stream whose relay sends its head but no event: the proxy holds the
    // client's answer head back while it waits for the first event.
    stack.backend.reset_records();
    stack
        .backend
        .script_any(Behaviour::StallAfter { events: 0 }, Times::Once);
    let mut conn = Conn::open(port).await;
    conn.send(post_messages(&messages_body(true).to_string(), ""))
        .await;
    let seen = stack
        .backend
        .wait_for_requests(1, Duration::from_secs(5))
        .await;
    assert_eq!(seen.len(), 1, "the request never reached the backend");
    let before = conn.end_within(Duration::from_millis(200)).await;
    let left = Instant::now();
    drop(conn);
    let cancelled = stack.backend.wait_for_cancel(Duration::from_secs(5)).await;
    let after = cancelled
        .as_ref()
        .and_then(|r| r.client_gone)
        .map(|t| t.saturating_duration_since(left));
    println!(
        "tried: closed the connection while the proxy waited for a stream's first event \
         (client had {before:?}); observed: relay saw the cancel after {after:?}"
    );
    assert_eq!(
        before,
        End::Open,
        "the client got an answer before the first event"
    );
    assert!(
        after.is_some_and(|d| d < Duration::from_secs(2)),
        "the relay stream outlived its client: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relays_headers_reach_http1_and_http2_clients_without_hop_by_hop_ones() {
    let stack = stack_with_auth(&[]).await;
    let base = stack.url();
    for http2 in [false, true] {
        let builder = reqwest::Client::builder();
        let client = match http2 {
            true => builder.http2_prior_knowledge(),
            false => builder.http1_only(),
        }
        .build()
        .unwrap();
        for stream in [false, true] {
            let response = client
                .post(format!("{base}/v1/messages"))
                .header("x-api-key", CLIENT_KEY)
                .header("x-test-events", "3")
                .json(&messages_body(stream))
                .send()
                .await
                .unwrap();
            let version = response.version();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap();
            println!(
                "tried: {version:?}, stream {stream}; observed: request-id {:?}, content-type {:?}, {} body bytes",
                headers.get("request-id"),
                headers.get("content-type"),
                text.len()
            );
            let expected = match http2 {
                true => reqwest::Version::HTTP_2,
                false => reqwest::Version::HTTP_11,
            };
            assert_eq!(version, expected);
            assert!(
                headers.get("request-id").is_some(),
                "the relay's request-id: {headers:?}"
            );
            assert!(headers.get("x-stand-in-account").is_some(), "{headers:?}");
            let content_type = headers["content-type"].to_str().unwrap();
            match stream {
                true => {
                    assert!(content_type.starts_with("text/event-stream"));
                    assert!(text.contains("message_stop"), "{text}");
                }
                false => {
                    assert_eq!(content_type, "application/json");
                    assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");
                }
            }
            assert!(headers.get("keep-alive").is_none(), "{headers:?}");
            assert_eq!(
                headers.get_all("date").iter().count(),
                1,
                "one date: {headers:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_is_read_only_for_a_proxied_route_and_a_valid_key() {
    let stack = stack_with_auth(&[]).await;
    let port = stack.proxy.port();
    let cases = [
        (
            "a wrong key",
            "x-api-key: cr_wrong_key_00000000001\r\n",
            "/v1/messages",
            401,
        ),
        ("no key", "", "/v1/messages", 401),
        ("a route that is not proxied", "", "/v2/elsewhere", 404),
    ];
    for (case, key_line, path, expected) in cases {
        // The head alone: a server that waited for the 1 MB body first would
        // answer nothing before the client gives up.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: proxy\r\n{key_line}Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
        );
        let (answer, closed) = read_until_closed(port, head.as_bytes()).await;
        println!(
            "tried: a 1 MB body announced with {case}, not sent; observed: {:?}, closed after {closed:?}",
            answer.lines().next()
        );
        assert_eq!(status_of(&answer), expected, "{case}: {answer}");
        assert!(closed.is_some(), "{case}: the connection stayed open");
    }
    assert_backend_got_nothing(&stack, Duration::ZERO, "large unread bodies").await;

    // The same size, with the key, is read whole and forwarded.
    let mut body = messages_body(false);
    body["messages"][0]["content"] = Value::from("a".repeat(1_000_000));
    let sent = body.to_string();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", stack.url()))
        .header("x-api-key", CLIENT_KEY)
        .header("content-type", "application/json")
        .body(sent.clone())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let seen = stack.backend.last_request().map(|r| r.body.len());
    println!("tried: a 1 MB body with the key; observed: {status}, the relay got {seen:?} bytes");
    assert_eq!(status, 200);
    assert_eq!(seen, Some(sent.len()));
}
