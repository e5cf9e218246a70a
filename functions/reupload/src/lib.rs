//! The routes of an upload in progress, for resumable and repeated uploads:
//! - `POST …/files/{file_id}/reupload`: new content for an existing file
//! - `POST …/files/{file_id}/parts`: fresh URLs for parts of the current upload
//! - `GET …/files/{file_id}/parts`: the parts already in storage, to resume
//! - `DELETE …/files/{file_id}/upload`: abort the upload in progress

use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;
use shared::app::Services;
use shared::app::upload::{self, PART_URL_BATCH};
use shared::domain::ApiError;
use shared::domain::{
    ContentDeclaration, FileId, FileRecord, FileStatus, RejectionReason, UploadJob,
};
use shared::domain::{timestamp, validate};
use shared::dynamo::Conditional;
use shared::http::resource::{FileResource, UploadPlan};
use shared::http::{self, Reply};

pub async fn handle(services: &Services, request: Request) -> Response<Body> {
    http::serve(request, |request| async move {
        let project_id = http::authorized_project(&services.keys, &request).await?;
        let file_id = http::file_id(&request)?;
        let action = request
            .raw_http_path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        match (request.method().as_str(), action.as_str()) {
            ("POST", "reupload") => reupload(services, &project_id, file_id, &request).await,
            ("POST", "parts") => sign_parts(services, &project_id, file_id, &request).await,
            ("GET", "parts") => list_parts(services, &project_id, file_id).await,
            ("DELETE", "upload") => abort_upload(services, &project_id, file_id).await,
            _ => Err(ApiError::NotFound),
        }
    })
    .await
}

/// Attempts to record a reupload when a racing complete or verify changes the file meanwhile.
const REUPLOAD_ATTEMPTS: usize = 3;

/// Starts a new upload of new content. The verified version, if any, stays downloadable until
/// the new content is verified; an upload still in progress is discarded.
async fn reupload(
    services: &Services,
    project_id: &str,
    file_id: FileId,
    request: &Request,
) -> Result<Reply, ApiError> {
    let body = http::required_json_object(request)?;
    let declared = validate::upload_request(&body, services.config.max_file_size, false)?;
    let mut current = services.files.get_in_project(project_id, file_id).await?;

    let now = timestamp::now();
    let mut content = ContentDeclaration {
        file_name: current.content.file_name.clone(),
        content_type: declared.content_type,
        file_size: declared.file_size,
        sha256: declared.sha256,
        md5: declared.md5,
    };
    // The new job's URLs sign the content, not the file's state, so they survive a retry.
    let started = upload::start_job(services, file_id, &content, now).await?;
    let mut attempts = 0;
    let refusal = loop {
        attempts += 1;
        content.file_name = declared
            .file_name
            .clone()
            .unwrap_or_else(|| current.content.file_name.clone());
        let updated = FileRecord {
            content: content.clone(),
            metadata: declared
                .metadata
                .clone()
                .unwrap_or_else(|| current.metadata.clone()),
            status: FileStatus::PendingUpload,
            rejection_reason: None,
            updated_at: now,
            job: Some(started.job.clone()),
            ..current.clone()
        };
        let expires_at = current
            .verified
            .is_none()
            .then(|| now + services.config.pending_ttl);
        match services.files.replace(&updated, &current, expires_at).await {
            Ok(Conditional::Applied(_)) => break None,
            Ok(Conditional::Refused {
                current: Some(latest),
            }) if attempts < REUPLOAD_ATTEMPTS => current = latest,
            Ok(Conditional::Refused { current: Some(_) }) => {
                break Some(ApiError::conflict(
                    "concurrent_update",
                    "the file kept changing during the reupload; retry",
                ));
            }
            Ok(Conditional::Refused { current: None }) => break Some(ApiError::NotFound),
            Err(err) => break Some(err),
        }
    };
    if let Some(err) = refusal {
        upload::discard_storage(services, &started.job).await;
        return Err(err);
    }
    if let Some(previous) = unverified_job(&current) {
        upload::discard_storage(services, previous).await;
    }
    let plan = UploadPlan::new(file_id, &started.job, started.urls);
    tracing::info!(file_id = %file_id, job_id = %plan.job_id, "reupload started");
    Ok(Reply::created(
        serde_json::to_value(plan).map_err(|err| ApiError::Internal(err.to_string()))?,
    ))
}

