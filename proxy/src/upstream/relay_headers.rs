//! An answer head's header lines as the relay sent them, kept as bytes.
//!
//! The proxy reads a handful of them (content type, reset and retry
//! headers) and passes the rest on, so over HTTP/1 they are never made into
//! a `HeaderMap`: hashing each name, allocating the map and dropping it cost
//! more than the rest of reading the answer head (`bench/cost.sh`). An
//! HTTP/2 client, whose answers hyper writes, gets them as a map
//! ([`RelayHeaders::to_header_map`]).

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use smallvec::SmallVec;

use crate::header_names::header_name;

/// The header lines of one answer head. Names and values are as httparse
/// accepted them: names are tokens, values hold no control characters but
/// tabs.
#[derive(Debug, Clone, Default)]
pub struct RelayHeaders {
    head: Bytes,
    lines: SmallVec<[Line; 12]>,
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

/// Where a header line's name and value are in the head.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line {
    pub name: u16,
    pub name_len: u16,
    pub value: u16,
    pub value_len: u16,
}

impl Line {
    fn name<'a>(&self, head: &'a [u8]) -> &'a [u8] {
        let at = usize::from(self.name);
        &head[at..at + usize::from(self.name_len)]
    }

    fn value_range(&self) -> std::ops::Range<usize> {
        let at = usize::from(self.value);
        at..at + usize::from(self.value_len)
    }
}

impl RelayHeaders {
    /// `lines` index into `head`; `noted` is what [`Noted::note`] made of
    /// them.
    pub(super) fn new(head: Bytes, lines: SmallVec<[Line; 12]>, noted: Noted) -> Self {
        Self { head, lines, noted }
    }

    /// The first `content-type` value.
    pub fn content_type(&self) -> Option<&[u8]> {
        let line = self.lines.get(usize::from(self.noted.content_type?))?;
        Some(&self.head[line.value_range()])
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
        self.lines
            .iter()
            .map(|line| (line.name(&self.head), &self.head[line.value_range()]))
    }

    /// The first value of `name` (given in lowercase), in any case.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(line, _)| line.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }

    /// The lines as a map, values shared with the head.
    pub fn to_header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.lines.len());
        for line in &self.lines {
            let name = header_name(line.name(&self.head));
            let value = HeaderValue::from_maybe_shared(self.head.slice(line.value_range()));
            // httparse accepted both, and both accept what httparse does.
            if let (Ok(name), Ok(value)) = (name, value) {
                map.append(name, value);
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers parsed the way the codec does, from `text` lines.
    fn headers(text: &str) -> RelayHeaders {
        let head = Bytes::from(text.to_owned());
        let mut lines = SmallVec::new();
        let mut noted = Noted::default();
        let mut at = 0;
        for line in text.split_inclusive("\r\n") {
            let (name, value) = line.trim_end().split_once(": ").unwrap();
            if name.eq_ignore_ascii_case("content-type") {
                noted.content_type = noted.content_type.or(Some(lines.len() as u16));
            }
            noted.connection |= name.eq_ignore_ascii_case("connection");
            noted.transfer_encoding |= name.eq_ignore_ascii_case("transfer-encoding");
            lines.push(Line {
                name: at as u16,
                name_len: name.len() as u16,
                value: (at + name.len() + 2) as u16,
                value_len: value.len() as u16,
            });
            at += line.len();
        }
        RelayHeaders::new(head, lines, noted)
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

    #[test]
    fn the_map_holds_every_line_lowercased() {
        let map = headers("Content-Type: application/json\r\nx-a: 1\r\nX-A: 2\r\n").to_header_map();
        assert_eq!(map["content-type"], "application/json");
        let all: Vec<_> = map.get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
    }
}
