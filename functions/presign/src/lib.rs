//! `POST /v1/projects/{project_id}/files`: declare a file, get its upload plan (or, for content
//! already verified in the project, the existing file).

use lambda_http::{Body, Request, Response};
use shared::app::{Services, upload};
use shared::domain::{ApiError, FileId, FileRecord, timestamp, validate};
use shared::dynamo::Claim;
use shared::http::resource::{FileResource, UploadPlan};
use shared::http::{self, Reply};

pub async fn handle(services: &Services, request: Request) -> Response<Body> {
    http::serve(request, |request| create_file(services, request)).await
}

async fn create_file(services: &Services, request: Request) -> Result<Reply, ApiError> {
    let project_id = http::authorized_project(&services.keys, &request).await?;
    http::idempotent(services, &project_id, &request, |claim| {
        Box::pin(create(services, &project_id, &request, claim))
    })
    .await
}

async fn create(
    services: &Services,
    project_id: &str,
    request: &Request,
    claim: Option<Claim>,
) -> Result<Reply, ApiError> {
    let body = http::required_json_object(request)?;
    let new_file = validate::new_file(&body, services.config.max_file_size)?;

    let content = &new_file.content;
    if let Some(sha256) = &content.sha256
        && let Some(existing) = services
            .files
            .find_verified_by_content(project_id, sha256, content.file_size)
            .await?
    {
        let mut resource = FileResource::render(services, &existing).await?;
        resource.deduplicated = Some(true);
        return Ok(Reply::ok(resource.to_json()));
    }

    let file_id = FileId::random();
    let now = timestamp::now();
    let started = upload::start_job(services, file_id, content, now).await?;
    let file = FileRecord::declare(
        file_id,
        project_id.to_owned(),
        new_file.content,
        new_file.metadata,
        started.job.clone(),
        now,
        services.config.pending_ttl,
    );
    let reply = Reply::created(UploadPlan::new(file_id, &started.job, started.urls).to_json());
    // With a key, its answer is written with the file: a retry finds one or the other, never
    // a file it was not told about.
    let answer = claim
        .map(|claim| {
            let body = reply.body.to_string();
            (services.idempotency).answer_write(&claim, reply.status.as_u16(), &body, now)
        })
        .transpose()?;
    if let Err(err) = services.files.insert_new(&file, answer.as_ref()).await {
        // Nothing refers to the upload just opened: a failed request leaves nothing behind.
        upload::discard_storage(services, &started.job).await;
        return Err(err);
    }
    tracing::info!(file_id = %file_id, job_id = %started.job.job_id, project_id = %file.project_id, "file created");
    Ok(reply)
}
