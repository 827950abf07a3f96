//! HTTP/1.1 to the relay, as pure functions over buffers: the request head
//! written, the answer's head parsed, and its body's framing decoded. The
//! connection that feeds them bytes is in [`super::connection`].
//!
//! Only what a client of one known backend needs: no upgrades, no
//! pipelining, no request trailers. Whatever is malformed or unbounded is an
//! error, and the connection it came on is never reused.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, StatusCode};

use super::relay_headers::{Noted, RelayHeaders};
use crate::header_lines::{HeaderLines, Line, Lines};

/// An answer head larger than this is refused (hyper's client default too).
/// Offsets in a head fit in 16 bits ([`Place`]).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Header lines in one answer head, at most.
const MAX_HEADERS: usize = 100;
/// A chunk-size line (with extensions) longer than this is refused.
const MAX_CHUNK_LINE_BYTES: usize = 1024;
/// Trailer section of a chunked body, at most (trailers are skipped).
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// What the relay sent that this client cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("malformed answer head from the backend")]
    MalformedHead,
    #[error("answer head from the backend is too large (over 64 KiB or 100 header lines)")]
    HeadTooLarge,
    #[error("conflicting or invalid Content-Length from the backend")]
    InvalidLength,
    #[error("the backend asked to switch protocols")]
    Upgrade,
    #[error("malformed chunked body from the backend")]
    MalformedChunk,
    #[error("the backend closed the connection before the end of the body")]
    Truncated,
}

/// A request head being written: the request line, then each header as the
/// caller gives it, then the body's length ([`RequestHead::finish`]). The
/// headers are written straight to bytes, not gathered in a map first.
pub struct RequestHead {
    method: Method,
    bytes: Vec<u8>,
}

/// Room for a usual request head; the buffer grows if a head is larger.
const REQUEST_HEAD_BYTES: usize = 1024;

impl RequestHead {
    /// `path_and_query`: the request target, in pieces written one after
    /// the other.
    pub fn new(method: &Method, path_and_query: [&str; 2]) -> Self {
        let mut bytes = Vec::with_capacity(REQUEST_HEAD_BYTES);
        bytes.extend_from_slice(method.as_str().as_bytes());
        bytes.push(b' ');
        for piece in path_and_query {
            bytes.extend_from_slice(piece.as_bytes());
        }
        bytes.extend_from_slice(b" HTTP/1.1\r\n");
        Self {
            method: method.clone(),
            bytes,
        }
    }

    /// One header line. The caller gives no framing headers of its own
    /// ([`crate::forward::headers`] leaves them out).
    pub fn raw_header(&mut self, name: &[u8], value: &[u8]) {
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(b": ");
        self.bytes.extend_from_slice(value);
        self.bytes.extend_from_slice(b"\r\n");
    }

    /// The head, ended with the body's length.
    pub fn finish(mut self, body_len: usize) -> (Method, Vec<u8>) {
        // As hyper did: no length for an empty body of a method that has none.
        let bodiless = matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if body_len > 0 || !bodiless {
            let mut digits = [0; 20];
            self.raw_header(b"content-length", decimal(body_len as u64, &mut digits));
        }
        self.bytes.extend_from_slice(b"\r\n");
        (self.method, self.bytes)
    }
}

/// `n` in decimal, written at the end of `buffer` (for lengths in heads).
pub fn decimal(mut n: u64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buffer[at..];
        }
    }
}

/// How an answer's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: an answer to HEAD, a 204 or a 304.
    Empty,
    Length(u64),
    Chunked,
    /// Until the backend closes the connection.
    UntilClose,
}

/// A parsed answer head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: RelayHeaders,
    pub framing: Framing,
    /// The connection may take another request once this body has ended.
    pub reusable: bool,
}

/// What [`parse_response_head`] found at the front of the buffer.
#[derive(Debug)]
pub enum Parsed {
    /// More bytes are needed.
    Partial,
    /// A `1xx` interim answer, consumed; the final one follows.
    Interim,
    Final(ResponseHead),
}

