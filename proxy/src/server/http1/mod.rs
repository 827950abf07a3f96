//! The proxy's own HTTP/1.1 server side: one task per client connection
//! reads a request head, reads the body whole (the proxy replays it to
//! another account on failover, so it is never streamed), routes it, and
//! writes the answer frame by frame, all from the connection's task.
//!
//! In place of hyper's: its dispatcher ran a body channel, a generic
//! state machine and a second `HeaderMap` pass for every request
//! (about a third of the proxy's instructions per request, `bench/cost.sh`).
//! What it did and this keeps: request framing (RFC 9112 §6, including the
//! smuggling cases), `Expect: 100-continue`, pipelining, keep-alive rules
//! for HTTP/1.0 and 1.1, a graceful close on drain, and a request cancelled
//! as soon as its client goes.

pub mod request;
mod response;

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::{Method, Response, Version};
use http_body::Body;
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use tokio::io::Interest;
use tokio::net::TcpStream;

use self::request::{HeadError, MAX_HEAD_BYTES, RequestHead, parse_request_head};
use self::response::{
    BodyFraming, CHUNK_END, CONTINUE, Exchange, LAST_CHUNK, encode_chunk_start, encode_head,
};
use super::drain::Graceful;
use super::idle::Activity;
use crate::client_head::ClientHead;
use crate::forward::{ClientBody, Peer};
use crate::response::{ProxyBody, error_response, error_type_for};
use crate::routes::{Route, handle, route};
use crate::state::App;
use crate::upstream::codec::{BodyDecoder, Decoded, Framing};

/// A body up to this is read before its request is handled, checked or
/// not: about what hyper's read buffer held before its service saw the
/// request.
const READ_UNCHECKED: u64 = 64 * 1024;
/// Room reserved before each read of a request.
const READ_BYTES: usize = 8 * 1024;
/// Room wanted for the reads that watch a client while its answer is
/// awaited or streamed: those only look for its end (or take a pipelined
/// request). Asking for [`READ_BYTES`] then would allocate a second buffer
/// while the request still shares the first, and keep it for the stream's
/// life (7 KiB more per open stream, figure 4).
const WATCH_BYTES: usize = 512;
/// Data frames at least this large are written as they are, not copied
/// after their chunk header.
const COPY_LIMIT: usize = 8 * 1024;
/// A write buffer grown past this by one large answer is not kept.
const KEEP_WRITE_BUFFER: usize = 64 * 1024;
/// Before a connection that the server ends is closed, what the client is
/// still sending (a body left unread, pipelined requests) is read and
/// dropped for this long at most, this much at most: a close with unread
/// bytes sends a reset, which may destroy the answer before it is read.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;

pin_project! {
    /// One client connection served over HTTP/1.1.
    pub struct Connection<F> {
        #[pin]
        serving: F,
        closing: Arc<AtomicBool>,
    }
}

/// Serves `stream` until the client closes it, an exchange ends it, or a
/// drain asks it to close (see [`Graceful`]).
pub fn serve(
    app: Arc<App>,
    stream: TcpStream,
    peer: Peer,
    activity: Arc<Activity>,
) -> Connection<impl Future<Output = io::Result<()>>> {
    let closing = Arc::new(AtomicBool::new(false));
    let serving = {
        let closing = Arc::clone(&closing);
        async move {
            let mut client = Client {
                stream,
                buffer: BytesMut::new(),
                out: Vec::new(),
                closing,
            };
            let result = client.serve(&app, &peer, &activity).await;
            client.close().await;
            result
        }
    };
    Connection { serving, closing }
}

impl<F: Future<Output = io::Result<()>>> Future for Connection<F> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().serving.poll(cx)
    }
}

impl<F: Future<Output = io::Result<()>>> Graceful for Connection<F> {
    /// The exchange in progress is finished and answered with
    /// `connection: close`; a connection between requests closes at once.
    fn graceful_shutdown(self: Pin<&mut Self>) {
        self.closing.store(true, Ordering::Relaxed);
    }
}

