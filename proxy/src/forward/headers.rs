//! Pure header rewriting between the client and the relay backend.
//!
//! Both directions run on every request, so each is one scan over the
//! headers, with names matched as they come, rather than a lookup by name
//! for each header that might be there.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use smallvec::SmallVec;

use super::peer::Peer;
use crate::client_head::{ClientHeaders, carries_anthropic_secret, header_text};
use crate::upstream::RelayHeaders;

/// Hop-by-hop headers (RFC 9110 §7.6.1): meaningful for one connection only.
/// Indexed by [`hop_by_hop_index`].
const HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const HOP_BY_HOP_COUNT: usize = 9;

/// `Connection`'s and `Transfer-Encoding`'s places in [`HOP_BY_HOP`].
const CONNECTION_AT: usize = 0;
const TRANSFER_ENCODING_AT: usize = 7;

/// Where `name` is in [`HOP_BY_HOP`] (a match on the name is cheaper than
/// comparing it with each).
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "te" => 5,
        "trailer" => 6,
        "transfer-encoding" => 7,
        "upgrade" => 8,
        _ => return None,
    })
}

/// What becomes of a client request header on its way to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestHeader {
    /// Hop-by-hop; `Host` and `Content-Length` (the client sets them for the
    /// target); the client's own credentials (`x-api-key`, `authorization`,
    /// `api-key`), never forwarded.
    Dropped,
    ForwardedFor,
    ForwardedProto,
    Kept,
}

/// What becomes of the header `name` (as sent, any case). By length first:
/// a name is compared with three others at most.
fn request_header(name: &[u8]) -> RequestHeader {
    let is = |known: &str| known.as_bytes().eq_ignore_ascii_case(name);
    let dropped = match name.len() {
        2 => is("te"),
        4 => is("host"),
        7 => is("trailer") || is("upgrade") || is("api-key"),
        9 => is("x-api-key"),
        10 => is("connection") || is("keep-alive"),
        13 => is("authorization"),
        14 => is("content-length"),
        15 if is("x-forwarded-for") => return RequestHeader::ForwardedFor,
        16 => is("proxy-connection"),
        17 if is("x-forwarded-proto") => return RequestHeader::ForwardedProto,
        17 => is("transfer-encoding"),
        18 => is("proxy-authenticate"),
        19 => is("proxy-authorization"),
        _ => false,
    };
    match dropped {
        true => RequestHeader::Dropped,
        false => RequestHeader::Kept,
    }
}

/// Where the backend's request headers go: the request head being written
/// (straight to bytes), or a `HeaderMap`. Names and values given are ones a
/// client sent, or the proxy's own, so valid.
pub trait HeaderSink {
    fn header(&mut self, name: &[u8], value: &[u8]);
}

impl HeaderSink for HeaderMap {
    fn header(&mut self, name: &[u8], value: &[u8]) {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            self.append(name, value);
        }
    }
}

/// The backend's request headers, made from the client's in one pass over
/// them, in the order sent:
/// - hop-by-hop (also those `Connection` names), `Host` and `Content-Length`
///   left out (the client sets the target's authority and the body's length),
/// - the client's key left out and `x-api-key` set to the account id,
/// - a header with a value carrying an `sk-ant-…` secret sent once, as the
///   account id (as the Go middleware did, so no client secret reaches the
///   relay),
/// - `X-Forwarded-For` extended with the peer, `X-Forwarded-Proto` set if absent.
pub fn upstream_headers(
    client: &ClientHeaders,
    account_key: &HeaderValue,
    peer: Option<&Peer>,
    sink: &mut impl HeaderSink,
) {
    // Rare, so looked for first, and only when the parser saw them: the
    // values of `Connection`, and the names that have a value carrying a
    // secret (with whether the account id was sent in their place yet).
    let mut connection: SmallVec<[&[u8]; 2]> = SmallVec::new();
    let mut secret: SmallVec<[(&[u8], bool); 2]> = SmallVec::new();
    let noted = client.noted();
    if noted.connection || noted.anthropic_secret {
        for (name, value) in client.iter() {
            if name.eq_ignore_ascii_case(b"connection") {
                connection.push(value);
            }
            if carries_anthropic_secret(value)
                && !secret.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                secret.push((name, false));
            }
        }
    }
    let (mut forwarded_for, mut forwarded_proto) = (false, false);
    // The first `X-Forwarded-For` was sent extended: the others go.
    let mut forwarded_for_extended = false;
    for (name, value) in client.iter() {
        let kind = request_header(name);
        if kind == RequestHeader::Dropped || (!connection.is_empty() && named_in(&connection, name))
        {
            continue;
        }
        let secret_name = match secret.is_empty() {
            true => None,
            false => secret
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(name)),
        };
        if let Some((_, sent)) = secret_name {
            // One header, one account id.
            if !std::mem::replace(sent, true) {
                sink.header(name, account_key.as_bytes());
            }
            continue;
        }
        match kind {
            RequestHeader::ForwardedFor if forwarded_for_extended => continue,
            RequestHeader::ForwardedFor => {
                let first = !std::mem::replace(&mut forwarded_for, true);
                if first && let Some(extended) = peer.and_then(|p| extended_forwarded_for(value, p))
                {
                    sink.header(name, extended.as_bytes());
                    forwarded_for_extended = true;
                    continue;
                }
            }
            RequestHeader::ForwardedProto => forwarded_proto = true,
            _ => {}
        }
        sink.header(name, value);
    }
    sink.header(b"x-api-key", account_key.as_bytes());
    if !forwarded_for && let Some(value) = peer.and_then(Peer::forwarded_for) {
        sink.header(b"x-forwarded-for", value.as_bytes());
    }
    if !forwarded_proto {
        sink.header(b"x-forwarded-proto", b"http");
    }
}

