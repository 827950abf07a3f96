//! Opening a connection to the relay: TCP, and TLS for an `https` target.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use rustls::RootCertStore;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Connections to the backend fail fast; waiting on a dead backend helps nobody.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalive on backend connections, so a vanished peer is noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// A connection to the relay. TLS is boxed: a plain connection should not
/// carry the size of a TLS session.
pub enum RelayStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Where and how to connect.
pub struct Dialer {
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DialerError {
    #[error("TARGET_URL has no host")]
    NoHost,
    #[error("TARGET_URL host is not a valid TLS server name")]
    ServerName,
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
}

impl Dialer {
    /// `origin`: the backend's scheme and authority; `extra_roots`: CAs
    /// trusted for an https backend besides the Web PKI roots.
    pub fn new(origin: &Uri, extra_roots: RootCertStore) -> Result<Self, DialerError> {
        let https = origin.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host = origin.host().ok_or(DialerError::NoHost)?;
        // `[::1]` in a URI, `::1` to the resolver.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = origin.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let name = ServerName::try_from(host.clone()).map_err(|_| DialerError::ServerName)?;
            Some((TlsConnector::from(Arc::new(tls_config(extra_roots)?)), name))
        } else {
            None
        };
        Ok(Self { host, port, tls })
    }

    /// A new connection, within [`CONNECT_TIMEOUT`].
    pub async fn dial(&self) -> io::Result<RelayStream> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.dial_now())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    }

    async fn dial_now(&self) -> io::Result<RelayStream> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive)?;
        match &self.tls {
            None => Ok(RelayStream::Plain(tcp)),
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await?;
                Ok(RelayStream::Tls(Box::new(tls)))
            }
        }
    }
}

/// Web PKI roots and `extra_roots`, HTTP/1.1 by ALPN.
fn tls_config(extra_roots: RootCertStore) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = extra_roots;
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl RelayStream {
    /// Whether the socket has something to read (data, or its end) without
    /// reading it: an idle connection that has is no longer fit for a request.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Plain(tcp) => tcp.poll_read_ready(cx),
            Self::Tls(tls) => tls.get_ref().0.poll_read_ready(cx),
        }
    }
}

impl AsyncRead for RelayStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for RelayStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(tcp) => tcp.is_write_vectored(),
            Self::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