/// Parses one answer head at the front of `buffer` and consumes it; header
/// values share the buffer's memory rather than being copied.
pub fn parse_response_head(buffer: &mut BytesMut, method: &Method) -> Result<Parsed, CodecError> {
    // Uninitialised: httparse fills what it uses, and zeroing 100 slots
    // cost more than parsing a usual head.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buffer,
        &mut slots,
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD_BYTES => len,
        Ok(httparse::Status::Partial) if buffer.len() <= MAX_HEAD_BYTES => {
            return Ok(Parsed::Partial);
        }
        Ok(_) | Err(httparse::Error::TooManyHeaders) => return Err(CodecError::HeadTooLarge),
        Err(_) => return Err(CodecError::MalformedHead),
    };
    let code = response.code.ok_or(CodecError::MalformedHead)?;
    let status = StatusCode::from_u16(code).map_err(|_| CodecError::MalformedHead)?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(CodecError::Upgrade);
    }
    let http11 = response.version == Some(1);
    // Where each name and value sits in the buffer, so that the head can be
    // split off and shared, and the lines read from it, without a copy.
    let base = buffer.as_ptr();
    let mut lines = Lines::new();
    let mut framing = FramingHeaders::default();
    for h in response.headers.iter() {
        framing.note(lines.len(), h.name.as_bytes(), h.value)?;
        lines.push(Line::locate(base, h.name.as_bytes(), h.value));
    }
    let head = buffer.split_to(head_len).freeze();
    if status.is_informational() {
        return Ok(Parsed::Interim);
    }
    let headers = RelayHeaders::new(HeaderLines::new(head, lines), framing.noted());
    let (framing, mut reusable) = framing.framing(status, method);
    reusable &= http11;
    Ok(Parsed::Final(ResponseHead {
        status,
        headers,
        framing,
        reusable,
    }))
}

/// What the headers say of the body's framing and of the connection, noted
/// as they are read, with the line of the content type: one comparison of
/// each name answers both.
#[derive(Default)]
struct FramingHeaders {
    /// Whether `Transfer-Encoding` is there, and whether its last coding
    /// (so far) is chunked.
    transfer_encoding: Option<bool>,
    length: Option<u64>,
    connection: bool,
    close: bool,
    content_type: Option<u16>,
}

impl FramingHeaders {
    /// Notes the header line at `index`.
    fn note(&mut self, index: usize, name: &[u8], value: &[u8]) -> Result<(), CodecError> {
        if name.eq_ignore_ascii_case(b"content-length") {
            for part in value.split(|b| *b == b',') {
                let n = content_length(part.trim_ascii())?;
                if self.length.is_some_and(|seen| seen != n) {
                    return Err(CodecError::InvalidLength);
                }
                self.length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = value.rsplit(|b| *b == b',').next().unwrap_or_default();
            self.transfer_encoding = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            self.connection = true;
            self.close |= value
                .split(|b| *b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        } else if name.eq_ignore_ascii_case(b"content-type") {
            self.content_type = self.content_type.or(Some(index as u16));
        }
        Ok(())
    }

    /// What the relay's headers keep of these notes.
    fn noted(&self) -> Noted {
        Noted {
            content_type: self.content_type,
            connection: self.connection,
            transfer_encoding: self.transfer_encoding.is_some(),
        }
    }

    /// The body's framing (RFC 9112 §6.3), and whether the connection stays
    /// usable after it.
    fn framing(&self, status: StatusCode, method: &Method) -> (Framing, bool) {
        let keep = !self.close;
        if *method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return (Framing::Empty, keep);
        }
        match (self.transfer_encoding, self.length) {
            // A length beside a transfer coding is ignored, and the
            // connection not trusted again (point 3).
            (Some(true), length) => (Framing::Chunked, keep && length.is_none()),
            (Some(false), _) => (Framing::UntilClose, false),
            (None, Some(0)) => (Framing::Empty, keep),
            (None, Some(n)) => (Framing::Length(n), keep),
            (None, None) => (Framing::UntilClose, false),
        }
    }
}

/// One Content-Length value: digits only.
pub fn content_length(digits: &[u8]) -> Result<u64, CodecError> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(CodecError::InvalidLength);
    }
    Ok(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// What the body decoder made of the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// Nothing to give until more bytes are read.
    NeedMore,
    /// The body has ended.
    End,
}

