//! Reads ahead of what the client is sent, bounded in bytes and time: a
//! streamed answer up to its first SSE event (a `200` whose first event is an
//! `error` can still be retried on another account), and an error answer's
//! body (its shape says whether the account or the relay failed).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use super::first_event::{FirstEvent, first_event};
use crate::selection::AnswerHeaders;
use crate::upstream::{RelayBody, RelayBodyError};

/// At most this much is held back; a first event this large is forwarded.
pub const MAX_BYTES: usize = 64 * 1024;
/// At most this long is waited for the first event (or PROXY_TIMEOUT if shorter).
pub const MAX_WAIT: Duration = Duration::from_secs(30);

pub enum ReadAhead {
    /// Forward: these bytes first, then the rest of the body.
    Commit { prefix: Bytes },
    /// The first event is an error; `prefix` holds it, to forward if no
    /// other account is left.
    Error { data: Vec<u8>, prefix: Bytes },
    /// The backend's body failed before the first event.
    Failed(RelayBodyError),
}

pub async fn read_first_event(body: &mut RelayBody, max_wait: Duration) -> ReadAhead {
    let mut read = ReadSoFar::default();
    let deadline = tokio::time::Instant::now() + max_wait.min(MAX_WAIT);
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(error))) => return ReadAhead::Failed(error),
            // Ended, or too slow to judge: forward what there is.
            Ok(None) | Err(_) => {
                return ReadAhead::Commit {
                    prefix: read.into_bytes(),
                };
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        read.push(data);
        match first_event(read.as_slice()) {
            FirstEvent::Incomplete if read.len() < MAX_BYTES => {}
            FirstEvent::Incomplete | FirstEvent::Normal => {
                return ReadAhead::Commit {
                    prefix: read.into_bytes(),
                };
            }
            FirstEvent::Error { data } => {
                return ReadAhead::Error {
                    data,
                    prefix: read.into_bytes(),
                };
            }
        }
    }
}

/// The bytes read ahead. The first frame nearly always holds the whole first
/// event: it is kept as it came, and copied only when a second one follows.
#[derive(Default)]
enum ReadSoFar {
    #[default]
    Nothing,
    One(Bytes),
    Several(BytesMut),
}

impl ReadSoFar {
    fn push(&mut self, data: Bytes) {
        *self = match std::mem::take(self) {
            ReadSoFar::Nothing => ReadSoFar::One(data),
            ReadSoFar::One(first) => {
                let mut joined = BytesMut::with_capacity(first.len() + data.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&data);
                ReadSoFar::Several(joined)
            }
            ReadSoFar::Several(mut joined) => {
                joined.extend_from_slice(&data);
                ReadSoFar::Several(joined)
            }
        };
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            ReadSoFar::Nothing => &[],
            ReadSoFar::One(bytes) => bytes,
            ReadSoFar::Several(joined) => joined,
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn into_bytes(self) -> Bytes {
        match self {
            ReadSoFar::Nothing => Bytes::new(),
            ReadSoFar::One(bytes) => bytes,
            ReadSoFar::Several(joined) => joined.freeze(),
        }
    }
}

/// An error answer's body, whole when it ends within the bounds (error
/// bodies are small JSON), else what arrived in them.
pub async fn read_error_body(
    body: &mut RelayBody,
    max_wait: Duration,
) -> Result<Bytes, RelayBodyError> {
    let mut buffer = BytesMut::new();
    let deadline = tokio::time::Instant::now() + max_wait.min(MAX_WAIT);
    while buffer.len() < MAX_BYTES {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buffer.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(error))) => return Err(error),
            Ok(None) | Err(_) => break,
        }
    }
    Ok(buffer.freeze())
}

/// Whether a response head announces an SSE stream.
pub fn is_event_stream(headers: &impl AnswerHeaders) -> bool {
    headers
        .text("content-type")
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_so_far_are_joined_in_order() {
        let mut read = ReadSoFar::default();
        assert_eq!(read.as_slice(), b"");
        read.push(Bytes::from_static(b"event: a\n"));
        assert!(matches!(read, ReadSoFar::One(_)));
        read.push(Bytes::from_static(b"data: {}\n"));
        read.push(Bytes::from_static(b"\n"));
        assert_eq!(read.len(), 19);
        assert_eq!(read.into_bytes(), &b"event: a\ndata: {}\n\n"[..]);
        assert_eq!(ReadSoFar::default().into_bytes(), Bytes::new());
    }
}
