//! `POST /v1/projects/{project_id}/files`: declare a file, get its upload plan (or, for content
//! already verified in the project, the existing file). With an API key, or with an upload token
//! within its bounds.

use lambda_http::{Body, Request, Response};
use shared::app::{Services, release, upload};
use shared::contract::UploadPlan;
use shared::domain::error::Refusal;
use shared::domain::token::UploadToken;
use shared::domain::{FileId, FileRecord, timestamp};
use shared::dynamo::Claim;
use shared::error::Error;
use shared::http::{self, Caller, Reply, parse};

pub async fn handle(services: &Services, request: Request) -> Response<Body> {
    http::serve(request, |request| create_file(services, request)).await
}

async fn create_file(services: &Services, request: Request) -> Result<Reply, Error> {
    let call = http::call(&services.table, &request).await?;
    http::idempotent(
        &services.table,
        &call.idempotency_scope(),
        &request,
        |claim| {
            Box::pin(create(
                services,
                &call.project_id,
                &call.caller,
                &request,
                claim,
            ))
        },
    )
    .await
}

async fn create(
    services: &Services,
    project_id: &str,
    caller: &Caller,
    request: &Request,
    claim: Option<Claim>,
) -> Result<Reply, Error> {
    let body = http::required_json_object(request, parse::UPLOAD_REQUEST_FIELDS)?;
    let new_file = parse::new_file(&body, services.config.max_file_size)?;
    let (new_file, token) = match caller {
        Caller::ApiKey(_) => (new_file, None),
        Caller::Token(token) => {
            let admitted = token.admit_file(new_file).map_err(Refusal::Validation)?;
            (admitted, Some(token))
        }
    };
    let content = &new_file.content;
    // Dedup answers with the existing file and its download URL: worth it for an application,
    // which is trusted with the project's files, but a token's client has only declared the
    // SHA-256, not shown the bytes, so it uploads them.
    if let Some(existing) = upload::deduplicated(services, project_id, token, content).await? {
        let mut resource = http::render_file(services, &existing).await?;
        resource.deduplicated = Some(true);
        return Ok(Reply::ok(resource.to_json()));
    }

    let file_id = FileId::random();
    let now = timestamp::now();
    if let Some(token) = token {
        // Counted before anything is stored: two racing creates cannot both take the last slot.
        services.table.tokens.claim(token, &[file_id], now).await?;
    }
    let started =
        match upload::start_job(services, file_id, content, new_file.part_checksums, now).await {
            Ok(started) => started,
            Err(err) => {
                release_token_slot(services, token, file_id).await;
                return Err(err);
            }
        };
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
    let answer = http::answer_with(&services.table, claim.as_ref(), &reply, now)?;
    if let Err(err) = services
        .table
        .files
        .insert_new(&file, answer.as_ref())
        .await
    {
        // Nothing refers to the upload just opened: a failed request leaves nothing behind.
        // Unless the file may exist after all: then it holds the upload and the token's slot,
        // and the retry with the same key may be answered with this very plan.
        if !err.may_have_applied() {
            release::best_effort(&services.storage.objects, &started.job.storage()).await;
            release_token_slot(services, token, file_id).await;
        }
        return Err(err);
    }
    tracing::info!(file_id = %file_id, job_id = %started.job.job_id, project_id = %file.project_id, "file created");
    Ok(reply)
}

/// Gives the token's slot back when its file was not created.
async fn release_token_slot(services: &Services, token: Option<&UploadToken>, file_id: FileId) {
    if let Some(token) = token {
        services.table.tokens.release(token, &[file_id]).await;
    }
}
