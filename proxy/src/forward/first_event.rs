//! Pure parsing of the first event of a server-sent-events stream, to see
//! whether a `200 text/event-stream` answer is really an error (the relay
//! answers a refused streaming request that way).

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem::Finder;

/// What the bytes read so far say about the first event.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstEvent {
    /// No complete event yet: read more.
    Incomplete,
    /// A normal first event: forward the stream.
    Normal,
    /// An `error` event (by name, or by a payload of `"type": "error"`), with
    /// its data, for [`crate::selection::classify_stream_error`].
    Error { data: Vec<u8> },
}

/// Looks at the first complete event, skipping comment-only blocks
/// (`: ping`) and blocks without fields, as an SSE client would.
pub fn first_event(buffer: &[u8]) -> FirstEvent {
    let mut rest = buffer;
    while let Some((block, after)) = split_block(rest) {
        rest = after;
        let mut name: &[u8] = b"";
        let mut data = DataLines::default();
        for line in lines(block) {
            if line.first() == Some(&b':') {
                continue;
            }
            let (field, value) = match memchr::memchr(b':', line) {
                Some(i) => (&line[..i], strip_one_space(&line[i + 1..])),
                None => (line, &b""[..]),
            };
            match field {
                b"event" => name = value,
                b"data" => data.push(value),
                _ => {}
            }
        }
        if name.is_empty() && data.is_empty() {
            continue;
        }
        let data = data.joined();
        if name == b"error" || payload_type_is_error(&data) {
            return FirstEvent::Error {
                data: data.into_owned(),
            };
        }
        return FirstEvent::Normal;
    }
    FirstEvent::Incomplete
}

/// An event's `data` lines: nearly always one, kept borrowed; several are
/// joined with `\n`.
#[derive(Default)]
struct DataLines<'a> {
    first: Option<&'a [u8]>,
    more: Vec<&'a [u8]>,
}

impl<'a> DataLines<'a> {
    fn push(&mut self, line: &'a [u8]) {
        if self.first.is_none() {
            self.first = Some(line);
        } else {
            self.more.push(line);
        }
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn joined(&self) -> Cow<'a, [u8]> {
        let first = self.first.unwrap_or_default();
        if self.more.is_empty() {
            return Cow::Borrowed(first);
        }
        let mut all = Vec::with_capacity(1 + self.more.len());
        all.push(first);
        all.extend_from_slice(&self.more);
        Cow::Owned(all.join(&b'\n'))
    }
}

/// Whether the data is JSON whose top-level `type` is `"error"`. Parsed only
/// when it could be: a string can only read `error` if the word is there as
/// is, or if an escape (`\u0065`) spells a letter of it. A first event
/// (`message_start`) is neither, and is not parsed.
fn payload_type_is_error(data: &[u8]) -> bool {
    static ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"error"));
    if ERROR.find(data).is_none() && memchr::memchr(b'\\', data).is_none() {
        return false;
    }
    let payload: Option<serde_json::Value> = serde_json::from_slice(data).ok();
    payload
        .as_ref()
        .is_some_and(|p| p.get("type").and_then(|t| t.as_str()) == Some("error"))
}

/// The bytes up to the first blank line, and what follows it.
fn split_block(buffer: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut i = 0;
    // Only line ends matter: jump from one to the next.
    while let Some(found) = memchr::memchr2(b'\n', b'\r', &buffer[i..]) {
        i += found;
        // A line ends at \r\n, \n or \r; a block ends at an empty line.
        let next = match buffer[i] {
            b'\n' => i + 1,
            b'\r' if buffer.get(i + 1) == Some(&b'\n') => i + 2,
            // A lone \r at the very end may still be followed by \n, unless
            // it already ends an empty line.
            b'\r'
                if i + 1 == buffer.len() && !(i > 0 && matches!(buffer[i - 1], b'\n' | b'\r')) =>
            {
                return None;
            }
            _ => i + 1,
        };
        let line_starts_block = i == 0;
        let previous_was_eol = i > 0 && matches!(buffer[i - 1], b'\n' | b'\r');
        if line_starts_block || previous_was_eol {
            return Some((&buffer[..i], &buffer[next..]));
        }
        i = next;
    }
    None
}