/// `{"part_numbers": [..]}` → `{"urls": {"7": "…"}, "expires_at": "…"}`.
async fn sign_parts(
    services: &Services,
    project_id: &str,
    file_id: FileId,
    request: &Request,
) -> Result<Reply, ApiError> {
    let body = http::required_json_object(request)?;
    let record = services.files.get_in_project(project_id, file_id).await?;
    let job = upload_in_progress(&record)?;
    let part_numbers = validate::part_numbers(&body, job.part_count, PART_URL_BATCH)?;
    let expires_at = timestamp::now() + services.config.upload_url_expiry;
    let urls = upload::part_urls(services, job, &record.content, &part_numbers).await?;
    let urls: serde_json::Map<String, serde_json::Value> = urls
        .into_iter()
        .map(|(number, url)| (number.to_string(), json!(url)))
        .collect();
    Ok(Reply::ok(
        json!({ "urls": urls, "expires_at": timestamp::format(expires_at) }),
    ))
}

/// The parts already in storage (every page of ListParts), for resuming.
async fn list_parts(
    services: &Services,
    project_id: &str,
    file_id: FileId,
) -> Result<Reply, ApiError> {
    let record = services.files.get_in_project(project_id, file_id).await?;
    let job = upload_in_progress(&record)?;
    let parts = match &job.upload_id {
        Some(upload_id) => services
            .objects
            .list_parts(&job.s3_key, upload_id)
            .await?
            .ok_or_else(|| {
                ApiError::conflict(
                    "no_upload_in_progress",
                    "the multipart upload no longer exists",
                )
            })?,
        None => match services.objects.head(&job.s3_key).await? {
            Some(head) => vec![shared::domain::parts::UploadedPart {
                part_number: 1,
                size: head.size,
                etag: head.etag.unwrap_or_default(),
            }],
            None => Vec::new(),
        },
    };
    let parts: Vec<_> = parts
        .iter()
        .map(|part| json!({"part_number": part.part_number, "size": part.size, "etag": part.etag}))
        .collect();
    Ok(Reply::ok(json!({ "parts": parts })))
}

/// Aborts the upload in progress. The file falls back to its verified version, or, with none,
/// is `rejected` with `upload_aborted` so that it is clear nothing was uploaded.
async fn abort_upload(
    services: &Services,
    project_id: &str,
    file_id: FileId,
) -> Result<Reply, ApiError> {
    let record = services.files.get_in_project(project_id, file_id).await?;
    let job = upload_in_progress(&record)?.clone();
    let now = timestamp::now();
    let updated = match &record.verified {
        Some(verified) => FileRecord {
            content: verified.content.clone(),
            status: FileStatus::Verified,
            rejection_reason: None,
            job: None,
            updated_at: now,
            ..record.clone()
        },
        None => FileRecord {
            status: FileStatus::Rejected,
            rejection_reason: Some(RejectionReason::UploadAborted),
            job: None,
            updated_at: now,
            ..record.clone()
        },
    };
    let expires_at = record
        .verified
        .is_none()
        .then(|| now + services.config.pending_ttl);
    match services
        .files
        .replace(&updated, &record, expires_at)
        .await?
    {
        Conditional::Applied(updated) => {
            // Recorded first, so a racing complete can no longer succeed; then storage.
            upload::discard_storage(services, &job).await;
            tracing::info!(file_id = %file_id, job_id = %job.job_id, "upload aborted");
            Ok(Reply::ok(
                FileResource::render(services, &updated).await?.to_json(),
            ))
        }
        Conditional::Refused { .. } => Err(ApiError::conflict(
            "no_upload_in_progress",
            "the upload was completed or replaced while it was being aborted",
        )),
    }
}

/// The job that parts and abort act on: the current one, while it awaits its bytes.
fn upload_in_progress(record: &FileRecord) -> Result<&UploadJob, ApiError> {
    match (&record.job, record.status) {
        (Some(job), FileStatus::PendingUpload) => Ok(job),
        _ => Err(ApiError::conflict(
            "no_upload_in_progress",
            "this file has no upload in progress; start one with reupload",
        )),
    }
}

/// The current job of `record` when its storage holds nothing worth keeping: not the verified version.
fn unverified_job(record: &FileRecord) -> Option<&UploadJob> {
    let job = record.job.as_ref()?;
    let is_verified = record
        .verified
        .as_ref()
        .is_some_and(|v| v.job_id == job.job_id);
    (!is_verified).then_some(job)
}
