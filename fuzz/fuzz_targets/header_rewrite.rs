//! Header rewriting never panics, always sets the account key, and never lets
//! a client credential or an Anthropic secret through, whether the client's
//! headers come as an HTTP/1 head's lines or as an HTTP/2 map.
#![no_main]

use bytes::BytesMut;
use claude_middleware::client_head::ClientHeaders;
use claude_middleware::forward::Peer;
use claude_middleware::forward::headers::upstream_headers;
use claude_middleware::server::http1::request::parse_request_head;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut map = HeaderMap::new();
    let mut head = b"GET / HTTP/1.1\r\n".to_vec();
    // Lines of `name: value`; whatever http accepts becomes a header, of
    // the map and of the head, in the case sent.
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        let (Ok(parsed_name), Ok(parsed_value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        else {
            continue;
        };
        map.append(parsed_name, parsed_value);
        head.extend_from_slice(name);
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let mut forms = vec![ClientHeaders::Map(map)];
    // The head is refused when it has too many lines or its framing
    // headers are invalid; the map is still checked then.
    if let Ok(Some(parsed)) = parse_request_head(&mut BytesMut::from(&head[..])) {
        forms.push(parsed.head.headers);
    }
    let account = HeaderValue::from_static("account-id-0000");
    let peer = Peer::new([10, 0, 0, 1].into());
    for client in &forms {
        let mut headers = HeaderMap::new();
        upstream_headers(client, &account, Some(&peer), &mut headers);
        assert_eq!(headers.get_all("x-api-key").iter().count(), 1);
        assert_eq!(headers["x-api-key"], account);
        assert!(headers.get("authorization").is_none());
        assert!(headers.get("api-key").is_none());
        for (_, value) in &headers {
            let bytes = value.as_bytes();
            let token = match bytes.iter().position(|b| *b == b' ' || *b == b'\t') {
                Some(space) => bytes[space + 1..].trim_ascii_start(),
                None => bytes,
            };
            assert!(!token.starts_with(b"sk-ant-"), "secret forwarded: {value:?}");
        }
    }
});
