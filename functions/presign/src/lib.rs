//! `POST /v1/projects/{project_id}/files`: declare a file, get its upload plan (or, for content
//! already verified in the project, the existing file).

use lambda_http::{Body, Request, Response};
use shared::app::Services;
use shared::app::upload;
use shared::domain::ApiError;
use shared::domain::{ContentDeclaration, FileId, FileRecord, FileStatus};
use shared::domain::{timestamp, validate};
use shared::http::resource::{FileResource, UploadPlan};
use shared::http::{self, Reply};

pub async fn handle(services: &Services, request: Request) -> Response<Body> {
    http::serve(request, |request| create_file(services, request)).await
}

async fn create_file(services: &Services, request: Request) -> Result<Reply, ApiError> {
    let project_id = http::authorized_project(&services.keys, &request).await?;
    let body = http::required_json_object(&request)?;
    let declared = validate::upload_request(&body, services.config.max_file_size, true)?;

    if let Some(sha256) = &declared.sha256
        && let Some(existing) = services
            .files
            .find_verified_by_content(&project_id, sha256, declared.file_size)
            .await?
    {
        let mut resource = FileResource::render(services, &existing).await?;
        resource.deduplicated = Some(true);
        return Ok(Reply::ok(resource.to_json()));
    }

    let file_id = FileId::random();
    let now = timestamp::now();
    let content = ContentDeclaration {
        file_name: declared.file_name.unwrap_or_default(),
        content_type: declared.content_type,
        file_size: declared.file_size,
        sha256: declared.sha256,
        md5: declared.md5,
    };
    let started = upload::start_job(services, file_id, &content, now).await?;
    let plan = UploadPlan::new(file_id, &started.job, started.urls);
    let record = FileRecord {
        file_id,
        project_id,
        content,
        metadata: declared.metadata.unwrap_or_default(),
        status: FileStatus::PendingUpload,
        rejection_reason: None,
        created_at: now,
        updated_at: now,
        job: Some(started.job),
        verified: None,
    };
    services
        .files
        .insert_new(&record, now + services.config.pending_ttl)
        .await?;
    tracing::info!(file_id = %file_id, job_id = %plan.job_id, project_id = %record.project_id, "file created");
    Ok(Reply::created(
        serde_json::to_value(plan).map_err(|err| ApiError::Internal(err.to_string()))?,
    ))
}