/// Decodes one answer's body from the connection's buffer, incrementally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDecoder {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    UntilClose,
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    /// Trailer lines, skipped; the count is the bytes skipped so far.
    Trailers(usize),
    Done,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        Self { state }
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of the body still to come, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// The next piece of the body from `buffer`, consuming what it used.
    /// After a piece, the framing that follows it is consumed as far as it
    /// is buffered, so [`is_done`](Self::is_done) is true as soon as the end
    /// has arrived with the last piece.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Decoded, CodecError> {
        self.skip_framing(buffer)?;
        let data = match self.state {
            State::Done => return Ok(Decoded::End),
            _ if buffer.is_empty() => return Ok(Decoded::NeedMore),
            State::Length(n) => {
                let take = clamp(n, buffer.len());
                self.state = match n - take as u64 {
                    0 => State::Done,
                    left => State::Length(left),
                };
                buffer.split_to(take).freeze()
            }
            State::UntilClose => buffer.split().freeze(),
            State::ChunkData(n) => {
                let take = clamp(n, buffer.len());
                self.state = match n - take as u64 {
                    0 => State::ChunkDataEnd,
                    left => State::ChunkData(left),
                };
                buffer.split_to(take).freeze()
            }
            // `skip_framing` stops only at data, the end, or an empty buffer.
            State::ChunkSize | State::ChunkDataEnd | State::Trailers(_) => {
                return Ok(Decoded::NeedMore);
            }
        };
        self.skip_framing(buffer)?;
        Ok(Decoded::Data(data))
    }

    /// The connection reached its end: the body's end for a body delimited
    /// by it, else a truncated body.
    pub fn at_eof(&mut self) -> Result<(), CodecError> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(CodecError::Truncated),
        }
    }

    /// Consumes chunk sizes, chunk ends and trailers while they are buffered.
    fn skip_framing(&mut self, buffer: &mut BytesMut) -> Result<(), CodecError> {
        loop {
            match self.state {
                State::ChunkSize => {
                    if !buffer.first().is_some_and(u8::is_ascii_hexdigit) {
                        return match buffer.is_empty() {
                            true => Ok(()),
                            false => Err(CodecError::MalformedChunk),
                        };
                    }
                    match httparse::parse_chunk_size(buffer) {
                        Ok(httparse::Status::Complete((used, size)))
                            if used <= MAX_CHUNK_LINE_BYTES =>
                        {
                            buffer.advance(used);
                            self.state = match size {
                                0 => State::Trailers(0),
                                n => State::ChunkData(n),
                            };
                        }
                        Ok(httparse::Status::Partial) if buffer.len() <= MAX_CHUNK_LINE_BYTES => {
                            return Ok(());
                        }
                        Ok(_) | Err(_) => {
                            return Err(CodecError::MalformedChunk);
                        }
                    }
                }
                State::ChunkDataEnd => match buffer.get(..2) {
                    Some(b"\r\n") => {
                        buffer.advance(2);
                        self.state = State::ChunkSize;
                    }
                    Some(_) => return Err(CodecError::MalformedChunk),
                    None if buffer.first().is_none_or(|b| *b == b'\r') => return Ok(()),
                    None => return Err(CodecError::MalformedChunk),
                },
                State::Trailers(skipped) => {
                    let Some(newline) = memchr::memchr(b'\n', buffer) else {
                        if skipped + buffer.len() > MAX_TRAILER_BYTES {
                            return Err(CodecError::MalformedChunk);
                        }
                        return Ok(());
                    };
                    let line_len = newline + 1;
                    if skipped + line_len > MAX_TRAILER_BYTES {
                        return Err(CodecError::MalformedChunk);
                    }
                    let empty_line = buffer[..newline]
                        .strip_suffix(b"\r")
                        .unwrap_or(&buffer[..newline])
                        .is_empty();
                    buffer.advance(line_len);
                    self.state = match empty_line {
                        true => State::Done,
                        false => State::Trailers(skipped + line_len),
                    };
                }
                _ => return Ok(()),
            }
        }
    }
}

