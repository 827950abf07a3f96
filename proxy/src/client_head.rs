//! A client's request head as the routes take it, its headers in the form
//! the server read them in: over HTTP/1 the head's own lines, over HTTP/2
//! hyper's map. Auth, sessions and the rewrite for the relay read them
//! through [`ClientHeaders`], so an HTTP/1 request is never made into a
//! `HeaderMap` (hashing its names and building the map cost about a tenth
//! of the proxy's instructions per request, `bench/cost.sh`).

use either::Either;
use http::{HeaderMap, Method, Uri, Version};

use crate::header_lines::HeaderLines;

/// Method, target, version and headers of one request; its body comes
/// beside it.
#[derive(Debug)]
pub struct ClientHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: ClientHeaders,
}

/// A request's headers, as the server read them.
#[derive(Debug)]
pub enum ClientHeaders {
    /// HTTP/1: the lines as sent, names in any case.
    Lines(HeaderLines),
    /// HTTP/2: hyper's map, names in lowercase.
    Map(HeaderMap),
}

impl ClientHeaders {
    /// Each header, in order (a map gives the values of a name together):
    /// its name, its value.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        match self {
            Self::Lines(lines) => Either::Left(lines.iter()),
            Self::Map(map) => Either::Right(
                map.iter()
                    .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes())),
            ),
        }
    }

    /// The first value of `name` (given in lowercase), in any case.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        match self {
            Self::Lines(lines) => lines.get(name),
            Self::Map(map) => map.get(name).map(|value| value.as_bytes()),
        }
    }

    /// The first value of `name` as text: visible ASCII and tabs only, as
    /// `HeaderValue::to_str` reads it.
    pub fn get_text(&self, name: &str) -> Option<&str> {
        header_text(self.get(name)?)
    }
}

/// A header value as text: visible ASCII and tabs only, as
/// `HeaderValue::to_str` reads it.
pub fn header_text(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|b| *b == b'\t' || (b' '..=b'~').contains(b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

impl From<http::request::Parts> for ClientHead {
    fn from(parts: http::request::Parts) -> Self {
        Self {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: ClientHeaders::Map(parts.headers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_map_read_alike() {
        let lines = ClientHeaders::Lines(HeaderLines::from_text(
            "X-Api-Key: k1\r\nAccept: */*\r\nx-api-key: k2\r\n",
        ));
        let mut map = HeaderMap::new();
        map.append("x-api-key", "k1".parse().unwrap());
        map.append("accept", "*/*".parse().unwrap());
        map.append("x-api-key", "k2".parse().unwrap());
        let map = ClientHeaders::Map(map);
        for headers in [&lines, &map] {
            assert_eq!(headers.get("x-api-key"), Some(&b"k1"[..]));
            assert_eq!(headers.get("accept"), Some(&b"*/*"[..]));
            assert_eq!(headers.get("host"), None);
            let keys = headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case(b"x-api-key"))
                .count();
            assert_eq!(keys, 2);
        }
    }

    #[test]
    fn text_is_visible_ascii_only() {
        let lines = ClientHeaders::Lines(HeaderLines::from_text(
            b"a: x y\r\nb: caf\xc3\xa9\r\nc: \xff\r\n",
        ));
        assert_eq!(lines.get_text("a"), Some("x y"));
        assert_eq!(lines.get_text("b"), None);
        assert_eq!(lines.get_text("c"), None);
        assert_eq!(lines.get_text("d"), None);
    }
}
