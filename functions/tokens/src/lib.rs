//! `POST /v1/projects/{project_id}/upload-tokens` (docs/API.md v1.1, "Client upload tokens"):
//! an application, with its API key, mints a short-lived token that lets a browser or a mobile
//! app create files on the project within the token's bounds and finish their uploads.

use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use shared::app::services::Table;
use shared::config::Config;
use shared::domain::error::Refusal;
use shared::domain::timestamp;
use shared::domain::token::{MediaRange, UploadToken};
use shared::error::Error;
use shared::http::{self, Caller, Reply, parse};

pub async fn handle(table: &Table, config: &Config, request: Request) -> Response<Body> {
    http::serve(request, |request| async move {
        // Only an API key mints tokens (routes::ROUTES): a token minting more would outlive
        // its own bounds.
        let call = http::call(table, &request).await?;
        let Caller::ApiKey(key_hash) = &call.caller else {
            return Err(Refusal::not_for_tokens().into());
        };
        http::idempotent(table, &call.idempotency_scope(), &request, |_| {
            Box::pin(mint(table, config, &call.project_id, key_hash, &request))
        })
        .await
    })
    .await
}

/// Mints the token. Its answer is the only place the token exists in clear: kept under an
/// `Idempotency-Key` (so that a client that lost it gets the same token, not a second live
/// one), but no longer than the token lives.
async fn mint(
    table: &Table,
    config: &Config,
    project_id: &str,
    key_hash: &str,
    request: &Request,
) -> Result<Reply, Error> {
    let body = http::json_object(request, parse::TOKEN_GRANT_FIELDS)?.unwrap_or_default();
    let grant = parse::token_grant(&body, config.max_file_size)?;
    let (secret, token) = table
        .tokens
        .mint(project_id, key_hash, &grant, timestamp::now())
        .await?;
    tracing::info!(project_id = %project_id, expires_at = %timestamp::format(token.expires_at), "upload token minted");
    Ok(Reply::created(rendered(&secret, &token)).kept_until(token.expires_at))
}

/// The token, shown this once, and the bounds it carries.
fn rendered(secret: &str, token: &UploadToken) -> Value {
    json!({
        "token": secret,
        "project_id": token.project_id,
        "expires_at": timestamp::format(token.expires_at),
        "max_file_size": token.max_file_size,
        "content_types": token.content_types.iter().map(MediaRange::as_str).collect::<Vec<_>>(),
        "max_files": token.max_files,
        "metadata": token.metadata.as_map(),
    })
}
