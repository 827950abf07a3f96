//! Every way a proxied request ends with the proxy's own answer instead of
//! an account's. Each error knows its status, its Anthropic error type, its
//! outcome label and what the client is told, so forwarding just returns it.

use std::time::Duration;

use http::{Response, StatusCode};

use crate::auth::AuthError;
use crate::metrics::RequestOutcome;
use crate::response::{ProxyBody, RequestRecord, error_response, error_type_for};

/// How long a client is asked to wait while the pool has not loaded yet.
const POOL_NOT_LOADED_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error("request body is larger than MAX_BODY_BYTES")]
    BodyTooLarge,
    #[error("the request body could not be read")]
    BodyUnreadable,
    /// The request cannot be expressed to the backend (path, account id).
    #[error("{0}")]
    Unforwardable(&'static str),
    #[error("the account pool has not been loaded from Redis yet")]
    PoolNotLoaded,
    /// No account can take the request; `retry_after` is when one may.
    #[error("{}", .reason.message())]
    NoAccount {
        reason: NoAccount,
        retry_after: Duration,
    },
    #[error("cannot connect to the backend: {0}")]
    Connect(String),
    #[error("backend request failed: {0}")]
    Request(String),
    #[error("the backend sent no response head within PROXY_TIMEOUT")]
    HeadTimeout,
    /// The answer's body broke before it could be judged.
    #[error("{0}")]
    BrokenBeforeVerdict(String),
}

/// Why no account is available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAccount {
    AllRateLimited,
    EmptyPool,
    NoneHealthy,
}

impl NoAccount {
    fn message(self) -> &'static str {
        match self {
            Self::AllRateLimited => "every account is rate limited",
            Self::EmptyPool => "no schedulable account in the pool",
            Self::NoneHealthy => "no healthy account available",
        }
    }
}

impl ForwardError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyUnreadable | Self::Unforwardable(_) => StatusCode::BAD_REQUEST,
            Self::PoolNotLoaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::NoAccount {
                reason: NoAccount::AllRateLimited,
                ..
            } => StatusCode::TOO_MANY_REQUESTS,
            Self::NoAccount { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Connect(_) | Self::Request(_) | Self::BrokenBeforeVerdict(_) => {
                StatusCode::BAD_GATEWAY
            }
            Self::HeadTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Anthropic's `error.type` for this answer.
    pub fn error_type(&self) -> &'static str {
        error_type_for(self.status())
    }

    /// The request's outcome label: refused by the proxy, or the backend failed.
    pub fn outcome(&self) -> RequestOutcome {
        if self.is_backend_failure() {
            RequestOutcome::BackendError
        } else {
            RequestOutcome::Refused
        }
    }

    /// The backend itself is down, stuck or broken: no account is to blame.
    fn is_backend_failure(&self) -> bool {
        matches!(
            self,
            Self::Connect(_) | Self::Request(_) | Self::HeadTimeout | Self::BrokenBeforeVerdict(_)
        )
    }

    /// What the client reads. The backend's failures are summed up (their
    /// detail, with addresses, goes to the log only).
    pub fn client_message(&self) -> String {
        match self {
            Self::HeadTimeout => "the relay backend did not answer in time".to_string(),
            backend if backend.is_backend_failure() => {
                "the relay backend is unreachable".to_string()
            }
            other => other.to_string(),
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::PoolNotLoaded => Some(POOL_NOT_LOADED_RETRY),
            Self::NoAccount { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// What the log line says beyond the status.
    fn log_detail(&self) -> String {
        match self {
            Self::PoolNotLoaded => "account pool not loaded".to_string(),
            other => other.to_string(),
        }
    }

    /// Finishes the request's record and answers in Anthropic's error shape.
    pub fn into_response(self, mut record: RequestRecord) -> Response<ProxyBody> {
        let status = self.status();
        record.status = status.as_u16();
        record.finish(self.outcome(), Some(&self.log_detail()));
        error_response(
            status,
            self.error_type(),
            &self.client_message(),
            self.retry_after(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_account(reason: NoAccount) -> ForwardError {
        ForwardError::NoAccount {
            reason,
            retry_after: Duration::from_secs(7),
        }
    }

    #[test]
    fn each_error_knows_its_answer() {
        let cases: Vec<(ForwardError, u16, &str, RequestOutcome)> = vec![
            (
                AuthError::Missing.into(),
                401,
                "authentication_error",
                RequestOutcome::Refused,
            ),
            (
                ForwardError::BodyTooLarge,
                413,
                "invalid_request_error",
                RequestOutcome::Refused,
            ),
            (
                ForwardError::BodyUnreadable,
                400,
                "invalid_request_error",
                RequestOutcome::Refused,
            ),
            (
                ForwardError::PoolNotLoaded,
                503,
                "overloaded_error",
                RequestOutcome::Refused,
            ),
            (
                no_account(NoAccount::AllRateLimited),
                429,
                "rate_limit_error",
                RequestOutcome::Refused,
            ),
            (
                no_account(NoAccount::EmptyPool),
                503,
                "overloaded_error",
                RequestOutcome::Refused,
            ),
            (
                ForwardError::Connect("refused".into()),
                502,
                "api_error",
                RequestOutcome::BackendError,
            ),
            (
                ForwardError::HeadTimeout,
                504,
                "api_error",
                RequestOutcome::BackendError,
            ),
            (
                ForwardError::BrokenBeforeVerdict("reset".into()),
                502,
                "api_error",
                RequestOutcome::BackendError,
            ),
        ];
        for (error, status, error_type, outcome) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.error_type(), error_type, "{error}");
            assert_eq!(error.outcome(), outcome, "{error}");
        }
    }

    #[test]
    fn backend_detail_stays_in_the_log() {
        let error = ForwardError::Connect("tcp connect error: 10.0.0.7:3001 refused".into());
        assert_eq!(error.client_message(), "the relay backend is unreachable");
        assert!(error.log_detail().contains("10.0.0.7"));
        assert_eq!(
            ForwardError::HeadTimeout.client_message(),
            "the relay backend did not answer in time"
        );
    }

    #[test]
    fn waits_are_suggested_only_when_one_is_known() {
        assert_eq!(
            ForwardError::PoolNotLoaded.retry_after(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            no_account(NoAccount::NoneHealthy).retry_after(),
            Some(Duration::from_secs(7))
        );
        assert_eq!(ForwardError::BodyTooLarge.retry_after(), None);
        assert_eq!(
            no_account(NoAccount::AllRateLimited).client_message(),
            "every account is rate limited"
        );
    }
}
