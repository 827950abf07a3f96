//! Forwarding a client request to the relay backend: read the body once (so
//! it can be replayed), pick an account, send, classify, and either retry on
//! another account (only while nothing has reached the client) or stream the
//! answer back frame by frame.

mod body;
mod client;
pub mod first_event;
pub mod headers;
mod read_ahead;
mod record;
mod target;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

pub use body::{BodyError, ProxyBody, UpstreamBody};
pub use client::{CONNECT_TIMEOUT, UpstreamClient, build_client};
pub use record::RequestRecord;
pub use target::Target;

use crate::accounts::{Account, now_ms};
use crate::app::App;
use crate::errors::{error_response, error_type_for};
use crate::metrics::RequestOutcome;
use crate::routing::outcome::retry_after;
use crate::routing::retry::{jitter, retry_delay};
use crate::routing::{
    HeadVerdict, Outcome, RelayFailure, Selection, classify_error, classify_head,
    classify_stream_error,
};
use crate::sessions::session_id;
use read_ahead::ReadAhead;

/// Proxies one request under `route` (the matched prefix, a metric label).
pub async fn forward(
    app: &App,
    request: Request<Incoming>,
    peer: Option<IpAddr>,
    route: &'static str,
) -> Response<ProxyBody> {
    let (parts, body) = request.into_parts();
    let mut record = RequestRecord::new(
        app.metrics.clone(),
        parts.method.clone(),
        parts.uri.path_and_query().cloned(),
        route,
    );
    if let Err(error) = app.auth.check(&parts.headers) {
        return refuse(record, StatusCode::UNAUTHORIZED, &error.to_string());
    }
    let body = match read_body(body, &parts, app.config.max_body_bytes).await {
        Ok(body) => body,
        Err((status, message)) => return refuse(record, status, message),
    };
    let Some(pool) = app.pool.snapshot() else {
        record.status = 503;
        record.finish(RequestOutcome::Refused, Some("account pool not loaded"));
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded_error",
            "the account pool has not been loaded from Redis yet",
            Some(std::time::Duration::from_secs(1)),
        );
    };

    let session = app
        .sessions
        .enabled()
        .then(|| session_id(&parts.headers, &body))
        .flatten();
    let preferred = match &session {
        Some(session) => app.sessions.lookup(&app.shared, session).await,
        None => None,
    };

    let mut tried: Vec<Arc<str>> = Vec::new();
    // The last account failure, answered as is when no other account is left.
    let mut last_failure: Option<Attempt> = None;
    for attempt in 0..=app.config.retry_attempts {
        let account = match app
            .router
            .pick(&pool.accounts, preferred.as_deref(), &tried, now_ms())
        {
            Selection::Chosen(account) => account,
            Selection::NoneAvailable {
                retry_after,
                all_rate_limited,
            } => {
                if let Some(failure) = last_failure {
                    return stream_back(app, failure, record);
                }
                let (status, message) = if all_rate_limited {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        "every account is rate limited",
                    )
                } else if pool.accounts.is_empty() {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no schedulable account in the pool",
                    )
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no healthy account available",
                    )
                };
                record.status = status.as_u16();
                record.finish(RequestOutcome::Refused, Some(message));
                let retry_after = retry_after.unwrap_or(app.config.account_refresh_interval);
                return error_response(status, error_type_for(status), message, Some(retry_after));
            }
        };
        tried.push(account.id.clone());
        record.attempts = attempt + 1;
        record.account = Some(account.id.clone());

        let upstream_request = match build_upstream_request(app, &parts, &body, account, peer) {
            Ok(request) => request,
            Err(message) => return refuse(record, StatusCode::BAD_REQUEST, message),
        };
        let sent = Instant::now();
        let response = match tokio::time::timeout(
            app.config.proxy_timeout,
            app.client.request(upstream_request),
        )
        .await
        {
            Ok(Ok(response)) => response,
            // The backend itself is down or stuck: no account is to blame.
            Ok(Err(error)) => {
                let detail = if error.is_connect() {
                    format!("cannot connect to the backend: {}", source_text(&error))
                } else {
                    format!("backend request failed: {}", source_text(&error))
                };
                return backend_error(record, StatusCode::BAD_GATEWAY, &detail);
            }
            Err(_) => {
                return backend_error(
                    record,
                    StatusCode::GATEWAY_TIMEOUT,
                    "the backend sent no response head within PROXY_TIMEOUT",
                );
            }
        };
        app.metrics
            .upstream_latency
            .observe(sent.elapsed().as_secs_f64());

        let (parts_back, mut incoming) = response.into_parts();
        let (outcome, prefix) = match judge(app, &parts_back, &mut incoming).await {
            Ok(judged) => judged,
            Err(detail) => return backend_error(record, StatusCode::BAD_GATEWAY, &detail),
        };
        let this_attempt = Attempt {
            response: Response::from_parts(parts_back, incoming),
            prefix,
        };

        match outcome {
            Outcome::Success | Outcome::ClientError => {
                if let Some(session) = session {
                    app.sessions
                        .remember(&app.shared, session, account.id.clone());
                }
                return stream_back(app, this_attempt, record);
            }
            Outcome::RelayFailure(failure) => {
                tracing::warn!(
                    account = account.short_id(),
                    status = this_attempt.response.status().as_u16(),
                    outcome = failure.as_str(),
                    "the relay answered on its own; no account is blamed"
                );
                record.completed_as = match failure {
                    RelayFailure::Limited => RequestOutcome::RelayLimited,
                    RelayFailure::Error => RequestOutcome::RelayError,
                };
                return stream_back(app, this_attempt, record);
            }
            Outcome::AccountFailure { kind, cooldown } => {
                app.bench(&account.id, kind, cooldown);
                tracing::warn!(
                    account = account.short_id(),
                    status = this_attempt.response.status().as_u16(),
                    reason = kind.as_str(),
                    cooldown_s = cooldown.as_secs(),
                    "account failed; cooling down"
                );
                record.status = this_attempt.response.status().as_u16();
                if attempt == app.config.retry_attempts {
                    last_failure = Some(this_attempt);
                    break;
                }
                let asked = retry_after(this_attempt.response.headers(), now_ms());
                let Some(wait) = retry_delay(kind, asked, attempt, jitter()) else {
                    return stream_back(app, this_attempt, record);
                };
                app.metrics.record_retry(kind);
                last_failure = Some(this_attempt);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    match last_failure {
        Some(failure) => stream_back(app, failure, record),
        // Unreachable: the loop runs at least once and always sets it or returns.
        None => backend_error(record, StatusCode::BAD_GATEWAY, "no attempt was made"),
    }
}

/// Reads ahead as far as the verdict needs (a stream's first event, an error
/// answer's body) and classifies the answer. `Err` is a body that broke
/// before anything could be judged: the backend's failure, not the account's.
async fn judge(
    app: &App,
    head: &http::response::Parts,
    body: &mut Incoming,
) -> Result<(Outcome, Bytes), String> {
    let cooldowns = &app.config.cooldowns;
    match classify_head(head.status) {
        HeadVerdict::ClientError => Ok((Outcome::ClientError, Bytes::new())),
        HeadVerdict::NeedsBody => {
            let prefix = read_ahead::read_error_body(body, app.config.proxy_timeout)
                .await
                .map_err(|e| format!("backend error answer broke before its end: {e}"))?;
            // The relay keeps `text/event-stream` on its own errors of a
            // streaming request: judge the event's data then.
            let json = match first_event::first_event(&prefix) {
                first_event::FirstEvent::Error { data } => Bytes::from(data),
                _ => prefix.clone(),
            };
            let outcome = classify_error(head.status, &head.headers, &json, cooldowns, now_ms());
            Ok((outcome, prefix))
        }
        HeadVerdict::Success if read_ahead::is_event_stream(&head.headers) => {
            match read_ahead::read_first_event(body, app.config.proxy_timeout).await {
                ReadAhead::Commit { prefix } => Ok((Outcome::Success, prefix)),
                ReadAhead::Error { data, prefix } => {
                    let outcome = classify_stream_error(&head.headers, &data, cooldowns, now_ms());
                    Ok((outcome, prefix))
                }
                ReadAhead::Failed(error) => Err(format!(
                    "backend stream failed before its first event: {error}"
                )),
            }
        }
        HeadVerdict::Success => Ok((Outcome::Success, Bytes::new())),
    }
}

/// An answer from one account, with what was read ahead of its body.
struct Attempt {
    response: Response<Incoming>,
    prefix: Bytes,
}

/// The request body, held whole so it can be sent again to another account.
/// It is copied into a buffer of its own, sized up front from `content-length`:
/// a slice of hyper's read buffer would pin that buffer for as long as the
/// response streams, and growing a buffer for a large body costs page faults.
async fn read_body(
    mut body: Incoming,
    parts: &Parts,
    limit: u64,
) -> Result<Bytes, (StatusCode, &'static str)> {
    const TOO_LARGE: (StatusCode, &str) = (
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body is larger than MAX_BODY_BYTES",
    );
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(TOO_LARGE);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let capacity = declared.map_or(0, |len| usize::try_from(len).unwrap_or(0));
    let mut buffer = BytesMut::with_capacity(capacity.min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(TOO_LARGE);
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

fn build_upstream_request(
    app: &App,
    parts: &Parts,
    body: &Bytes,
    account: &Account,
    peer: Option<IpAddr>,
) -> Result<Request<Full<Bytes>>, &'static str> {
    let uri = app
        .target
        .uri_for(&parts.uri)
        .map_err(|_| "the request path cannot be forwarded")?;
    let account_key =
        HeaderValue::from_str(&account.id).map_err(|_| "the account id is not a valid header")?;
    let mut headers = parts.headers.clone();
    headers::rewrite_request_headers(&mut headers, &account_key, peer);
    headers.insert(header::HOST, app.target.host_header().clone());
    let mut request = Request::new(Full::new(body.clone()));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Commits the response to the client and streams its body as it arrives.
fn stream_back(app: &App, attempt: Attempt, mut record: RequestRecord) -> Response<ProxyBody> {
    let (mut parts, body) = attempt.response.into_parts();
    record.status = parts.status.as_u16();
    headers::rewrite_response_headers(&mut parts.headers);
    let body = UpstreamBody::new(body, attempt.prefix, app.config.proxy_timeout, record);
    Response::from_parts(parts, ProxyBody::Upstream { body })
}

fn refuse(mut record: RequestRecord, status: StatusCode, message: &str) -> Response<ProxyBody> {
    record.status = status.as_u16();
    record.finish(RequestOutcome::Refused, Some(message));
    error_response(status, error_type_for(status), message, None)
}

fn backend_error(
    mut record: RequestRecord,
    status: StatusCode,
    detail: &str,
) -> Response<ProxyBody> {
    record.status = status.as_u16();
    record.finish(RequestOutcome::BackendError, Some(detail));
    let message = if status == StatusCode::GATEWAY_TIMEOUT {
        "the relay backend did not answer in time"
    } else {
        "the relay backend is unreachable"
    };
    error_response(status, "api_error", message, None)
}

/// The innermost cause, which says what actually happened (refused, reset…).
fn source_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
