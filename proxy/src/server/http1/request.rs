//! A client's request head, parsed from the connection's buffer: the
//! [`ClientHead`] the routes take, its headers kept as the head's lines,
//! and what the head says of the body's framing and of the connection
//! (RFC 9112). Pure: no I/O.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::{Method, StatusCode, Uri, Version};

use crate::client_head::{ClientHead, ClientHeaders, Noted};
use crate::header_lines::{HeaderLines, Line, Lines};
use crate::upstream::codec::{Framing, content_length};

/// A request head larger than this is refused with 431. Offsets in a head
/// fit in 16 bits.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Header lines in one request head, at most (hyper's default too).
const MAX_HEADERS: usize = 100;

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    /// Method, target, version and headers; the body is read separately.
    pub head: ClientHead,
    /// How the body is delimited: `Empty`, `Length` or `Chunked`.
    pub body: Framing,
    /// The client lets the connection stay open after this exchange.
    pub keep_alive: bool,
    /// The client waits for `100 Continue` before it sends the body.
    pub expect_continue: bool,
}

/// A head the server refuses; the connection closes after the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed request head")]
    Malformed,
    #[error("request head too large (over 64 KiB or 100 header lines)")]
    TooLarge,
    #[error("conflicting or invalid Content-Length")]
    InvalidLength,
    #[error("a request body is accepted with no transfer coding or with chunked alone")]
    UnsupportedTransferCoding,
}

