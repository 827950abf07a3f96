//! Response bodies: a whole buffer, or a channel fed by a task that paces a stream.
//!
//! The channel body is how the stand-in notices a client that went away: hyper drops the
//! response body when the connection closes, which closes the channel, so the feeding
//! task's next send (or its wait on `closed()`) fails.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

/// The body type of every stand-in response.
pub type ResponseBody = BoxBody<Bytes, std::io::Error>;

/// A body sent in one piece.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// The sending half of a [`channel`] body: chunks, or an error that aborts the connection.
pub type BodySender = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// A body fed chunk by chunk through the returned sender. Capacity 1 keeps the feeder in
/// step with the connection: a send waits until hyper took the previous chunk.
pub fn channel() -> (BodySender, ResponseBody) {
    let (tx, rx) = mpsc::channel(1);
    (tx, ChannelBody { rx }.boxed())
}

struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|chunk| chunk.map(Frame::data)))
    }
}
