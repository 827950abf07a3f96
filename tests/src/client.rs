//! A test client for the proxy: Messages API requests over real sockets, and
//! SSE reading that keeps the arrival time of every chunk.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

/// A client with no connection reuse surprises: one request, one answer.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build the test HTTP client")
}

/// A small Messages API body.
pub fn messages_body(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": "hello"}],
    })
}

/// `POST {base}/v1/messages` with these extra headers.
pub async fn post_messages(
    base: &str,
    stream: bool,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = http()
        .post(format!("{base}/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&messages_body(stream));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("send the request to the proxy")
}

/// A response body read chunk by chunk, with when each chunk arrived.
pub struct TimedBody {
    pub started: Instant,
    pub chunks: Vec<(Duration, bytes::Bytes)>,
    /// The error that ended the body early, if any.
    pub error: Option<String>,
}

impl TimedBody {
    pub fn text(&self) -> String {
        self.chunks
            .iter()
            .map(|(_, c)| String::from_utf8_lossy(c).into_owned())
            .collect()
    }

    /// Arrival time of the first chunk that contains `needle`.
    pub fn arrival_of(&self, needle: &str) -> Option<Duration> {
        let mut seen = String::new();
        for (at, chunk) in &self.chunks {
            seen.push_str(&String::from_utf8_lossy(chunk));
            if seen.contains(needle) {
                return Some(*at);
            }
        }
        None
    }
}

pub async fn read_timed(response: reqwest::Response) -> TimedBody {
    let started = Instant::now();
    let mut chunks = Vec::new();
    let mut error = None;
    let mut stream = response.bytes_stream();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => chunks.push((started.elapsed(), chunk)),
            Err(e) => {
                error = Some(format!("{e:?}"));
                break;
            }
        }
    }
    TimedBody {
        started,
        chunks,
        error,
    }
}

/// SSE event names in order (`event: X` lines).
pub fn sse_events(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("event:"))
        .map(|e| e.trim().to_string())
        .collect()
}

/// One Messages request: the status, and the body read to its end or its
/// error.
pub async fn post_and_read(base: &str, stream: bool) -> (u16, TimedBody) {
    let response = post_messages(base, stream, &[]).await;
    let status = response.status().as_u16();
    (status, read_timed(response).await)
}
