//! The HTTP edge: request ids, path and body parsing, and rendering results as responses.

mod bearer;
pub mod form;
mod idempotency;
pub mod parse;
pub mod routes;

pub use idempotency::{Action, answer_with, idempotent};

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::app::Services;
use crate::app::services::Table;
use crate::contract::{FileResource, error_body};
use crate::domain::error::Refusal;
use crate::domain::ids::ProjectId;
use crate::domain::token::UploadToken;
use crate::domain::{FileId, FileRecord, timestamp};
use crate::dynamo::key_hash;
use crate::error::{Error, Failure};
use bearer::{Bearer, bearer};
use routes::{Access, Route};

/// `record` as the file resource, with a presigned download URL for its verified version if it
/// has one.
pub async fn render_file(services: &Services, record: &FileRecord) -> Result<FileResource, Error> {
    let mut resource = FileResource::of(record);
    if let Some(verified) = &record.verified {
        resource.download_url = Some(
            services
                .storage
                .presigner
                .presign_download(
                    &verified.s3_key,
                    verified.content.file_name.as_str(),
                    verified.content.content_type.as_str(),
                    services.config.download_url_expiry,
                )
                .await?,
        );
    }
    Ok(resource)
}

/// A successful answer: status and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    /// The answer kept for an `Idempotency-Key`, given again.
    pub replayed: bool,
    /// Kept under an `Idempotency-Key` no later than this, when that is sooner than the key's
    /// lifetime: an answer that carries a secret lives no longer than what the secret opens.
    pub keep_until: Option<OffsetDateTime>,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self::new(StatusCode::OK, body)
    }

    pub fn created(body: Value) -> Self {
        Self::new(StatusCode::CREATED, body)
    }

    pub fn accepted(body: Value) -> Self {
        Self::new(StatusCode::ACCEPTED, body)
    }

    /// 204: done, nothing to say.
    pub fn no_content() -> Self {
        Self::new(StatusCode::NO_CONTENT, Value::Null)
    }

    /// This answer, kept under an `Idempotency-Key` no later than `until`.
    pub fn kept_until(mut self, until: OffsetDateTime) -> Self {
        self.keep_until = Some(until);
        self
    }

    fn new(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            replayed: false,
            keep_until: None,
        }
    }
}

/// Runs a route and renders its result, success or error, with the request id on it. A route
/// that panics answers the contract's 500 `internal` like any other internal failure, and
/// the sandbox keeps serving: the release profile unwinds (`panic = "unwind"`, set explicitly
/// because `cargo lambda build` makes panics abort unless the profile says otherwise).
pub async fn serve<F, Fut>(request: Request, route: F) -> Response<Body>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Reply, Error>>,
{
    let request_id = request_id(&request);
    let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), route = %request.raw_http_path());
    // Boxed: the route's future is deep (the SDK's), and the guard around it would nest it
    // past the compiler's recursion limit in the crates that call handlers in-process.
    let result = AssertUnwindSafe(Box::pin(route(request).instrument(span.clone())))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(Failure::Internal(panic_message(panic.as_ref())).into()));
    span.in_scope(|| render(&request_id, result))
}

/// What a panic said, for the log.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    let said = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a value that is not text");
    format!("the handler panicked: {said}")
}

/// The headers of the service's answers that clients read: the request id, how long to wait
/// before retrying a 503, and whether an answer is a replay under an `Idempotency-Key`. A
/// browser sees only those CORS exposes (template.yaml's `ExposeHeaders`, held to this list).
pub const CLIENT_HEADERS: [&str; 3] = [REQUEST_ID, "retry-after", REPLAYED];
const REQUEST_ID: &str = "x-request-id";
const REPLAYED: &str = "idempotent-replayed";

/// What a 503 asks a client to wait before retrying, in seconds.
pub const RETRY_AFTER_SECS: &str = "1";

