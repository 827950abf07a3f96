//! Sticky sessions: a conversation keeps using the account it started on, so
//! the prompt cache of that account keeps paying off. The session comes from
//! `x-claude-code-session-id`, else from the body's `metadata.user_id`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::client_head::ClientHeaders;
use crate::shared_health::SharedHealth;

pub const SESSION_HEADER: &str = "x-claude-code-session-id";
/// Longer ids are not sessions we can trust to key on.
const MAX_SESSION_LEN: usize = 256;
/// Local entries beyond this trigger a sweep of expired ones.
const SWEEP_THRESHOLD: usize = 10_000;

/// The session a request belongs to, if it says.
pub fn session_id(headers: &ClientHeaders, body: &[u8]) -> Option<String> {
    if let Some(id) = headers
        .get_text(SESSION_HEADER)
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        return valid(id);
    }
    let user_id = body_user_id(body)?;
    valid(&session_part(&user_id)?)
}

fn valid(id: &str) -> Option<String> {
    (id.len() <= MAX_SESSION_LEN && !id.is_empty()).then(|| id.to_string())
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    user_id: Option<String>,
}

fn body_user_id(body: &[u8]) -> Option<String> {
    // Cheap pre-check (SIMD search, its searcher built once): most bodies
    // without metadata are never parsed.
    static USER_ID: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"user_id"));
    USER_ID.find(body)?;
    serde_json::from_slice::<Envelope>(body)
        .ok()?
        .metadata?
        .user_id
}

/// Claude Code writes `user_<hash>_account_<uuid>_session_<uuid>`; newer
/// versions a JSON object with `session_id`.
pub fn session_part(user_id: &str) -> Option<Cow<'_, str>> {
    if user_id.trim_start().starts_with('{') {
        #[derive(Deserialize)]
        struct JsonUserId {
            session_id: Option<String>,
        }
        let parsed: JsonUserId = serde_json::from_str(user_id).ok()?;
        return parsed.session_id.filter(|s| !s.is_empty()).map(Cow::Owned);
    }
    let start = user_id.rfind("session_")? + "session_".len();
    Some(&user_id[start..])
        .filter(|s| !s.is_empty())
        .map(Cow::Borrowed)
}

/// Session → account, in memory and (with shared health) in Redis.
pub struct Sessions {
    ttl: Duration,
    local: Mutex<HashMap<String, (Arc<str>, Instant)>>,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            local: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn local(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<str>, Instant)>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The account the session used last, if still within its TTL. Redis
    /// (shared by all replicas) is asked first; this replica's memory answers
    /// when Redis does not.
    pub async fn lookup(&self, shared: &SharedHealth, session: &str) -> Option<Arc<str>> {
        if let Some(account) = shared.session_account(session).await {
            return Some(Arc::from(account));
        }
        let local = self.local();
        local
            .get(session)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(account, _)| account.clone())
    }

    /// Records (and renews) the session's account.
    pub fn remember(&self, shared: &SharedHealth, session: String, account: Arc<str>) {
        shared.put_session(&session, &account, self.ttl);
        let now = Instant::now();
        let mut local = self.local();
        if local.len() >= SWEEP_THRESHOLD {
            local.retain(|_, (_, expires)| *expires > now);
        }
        local.insert(session, (account, now + self.ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_lines::HeaderLines;

    fn none() -> ClientHeaders {
        ClientHeaders::lines(HeaderLines::default())
    }

    fn with_session(id: &str) -> ClientHeaders {
        let text = format!("X-Claude-Code-Session-Id: {id}\r\n");
        ClientHeaders::lines(HeaderLines::from_text(text))
    }

    #[test]
    fn header_wins() {
        let headers = with_session("abc-123");
        let body = br#"{"metadata":{"user_id":"user_x_account__session_zzz"}}"#;
        assert_eq!(session_id(&headers, body).as_deref(), Some("abc-123"));
    }

    #[test]
    fn claude_code_user_id() {
        let body = br#"{"model":"m","metadata":{"user_id":"user_0123abcd_account_11111111-2222-3333-4444-555555555555_session_9f0e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f"},"messages":[]}"#;
        assert_eq!(
            session_id(&none(), body).as_deref(),
            Some("9f0e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f")
        );
        let body = br#"{"metadata":{"user_id":"user_abc_account__session_s1"}}"#;
        assert_eq!(session_id(&none(), body).as_deref(), Some("s1"));
    }

    #[test]
    fn json_user_id() {
        let body = br#"{"metadata":{"user_id":"{\"device_id\":\"d\",\"session_id\":\"s-42\"}"}}"#;
        assert_eq!(session_id(&none(), body).as_deref(), Some("s-42"));
    }

    #[test]
    fn no_session() {
        assert_eq!(session_id(&none(), b"{}"), None);
        assert_eq!(session_id(&none(), b"not json user_id"), None);
        let body = br#"{"metadata":{"user_id":"plain-user"}}"#;
        assert_eq!(session_id(&none(), body), None);
        let body = br#"{"metadata":{"user_id":"user_session_"}}"#;
        assert_eq!(session_id(&none(), body), None);
        assert_eq!(session_id(&with_session(&"x".repeat(300)), b"{}"), None);
    }
}
