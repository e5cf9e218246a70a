//! The S3 `ObjectCreated` trigger: checks what landed in storage against what was declared and
//! settles the file as `verified` or `rejected` (`content_missing` for a completed upload whose
//! object is gone). Events for other keys, old jobs and settled files (S3 delivers at least
//! once, sometimes out of order) change no file; an object that no file serves or will serve (of
//! a file that no longer exists, or of a job replaced or aborted) is removed.
//!
//! S3's events reach the function through a queue ([`handle_messages`]), with the steps the
//! service hands to verify itself ([`Step`]). An object too large for one invocation's budget is
//! checked in steps: each step checkpoints the hash states on the file's record (one conditional
//! write) and queues a [`Continuation`]; the next step goes on from the record's checkpoint,
//! whichever message started it. A step that dies is retried by the queue from the last
//! checkpoint; a duplicate continuation loses the conditional write and changes nothing. An
//! upload of many parts is assembled here ([`Assembly`]), where S3 may take minutes over it.
//!
//! A message that fails comes back after a wait that doubles with each receive
//! ([`RETRY_BASE`]), so that the queue's few receives span hours of a dependency's outage, not
//! minutes; and the content it checks has left the lifecycle rule for pending objects
//! meanwhile, so a verdict that comes late still finds its bytes.

use std::time::Duration;

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use shared::app::inspect::{self, Budget, Finding};
use shared::app::upload::{self, Assembled};
use shared::app::verify_queue::{Assembly, Continuation, Step, VerifyMessage, VerifyQueue};
use shared::app::{Services, release};
use shared::domain::ids::{decode_event_key, file_prefix, object_key, parse_object_key};
use shared::domain::storage::{self, Stored};
use shared::domain::values::Sha256;
use shared::domain::webhook::retry_delay;
use shared::domain::{
    ApiError, Checkpoint, FileId, FileRecord, FileStatus, JobId, Refusal, RejectionReason, Verdict,
    timestamp,
};
use shared::dynamo::Update;
use shared::s3::QUEUED_ASSEMBLY_TIMEOUT;
use tracing::Instrument;

/// What became of one created object, or of one step handed to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Verified,
    Rejected(RejectionReason),
    /// Checked as far as the budget allowed and checkpointed; the continuation goes on.
    Unfinished(Continuation),
    /// The parts were assembled: the object's `ObjectCreated` event starts its check.
    Assembled,
    /// Nothing to do, and why.
    Ignored(&'static str),
}

/// The wait before a failed message's second receive; it doubles with each further one, up to
/// three hours (the same backoff as webhook deliveries). With the template's 10 receives, the
/// retries span about 7 hours before the message moves to the failure queue.
pub const RETRY_BASE: Duration = Duration::from_secs(60);