/// `existing, peer`; a value that is not text is replaced by the peer alone.
fn extended_forwarded_for(existing: &[u8], peer: &Peer) -> Option<HeaderValue> {
    match header_text(existing) {
        Some(existing) => HeaderValue::try_from(format!("{existing}, {}", peer.ip())).ok(),
        None => peer.forwarded_for().cloned(),
    }
}

/// The relay's header lines that go back to the client: those that
/// [`rewrite_response_headers`] keeps, in order, as the relay sent them.
/// Over HTTP/1 they are written out so, never made into a map.
pub fn relay_response_lines(headers: &RelayHeaders) -> impl Iterator<Item = (&[u8], &[u8])> {
    // Most answers have neither: then a line goes unless it is hop-by-hop.
    let stale_length = headers.has_transfer_encoding();
    let mut connection: SmallVec<[&[u8]; 2]> = SmallVec::new();
    if headers.has_connection() {
        for (name, value) in headers.iter() {
            if hop_by_hop_position(name) == Some(CONNECTION_AT) {
                connection.push(value);
            }
        }
    }
    headers.iter().filter(move |(name, _)| {
        hop_by_hop_position(name).is_none()
            && !(stale_length && name.eq_ignore_ascii_case(b"content-length"))
            && (connection.is_empty() || !named_in(&connection, name))
    })
}

/// Whether `Connection` values name `name` (case-insensitive, as header
/// names are).
fn named_in(connection: &[&[u8]], name: &[u8]) -> bool {
    connection.iter().any(|value| {
        value
            .split(|b| *b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(name))
    })
}

/// The relay's headers for an HTTP/2 client, whose answer hyper writes from
/// a map.
pub fn relay_response_map(headers: &RelayHeaders) -> HeaderMap {
    let mut map = headers.to_header_map();
    rewrite_response_headers(&mut map);
    map
}

/// Where a name as sent (any case) is in [`HOP_BY_HOP`].
fn hop_by_hop_position(name: &[u8]) -> Option<usize> {
    HOP_BY_HOP
        .iter()
        .position(|hop| hop.as_str().as_bytes().eq_ignore_ascii_case(name))
}

