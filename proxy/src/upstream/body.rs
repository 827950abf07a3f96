//! An answer's body, read from its connection only when polled (the read
//! ahead is bounded by the client's pace), in the task that polls it. At its
//! clean end the connection goes back to the pool; dropped before, it closes,
//! which cancels the request upstream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::codec::{BodyDecoder, CodecError, Decoded};
use super::connection::Connection;
use super::{IdlePool, push_idle};

/// Why an answer's body broke off.
#[derive(Debug, thiserror::Error)]
pub enum RelayBodyError {
    #[error("reading from the backend: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

pub struct RelayBody {
    /// `None` once the body has ended or failed.
    connection: Option<Connection>,
    decoder: BodyDecoder,
    /// Whether the connection can take another request after this body.
    reusable: bool,
    /// A failure met while the data before it may still sit unsent in the
    /// client connection's buffer: given on the next poll, so that the
    /// client's side flushes that data first (a stream cut by the relay
    /// still reaches the client up to the cut).
    failure: Option<RelayBodyError>,
    idle: Arc<IdlePool>,
}

impl RelayBody {
    pub(super) fn new(
        connection: Connection,
        decoder: BodyDecoder,
        reusable: bool,
        idle: Arc<IdlePool>,
    ) -> Self {
        let mut body = Self {
            connection: Some(connection),
            decoder,
            reusable,
            failure: None,
            idle,
        };
        if body.decoder.is_done() {
            body.finish();
        }
        body
    }

    /// The body has ended: the connection is kept for the next request if
    /// nothing but this answer came on it.
    fn finish(&mut self) {
        if let Some(connection) = self.connection.take()
            && self.reusable
            && connection.buffer.is_empty()
        {
            push_idle(&self.idle, connection);
        }
    }

    /// Closes the connection and gives `error` on the next poll.
    fn fail(
        &mut self,
        error: RelayBodyError,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RelayBodyError>>> {
        self.connection = None;
        self.failure = Some(error);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Body for RelayBody {
    type Data = Bytes;
    type Error = RelayBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RelayBodyError>>> {
        let this = self.get_mut();
        if let Some(error) = this.failure.take() {
            return Poll::Ready(Some(Err(error)));
        }
        loop {
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.decode(&mut connection.buffer) {
                Ok(Decoded::Data(data)) => {
                    if this.decoder.is_done() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Decoded::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
                Err(error) => return this.fail(error.into(), cx),
            }
            match ready!(connection.poll_read(cx)) {
                Ok(0) => match this.decoder.at_eof() {
                    Ok(()) => {
                        // Ended by the close: nothing to keep.
                        this.connection = None;
                        return Poll::Ready(None);
                    }
                    Err(error) => return this.fail(error.into(), cx),
                },
                Ok(_) => {}
                Err(error) => return this.fail(error.into(), cx),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(exact) => SizeHint::with_exact(exact),
            None => SizeHint::default(),
        }
    }
}
