//! The first-event parser never panics, and once it has decided, more bytes
//! never change its mind (the read-ahead stops at the first decision).
#![no_main]

use claude_middleware::forward::first_event::{FirstEvent, first_event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let verdict = first_event(data);
    if verdict != FirstEvent::Incomplete {
        let mut longer = data.to_vec();
        longer.extend_from_slice(b"event: error\ndata: {\"type\":\"error\"}\n\n");
        assert_eq!(first_event(&longer), verdict);
    }
    // Split anywhere: the prefix is either undecided or already agrees.
    if !data.is_empty() {
        let cut = data[0] as usize % data.len();
        let early = first_event(&data[..cut]);
        assert!(early == FirstEvent::Incomplete || early == verdict);
    }
});
