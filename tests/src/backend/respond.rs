//! One request in, one answer out: records the request, takes the account's scripted
//! behaviour and builds the response (streams are fed by a task, see [`stream`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;

use super::anthropic::{self, Answer};
use super::body::{self, ResponseBody};
use super::control;
use super::record::{Records, SeenRequest};
use super::script::{Behaviour, Scripts};
use super::stream::{self, End};

/// The route prefixes the proxy forwards (the contract's list); the stand-in
/// answers all of them alike.
pub use cmw_contract::PROXIED_PREFIXES;

/// State shared by every connection of one stand-in.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) scripts: Scripts,
    pub(crate) records: Records,
    pub(crate) ip_limit: IpLimit,
    pub(crate) prompt_cache: PromptCache,
    /// Serve only the fork's routes: no bare `/v1/` (see [`super::Options`]).
    fork_routes: bool,
    next_message: AtomicU64,
}

impl Shared {
    pub(crate) fn new(record: bool, fork_routes: bool) -> Shared {
        Shared {
            scripts: Scripts::default(),
            records: Records::new(record),
            ip_limit: IpLimit::default(),
            prompt_cache: PromptCache::default(),
            fork_routes,
            next_message: AtomicU64::new(1),
        }
    }

    fn serves(&self, path: &str) -> bool {
        PROXIED_PREFIXES
            .iter()
            .filter(|p| !(self.fork_routes && **p == "/v1/"))
            .any(|p| path.starts_with(p))
    }
}

/// The fork's per-IP limit (`rate-limiter-flexible`, on with
/// `NODE_ENV=production`): `points` requests per client address, then 429
/// with `retry-after: 900` (the limiter blocks for 15 minutes). Off by default.
#[derive(Debug, Default)]
pub(crate) struct IpLimit {
    state: Mutex<Option<(usize, HashMap<IpAddr, usize>)>>,
}

/// The fork's window and block: 15 minutes.
pub const RELAY_IP_LIMIT_BLOCK_SECS: u64 = 900;

impl IpLimit {
    pub(crate) fn set(&self, points: Option<usize>) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) =
            points.map(|points| (points, HashMap::new()));
    }

    /// Counts a request from `peer`; `true` when it is over the limit.
    fn over(&self, peer: Option<IpAddr>) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (Some((points, counts)), Some(peer)) = (state.as_mut(), peer) else {
            return false;
        };
        let count = counts.entry(peer).or_insert(0);
        *count += 1;
        *count > *points
    }
}

/// Per-request controls from `x-test-*` headers.
#[derive(Debug, Clone, Copy)]
struct Controls {
    events: usize,
    gap: Duration,
    body_bytes: usize,
    /// `x-test-stamp: 1`: each streamed event is preceded by a `: sent <µs>`
    /// comment (wall clock at the moment it is handed to the connection), so
    /// that a client on the same machine can time its delivery (sse-bench).
    stamp: bool,
}

impl Controls {
    fn from_headers(headers: &HeaderMap) -> Controls {
        let number = |name: &str| -> Option<u64> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
        };
        Controls {
            events: number("x-test-events").map_or(5, |n| n as usize),
            gap: Duration::from_millis(number("x-test-gap-ms").unwrap_or(0)),
            body_bytes: number("x-test-body-bytes").map_or(0, |n| n as usize),
            stamp: number("x-test-stamp") == Some(1),
        }
    }
}

/// The parts of a Messages request the stand-in looks at.
#[derive(Debug, Default, Deserialize)]
struct RequestShape {
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Vec<serde_json::Value>,
}

/// Tokens of a conversation's first message, as the stand-in's prompt cache counts them.
pub const CACHED_PROMPT_TOKENS: u64 = 1000;

/// Anthropic's prompt cache, as the stand-in plays it: per account (the cache
/// belongs to the organisation), a conversation whose first message this
/// account has seen is read from the cache, else written to it. So a session
/// that stays on its account reads, and one moved to another account writes again.
#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    seen: Mutex<std::collections::HashSet<(String, String)>>,
}

