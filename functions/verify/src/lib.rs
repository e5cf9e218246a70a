//! The S3 `ObjectCreated` trigger: checks what landed in storage against what was declared and
//! settles the file as `verified` or `rejected`. Events for other keys, old jobs and settled
//! files (S3 delivers at least once, sometimes out of order) change nothing; an object of a file
//! that no longer exists is removed.
//!
//! S3's events reach the function through a queue ([`VerifyQueue`]). An object too large for
//! one invocation's budget is checked in steps: each step checkpoints the hash states on the
//! file's record (one conditional write) and queues a [`Continuation`]; the next step goes on
//! from the record's checkpoint, whichever message started it. A step that dies is retried by
//! the queue from the last checkpoint; a duplicate continuation loses the conditional write and
//! changes nothing.

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde::{Deserialize, Serialize};
use shared::app::Services;
use shared::app::inspect::{self, Budget, Finding};
use shared::aws;
use shared::domain::ids::{decode_event_key, parse_object_key};
use shared::domain::{
    ApiError, Checkpoint, FileId, FileRecord, FileStatus, JobId, RejectionReason, Verdict,
    timestamp,
};
use shared::dynamo::Update;
use tracing::Instrument;

/// What became of one created object, or of one step of its check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Verified,
    Rejected(RejectionReason),
    /// Checked as far as the budget allowed and checkpointed; the continuation goes on.
    Unfinished(Continuation),
    /// Nothing to do, and why.
    Ignored(&'static str),
}

/// The message that has the next invocation go on checking a file's current upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continuation {
    pub file_id: FileId,
    pub job_id: JobId,
    /// Where the step that sent it stopped (for the logs: the record's checkpoint is the truth).
    pub bytes_checked: u64,
}

/// A message of the verify queue: S3's notification, or a continuation.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Message {
    Continuation(Continuation),
    S3(S3Event),
}

