//! Pure header rewriting between the client and the relay backend.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1): meaningful for one connection only.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// The client's own credentials: never forwarded to the backend.
const CLIENT_CREDENTIALS: [HeaderName; 3] = [
    HeaderName::from_static("x-api-key"),
    header::AUTHORIZATION,
    HeaderName::from_static("api-key"),
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// An Anthropic secret as clients send it: `sk-ant-…`, `Bearer sk-ant-…`,
/// or `authenticator sk-ant-…` (claude-relay-service's format).
fn carries_anthropic_secret(value: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    let token = text
        .split_once(' ')
        .map(|(_, rest)| rest.trim_start())
        .unwrap_or(text);
    token.starts_with("sk-ant-")
}

/// Turns the client's request headers into the backend's:
/// - hop-by-hop and `Host` removed (the client sets the target's authority),
/// - the client's key removed and `x-api-key` set to the account id,
/// - any other header carrying an `sk-ant-…` secret replaced by the account id
///   (as the Go middleware did, so no client secret reaches the relay),
/// - `X-Forwarded-For` extended with the peer, `X-Forwarded-Proto` set if absent.
pub fn rewrite_request_headers(
    headers: &mut HeaderMap,
    account_key: &HeaderValue,
    peer: Option<IpAddr>,
) {
    strip_hop_by_hop(headers);
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    for name in &CLIENT_CREDENTIALS {
        headers.remove(name);
    }
    let secret_headers: Vec<HeaderName> = headers
        .iter()
        .filter(|(_, value)| carries_anthropic_secret(value))
        .map(|(name, _)| name.clone())
        .collect();
    for name in secret_headers {
        headers.insert(name, account_key.clone());
    }
    headers.insert(X_API_KEY.clone(), account_key.clone());

    if let Some(peer) = peer {
        let forwarded = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(existing) => format!("{existing}, {peer}"),
            None => peer.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&forwarded) {
            headers.insert(X_FORWARDED_FOR.clone(), value);
        }
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
}

/// Response headers back to the client: hop-by-hop removed, the rest as is.
/// A `Content-Length` beside a `Transfer-Encoding` is dropped: the body was
/// framed by the transfer coding (RFC 9112 §6.3), so the length is stale, and
/// forwarding it would make the client stop early or wait for bytes that
/// never come. claude-relay-service sends both on its non-streamed answers.
pub fn rewrite_response_headers(headers: &mut HeaderMap) {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
    strip_hop_by_hop(headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_str(v).unwrap());
        }
        m
    }

    fn rewrite(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = map(pairs);
        rewrite_request_headers(
            &mut h,
            &HeaderValue::from_static("acct-1234"),
            Some("10.1.2.3".parse().unwrap()),
        );
        h
    }

    #[test]
    fn sets_the_account_key_and_drops_client_keys() {
        let h = rewrite(&[
            ("x-api-key", "cr_client_key_123"),
            ("authorization", "Bearer cr_client_key_123"),
            ("api-key", "cr_client_key_123"),
            ("anthropic-version", "2023-06-01"),
        ]);
        assert_eq!(h["x-api-key"], "acct-1234");
        assert!(h.get("authorization").is_none());
        assert!(h.get("api-key").is_none());
        assert_eq!(h["anthropic-version"], "2023-06-01");
        assert!(!format!("{h:?}").contains("cr_client"));
    }

    #[test]
    fn replaces_anthropic_secrets_in_any_header() {
        let h = rewrite(&[
            ("x-custom-auth", "authenticator sk-ant-api03-secret"),
            ("x-other", "sk-ant-oat01-secret"),
            ("x-plain", "nothing secret"),
        ]);
        assert_eq!(h["x-custom-auth"], "acct-1234");
        assert_eq!(h["x-other"], "acct-1234");
        assert_eq!(h["x-plain"], "nothing secret");
        assert!(!format!("{h:?}").contains("sk-ant"));
    }

    #[test]
    fn drops_hop_by_hop_and_connection_named_headers() {
        let h = rewrite(&[
            ("connection", "keep-alive, x-drop-me"),
            ("keep-alive", "timeout=5"),
            ("x-drop-me", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic abc"),
            ("upgrade", "websocket"),
            ("host", "proxy.local"),
            ("content-length", "12"),
            ("x-keep", "1"),
        ]);
        for gone in [
            "connection",
            "keep-alive",
            "x-drop-me",
            "te",
            "transfer-encoding",
            "proxy-authorization",
            "upgrade",
            "host",
            "content-length",
        ] {
            assert!(h.get(gone).is_none(), "{gone} should be removed");
        }
        assert_eq!(h["x-keep"], "1");
    }

    #[test]
    fn forwarded_headers() {
        let h = rewrite(&[]);
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        let h = rewrite(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn response_headers_lose_hop_by_hop_only() {
        let mut h = map(&[
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/event-stream"),
            ("anthropic-ratelimit-unified-reset", "1800000000"),
        ]);
        rewrite_response_headers(&mut h);
        assert!(h.get("connection").is_none());
        assert!(h.get("transfer-encoding").is_none());
        assert_eq!(h["content-type"], "text/event-stream");
        assert!(h.get("anthropic-ratelimit-unified-reset").is_some());
    }

    #[test]
    fn transfer_encoding_wins_over_content_length() {
        let mut h = map(&[
            ("transfer-encoding", "chunked"),
            ("content-length", "42"),
            ("content-type", "application/json"),
        ]);
        rewrite_response_headers(&mut h);
        assert!(h.get("content-length").is_none());
        assert!(h.get("transfer-encoding").is_none());
        assert_eq!(h["content-type"], "application/json");

        let mut h = map(&[("content-length", "42")]);
        rewrite_response_headers(&mut h);
        assert_eq!(h["content-length"], "42");
    }
}
