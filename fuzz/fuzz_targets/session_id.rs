//! Session-id extraction from a header and an untrusted body never panics and
//! never yields an empty or oversized id.
#![no_main]

use claude_middleware::client_head::ClientHeaders;
use claude_middleware::sessions::session_id;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, body) = data.split_at(data.len().min(data.first().copied().unwrap_or(0) as usize));
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(header) {
        headers.insert("x-claude-code-session-id", value);
    }
    for map in [HeaderMap::new(), headers] {
        if let Some(id) = session_id(&ClientHeaders::Map(map), body) {
            assert!(!id.is_empty() && id.len() <= 256);
        }
    }
});
