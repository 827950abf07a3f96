//! Per-account scripts: what the stand-in answers the next requests for an account.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// What the stand-in does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// A normal answer: JSON, or SSE when the request body says `"stream": true`.
    Normal,
    /// Any status with these headers and this body (sent as is, `content-type:
    /// application/json` unless the headers name one).
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// 429 `rate_limit_error` with `anthropic-ratelimit-unified-reset: <epoch secs>`,
    /// `anthropic-ratelimit-unified-status: rejected` and `retry-after: <secs>`, the reset
    /// being `reset_in` from now.
    RateLimited { reset_in: Duration },
    /// 401 `authentication_error`.
    Unauthorized,
    /// 529 `overloaded_error`.
    Overloaded,
    /// This status (500, 502, 503, 504, ...) with an `api_error` body.
    ServerError(u16),
    /// HTTP 200 `text/event-stream` whose first (and only) event is
    /// `event: error` with `{"type":"error","error":{"type":<error_type>,...}}`,
    /// as the relay answers a streaming request that Anthropic refused.
    SseError { error_type: String },
    /// What the fork of claude-relay-service sends a streaming client when
    /// Anthropic answered `status`: HTTP 200 `text/event-stream`, one
    /// `event: error` whose data is
    /// `{"error":"Claude API error","status":<status>,"details":"<body>","timestamp":…}`
    /// (`details` is Anthropic's body as a string; no reset headers survive).
    RelayStreamError { status: u16, details: String },
    /// A normal answer whose SSE events are `gap` apart (overrides `x-test-gap-ms`).
    SlowStream { gap: Duration },
    /// Sends the head and the first `events` SSE events (all events count, `message_start`
    /// included), then nothing, keeping the connection open until the client leaves.
    /// For a JSON request: the head, then half the body if `events > 0`, then nothing.
    StallAfter { events: usize },
    /// Sends the head and the first `events` SSE events, then aborts the connection (the
    /// body ends in an error, so the client sees a truncated body, not a clean end).
    /// For a JSON request: the head, then half the body if `events > 0`, then the abort.
    ResetAfter { events: usize },
    /// Waits `delay` before sending the response head, then answers normally.
    SlowHeaders { delay: Duration },
}

impl Behaviour {
    /// [`Behaviour::RelayStreamError`] wrapping Anthropic's error for `status`.
    pub fn relay_stream_error(status: u16) -> Behaviour {
        let error_type = super::anthropic::error_type_for(status);
        Behaviour::RelayStreamError {
            status,
            details: super::anthropic::error_json(error_type, &format!("stand-in {error_type}"))
                .to_string(),
        }
    }

    /// Anthropic's JSON error for `status` (`rate_limit_error` for 429, `overloaded_error`
    /// for 529, ...) with exactly these headers, e.g. a 429 that carries only
    /// `anthropic-ratelimit-tokens-reset` (see [`crate::backend::rfc3339`]) or only
    /// `retry-after`, to test each source of a reset time on its own.
    pub fn error_with_headers(status: u16, headers: &[(&str, &str)]) -> Behaviour {
        let error_type = super::anthropic::error_type_for(status);
        Behaviour::Status {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: super::anthropic::error_json(error_type, &format!("stand-in {error_type}"))
                .to_string(),
        }
    }
}

/// How many requests a scripted [`Behaviour`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// The next request only.
    Once,
    /// The next `n` requests.
    N(usize),
    /// Every request from now on (until [`crate::backend::Backend::clear_scripts`]).
    Always,
}

#[derive(Debug)]
struct Entry {
    behaviour: Behaviour,
    /// `None` = always.
    remaining: Option<usize>,
}

/// The scripts of every account, plus the wildcard script for any account.
///
/// Each account has a queue: a request takes the behaviour at the front and uses up one of
/// its times; when they are used up the next entry applies. An `Always` entry never ends,
/// so entries queued after it never apply. A request whose account has no entry left uses
/// the wildcard queue the same way, and else [`Behaviour::Normal`].
#[derive(Debug, Default)]
pub(crate) struct Scripts {
    inner: Mutex<ScriptQueues>,
}

#[derive(Debug, Default)]
struct ScriptQueues {
    by_key: HashMap<String, VecDeque<Entry>>,
    any: VecDeque<Entry>,
}

impl Scripts {
    /// Queues `behaviour` for requests with this `x-api-key` (`None` = the wildcard queue).
    pub(crate) fn push(&self, key: Option<&str>, behaviour: Behaviour, times: Times) {
        let remaining = match times {
            Times::Once => Some(1),
            Times::N(0) => return,
            Times::N(n) => Some(n),
            Times::Always => None,
        };
        let entry = Entry {
            behaviour,
            remaining,
        };
        let mut queues = self.lock();
        match key {
            Some(key) => queues
                .by_key
                .entry(key.to_string())
                .or_default()
                .push_back(entry),
            None => queues.any.push_back(entry),
        }
    }

    /// Takes the behaviour for one request with this `x-api-key`.
    pub(crate) fn next_for(&self, key: Option<&str>) -> Behaviour {
        let mut queues = self.lock();
        if let Some(queue) = key.and_then(|k| queues.by_key.get_mut(k))
            && let Some(behaviour) = take(queue)
        {
            return behaviour;
        }
        take(&mut queues.any).unwrap_or(Behaviour::Normal)
    }

    /// Forgets every script.
    pub(crate) fn clear(&self) {
        let mut queues = self.lock();
        queues.by_key.clear();
        queues.any.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ScriptQueues> {
        // A panic elsewhere while holding the lock leaves valid data; keep going.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn take(queue: &mut VecDeque<Entry>) -> Option<Behaviour> {
    let front = queue.front_mut()?;
    let behaviour = front.behaviour.clone();
    if let Some(remaining) = front.remaining.as_mut() {
        *remaining -= 1;
        if *remaining == 0 {
            queue.pop_front();
        }
    }
    Some(behaviour)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_per_key_then_wildcard_then_normal() {
        let scripts = Scripts::default();
        scripts.push(Some("a"), Behaviour::Unauthorized, Times::Once);
        scripts.push(Some("a"), Behaviour::Overloaded, Times::N(2));
        scripts.push(None, Behaviour::ServerError(502), Times::Once);
        assert_eq!(scripts.next_for(Some("a")), Behaviour::Unauthorized);
        assert_eq!(scripts.next_for(Some("a")), Behaviour::Overloaded);
        assert_eq!(scripts.next_for(Some("b")), Behaviour::ServerError(502));
        assert_eq!(scripts.next_for(Some("a")), Behaviour::Overloaded);
        assert_eq!(scripts.next_for(Some("a")), Behaviour::Normal);
        assert_eq!(scripts.next_for(None), Behaviour::Normal);
    }

    #[test]
    fn always_never_ends_and_clear_forgets() {
        let scripts = Scripts::default();
        scripts.push(Some("a"), Behaviour::Overloaded, Times::Always);
        for _ in 0..5 {
            assert_eq!(scripts.next_for(Some("a")), Behaviour::Overloaded);
        }
        scripts.clear();
        assert_eq!(scripts.next_for(Some("a")), Behaviour::Normal);
    }
}