/// Handles the batch's messages one after another (the template hands them one at a time, so
/// that an invocation's work stays within one budget); names those to be retried, each after
/// its backoff. `queue` is the one the messages come from.
pub async fn handle_messages(
    services: &Services,
    queue: &VerifyQueue,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in &event.records {
        if let Err(err) = process(services, queue, message).await {
            let attempt = message
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|count| count.parse().ok())
                .unwrap_or(1);
            let delay = retry_delay(RETRY_BASE, attempt);
            tracing::error!(message_id = ?message.message_id, attempt, retry_in_secs = delay.as_secs(), error = ?err, "verification failed; the message will be retried");
            retry_later(queue, message, delay).await;
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Asks the queue to hand `message` back after `delay`; if that fails, the queue's own
/// visibility timeout applies.
async fn retry_later(queue: &VerifyQueue, message: &SqsMessage, delay: Duration) {
    let Some(receipt) = &message.receipt_handle else {
        return;
    };
    if let Err(err) = queue.retry_later(receipt, delay).await {
        tracing::warn!(error = ?err, "could not delay the retry");
    }
}

/// One message; an unfinished check is handed on, through `queue`, only once its checkpoint is
/// written.
pub async fn process(
    services: &Services,
    queue: &VerifyQueue,
    message: &SqsMessage,
) -> Result<Vec<Outcome>, ApiError> {
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

/// Assembles the parts `complete` checked, if the job is still the file's current one and
/// storage still has its upload (a second assembly finds it gone).
pub async fn assemble(services: &Services, assembly: &Assembly) -> Result<Outcome, ApiError> {
    let Assembly { file_id, job_id } = *assembly;
    let span = tracing::info_span!("assemble", file_id = %file_id, job_id = %job_id);
    async {
        let Some(file) = services.table.files.get(file_id).await? else {
            return Ok(Outcome::Ignored("unknown file"));
        };
        let Ok(job) = file.current_job(Some(job_id)) else {
            return Ok(Outcome::Ignored("not the file's current upload"));
        };
        let Some(upload_id) = job.upload_id.as_deref().filter(|_| file.awaits_verdict()) else {
            return Ok(Outcome::Ignored("already settled"));
        };
        let size = file.content.file_size;
        let Some(parts) =
            upload::stored_parts_to_assemble(services, job, upload_id, size, None).await?
        else {
            return Ok(Outcome::Ignored("assembled or aborted already"));
        };
        let assembled = upload::assemble(
            services,
            file_id,
            job,
            upload_id,
            &parts,
            QUEUED_ASSEMBLY_TIMEOUT,
        )
        .await?;
        tracing::info!(parts = parts.len(), ?assembled, "assembly");
        match assembled {
            Assembled::Now => Ok(Outcome::Assembled),
            Assembled::UploadGone => Ok(Outcome::Ignored("assembled or aborted already")),
            // A duplicate of this message, or a lapsed one's retry: the message comes back
            // until the upload is gone, so that a holder that fails does not lose it.
            Assembled::Elsewhere => Err(ApiError::Unavailable(
                "another invocation is assembling this upload".to_owned(),
            )),
        }
    }
    .instrument(span)
    .await
}

/// Handles every record of S3's event. An `Err` (S3 or DynamoDB failed) has the queue hand the
/// message back, which is safe: settled files are left alone. A verdict, either way, is never
/// an error.
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
    if record.s3.bucket.name.as_deref() != Some(services.storage.objects.bucket()) {
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
    let key = object_key(file_id, job_id);
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
    let Some(file) = services.table.files.get(file_id).await? else {
        // Deleted (or forgotten by the TTL) before its bytes arrived: a late PUT on a URL handed
        // out before. Records are written before any URL is, so no upload precedes its file.
        release_unless_held(services, None, key).await?;
        return Ok(Outcome::Ignored("unknown file"));
    };
    if file.current_job(Some(job_id)).is_err() {
        // Replaced or aborted: no verdict will ever be written for this job.
        release_unless_held(services, Some(&file), key).await?;
        return Ok(Outcome::Ignored("not the file's current upload"));
    }
    if !file.awaits_verdict() {
        // A retry after the verdict: finish removing what it left behind.
        if file.serves(job_id) {
            remove_superseded(services, &file).await?;
        } else {
            release_unless_held(services, Some(&file), key).await?;
        }
        return Ok(Outcome::Ignored("already settled"));
    }

    let resume = file.job.as_ref().and_then(|job| job.checkpoint.clone());
    if resume.is_none() {
        // The content is complete: out of the rule that expires pending objects, which may be
        // due any moment (an object assembled from parts is dated by its upload's start), and
        // would be while a failing check is retried for hours.
        services.storage.objects.mark_checking(key).await?;
    }
    let budget = Budget {
        bytes: services.config.verify_chunk_bytes,
        time: services.config.verify_chunk_time,
        parallel_gets: services.config.verify_parallel_gets,
    };
    let inspection = inspect::inspect(
        &services.storage.objects,
        key,
        &file.content,
        resume.as_ref(),
        budget,
    )
    .await?;
    tracing::info!(finding = ?inspection.finding, bytes_read = inspection.bytes_read, "inspected");
    let verdict = match inspection.finding {
        // The upload was completed (complete saw the object or handed its assembly over, or
        // the direct upload stored it), and this event or continuation comes from the object
        // once there: its bytes are gone for good (expired by the lifecycle rule, or removed by
        // hand). Without a verdict the file would stay `uploaded`, which never expires. Before
        // `complete` the object may be yet to come, and a file never completed expires with its
        // TTL. (A DELETE removes storage before the record: a check caught in between rejects
        // the file just before it is deleted, `file.rejected` then `file.deleted`.)
        Finding::Missing if file.status == FileStatus::Uploaded => {
            Verdict::Rejected(RejectionReason::ContentMissing)
        }
        Finding::Missing => return Ok(Outcome::Ignored("object no longer exists")),
        Finding::Unfinished(checkpoint) => {
            return record_progress(services, file, job_id, resume, checkpoint).await;
        }
        Finding::Sound => {
            // Kept by the lifecycle rule from now on; if the verdict is not written after all,
            // the object is one nobody serves, left for a retry or the file's deletion.
            services.storage.objects.mark_verified(key).await?;
            Verdict::Verified {
                s3_key: key.to_owned(),
            }
        }
        Finding::Flawed(reason) => Verdict::Rejected(reason),
    };
    settle(services, file, job_id, verdict, inspection.stored_sha256).await
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
        .table
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
        Update::Refused(_, latest) => {
            release_unless_held(services, Some(&latest), &object_key(file_id, job_id)).await?;
            Outcome::Ignored("settled or replaced meanwhile")
        }
    })
}

/// Records the verdict on the file, then removes what storage no longer needs: a rejected
/// object, or the verified version that new verified content replaces for good.
async fn settle(
    services: &Services,
    file: FileRecord,
    job_id: JobId,
    verdict: Verdict,
    stored_sha256: Option<Sha256>,
) -> Result<Outcome, ApiError> {
    let (now, pending_ttl) = (timestamp::now(), services.config.pending_ttl);
    let checked = file.content.clone();
    let update = services
        .table
        .files
        .update(file, |file| {
            let verdict = verdict.clone();
            file.settle_checked(job_id, verdict, &checked, stored_sha256, now, pending_ttl)
                .map(Some)
        })
        .await?;
    let (before, after) = match update {
        Update::Applied { before, after } => (before, after),
        // Digests given at complete meanwhile: the message comes back and checks against them.
        Update::Refused(refusal @ Refusal::DeclarationChanged, _) => return Err(refusal.into()),
        Update::Refused(_, latest) | Update::Unchanged(latest) => {
            let key = object_key(latest.file_id, job_id);
            release_unless_held(services, Some(&latest), &key).await?;
            return Ok(Outcome::Ignored("settled or replaced meanwhile"));
        }
    };
    // A rejected job's object, or the verified version that new verified content replaces.
    let freed = storage::freed(&before, Some(&after));
    release::required(&services.storage.objects, &freed).await?;
    let outcome = match verdict {
        Verdict::Verified { .. } => Outcome::Verified,
        Verdict::Rejected(reason) => Outcome::Rejected(reason),
    };
    emit_verdict_metric(&outcome);
    Ok(outcome)
}

/// Deletes the object at `key` (of the event or step at hand) unless `file` (as it now is; `None`:
/// there is none) holds it: its job was replaced, aborted or rejected, or another invocation
/// settled it, so no verdict of this one will ever be written. It may be tagged `checking` or
/// `verified` by now, which no lifecycle rule expires, so it would outlive everything. Deleted,
/// not tagged back `pending`: nothing will ever serve it, and the pending rule counts from the
/// object's date, which may be long past anyway.
async fn release_unless_held(
    services: &Services,
    file: Option<&FileRecord>,
    key: &str,
) -> Result<(), ApiError> {
    let object = Stored::Object {
        s3_key: key.to_owned(),
    };
    let freed = storage::not_held([object], file);
    if !freed.is_empty() {
        tracing::info!(key, "removing an object no file holds");
    }
    release::required(&services.storage.objects, &freed).await
}

/// Removes the file's objects written before the version it serves (its verified content from
/// before, objects of older jobs), which a verdict's own clean-up may have failed to: the served
/// object and anything newer (the upload of a later job) stay.
async fn remove_superseded(services: &Services, file: &FileRecord) -> Result<(), ApiError> {
    let Some(served) = &file.verified else {
        return Ok(());
    };
    let served_since = served.verified_at.unix_timestamp();
    for (key, written) in services
        .storage
        .objects
        .list(&file_prefix(file.file_id))
        .await?
    {
        let older = written.is_some_and(|written| written.secs() < served_since);
        if key != served.s3_key && older {
            tracing::info!(key, "removing content the served version superseded");
            services.storage.objects.delete(&key).await?;
        }
    }
    Ok(())
}

/// One CloudWatch embedded-metric-format line per verdict: `Verdicts` by verdict and reason.
fn emit_verdict_metric(outcome: &Outcome) {
    let (verdict, reason) = match outcome {
        Outcome::Verified => ("verified", "none"),
        Outcome::Rejected(reason) => ("rejected", reason.as_str()),
        Outcome::Unfinished(_) | Outcome::Assembled | Outcome::Ignored(_) => return,
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