impl PromptCache {
    /// `(cache_read, cache_creation)` for this account and conversation.
    fn usage(&self, account: &str, first_message: Option<&serde_json::Value>) -> (u64, u64) {
        let Some(first) = first_message else {
            return (0, 0);
        };
        let key = (account.to_string(), first.to_string());
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.insert(key) {
            (0, CACHED_PROMPT_TOKENS)
        } else {
            (CACHED_PROMPT_TOKENS, 0)
        }
    }
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: Option<SocketAddr>,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let (parts, incoming) = req.into_parts();
    let body = incoming
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    if parts.uri.path().starts_with(control::CONTROL_PREFIX) {
        let (status, answer) =
            control::handle(&shared, parts.method.as_str(), parts.uri.path(), &body);
        let mut response = Response::new(body::full(answer.to_string()));
        *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        return response;
    }
    let api_key = parts
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let shape: RequestShape = serde_json::from_slice(&body).unwrap_or_default();
    let proxied = shared.serves(parts.uri.path());
    // The fork's limiter runs before its routes and skips only its health checks.
    let ip_limited = parts.uri.path() != "/health" && shared.ip_limit.over(peer.map(|p| p.ip()));
    let behaviour = if ip_limited {
        Behaviour::Status {
            status: 429,
            headers: vec![
                ("retry-after".into(), RELAY_IP_LIMIT_BLOCK_SECS.to_string()),
                ("x-ratelimit-remaining".into(), "0".into()),
            ],
            body: anthropic::relay_ip_limit_json(RELAY_IP_LIMIT_BLOCK_SECS).to_string(),
        }
    } else if proxied {
        shared.scripts.next_for(api_key.as_deref())
    } else {
        Behaviour::Normal
    };
    let controls = Controls::from_headers(&parts.headers);
    let id = shared.records.add(SeenRequest {
        id: 0,
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string()),
        headers: parts.headers,
        body,
        api_key: api_key.clone(),
        stream: shape.stream,
        behaviour: format!("{behaviour:?}"),
        status: 0,
        started,
        completed: None,
        client_gone: None,
        peer,
    });
    let reply = Reply {
        shared: shared.clone(),
        id,
        account: api_key.unwrap_or_else(|| "none".into()),
        stamp: controls.stamp,
    };
    if !proxied && !ip_limited {
        return reply.not_proxied(parts.uri.path());
    }
    let (cache_read, cache_creation) = shared
        .prompt_cache
        .usage(&reply.account, shape.messages.first());
    let answer = Answer {
        cache_read,
        cache_creation,
        message_id: format!(
            "msg_standin_{}",
            shared.next_message.fetch_add(1, Ordering::Relaxed)
        ),
        model: shape
            .model
            .unwrap_or_else(|| anthropic::DEFAULT_MODEL.into()),
        account: reply.account.clone(),
        deltas: controls.events,
        padding: controls.body_bytes,
    };
    reply
        .respond(behaviour, &answer, shape.stream, controls.gap)
        .await
}

/// Builds the answer to one recorded request.
struct Reply {
    shared: Arc<Shared>,
    id: u64,
    account: String,
    stamp: bool,
}

impl Reply {
    async fn respond(
        &self,
        behaviour: Behaviour,
        answer: &Answer,
        stream: bool,
        gap: Duration,
    ) -> Response<ResponseBody> {
        match behaviour {
            Behaviour::Normal => self.normal(answer, stream, gap, usize::MAX, End::Complete),
            Behaviour::SlowStream { gap } => {
                self.normal(answer, stream, gap, usize::MAX, End::Complete)
            }
            Behaviour::SlowHeaders { delay } => {
                tokio::time::sleep(delay).await;
                self.normal(answer, stream, gap, usize::MAX, End::Complete)
            }
            Behaviour::StallAfter { events } => {
                self.normal(answer, stream, gap, events, End::Stall)
            }
            Behaviour::ResetAfter { events } => {
                self.normal(answer, stream, gap, events, End::Reset)
            }
            Behaviour::Status {
                status,
                headers,
                body,
            } => {
                let mut response = self.full(status, "application/json", body);
                for (name, value) in headers {
                    if let (Ok(name), Ok(value)) = (
                        http::HeaderName::try_from(name),
                        HeaderValue::try_from(value),
                    ) {
                        response.headers_mut().insert(name, value);
                    }
                }
                response
            }
            Behaviour::RateLimited { reset_in } => {
                let reset_epoch = (SystemTime::now() + reset_in)
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
                let retry_after = reset_in.as_secs() + u64::from(reset_in.subsec_nanos() > 0);
                let mut response =
                    self.error(429, "Number of requests has exceeded your rate limit");
                let headers = response.headers_mut();
                headers.insert("retry-after", HeaderValue::from(retry_after));
                headers.insert(
                    "anthropic-ratelimit-unified-reset",
                    HeaderValue::from(reset_epoch),
                );
                headers.insert(
                    "anthropic-ratelimit-unified-status",
                    HeaderValue::from_static("rejected"),
                );
                response
            }
            Behaviour::Unauthorized => self.error(401, "invalid x-api-key"),
            Behaviour::Overloaded => self.error(529, "Overloaded"),
            Behaviour::ServerError(status) => self.error(status, "Internal server error"),
            Behaviour::RelayStreamError { status, details } => {
                let mut response = self.full(
                    200,
                    "text/event-stream",
                    anthropic::relay_stream_error_frame(status, &details),
                );
                response
                    .headers_mut()
                    .insert("cache-control", HeaderValue::from_static("no-cache"));
                response
            }
            Behaviour::SseError { error_type } => {
                let mut response = self.full(
                    200,
                    "text/event-stream",
                    anthropic::sse_error_frame(&error_type),
                );
                response
                    .headers_mut()
                    .insert("cache-control", HeaderValue::from_static("no-cache"));
                response
            }
        }
    }

