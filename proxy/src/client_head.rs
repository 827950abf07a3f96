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
    /// HTTP/1: the lines as sent, names in any case, and what the parser
    /// noted of them.
    Lines(HeaderLines, Noted),
    /// HTTP/2: hyper's map, names in lowercase.
    Map(HeaderMap),
}

/// What the rewrite for the relay has to look for first, and nearly no
/// request has. The HTTP/1 parser notes it as it reads each line, which
/// spares the rewrite a pass over the lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Noted {
    /// A `Connection` header is there (it may name others to drop).
    pub connection: bool,
    /// A value carries an Anthropic secret ([`carries_anthropic_secret`]).
    pub anthropic_secret: bool,
}

impl Noted {
    /// Notes one header.
    pub fn note(&mut self, name: &[u8], value: &[u8]) {
        self.connection |= name.eq_ignore_ascii_case(b"connection");
        self.anthropic_secret |= carries_anthropic_secret(value);
    }
}

/// An Anthropic secret as clients send it: `sk-ant-…`, `Bearer sk-ant-…`,
/// or `authenticator sk-ant-…` (claude-relay-service's format), whether
/// the rest of the value is text or not.
pub fn carries_anthropic_secret(value: &[u8]) -> bool {
    // After the scheme, a space or a tab; header values hold no line
    // breaks, so only spaces and tabs are trimmed.
    let token = match memchr::memchr2(b' ', b'\t', value) {
        Some(space) => value[space + 1..].trim_ascii_start(),
        None => value,
    };
    token.starts_with(b"sk-ant-")
}

impl ClientHeaders {
    /// HTTP/1 lines, noted by a scan of them (the parser notes them as it
    /// reads them instead).
    #[cfg(test)]
    pub fn lines(lines: HeaderLines) -> Self {
        let mut noted = Noted::default();
        lines
            .iter()
            .for_each(|(name, value)| noted.note(name, value));
        Self::Lines(lines, noted)
    }

    /// What [`Noted`] says: as the parser noted it, or found by a scan of a
    /// map.
    pub fn noted(&self) -> Noted {
        match self {
            Self::Lines(_, noted) => *noted,
            Self::Map(_) => {
                let mut noted = Noted::default();
                self.iter()
                    .for_each(|(name, value)| noted.note(name, value));
                noted
            }
        }
    }

    /// Each header, in order (a map gives the values of a name together):
    /// its name, its value.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        match self {
            Self::Lines(lines, _) => Either::Left(lines.iter()),
            Self::Map(map) => Either::Right(
                map.iter()
                    .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes())),
            ),
        }
    }

    /// The first value of `name` (given in lowercase), in any case.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        match self {
            Self::Lines(lines, _) => lines.get(name),
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

/// The same headers as an HTTP/1 head's lines and as an HTTP/2 map, for
/// tests that hold both forms to the same result.
#[cfg(test)]
pub fn both_forms(pairs: &[(&str, &[u8])]) -> [ClientHeaders; 2] {
    let mut text = Vec::new();
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        text.extend_from_slice(format!("{name}: ").as_bytes());
        text.extend_from_slice(value);
        text.extend_from_slice(b"\r\n");
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            http::HeaderValue::from_bytes(value).expect("a header value"),
        );
    }
    [
        ClientHeaders::lines(HeaderLines::from_text(text)),
        ClientHeaders::Map(map),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_map_read_alike() {
        let lines = ClientHeaders::lines(HeaderLines::from_text(
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
    fn the_rare_headers_are_noted_alike() {
        let mut map = HeaderMap::new();
        map.append("x-a", "Bearer sk-ant-x".parse().unwrap());
        assert_eq!(
            ClientHeaders::Map(map).noted(),
            Noted {
                connection: false,
                anthropic_secret: true
            }
        );
        let lines = ClientHeaders::lines(HeaderLines::from_text("Connection: close\r\n"));
        assert_eq!(
            lines.noted(),
            Noted {
                connection: true,
                anthropic_secret: false
            }
        );
        assert_eq!(
            ClientHeaders::lines(HeaderLines::default()).noted(),
            Noted::default()
        );
    }

    #[test]
    fn text_is_visible_ascii_only() {
        let lines = ClientHeaders::lines(HeaderLines::from_text(
            b"a: x y\r\nb: caf\xc3\xa9\r\nc: \xff\r\n",
        ));
        assert_eq!(lines.get_text("a"), Some("x y"));
        assert_eq!(lines.get_text("b"), None);
        assert_eq!(lines.get_text("c"), None);
        assert_eq!(lines.get_text("d"), None);
    }
}
