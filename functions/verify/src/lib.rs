//! The S3 `ObjectCreated` trigger: checks what landed in storage against what was declared and
//! settles the file as `verified` or `rejected`. Events for other keys, old jobs and settled
//! files (S3 delivers at least once, sometimes out of order) change nothing; an object of a file
//! that no longer exists is removed.

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use shared::app::Services;
use shared::app::inspect::{self, Finding};
use shared::domain::ids::{decode_event_key, parse_object_key};
use shared::domain::{
    ApiError, FileId, FileRecord, FileStatus, JobId, RejectionReason, Verdict, timestamp,
};
use shared::dynamo::Update;
use tracing::Instrument;

/// What became of one created object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Verified,
    Rejected(RejectionReason),
    /// Nothing to do, and why.
    Ignored(&'static str),
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

    let inspection = inspect::inspect(&services.objects, key, &file.content).await?;
    tracing::info!(finding = ?inspection.finding, bytes_read = inspection.bytes_read, "inspected");
    let verdict = match inspection.finding {
        Finding::Missing => return Ok(Outcome::Ignored("object no longer exists")),
        Finding::Sound => Verdict::Verified {
            s3_key: key.to_owned(),
        },
        Finding::Flawed(reason) => Verdict::Rejected(reason),
    };
    settle(services, file, job_id, verdict).await
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
        Outcome::Ignored(_) => return,
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
