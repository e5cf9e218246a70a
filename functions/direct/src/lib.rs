//! `POST /v1/projects/{project_id}/uploads` (docs/API.md v1.1, "Direct upload of small files"):
//! one or more files in a `multipart/form-data` body, stored at once and settled by the verify
//! trigger like any upload. With an API key, or with an upload token within its bounds.

use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::app::Services;
use shared::app::direct::{self, Filed, SentFile};
use shared::domain::Detail;
use shared::domain::error::Refusal;
use shared::domain::request::DirectUpload;
use shared::error::Error;
use shared::http::form::{Form, read_form};
use shared::http::parse;
use shared::http::{self, Caller, Reply};

/// Files per request, as the contract fixes it.
pub const MAX_FILES: usize = 20;

pub async fn handle(services: &Services, request: Request) -> Response<Body> {
    http::serve(request, |request| async move {
        let call = http::call(&services.table, &request).await?;
        http::idempotent(&services.table, &call.idempotency_scope(), &request, |_| {
            Box::pin(upload(services, &call.project_id, &call.caller, &request))
        })
        .await
    })
    .await
}

async fn upload(
    services: &Services,
    project_id: &str,
    caller: &Caller,
    request: &Request,
) -> Result<Reply, Error> {
    let config = &services.config;
    let form = read_form(request, config.direct_upload_max_bytes, MAX_FILES).await?;
    let files = checked(&form, caller, config.max_file_size)?;
    let token = match caller {
        Caller::ApiKey(_) => None,
        Caller::Token(token) => Some(token),
    };
    let outcomes = direct::upload(services, project_id, token, files).await?;
    let mut rendered = Vec::with_capacity(outcomes.len());
    for outcome in &outcomes {
        rendered.push(match outcome {
            Filed::Created(record) => http::render_file(services, record).await?.to_json(),
            Filed::Deduplicated(record) => {
                let mut resource = http::render_file(services, record).await?;
                resource.deduplicated = Some(true);
                resource.to_json()
            }
        });
    }
    tracing::info!(project_id = %project_id, files = rendered.len(), "direct upload stored");
    Ok(Reply::created(json!({ "files": rendered })))
}

/// The form's files, each checked (and, for a token, held to its bounds): every refusal of
/// every file at once, named `files[i].…`.
fn checked(form: &Form, caller: &Caller, max_file_size: u64) -> Result<Vec<SentFile>, Error> {
    let sent: Vec<parse::FilePart<'_>> = form
        .files
        .iter()
        .map(|file| parse::FilePart {
            file_name: file.file_name.as_deref(),
            content_type: file.content_type.as_deref(),
            size: file.bytes.len() as u64,
        })
        .collect();
    let DirectUpload { files, metadata } = parse::direct_upload(
        &sent,
        form.name.as_deref(),
        form.meta.as_deref(),
        max_file_size,
    )?;
    let metadata = match caller {
        Caller::ApiKey(_) => metadata,
        Caller::Token(token) => token
            .metadata_for(&metadata, "meta")
            .map_err(Refusal::Validation)?,
    };
    let files: Vec<SentFile> = files
        .into_iter()
        .zip(&form.files)
        .map(|((file_name, content_type, _), part)| {
            SentFile::new(
                file_name,
                content_type,
                metadata.clone(),
                part.bytes.clone(),
            )
        })
        .collect();
    if let Caller::Token(token) = caller {
        token.room_for(files.len())?;
        let refused: Vec<Detail> = files
            .iter()
            .enumerate()
            .filter_map(|(index, file)| {
                token
                    .admit(&file.content, &format!("files[{index}]."))
                    .err()
            })
            .flatten()
            .collect();
        if !refused.is_empty() {
            return Err(Refusal::Validation(refused).into());
        }
    }
    Ok(files)
}
