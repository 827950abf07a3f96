//! The client's request body, read whole so it can be sent again to another
//! account.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::error::ForwardError;
use crate::client_head::ClientHeaders;

/// A client's request body as the server hands it over.
#[derive(Debug)]
pub enum ClientBody {
    /// Still to be read: hyper's, over HTTP/2.
    Incoming(Incoming),
    /// Read whole already (the HTTP/1 server does, before the request is
    /// routed, as nginx does).
    Read(Bytes),
    /// Declared or found larger than the server's limit, and left unread.
    TooLarge,
    /// Left unread by the server: the request is not to be forwarded (not a
    /// proxied route, or no valid key), so its body is never asked for.
    Unread,
}

/// The body, read whole, up to `limit` bytes.
pub async fn read_body(
    body: ClientBody,
    headers: &ClientHeaders,
    limit: u64,
) -> Result<Bytes, ForwardError> {
    match body {
        ClientBody::Incoming(body) => read_incoming(body, headers, limit).await,
        ClientBody::Read(body) if body.len() as u64 <= limit => Ok(body),
        ClientBody::Read(_) | ClientBody::TooLarge => Err(ForwardError::BodyTooLarge),
        // Only if the keys changed between the server's check and the
        // handler's: the body was not read, and cannot be sent.
        ClientBody::Unread => Err(ForwardError::BodyUnreadable),
    }
}

/// Reads the body up to `limit` bytes. It is copied into a buffer of its own,
/// sized up front from `content-length`: a slice of hyper's read buffer would
/// pin that buffer for as long as the response streams, and growing a buffer
/// for a large body costs page faults.
async fn read_incoming(
    mut body: Incoming,
    headers: &ClientHeaders,
    limit: u64,
) -> Result<Bytes, ForwardError> {
    let declared = headers
        .get_text("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ForwardError::BodyTooLarge);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let capacity = declared.map_or(0, |len| usize::try_from(len).unwrap_or(0));
    let mut buffer = BytesMut::with_capacity(capacity.min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ForwardError::BodyUnreadable)?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(ForwardError::BodyTooLarge);
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}
