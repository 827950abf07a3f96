//! Forwarding a client request to the relay backend: read the body once (so
//! it can be replayed), pick an account, [`attempt`](attempt::attempt) it,
//! and either retry on another account (only while nothing has reached the
//! client) or stream the answer back frame by frame. Every refusal is one
//! [`ForwardError`], which knows its own answer.

mod attempt;
mod context;
mod error;
pub mod first_event;
pub mod headers;
mod peer;
mod read_ahead;
mod request_body;
mod target;

use std::sync::Arc;
use std::time::Duration;

use http::Response;

pub use context::{ForwardSettings, Forwarding};
pub use error::{ForwardError, NoAccount};
pub use peer::Peer;
pub use request_body::ClientBody;
pub use target::Target;

use crate::accounts::{Account, PoolSnapshot, now_ms};
use crate::client_head::ClientHead;
use crate::metrics::RequestOutcome;
use crate::response::{ProxyBody, RequestRecord, UpstreamBody};
use crate::selection::outcome::retry_after;
use crate::selection::retry::{jitter, retry_delay};
use crate::selection::{FailureKind, Outcome, RelayFailure, Selection};
use crate::sessions::session_id;
use crate::upstream::RelayResponse;
use crate::usage::{UsageTap, model_family, request_model};
use attempt::{Answer, attempt};
use request_body::read_body;

/// Proxies one request under `route` (the matched prefix, a metric label).
pub async fn forward(
    ctx: &Forwarding<'_>,
    head: &ClientHead,
    body: ClientBody,
    peer: Option<&Peer>,
    route: &'static str,
) -> Response<ProxyBody> {
    let mut record = RequestRecord::new(
        ctx.metrics.clone(),
        head.method.clone(),
        head.uri.path(),
        route,
    );
    match proxy(ctx, head, body, peer, &mut record).await {
        Ok(answer) => stream_back(ctx, answer, record),
        Err(error) => error.into_response(record),
    }
}

