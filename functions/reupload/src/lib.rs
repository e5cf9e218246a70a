//! The routes of an upload in progress, for resumable and repeated uploads:
//! - `POST …/files/{file_id}/reupload`: new content for an existing file
//! - `POST …/files/{file_id}/parts`: fresh URLs for parts of the current upload
//! - `GET …/files/{file_id}/parts`: the parts already in storage, to resume
//! - `DELETE …/files/{file_id}/upload`: abort the upload in progress

use lambda_http::{Body, Request, Response};
use shared::app::Services;
use shared::app::upload::{self, PART_URL_BATCH};
use shared::contract::{self, UploadPlan};
use shared::domain::FileId;
use shared::domain::error::Refusal;
use shared::error::Error;
use shared::http::routes::Operation;
use shared::http::{self, Reply, parse};

pub async fn handle(services: &Services, request: Request) -> Response<Body> {
    http::serve(request, |request| async move {
        let call = http::call(&services.table, &request).await?;
        let (project_id, file_id) = (call.project_id.as_str(), call.file_id()?);
        match call.route.operation {
            Operation::Reupload => {
                http::idempotent(&services.table, &call.idempotency_scope(), &request, |_| {
                    Box::pin(reupload(services, project_id, file_id, &request))
                })
                .await
            }
            Operation::SignParts => sign_parts(services, project_id, file_id, &request).await,
            Operation::ListParts => list_parts(services, project_id, file_id).await,
            Operation::AbortUpload => abort_upload(services, project_id, file_id).await,
            _ => Err(Refusal::NotFound.into()),
        }
    })
    .await
}

/// Starts a new upload of new content. The verified version, if any, stays downloadable until
/// the new content is verified; an upload still in progress is discarded.
async fn reupload(
    services: &Services,
    project_id: &str,
    file_id: FileId,
    request: &Request,
) -> Result<Reply, Error> {
    let body = http::required_json_object(request, parse::UPLOAD_REQUEST_FIELDS)?;
    let declared = parse::upload_request(&body, services.config.max_file_size, false)?;
    let file = services
        .table
        .files
        .get_in_project(project_id, file_id)
        .await?;

    let started = upload::start_again(services, file, &declared).await?;
    tracing::info!(file_id = %file_id, job_id = %started.job.job_id, "reupload started");
    Ok(Reply::created(
        UploadPlan::new(file_id, &started.job, started.urls).to_json(),
    ))
}

/// `{"part_numbers": [..], "checksums": {"7": "…"}}` → `{"urls": {"7": "…"}, "headers":
/// {"7": {"x-amz-checksum-sha256": "…"}}, "expires_at": "…"}`.
async fn sign_parts(
    services: &Services,
    project_id: &str,
    file_id: FileId,
    request: &Request,
) -> Result<Reply, Error> {
    let body = http::required_json_object(request, parse::PART_NUMBERS_FIELDS)?;
    let record = services
        .table
        .files
        .get_in_project(project_id, file_id)
        .await?;
    let job = record.upload_in_progress()?;
    let parts = parse::part_requests(&body, job, record.content.sha256, PART_URL_BATCH)?;
    let signed = upload::more_part_urls(services, job, &record.content, &parts).await?;
    Ok(Reply::ok(contract::part_urls(
        &signed.urls,
        &signed.headers,
        signed.expires_at,
    )))
}

/// The parts already in storage (every page of ListParts), for resuming.
async fn list_parts(
    services: &Services,
    project_id: &str,
    file_id: FileId,
) -> Result<Reply, Error> {
    let record = services
        .table
        .files
        .get_in_project(project_id, file_id)
        .await?;
    let parts = upload::stored_parts(services, record.upload_in_progress()?).await?;
    Ok(Reply::ok(contract::uploaded_parts(&parts)))
}

/// Aborts the upload in progress: the file falls back to its verified version, or is
/// `rejected` with `upload_aborted` (see `FileRecord::abort_upload`).
async fn abort_upload(
    services: &Services,
    project_id: &str,
    file_id: FileId,
) -> Result<Reply, Error> {
    let file = services
        .table
        .files
        .get_in_project(project_id, file_id)
        .await?;
    let file = upload::abort(services, file).await?;
    Ok(Reply::ok(
        http::render_file(services, &file).await?.to_json(),
    ))
}