/// The non-empty lines of a block (split at every `\n` and `\r`).
fn lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(block);
    std::iter::from_fn(move || {
        loop {
            let current = rest?;
            let (line, after) = match memchr::memchr2(b'\n', b'\r', current) {
                Some(end) => (&current[..end], Some(&current[end + 1..])),
                None => (current, None),
            };
            rest = after;
            if !line.is_empty() {
                return Some(line);
            }
        }
    })
}

fn strip_one_space(value: &[u8]) -> &[u8] {
    value.strip_prefix(b" ").unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Anthropic's `error.type` in an error verdict's data.
    fn error_type(verdict: FirstEvent) -> Option<String> {
        let FirstEvent::Error { data } = verdict else {
            panic!("not an error: {verdict:?}");
        };
        let payload: serde_json::Value = serde_json::from_slice(&data).ok()?;
        payload.pointer("/error/type")?.as_str().map(str::to_string)
    }

    #[test]
    fn normal_first_event() {
        let stream = b"event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: ping\n";
        assert_eq!(first_event(stream), FirstEvent::Normal);
    }

    #[test]
    fn error_event_with_type() {
        let stream = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"x\"}}\n\n";
        assert_eq!(
            error_type(first_event(stream)),
            Some("rate_limit_error".into())
        );
    }

    #[test]
    fn error_payload_without_event_name() {
        let stream =
            b"data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\r\n\r\n";
        assert_eq!(
            error_type(first_event(stream)),
            Some("overloaded_error".into())
        );
    }

    #[test]
    fn error_event_with_unparsable_data() {
        assert_eq!(
            first_event(b"event: error\ndata: oops\n\n"),
            FirstEvent::Error {
                data: b"oops".to_vec()
            }
        );
    }

    #[test]
    fn incomplete_until_the_blank_line() {
        assert_eq!(first_event(b""), FirstEvent::Incomplete);
        assert_eq!(
            first_event(b"event: error\ndata: {\"ty"),
            FirstEvent::Incomplete
        );
        assert_eq!(
            first_event(b"event: message_start\ndata: {}\n"),
            FirstEvent::Incomplete
        );
        assert_eq!(
            first_event(b"event: message_start\ndata: {}\r"),
            FirstEvent::Incomplete
        );
        assert_eq!(
            first_event(b"event: message_start\ndata: {}\r\n\r\n"),
            FirstEvent::Normal
        );
        assert_eq!(
            first_event(b"event: message_start\rdata: {}\r\r"),
            FirstEvent::Normal
        );
    }

    #[test]
    fn comments_and_empty_blocks_are_skipped() {
        let stream = b": ping\n\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}\n\n";
        assert_eq!(error_type(first_event(stream)), Some("api_error".into()));
        assert_eq!(first_event(b": keep-alive\n\n"), FirstEvent::Incomplete);
    }

    #[test]
    fn multi_line_data_is_joined() {
        let stream = b"event: error\ndata: {\"type\":\"error\",\ndata: \"error\":{\"type\":\"permission_error\"}}\n\n";
        assert_eq!(
            error_type(first_event(stream)),
            Some("permission_error".into())
        );
    }

    #[test]
    fn the_payload_type_is_read_however_it_is_written() {
        for (payload, is_error) in [
            (
                &br#"{"type":"error","error":{"type":"api_error"}}"#[..],
                true,
            ),
            (
                br#"{"type":"message_start","message":{"type":"error"}}"#,
                false,
            ),
            (br#"{ "error": {"type": "x"}, "type" : "error" }"#, true),
            (br#"{"type":"err\u006fr"}"#, true),
            (br#"{"type":"errors"}"#, false),
            (br#"{"type":"error"#, false),
            (br#"{"message":{"type":"error"}}"#, false),
            (b"[1,2]", false),
            (b"not json", false),
        ] {
            assert_eq!(
                payload_type_is_error(payload),
                is_error,
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for input in [
            &b"\r"[..],
            b"\n",
            b"\r\n",
            b"\n\r",
            b"::\n\n",
            b"data\n\n",
            b"\xff\xfe\n\n",
        ] {
            let _ = first_event(input);
        }
    }

    #[test]
    fn an_escaped_error_type_is_still_an_error() {
        let stream = b"data: {\"type\":\"\\u0065rror\",\"error\":{\"type\":\"api_error\"}}\n\n";
        assert_eq!(error_type(first_event(stream)), Some("api_error".into()));
        let stream = b"data: {\"type\":\"message_start\",\"note\":\"error\"}\n\n";
        assert_eq!(first_event(stream), FirstEvent::Normal);
    }

    /// The parsing as it was before line ends were found with memchr and the
    /// payload parsed only when it may be an error, to check the new one against.
    mod before {
        use super::super::{FirstEvent, strip_one_space};

        pub fn first_event(buffer: &[u8]) -> FirstEvent {
            let mut rest = buffer;
            while let Some((block, after)) = split_block(rest) {
                rest = after;
                let mut name: &[u8] = b"";
                let mut data: Vec<&[u8]> = Vec::new();
                for line in block
                    .split(|b| *b == b'\n' || *b == b'\r')
                    .filter(|line| !line.is_empty())
                {
                    if line.first() == Some(&b':') {
                        continue;
                    }
                    let (field, value) = match line.iter().position(|b| *b == b':') {
                        Some(i) => (&line[..i], strip_one_space(&line[i + 1..])),
                        None => (line, &b""[..]),
                    };
                    match field {
                        b"event" => name = value,
                        b"data" => data.push(value),
                        _ => {}
                    }
                }
                if name.is_empty() && data.is_empty() {
                    continue;
                }
                let data = data.join(&b'\n');
                let payload: Option<serde_json::Value> = serde_json::from_slice(&data).ok();
                let payload_is_error = payload
                    .as_ref()
                    .is_some_and(|p| p.get("type").and_then(|t| t.as_str()) == Some("error"));
                if name == b"error" || payload_is_error {
                    return FirstEvent::Error { data };
                }
                return FirstEvent::Normal;
            }
            FirstEvent::Incomplete
        }

        fn split_block(buffer: &[u8]) -> Option<(&[u8], &[u8])> {
            let mut i = 0;
            while i < buffer.len() {
                let end_of_line = match buffer[i] {
                    b'\n' => Some(i + 1),
                    b'\r' if buffer.get(i + 1) == Some(&b'\n') => Some(i + 2),
                    b'\r'
                        if i + 1 == buffer.len()
                            && !(i > 0 && matches!(buffer[i - 1], b'\n' | b'\r')) =>
                    {
                        return None;
                    }
                    b'\r' => Some(i + 1),
                    _ => None,
                };
                if let Some(next) = end_of_line {
                    let line_starts_block = i == 0;
                    let previous_was_eol = i > 0 && matches!(buffer[i - 1], b'\n' | b'\r');
                    if line_starts_block || previous_was_eol {
                        return Some((&buffer[..i], &buffer[next..]));
                    }
                    i = next;
                } else {
                    i += 1;
                }
            }
            None
        }
    }

    #[test]
    fn same_verdicts_as_before_on_every_prefix() {
        let streams: [&[u8]; 8] = [
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\nevent: ping\ndata: {}\n\n",
            b": ping\r\n\r\n\r\nevent: error\r\ndata: {\"type\":\"error\",\r\ndata: \"error\":{\"type\":\"overloaded_error\"}}\r\n\r\n",
            b"data: {\"type\":\"\\u0065rror\"}\r\rdata: x\n\n",
            b"event:error\ndata:oops\n\n",
            b"event: message_start\rdata: {\"type\": \"errors\"}\r\r",
            b"data: {\"type\":\"error\",\"x\":\"\xff\"}\n\n",
            b"\n\r\n:\r\ndata\ndata:\n\nevent: x\n\n",
            b"event: message_start\ndata: [\"error\"]\n\ndata: {\"type\":\"error\"}\n\n",
        ];
        for stream in streams {
            for cut in 0..=stream.len() {
                let prefix = &stream[..cut];
                assert_eq!(
                    first_event(prefix),
                    before::first_event(prefix),
                    "{:?}",
                    String::from_utf8_lossy(prefix)
                );
            }
        }
    }
}
