//! A relay that answers with HTTP/1.1 written by hand, byte for byte, on a
//! real loopback socket: for what a well-behaved server never sends (interim
//! answers, broken heads, conflicting lengths, bodies cut short, bytes
//! trickled one at a time), to see how the proxy's client to the relay takes
//! it.
//!
//! Each request takes the next queued [`Reply`] (or
//! [`RawRelay::default_reply`] once none is left), and is recorded with the number of the connection it
//! came on: a test tells a reused connection from a new one by that number.
//!
//! [`RawRelay::start_tls`] serves the same over TLS, with the certificate a
//! test made, for the proxy's client to an https relay.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// What the relay writes for one request, and what it does after.
#[derive(Debug, Clone)]
pub struct Reply {
    steps: Vec<Step>,
    after: After,
}

#[derive(Debug, Clone)]
enum Step {
    Write(Vec<u8>),
    /// One byte per write, with a pause after each: every byte its own TCP
    /// segment (the socket has Nagle off).
    ByteByByte(Vec<u8>, Duration),
    Pause(Duration),
}

#[derive(Debug, Clone, Copy)]
enum After {
    /// Wait for the next request on the connection, however long.
    KeepOpen,
    /// Close the connection once the reply is written.
    Close,
    /// Wait for the next request, but close the connection if none came
    /// within this time (a server's keep-alive timeout).
    CloseWhenIdleFor(Duration),
}

impl Reply {
    /// These bytes in one write; the connection is kept open after.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply {
            steps: vec![Step::Write(bytes.into())],
            after: After::KeepOpen,
        }
    }

    /// These bytes one at a time, `gap` apart; the connection kept open after.
    pub fn byte_by_byte(bytes: impl Into<Vec<u8>>, gap: Duration) -> Reply {
        Reply {
            steps: vec![Step::ByteByByte(bytes.into(), gap)],
            after: After::KeepOpen,
        }
    }

    pub fn then_pause(mut self, pause: Duration) -> Reply {
        self.steps.push(Step::Pause(pause));
        self
    }

    pub fn then_write(mut self, bytes: impl Into<Vec<u8>>) -> Reply {
        self.steps.push(Step::Write(bytes.into()));
        self
    }

    /// Closes the connection once the reply is written.
    pub fn then_close(mut self) -> Reply {
        self.after = After::Close;
        self
    }

    /// Keeps the connection for `idle`, then closes it unless a request came.
    pub fn then_close_when_idle_for(mut self, idle: Duration) -> Reply {
        self.after = After::CloseWhenIdleFor(idle);
        self
    }
}

/// A request the relay read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// The connection it came on, numbered from 0 in the order accepted.
    pub connection: usize,
    /// `POST /api/v1/messages HTTP/1.1`.
    pub request_line: String,
}

/// A running hand-written relay; stops, with every connection it holds, on drop.
pub struct RawRelay {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    replies: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<SeenRequest>>,
    handshake_errors: Mutex<Vec<String>>,
}

impl RawRelay {
    /// The body of [`RawRelay::default_reply`].
    pub const DEFAULT_BODY: &str = r#"{"id":"msg_raw_default","type":"message","role":"assistant","model":"claude-raw","content":[{"type":"text","text":"default answer"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":2}}"#;

    pub async fn start() -> std::io::Result<RawRelay> {
        RawRelay::listen(None).await
    }

    /// The same relay behind TLS with this configuration (its certificate).
    pub async fn start_tls(config: Arc<rustls::ServerConfig>) -> std::io::Result<RawRelay> {
        RawRelay::listen(Some(TlsAcceptor::from(config))).await
    }

    async fn listen(tls: Option<TlsAcceptor>) -> std::io::Result<RawRelay> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let is_tls = tls.is_some();
        let shared = Arc::new(Shared::default());
        let serving = shared.clone();
        let accept = tokio::spawn(async move {
            // Owned here: aborting this task drops the set, which aborts
            // every connection's task and so closes its socket.
            let mut connections = JoinSet::new();
            let mut number = 0;
            while let Ok((stream, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                connections.spawn(open(stream, tls.clone(), number, serving.clone()));
                number += 1;
            }
        });
        Ok(RawRelay {
            addr,
            tls: is_tls,
            shared,
            accept,
        })
    }

    /// `http://127.0.0.1:PORT`, or `https://…` for a TLS relay.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Queues the reply to the next request that has none yet.
    pub fn reply(&self, reply: Reply) {
        lock(&self.shared.replies).push_back(reply);
    }

