//! One attempt on one account: build the upstream request, send it, and
//! judge the answer, reading ahead of the client only as far as the verdict
//! needs.

use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;

use super::context::Forwarding;
use super::error::ForwardError;
use super::first_event::{FirstEvent, first_event};
use super::headers::{self, HeaderSink};
use super::peer::Peer;
use super::read_ahead::{self, ReadAhead};
use crate::accounts::{Account, now_ms};
use crate::client_head::ClientHead;
use crate::selection::{
    HeadVerdict, Outcome, classify_error, classify_head, classify_stream_error,
};
use crate::upstream::{RelayBody, RelayHeaders, RelayResponse, RequestHead, SendError};

/// An account's answer, judged, with what was read ahead of its body.
pub struct Answer {
    /// Its body goes on from the connection; the connection goes back to
    /// the pool when the body has ended (an error answer's, read whole while
    /// judging, already has).
    pub response: RelayResponse,
    pub prefix: Bytes,
    pub outcome: Outcome,
}

/// Sends the request on `account` and judges what comes back. An error is
/// the backend's own failure (or a request that cannot be sent): no other
/// account would do better.
pub async fn attempt(
    ctx: &Forwarding<'_>,
    head: &ClientHead,
    body: &Bytes,
    account: &Account,
    peer: Option<&Peer>,
) -> Result<Answer, ForwardError> {
    let request = upstream_request(ctx, head, account, peer)?;
    let sent = Instant::now();
    let mut response = send(ctx, request, body, sent).await?;
    ctx.metrics
        .upstream_latency
        .observe(sent.elapsed().as_secs_f64());
    let (outcome, prefix) =
        judge(ctx, response.status, &response.headers, &mut response.body).await?;
    Ok(Answer {
        response,
        prefix,
        outcome,
    })
}

/// The backend's request head: the mapped path, the target's `Host`, and
/// the client's headers rewritten for the account.
fn upstream_request(
    ctx: &Forwarding<'_>,
    head: &ClientHead,
    account: &Account,
    peer: Option<&Peer>,
) -> Result<RequestHead, ForwardError> {
    let account_key = account.key_header().ok_or(ForwardError::Unforwardable(
        "the account id is not a valid header",
    ))?;
    let mut request = RequestHead::new(&head.method, ctx.target.path_for(&head.uri));
    request.header(b"host", ctx.target.host_header().as_bytes());
    headers::upstream_headers(&head.headers, account_key, peer, &mut request);
    Ok(request)
}

impl HeaderSink for RequestHead {
    fn header(&mut self, name: &[u8], value: &[u8]) {
        self.raw_header(name, value);
    }
}

/// The response head, within PROXY_TIMEOUT of `sent`.
async fn send(
    ctx: &Forwarding<'_>,
    head: RequestHead,
    body: &Bytes,
    sent: Instant,
) -> Result<RelayResponse, ForwardError> {
    let deadline = tokio::time::Instant::from_std(sent) + ctx.settings.proxy_timeout;
    match tokio::time::timeout_at(deadline, ctx.client.send(head, body, sent)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(SendError::Connect(error))) => Err(ForwardError::Connect(error)),
        Ok(Err(SendError::Request(error))) => Err(ForwardError::Request(error)),
        Err(_) => Err(ForwardError::HeadTimeout),
    }
}

/// Reads ahead as far as the verdict needs (a stream's first event, an error
/// answer's body) and classifies the answer. `Err` is a body that broke
/// before anything could be judged: the backend's failure, not the account's.
async fn judge(
    ctx: &Forwarding<'_>,
    status: StatusCode,
    headers: &RelayHeaders,
    body: &mut RelayBody,
) -> Result<(Outcome, Bytes), ForwardError> {
    let cooldowns = &ctx.settings.cooldowns;
    let timeout = ctx.settings.proxy_timeout;
    match classify_head(status) {
        HeadVerdict::ClientError => Ok((Outcome::ClientError, Bytes::new())),
        HeadVerdict::NeedsBody => {
            let prefix = read_ahead::read_error_body(body, timeout)
                .await
                .map_err(|e| {
                    ForwardError::BrokenBeforeVerdict(format!(
                        "backend error answer broke before its end: {e}"
                    ))
                })?;
            // The relay keeps `text/event-stream` on its own errors of a
            // streaming request: judge the event's data then.
            let json = match first_event(&prefix) {
                FirstEvent::Error { data } => Bytes::from(data),
                _ => prefix.clone(),
            };
            let outcome = classify_error(status, headers, &json, cooldowns, now_ms());
            Ok((outcome, prefix))
        }
        HeadVerdict::Success if read_ahead::is_event_stream(headers) => {
            match read_ahead::read_first_event(body, timeout).await {
                ReadAhead::Commit { prefix } => Ok((Outcome::Success, prefix)),
                ReadAhead::Error { data, prefix } => {
                    let outcome = classify_stream_error(headers, &data, cooldowns, now_ms());
                    Ok((outcome, prefix))
                }
                ReadAhead::Failed(error) => Err(ForwardError::BrokenBeforeVerdict(format!(
                    "backend stream failed before its first event: {error}"
                ))),
            }
        }
        HeadVerdict::Success => Ok((Outcome::Success, Bytes::new())),
    }
}
