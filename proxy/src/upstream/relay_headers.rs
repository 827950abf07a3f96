//! An answer head's header lines as the relay sent them ([`HeaderLines`]),
//! and what the codec noted of them as it read them. The proxy reads a
//! handful (content type, reset and retry headers) and passes the rest on.

use http::header::HeaderMap;

use crate::header_lines::HeaderLines;

/// The header lines of one answer head, and what the codec noted of them.
#[derive(Debug, Clone, Default)]
pub struct RelayHeaders {
    lines: HeaderLines,
    noted: Noted,
}

/// What the parser noted of the lines as it read them, so that the usual
/// questions need no scan (the codec's `FramingHeaders::noted`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Noted {
    /// The first `content-type` line.
    pub content_type: Option<u16>,
    /// A `connection` line is there.
    pub connection: bool,
    /// A `transfer-encoding` line is there.
    pub transfer_encoding: bool,
}

impl RelayHeaders {
    /// `noted` is what the codec made of `lines`.
    pub(super) fn new(lines: HeaderLines, noted: Noted) -> Self {
        Self { lines, noted }
    }

    /// The first `content-type` value.
    pub fn content_type(&self) -> Option<&[u8]> {
        self.lines.value_at(usize::from(self.noted.content_type?))
    }

    /// Whether a `connection` line is there (it may name others to drop).
    pub fn has_connection(&self) -> bool {
        self.noted.connection
    }

    /// Whether a `transfer-encoding` line is there (a length beside it is
    /// stale).
    pub fn has_transfer_encoding(&self) -> bool {
        self.noted.transfer_encoding
    }

    /// Each header line, in order: its name as sent, its value.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.lines.iter()
    }

    /// The first value of `name` (given in lowercase), in any case.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.lines.get(name)
    }

    /// The lines as a map, values shared with the head.
    pub fn to_header_map(&self) -> HeaderMap {
        self.lines.to_header_map()
    }

    /// The headers of an answer head with `lines` (`Name: value`, each
    /// ended by CRLF), parsed and noted by the relay client's codec.
    #[cfg(test)]
    pub fn parsed(lines: &str) -> Self {
        use super::codec::{Parsed, parse_response_head};
        let head = format!("HTTP/1.1 200 OK\r\n{lines}\r\n");
        match parse_response_head(&mut head.as_str().into(), &http::Method::GET) {
            Ok(Parsed::Final(head)) => head.headers,
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(text: &str) -> RelayHeaders {
        RelayHeaders::parsed(text)
    }

    #[test]
    fn names_are_found_in_any_case_and_the_first_value_wins() {
        let h = headers("Content-Type: text/event-stream\r\nx-a: 1\r\nX-A: 2\r\n");
        assert_eq!(h.get("content-type"), Some(&b"text/event-stream"[..]));
        assert_eq!(h.get("x-a"), Some(&b"1"[..]));
        assert_eq!(h.get("x-b"), None);
        assert_eq!(h.content_type(), Some(&b"text/event-stream"[..]));
        assert!(!h.has_connection() && !h.has_transfer_encoding());
        let framed = headers("x: 1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n");
        assert!(framed.has_connection() && framed.has_transfer_encoding());
        assert_eq!(framed.content_type(), None);
        let all: Vec<_> = h.iter().collect();
        assert_eq!(all[2], (&b"X-A"[..], &b"2"[..]));
    }
}
