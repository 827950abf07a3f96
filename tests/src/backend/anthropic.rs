//! The Anthropic Messages API shapes the stand-in answers with: a message as JSON, the same
//! message as an SSE stream, and error bodies.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Value, json};

/// The model named in answers when the request names none.
pub const DEFAULT_MODEL: &str = "claude-stand-in";

/// What one answer says: which account served it, and how it is padded and split.
#[derive(Debug, Clone)]
pub struct Answer {
    pub message_id: String,
    pub model: String,
    /// The `x-api-key` the request carried, or `none`.
    pub account: String,
    /// Number of `content_block_delta` events of a stream.
    pub deltas: usize,
    /// Extra bytes of text (`x-test-body-bytes`), spread over the deltas.
    pub padding: usize,
    /// Prompt-cache figures of the usage: what this account had cached of
    /// the conversation, and what it cached now (see the stand-in's prompt cache).
    pub cache_read: u64,
    pub cache_creation: u64,
}

impl Answer {
    /// The first part of the answer text: `served by account <key>`.
    pub fn served_by(&self) -> String {
        format!("served by account {}", self.account)
    }

    /// The text of delta `i` (of [`Answer::deltas`]); the deltas joined are [`Answer::text`].
    pub fn delta_text(&self, i: usize) -> String {
        let deltas = self.deltas.max(1);
        let pad = self.padding / deltas + usize::from(i < self.padding % deltas);
        let head = if i == 0 {
            self.served_by()
        } else {
            format!(" {i}")
        };
        head + &"x".repeat(pad)
    }

    /// The whole answer text.
    pub fn text(&self) -> String {
        (0..self.deltas.max(1))
            .map(|i| self.delta_text(i))
            .collect()
    }

    /// The non-streaming answer: a `message` object.
    pub fn message_json(&self) -> Value {
        json!({
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [{"type": "text", "text": self.text()}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": self.deltas.max(1),
                      "cache_read_input_tokens": self.cache_read,
                      "cache_creation_input_tokens": self.cache_creation}
        })
    }

    /// The streaming answer, one SSE frame per item: `message_start`, `content_block_start`,
    /// the deltas, `content_block_stop`, `message_delta`, `message_stop` (Anthropic's order).
    pub fn sse_frames(&self) -> Vec<Bytes> {
        let mut frames = Vec::with_capacity(self.deltas + 5);
        frames.push(sse_frame(
            "message_start",
            &json!({
                "type": "message_start",
                "message": {
                    "id": self.message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": {"input_tokens": 12, "output_tokens": 1,
                              "cache_read_input_tokens": self.cache_read,
                              "cache_creation_input_tokens": self.cache_creation}
                }
            }),
        ));
        frames.push(sse_frame(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ));
        for i in 0..self.deltas {
            frames.push(sse_frame(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": self.delta_text(i)}}),
            ));
        }
        frames.push(sse_frame(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ));
        frames.push(sse_frame(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                    "usage": {"output_tokens": self.deltas.max(1)}}),
        ));
        frames.push(sse_frame("message_stop", &json!({"type": "message_stop"})));
        frames
    }
}

/// `event: <event>\ndata: <json>\n\n`.
pub fn sse_frame(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// Anthropic's error body: `{"type":"error","error":{"type":<t>,"message":<m>}}`.
pub fn error_json(error_type: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type, "message": message}})
}

/// The `event: error` frame a relay sends inside a 200 stream.
pub fn sse_error_frame(error_type: &str) -> Bytes {
    sse_frame(
        "error",
        &error_json(error_type, &format!("stand-in {error_type}")),
    )
}

/// The fork's `event: error` frame for an error status from Anthropic
/// (`claudeRelayService.js`, streaming path).
pub fn relay_stream_error_frame(status: u16, details: &str) -> Bytes {
    sse_frame(
        "error",
        &json!({"error": "Claude API error", "status": status, "details": details,
                "timestamp": rfc3339(SystemTime::now())}),
    )
}

/// The fork's per-IP limiter's 429 body (`middleware/auth.js`, rate-limiter-flexible).
pub fn relay_ip_limit_json(retry_after_secs: u64) -> Value {
    json!({"error": "Too Many Requests",
           "message": "Too many requests from this IP, please try again later.",
           "retryAfter": retry_after_secs})
}

/// The fork's catch-all 404 (`app.js`), e.g. for `/v1/messages`, a route it lacks.
pub fn relay_not_found_json(path: &str) -> Value {
    json!({"error": "Not Found", "message": format!("Route {path} not found"),
           "timestamp": rfc3339(SystemTime::now())})
}

/// Anthropic's error type for an HTTP status.
pub fn error_type_for(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// A time as RFC 3339 in UTC with whole seconds (`2026-11-26T04:00:00Z`), the format of
/// Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset`.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_of_known_instants() {
        use std::time::Duration;
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2030-01-01T01:00:00Z, the fixture's a8 rate limit end.
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_893_459_600)),
            "2030-01-01T01:00:00Z"
        );
        // A leap day.
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_709_210_096)),
            "2024-02-29T12:34:56Z"
        );
    }

    use super::*;

    fn answer(deltas: usize, padding: usize) -> Answer {
        Answer {
            message_id: "msg_1".into(),
            model: DEFAULT_MODEL.into(),
            account: "acc".into(),
            deltas,
            padding,
            cache_read: 0,
            cache_creation: 0,
        }
    }

    #[test]
    fn text_names_the_account_and_carries_the_padding() {
        let a = answer(3, 10);
        assert!(a.text().starts_with("served by account acc"));
        assert_eq!(a.text().len(), "served by account acc 1 2".len() + 10);
    }

    #[test]
    fn stream_has_anthropic_order() {
        let frames = answer(2, 0).sse_frames();
        let events: Vec<String> = frames
            .iter()
            .map(|f| {
                String::from_utf8_lossy(f)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(
            events,
            [
                "event: message_start",
                "event: content_block_start",
                "event: content_block_delta",
                "event: content_block_delta",
                "event: content_block_stop",
                "event: message_delta",
                "event: message_stop"
            ]
        );
    }
}
