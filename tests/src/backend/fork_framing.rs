//! A relay that frames its non-streamed answers as the fork of
//! claude-relay-service does: it copies Anthropic's `transfer-encoding: chunked`
//! and Express's `res.json` adds a `content-length`, so the answer carries both
//! (RFC 9112 §6.3: the transfer coding wins). hyper refuses to send that, so
//! this one writes HTTP/1.1 by hand on a real loopback socket, keeps
//! connections alive and counts them, to show whether a client reuses them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::anthropic::{Answer, DEFAULT_MODEL};

/// A running hand-framed relay; stops on drop.
pub struct ForkFramingRelay {
    addr: SocketAddr,
    counts: Arc<Counts>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct Counts {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

impl ForkFramingRelay {
    pub async fn start() -> std::io::Result<ForkFramingRelay> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let serving = counts.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                serving.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, serving.clone()));
            }
        });
        Ok(ForkFramingRelay {
            addr,
            counts,
            accept,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.counts.connections.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.counts.requests.load(Ordering::SeqCst)
    }
}

impl Drop for ForkFramingRelay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Answers requests on one connection until the client closes it.
async fn serve(stream: TcpStream, counts: Arc<Counts>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let Some(account) = read_request(&mut read).await else {
            return;
        };
        counts.requests.fetch_add(1, Ordering::SeqCst);
        let json = Answer {
            message_id: format!("msg_fork_{}", counts.requests.load(Ordering::SeqCst)),
            model: DEFAULT_MODEL.into(),
            account: account.clone(),
            deltas: 3,
            padding: 0,
            cache_read: 0,
            cache_creation: 0,
        }
        .message_json()
        .to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n\
             transfer-encoding: chunked\r\ncontent-length: {}\r\n\
             x-stand-in-account: {account}\r\nconnection: keep-alive\r\n\r\n",
            json.len()
        );
        let chunked = format!("{:x}\r\n{json}\r\n0\r\n\r\n", json.len());
        if write.write_all(head.as_bytes()).await.is_err()
            || write.write_all(chunked.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

/// Reads one request (head, then a `content-length` body) and returns its
/// `x-api-key`; `None` at the end of the connection or on garbage.
async fn read_request(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut length = 0usize;
    let mut account = String::from("none");
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
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().ok()?,
                "x-api-key" => account = value.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    read.read_exact(&mut body).await.ok()?;
    Some(account)
}
