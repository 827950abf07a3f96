//! Response bodies: a small full body for the proxy's own answers, or the
//! backend's body streamed frame by frame with an idle-read timeout between
//! frames (never a total timeout, so a healthy long stream is never cut).

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::record::RequestRecord;
use crate::metrics::RequestOutcome;
use crate::upstream::{RelayBody, RelayBodyError, RelayHeaders};

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("no data from the backend for {0:?}")]
    IdleTimeout(Duration),
    #[error("backend stream failed: {0}")]
    Upstream(#[from] RelayBodyError),
}

pin_project! {
    #[project = ProxyBodyProjection]
    pub enum ProxyBody {
        Full { #[pin] body: Full<Bytes> },
        // Boxed: the response is moved through several layers before hyper
        // holds it, and the stream's state is a few hundred bytes.
        Upstream { body: Pin<Box<UpstreamBody>> },
    }
}

impl ProxyBody {
    pub fn full(bytes: Bytes) -> Self {
        Self::Full {
            body: Full::new(bytes),
        }
    }

    pub fn upstream(body: UpstreamBody) -> Self {
        Self::Upstream {
            body: Box::pin(body),
        }
    }

    /// The relay's header lines, for the answer's head (hop-by-hop ones
    /// still there: see [`crate::forward::headers::relay_response_lines`]).
    /// `None` for the proxy's own answers, whose headers are all in the
    /// response, and once taken.
    pub fn take_relay_headers(&mut self) -> Option<RelayHeaders> {
        match self {
            Self::Full { .. } => None,
            Self::Upstream { body } => body.as_mut().project().relay_headers.take(),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project() {
            ProxyBodyProjection::Full { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never| match never {}))),
            ProxyBodyProjection::Upstream { body } => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full { body } => body.is_end_stream(),
            Self::Upstream { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full { body } => body.size_hint(),
            Self::Upstream { body } => body.size_hint(),
        }
    }
}

/// Finishes the request record exactly once: at the end of the stream, on an
/// error, or (when dropped first) because the client went away.
struct RecordGuard {
    record: Option<RequestRecord>,
}

impl RecordGuard {
    /// The body ended cleanly: counted as the record says it completes.
    fn complete(&mut self) {
        let outcome = self
            .record
            .as_ref()
            .map_or(RequestOutcome::Completed, |r| r.completed_as);
        self.finish(outcome, None);
    }

    fn finish(&mut self, outcome: RequestOutcome, detail: Option<&str>) {
        if let Some(record) = self.record.take() {
            record.metrics.inflight_streams.dec();
            record.finish(outcome, detail);
        }
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        // Dropping the body also drops the backend connection, which cancels
        // the upstream request.
        self.finish(RequestOutcome::ClientClosed, None);
    }
}

pin_project! {
    pub struct UpstreamBody {
        #[pin]
        inner: RelayBody,
        // Made only when the backend first keeps the body waiting (a small
        // answer that is there at once never needs it), for
        // `idle_timeout` from then, and moved on to the last frame's
        // deadline only when it fires: moving it on every frame costs more,
        // and the timeout still counts from the last frame.
        #[pin]
        idle: Option<Sleep>,
        idle_timeout: Duration,
        // When the last frame came, read only once `idle` is there: the
        // frames of an answer that never waits need no clock.
        last_frame: Option<Instant>,
        // Bytes read ahead (the first SSE event), sent before the rest.
        prefix: Option<Bytes>,
        // The relay's header lines, until the server takes them to write
        // the answer's head.
        relay_headers: Option<RelayHeaders>,
        guard: RecordGuard,
    }
}

impl UpstreamBody {
    pub fn new(
        inner: RelayBody,
        relay_headers: RelayHeaders,
        prefix: Bytes,
        idle_timeout: Duration,
        record: RequestRecord,
    ) -> Self {
        record.metrics.inflight_streams.inc();
        Self {
            inner,
            idle: None,
            idle_timeout,
            last_frame: None,
            prefix: (!prefix.is_empty()).then_some(prefix),
            relay_headers: Some(relay_headers),
            guard: RecordGuard {
                record: Some(record),
            },
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut this = self.project();
        if let Some(prefix) = this.prefix.take() {
            if let Some(record) = this.guard.record.as_mut() {
                record.on_chunk(&prefix);
            }
            if this.inner.is_end_stream() {
                this.guard.complete();
            }
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if this.idle.is_some() {
                    *this.last_frame = Some(Instant::now());
                }
                if let (Some(data), Some(record)) = (frame.data_ref(), this.guard.record.as_mut()) {
                    record.on_chunk(data);
                }
                if this.inner.is_end_stream() {
                    // hyper may not poll again once the length is satisfied.
                    this.guard.complete();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.guard
                    .finish(RequestOutcome::StreamError, Some(&error.to_string()));
                Poll::Ready(Some(Err(BodyError::Upstream(error))))
            }
            Poll::Ready(None) => {
                this.guard.complete();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.idle.is_none() {
                    // The wait starts now: the frames so far came without one.
                    let now = Instant::now();
                    *this.last_frame = Some(now);
                    this.idle
                        .set(Some(tokio::time::sleep_until(now + *this.idle_timeout)));
                }
                // Always there: set just above.
                let Some(mut idle) = this.idle.as_mut().as_pin_mut() else {
                    return Poll::Pending;
                };
                loop {
                    ready!(idle.as_mut().poll(cx));
                    // Fired: idle for the whole timeout, unless a frame came
                    // since (`last_frame` is set whenever `idle` is).
                    let deadline = this
                        .last_frame
                        .map_or(idle.deadline(), |t| t + *this.idle_timeout);
                    if deadline <= idle.deadline() {
                        break;
                    }
                    idle.as_mut().reset(deadline);
                }
                let error = BodyError::IdleTimeout(*this.idle_timeout);
                this.guard
                    .finish(RequestOutcome::StreamError, Some(&error.to_string()));
                Poll::Ready(Some(Err(error)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let mut hint = SizeHint::new();
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + prefix);
        }
        hint.set_lower(inner.lower() + prefix);
        hint
    }
}
