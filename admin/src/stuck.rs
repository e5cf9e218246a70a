//! Work nobody is doing: files that wait for a verdict long after their bytes were sent, and
//! multipart uploads left open; and handing a file's check to verify again.

use std::time::Duration;

use shared::app::Services;
use shared::app::verify_queue::{Assembly, Continuation, Step, VerifyQueue};
use shared::domain::ids::{ObjectKey, UPLOAD_PREFIX};
use shared::domain::{FileId, FileRecord, FileStatus, timestamp};
use time::OffsetDateTime;

/// A file `uploaded` (its upload completed) whose verdict has not come.
#[derive(Debug, Clone)]
pub struct StuckFile {
    pub record: FileRecord,
    /// What [`reverify`] would hand to verify.
    pub step: Step,
}

/// A multipart upload open in the bucket since `initiated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: OffsetDateTime,
    /// The file it belongs to, when its key is one of the service's.
    pub file_id: Option<FileId>,
}

/// Files whose upload completed more than `older_than` ago without a verdict, oldest first:
/// their trigger was lost, or their check is in the failure queue.
pub async fn stuck_files(
    services: &Services,
    older_than: Duration,
) -> Result<Vec<StuckFile>, String> {
    let before = timestamp::now() - older_than;
    let records = services
        .table
        .files
        .scan_by_status(FileStatus::Uploaded, before)
        .await
        .map_err(|err| err.to_string())?;
    let mut stuck = Vec::with_capacity(records.len());
    for record in records {
        let step = next_step(services, &record).await?;
        stuck.push(StuckFile { record, step });
    }
    Ok(stuck)
}

/// Multipart uploads of the bucket opened more than `older_than` ago, oldest first. The
/// bucket's lifecycle rule aborts them after `IncompleteUploadDays`.
pub async fn open_uploads(
    services: &Services,
    older_than: Duration,
) -> Result<Vec<OpenUpload>, String> {
    let before = timestamp::now() - older_than;
    let uploads = services
        .storage
        .objects
        .open_uploads(UPLOAD_PREFIX, before)
        .await
        .map_err(|err| err.to_string())?;
    Ok(uploads
        .into_iter()
        .map(|(key, upload_id, initiated)| OpenUpload {
            file_id: ObjectKey::parse(&key).map(|key| key.file_id),
            key,
            upload_id,
            initiated,
        })
        .collect())
}

/// Hands the check of `file_id`'s completed upload to verify again, through its queue, as the
/// step [`stuck_files`] names: the assembly of its parts when storage still has them open (the
/// assembled object's `ObjectCreated` event then starts the check), else the check itself from
/// the record's checkpoint. Verify takes it as any repeat: a file settled meanwhile is left as
/// it is, and one whose bytes are gone is rejected `content_missing`.
pub async fn reverify(
    services: &Services,
    queue: &VerifyQueue,
    file_id: FileId,
) -> Result<Step, String> {
    let record = services
        .table
        .files
        .get(file_id)
        .await
        .map_err(|err| err.to_string())?
        .ok_or_else(|| format!("no file {file_id}"))?;
    if record.status != FileStatus::Uploaded {
        return Err(format!(
            "file {file_id} is {}: only an uploaded file awaits a check",
            record.status.as_str()
        ));
    }
    let step = next_step(services, &record).await?;
    queue.send(&step).await.map_err(|err| err.to_string())?;
    Ok(step)
}

/// What verify must do next for an `uploaded` file.
async fn next_step(services: &Services, record: &FileRecord) -> Result<Step, String> {
    let job = record
        .job
        .as_ref()
        .ok_or_else(|| format!("file {} is uploaded without a job", record.file_id))?;
    let (file_id, job_id) = (record.file_id, job.job_id);
    if let Some(upload_id) = &job.upload_id {
        let open = services
            .storage
            .objects
            .multipart_upload_exists(&job.s3_key, upload_id)
            .await
            .map_err(|err| err.to_string())?;
        if open {
            return Ok(Step::Assemble(Assembly { file_id, job_id }));
        }
    }
    let bytes_checked = job
        .checkpoint
        .as_ref()
        .map_or(0, |checkpoint| checkpoint.bytes_checked);
    Ok(Step::Continue(Continuation {
        file_id,
        job_id,
        bytes_checked,
    }))
}
