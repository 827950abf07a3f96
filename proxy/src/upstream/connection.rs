//! One HTTP/1.1 connection to the relay: a request written, its answer's
//! head read. The body is then read by [`super::body::RelayBody`] in the task
//! of the client's connection: no task and no channel of its own, and no
//! read from the relay before the client has taken the last one.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Bytes, BytesMut};
use http::Method;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

use super::codec::{self, CodecError, Parsed, ResponseHead};
use super::stream::RelayStream;

/// Reads of at most 8 KiB, as nginx's proxy_buffer_size: SSE events are
/// small, and a larger buffer would stay with every open stream.
pub const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Why an exchange got no answer head.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The request could not be written: nothing reached the backend whole.
    #[error("{0}")]
    Write(io::Error),
    /// The connection ended (or broke) before any byte of the answer.
    #[error("the backend closed the connection without answering")]
    ClosedBeforeAnswer(#[source] Option<io::Error>),
    #[error("{0}")]
    Read(io::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl ExchangeError {
    /// On a reused connection, the backend had closed it before it could
    /// take the request: trying again on a new connection is safe.
    pub fn is_stale_connection(&self) -> bool {
        matches!(self, Self::Write(_))
    }
}

pub struct Connection {
    io: RelayStream,
    /// What was read and not yet consumed.
    pub(super) buffer: BytesMut,
}

impl Connection {
    pub fn new(io: RelayStream) -> Self {
        Self {
            io,
            buffer: BytesMut::new(),
        }
    }

    /// Writes the request and reads its answer's head; the body's bytes are
    /// left in the buffer.
    pub async fn exchange(
        &mut self,
        head: &[u8],
        body: &Bytes,
        method: &Method,
    ) -> Result<ResponseHead, ExchangeError> {
        self.write_request(head, body)
            .await
            .map_err(ExchangeError::Write)?;
        let mut answered = false;
        loop {
            if !self.buffer.is_empty() {
                answered = true;
                match codec::parse_response_head(&mut self.buffer, method)? {
                    Parsed::Final(head) => return Ok(head),
                    Parsed::Interim => continue,
                    Parsed::Partial => {}
                }
            }
            match std::future::poll_fn(|cx| self.poll_read(cx)).await {
                Ok(0) if answered => return Err(CodecError::Truncated.into()),
                Ok(0) => return Err(ExchangeError::ClosedBeforeAnswer(None)),
                Ok(_) => {}
                Err(error) if answered => return Err(ExchangeError::Read(error)),
                Err(error) => return Err(ExchangeError::ClosedBeforeAnswer(Some(error))),
            }
        }
    }

    /// Head and body in one write where the socket takes both.
    async fn write_request(&mut self, head: &[u8], body: &Bytes) -> io::Result<()> {
        let mut slices = [IoSlice::new(head), IoSlice::new(body)];
        let mut remaining: &mut [IoSlice<'_>] = if body.is_empty() {
            &mut slices[..1]
        } else {
            &mut slices[..]
        };
        while !remaining.is_empty() {
            let written = self.io.write_vectored(remaining).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut remaining, written);
        }
        self.io.flush().await
    }

    /// Reads what the relay sent next into the buffer; `Ok(0)` at its end.
    ///
    /// The read goes to a scratch buffer on the stack and what came is
    /// copied out: a connection holds only the bytes not yet consumed, and
    /// none while it waits. An open stream spends nearly all its time between
    /// two events, and a read buffer held through each wait was a third of
    /// its memory.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut scratch = [MaybeUninit::<u8>::uninit(); READ_BUFFER_BYTES];
        let mut read = ReadBuf::uninit(&mut scratch);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        self.buffer.extend_from_slice(read.filled());
        Poll::Ready(Ok(read.filled().len()))
    }

    /// Whether an idle connection can take a request: the relay has neither
    /// closed it nor sent anything unasked. Costs no system call unless the
    /// socket has become readable since the last read.
    pub fn is_usable(&mut self) -> bool {
        if !self.buffer.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readable: its end, stray bytes, or a readiness left from the
            // last answer; only a read tells which.
            Poll::Ready(Ok(())) => matches!(self.poll_read(&mut cx), Poll::Pending),
        }
    }
}
