//! The file resource:
//! - `GET /v1/projects/{project_id}/files` (newest first, paginated)
//! - `GET /v1/projects/{project_id}/files/{file_id}`
//! - `DELETE /v1/projects/{project_id}/files/{file_id}`: the file and everything it stored
//! - `GET /v1/projects/{project_id}/usage`: what the project's files hold, and its quota

use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::app::{Services, delete};
use shared::contract;
use shared::domain::error::Refusal;
use shared::error::Error;
use shared::http::routes::Operation;
use shared::http::{self, Call, Reply, parse};

pub async fn handle(services: &Services, request: Request) -> Response<Body> {
    http::serve(request, |request| async move {
        let call = http::call(&services.table, &request).await?;
        let project_id = &call.project_id;
        match call.route.operation {
            Operation::GetFile => {
                let file = (services.table.files)
                    .get_in_project(project_id, call.file_id()?)
                    .await?;
                Ok(Reply::ok(
                    http::render_file(services, &file).await?.to_json(),
                ))
            }
            Operation::ListFiles => list_files(services, project_id, &request).await,
            Operation::Usage => {
                let found = services.table.usages.get(project_id).await?;
                Ok(Reply::ok(contract::usage(project_id, &found)))
            }
            Operation::DeleteFile => {
                http::idempotent(&services.table, &call.idempotency_scope(), &request, |_| {
                    Box::pin(delete_file(services, &call))
                })
                .await
            }
            _ => Err(Refusal::NotFound.into()),
        }
    })
    .await
}

/// 204 once nothing of the file is left; 404 for a file that is not (or no longer) there.
async fn delete_file(services: &Services, call: &Call) -> Result<Reply, Error> {
    let file_id = call.file_id()?;
    let record = (services.table.files)
        .get_in_project(&call.project_id, file_id)
        .await?;
    delete::delete_file(services, record).await?;
    tracing::info!(file_id = %file_id, "file deleted");
    Ok(Reply::no_content())
}

async fn list_files(
    services: &Services,
    project_id: &str,
    request: &Request,
) -> Result<Reply, Error> {
    let query = parse::list_query(request, project_id)?;
    let page = services
        .table
        .files
        .list(project_id, query.status, query.limit, query.cursor.as_ref())
        .await?;
    let mut files = Vec::with_capacity(page.files.len());
    for record in &page.files {
        files.push(http::render_file(services, record).await?.to_json());
    }
    Ok(Reply::ok(
        json!({ "files": files, "next_cursor": page.next_cursor }),
    ))
}
