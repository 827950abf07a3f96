//! Pure parsing of the first event of a server-sent-events stream, to see
//! whether a `200 text/event-stream` answer is really an error (the relay
//! answers a refused streaming request that way).

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
        let mut data: Vec<&[u8]> = Vec::new();
        for line in lines(block) {
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
        // One data line is the rule; only several are joined (SSE's "\n").
        let joined;
        let payload: &[u8] = match data.as_slice() {
            [one] => one,
            lines => {
                joined = lines.join(&b'\n');
                &joined
            }
        };
        if name == b"error" || payload_type_is_error(payload) {
            return FirstEvent::Error {
                data: payload.to_vec(),
            };
        }
        return FirstEvent::Normal;
    }
    FirstEvent::Incomplete
}

/// Whether a JSON payload's top-level `type` is `"error"`, read without
/// building the document: a first event is usually `message_start`, which
/// carries the whole message object, and only this one field matters.
fn payload_type_is_error(payload: &[u8]) -> bool {
    // Anthropic writes `type` first: `{"type":"message_start",…}`.
    if let Some(rest) = payload.strip_prefix(br#"{"type":""#)
        && let Some(end) = rest.iter().position(|b| *b == b'"' || *b == b'\\')
        && rest[end] == b'"'
    {
        return &rest[..end] == b"error";
    }
    #[derive(serde::Deserialize)]
    struct Typed<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Typed<'_>>(payload)
        .is_ok_and(|typed| typed.kind.as_deref() == Some("error"))
}

/// The bytes up to the first blank line, and what follows it.
fn split_block(buffer: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut i = 0;
    while i < buffer.len() {
        // A line ends at \r\n, \n or \r; a block ends at an empty line.
        let end_of_line = match buffer[i] {
            b'\n' => Some(i + 1),
            b'\r' if buffer.get(i + 1) == Some(&b'\n') => Some(i + 2),
            // A lone \r at the very end may still be followed by \n, unless
            // it already ends an empty line.
            b'\r'
                if i + 1 == buffer.len() && !(i > 0 && matches!(buffer[i - 1], b'\n' | b'\r')) =>
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

fn lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    block
        .split(|b| *b == b'\n' || *b == b'\r')
        .filter(|line| !line.is_empty())
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
}
