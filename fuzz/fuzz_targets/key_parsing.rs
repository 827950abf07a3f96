//! Key lists parse into trimmed, non-empty keys without separators, and the
//! authenticator admits exactly the listed keys that follow the rules.
#![no_main]

use claude_middleware::auth::{Authenticator, KeySet, parse_key_list};
use claude_middleware::client_head::ClientHeaders;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let keys = parse_key_list(&text);
    for key in &keys {
        assert!(!key.is_empty());
        assert_eq!(key.trim(), key);
        assert!(!key.contains([',', '\n', '\r']));
    }
    let auth = Authenticator::new(true, "cr_".into(), KeySet::new(keys.clone()));
    for key in keys.iter().take(4) {
        let Ok(value) = HeaderValue::from_str(key) else {
            continue;
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", value);
        let follows_rules = key.starts_with("cr_") && (10..=512).contains(&key.len());
        assert_eq!(auth.check(&ClientHeaders::Map(headers)).is_ok(), follows_rules, "{key:?}");
    }
});