    /// Every request read so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.shared.seen).clone()
    }

    /// Why each TLS handshake that failed did, in order.
    pub fn handshake_errors(&self) -> Vec<String> {
        lock(&self.shared.handshake_errors).clone()
    }

    /// The connection each request came on, in the order they came.
    pub fn connection_of_each_request(&self) -> Vec<usize> {
        self.requests().iter().map(|r| r.connection).collect()
    }

    /// What a request gets when no reply is queued: a 200 JSON message with
    /// a `content-length`, the connection kept open.
    pub fn default_reply() -> Reply {
        Reply::new(json_answer("", RawRelay::DEFAULT_BODY))
    }
}

impl Drop for RawRelay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// `HTTP/1.1 200 OK` with a JSON body and its `content-length`; `extra` is
/// more header lines, each ended with CRLF.
pub fn json_answer(extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

/// Serves one accepted connection, after the TLS handshake if any.
async fn open(stream: TcpStream, tls: Option<TlsAcceptor>, connection: usize, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => {
            let (read, write) = stream.into_split();
            serve(read, write, connection, shared).await;
        }
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(stream) => {
                let (read, write) = tokio::io::split(stream);
                serve(read, write, connection, shared).await;
            }
            Err(error) => lock(&shared.handshake_errors).push(error.to_string()),
        },
    }
}

/// Reads requests on one connection and writes each its reply, until the
/// reply or the peer ends the connection.
async fn serve(
    read: impl AsyncRead + Unpin,
    mut write: impl AsyncWrite + Unpin,
    connection: usize,
    shared: Arc<Shared>,
) {
    let mut read = BufReader::new(read);
    let mut idle_limit = None;
    loop {
        let request_line = match idle_limit {
            None => read_request(&mut read).await,
            Some(limit) => tokio::time::timeout(limit, read_request(&mut read))
                .await
                .ok()
                .flatten(),
        };
        let Some(request_line) = request_line else {
            return;
        };
        lock(&shared.seen).push(SeenRequest {
            connection,
            request_line,
        });
        let reply = lock(&shared.replies)
            .pop_front()
            .unwrap_or_else(RawRelay::default_reply);
        if write_reply(&mut write, &reply.steps).await.is_err() {
            return;
        }
        idle_limit = match reply.after {
            After::KeepOpen => None,
            After::Close => {
                // Over TLS, a close_notify first: without it the end reads
                // as a cut, not as the end of the body.
                let _ = write.shutdown().await;
                return;
            }
            After::CloseWhenIdleFor(idle) => Some(idle),
        };
    }
}

/// Each write is flushed before the next step: over TLS, a pause must not
/// hold back bytes written before it.
async fn write_reply(write: &mut (impl AsyncWrite + Unpin), steps: &[Step]) -> std::io::Result<()> {
    for step in steps {
        match step {
            Step::Write(bytes) => {
                write.write_all(bytes).await?;
                write.flush().await?;
            }
            Step::ByteByByte(bytes, gap) => {
                for byte in bytes {
                    write.write_all(std::slice::from_ref(byte)).await?;
                    write.flush().await?;
                    tokio::time::sleep(*gap).await;
                }
            }
            Step::Pause(pause) => tokio::time::sleep(*pause).await,
        }
    }
    Ok(())
}

/// Reads one request (its head, then a `content-length` body) and returns
/// its request line; `None` at the end of the connection or on garbage.
async fn read_request(read: &mut (impl AsyncBufRead + Unpin)) -> Option<String> {
    let mut request_line = String::new();
    if read.read_line(&mut request_line).await.ok()? == 0 {
        return None;
    }
    let mut length = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    read.read_exact(&mut body).await.ok()?;
    Some(request_line.trim_end().to_string())
}

/// The lists hold no invariant a panicking test could break.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The SSE events of a short streamed answer whose one text delta is `text`.
pub fn short_sse_events(text: &str) -> Vec<String> {
    let delta = format!(
        r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#
    );
    [
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_raw_sse","type":"message","role":"assistant","model":"claude-raw","content":[],"usage":{"input_tokens":5,"output_tokens":1}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        ("content_block_delta", delta.as_str()),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ]
    .iter()
    .map(|(event, data)| format!("event: {event}\ndata: {data}\n\n"))
    .collect()
}
