//! Answers the proxy produces itself, in Anthropic's error shape:
//! `{"type":"error","error":{"type":"…","message":"…"}}`.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::ProxyBody;

/// A JSON error answer. `retry_after` becomes a `Retry-After` header in whole
/// seconds, rounded up.
pub fn error_response(
    status: StatusCode,
    error_type: &str,
    message: &str,
    retry_after: Option<Duration>,
) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": error_type, "message": message},
    });
    let mut response = json_response(status, &body);
    if let Some(wait) = retry_after {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    response
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The Anthropic error type that matches a status the proxy answers with.
pub fn error_type_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 | 431 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}
