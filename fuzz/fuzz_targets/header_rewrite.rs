//! Header rewriting never panics, always sets the account key, and never lets
//! a client credential or an Anthropic secret through.
#![no_main]

use claude_middleware::forward::Peer;
use claude_middleware::forward::headers::upstream_headers;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    // Lines of `name: value`; whatever http accepts becomes a header.
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(&line[colon + 1..]),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let account = HeaderValue::from_static("account-id-0000");
    let peer = Peer::new([10, 0, 0, 1].into());
    let mut rewritten = HeaderMap::new();
    upstream_headers(&headers, &account, Some(&peer), &mut rewritten);
    let headers = rewritten;
    assert_eq!(headers.get_all("x-api-key").iter().count(), 1);
    assert_eq!(headers["x-api-key"], account);
    assert!(headers.get("authorization").is_none());
    assert!(headers.get("api-key").is_none());
    for (_, value) in &headers {
        if let Ok(text) = value.to_str() {
            let token = text
                .split_once(' ')
                .map_or(text, |(_, rest)| rest.trim_start());
            assert!(!token.starts_with("sk-ant-"), "secret forwarded: {text}");
        }
    }
});