    /// A normal answer, cut after `limit` frames and ended as `end` says.
    fn normal(
        &self,
        answer: &Answer,
        stream: bool,
        gap: Duration,
        limit: usize,
        end: End,
    ) -> Response<ResponseBody> {
        if stream {
            let mut frames = answer.sse_frames();
            frames.truncate(limit);
            let mut response = self.fed(200, "text/event-stream", frames, gap, end);
            response
                .headers_mut()
                .insert("cache-control", HeaderValue::from_static("no-cache"));
            return response;
        }
        let json = Bytes::from(answer.message_json().to_string());
        if end == End::Complete {
            return self.full(200, "application/json", json);
        }
        // A JSON answer cut short: half of it (when any event was allowed), then the end.
        let frames = if limit > 0 {
            vec![json.slice(..json.len() / 2)]
        } else {
            Vec::new()
        };
        self.fed(200, "application/json", frames, gap, end)
    }

    /// Anthropic's JSON error for this status.
    fn error(&self, status: u16, message: &str) -> Response<ResponseBody> {
        let body = anthropic::error_json(anthropic::error_type_for(status), message);
        self.full(status, "application/json", body.to_string())
    }

    fn not_proxied(&self, path: &str) -> Response<ResponseBody> {
        if path == "/health" {
            return self.full(
                200,
                "application/json",
                r#"{"status":"ok","service":"stand-in-relay"}"#,
            );
        }
        if self.shared.fork_routes {
            return self.full(
                404,
                "application/json",
                anthropic::relay_not_found_json(path).to_string(),
            );
        }
        self.error(404, "not a relay route")
    }

    /// A response whose body is sent in one piece.
    fn full(
        &self,
        status: u16,
        content_type: &'static str,
        body: impl Into<Bytes>,
    ) -> Response<ResponseBody> {
        let now = Instant::now();
        self.shared.records.update(self.id, |seen| {
            seen.status = status;
            seen.completed = Some(now);
        });
        self.head(status, content_type, body::full(body))
    }

    /// A response whose body a task feeds frame by frame, `gap` apart.
    fn fed(
        &self,
        status: u16,
        content_type: &'static str,
        frames: Vec<Bytes>,
        gap: Duration,
        end: End,
    ) -> Response<ResponseBody> {
        self.shared
            .records
            .update(self.id, |seen| seen.status = status);
        let (tx, body) = body::channel();
        tokio::spawn(stream::feed(
            self.shared.clone(),
            self.id,
            tx,
            frames,
            stream::Pace {
                gap,
                stamp: self.stamp,
            },
            end,
        ));
        self.head(status, content_type, body)
    }

    fn head(
        &self,
        status: u16,
        content_type: &'static str,
        body: ResponseBody,
    ) -> Response<ResponseBody> {
        let mut response = Response::new(body);
        *response.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static(content_type));
        headers.insert(
            "request-id",
            HeaderValue::from_str(&format!("req_standin_{}", self.id))
                .unwrap_or(HeaderValue::from_static("req_standin")),
        );
        if let Ok(account) = HeaderValue::from_str(&self.account) {
            headers.insert("x-stand-in-account", account);
        }
        response
    }
}
