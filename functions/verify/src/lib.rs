//! The S3 `ObjectCreated` trigger: checks what landed in storage against what was declared and
//! settles the file as `verified` or `rejected`. Events for other keys, old jobs and settled
//! files (S3 delivers at least once, sometimes out of order) change nothing.

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use shared::app::Services;
use shared::app::inspect::{self, Finding};
use shared::domain::ApiError;
use shared::domain::ids::{decode_event_key, parse_object_key};
use shared::domain::timestamp;
use shared::domain::{FileId, FileRecord, FileStatus, JobId, RejectionReason};
use shared::dynamo::Conditional;
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
        return Ok(Outcome::Ignored("unknown file"));
    };
    if file.job.as_ref().map(|job| job.job_id) != Some(job_id) {
        return Ok(Outcome::Ignored("not the file's current upload"));
    }
    match file.status {
        FileStatus::PendingUpload | FileStatus::Uploaded => {}
        FileStatus::Rejected => {
            // A retry after the verdict: finish removing the rejected object.
            services.objects.delete(key).await?;
            return Ok(Outcome::Ignored("already settled"));
        }
        FileStatus::Verified => return Ok(Outcome::Ignored("already settled")),
    }

    let inspection = inspect::inspect(&services.objects, key, &file.content).await?;
    tracing::info!(finding = ?inspection.finding, bytes_read = inspection.bytes_read, "inspected");
    match inspection.finding {
        Finding::Missing => Ok(Outcome::Ignored("object no longer exists")),
        Finding::Sound => settle_verified(services, &file, job_id, key).await,
        Finding::Flawed(reason) => settle_rejected(services, &file, job_id, key, reason).await,
    }
}

async fn settle_verified(
    services: &Services,
    file: &FileRecord,
    job_id: JobId,
    key: &str,
) -> Result<Outcome, ApiError> {
    match services
        .files
        .settle_verified(file, job_id, key, timestamp::now())
        .await?
    {
        Conditional::Applied(_) => {
            // The new content replaces the old for good: its object is no longer served.
            if let Some(previous) = file
                .verified
                .as_ref()
                .filter(|previous| previous.s3_key != key)
            {
                services.objects.delete(&previous.s3_key).await?;
            }
            emit_verdict_metric(&Outcome::Verified);
            Ok(Outcome::Verified)
        }
        Conditional::Refused { .. } => Ok(Outcome::Ignored("settled or replaced meanwhile")),
    }
}

async fn settle_rejected(
    services: &Services,
    file: &FileRecord,
    job_id: JobId,
    key: &str,
    reason: RejectionReason,
) -> Result<Outcome, ApiError> {
    match services
        .files
        .settle_rejected(file.file_id, job_id, reason, timestamp::now())
        .await?
    {
        Conditional::Applied(_) => {
            services.objects.delete(key).await?;
            let outcome = Outcome::Rejected(reason);
            emit_verdict_metric(&outcome);
            Ok(outcome)
        }
        Conditional::Refused { .. } => Ok(Outcome::Ignored("settled or replaced meanwhile")),
    }
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