/// What follows an exchange.
enum Ended {
    /// Keep serving: another request may follow.
    KeepAlive,
    /// Close, once the client has had the chance to read the answer.
    Close,
    /// The client left: close at once.
    ClientGone,
}

struct Client {
    stream: TcpStream,
    /// What the client sent and was not handled yet.
    buffer: BytesMut,
    /// What is to be written, gathered so that a head and a small body go
    /// out in one write.
    out: Vec<u8>,
    closing: Arc<AtomicBool>,
}

impl Client {
    async fn serve(
        &mut self,
        app: &Arc<App>,
        peer: &Peer,
        activity: &Arc<Activity>,
    ) -> io::Result<()> {
        loop {
            let head = match self.next_head().await? {
                Some(Ok(head)) => head,
                Some(Err(refused)) => {
                    tracing::debug!(error = %refused, "refused a request head");
                    self.refuse(refused.status(), &refused.to_string()).await?;
                    return self.linger().await;
                }
                None => return Ok(()),
            };
            let in_flight = activity.start();
            let ended = self.exchange(app, peer, &head).await?;
            drop(in_flight);
            match ended {
                Ended::KeepAlive => {}
                Ended::Close => return self.linger().await,
                Ended::ClientGone => return Ok(()),
            }
            if self.out.capacity() > KEEP_WRITE_BUFFER {
                self.out = Vec::new();
            }
        }
    }

    /// The next request head; `None` when the client closed, or when the
    /// server drains while no request has begun.
    async fn next_head(&mut self) -> io::Result<Option<Result<RequestHead, HeadError>>> {
        loop {
            match parse_request_head(&mut self.buffer) {
                Ok(Some(head)) => return Ok(Some(Ok(head))),
                Ok(None) => {}
                Err(refused) => return Ok(Some(Err(refused))),
            }
            let read = poll_fn(|cx| {
                if self.buffer.is_empty() && self.closing.load(Ordering::Relaxed) {
                    return Poll::Ready(Ok(0));
                }
                poll_read(&self.stream, &mut self.buffer, READ_BYTES, cx)
            })
            .await?;
            if read == 0 {
                // A head cut short by the client is dropped unanswered.
                return Ok(None);
            }
        }
    }

    /// One request and its answer.
    async fn exchange(
        &mut self,
        app: &Arc<App>,
        peer: &Peer,
        request: &RequestHead,
    ) -> io::Result<Ended> {
        let RequestHead {
            ref head,
            body,
            keep_alive,
            expect_continue,
        } = *request;
        let body = match body_is_wanted(app, head, body) {
            true => {
                self.read_body(body, expect_continue, app.config.max_body_bytes)
                    .await?
            }
            false => Ok(ClientBody::Unread),
        };
        let body = match body {
            Ok(body) => body,
            Err(BodyRefused::Malformed) => {
                self.refuse(
                    http::StatusCode::BAD_REQUEST,
                    "malformed chunked request body",
                )
                .await?;
                return Ok(Ended::Close);
            }
            Err(BodyRefused::ClientGone) => return Ok(Ended::ClientGone),
        };
        let unread = matches!(body, ClientBody::TooLarge | ClientBody::Unread);
        let exchange = Exchange {
            head_request: head.method == Method::HEAD,
            http10: head.version == Version::HTTP_10,
            keep_alive,
        };

        // Boxed: the request's state (several KiB) is held only until the
        // answer's head is out, not for the connection's life.
        let mut handler = Box::pin(handle(app, head, body, Some(peer)));
        let answered = tokio::select! {
            biased;
            response = &mut handler => Some(response),
            () = client_gone(&self.stream, &mut self.buffer) => None,
        };
        drop(handler);
        let Some(response) = answered else {
            return Ok(Ended::ClientGone);
        };
        let exchange = Exchange {
            keep_alive: exchange.keep_alive
                && !unread
                && !app.is_draining()
                && !self.closing.load(Ordering::Relaxed),
            ..exchange
        };
        let written = self.respond(response, exchange).await?;
        Ok(match written {
            true => Ended::KeepAlive,
            false => Ended::Close,
        })
    }

