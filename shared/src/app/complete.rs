//! Completing an upload (`POST …/complete`): the client says its bytes are stored; the parts of
//! a multipart upload are checked and assembled (or handed to verify, when there are many), and
//! the object must then be there as declared.

use std::time::Duration;

use crate::app::Services;
use crate::app::upload::{Assembled, assemble, stored_parts_to_assemble};
use crate::app::verify_queue::{Assembly, Step, VerifyQueue};
use crate::domain::error::Refusal;
use crate::domain::parts::ReportedPart;
use crate::domain::{FileRecord, UploadJob};
use crate::error::Error;
use crate::s3::INLINE_ASSEMBLY_TIMEOUT;

/// Where a completed job's bytes are once `complete` has brought them together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// In storage as one object, or meant to be: a single PUT, or a multipart upload assembled
    /// now or before (or aborted: the object's check says which).
    Stored,
    /// Another request is assembling the upload: an object not yet in place is that request's
    /// to store.
    AssemblingElsewhere,
    /// Too many parts to assemble within API Gateway's 30 s (`ASSEMBLE_INLINE_MAX_PARTS`):
    /// verify was handed the assembly through its `queue`, and the object comes later.
    HandedToVerify,
}

/// Brings the bytes of `file`'s completed `job` together: a multipart upload's stored parts
/// are checked against the plan (and the client's `reported` parts), then assembled here, or
/// handed to verify through `queue` when there are more than `ASSEMBLE_INLINE_MAX_PARTS`. The
/// hand-over comes before the file says `uploaded`: a retry after a failure hands it over
/// again, and a second assembly finds the upload gone. Unless handed over, the object must
/// then be in storage with the declared size (409 `upload_incomplete`).
pub async fn bring_together(
    services: &Services,
    queue: &VerifyQueue,
    file: &FileRecord,
    job: &UploadJob,
    reported: Option<&[ReportedPart]>,
) -> Result<Completion, Error> {
    let size = file.content.file_size;
    let parts = match &job.upload_id {
        Some(upload_id) => stored_parts_to_assemble(services, job, upload_id, size, reported)
            .await?
            .map(|parts| (upload_id, parts)),
        None => None,
    };
    let completion = match parts {
        None => Completion::Stored,
        Some(_) if job.part_count > services.config.assemble_inline_max_parts => {
            let assembly = Assembly {
                file_id: file.file_id,
                job_id: job.job_id,
            };
            queue.send(&Step::Assemble(assembly)).await?;
            return Ok(Completion::HandedToVerify);
        }
        Some((upload_id, parts)) => {
            let timeout = INLINE_ASSEMBLY_TIMEOUT;
            match assemble(services, file.file_id, job, upload_id, &parts, timeout).await? {
                Assembled::Elsewhere => Completion::AssemblingElsewhere,
                Assembled::Now | Assembled::UploadGone => Completion::Stored,
            }
        }
    };
    check_stored_object(services, file, job, completion).await?;
    Ok(completion)
}

/// How often, and how far apart, the object of a multipart upload is looked at before
/// concluding it is not there: another request may be assembling it (a racing complete holding
/// the claim), and the upload can be gone, or answered, a moment before the object is in place
/// (under a full test run's load, LocalStack took more than the 1 s this once allowed).
const ASSEMBLY_CHECKS: u32 = 20;
const ASSEMBLY_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// The job's object must exist with the declared size. A multipart upload's object may be
/// still on its way, so it is looked at a few times before the verdict; a single PUT once.
/// While another request is assembling it, an object not yet in place is that request's to store.
async fn check_stored_object(
    services: &Services,
    record: &FileRecord,
    job: &UploadJob,
    completion: Completion,
) -> Result<(), Error> {
    let checks = if job.upload_id.is_some() {
        ASSEMBLY_CHECKS
    } else {
        1
    };
    let mut found = None;
    for check in 1..=checks {
        found = services
            .storage
            .objects
            .head(&job.s3_key)
            .await?
            .map(|head| head.size);
        if found == Some(record.content.file_size) {
            return Ok(());
        }
        if check < checks {
            tokio::time::sleep(ASSEMBLY_CHECK_INTERVAL).await;
        }
    }
    if completion == Completion::AssemblingElsewhere {
        return Err(Refusal::concurrent_update(
            "another request is assembling this upload; retry in a moment",
        )
        .into());
    }
    let message = match found {
        None => "no object has been uploaded for this job".to_owned(),
        Some(size) => format!(
            "the stored object has {size} bytes, {} were declared",
            record.content.file_size
        ),
    };
    Err(Refusal::conflict("upload_incomplete", message).into())
}
