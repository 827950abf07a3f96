//! Pure reading of an error answer's JSON, to tell who it is about: the
//! account (Anthropic refused it, or the relay refused that account) or the
//! relay itself (its per-IP limit, no account of its own, an internal error).
//!
//! The shapes, from claude-relay-service's source (the fork that accepts an
//! account id as `x-api-key`, and upstream):
//! - Anthropic's own error, passed through: `{"type":"error","error":{"type":T,…}}`.
//! - The relay's wrapper of an Anthropic error on a stream (sent as a `200`
//!   `event: error`): `{"error":"Claude API error","status":N,"details":"<Anthropic's body as a string>"}`.
//! - The fork's refusal of one account: its circuit breaker,
//!   `503 {"error":{"type":"service_unavailable",…}}`, and its key check,
//!   `401 {"error":"Invalid API key","message":"Account not found"|"Account is disabled"|"Account is in error state"}`.
//! - Anything else (`{"error":"Too Many Requests",…}`, `{"error":"Relay service error",…}`,
//!   `{"error":"Not Found",…}`, HTML from a load balancer, no body) is the relay's own.

use serde_json::Value;

/// Who an error answer is about, from its body alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorShape {
    /// Anthropic answered (directly or wrapped by the relay). `status` is the
    /// one the relay's wrapper names, `error_type` Anthropic's `error.type`
    /// when it could be read.
    Anthropic {
        status: Option<u16>,
        error_type: Option<String>,
    },
    /// The relay refused this account: an unknown, disabled or broken account
    /// id, or the account's circuit breaker is open.
    RelayRefusedAccount(AccountRefusal),
    /// The relay's own answer, about no account in particular.
    Relay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountRefusal {
    /// `401 Invalid API key: Account …`: the relay does not take this id.
    Credential,
    /// `503 service_unavailable`: the fork's circuit breaker for the account.
    CircuitOpen,
}

/// Reads an error body. `json` is the whole body of a JSON error, or the data
/// of a stream's `error` event.
pub fn error_shape(json: &[u8]) -> ErrorShape {
    let Ok(payload) = serde_json::from_slice::<Value>(json) else {
        return ErrorShape::Relay;
    };
    if is_anthropic_error(&payload) {
        return ErrorShape::Anthropic {
            status: None,
            error_type: anthropic_error_type(&payload),
        };
    }
    if let Some(status) = wrapped_status(&payload) {
        // `details` is Anthropic's body as the relay read it: a JSON string,
        // or garbage when it was compressed; the status still says enough.
        let error_type = payload
            .get("details")
            .and_then(Value::as_str)
            .and_then(|details| serde_json::from_str::<Value>(details).ok())
            .as_ref()
            .and_then(anthropic_error_type);
        return ErrorShape::Anthropic {
            status: Some(status),
            error_type,
        };
    }
    if payload.pointer("/error/type").and_then(Value::as_str) == Some("service_unavailable") {
        return ErrorShape::RelayRefusedAccount(AccountRefusal::CircuitOpen);
    }
    let text = |name: &str| payload.get(name).and_then(Value::as_str).unwrap_or("");
    if text("error") == "Invalid API key" && text("message").starts_with("Account ") {
        return ErrorShape::RelayRefusedAccount(AccountRefusal::Credential);
    }
    ErrorShape::Relay
}

fn is_anthropic_error(payload: &Value) -> bool {
    payload.get("type").and_then(Value::as_str) == Some("error")
        && payload.get("error").is_some_and(Value::is_object)
}

fn anthropic_error_type(payload: &Value) -> Option<String> {
    payload
        .pointer("/error/type")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The relay's wrapper: `"error": "Claude API error"` with the status
/// Anthropic answered. Only that message: the relay's own stream errors
/// (`{"error": "<connection error>", "code": …}`) are not Anthropic's.
fn wrapped_status(payload: &Value) -> Option<u16> {
    if payload.get("error").and_then(Value::as_str) != Some("Claude API error") {
        return None;
    }
    let status = payload.get("status")?;
    status
        .as_u64()
        .or_else(|| status.as_str()?.trim().parse().ok())
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..=999).contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anthropic(status: Option<u16>, error_type: &str) -> ErrorShape {
        ErrorShape::Anthropic {
            status,
            error_type: Some(error_type.into()),
        }
    }

    #[test]
    fn anthropic_errors() {
        assert_eq!(
            error_shape(br#"{"type":"error","error":{"type":"rate_limit_error","message":"x"}}"#),
            anthropic(None, "rate_limit_error")
        );
        assert_eq!(
            error_shape(br#"{"type":"error","error":{}}"#),
            ErrorShape::Anthropic {
                status: None,
                error_type: None
            }
        );
    }

    #[test]
    fn the_relays_stream_wrapper() {
        let details =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let data = serde_json::json!({
            "error": "Claude API error", "status": 529, "details": details,
            "timestamp": "2026-12-03T07:00:00.000Z"
        });
        assert_eq!(
            error_shape(data.to_string().as_bytes()),
            anthropic(Some(529), "overloaded_error")
        );
        // Details that are not JSON (a compressed body): the status alone.
        let data = r#"{"error":"Claude API error","status":"429","details":"\u001f\u008b"}"#;
        assert_eq!(
            error_shape(data.as_bytes()),
            ErrorShape::Anthropic {
                status: Some(429),
                error_type: None
            }
        );
    }

    #[test]
    fn the_relay_refusing_one_account() {
        assert_eq!(
            error_shape(
                br#"{"error":{"type":"service_unavailable","message":"Service temporarily unavailable. Please try again later."}}"#
            ),
            ErrorShape::RelayRefusedAccount(AccountRefusal::CircuitOpen)
        );
        for message in [
            "Account not found",
            "Account is disabled",
            "Account is in error state",
        ] {
            let body = serde_json::json!({"error": "Invalid API key", "message": message});
            assert_eq!(
                error_shape(body.to_string().as_bytes()),
                ErrorShape::RelayRefusedAccount(AccountRefusal::Credential),
                "{message}"
            );
        }
    }

    #[test]
    fn the_relays_own_answers() {
        for body in [
            r#"{"error":"Too Many Requests","message":"Too many requests from this IP, please try again later.","retryAfter":900}"#,
            r#"{"error":"Relay service error","message":"No available accounts in any associated pools","timestamp":"x"}"#,
            r#"{"error":"Relay service error","message":"accountId is not defined"}"#,
            r#"{"error":"Invalid API key","message":"Invalid API key format"}"#,
            r#"{"error":"Not Found","message":"Route /v1/messages not found"}"#,
            r#"{"error":"connect ECONNREFUSED","code":"ECONNREFUSED","timestamp":"x"}"#,
            r#"{"error":"Claude API error"}"#,
            "<html>502 Bad Gateway</html>",
            "",
        ] {
            assert_eq!(error_shape(body.as_bytes()), ErrorShape::Relay, "{body}");
        }
    }
}