/// Response headers back to the client: hop-by-hop removed, the rest as is.
/// A `Content-Length` beside a `Transfer-Encoding` is dropped: the body was
/// framed by the transfer coding (RFC 9112 §6.3), so the length is stale, and
/// forwarding it would make the client stop early or wait for bytes that
/// never come. claude-relay-service sends both on its non-streamed answers.
pub fn rewrite_response_headers(headers: &mut HeaderMap) {
    // One scan says which are there; only those are removed. Those that
    // `Connection` names are looked for only when it is there.
    let mut fixed = [false; HOP_BY_HOP_COUNT];
    for name in headers.keys() {
        if let Some(index) = hop_by_hop_index(name) {
            fixed[index] = true;
        }
    }
    let mut named: Vec<HeaderName> = Vec::new();
    if fixed[CONNECTION_AT] {
        let connection: SmallVec<[&[u8]; 2]> = headers
            .get_all(header::CONNECTION)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        named.extend(
            headers
                .keys()
                .filter(|name| {
                    hop_by_hop_index(name).is_none()
                        && named_in(&connection, name.as_str().as_bytes())
                })
                .cloned(),
        );
    }
    if fixed[TRANSFER_ENCODING_AT] {
        headers.remove(header::CONTENT_LENGTH);
    }
    for (name, _) in HOP_BY_HOP.iter().zip(fixed).filter(|(_, there)| *there) {
        headers.remove(name);
    }
    for name in &named {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_head::both_forms;

    fn map(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_str(v).unwrap());
        }
        m
    }

    /// Lines as they would go to the relay.
    impl HeaderSink for Vec<u8> {
        fn header(&mut self, name: &[u8], value: &[u8]) {
            self.extend_from_slice(name);
            self.extend_from_slice(b": ");
            self.extend_from_slice(value);
            self.extend_from_slice(b"\r\n");
        }
    }

    fn peer() -> Peer {
        Peer::new("10.1.2.3".parse().unwrap())
    }

    fn rewrite(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let pairs: Vec<_> = pairs.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        rewritten(&pairs, "acct-1234", Some(&peer()))
    }

    /// The rewrite of both forms of `pairs`, which must send the same
    /// headers (names lowercased and grouped: their order carries no
    /// meaning, RFC 9110 §5.3).
    fn rewritten(pairs: &[(&str, &[u8])], key: &'static str, peer: Option<&Peer>) -> HeaderMap {
        let [lines, map] = both_forms(pairs).map(|client| {
            let mut out = HeaderMap::new();
            upstream_headers(&client, &HeaderValue::from_static(key), peer, &mut out);
            out
        });
        assert_eq!(normalised(&lines), normalised(&map), "{pairs:?}");
        map
    }

    #[test]
    fn hop_by_hop_indexes_match_the_table() {
        for (at, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(at), "{name}");
        }
        assert_eq!(HOP_BY_HOP[CONNECTION_AT], header::CONNECTION);
        assert_eq!(HOP_BY_HOP[TRANSFER_ENCODING_AT], header::TRANSFER_ENCODING);
        assert_eq!(hop_by_hop_index(&header::CONTENT_TYPE), None);
    }

    /// `request_header` names the hop-by-hop headers again, by length, for
    /// speed (a lookup through the table cost 400 instructions per
    /// request): it must drop every one of the table, in any case.
    #[test]
    fn the_request_rewrite_drops_every_hop_by_hop_header() {
        for name in &HOP_BY_HOP {
            for sent in [name.as_str().to_owned(), name.as_str().to_ascii_uppercase()] {
                assert_eq!(
                    request_header(sent.as_bytes()),
                    RequestHeader::Dropped,
                    "{sent}"
                );
            }
        }
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
        assert_eq!(h.get_all("x-api-key").iter().count(), 1);
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
            ("x-spaced", "Bearer  \tsk-ant-oat01-secret"),
            ("x-tabbed", "Bearer\tsk-ant-oat01-secret"),
            ("x-plain", "nothing secret"),
        ]);
        assert_eq!(h["x-custom-auth"], "acct-1234");
        assert_eq!(h["x-other"], "acct-1234");
        assert_eq!(h["x-spaced"], "acct-1234");
        assert_eq!(h["x-tabbed"], "acct-1234");
        assert_eq!(h["x-plain"], "nothing secret");
        assert!(!format!("{h:?}").contains("sk-ant"));
    }

    #[test]
    fn a_secret_among_several_values_leaves_one_account_id() {
        for values in [
            ["plain", "sk-ant-a", "other"],
            ["sk-ant-a", "plain", "other"],
            ["plain", "other", "Bearer sk-ant-a"],
        ] {
            let h = rewrite(&[
                ("x-multi", values[0]),
                ("x-multi", values[1]),
                ("x-multi", values[2]),
                ("x-after", "1"),
            ]);
            let got: Vec<_> = h.get_all("x-multi").iter().collect();
            assert_eq!(got, ["acct-1234"], "{values:?}");
            assert_eq!(h["x-after"], "1");
        }
    }

    #[test]
    fn drops_hop_by_hop_and_connection_named_headers() {
        let h = rewrite(&[
            ("x-drop-me", "1"),
            ("connection", "keep-alive, X-Drop-Me"),
            ("connection", " x-drop-too "),
            ("keep-alive", "timeout=5"),
            ("x-drop-too", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic abc"),
            ("proxy-connection", "keep-alive"),
            ("trailer", "x-t"),
            ("upgrade", "websocket"),
            ("host", "proxy.local"),
            ("content-length", "12"),
            ("x-keep", "1"),
        ]);
        for gone in [
            "connection",
            "keep-alive",
            "x-drop-me",
            "x-drop-too",
            "te",
            "transfer-encoding",
            "proxy-authorization",
            "proxy-connection",
            "trailer",
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
        // Several values: the first is extended, the others go.
        let h = rewrite(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
        ]);
        let got: Vec<_> = h.get_all("x-forwarded-for").iter().collect();
        assert_eq!(got, ["1.1.1.1, 10.1.2.3"]);
        // Named by Connection: dropped, so set afresh.
        let h = rewrite(&[
            ("connection", "x-forwarded-for, x-forwarded-proto"),
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        // Not text: replaced by the peer.
        let h = rewritten(&[("x-forwarded-for", b"1.1.1.1\xff")], "a", Some(&peer()));
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        // No peer: left as sent, every value.
        let sent: &[(&str, &[u8])] = &[("x-forwarded-for", b"1.1.1.1"), ("X-Forwarded-For", b"2")];
        let h = rewritten(sent, "a", None);
        let got: Vec<_> = h.get_all("x-forwarded-for").iter().collect();
        assert_eq!(got, ["1.1.1.1", "2"]);
    }

    #[test]
    fn a_secret_in_a_value_that_is_not_text_is_replaced_too() {
        let h = rewritten(&[("x-other", b"sk-ant-x\xff")], "a", Some(&peer()));
        assert_eq!(h["x-other"], "a");
    }

    #[test]
    fn names_are_matched_in_any_case_and_keep_it_on_the_wire() {
        let sent: &[(&str, &[u8])] = &[
            ("X-Api-Key", b"cr_client_key_123"),
            ("Connection", b"X-Named"),
            ("x-named", b"1"),
            ("X-Secret", b"plain"),
            ("x-secret", b"Bearer sk-ant-a"),
            ("Anthropic-Version", b"2023-06-01"),
        ];
        let h = rewritten(sent, "acct-1234", Some(&peer()));
        assert_eq!(h["x-api-key"], "acct-1234");
        assert!(h.get("x-named").is_none());
        let secret: Vec<_> = h.get_all("x-secret").iter().collect();
        assert_eq!(secret, ["acct-1234"]);
        // Written to the relay as sent, in the order sent.
        let [lines, _] = both_forms(sent);
        let mut head = Vec::new();
        upstream_headers(&lines, &HeaderValue::from_static("k"), None, &mut head);
        let head = String::from_utf8(head).unwrap();
        assert_eq!(
            head,
            "X-Secret: k\r\nAnthropic-Version: 2023-06-01\r\nx-api-key: k\r\nx-forwarded-proto: http\r\n"
        );
    }

    #[test]
    fn response_headers_lose_hop_by_hop_only() {
        let mut h = map(&[
            ("connection", "close, X-Node-Only"),
            ("keep-alive", "timeout=5"),
            ("x-node-only", "1"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/event-stream"),
            ("anthropic-ratelimit-unified-reset", "1800000000"),
        ]);
        rewrite_response_headers(&mut h);
        for gone in [
            "connection",
            "keep-alive",
            "x-node-only",
            "transfer-encoding",
        ] {
            assert!(h.get(gone).is_none(), "{gone} should be removed");
        }
        assert_eq!(h["content-type"], "text/event-stream");
        assert!(h.get("anthropic-ratelimit-unified-reset").is_some());
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn response_headers_without_hop_by_hop_are_untouched() {
        let mut h = map(&[
            ("content-type", "application/json"),
            ("x-a", "1"),
            ("x-a", "2"),
        ]);
        let before = h.clone();
        rewrite_response_headers(&mut h);
        assert_eq!(h, before);
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

    /// The relay's lines for `pairs`, as the relay client parses them.
    fn relay(pairs: &[(&str, &str)]) -> RelayHeaders {
        let lines: String = pairs.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
        RelayHeaders::parsed(&lines)
    }

    #[test]
    fn relay_lines_are_what_the_rewritten_map_keeps() {
        let cases: &[&[(&str, &str)]] = &[
            &[
                ("Connection", "close, X-Node-Only"),
                ("Keep-Alive", "timeout=5"),
                ("x-node-only", "1"),
                ("Transfer-Encoding", "chunked"),
                ("Content-Length", "42"),
                ("Content-Type", "text/event-stream"),
                ("anthropic-ratelimit-unified-reset", "1800000000"),
            ],
            &[
                ("content-type", "application/json"),
                ("x-a", "1"),
                ("X-A", "2"),
            ],
            &[
                ("content-length", "42"),
                ("Proxy-Connection", "keep-alive"),
                ("te", "trailers"),
            ],
            &[
                ("connection", "x-gone"),
                ("connection", "y-gone"),
                ("X-Gone", "1"),
                ("y-gone", "2"),
                ("z", "3"),
            ],
            &[],
        ];
        for pairs in cases {
            let relay = relay(pairs);
            let lines: Vec<(String, Vec<u8>)> = relay_response_lines(&relay)
                .map(|(n, v)| (String::from_utf8_lossy(n).to_ascii_lowercase(), v.to_vec()))
                .collect();
            let map: Vec<(String, Vec<u8>)> = relay_response_map(&relay)
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect();
            let mut sorted = lines.clone();
            sorted.sort();
            let mut map_sorted = map.clone();
            map_sorted.sort();
            assert_eq!(sorted, map_sorted, "{pairs:?}");
        }
        let kept: Vec<_> = relay_response_lines(&relay(cases[1]))
            .map(|(n, _)| n.to_vec())
            .collect();
        assert_eq!(
            kept,
            [&b"content-type"[..], b"x-a", b"X-A"],
            "order and case as sent"
        );
    }

    /// The rewriting as it was before the single pass (a `remove` per name),
    /// to check the new one against: same headers, same values.
    mod before {
        use std::net::IpAddr;

        use super::super::{HOP_BY_HOP, carries_anthropic_secret};
        use http::header::{self, HeaderMap, HeaderName, HeaderValue};

        fn strip_hop_by_hop(headers: &mut HeaderMap) {
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
        }

        pub fn request(headers: &mut HeaderMap, account_key: &HeaderValue, peer: IpAddr) {
            strip_hop_by_hop(headers);
            for name in [
                "host",
                "content-length",
                "x-api-key",
                "authorization",
                "api-key",
            ] {
                headers.remove(name);
            }
            let secret: Vec<HeaderName> = headers
                .iter()
                .filter(|(_, value)| carries_anthropic_secret(value.as_bytes()))
                .map(|(name, _)| name.clone())
                .collect();
            for name in secret {
                headers.insert(name, account_key.clone());
            }
            headers.insert("x-api-key", account_key.clone());
            let forwarded = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(existing) => format!("{existing}, {peer}"),
                None => peer.to_string(),
            };
            headers.insert(
                "x-forwarded-for",
                HeaderValue::from_str(&forwarded).unwrap(),
            );
            if !headers.contains_key("x-forwarded-proto") {
                headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
            }
        }

        pub fn response(headers: &mut HeaderMap) {
            if headers.contains_key(header::TRANSFER_ENCODING) {
                headers.remove(header::CONTENT_LENGTH);
            }
            strip_hop_by_hop(headers);
        }
    }

    /// Each name with its values in order, names sorted: what a backend sees
    /// (the order of different names carries no meaning, RFC 9110 §5.3).
    fn normalised(headers: &HeaderMap) -> Vec<(String, Vec<Vec<u8>>)> {
        let mut out: Vec<_> = headers
            .keys()
            .map(|name| {
                let values = headers.get_all(name).iter().map(|v| v.as_bytes().to_vec());
                (name.to_string(), values.collect())
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn same_headers_as_before_the_single_pass() {
        let pool: [(&'static str, &str); 14] = [
            ("connection", "keep-alive, x-named"),
            ("connection", "X-Forwarded-For"),
            ("x-named", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("content-length", "42"),
            ("x-api-key", "cr_key_1234567"),
            ("authorization", "Bearer sk-ant-x"),
            ("x-secret", "plain"),
            ("x-secret", "authenticator sk-ant-y"),
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
            ("host", "proxy.local"),
            ("content-type", "application/json"),
        ];
        let key = HeaderValue::from_static("acct-1234");
        let peer = self::peer();
        // Every choice of up to four headers of the pool, in pool order.
        for mask in 0u32..(1 << pool.len()) {
            if mask.count_ones() > 4 {
                continue;
            }
            let chosen: Vec<_> = (0..pool.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| pool[i])
                .collect();
            let client = map(&chosen);
            let mut expected = client.clone();
            before::request(&mut expected, &key, peer.ip());
            let sent: Vec<_> = chosen.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
            let got = rewritten(&sent, "acct-1234", Some(&peer));
            assert_eq!(
                normalised(&got),
                normalised(&expected),
                "request {chosen:?}"
            );

            let mut expected = client.clone();
            before::response(&mut expected);
            let mut got = client.clone();
            rewrite_response_headers(&mut got);
            assert_eq!(
                normalised(&got),
                normalised(&expected),
                "response {chosen:?}"
            );
        }
    }
}
