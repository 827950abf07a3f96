//! Whatever the relay sends, read in pieces of any size: the answer head is
//! parsed or refused, and the body decoded or refused, never a panic, never
//! a loop without progress, and never more body than bytes came (nor more
//! than a Content-Length said).
#![no_main]

use bytes::BytesMut;
use claude_middleware::upstream::codec::{
    BodyDecoder, Decoded, Framing, Parsed, parse_response_head,
};
use http::Method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte sets the size of each read; the rest is the wire.
    let Some((&step, wire)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut reads = wire.chunks(step);
    let mut buffer = BytesMut::new();
    let head = loop {
        match parse_response_head(&mut buffer, &Method::POST) {
            Ok(Parsed::Final(head)) => break head,
            Ok(Parsed::Interim) => {}
            Ok(Parsed::Partial) => match reads.next() {
                Some(read) => buffer.extend_from_slice(read),
                None => return,
            },
            Err(_) => return,
        }
    };
    let mut decoder = BodyDecoder::new(head.framing);
    let mut body = 0usize;
    loop {
        match decoder.decode(&mut buffer) {
            Ok(Decoded::Data(data)) => {
                assert!(!data.is_empty(), "an empty piece makes no progress");
                body += data.len();
            }
            Ok(Decoded::End) => break,
            Ok(Decoded::NeedMore) => match reads.next() {
                Some(read) => buffer.extend_from_slice(read),
                None => {
                    let _ = decoder.at_eof();
                    break;
                }
            },
            Err(_) => break,
        }
    }
    assert!(body <= wire.len());
    if let Framing::Length(length) = head.framing {
        assert!(body as u64 <= length);
    }
});
