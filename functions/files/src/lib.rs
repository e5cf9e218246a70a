//! The file resource:
//! - `GET /v1/projects/{project_id}/files` (newest first, paginated)
//! - `GET /v1/projects/{project_id}/files/{file_id}`
//! - `DELETE /v1/projects/{project_id}/files/{file_id}`: the file and everything it stored
//! - `GET /v1/projects/{project_id}/usage`: what the project's files hold, and its quota

use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;
use shared::app::{Services, delete};
use shared::contract;
use shared::domain::FileStatus;
use shared::domain::{ApiError, Detail};
use shared::dynamo::ListCursor;
use shared::http::{self, Reply};

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 100;

pub async fn handle(services: &Services, request: Request) -> Response<Body> {
    http::serve(request, |request| async move {
        let (project_id, caller) = http::caller(&services.table, &request).await?;
        let by_id = http::path_param(&request, "file_id").is_some();
        let usage = request.raw_http_path().ends_with("/usage");
        match (request.method().as_str(), by_id) {
            ("GET", true) => {
                // An upload token reads the files it created.
                caller.may_use(http::file_id(&request)?)?;
                get_file(services, &project_id, &request).await
            }
            _ if !caller.is_api_key() => Err(ApiError::not_for_tokens()),
            ("GET", false) if usage => {
                let found = services.table.usages.get(&project_id).await?;
                Ok(Reply::ok(contract::usage(&project_id, &found)))
            }
            ("GET", false) => list_files(services, &project_id, &request).await,
            ("DELETE", true) => {
                http::idempotent(&services.table, &project_id, &request, |_| {
                    Box::pin(delete_file(services, &project_id, &request))
                })
                .await
            }
            _ => Err(ApiError::NotFound),
        }
    })
    .await
}

async fn get_file(
    services: &Services,
    project_id: &str,
    request: &Request,
) -> Result<Reply, ApiError> {
    let record = services
        .table
        .files
        .get_in_project(project_id, http::file_id(request)?)
        .await?;
    Ok(Reply::ok(
        http::render_file(services, &record).await?.to_json(),
    ))
}

/// 204 once nothing of the file is left; 404 for a file that is not (or no longer) there.
async fn delete_file(
    services: &Services,
    project_id: &str,
    request: &Request,
) -> Result<Reply, ApiError> {
    let file_id = http::file_id(request)?;
    let record = services
        .table
        .files
        .get_in_project(project_id, file_id)
        .await?;
    delete::delete_file(services, record).await?;
    tracing::info!(file_id = %file_id, "file deleted");
    Ok(Reply::no_content())
}

async fn list_files(
    services: &Services,
    project_id: &str,
    request: &Request,
) -> Result<Reply, ApiError> {
    let query = ListQuery::parse(request, project_id)?;
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

struct ListQuery {
    status: Option<FileStatus>,
    limit: usize,
    cursor: Option<ListCursor>,
}

impl ListQuery {
    fn parse(request: &Request, project_id: &str) -> Result<Self, ApiError> {
        let mut bad = Vec::new();
        let status = http::query_param(request, "status").and_then(|text| {
            FileStatus::parse(&text).or_else(|| {
                let names: Vec<_> = FileStatus::ALL.iter().map(|s| s.as_str()).collect();
                bad.push(Detail::field(
                    "status",
                    format!("must be one of {}", names.join(", ")),
                ));
                None
            })
        });
        let limit = match http::query_param(request, "limit") {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => match text.parse::<usize>() {
                Ok(limit) if (1..=MAX_PAGE_SIZE).contains(&limit) => limit,
                _ => {
                    bad.push(Detail::field(
                        "limit",
                        format!("must be an integer between 1 and {MAX_PAGE_SIZE}"),
                    ));
                    DEFAULT_PAGE_SIZE
                }
            },
        };
        let cursor = http::query_param(request, "cursor").and_then(|text| {
            ListCursor::decode(&text, project_id).or_else(|| {
                bad.push(Detail::field(
                    "cursor",
                    "must be a next_cursor from a previous page of this listing",
                ));
                None
            })
        });
        if bad.is_empty() {
            Ok(Self {
                status,
                limit,
                cursor,
            })
        } else {
            Err(ApiError::Validation(bad))
        }
    }
}
