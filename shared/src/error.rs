//! How an operation fails, by layer. The domain refuses ([`Refusal`]: final, in the contract's
//! terms); a dependency fails ([`Failure`]: S3, DynamoDB, SQS or EventBridge failed or
//! throttled, or an invariant broke), which is the only way the adapters fail on their own. A use
//! case fails with either ([`Error`]). The HTTP edge gives each its status and the contract's
//! body (`http::render`, [`code`]); the queue consumers hand a failed message back to be retried
//! (`verify`, `deliver`).

use crate::domain::error::{Detail, Refusal};
use crate::domain::file::TransitionRefusal;

/// A dependency failed, or an invariant broke: the text is logged, never sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// S3, DynamoDB or another service failed or throttled: a retry may succeed.
    #[error("{}", UNAVAILABLE)]
    Unavailable(String),
    /// A write whose answer was lost, and whose outcome could not be found out: it may have
    /// applied, or may still. Answered as [`Failure::Unavailable`]; what the write would refer
    /// to (an upload, a token's slot) is kept.
    #[error("{}", UNAVAILABLE)]
    MayHaveApplied(String),
    /// A bug or a broken invariant.
    #[error("internal error")]
    Internal(String),
}

/// The message of every 503. A request that failed this way may have applied all the same (the
/// service may have written before its answer was lost): only its retry with the same
/// `Idempotency-Key` is safe, and finds out.
const UNAVAILABLE: &str =
    "a storage dependency is unavailable; retry later with the same Idempotency-Key";

impl Failure {
    /// What is logged: the failed call and why (the message sent says less).
    pub fn text(&self) -> &str {
        match self {
            Self::Unavailable(text) | Self::MayHaveApplied(text) | Self::Internal(text) => text,
        }
    }
}

/// Why a use case did not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Failed(#[from] Failure),
}

impl From<TransitionRefusal> for Error {
    fn from(refusal: TransitionRefusal) -> Self {
        Self::Refused(refusal.into())
    }
}

impl Error {
    /// Whether this failure may have left its write applied: then nothing the write refers to
    /// may be discarded.
    pub fn may_have_applied(&self) -> bool {
        matches!(self, Self::Failed(Failure::MayHaveApplied(_)))
    }

    /// Whether a retry of the same request may be answered otherwise: a failure, or a refusal
    /// that may change ([`Refusal::is_retriable`]). Such an answer is never kept under an
    /// `Idempotency-Key` (docs/API.md v1.2, "Idempotency-Key keeps final answers only").
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Refused(refusal) => refusal.is_retriable(),
            Self::Failed(_) => true,
        }
    }

    pub fn details(&self) -> &[Detail] {
        match self {
            Self::Refused(refusal) => refusal.details(),
            Self::Failed(_) => &[],
        }
    }
}

/// The contract's error code of `err` (`docs/API.md`, Errors).
pub fn code(err: &Error) -> &'static str {
    match err {
        Error::Refused(refusal) => match refusal {
            Refusal::BadRequest(_) => "bad_request",
            Refusal::Unauthorized(_) => "unauthorized",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::QuotaExceeded(_) => "quota_exceeded",
            Refusal::NotFound | Refusal::NoWebhook => "not_found",
            Refusal::Conflict { .. } => "conflict",
            Refusal::PayloadTooLarge { .. } => "payload_too_large",
            Refusal::Validation(_) => "validation_error",
            Refusal::IdempotencyKeyReused => "idempotency_key_reused",
            Refusal::IdempotencyKeyInUse => "idempotency_key_in_use",
        },
        Error::Failed(Failure::Internal(_)) => "internal",
        Error::Failed(Failure::Unavailable(_) | Failure::MayHaveApplied(_)) => "unavailable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_refusals_a_retry_can_change_are_retriable() {
        for (err, retriable) in [
            (Failure::Unavailable("timeout".into()).into(), true),
            (Failure::MayHaveApplied("timeout".into()).into(), true),
            (Failure::Internal("bug".into()).into(), true),
            (Refusal::IdempotencyKeyInUse.into(), true),
            (Refusal::concurrent_update("retry").into(), true),
            (Refusal::upload_expired().into(), false),
            (Error::from(Refusal::NotFound), false),
        ] {
            assert_eq!(err.is_retriable(), retriable, "{err:?}");
        }
    }
}