    /// Reads the request body whole; `TooLarge` when it is over `limit`
    /// (what is left of it then stays unread).
    async fn read_body(
        &mut self,
        framing: Framing,
        expect_continue: bool,
        limit: u64,
    ) -> io::Result<Result<ClientBody, BodyRefused>> {
        let declared = match framing {
            Framing::Empty => return Ok(Ok(ClientBody::Read(Bytes::new()))),
            Framing::Length(n) if n > limit => return Ok(Ok(ClientBody::TooLarge)),
            Framing::Length(n) => Some(n as usize),
            _ => None,
        };
        if expect_continue && self.buffer.is_empty() {
            write_all(&self.stream, CONTINUE).await?;
        }
        let mut decoder = BodyDecoder::new(framing);
        let mut body = BytesMut::new();
        loop {
            match decoder.decode(&mut self.buffer) {
                // The usual case: the whole body came with the head, and is
                // shared with the buffer rather than copied.
                Ok(Decoded::Data(data)) if body.is_empty() && decoder.is_done() => {
                    return Ok(Ok(ClientBody::Read(data)));
                }
                Ok(Decoded::Data(data)) => {
                    if (body.len() + data.len()) as u64 > limit {
                        return Ok(Ok(ClientBody::TooLarge));
                    }
                    if body.capacity() == 0 {
                        body.reserve(declared.unwrap_or(data.len()));
                    }
                    body.extend_from_slice(&data);
                }
                Ok(Decoded::End) => return Ok(Ok(ClientBody::Read(body.freeze()))),
                Ok(Decoded::NeedMore) => {
                    if poll_fn(|cx| poll_read(&self.stream, &mut self.buffer, READ_BYTES, cx))
                        .await?
                        == 0
                    {
                        return Ok(Err(BodyRefused::ClientGone));
                    }
                }
                Err(_) => return Ok(Err(BodyRefused::Malformed)),
            }
        }
    }

    /// Answers with a JSON error and asks for the connection to close.
    async fn refuse(&mut self, status: http::StatusCode, message: &str) -> io::Result<()> {
        let response = error_response(status, error_type_for(status), message, None);
        let exchange = Exchange {
            head_request: false,
            http10: false,
            keep_alive: false,
        };
        self.respond(response, exchange).await.map(drop)
    }

    /// Writes the answer, its body frame by frame. `true` when the
    /// connection may take another request.
    async fn respond(
        &mut self,
        response: Response<ProxyBody>,
        exchange: Exchange,
    ) -> io::Result<bool> {
        let (parts, mut body) = response.into_parts();
        let relay = body.take_relay_headers();
        self.out.clear();
        let plan = encode_head(
            &mut self.out,
            &parts,
            relay.as_ref(),
            &body.size_hint(),
            exchange,
        );
        drop((parts, relay));
        let complete = match plan.framing {
            BodyFraming::Nothing => {
                drop(body);
                write_all(&self.stream, &self.out).await?;
                true
            }
            framing => self.write_body(body, framing).await?,
        };
        self.out.clear();
        Ok(complete && plan.keep_alive)
    }

