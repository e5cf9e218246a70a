//! The `Idempotency-Key` header (docs/API.md v1.1) around a route's action.

use std::future::Future;
use std::pin::Pin;

use lambda_http::http::StatusCode;
use lambda_http::{Request, RequestExt};

use super::{Reply, request_id, status_of};
use crate::app::Services;
use crate::domain::error::ApiError;
use crate::domain::idempotency::{IdempotencyKey, Verdict, fingerprint};
use crate::domain::timestamp;

const HEADER: &str = "idempotency-key";

/// A route's action, on the heap: its future is large, and this one holds it across two table
/// writes (in a debug build, the two together overflowed a test thread's stack).
pub type Action<'a> = Pin<Box<dyn Future<Output = Result<Reply, ApiError>> + Send + 'a>>;

/// Runs `act` once per `Idempotency-Key` of `project_id`: a request without the header just
/// runs it; the first with a key claims it (one conditional write), runs, and keeps its answer
/// (a second write); a retry gets that answer again. A 5xx is forgotten, so its retry runs
/// afresh. Costs two table writes per request with a key.
pub async fn idempotent(
    services: &Services,
    project_id: &str,
    request: &Request,
    act: Action<'_>,
) -> Result<Reply, ApiError> {
    let Some(header) = request.headers().get(HEADER) else {
        return act.await;
    };
    let key = header
        .to_str()
        .map_err(|_| "must be printable ASCII".to_owned())
        .and_then(IdempotencyKey::parse)
        .map_err(|message| ApiError::invalid("Idempotency-Key", message))?;
    let fingerprint = fingerprint(
        request.method().as_str(),
        request.raw_http_path(),
        request.body().as_ref(),
    );
    let keys = &services.idempotency;
    if let Some(recorded) = keys
        .claim(project_id, &key, &fingerprint, timestamp::now())
        .await?
    {
        return match recorded.verdict(&fingerprint) {
            Verdict::Replay { status, body } => replay(status, &body),
            Verdict::Reused => Err(ApiError::IdempotencyKeyReused),
            Verdict::InUse => Err(ApiError::IdempotencyKeyInUse),
        };
    }

    let result = act.await;
    let (status, body) = match &result {
        Ok(reply) => (reply.status, reply.body.clone()),
        Err(err) => (status_of(err), err.body(&request_id(request))),
    };
    let kept = if status.is_server_error() {
        keys.release(project_id, &key).await
    } else {
        let body = body.to_string();
        keys.answer(
            project_id,
            &key,
            &fingerprint,
            status.as_u16(),
            &body,
            timestamp::now(),
        )
        .await
    };
    if let Err(err) = kept {
        // The action is done: its answer goes out. A retry within the key's lease is told the
        // key is in use; after it, the retry acts again.
        tracing::error!(error = %err, "could not keep the answer of an idempotent request");
    }
    result
}

fn replay(status: u16, body: &str) -> Result<Reply, ApiError> {
    let status = StatusCode::from_u16(status)
        .map_err(|_| ApiError::Internal(format!("kept status {status}")))?;
    let body = serde_json::from_str(body)
        .map_err(|err| ApiError::Internal(format!("kept body: {err}")))?;
    Ok(Reply {
        status,
        body,
        replayed: true,
    })
}
