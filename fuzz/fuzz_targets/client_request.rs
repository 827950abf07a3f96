//! Whatever a client sends, read in pieces of any size: each request head is
//! parsed or refused, and its body decoded or refused, never a panic, never a
//! loop without progress, never more body than bytes came (nor more than a
//! Content-Length said); pipelined requests are taken one after the other.
#![no_main]

use bytes::BytesMut;
use claude_middleware::server::http1::request::parse_request_head;
use claude_middleware::upstream::codec::{BodyDecoder, Decoded, Framing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte sets the size of each read; the rest is the wire.
    let Some((&step, wire)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut reads = wire.chunks(step);
    let mut buffer = BytesMut::new();
    let mut body = 0usize;
    loop {
        let head = loop {
            match parse_request_head(&mut buffer) {
                Ok(Some(head)) => break head,
                Ok(None) => match reads.next() {
                    Some(read) => buffer.extend_from_slice(read),
                    None => return,
                },
                Err(_) => return,
            }
        };
        assert!(
            matches!(head.body, Framing::Empty | Framing::Length(_) | Framing::Chunked),
            "a request body is never delimited by the close"
        );
        let mut decoder = BodyDecoder::new(head.body);
        let mut this_body = 0usize;
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Decoded::Data(data)) => {
                    assert!(!data.is_empty(), "an empty piece makes no progress");
                    this_body += data.len();
                }
                Ok(Decoded::End) => break,
                Ok(Decoded::NeedMore) => match reads.next() {
                    Some(read) => buffer.extend_from_slice(read),
                    None => return,
                },
                Err(_) => return,
            }
        }
        if let Framing::Length(length) = head.body {
            assert_eq!(this_body as u64, length);
        }
        body += this_body;
        assert!(body <= wire.len());
        if !head.keep_alive {
            return;
        }
    }
});
