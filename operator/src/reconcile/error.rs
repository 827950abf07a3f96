//! Reconcile errors, each with a stable metric label and a condition reason.

use thiserror::Error;

use super::validate::InvalidSpec;

#[derive(Debug, Error)]
pub enum Error {
    #[error("Secret {namespace}/{name} not found")]
    SecretMissing { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    SecretKeyMissing {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("invalid spec: {0}")]
    InvalidSpec(#[from] InvalidSpec),
    #[error("object {0} could not be decoded: {1}")]
    Malformed(String, String),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("serializing {0}: {1}")]
    Serialize(&'static str, serde_json::Error),
}

impl Error {
    /// Label of `claude_middleware_operator_reconcile_errors_total{error=…}`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::SecretMissing { .. } => "secret_missing",
            Error::SecretKeyMissing { .. } => "secret_key_missing",
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Malformed(..) => "malformed",
            Error::Kube(_) => "kube",
            Error::Serialize(..) => "serialize",
        }
    }

    /// Reason of the Degraded condition and of the Warning Event.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::SecretMissing { .. } => "SecretMissing",
            Error::SecretKeyMissing { .. } => "SecretKeyMissing",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Malformed(..) => "Malformed",
            Error::Kube(_) => "ApiError",
            Error::Serialize(..) => "InternalError",
        }
    }

    /// Problems the user must fix (reported on the CR), as opposed to
    /// transient API failures (only retried).
    pub fn is_user_facing(&self) -> bool {
        matches!(
            self,
            Error::SecretMissing { .. } | Error::SecretKeyMissing { .. } | Error::InvalidSpec(_)
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
