//! What the service refuses, in the contract's terms (`docs/API.md`, Errors): a bad field, a
//! conflict, a quota passed, a file that is not there. A refusal is final: the same request gets
//! the same answer until something else changes. How a dependency fails is not the domain's
//! (`error::Failure`, above the domain); which HTTP status each refusal gets is the edge's.

use serde::Serialize;

/// One entry of an error's `details`: a bad field, or the reason behind a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub part_numbers: Vec<u32>,
}

impl Detail {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            reason: None,
            message: message.into(),
            part_numbers: Vec::new(),
        }
    }

    pub fn reason(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: None,
            reason: Some(reason),
            message: message.into(),
            part_numbers: Vec::new(),
        }
    }

    pub fn with_parts(mut self, part_numbers: Vec<u32>) -> Self {
        self.part_numbers = part_numbers;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The body is not the JSON object the route takes.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    /// The change would take the project past its quota (a detail per bound passed).
    #[error("this would take the project past its quota")]
    QuotaExceeded(Vec<Detail>),
    #[error("no such file")]
    NotFound,
    #[error("this project has no webhook")]
    NoWebhook,
    #[error("{message}")]
    Conflict {
        message: String,
        details: Vec<Detail>,
    },
    /// `file_size`, or a direct upload's `body`, above its maximum (the detail names which).
    #[error("{} is above the maximum of {max} bytes", too_large(.details))]
    PayloadTooLarge { max: u64, details: Vec<Detail> },
    #[error("{}", validation_message(.0))]
    Validation(Vec<Detail>),
    #[error("this Idempotency-Key was used for another request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still running; retry later")]
    IdempotencyKeyInUse,
}

/// The conflict reason of a file that other requests kept changing: retry.
const CONCURRENT_UPDATE: &str = "concurrent_update";

/// Details an error body lists at most.
pub const MAX_DETAILS: usize = 50;

fn validation_message(details: &[Detail]) -> String {
    match details.len() {
        1 => "1 field is invalid".to_owned(),
        n if n > MAX_DETAILS => {
            format!("{n} fields are invalid; the first {MAX_DETAILS} are listed")
        }
        n => format!("{n} fields are invalid"),
    }
}

impl Refusal {
    pub fn conflict(reason: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Conflict {
            details: vec![Detail::reason(reason, message.clone())],
            message,
        }
    }

    /// The upload in progress no longer exists in storage (aborted by the bucket's lifecycle
    /// rule, or by someone else): nothing can be added to it; a reupload starts afresh.
    pub fn upload_expired() -> Self {
        Self::conflict(
            "upload_expired",
            "storage no longer has this upload (it expired or was aborted); start a new one with reupload",
        )
    }

    /// An API key without a grant for the project.
    pub fn no_grant() -> Self {
        Self::Forbidden("this API key has no access to the project")
    }

    /// What an upload token may not do: only an API key may.
    pub fn not_for_tokens() -> Self {
        Self::Forbidden(
            "an upload token may only create files and finish their uploads; this needs an API key",
        )
    }

    /// A token's project is another, or the file is not one the token created.
    pub fn outside_token() -> Self {
        Self::Forbidden("this upload token has no access to this project or file")
    }

    /// Every file the token may create is created.
    pub fn token_used_up() -> Self {
        Self::Forbidden("this upload token has created all the files it may (max_files)")
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![Detail::field(field, message)])
    }

    /// Another request changed the file meanwhile, and kept changing it: worth retrying.
    pub fn concurrent_update(message: impl Into<String>) -> Self {
        Self::conflict(CONCURRENT_UPDATE, message)
    }

    /// Whether a retry of the same request may be answered otherwise: a key still in use, a
    /// file another request was changing. Every other refusal is final.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::IdempotencyKeyInUse => true,
            Self::Conflict { details, .. } => details
                .iter()
                .any(|detail| detail.reason == Some(CONCURRENT_UPDATE)),
            _ => false,
        }
    }

    /// A direct upload's body above `max` bytes.
    pub fn body_too_large(max: u64) -> Self {
        Self::PayloadTooLarge {
            max,
            details: vec![Detail::field(
                "body",
                format!(
                    "must be at most {max} bytes: larger files go through create and a presigned PUT"
                ),
            )],
        }
    }

    pub fn details(&self) -> &[Detail] {
        match self {
            Self::Conflict { details, .. }
            | Self::PayloadTooLarge { details, .. }
            | Self::Validation(details)
            | Self::QuotaExceeded(details) => details,
            _ => &[],
        }
    }
}

/// What a 413 is about: the field of its detail.
fn too_large(details: &[Detail]) -> &str {
    details
        .first()
        .and_then(|detail| detail.field.as_deref())
        .unwrap_or("file_size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_a_retry_can_change_are_retriable() {
        for (refusal, retriable) in [
            (Refusal::IdempotencyKeyInUse, true),
            (Refusal::concurrent_update("retry"), true),
            (
                Refusal::conflict("upload_incomplete", "parts missing"),
                false,
            ),
            (Refusal::upload_expired(), false),
            (Refusal::IdempotencyKeyReused, false),
            (Refusal::NotFound, false),
            (Refusal::invalid("file_size", "too small"), false),
            (Refusal::token_used_up(), false),
        ] {
            assert_eq!(refusal.is_retriable(), retriable, "{refusal:?}");
        }
    }
}
