//! A response's head and body framing, written to bytes (RFC 9112). Pure:
//! the connection writes what these produce.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use http::header::{self, HeaderValue};
use http::response::Parts;
use http_body::SizeHint;

use crate::forward::headers::relay_response_lines;
use crate::upstream::RelayHeaders;
use crate::upstream::codec::decimal;

/// How a response's body follows its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// None is sent: an answer to HEAD, a 1xx, 204 or 304.
    Nothing,
    Length(u64),
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and no length known).
    UntilClose,
}

/// What the request said that shapes its answer's head.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    pub head_request: bool,
    pub http10: bool,
    /// The connection may take another request after this answer, as far as
    /// the request and the server are concerned.
    pub keep_alive: bool,
}

/// How the written head framed the body, and whether the connection stays
/// open after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub framing: BodyFraming,
    pub keep_alive: bool,
}

/// Writes the status line and headers of `parts` to `out`, adding the
/// framing, `date` and `connection` headers the exchange needs. The
/// handler's own `transfer-encoding` and `connection` headers are replaced;
/// its `connection: close` is kept as a wish to close.
pub fn encode_head(
    out: &mut Vec<u8>,
    parts: &Parts,
    relay: Option<&RelayHeaders>,
    body: &SizeHint,
    exchange: Exchange,
) -> Plan {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");

    let mut length = None;
    let mut close = false;
    let mut dated = false;
    for (name, value) in &parts.headers {
        if *name == header::TRANSFER_ENCODING {
            continue;
        }
        if *name == header::CONNECTION {
            close |= names_close(value);
            continue;
        }
        if *name == header::CONTENT_LENGTH {
            length = std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|v| v.parse().ok());
        }
        dated |= *name == header::DATE;
        header_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    // The relay's lines as it sent them (hop-by-hop ones left out); names
    // in any case.
    if let Some(relay) = relay {
        for (name, value) in relay_response_lines(relay) {
            if name.eq_ignore_ascii_case(b"content-length") {
                length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            dated |= name.eq_ignore_ascii_case(b"date");
            header_line(out, name, value);
        }
    }

    let status = parts.status;
    let framing = if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        BodyFraming::Nothing
    } else if let Some(n) = length {
        body_unless_head(exchange, BodyFraming::Length(n))
    } else if let Some(n) = body.exact() {
        if !(exchange.head_request && n == 0) {
            header_line(out, b"content-length", decimal(n, &mut [0; 20]));
        }
        body_unless_head(exchange, BodyFraming::Length(n))
    } else if exchange.head_request {
        BodyFraming::Nothing
    } else if exchange.http10 {
        BodyFraming::UntilClose
    } else {
        header_line(out, b"transfer-encoding", b"chunked");
        BodyFraming::Chunked
    };

    let keep_alive = exchange.keep_alive && !close && framing != BodyFraming::UntilClose;
    if !keep_alive {
        header_line(out, b"connection", b"close");
    } else if exchange.http10 {
        header_line(out, b"connection", b"keep-alive");
    }
    if !dated {
        DATE.with_borrow_mut(|date| header_line(out, b"date", date.now()));
    }
    out.extend_from_slice(b"\r\n");
    Plan {
        framing,
        keep_alive,
    }
}

fn body_unless_head(exchange: Exchange, framing: BodyFraming) -> BodyFraming {
    match exchange.head_request {
        true => BodyFraming::Nothing,
        false => framing,
    }
}