/// The queue that feeds the function (Lambda's SQS mapping) and takes its continuations.
#[derive(Debug, Clone)]
pub struct VerifyQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl VerifyQueue {
    pub fn new(sqs: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            sqs,
            url: url.into(),
        }
    }

    /// Handles the batch's messages one after another (the template hands them one at a time,
    /// so that an invocation's work stays within one budget); names those to be retried.
    pub async fn handle(&self, services: &Services, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for message in &event.records {
            if let Err(err) = self.process(services, message).await {
                tracing::error!(message_id = ?message.message_id, error = ?err, "verification failed; the message will be retried");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// One message; an unfinished check is handed on only once its checkpoint is written.
    pub async fn process(
        &self,
        services: &Services,
        message: &SqsMessage,
    ) -> Result<Vec<Outcome>, ApiError> {
        let body = message.body.as_deref().unwrap_or_default();
        let outcomes = match serde_json::from_str::<Message>(body) {
            Ok(Message::Continuation(continuation)) => {
                vec![continue_check(services, &continuation).await?]
            }
            // S3's test event, sent when the notification is set up, has no records.
            Ok(Message::S3(event)) => handle(services, event).await?,
            Err(err) => {
                tracing::warn!(error = %err, "neither an S3 event nor a continuation: dropped");
                vec![Outcome::Ignored("not a verify message")]
            }
        };
        for outcome in &outcomes {
            if let Outcome::Unfinished(continuation) = outcome {
                self.send(continuation).await?;
            }
        }
        Ok(outcomes)
    }

    async fn send(&self, continuation: &Continuation) -> Result<(), ApiError> {
        let body = serde_json::to_string(continuation)
            .map_err(|err| ApiError::Internal(format!("continuation: {err}")))?;
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|err| aws::failure("SQS SendMessage", err))?;
        Ok(())
    }
}

/// Handles every record. An `Err` (S3 or DynamoDB failed) makes Lambda retry the event, which
/// is safe: settled files are left alone. A verdict, either way, is never an error.
pub async fn handle(services: &Services, event: S3Event) -> Result<Vec<Outcome>, ApiError> {
    let mut outcomes = Vec::with_capacity(event.records.len());
    for record in &event.records {
        let outcome = verify_record(services, record).await.inspect_err(|err| {
            tracing::error!(error = ?err, "verification failed; the event will be retried");
        })?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

async fn verify_record(services: &Services, record: &S3EventRecord) -> Result<Outcome, ApiError> {
    if !record
        .event_name
        .as_deref()
        .unwrap_or_default()
        .starts_with("ObjectCreated:")
    {
        return Ok(Outcome::Ignored("not an ObjectCreated event"));
    }
    if record.s3.bucket.name.as_deref() != Some(services.objects.bucket()) {
        return Ok(Outcome::Ignored("another bucket"));
    }
    let key = decode_event_key(record.s3.object.key.as_deref().unwrap_or_default());
    let Some((file_id, job_id)) = parse_object_key(&key) else {
        return Ok(Outcome::Ignored("not an upload key"));
    };
    let span = tracing::info_span!("verify", file_id = %file_id, job_id = %job_id);
    verify_upload(services, file_id, job_id, &key)
        .instrument(span)
        .await
}

/// The next step of checking the upload a continuation names.
pub async fn continue_check(
    services: &Services,
    continuation: &Continuation,
) -> Result<Outcome, ApiError> {
    let Continuation {
        file_id, job_id, ..
    } = *continuation;
    let span = tracing::info_span!("verify", file_id = %file_id, job_id = %job_id);
    let key = shared::domain::ids::object_key(file_id, job_id);
    verify_upload(services, file_id, job_id, &key)
        .instrument(span)
        .await
}

/// Checks the object of upload job `job_id` of `file_id`, if it is the file's current job.
async fn verify_upload(
    services: &Services,
    file_id: FileId,
    job_id: JobId,
    key: &str,
) -> Result<Outcome, ApiError> {
    let Some(file) = services.files.get(file_id).await? else {
        // Deleted (or forgotten by the TTL) before its bytes arrived: a late PUT on a URL handed
        // out before. Records are written before any URL is, so no upload precedes its file.
        services.objects.delete(key).await?;
        return Ok(Outcome::Ignored("unknown file"));
    };
    if file.current_job(Some(job_id)).is_err() {
        return Ok(Outcome::Ignored("not the file's current upload"));
    }
    if !file.awaits_verdict() {
        if file.status == FileStatus::Rejected {
            // A retry after the verdict: finish removing the rejected object.
            services.objects.delete(key).await?;
        }
        return Ok(Outcome::Ignored("already settled"));
    }

    let resume = file.job.as_ref().and_then(|job| job.checkpoint.clone());
    let budget = Budget {
        bytes: services.config.verify_chunk_bytes,
        time: services.config.verify_chunk_time,
    };
    let inspection = inspect::inspect(
        &services.objects,
        key,
        &file.content,
        resume.as_ref(),
        budget,
    )
    .await?;
    tracing::info!(finding = ?inspection.finding, bytes_read = inspection.bytes_read, "inspected");
    let verdict = match inspection.finding {
        Finding::Missing => return Ok(Outcome::Ignored("object no longer exists")),
        Finding::Unfinished(checkpoint) => {
            return record_progress(services, file, job_id, resume, checkpoint).await;
        }
        Finding::Sound => Verdict::Verified {
            s3_key: key.to_owned(),
        },
        Finding::Flawed(reason) => Verdict::Rejected(reason),
    };
    settle(services, file, job_id, verdict).await
}

/// Writes the checkpoint of a step, if no other step moved the file's since this one began.
async fn record_progress(
    services: &Services,
    file: FileRecord,
    job_id: JobId,
    from: Option<Checkpoint>,
    to: Checkpoint,
) -> Result<Outcome, ApiError> {
    let (file_id, bytes_checked) = (file.file_id, to.bytes_checked);
    let update = services
        .files
        .update(file, |file| {
            file.record_progress(job_id, from.as_ref(), to.clone())
        })
        .await?;
    Ok(match update {
        Update::Applied { .. } => Outcome::Unfinished(Continuation {
            file_id,
            job_id,
            bytes_checked,
        }),
        Update::Unchanged(_) => Outcome::Ignored("checked on by another invocation"),
        Update::Refused(..) => Outcome::Ignored("settled or replaced meanwhile"),
    })
}

/// Records the verdict on the file, then removes what storage no longer needs: a rejected
/// object, or the verified version that new verified content replaces for good.
async fn settle(
    services: &Services,
    file: FileRecord,
    job_id: JobId,
    verdict: Verdict,
) -> Result<Outcome, ApiError> {
    let now = timestamp::now();
    let update = services
        .files
        .update(file, |file| {
            (file.settle(job_id, verdict.clone(), now, services.config.pending_ttl)).map(Some)
        })
        .await?;
    let Update::Applied { before, .. } = update else {
        return Ok(Outcome::Ignored("settled or replaced meanwhile"));
    };
    let outcome = match verdict {
        Verdict::Verified { s3_key } => {
            if let Some(previous) = before.verified.filter(|previous| previous.s3_key != s3_key) {
                services.objects.delete(&previous.s3_key).await?;
            }
            Outcome::Verified
        }
        Verdict::Rejected(reason) => {
            if let Some(job) = &before.job {
                services.objects.delete(&job.s3_key).await?;
            }
            Outcome::Rejected(reason)
        }
    };
    emit_verdict_metric(&outcome);
    Ok(outcome)
}

/// One CloudWatch embedded-metric-format line per verdict: `Verdicts` by verdict and reason.
fn emit_verdict_metric(outcome: &Outcome) {
    let (verdict, reason) = match outcome {
        Outcome::Verified => ("verified", "none"),
        Outcome::Rejected(reason) => ("rejected", reason.as_str()),
        Outcome::Unfinished(_) | Outcome::Ignored(_) => return,
    };
    let timestamp_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms as i64,
            "CloudWatchMetrics": [{
                "Namespace": "UploadService",
                "Dimensions": [["Verdict"], ["Verdict", "Reason"]],
                "Metrics": [{"Name": "Verdicts", "Unit": "Count"}],
            }],
        },
        "Verdict": verdict,
        "Reason": reason,
        "Verdicts": 1,
    });
    println!("{line}");
}