/// `want` bytes, but no more than `have`.
fn clamp(want: u64, have: usize) -> usize {
    usize::try_from(want).map_or(have, |want| want.min(have))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Parsed, CodecError> {
        parse_response_head(&mut BytesMut::from(text), &Method::POST)
    }

    fn final_head(text: &str) -> ResponseHead {
        match head(text) {
            Ok(Parsed::Final(head)) => head,
            other => panic!("not a final head: {other:?}"),
        }
    }

    /// The whole body of `framing` decoded from `wire` fed in `step`-byte
    /// reads, with the bytes left over after its end.
    fn decode_all(
        framing: Framing,
        wire: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), CodecError> {
        let mut decoder = BodyDecoder::new(framing);
        let mut buffer = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buffer)? {
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::End => return Ok((body, buffer.to_vec())),
                Decoded::NeedMore if fed == wire.len() => {
                    decoder.at_eof()?;
                    return Ok((body, buffer.to_vec()));
                }
                Decoded::NeedMore => {
                    let next = (fed + step).min(wire.len());
                    buffer.extend_from_slice(&wire[fed..next]);
                    fed = next;
                }
            }
        }
    }

    #[test]
    fn the_request_head_carries_the_body_length_and_every_header_value() {
        let mut head = RequestHead::new(&Method::POST, ["/api", "/v1/messages?beta=true"]);
        head.raw_header(b"host", b"relay:3000");
        head.raw_header(b"x-multi", b"a");
        head.raw_header(b"x-multi", b"b");
        let (method, out) = head.finish(1234);
        assert_eq!(method, Method::POST);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /api/v1/messages?beta=true HTTP/1.1\r\nhost: relay:3000\r\nx-multi: a\r\nx-multi: b\r\ncontent-length: 1234\r\n\r\n"
        );
    }

    #[test]
    fn an_empty_body_has_a_length_unless_the_method_has_no_body() {
        let (_, out) = RequestHead::new(&Method::GET, ["", "/v1/models"]).finish(0);
        assert_eq!(out, b"GET /v1/models HTTP/1.1\r\n\r\n");
        let (_, out) = RequestHead::new(&Method::POST, ["", "/"]).finish(0);
        assert_eq!(out, b"POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
        let mut digits = [0; 20];
        assert_eq!(
            decimal(u64::MAX, &mut digits),
            u64::MAX.to_string().as_bytes()
        );
    }

    #[test]
    fn a_head_is_parsed_whole_and_its_body_bytes_stay_in_the_buffer() {
        let mut buffer = BytesMut::from(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\n{}",
        );
        let Ok(Parsed::Final(head)) = parse_response_head(&mut buffer, &Method::POST) else {
            panic!("not parsed");
        };
        assert_eq!(head.status, StatusCode::OK);
        let headers = head.headers.to_header_map();
        assert_eq!(headers["content-type"], "application/json");
        let all: Vec<_> = headers.get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.reusable);
        assert_eq!(&buffer[..], b"{}");
    }

    #[test]
    fn a_partial_head_waits_and_a_huge_one_is_refused() {
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\nContent-"),
            Ok(Parsed::Partial)
        ));
        let huge = format!("HTTP/1.1 200 OK\r\nX-Big: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(head(&huge).unwrap_err(), CodecError::HeadTooLarge);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")).unwrap_err(),
            CodecError::HeadTooLarge
        );
    }

    #[test]
    fn malformed_heads_are_errors() {
        for bad in [
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "garbage\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        ] {
            assert_eq!(head(bad).unwrap_err(), CodecError::MalformedHead, "{bad:?}");
        }
        assert_eq!(
            head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n").unwrap_err(),
            CodecError::Upgrade
        );
    }

    #[test]
    fn an_interim_answer_is_consumed_before_the_final_one() {
        let mut buffer =
            BytesMut::from("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
        assert!(matches!(
            parse_response_head(&mut buffer, &Method::POST),
            Ok(Parsed::Interim)
        ));
        let Ok(Parsed::Final(head)) = parse_response_head(&mut buffer, &Method::POST) else {
            panic!("no final head");
        };
        assert_eq!(head.status, StatusCode::NO_CONTENT);
        assert_eq!(head.framing, Framing::Empty);
        assert!(buffer.is_empty());
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let chunked = final_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(
            (chunked.framing, chunked.reusable),
            (Framing::Chunked, true)
        );
        let both = final_head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
        );
        assert_eq!((both.framing, both.reusable), (Framing::Chunked, false));
        let not_chunked = final_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(
            (not_chunked.framing, not_chunked.reusable),
            (Framing::UntilClose, false)
        );
        let neither = final_head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(
            (neither.framing, neither.reusable),
            (Framing::UntilClose, false)
        );
        let repeated =
            final_head("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n");
        assert_eq!(repeated.framing, Framing::Length(7));
        let zero = final_head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!((zero.framing, zero.reusable), (Framing::Empty, true));
        let not_modified = final_head("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n");
        assert_eq!(not_modified.framing, Framing::Empty);
        for bad in ["7, 8", "-1", "+7", "0x7", "", "99999999999999999999999"] {
            let text = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(
                head(&text).unwrap_err(),
                CodecError::InvalidLength,
                "{bad:?}"
            );
        }
        let Ok(Parsed::Final(to_head)) = parse_response_head(
            &mut BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"),
            &Method::HEAD,
        ) else {
            panic!("no head");
        };
        assert_eq!(to_head.framing, Framing::Empty);
    }

    #[test]
    fn a_connection_is_not_reused_after_close_or_http_1_0() {
        assert!(
            !final_head(
                "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n"
            )
            .reusable
        );
        assert!(!final_head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").reusable);
    }

    #[test]
    fn a_length_body_ends_at_its_length_and_leaves_what_follows() {
        for step in [1, 3, 100] {
            let (body, rest) = decode_all(Framing::Length(5), b"hello!!", step).unwrap();
            assert_eq!(body, b"hello");
            assert!(rest.len() <= 2, "at most the stray bytes are left");
        }
        assert_eq!(
            decode_all(Framing::Length(5), b"hel", 2).unwrap_err(),
            CodecError::Truncated
        );
    }

    #[test]
    fn a_body_until_close_ends_with_the_connection() {
        let (body, _) = decode_all(Framing::UntilClose, b"all of it", 4).unwrap();
        assert_eq!(body, b"all of it");
    }

    #[test]
    fn chunks_are_decoded_whatever_the_read_boundaries() {
        let wire =
            b"5\r\nhello\r\n1;name=\"ext\"\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n";
        for step in 1..wire.len() + 1 {
            let (body, rest) = decode_all(Framing::Chunked, wire, step).unwrap();
            assert_eq!(body, b"hello 0123456789", "step {step}");
            assert!(rest.is_empty(), "step {step}");
        }
    }

    #[test]
    fn the_end_of_a_chunked_body_is_seen_with_its_last_chunk() {
        let mut decoder = BodyDecoder::new(Framing::Chunked);
        let mut buffer = BytesMut::from(&b"3\r\nend\r\n0\r\n\r\n"[..]);
        assert_eq!(
            decoder.decode(&mut buffer),
            Ok(Decoded::Data(Bytes::from_static(b"end")))
        );
        assert!(decoder.is_done(), "done before the next poll");
        assert_eq!(decoder.decode(&mut buffer), Ok(Decoded::End));
    }

    #[test]
    fn malformed_or_unbounded_chunks_are_errors() {
        for bad in [
            &b"\r\nhello"[..],
            b"zz\r\n",
            b"5\r\nhelloXX",
            b"5\r\nhello\rX",
            b"10000000000000000\r\n",
            b"-1\r\n",
        ] {
            assert_eq!(
                decode_all(Framing::Chunked, bad, 64).unwrap_err(),
                CodecError::MalformedChunk,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long_extension = format!("5;{}\r\nhello\r\n", "e".repeat(MAX_CHUNK_LINE_BYTES));
        assert_eq!(
            decode_all(Framing::Chunked, long_extension.as_bytes(), 64).unwrap_err(),
            CodecError::MalformedChunk
        );
        let long_trailers = format!("0\r\n{}", "X-T: v\r\n".repeat(MAX_TRAILER_BYTES / 8 + 1));
        assert_eq!(
            decode_all(Framing::Chunked, long_trailers.as_bytes(), 64).unwrap_err(),
            CodecError::MalformedChunk
        );
        assert_eq!(
            decode_all(Framing::Chunked, b"5\r\nhel", 64).unwrap_err(),
            CodecError::Truncated
        );
    }
}