pub fn render(request_id: &str, result: Result<Reply, Error>) -> Response<Body> {
    let (status, body, replayed) = match result {
        Ok(reply) => (reply.status, reply.body, reply.replayed),
        Err(err) => {
            match &err {
                Error::Failed(Failure::Internal(text)) => {
                    tracing::error!(error = %text, "internal error")
                }
                Error::Failed(Failure::Unavailable(text) | Failure::MayHaveApplied(text)) => {
                    tracing::warn!(error = %text, "dependency unavailable")
                }
                Error::Refused(_) => tracing::info!(
                    status = status_of(&err).as_u16(),
                    code = crate::error::code(&err),
                    "request refused"
                ),
            }
            (status_of(&err), error_body(&err, request_id), false)
        }
    };
    let no_content = status == StatusCode::NO_CONTENT;
    let mut response = Response::new(if no_content {
        Body::Empty
    } else {
        Body::Text(body.to_string())
    });
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if !no_content {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, value);
    }
    if replayed {
        headers.insert(REPLAYED, HeaderValue::from_static("true"));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // A dependency failed or timed out: worth retrying, not at once.
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    response
}

/// The contract's status of `err`; an unknown one would be a bug, answered as 500.
/// The HTTP status the contract gives `err`.
pub fn status_of(err: &Error) -> StatusCode {
    match err {
        Error::Refused(refusal) => match refusal {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden(_) | Refusal::QuotaExceeded(_) => StatusCode::FORBIDDEN,
            Refusal::NotFound | Refusal::NoWebhook => StatusCode::NOT_FOUND,
            Refusal::Conflict { .. } | Refusal::IdempotencyKeyInUse => StatusCode::CONFLICT,
            Refusal::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Validation(_) | Refusal::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
        },
        Error::Failed(Failure::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        Error::Failed(Failure::Unavailable(_) | Failure::MayHaveApplied(_)) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// API Gateway's request id when there is one (it is what its access logs show), else Lambda's.
pub fn request_id(request: &Request) -> String {
    let from_gateway = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    };
    from_gateway
        .filter(|id| !id.is_empty())
        .or_else(|| {
            request
                .lambda_context_ref()
                .map(|context| context.request_id.clone())
        })
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

pub fn path_param(request: &Request, name: &str) -> Option<String> {
    request
        .path_parameters_ref()
        .and_then(|params| params.first(name))
        .map(str::to_owned)
}

pub fn query_param(request: &Request, name: &str) -> Option<String> {
    request
        .query_string_parameters_ref()
        .and_then(|params| params.first(name))
        .map(str::to_owned)
}

/// Who calls: an application with its API key (the key's SHA-256, what the table knows it by),
/// or a client with an upload token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    ApiKey(String),
    Token(UploadToken),
}

impl Caller {
    /// Whose `Idempotency-Key`s a request's key is among: the project's for its API keys, the
    /// token's own for a token, so that no caller is handed another's answer.
    pub fn idempotency_scope(&self, project_id: &str) -> String {
        match self {
            Caller::ApiKey(_) => project_id.to_owned(),
            Caller::Token(token) => format!("{project_id}#token#{}", token.hash),
        }
    }
}

/// The path's project and who calls on it ([`call`] starts here): 401 without a live key or
/// token, 403 without a grant for the project.
async fn caller(table: &Table, request: &Request) -> Result<(ProjectId, Caller), Error> {
    let project_id = project_id(request)?;
    match bearer(authorization(request))? {
        Bearer::ApiKey(key) => {
            let hash = key_hash(key);
            table.keys.authorize_hash(&hash, &project_id).await?;
            Ok((project_id, Caller::ApiKey(hash)))
        }
        Bearer::UploadToken(secret) => {
            let token = table.tokens.find(secret, timestamp::now()).await?;
            if token.project_id != *project_id {
                return Err(Refusal::outside_token().into());
            }
            if let Some(minted_by) = &token.minted_by
                && let Err(refused) = table.keys.authorize_hash(minted_by, &project_id).await
            {
                return Err(match refused {
                    Error::Refused(Refusal::Unauthorized(_) | Refusal::Forbidden(_)) => {
                        Refusal::Unauthorized(
                            "the API key that minted this upload token is revoked",
                        )
                        .into()
                    }
                    other => other,
                });
            }
            Ok((project_id, Caller::Token(token)))
        }
    }
}

/// A request on its route, from a caller the route admits.
#[derive(Debug)]
pub struct Call {
    pub route: &'static Route,
    pub project_id: ProjectId,
    pub caller: Caller,
    /// The path's file, on the routes that name one.
    pub file_id: Option<FileId>,
}

impl Call {
    /// The path's file: 404 on a route that names none.
    pub fn file_id(&self) -> Result<FileId, Error> {
        self.file_id.ok_or(Refusal::NotFound.into())
    }

    /// Whose `Idempotency-Key`s the request's key is among ([`Caller::idempotency_scope`]).
    pub fn idempotency_scope(&self) -> String {
        self.caller.idempotency_scope(&self.project_id)
    }
}

/// The route the request takes ([`routes::ROUTES`]) and who calls on it: 404 without a route
/// or with a malformed file id, 401 without a live key or token, 403 without a grant for the
/// project or when the route's [`Access`] does not admit the caller.
pub async fn call(table: &Table, request: &Request) -> Result<Call, Error> {
    let route = routes::find(request.method().as_str(), request.raw_http_path())
        .ok_or(Refusal::NotFound)?;
    let (project_id, caller) = caller(table, request).await?;
    let file_id = match route.path.contains("{file_id}") {
        true => Some(file_id(request)?),
        false => None,
    };
    match (route.access, &caller, file_id) {
        (_, Caller::ApiKey(_), _) | (Access::Token, Caller::Token(_), _) => {}
        (Access::TokenOfTheFile, Caller::Token(token), Some(file_id)) if token.created(file_id) => {
        }
        (Access::TokenOfTheFile, Caller::Token(_), _) => {
            return Err(Refusal::outside_token().into());
        }
        (Access::ApiKey, Caller::Token(_), _) => return Err(Refusal::not_for_tokens().into()),
    }
    Ok(Call {
        route,
        project_id,
        caller,
        file_id,
    })
}

/// The path's project: 404 for an id no key could grant.
pub fn project_id(request: &Request) -> Result<ProjectId, Error> {
    path_param(request, "project_id")
        .and_then(|id| ProjectId::parse(&id).ok())
        .ok_or(Refusal::NotFound.into())
}

/// A malformed file id names no file: 404, like any other unknown id.
pub fn file_id(request: &Request) -> Result<FileId, Error> {
    path_param(request, "file_id")
        .and_then(|id| id.parse().ok())
        .ok_or(Refusal::NotFound.into())
}

pub fn authorization(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
}

/// The JSON object in the body, holding only the route's `fields`; `None` for an empty body. 400
/// for anything but an object; 422 naming each field the route does not define (docs/API.md
/// v1.2, "Strict bodies").
pub fn json_object(
    request: &Request,
    fields: &[&str],
) -> Result<Option<Map<String, Value>>, Error> {
    let bytes: &[u8] = request.body().as_ref();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => {
            parse::known_fields(&map, fields)?;
            Ok(Some(map))
        }
        Ok(_) => Err(Refusal::BadRequest("the body must be a JSON object".into()).into()),
        Err(err) => Err(Refusal::BadRequest(format!("the body is not valid JSON: {err}")).into()),
    }
}

/// Like [`json_object`], for routes whose body is required.
pub fn required_json_object(
    request: &Request,
    fields: &[&str],
) -> Result<Map<String, Value>, Error> {
    json_object(request, fields)?
        .ok_or_else(|| Refusal::BadRequest("a JSON object body is required".into()))
        .map_err(Error::from)
}

/// Runs a Lambda HTTP function over `state`, what its `main` built at the cold start:
/// `handle` answers each request.
pub async fn run<S, H, Fut>(state: S, handle: H) -> Result<(), lambda_http::Error>
where
    H: Fn(std::sync::Arc<S>, Request) -> Fut,
    Fut: Future<Output = Response<Body>> + Send,
{
    let state = std::sync::Arc::new(state);
    lambda_http::run(lambda_http::service_fn(|request| {
        let response = handle(state.clone(), request);
        async move { Ok::<_, std::convert::Infallible>(response.await) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every refusal and failure gets a status and code the contract names together
    /// (docs/API.md: a row of its error tables, or "403 `quota_exceeded`" in its text), and
    /// every row of its error tables is some error's.
    #[test]
    fn each_error_answers_a_status_and_code_the_contract_lists() {
        fn pair<'a>(status: &str, code: &'a str) -> Option<(u16, &'a str)> {
            let status = status
                .parse()
                .ok()
                .filter(|status| (400..600).contains(status))?;
            let code = code.strip_prefix('`')?.split('`').next()?;
            let word = code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            word.then_some((status, code))
        }
        let contract = include_str!("../../../docs/API.md");
        let (mut rows, mut named) = (BTreeSet::new(), BTreeSet::new());
        for line in contract.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            rows.extend(cells.get(1..3).and_then(|cells| pair(cells[0], cells[1])));
            let words: Vec<&str> = line.split_whitespace().collect();
            named.extend(
                words
                    .windows(2)
                    .filter_map(|words| pair(words[0], words[1])),
            );
        }
        named.extend(&rows);
        let errors: Vec<Error> = vec![
            Refusal::BadRequest("not JSON".into()).into(),
            Refusal::Unauthorized("no key").into(),
            Refusal::no_grant().into(),
            Refusal::QuotaExceeded(Vec::new()).into(),
            Refusal::NotFound.into(),
            Refusal::NoWebhook.into(),
            Refusal::upload_expired().into(),
            Refusal::body_too_large(1).into(),
            Refusal::invalid("file_size", "too small").into(),
            Refusal::IdempotencyKeyReused.into(),
            Refusal::IdempotencyKeyInUse.into(),
            Failure::Internal("bug".into()).into(),
            Failure::Unavailable("timeout".into()).into(),
            Failure::MayHaveApplied("timeout".into()).into(),
        ];
        let answered: BTreeSet<(u16, &str)> = errors
            .iter()
            .map(|err| (status_of(err).as_u16(), crate::error::code(err)))
            .collect();
        assert!(answered.is_subset(&named), "{answered:?} beyond {named:?}");
        assert!(rows.is_subset(&answered), "{rows:?} beyond {answered:?}");
    }

    #[tokio::test]
    async fn a_route_that_panics_answers_the_contracts_500_and_the_next_request_is_served() {
        let panicked = serve(Request::default(), |_| async {
            let parts: Vec<u8> = Vec::new();
            Ok(Reply::ok(Value::from(parts[1])))
        })
        .await;

        assert_eq!(panicked.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let Body::Text(text) = panicked.body() else {
            panic!("a JSON body")
        };
        let body: Value = serde_json::from_str(text).unwrap();
        assert_eq!(body["error"]["code"], "internal");
        assert!(!text.contains("index out of bounds"), "{text}");
        let next = serve(Request::default(), |_| async { Ok(Reply::no_content()) }).await;
        assert_eq!(next.status(), StatusCode::NO_CONTENT);
    }

    /// What ships is built by `cargo lambda build --release`, which passes
    /// `--config profile.release.panic="abort"` unless the profile names a strategy: then a panic
    /// would end the sandbox, not answer the 500 above.
    #[test]
    fn the_shipped_profile_unwinds_panics() {
        let manifest = include_str!("../../../Cargo.toml");
        let release = manifest
            .split("\n[")
            .find(|section| section.starts_with("profile.release]"))
            .unwrap();
        assert!(
            release
                .lines()
                .any(|line| line.trim() == r#"panic = "unwind""#),
            "{release}"
        );
    }
}
