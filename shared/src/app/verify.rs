//! Verify's use cases: checking what landed in storage against what was declared and settling
//! the file as `verified` or `rejected` (`content_missing` for a completed upload whose object
//! is gone), assembling a multipart upload complete handed over, and removing what storage no
//! file holds. The verify function hands them S3's events and its queue's steps.
//!
//! Events for other keys, old jobs and settled files (S3 delivers at least once, sometimes out
//! of order) change no file; an object that no file serves or will serve (of a file that no
//! longer exists, or of a job replaced or aborted) is removed.
//!
//! An object too large for one invocation's budget is checked in steps: each step checkpoints
//! the hash states on the file's record (one conditional write) and ends
//! [`Outcome::Unfinished`] with a [`Continuation`]; the next step goes on from the record's
//! checkpoint, whichever message started it. A step that dies is retried from the last
//! checkpoint; a duplicate continuation loses the conditional write and changes nothing. An
//! upload of many parts is assembled here ([`assemble`]), where S3 may take minutes over it.

use tracing::Instrument;

use crate::app::inspect::{self, Budget, Finding};
use crate::app::upload::{self, Assembled};
use crate::app::verify_queue::{Assembly, Continuation};
use crate::app::{Services, release};
use crate::domain::ids::{ObjectKey, file_prefix};
use crate::domain::storage::{self, Stored};
use crate::domain::values::Sha256;
use crate::domain::{
    Checkpoint, FileId, FileRecord, FileStatus, JobId, RejectionReason, TransitionRefusal, Verdict,
    timestamp,
};
use crate::dynamo::Update;
use crate::error::Error;
use crate::s3::QUEUED_ASSEMBLY_TIMEOUT;
/// What became of one created object, or of one step handed to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Verified,
    Rejected(RejectionReason),
    /// Checked as far as the budget allowed and checkpointed; the continuation goes on.
    Unfinished(Continuation),
    /// The parts were assembled: the object's `ObjectCreated` event starts its check.
    Assembled,
    /// Not now, and why: the message is handed back, to come again after its backoff.
    Later(&'static str),
    /// Nothing to do, and why.
    Ignored(&'static str),
}

/// Assembles the parts `complete` checked, if the job is still the file's current one and
/// storage still has its upload (a second assembly finds it gone).
pub async fn assemble(services: &Services, assembly: &Assembly) -> Result<Outcome, Error> {
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
            Assembled::Elsewhere => Ok(Outcome::Later(
                "another invocation is assembling this upload",
            )),
        }
    }
    .instrument(span)
    .await
}

/// The next step of checking the upload a continuation names.
pub async fn continue_check(
    services: &Services,
    continuation: &Continuation,
) -> Result<Outcome, Error> {
    let Continuation {
        file_id, job_id, ..
    } = *continuation;
    check_upload(services, ObjectKey::new(file_id, job_id)).await
}

/// Checks the object at `key` of upload job `job_id` of `file_id`, if it is the file's current
/// job.
pub async fn check_upload(services: &Services, key: ObjectKey) -> Result<Outcome, Error> {
    let ObjectKey { file_id, job_id } = key;
    let span = tracing::info_span!("verify", file_id = %file_id, job_id = %job_id);
    check(services, file_id, job_id, &key.to_string())
        .instrument(span)
        .await
}

async fn check(
    services: &Services,
    file_id: FileId,
    job_id: JobId,
    key: &str,
) -> Result<Outcome, Error> {
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
) -> Result<Outcome, Error> {
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
            let key = ObjectKey::new(file_id, job_id).to_string();
            release_unless_held(services, Some(&latest), &key).await?;
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
) -> Result<Outcome, Error> {
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
        Update::Refused(refusal @ TransitionRefusal::DeclarationChanged, _) => {
            return Err(refusal.into());
        }
        Update::Refused(_, latest) | Update::Unchanged(latest) => {
            let key = ObjectKey::new(latest.file_id, job_id).to_string();
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
) -> Result<(), Error> {
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
async fn remove_superseded(services: &Services, file: &FileRecord) -> Result<(), Error> {
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
        Outcome::Unfinished(_) | Outcome::Assembled | Outcome::Later(_) | Outcome::Ignored(_) => {
            return;
        }
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
