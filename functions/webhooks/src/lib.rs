//! A project's webhook (docs/API.md v1.1, "Events and webhooks"):
//! - `PUT /v1/projects/{project_id}/webhook`: set it; the signing secret is shown when it is made
//!   (a new webhook, or `"rotate_secret": true`) and never again
//! - `GET /v1/projects/{project_id}/webhook`: the webhook, without its secret
//! - `DELETE /v1/projects/{project_id}/webhook`: no more deliveries

use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::app::services::Table;
use shared::config::Config;
use shared::domain::error::Refusal;
use shared::domain::timestamp;
use shared::domain::webhook::{SigningSecret, WebhookConfig};
use shared::error::{Error, Failure};
use shared::http::routes::Operation;
use shared::http::{self, Reply, parse};

pub async fn handle(table: &Table, config: &Config, request: Request) -> Response<Body> {
    http::serve(request, |request| async move {
        let call = http::call(table, &request).await?;
        let project_id = call.project_id.as_str();
        match call.route.operation {
            Operation::SetWebhook => {
                http::idempotent(table, &call.idempotency_scope(), &request, |_| {
                    Box::pin(set_webhook(table, config, project_id, &request))
                })
                .await
            }
            Operation::GetWebhook => get_webhook(table, project_id).await,
            Operation::DeleteWebhook => delete_webhook(table, project_id).await,
            _ => Err(Refusal::NotFound.into()),
        }
    })
    .await
}

async fn set_webhook(
    table: &Table,
    config: &Config,
    project_id: &str,
    request: &Request,
) -> Result<Reply, Error> {
    let body = http::required_json_object(request, parse::WEBHOOK_FIELDS)?;
    let wanted = parse::webhook_request(&body, config.webhook_allow_loopback)?;
    let (fresh, now) = (fresh_secret()?, timestamp::now());
    let (webhook, show_secret) = table
        .webhooks
        .set(project_id, |existing| {
            WebhookConfig::set(existing, project_id, wanted.clone(), fresh.clone(), now)
        })
        .await?;
    // The host only: the URL's path and query may hold the receiver's secret.
    let host = webhook.url.host_for_logs();
    tracing::info!(host, rotated = show_secret, "webhook set");
    let mut body = render(&webhook);
    if show_secret {
        body["secret"] = json!(webhook.secret.expose());
    }
    Ok(Reply::ok(body))
}

async fn get_webhook(table: &Table, project_id: &str) -> Result<Reply, Error> {
    match table.webhooks.get(project_id).await? {
        Some(config) => Ok(Reply::ok(render(&config))),
        None => Err(Refusal::NoWebhook.into()),
    }
}

async fn delete_webhook(table: &Table, project_id: &str) -> Result<Reply, Error> {
    if table.webhooks.delete(project_id).await? {
        Ok(Reply::no_content())
    } else {
        Err(Refusal::NoWebhook.into())
    }
}

/// The webhook as the API shows it: everything but the secret.
fn render(config: &WebhookConfig) -> serde_json::Value {
    let events: Vec<_> = config.events.iter().map(|kind| kind.as_str()).collect();
    json!({
        "project_id": config.project_id,
        "url": config.url,
        "events": events,
        "created_at": timestamp::format(config.created_at),
        "updated_at": timestamp::format(config.updated_at),
    })
}

fn fresh_secret() -> Result<SigningSecret, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|err| Failure::Internal(format!("no randomness: {err}")))?;
    Ok(SigningSecret::from_random(bytes))
}