impl HeadError {
    pub fn status(self) -> StatusCode {
        match self {
            Self::Malformed | Self::InvalidLength => StatusCode::BAD_REQUEST,
            Self::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

/// Parses one request head at the front of `buffer` and consumes it
/// (`None`: more bytes are needed). The head is split off the buffer and
/// shared: the target and the header lines are read from it, not copied.
pub fn parse_request_head(buffer: &mut BytesMut) -> Result<Option<RequestHead>, HeadError> {
    // Uninitialised: httparse fills what it uses, and zeroing 100 slots
    // costs more than parsing a usual head.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let status = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut parsed,
        buffer,
        &mut slots,
    );
    let head_len = match status {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD_BYTES => len,
        Ok(httparse::Status::Partial) if buffer.len() <= MAX_HEAD_BYTES => return Ok(None),
        Ok(_) | Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    let method = parsed.method.ok_or(HeadError::Malformed)?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Malformed)?;
    let version = match parsed.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => return Err(HeadError::Malformed),
    };
    // Where the target and each header sit in the buffer, so that the head
    // can be split off and shared before the values are made from it.
    let base = buffer.as_ptr();
    let target = parsed.path.ok_or(HeadError::Malformed)?.as_bytes();
    let target_at = target.as_ptr() as usize - base as usize;
    let target = target_at..target_at + target.len();
    let mut lines = Lines::new();
    let mut framing = FramingHeaders::default();
    let mut noted = Noted::default();
    for h in parsed.headers.iter() {
        framing.note(h.name.as_bytes(), h.value)?;
        noted.note(h.name.as_bytes(), h.value);
        lines.push(Line::locate(base, h.name.as_bytes(), h.value));
    }
    let head = buffer.split_to(head_len).freeze();

    let uri = Uri::from_maybe_shared(head.slice(target)).map_err(|_| HeadError::Malformed)?;
    let head = ClientHead {
        method,
        uri,
        version,
        headers: ClientHeaders::Lines(HeaderLines::new(head, lines), noted),
    };
    framing.into_head(head)
}

/// What the headers say of the body's framing and of the connection, noted
/// as they are read.
#[derive(Default)]
struct FramingHeaders {
    /// Whether `Transfer-Encoding` is there, and whether it is exactly
    /// `chunked` (so far).
    transfer_encoding: Option<bool>,
    length: Option<u64>,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

impl FramingHeaders {
    fn note(&mut self, name: &[u8], value: &[u8]) -> Result<(), HeadError> {
        let tokens = || value.split(|b| *b == b',').map(<[u8]>::trim_ascii);
        if name.eq_ignore_ascii_case(b"content-length") {
            for part in tokens() {
                let n = content_length(part).map_err(|_| HeadError::InvalidLength)?;
                if self.length.is_some_and(|seen| seen != n) {
                    return Err(HeadError::InvalidLength);
                }
                self.length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only `chunked`, once: any other coding would reach the relay
            // still encoded, under a Content-Length of its encoded size.
            let chunked_alone = self.transfer_encoding.is_none()
                && value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            self.transfer_encoding = Some(chunked_alone);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in tokens() {
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            self.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }

    /// The body's framing (RFC 9112 §6.3) and the connection's fate.
    fn into_head(self, head: ClientHead) -> Result<Option<RequestHead>, HeadError> {
        let http11 = head.version == Version::HTTP_11;
        let mut keep_alive = match http11 {
            true => !self.close,
            false => self.keep_alive && !self.close,
        };
        let body = match (self.transfer_encoding, self.length) {
            (Some(true), length) if http11 => {
                // A length beside chunked is ignored (point 3), and the
                // connection not trusted with another request.
                keep_alive &= length.is_none();
                Framing::Chunked
            }
            (Some(_), _) => return Err(HeadError::UnsupportedTransferCoding),
            (None, Some(0) | None) => Framing::Empty,
            (None, Some(n)) => Framing::Length(n),
        };
        // A tunnel is never opened: whatever follows CONNECT is not a request.
        keep_alive &= head.method != Method::CONNECT;
        let expect_continue = self.expect_continue && http11 && body != Framing::Empty;
        Ok(Some(RequestHead {
            head,
            body,
            keep_alive,
            expect_continue,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<RequestHead>, HeadError> {
        parse_request_head(&mut BytesMut::from(text))
    }

    fn head(text: &str) -> RequestHead {
        parse(text).expect("a valid head").expect("a whole head")
    }

    #[test]
    fn a_usual_head_becomes_a_request_and_leaves_the_body_in_the_buffer() {
        let mut buffer = BytesMut::from(
            "POST /v1/messages?beta=true HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\nContent-Length: 2\r\n\r\n{}",
        );
        let head = parse_request_head(&mut buffer).unwrap().unwrap();
        assert_eq!(head.head.method, Method::POST);
        assert_eq!(head.head.uri.path(), "/v1/messages");
        assert_eq!(head.head.uri.query(), Some("beta=true"));
        assert_eq!(head.head.version, Version::HTTP_11);
        assert_eq!(head.head.headers.get("x-api-key"), Some(&b"k"[..]));
        let names: Vec<_> = head.head.headers.iter().map(|(name, _)| name).collect();
        assert_eq!(names, [&b"Host"[..], b"x-api-key", b"Content-Length"]);
        assert_eq!(head.body, Framing::Length(2));
        assert!(head.keep_alive);
        assert!(!head.expect_continue);
        assert_eq!(&buffer[..], b"{}");
    }

    #[test]
    fn a_head_cut_short_waits_for_more_and_a_huge_one_is_refused() {
        assert!(parse("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        let huge = format!(
            "GET / HTTP/1.1\r\nx-big: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(parse(&huge).unwrap_err(), HeadError::TooLarge);
        let unfinished = format!("GET / HTTP/1.1\r\nx-big: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(parse(&unfinished).unwrap_err(), HeadError::TooLarge);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(),
            HeadError::TooLarge
        );
    }

    #[test]
    fn malformed_heads_are_refused() {
        for text in [
            "hello\r\n\r\n",
            "GET /\r\n\r\n",
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "GET / HTTP/1.1\r\nbad name: v\r\n\r\n",
        ] {
            assert_eq!(parse(text).unwrap_err(), HeadError::Malformed, "{text:?}");
        }
    }

    #[test]
    fn content_lengths_must_be_digits_and_agree() {
        for value in ["abc", "+2", "-1", "2, 3", ""] {
            let text = format!("POST / HTTP/1.1\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(
                parse(&text).unwrap_err(),
                HeadError::InvalidLength,
                "{value:?}"
            );
        }
        let twice = "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n";
        assert_eq!(parse(twice).unwrap_err(), HeadError::InvalidLength);
        let same = "POST / HTTP/1.1\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(head(same).body, Framing::Length(2));
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").body,
            Framing::Empty
        );
    }

    #[test]
    fn chunked_alone_wins_over_a_length_and_the_connection_is_not_reused() {
        let text = "POST / HTTP/1.1\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n";
        let head = head(text);
        assert_eq!(head.body, Framing::Chunked);
        assert!(!head.keep_alive);
        let chunked = self::head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(chunked.body, Framing::Chunked);
        assert!(chunked.keep_alive);
    }

    #[test]
    fn other_transfer_codings_are_not_implemented() {
        for text in [
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(
                parse(text).unwrap_err(),
                HeadError::UnsupportedTransferCoding,
                "{text:?}"
            );
        }
    }

    #[test]
    fn keep_alive_follows_the_version_and_the_connection_header() {
        assert!(head("GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(!head("CONNECT x:443 HTTP/1.1\r\n\r\n").keep_alive);
    }

    #[test]
    fn expect_continue_only_with_a_body_over_http11() {
        let with_body = "POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n";
        assert!(head(with_body).expect_continue);
        assert!(!head("POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expect_continue);
        let http10 = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        assert!(!head(http10).expect_continue);
    }

    #[test]
    fn pipelined_heads_are_parsed_one_at_a_time() {
        let mut buffer = BytesMut::from("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
        let first = parse_request_head(&mut buffer).unwrap().unwrap();
        assert_eq!(first.head.uri.path(), "/a");
        let second = parse_request_head(&mut buffer).unwrap().unwrap();
        assert_eq!(second.head.uri.path(), "/b");
        assert!(buffer.is_empty());
    }
}