    /// Writes a body as its frames come, in as few writes as they allow:
    /// frames that are ready go out together. `false` when the body ended
    /// early (its stream failed, or it was longer or shorter than its
    /// length): the client sees a body cut short, and the connection closes.
    async fn write_body(&mut self, body: ProxyBody, framing: BodyFraming) -> io::Result<bool> {
        let mut body = pin!(body);
        let mut left = match framing {
            BodyFraming::Length(n) => Some(n),
            _ => None,
        };
        loop {
            let frame = match poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    write_all(&self.stream, &self.out).await?;
                    self.out.clear();
                    tokio::select! {
                        biased;
                        frame = body.frame() => frame,
                        // Cancels the relay's stream at once, not at the next event.
                        () = client_gone(&self.stream, &mut self.buffer) => return Ok(false),
                    }
                }
            };
            let data = match frame {
                None => break,
                Some(Err(error)) => {
                    tracing::debug!(%error, "answer body failed; cutting the connection");
                    write_all(&self.stream, &self.out).await?;
                    return Ok(false);
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    _ => continue,
                },
            };
            if let Some(left) = left.as_mut() {
                if data.len() as u64 > *left {
                    tracing::warn!("answer body longer than its length; cutting the connection");
                    write_all(&self.stream, &self.out).await?;
                    return Ok(false);
                }
                *left -= data.len() as u64;
            }
            if framing == BodyFraming::Chunked {
                encode_chunk_start(&mut self.out, data.len());
            }
            if data.len() >= COPY_LIMIT {
                write_all(&self.stream, &self.out).await?;
                self.out.clear();
                write_all(&self.stream, &data).await?;
            } else {
                self.out.extend_from_slice(&data);
            }
            if framing == BodyFraming::Chunked {
                self.out.extend_from_slice(CHUNK_END);
            }
        }
        if framing == BodyFraming::Chunked {
            self.out.extend_from_slice(LAST_CHUNK);
        }
        write_all(&self.stream, &self.out).await?;
        Ok(left.is_none_or(|left| left == 0) && framing != BodyFraming::UntilClose)
    }

    /// Shuts the write side, then reads and drops what the client still
    /// sends until it closes too, for a while at most: see [`LINGER`].
    async fn linger(&mut self) -> io::Result<()> {
        self.close().await;
        let mut dropped = 0;
        let drop_input = async {
            while dropped < LINGER_BYTES {
                self.buffer.clear();
                match poll_fn(|cx| poll_read(&self.stream, &mut self.buffer, READ_BYTES, cx)).await
                {
                    Ok(0) | Err(_) => return,
                    Ok(n) => dropped += n,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drop_input).await;
        Ok(())
    }

    /// Shuts the write side, so that what was written is followed by a FIN.
    async fn close(&mut self) {
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.stream).await;
    }
}

/// Whether the body is read before the request is handled. One that could
/// be large (over [`READ_UNCHECKED`], or chunked) is read only for a
/// proxied route and a client whose key is valid: the handler would refuse
/// the others before it looks at the body, and a client with no key must
/// not make the proxy hold up to `MAX_BODY_BYTES` for it.
fn body_is_wanted(app: &App, head: &ClientHead, framing: Framing) -> bool {
    match framing {
        Framing::Empty => true,
        Framing::Length(n) if n <= READ_UNCHECKED => true,
        _ => {
            matches!(route(&head.method, head.uri.path()), Route::Proxied(_))
                && app.auth.check(&head.headers).is_ok()
        }
    }
}

/// Why a request body was not read.
enum BodyRefused {
    Malformed,
    ClientGone,
}

/// Reads what the client sent into `buffer`, with room for at least `want`
/// bytes: 0 at its end.
fn poll_read(
    stream: &TcpStream,
    buffer: &mut BytesMut,
    want: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    buffer.reserve(want);
    loop {
        let room = buffer.capacity() - buffer.len();
        match stream.try_read_buf(buffer) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                ready!(stream.poll_read_ready(cx))?;
            }
            Ok(read) if read > 0 && read < room => {
                // A read that did not fill the room emptied the socket: the
                // next read waits for readiness rather than trying a read
                // that would block, one system call per request (as
                // tokio's own `poll_read` does). An end or an error that
                // comes after is still seen: closed states are never cleared.
                let _ = stream.try_io(Interest::READABLE, || {
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                });
                return Poll::Ready(Ok(read));
            }
            read => return Poll::Ready(read),
        }
    }
}

/// Completes when the client closes its side or the connection fails, while
/// an answer is awaited or streamed. What it sends meanwhile (a pipelined
/// request) is kept, up to one head's worth; past that, it is no longer
/// read, so the client is held back and the end cannot be seen.
async fn client_gone(stream: &TcpStream, buffer: &mut BytesMut) {
    while buffer.len() <= MAX_HEAD_BYTES {
        match poll_fn(|cx| poll_read(stream, buffer, WATCH_BYTES, cx)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    std::future::pending().await
}

/// Writes all of `bytes`, trying at once and waiting only when the socket
/// is full.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
