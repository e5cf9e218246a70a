//! `POST /v1/projects/{project_id}/files/{file_id}/complete`: the client says its bytes are in
//! storage; the service checks that they are (assembling a multipart upload from its parts) and
//! marks the file `uploaded`. Idempotent.

use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value};
use shared::app::Services;
use shared::app::upload;
use shared::domain::ApiError;
use shared::domain::{FileRecord, FileStatus, JobId, UploadJob};
use shared::domain::{timestamp, validate};
use shared::dynamo::Conditional;
use shared::http::resource::FileResource;
use shared::http::{self, Reply};

pub async fn handle(services: &Services, request: Request) -> Response<Body> {
    http::serve(request, |request| complete_upload(services, request)).await
}

async fn complete_upload(services: &Services, request: Request) -> Result<Reply, ApiError> {
    let project_id = http::authorized_project(&services.keys, &request).await?;
    let file_id = http::file_id(&request)?;
    let body = http::json_object(&request)?;
    let expected_job = requested_job(body.as_ref())?;

    let record = services.files.get_in_project(&project_id, file_id).await?;
    let job = current_job(&record, expected_job)?;
    if record.status != FileStatus::PendingUpload {
        // Completed before, or already settled by the verify trigger: the file as it is.
        return render(services, &record).await;
    }
    if let Some(upload_id) = &job.upload_id {
        let claimed = validate::claimed_parts(body.as_ref(), job.part_count)?;
        assemble(services, &record, job, upload_id, claimed.as_deref()).await?;
    }
    check_stored_object(services, &record, job).await?;

    match services
        .files
        .mark_uploaded(file_id, job.job_id, timestamp::now())
        .await?
    {
        Conditional::Applied(updated) => render(services, &updated).await,
        // A racing complete or verify got there first: answer with the state it left.
        Conditional::Refused {
            current: Some(current),
        } if current.job.as_ref().map(|j| j.job_id) == Some(job.job_id) => {
            render(services, &current).await
        }
        Conditional::Refused { current } => {
            // Replaced while we assembled it: what we stored is nobody's, unless it was verified.
            let still_served = current
                .as_ref()
                .and_then(|file| file.verified.as_ref())
                .is_some_and(|verified| verified.job_id == job.job_id);
            if !still_served {
                upload::discard_storage(services, job).await;
            }
            Err(ApiError::conflict(
                "job_superseded",
                "a newer upload or an abort replaced this one while it was being completed",
            ))
        }
    }
}

/// Checks every part and asks storage to assemble them. An upload that no longer exists was
/// assembled by a racing or interrupted complete, or aborted: the object check that follows
/// tells which.
async fn assemble(
    services: &Services,
    record: &FileRecord,
    job: &UploadJob,
    upload_id: &str,
    claimed: Option<&[shared::domain::parts::ClaimedPart]>,
) -> Result<(), ApiError> {
    let Some(stored) = services.objects.list_parts(&job.s3_key, upload_id).await? else {
        return Ok(());
    };
    let parts =
        shared::domain::parts::parts_to_assemble(job, record.content.file_size, &stored, claimed)?;
    services
        .objects
        .complete_multipart_upload(&job.s3_key, upload_id, &parts)
        .await?;
    Ok(())
}

/// The job's object must exist with the declared size.
async fn check_stored_object(
    services: &Services,
    record: &FileRecord,
    job: &UploadJob,
) -> Result<(), ApiError> {
    let Some(head) = services.objects.head(&job.s3_key).await? else {
        return Err(ApiError::conflict(
            "upload_incomplete",
            "no object has been uploaded for this job",
        ));
    };
    if head.size != record.content.file_size {
        return Err(ApiError::conflict(
            "upload_incomplete",
            format!(
                "the stored object has {} bytes, {} were declared",
                head.size, record.content.file_size
            ),
        ));
    }
    Ok(())
}

/// The optional `job_id` of the body: completing a job that is no longer current is refused.
fn requested_job(body: Option<&Map<String, Value>>) -> Result<Option<JobId>, ApiError> {
    match body.and_then(|body| body.get("job_id")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid("job_id", "must be a job id from the upload plan")),
        Some(_) => Err(ApiError::invalid("job_id", "must be a string")),
    }
}

fn current_job(record: &FileRecord, expected: Option<JobId>) -> Result<&UploadJob, ApiError> {
    let job = record.job.as_ref().ok_or_else(|| {
        ApiError::conflict(
            "no_upload_in_progress",
            "this file has no upload to complete",
        )
    })?;
    match expected {
        Some(expected) if expected != job.job_id => Err(ApiError::conflict(
            "job_superseded",
            "job_id is not the file's current upload; a newer upload replaced it",
        )),
        _ => Ok(job),
    }
}

async fn render(services: &Services, record: &FileRecord) -> Result<Reply, ApiError> {
    Ok(Reply::ok(
        FileResource::render(services, record).await?.to_json(),
    ))
}
