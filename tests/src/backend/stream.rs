//! The task that feeds a streamed body frame by frame, `gap` apart, and notices a client
//! that went away (the body's channel closes when hyper drops the response body).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::body::BodySender;
use super::respond::Shared;

/// How a fed body ends after its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The body ends cleanly.
    Complete,
    /// Nothing more is sent, the connection stays open until the client leaves.
    Stall,
    /// The body ends in an error: hyper aborts the connection.
    Reset,
}

/// How frames are sent: `gap` apart, and stamped with their send time or not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    pub gap: Duration,
    pub stamp: bool,
}

/// Sends `frames` into `tx` (the first at once, then one per `gap`) and records the outcome
/// on request `id`: completed, or the client gone.
pub(crate) async fn feed(
    shared: Arc<Shared>,
    id: u64,
    tx: BodySender,
    frames: Vec<Bytes>,
    Pace { gap, stamp }: Pace,
    end: End,
) {
    let gone = |shared: &Shared| {
        let now = Instant::now();
        shared
            .records
            .update(id, |seen| seen.client_gone = Some(now));
    };
    for (i, frame) in frames.into_iter().enumerate() {
        if i > 0 && !gap.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(gap) => {}
                _ = tx.closed() => return gone(&shared),
            }
        }
        let frame = if stamp { stamped(&frame) } else { frame };
        if tx.send(Ok(frame)).await.is_err() {
            return gone(&shared);
        }
    }
    match end {
        End::Complete => {
            let now = Instant::now();
            shared.records.update(id, |seen| seen.completed = Some(now));
        }
        End::Stall => {
            tx.closed().await;
            gone(&shared);
        }
        End::Reset => {
            let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "stand-in reset");
            let _ = tx.send(Err(reset)).await;
        }
    }
}

/// `frame` behind an SSE comment with the wall-clock time, in µs since the epoch.
fn stamped(frame: &Bytes) -> Bytes {
    let sent_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let mut out = format!(": sent {sent_us}\n").into_bytes();
    out.extend_from_slice(frame);
    Bytes::from(out)
}