fn names_close(value: &HeaderValue) -> bool {
    value
        .as_bytes()
        .split(|b| *b == b',')
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the size line of a chunk of `len` bytes (not 0: a zero-size
/// chunk ends the body); the data and [`CHUNK_END`] follow it.
pub fn encode_chunk_start(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = len;
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

/// What follows a chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk of a chunked body, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

thread_local! {
    /// The `date` value, formatted once per second per thread (as hyper does).
    static DATE: RefCell<CachedDate> = const { RefCell::new(CachedDate { second: u64::MAX, text: [0; 29] }) };
}

struct CachedDate {
    second: u64,
    /// `Sun, 06 Nov 1994 08:49:37 GMT`: always 29 bytes.
    text: [u8; 29],
}

impl CachedDate {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second {
            let text = httpdate::fmt_http_date(now);
            if text.len() == self.text.len() {
                self.text.copy_from_slice(text.as_bytes());
                self.second = second;
            }
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::Response;
    use http_body::Body;
    use http_body_util::{Empty, Full, StreamBody};

    use super::*;

    fn head_of(response: Response<impl Body>, exchange: Exchange) -> (String, Plan) {
        let (parts, body) = response.into_parts();
        let mut out = Vec::new();
        let plan = encode_head(&mut out, &parts, None, &body.size_hint(), exchange);
        let text = String::from_utf8(out).unwrap();
        // The date changes; its presence is checked, its value is not.
        let text = text
            .lines()
            .filter(|l| !l.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("\n");
        (text, plan)
    }

    const KEEP: Exchange = Exchange {
        head_request: false,
        http10: false,
        keep_alive: true,
    };

    fn streamed() -> Response<impl Body> {
        let frames =
            futures_util::stream::empty::<Result<http_body::Frame<Bytes>, std::io::Error>>();
        Response::new(StreamBody::new(frames))
    }

    #[test]
    fn a_known_length_is_sent_as_content_length() {
        let (text, plan) = head_of(Response::new(Full::new(Bytes::from("{}"))), KEEP);
        assert_eq!(text, "HTTP/1.1 200 OK\ncontent-length: 2\n");
        assert_eq!(
            plan,
            Plan {
                framing: BodyFraming::Length(2),
                keep_alive: true
            }
        );
    }

    #[test]
    fn an_unknown_length_is_chunked_for_http11_and_closes_for_http10() {
        let (text, plan) = head_of(streamed(), KEEP);
        assert_eq!(text, "HTTP/1.1 200 OK\ntransfer-encoding: chunked\n");
        assert_eq!(plan.framing, BodyFraming::Chunked);
        let http10 = Exchange {
            http10: true,
            ..KEEP
        };
        let (text, plan) = head_of(streamed(), http10);
        assert_eq!(text, "HTTP/1.1 200 OK\nconnection: close\n");
        assert_eq!(
            plan,
            Plan {
                framing: BodyFraming::UntilClose,
                keep_alive: false
            }
        );
    }

    #[test]
    fn the_handlers_framing_headers_are_replaced_and_its_close_kept() {
        let mut response = Response::new(Full::new(Bytes::from("abc")));
        let headers = response.headers_mut();
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        let (text, plan) = head_of(response, KEEP);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\ncontent-length: 3\nconnection: close\n"
        );
        assert!(!plan.keep_alive);
    }

    #[test]
    fn a_relayed_content_length_is_kept_and_followed() {
        let mut response = streamed();
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("17"));
        let (text, plan) = head_of(response, KEEP);
        assert_eq!(text, "HTTP/1.1 200 OK\ncontent-length: 17\n");
        assert_eq!(plan.framing, BodyFraming::Length(17));
    }

    #[test]
    fn head_and_bodiless_statuses_send_no_body() {
        let head = Exchange {
            head_request: true,
            ..KEEP
        };
        let (text, plan) = head_of(Response::new(Full::new(Bytes::from("{}"))), head);
        assert_eq!(text, "HTTP/1.1 200 OK\ncontent-length: 2\n");
        assert_eq!(plan.framing, BodyFraming::Nothing);
        let mut no_content = Response::new(Empty::<Bytes>::new());
        *no_content.status_mut() = StatusCode::NO_CONTENT;
        let (text, plan) = head_of(no_content, KEEP);
        assert_eq!(text, "HTTP/1.1 204 No Content\n");
        assert_eq!(plan.framing, BodyFraming::Nothing);
    }

    #[test]
    fn http10_keep_alive_is_said_and_a_refused_keep_alive_is_closed() {
        let http10 = Exchange {
            http10: true,
            ..KEEP
        };
        let (text, _) = head_of(Response::new(Full::new(Bytes::from("{}"))), http10);
        assert!(text.ends_with("connection: keep-alive\n"), "{text}");
        let closing = Exchange {
            keep_alive: false,
            ..KEEP
        };
        let (text, plan) = head_of(Response::new(Full::new(Bytes::from("{}"))), closing);
        assert!(text.ends_with("connection: close\n"), "{text}");
        assert!(!plan.keep_alive);
    }

    #[test]
    fn every_head_is_dated_once() {
        let (parts, body) = Response::new(Full::new(Bytes::new())).into_parts();
        let mut out = Vec::new();
        encode_head(&mut out, &parts, None, &body.size_hint(), KEEP);
        let text = String::from_utf8(out).unwrap();
        let date = text.lines().find_map(|l| l.strip_prefix("date: ")).unwrap();
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn chunk_sizes_are_hex() {
        let mut out = Vec::new();
        encode_chunk_start(&mut out, 0x1a2f);
        encode_chunk_start(&mut out, 1);
        assert_eq!(out, b"1a2f\r\n1\r\n");
    }
}
