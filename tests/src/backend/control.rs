//! Scripting over HTTP, for the `stand-in-relay` binary (the demo scripts it with curl).
//! Control requests are not recorded.
//!
//! - `POST /__stand-in/script` with a flat JSON object:
//!   `{"account": "<x-api-key>" (absent = any account), "times": 1 | N | "always" (default 1),
//!     "behaviour": "normal" | "status" | "rate_limited" | "unauthorized" | "overloaded" |
//!       "server_error" | "sse_error" | "relay_stream_error" | "slow_stream" | "stall_after" |
//!       "reset_after" | "slow_headers",
//!     "status": 503, "headers": {"k": "v"}, "body": "...", "reset_in_secs": 2,
//!     "error_type": "rate_limit_error", "gap_ms": 100, "events": 3, "delay_ms": 1000}`
//!   (only the fields the behaviour needs).
//!   (`relay_stream_error` takes `status` and, optionally, `body` as the `details`).
//! - `POST /__stand-in/ip-limit` `{"points": N}` (or `null`): the fork's per-IP limit.
//! - `POST /__stand-in/clear-scripts`
//! - `GET /__stand-in/requests`: the recorded requests as a JSON array (`id`, `method`,
//!   `path`, `api_key`, `stream`, `status`, `behaviour`, `completed`, `client_gone`).
//! - `DELETE /__stand-in/requests`: forget them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::respond::Shared;
use super::script::{Behaviour, Times};

/// Paths under this prefix are control requests.
pub const CONTROL_PREFIX: &str = "/__stand-in/";

/// The answer to a control request: status and JSON body.
pub(crate) fn handle(shared: &Shared, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    match (method, path.trim_start_matches(CONTROL_PREFIX)) {
        ("POST", "script") => match serde_json::from_slice::<ScriptSpec>(body)
            .map_err(|e| e.to_string())
            .and_then(ScriptSpec::into_script)
        {
            Ok((account, behaviour, times)) => {
                shared.scripts.push(account.as_deref(), behaviour, times);
                (200, json!({"ok": true}))
            }
            Err(message) => (
                400,
                super::anthropic::error_json("invalid_request_error", &message),
            ),
        },
        ("POST", "ip-limit") => match serde_json::from_slice::<IpLimitSpec>(body) {
            Ok(spec) => {
                shared.ip_limit.set(spec.points);
                (200, json!({"ok": true}))
            }
            Err(e) => (
                400,
                super::anthropic::error_json("invalid_request_error", &e.to_string()),
            ),
        },
        ("POST", "clear-scripts") => {
            shared.scripts.clear();
            (200, json!({"ok": true}))
        }
        ("GET", "requests") => {
            let seen: Vec<Value> = shared
                .records
                .snapshot()
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id, "method": r.method, "path": r.path, "api_key": r.api_key,
                        "stream": r.stream, "status": r.status, "behaviour": r.behaviour,
                        "completed": r.completed.is_some(), "client_gone": r.client_gone.is_some(),
                    })
                })
                .collect();
            (200, Value::Array(seen))
        }
        ("DELETE", "requests") => {
            shared.records.clear();
            (200, json!({"ok": true}))
        }
        _ => (
            404,
            super::anthropic::error_json("not_found_error", "unknown control request"),
        ),
    }
}

/// `{"points": N}` turns the fork's per-IP limit on, `{"points": null}` off.
#[derive(Debug, Deserialize)]
struct IpLimitSpec {
    points: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct ScriptSpec {
    account: Option<String>,
    times: Option<Value>,
    behaviour: String,
    status: Option<u16>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
    reset_in_secs: Option<f64>,
    error_type: Option<String>,
    gap_ms: Option<u64>,
    events: Option<usize>,
    delay_ms: Option<u64>,
}

impl ScriptSpec {
    fn into_script(self) -> Result<(Option<String>, Behaviour, Times), String> {
        let times = match &self.times {
            None => Times::Once,
            Some(Value::String(s)) if s == "always" => Times::Always,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(1) => Times::Once,
                Some(n) => Times::N(n as usize),
                None => return Err(format!("times: {n} is not a count")),
            },
            Some(other) => return Err(format!("times: {other} is neither a count nor \"always\"")),
        };
        let need = |field: &str| format!("behaviour {} needs {field}", self.behaviour);
        let ms =
            |v: Option<u64>, field: &str| v.map(Duration::from_millis).ok_or_else(|| need(field));
        let behaviour = match self.behaviour.as_str() {
            "normal" => Behaviour::Normal,
            "status" => Behaviour::Status {
                status: self.status.ok_or_else(|| need("status"))?,
                headers: self.headers.clone().into_iter().collect(),
                body: self.body.clone(),
            },
            "rate_limited" => Behaviour::RateLimited {
                reset_in: Duration::try_from_secs_f64(
                    self.reset_in_secs.ok_or_else(|| need("reset_in_secs"))?,
                )
                .map_err(|e| format!("reset_in_secs: {e}"))?,
            },
            "unauthorized" => Behaviour::Unauthorized,
            "overloaded" => Behaviour::Overloaded,
            "server_error" => Behaviour::ServerError(self.status.unwrap_or(500)),
            "relay_stream_error" => {
                let status = self.status.ok_or_else(|| need("status"))?;
                if self.body.is_empty() {
                    Behaviour::relay_stream_error(status)
                } else {
                    Behaviour::RelayStreamError {
                        status,
                        details: self.body.clone(),
                    }
                }
            }
            "sse_error" => Behaviour::SseError {
                error_type: self.error_type.clone().ok_or_else(|| need("error_type"))?,
            },
            "slow_stream" => Behaviour::SlowStream {
                gap: ms(self.gap_ms, "gap_ms")?,
            },
            "stall_after" => Behaviour::StallAfter {
                events: self.events.ok_or_else(|| need("events"))?,
            },
            "reset_after" => Behaviour::ResetAfter {
                events: self.events.ok_or_else(|| need("events"))?,
            },
            "slow_headers" => Behaviour::SlowHeaders {
                delay: ms(self.delay_ms, "delay_ms")?,
            },
            other => return Err(format!("unknown behaviour {other:?}")),
        };
        Ok((self.account, behaviour, times))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: Value) -> Result<(Option<String>, Behaviour, Times), String> {
        serde_json::from_value::<ScriptSpec>(spec)
            .map_err(|e| e.to_string())
            .and_then(ScriptSpec::into_script)
    }

    #[test]
    fn flat_specs_become_behaviours() {
        assert_eq!(
            parse(json!({"account": "a", "behaviour": "rate_limited", "reset_in_secs": 2})),
            Ok((
                Some("a".into()),
                Behaviour::RateLimited {
                    reset_in: Duration::from_secs(2)
                },
                Times::Once
            ))
        );
        assert_eq!(
            parse(json!({"behaviour": "server_error", "status": 502, "times": "always"})),
            Ok((None, Behaviour::ServerError(502), Times::Always))
        );
        assert_eq!(
            parse(json!({"behaviour": "slow_stream", "gap_ms": 100, "times": 3})),
            Ok((
                None,
                Behaviour::SlowStream {
                    gap: Duration::from_millis(100)
                },
                Times::N(3)
            ))
        );
    }

    #[test]
    fn missing_fields_and_unknown_names_are_refused() {
        assert!(parse(json!({"behaviour": "sse_error"})).is_err());
        assert!(parse(json!({"behaviour": "explode"})).is_err());
        assert!(parse(json!({"behaviour": "normal", "times": "often"})).is_err());
    }
}
