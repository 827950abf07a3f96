//! A head's header lines kept as the peer sent them: byte ranges into the
//! head, which is shared, not copied.
//!
//! Both HTTP/1 parsers (the client's request head, the relay's answer head)
//! keep their lines so. The proxy reads a handful of headers and passes the
//! rest on, so a `HeaderMap` (each name hashed, and often allocated, the map
//! built and dropped) cost more than the rest of reading a head
//! (`bench/cost.sh`). A map is made only where hyper needs one, for an
//! HTTP/2 client ([`HeaderLines::to_header_map`]).

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use smallvec::SmallVec;

use crate::header_names::header_name;

/// Lines kept inline; a head with more spills to the heap. Eight, not
/// more: a head is moved through several futures on its way, and callgrind
/// shows each move of a value over 256 bytes costing twice one under it
/// (16 lines: 900 instructions more per request). For a longer head, one
/// allocation costs less than those moves.
const INLINE_LINES: usize = 8;

/// The header lines of one head. Names and values are as httparse accepted
/// them: names are tokens, values hold no control characters but tabs, which
/// is what `HeaderName` and `HeaderValue` accept too.
#[derive(Debug, Clone, Default)]
pub struct HeaderLines {
    head: Bytes,
    lines: SmallVec<[Line; INLINE_LINES]>,
}

/// Where a header line's name and value are in the head. A head is at most
/// 64 KiB, so offsets fit in 16 bits.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    name: u16,
    name_len: u16,
    value: u16,
    value_len: u16,
}

impl Line {
    /// The line of `name` and `value`, two slices of a head that starts at
    /// address `base` and is at most 64 KiB long.
    pub fn locate(base: *const u8, name: &[u8], value: &[u8]) -> Self {
        let offset = |part: &[u8]| (part.as_ptr() as usize - base as usize) as u16;
        Self {
            name: offset(name),
            name_len: name.len() as u16,
            value: offset(value),
            value_len: value.len() as u16,
        }
    }

    fn name<'a>(&self, head: &'a [u8]) -> &'a [u8] {
        let at = usize::from(self.name);
        &head[at..at + usize::from(self.name_len)]
    }

    fn value_range(&self) -> std::ops::Range<usize> {
        let at = usize::from(self.value);
        at..at + usize::from(self.value_len)
    }
}

/// The lines of a head, gathered while its parser still borrows it.
pub type Lines = SmallVec<[Line; INLINE_LINES]>;

impl HeaderLines {
    /// `lines` index into `head`, as [`Line::locate`] made them.
    pub fn new(head: Bytes, lines: Lines) -> Self {
        debug_assert!(lines.iter().all(|line| {
            usize::from(line.name) + usize::from(line.name_len) <= head.len()
                && line.value_range().end <= head.len()
        }));
        Self { head, lines }
    }

    /// Each header line, in order: its name as sent (any case), its value.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.lines
            .iter()
            .map(|line| (line.name(&self.head), &self.head[line.value_range()]))
    }

    /// The value of line `index`.
    pub fn value_at(&self, index: usize) -> Option<&[u8]> {
        let line = self.lines.get(index)?;
        Some(&self.head[line.value_range()])
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

    /// Lines from `text`, `Name: value` each ended by CRLF, the way the
    /// parsers lay them out.
    #[cfg(test)]
    pub fn from_text(text: impl AsRef<[u8]>) -> Self {
        let head = Bytes::copy_from_slice(text.as_ref());
        let mut lines = Lines::new();
        for line in head.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let colon = line.iter().position(|b| *b == b':').expect("a colon");
            let value = line[colon + 1..].trim_ascii();
            lines.push(Line::locate(head.as_ptr(), &line[..colon], value));
        }
        Self::new(head, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_in_any_case_and_the_first_value_wins() {
        let h = HeaderLines::from_text("Content-Type: text/event-stream\r\nx-a: 1\r\nX-A: 2\r\n");
        assert_eq!(h.get("content-type"), Some(&b"text/event-stream"[..]));
        assert_eq!(h.get("x-a"), Some(&b"1"[..]));
        assert_eq!(h.get("x-b"), None);
        assert_eq!(h.value_at(0), Some(&b"text/event-stream"[..]));
        assert_eq!(h.value_at(3), None);
        let all: Vec<_> = h.iter().collect();
        assert_eq!(all[2], (&b"X-A"[..], &b"2"[..]));
    }

    #[test]
    fn a_head_longer_than_the_inline_lines_keeps_them_all() {
        let text: String = (0..INLINE_LINES * 2)
            .map(|i| format!("x-{i}: {i}\r\n"))
            .collect();
        let h = HeaderLines::from_text(&text);
        assert_eq!(h.iter().count(), INLINE_LINES * 2);
        let last = (INLINE_LINES * 2 - 1).to_string();
        assert_eq!(h.get(&format!("x-{last}")), Some(last.as_bytes()));
    }

    #[test]
    fn the_map_holds_every_line_lowercased() {
        let map = HeaderLines::from_text("Content-Type: application/json\r\nx-a: 1\r\nX-A: 2\r\n")
            .to_header_map();
        assert_eq!(map["content-type"], "application/json");
        let all: Vec<_> = map.get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
    }
}