/// Everything before the answer is committed: check the client, read the
/// body, then try accounts until one answers for good or none is left.
async fn proxy(
    ctx: &Forwarding<'_>,
    head: &ClientHead,
    body: ClientBody,
    peer: Option<&Peer>,
    record: &mut RequestRecord,
) -> Result<Answer, ForwardError> {
    ctx.auth.check(&head.headers)?;
    let body = read_body(body, &head.headers, ctx.settings.max_body_bytes).await?;
    record.model_family = request_model(&body).map(model_family);
    let pool = ctx.pool.snapshot().ok_or(ForwardError::PoolNotLoaded)?;
    let mut session = ctx
        .sessions
        .enabled()
        .then(|| session_id(&head.headers, &body))
        .flatten();
    let preferred = match &session {
        Some(session) => ctx.sessions.lookup(ctx.shared_health, session).await,
        None => None,
    };

    // The accounts that failed this request (the one being tried is added
    // only once it has failed: most requests never need the list).
    let mut tried: Vec<Arc<str>> = Vec::new();
    // The last account failure, answered as is when no other account is left.
    let mut last_failure: Option<Answer> = None;
    loop {
        let picked = ctx
            .selector
            .pick(&pool.accounts, preferred.as_deref(), &tried, now_ms());
        let account = match picked {
            Selection::Chosen(account) => account,
            Selection::NoneAvailable {
                retry_after,
                all_rate_limited,
            } => {
                return last_failure
                    .ok_or_else(|| no_account(ctx, &pool, retry_after, all_rate_limited));
            }
        };
        record.attempts = tried.len() as u32 + 1;
        record.account = Some(account.id.clone());

        let answer = attempt(ctx, head, &body, account, peer).await?;
        let Some(wait) = next_step(ctx, &answer, account, &mut session, record) else {
            if preferred.as_ref().is_some_and(|p| *p != account.id) {
                // The session's account was cooling or failed: its prompt cache is lost.
                ctx.metrics.session_repins.inc();
            }
            return Ok(answer);
        };
        tried.push(account.id.clone());
        last_failure = Some(answer);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// What an answer leads to: `None` to give it to the client, or the wait
/// before the next account is tried.
fn next_step(
    ctx: &Forwarding<'_>,
    answer: &Answer,
    account: &Account,
    session: &mut Option<String>,
    record: &mut RequestRecord,
) -> Option<Duration> {
    match answer.outcome {
        Outcome::Success | Outcome::ClientError => {
            if let Some(session) = session.take() {
                ctx.sessions
                    .remember(ctx.shared_health, session, account.id.clone());
            }
            None
        }
        Outcome::RelayFailure(failure) => {
            tracing::warn!(
                account = account.short_id(),
                status = answer.response.status.as_u16(),
                outcome = failure.as_str(),
                "the relay answered on its own; no account is blamed"
            );
            record.completed_as = relay_outcome(failure);
            None
        }
        Outcome::AccountFailure { kind, cooldown } => {
            record.status = answer.response.status.as_u16();
            let failed = Failed::new(account, kind, cooldown, record.attempts - 1);
            after_account_failure(ctx, answer, failed)
        }
    }
}

/// An account's failure: which account, why, and on which attempt (from 0).
struct Failed<'a> {
    account: &'a Account,
    kind: FailureKind,
    cooldown: Duration,
    attempt: u32,
}

impl<'a> Failed<'a> {
    fn new(account: &'a Account, kind: FailureKind, cooldown: Duration, attempt: u32) -> Self {
        Self {
            account,
            kind,
            cooldown,
            attempt,
        }
    }
}

/// Cools the account down, then says how long to wait before trying the
/// next one, or `None` to answer the client with this failure now (the last
/// attempt, or a wait longer than the proxy holds a request).
fn after_account_failure(
    ctx: &Forwarding<'_>,
    answer: &Answer,
    failed: Failed<'_>,
) -> Option<Duration> {
    let Failed {
        account,
        kind,
        cooldown,
        attempt,
    } = failed;
    ctx.cool_down(&account.id, kind, cooldown);
    tracing::warn!(
        account = account.short_id(),
        status = answer.response.status.as_u16(),
        reason = kind.as_str(),
        cooldown_s = cooldown.as_secs(),
        "account failed; cooling down"
    );
    if attempt >= ctx.settings.retry_attempts {
        return None;
    }
    let asked = retry_after(&answer.response.headers, now_ms());
    let wait = retry_delay(kind, asked, attempt, jitter())?;
    ctx.metrics.record_retry(kind);
    Some(wait)
}

/// The outcome label of the relay's own answer, passed on.
fn relay_outcome(failure: RelayFailure) -> RequestOutcome {
    match failure {
        RelayFailure::Limited => RequestOutcome::RelayLimited,
        RelayFailure::Error => RequestOutcome::RelayError,
    }
}

/// No account can take the request now, and none has answered yet.
fn no_account(
    ctx: &Forwarding<'_>,
    pool: &PoolSnapshot,
    retry_after: Option<Duration>,
    all_rate_limited: bool,
) -> ForwardError {
    let reason = if all_rate_limited {
        NoAccount::AllRateLimited
    } else if pool.accounts.is_empty() {
        NoAccount::EmptyPool
    } else {
        NoAccount::NoneHealthy
    };
    ForwardError::NoAccount {
        reason,
        retry_after: retry_after.unwrap_or(ctx.settings.no_account_retry_after),
    }
}

/// Commits the response to the client and streams its body as it arrives.
/// The relay's header lines go with the body, for the server to write as
/// its protocol needs ([`ProxyBody::take_relay_headers`]).
fn stream_back(
    ctx: &Forwarding<'_>,
    answer: Answer,
    mut record: RequestRecord,
) -> Response<ProxyBody> {
    let RelayResponse {
        status,
        headers,
        body,
    } = answer.response;
    record.status = status.as_u16();
    if status.is_success() {
        record.usage = headers.content_type().and_then(UsageTap::for_content_type);
    }
    let body = UpstreamBody::new(
        body,
        headers,
        answer.prefix,
        ctx.settings.proxy_timeout,
        record,
    );
    let mut response = Response::new(ProxyBody::upstream(body));
    *response.status_mut() = status;
    response
}
