//! The queue `verify` reads: S3's `ObjectCreated` events, and the steps the service hands to
//! verify itself, a continuation of a large check or the assembly of a large multipart upload.

use std::time::Duration;

use aws_lambda_events::s3::S3Event;
use aws_lambda_events::sqs::{BatchItemFailure, SqsMessage};
use serde::{Deserialize, Serialize};

use crate::domain::{FileId, JobId};
use crate::error::Failure;
use crate::sqs::Queue;

/// Go on checking a file's current upload from the checkpoint on its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continuation {
    pub file_id: FileId,
    pub job_id: JobId,
    /// Where the step that sent it stopped (for the logs: the record's checkpoint is the truth).
    pub bytes_checked: u64,
}

/// Assemble the multipart upload of a file's current job, whose parts `complete` checked; the
/// assembled object's `ObjectCreated` event then starts its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assembly {
    pub file_id: FileId,
    pub job_id: JobId,
}

/// A step the service hands to verify, as `{"continue": …}` or `{"assemble": …}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Continue(Continuation),
    Assemble(Assembly),
}

/// A message of the queue.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum VerifyMessage {
    Step(Step),
    S3(S3Event),
}

impl VerifyMessage {
    /// The message in `body`; `None` for anything else (S3's test event has no records, and
    /// reads as an event of none).
    pub fn parse(body: &str) -> Option<Self> {
        serde_json::from_str(body).ok()
    }
}

/// The queue verify reads, to which the service sends its steps.
#[derive(Debug, Clone)]
pub struct VerifyQueue(Queue);

impl VerifyQueue {
    pub fn new(sqs: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self(Queue::new(sqs, url))
    }

    pub async fn send(&self, step: &Step) -> Result<(), Failure> {
        let body = serde_json::to_string(step)
            .map_err(|err| Failure::Internal(format!("verify step: {err}")))?;
        self.0.send(body).await
    }

    /// Has the queue hand a failed message back later ([`Queue::retry_with_backoff`]).
    pub async fn retry_with_backoff(
        &self,
        message: &SqsMessage,
        base: Duration,
    ) -> BatchItemFailure {
        self.0.retry_with_backoff(message, base).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_s3_events_are_told_apart() {
        let (file_id, job_id) = (FileId::random(), JobId::random());
        let assemble = Step::Assemble(Assembly { file_id, job_id });
        let text = serde_json::to_string(&assemble).unwrap();
        assert!(text.starts_with(r#"{"assemble":{"#), "{text}");
        assert!(
            matches!(VerifyMessage::parse(&text), Some(VerifyMessage::Step(step)) if step == assemble)
        );
        let next = Step::Continue(Continuation {
            file_id,
            job_id,
            bytes_checked: 64,
        });
        let text = serde_json::to_string(&next).unwrap();
        assert!(
            matches!(VerifyMessage::parse(&text), Some(VerifyMessage::Step(step)) if step == next)
        );
        let s3 = include_str!("../../../events/s3-put.json");
        assert!(
            matches!(VerifyMessage::parse(s3), Some(VerifyMessage::S3(event)) if event.records.len() == 1)
        );
        assert!(VerifyMessage::parse("not json").is_none());
    }
}
