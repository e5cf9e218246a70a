//! The `Idempotency-Key` header (docs/API.md v1.1) around a route's action.

use std::future::Future;
use std::pin::Pin;

use lambda_http::http::StatusCode;
use lambda_http::{Request, RequestExt};

use super::{Reply, request_id, status_of};
use crate::app::services::Table;
use crate::contract::error_body;
use crate::domain::error::Refusal;
use crate::domain::idempotency::{self, IdempotencyKey, Repeat, fingerprint};
use crate::domain::timestamp;
use crate::dynamo::{AnswerWrite, Claim, IdempotencyKeys};
use crate::error::{Error, Failure};

const HEADER: &str = "idempotency-key";

/// A route's action, on the heap: its future is large, and this one holds it across two table
/// writes (in a debug build, the two together overflowed a test thread's stack).
pub type Action<'a> = Pin<Box<dyn Future<Output = Result<Reply, Error>> + Send + 'a>>;

/// Runs `act` once per `Idempotency-Key` of `scope` (a project, or an upload token of it; see
/// [`super::Caller::idempotency_scope`]): a request without the header just
/// runs it; the first with a key claims it (one conditional write), runs, and keeps its answer
/// (a second write, unless `act` wrote the answer together with its own write, as create does
/// through [`crate::dynamo::IdempotencyKeys::answer_write`]); a retry gets that answer again. A
/// retriable answer ([`Refusal::is_retriable`]: a 5xx, a 409 `concurrent_update`) is
/// forgotten, so its retry runs afresh.
pub async fn idempotent<'a>(
    table: &Table,
    scope: &str,
    request: &Request,
    act: impl FnOnce(Option<Claim>) -> Action<'a>,
) -> Result<Reply, Error> {
    let Some(header) = request.headers().get(HEADER) else {
        return act(None).await;
    };
    let key = header
        .to_str()
        .map_err(|_| "must be printable ASCII".to_owned())
        .and_then(IdempotencyKey::parse)
        .map_err(|message| Refusal::invalid("Idempotency-Key", message))?;
    let fingerprint = fingerprint(
        request.method().as_str(),
        request.raw_http_path(),
        request.body().as_ref(),
    );
    let keys = &table.idempotency;
    let claim = Claim::new(scope, &key, &fingerprint);
    match keys.claim(&claim, timestamp::now()).await {
        Ok(None) => {}
        Ok(Some(recorded)) => {
            return match recorded.repeat(&fingerprint) {
                Repeat::Replay { status, body } => replay(status, &body),
                Repeat::Reused => Err(Refusal::IdempotencyKeyReused.into()),
                Repeat::InUse => Err(Refusal::IdempotencyKeyInUse.into()),
            };
        }
        Err(err) => {
            // The claim may have applied with its answer lost: take it back, or a retry would
            // be told the key is in use until the lease runs out.
            forget(keys, &claim).await;
            return Err(err.into());
        }
    }

    let result = act(Some(claim.clone())).await;
    if claim.answer_kept() {
        return result;
    }
    let now = timestamp::now();
    let (status, body, kept_until) = match &result {
        // Only final answers are kept: a retry of this one runs afresh.
        Err(err) if err.is_retriable() => {
            forget(keys, &claim).await;
            return result;
        }
        Err(err) => (status_of(err), error_body(err, &request_id(request)), None),
        Ok(reply) => (reply.status, reply.body.clone(), reply.keep_until),
    };
    let kept_until = idempotency::kept_until(now, kept_until);
    if let Err(err) = keys
        .answer(&claim, status.as_u16(), &body.to_string(), kept_until)
        .await
    {
        // The action is done: its answer goes out. A retry within the key's lease is told the
        // key is in use; after it, the retry acts again.
        tracing::error!(error = %err, "could not keep the answer of an idempotent request");
    }
    result
}

/// Releases `claim` so that a retry runs afresh; if that fails too, the key stays in use until
/// its lease runs out.
async fn forget(keys: &IdempotencyKeys, claim: &Claim) {
    if let Err(err) = keys.release(claim).await {
        tracing::warn!(error = %err, "could not release an idempotency key");
    }
}

fn replay(status: u16, body: &str) -> Result<Reply, Error> {
    let status = StatusCode::from_u16(status)
        .map_err(|_| Failure::Internal(format!("kept status {status}")))?;
    let body =
        serde_json::from_str(body).map_err(|err| Failure::Internal(format!("kept body: {err}")))?;
    Ok(Reply {
        status,
        body,
        replayed: true,
        keep_until: None,
    })
}

/// The write of `reply` as the answer under `claim` (a request's `Idempotency-Key`; `None`:
/// the request has none), to be made with the route's own write: a retry then finds both or
/// neither (create's file and its plan).
pub fn answer_with(
    table: &Table,
    claim: Option<&Claim>,
    reply: &Reply,
    now: time::OffsetDateTime,
) -> Result<Option<AnswerWrite>, Error> {
    claim
        .map(|claim| {
            let body = reply.body.to_string();
            let kept_until = idempotency::kept_until(now, None);
            (table.idempotency).answer_write(claim, reply.status.as_u16(), &body, kept_until)
        })
        .transpose()
        .map_err(Error::from)
}
