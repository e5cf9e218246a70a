//! The S3 `ObjectCreated` trigger: checks what landed in storage against what was declared and
//! settles the file as `verified` or `rejected` (`shared::app::verify` says how).
//!
//! S3's events reach the function through a queue ([`handle_messages`]), with the steps the
//! service hands to verify itself ([`Step`]): the next step of a large object's check, and the
//! assembly of an upload of many parts. A message that fails comes back after a wait that
//! doubles with each receive ([`RETRY_BASE`]), so that the queue's few receives span hours of a
//! dependency's outage, not minutes; and the content it checks has left the lifecycle rule for
//! pending objects meanwhile, so a verdict that comes late still finds its bytes.

use std::time::Duration;

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::app::Services;
use shared::app::verify::check_upload;
use shared::app::verify_queue::{Step, VerifyMessage, VerifyQueue};
use shared::domain::ids::ObjectKey;
use shared::error::Error;

pub use shared::app::verify::{Outcome, assemble, continue_check};

/// The wait before a failed message's second receive; it doubles with each further one, up to
/// three hours (the same backoff as webhook deliveries). With the template's 10 receives, the
/// retries span about 7 hours before the message moves to the failure queue.
pub const RETRY_BASE: Duration = Duration::from_secs(60);

/// Handles the batch's messages one after another (the template hands them one at a time, so
/// that an invocation's work stays within one budget); names those to be retried, each after
/// its backoff: those that failed (S3 or DynamoDB did, or a file kept changing), and those
/// whose work must wait ([`Outcome::Later`]). `queue` is the one the messages come from.
pub async fn handle_messages(
    services: &Services,
    queue: &VerifyQueue,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in &event.records {
        // Boxed: a message's work is deep, and the runtime's future need not carry its layout.
        let handed_back = match Box::pin(process(services, queue, message)).await {
            Ok(outcomes) => outcomes
                .iter()
                .any(|outcome| matches!(outcome, Outcome::Later(_))),
            Err(err) => {
                tracing::error!(message_id = ?message.message_id, error = ?err, "verification failed");
                true
            }
        };
        if handed_back {
            let failure = queue.retry_with_backoff(message, RETRY_BASE).await;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// One message; an unfinished check is handed on, through `queue`, only once its checkpoint is
/// written.
pub async fn process(
    services: &Services,
    queue: &VerifyQueue,
    message: &SqsMessage,
) -> Result<Vec<Outcome>, Error> {
    let body = message.body.as_deref().unwrap_or_default();
    let outcomes = match VerifyMessage::parse(body) {
        Some(VerifyMessage::Step(Step::Continue(continuation))) => {
            vec![continue_check(services, &continuation).await?]
        }
        Some(VerifyMessage::Step(Step::Assemble(assembly))) => {
            vec![assemble(services, &assembly).await?]
        }
        // S3's test event, sent when the notification is set up, has no records.
        Some(VerifyMessage::S3(event)) => handle(services, event).await?,
        None => {
            tracing::warn!("neither an S3 event nor a step: dropped");
            vec![Outcome::Ignored("not a verify message")]
        }
    };
    for outcome in &outcomes {
        if let Outcome::Unfinished(continuation) = outcome {
            queue.send(&Step::Continue(*continuation)).await?;
        }
    }
    Ok(outcomes)
}

/// Handles every record of S3's event. An `Err` (S3 or DynamoDB failed) has the queue hand the
/// message back, which is safe: settled files are left alone. A verdict, either way, is never
/// an error.
pub async fn handle(services: &Services, event: S3Event) -> Result<Vec<Outcome>, Error> {
    let mut outcomes = Vec::with_capacity(event.records.len());
    for record in &event.records {
        let outcome = verify_record(services, record).await.inspect_err(|err| {
            tracing::error!(error = ?err, "verification failed; the event will be retried");
        })?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

async fn verify_record(services: &Services, record: &S3EventRecord) -> Result<Outcome, Error> {
    if !record
        .event_name
        .as_deref()
        .unwrap_or_default()
        .starts_with("ObjectCreated:")
    {
        return Ok(Outcome::Ignored("not an ObjectCreated event"));
    }
    if record.s3.bucket.name.as_deref() != Some(services.storage.objects.bucket()) {
        return Ok(Outcome::Ignored("another bucket"));
    }
    let Some(key) = ObjectKey::from_event(record.s3.object.key.as_deref().unwrap_or_default())
    else {
        return Ok(Outcome::Ignored("not an upload key"));
    };
    check_upload(services, key).await
}
