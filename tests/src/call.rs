//! One request to a function, as API Gateway would hand it over: the sample events of `events/`
//! as templates ([`Event`], [`Call`]), and the answer ([`ApiReply`]) read as the contract's
//! types, each accessor asserting the status that comes with it.

use lambda_http::{Body, Request, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::TestApi;
use crate::operations::as_function;
use crate::wire::{ApiErrorBody, File, FilePage, Plan, SignedParts, StoredParts};

const EVENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");

/// `events/<name>.json`, read as JSON.
pub(crate) fn sample_event(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{EVENTS_DIR}/{name}.json"))
        .unwrap_or_else(|err| panic!("events/{name}.json: {err}"));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("events/{name}.json: {err}"))
}

/// The record of `events/notify-stream.json` whose `eventName` is `event_name` (`MODIFY`: a
/// verification; `REMOVE`: a TTL expiry), as JSON for a test to shape.
pub fn sample_stream_record(event_name: &str) -> Value {
    sample_event("notify-stream")["Records"]
        .as_array()
        .and_then(|records| {
            records
                .iter()
                .find(|record| record["eventName"] == event_name)
        })
        .cloned()
        .unwrap_or_else(|| panic!("events/notify-stream.json has no {event_name} record"))
}

/// The sample events in `events/`, one per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Create,
    Complete,
    GetFile,
    ListFiles,
    Reupload,
    SignParts,
    ListParts,
    AbortUpload,
    DeleteFile,
    SetWebhook,
    GetWebhook,
    DeleteWebhook,
    MintToken,
    DirectUpload,
    Usage,
}

impl Event {
    pub const ALL: [Event; 15] = [
        Event::Create,
        Event::Complete,
        Event::GetFile,
        Event::ListFiles,
        Event::Reupload,
        Event::SignParts,
        Event::ListParts,
        Event::AbortUpload,
        Event::DeleteFile,
        Event::SetWebhook,
        Event::GetWebhook,
        Event::DeleteWebhook,
        Event::MintToken,
        Event::DirectUpload,
        Event::Usage,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            Event::Create => "presign",
            Event::Complete => "complete",
            Event::GetFile => "files-get",
            Event::ListFiles => "files-list",
            Event::Reupload => "reupload",
            Event::SignParts => "parts-sign",
            Event::ListParts => "parts-list",
            Event::AbortUpload => "upload-abort",
            Event::DeleteFile => "files-delete",
            Event::SetWebhook => "webhook-set",
            Event::GetWebhook => "webhook-get",
            Event::DeleteWebhook => "webhook-delete",
            Event::MintToken => "upload-tokens",
            Event::DirectUpload => "uploads",
            Event::Usage => "usage",
        }
    }

    /// The route in `template.yaml` that this event is a sample of.
    pub fn route_key(self) -> &'static str {
        match self {
            Event::Create => "POST /v1/projects/{project_id}/files",
            Event::Complete => "POST /v1/projects/{project_id}/files/{file_id}/complete",
            Event::GetFile => "GET /v1/projects/{project_id}/files/{file_id}",
            Event::ListFiles => "GET /v1/projects/{project_id}/files",
            Event::Reupload => "POST /v1/projects/{project_id}/files/{file_id}/reupload",
            Event::SignParts => "POST /v1/projects/{project_id}/files/{file_id}/parts",
            Event::ListParts => "GET /v1/projects/{project_id}/files/{file_id}/parts",
            Event::AbortUpload => "DELETE /v1/projects/{project_id}/files/{file_id}/upload",
            Event::DeleteFile => "DELETE /v1/projects/{project_id}/files/{file_id}",
            Event::SetWebhook => "PUT /v1/projects/{project_id}/webhook",
            Event::GetWebhook => "GET /v1/projects/{project_id}/webhook",
            Event::DeleteWebhook => "DELETE /v1/projects/{project_id}/webhook",
            Event::MintToken => "POST /v1/projects/{project_id}/upload-tokens",
            Event::DirectUpload => "POST /v1/projects/{project_id}/uploads",
            Event::Usage => "GET /v1/projects/{project_id}/usage",
        }
    }

    /// The function that serves the route: its directory under `functions/`.
    pub fn function(self) -> &'static str {
        match self {
            Event::Create => "presign",
            Event::Complete => "complete",
            Event::GetFile | Event::ListFiles | Event::DeleteFile | Event::Usage => "files",
            Event::SetWebhook | Event::GetWebhook | Event::DeleteWebhook => "webhooks",
            Event::Reupload | Event::SignParts | Event::ListParts | Event::AbortUpload => {
                "reupload"
            }
            Event::MintToken => "tokens",
            Event::DirectUpload => "direct",
        }
    }

    pub fn has_file_id(self) -> bool {
        !matches!(
            self,
            Event::Create
                | Event::ListFiles
                | Event::SetWebhook
                | Event::GetWebhook
                | Event::DeleteWebhook
                | Event::MintToken
                | Event::DirectUpload
                | Event::Usage
        )
    }
}

impl TestApi {
    /// A request built from `events/<event>.json` for this project, with this project's key.
    pub fn call(&self, event: Event) -> Call<'_> {
        Call {
            api: self,
            event,
            template: sample_event(event.file_name()),
            project: self.project.clone(),
            file_id: None,
            key: Some(self.key.clone()),
            body: None,
            binary: None,
            query: Vec::new(),
            headers: Vec::new(),
        }
    }
}

/// One request being prepared from a sample event.
pub struct Call<'a> {
    api: &'a TestApi,
    event: Event,
    template: Value,
    project: String,
    file_id: Option<String>,
    key: Option<String>,
    body: Option<String>,
    binary: Option<String>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

impl Call<'_> {
    pub fn project(mut self, project: &str) -> Self {
        self.project = project.to_owned();
        self
    }

    pub fn file(mut self, file_id: &str) -> Self {
        self.file_id = Some(file_id.to_owned());
        self
    }

    /// The Authorization header's key; `None` sends no header.
    pub fn key(mut self, key: Option<&str>) -> Self {
        self.key = key.map(str::to_owned);
        self
    }

    pub fn json(self, body: Value) -> Self {
        self.raw_body(&body.to_string())
    }

    pub fn raw_body(mut self, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self
    }

    /// A body API Gateway passes base64-encoded, as it does for bytes that are not text.
    pub fn binary_body(mut self, bytes: &[u8]) -> Self {
        use base64::Engine;
        self.binary = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        self
    }

    /// `form` as a `multipart/form-data` body (base64-encoded, as API Gateway passes bytes).
    pub fn form(self, form: &FormBody) -> Self {
        let (content_type, body) = form.encode();
        self.header("content-type", &content_type)
            .binary_body(&body)
    }

    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A request header, as API Gateway passes it: lowercased.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// The API Gateway HTTP API event, deserialized by `lambda_http` as Lambda would.
    pub fn request(&self) -> Request {
        let mut event = self.template.clone();
        let route_path = event["routeKey"]
            .as_str()
            .expect("routeKey")
            .split_once(' ')
            .expect("METHOD /path")
            .1
            .to_owned();
        let mut params = json!({ "project_id": self.project });
        let mut raw_path = route_path.replace("{project_id}", &self.project);
        if let Some(file_id) = &self.file_id {
            params["file_id"] = json!(file_id);
            raw_path = raw_path.replace("{file_id}", file_id);
        }
        event["pathParameters"] = params;
        event["rawPath"] = json!(raw_path);
        event["requestContext"]["http"]["path"] = json!(raw_path);
        event["requestContext"]["requestId"] = json!(uuid::Uuid::new_v4().to_string());
        let headers = event["headers"].as_object_mut().expect("headers");
        headers.remove("authorization");
        if let Some(key) = &self.key {
            headers.insert("authorization".into(), json!(format!("Bearer {key}")));
        }
        for (name, value) in &self.headers {
            headers.insert(name.clone(), json!(value));
        }
        if let Some(body) = &self.body {
            event["body"] = json!(body);
            event["isBase64Encoded"] = json!(false);
        }
        if let Some(encoded) = &self.binary {
            event["body"] = json!(encoded);
            event["isBase64Encoded"] = json!(true);
        }
        if !self.query.is_empty() {
            let query: serde_json::Map<String, Value> = self
                .query
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            event["rawQueryString"] = json!(
                self.query
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
            );
            event["queryStringParameters"] = Value::Object(query);
        }
        lambda_http::request::from_str(&event.to_string()).expect("lambda_http accepts the event")
    }

    pub async fn send(self) -> ApiReply {
        ApiReply::from(dispatch(self.api, self.event, self.request()).await)
    }
}

/// Hands `request` to the function that serves `event`'s route, as API Gateway would.
pub async fn dispatch(api: &TestApi, event: Event, request: Request) -> Response<Body> {
    let services = &api.services;
    let (table, config) = (&services.table, &services.config);
    let function = event.function();
    match function {
        "presign" => as_function(function, presign::handle(services, request)).await,
        "complete" => {
            let queue = &api.verify_queue;
            as_function(function, complete::handle(services, queue, request)).await
        }
        "files" => as_function(function, files::handle(services, request)).await,
        "webhooks" => as_function(function, webhooks::handle(table, config, request)).await,
        "reupload" => as_function(function, reupload::handle(services, request)).await,
        "tokens" => as_function(function, tokens::handle(table, config, request)).await,
        "direct" => as_function(function, direct::handle(services, request)).await,
        other => unreachable!("no function {other}"),
    }
}

/// A `multipart/form-data` body, part by part, as a browser's `FormData` sends it.
#[derive(Debug, Clone, Default)]
pub struct FormBody {
    parts: Vec<(String, Vec<u8>)>,
}

impl FormBody {
    const BOUNDARY: &'static str = "----kit7MA4YWxkTrZu0gW";

    pub fn new() -> Self {
        Self::default()
    }

    /// A `file` part named `file_name` of `content_type`.
    pub fn file(self, file_name: &str, content_type: &str, bytes: &[u8]) -> Self {
        self.part(
            &format!("name=\"file\"; filename=\"{file_name}\""),
            Some(content_type),
            bytes,
        )
    }

    /// A text field.
    pub fn text(self, name: &str, value: &str) -> Self {
        self.part(&format!("name=\"{name}\""), None, value.as_bytes())
    }

    /// A part with this `Content-Disposition` after `form-data; `.
    pub fn part(mut self, disposition: &str, content_type: Option<&str>, bytes: &[u8]) -> Self {
        let mut head = format!("Content-Disposition: form-data; {disposition}\r\n");
        if let Some(content_type) = content_type {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        self.parts.push((head, bytes.to_vec()));
        self
    }

    /// The `Content-Type` header and the body.
    pub fn encode(&self) -> (String, Vec<u8>) {
        let mut body = Vec::new();
        for (head, bytes) in &self.parts {
            body.extend_from_slice(format!("--{}\r\n{head}\r\n", Self::BOUNDARY).as_bytes());
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{}--\r\n", Self::BOUNDARY).as_bytes());
        (
            format!("multipart/form-data; boundary={}", Self::BOUNDARY),
            body,
        )
    }
}

/// A handler's response: status, request id header and JSON body. The accessors read the body
/// as the contract's types; `body` stays for the checks of the exact wire (a field absent, a
/// replay byte for byte).
#[derive(Debug)]
pub struct ApiReply {
    pub status: u16,
    pub request_id: Option<String>,
    /// Whether the answer is one kept for an `Idempotency-Key`, given again.
    pub replayed: bool,
    /// The `Retry-After` header, which a 503 carries.
    pub retry_after: Option<String>,
    pub body: Value,
}

impl From<Response<Body>> for ApiReply {
    fn from(response: Response<Body>) -> Self {
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let replayed = match response.headers().get("idempotent-replayed") {
            None => false,
            Some(value) => {
                assert_eq!(value, "true", "idempotent-replayed is true when present");
                true
            }
        };
        let bytes: &[u8] = response.body().as_ref();
        let body = if status == 204 {
            assert!(bytes.is_empty(), "a 204 has no body");
            assert!(response.headers().get("content-type").is_none());
            Value::Null
        } else {
            serde_json::from_slice(bytes).expect("every other response is JSON")
        };
        Self {
            status,
            request_id,
            replayed,
            retry_after,
            body,
        }
    }
}

impl ApiReply {
    /// The upload plan of a 201, as create and reupload answer.
    pub fn plan(&self) -> Plan {
        self.expect_status(201);
        self.json()
    }

    /// The file resource of a 200.
    pub fn file(&self) -> File {
        self.expect_status(200);
        self.json()
    }

    /// The page of a 200 to a listing.
    pub fn files(&self) -> FilePage {
        self.expect_status(200);
        self.json()
    }

    /// The stored parts of a 200 to `GET …/parts`.
    pub fn parts(&self) -> StoredParts {
        self.expect_status(200);
        self.json()
    }

    /// The fresh URLs of a 200 to `POST …/parts`.
    pub fn signed(&self) -> SignedParts {
        self.expect_status(200);
        self.json()
    }

    /// The error body of a 4xx or 5xx, whose `request_id` is the `x-request-id` header's.
    pub fn error(&self) -> ApiErrorBody {
        assert!(
            (400..600).contains(&self.status),
            "expected an error, got {}: {:#}",
            self.status,
            self.body
        );
        let body: ApiErrorBody = self.json();
        assert_eq!(
            self.request_id.as_deref(),
            Some(body.request_id.as_str()),
            "the body repeats the x-request-id header"
        );
        body
    }

    /// The error body of a 409 `conflict`, whose details say why.
    pub fn conflict(&self) -> ApiErrorBody {
        self.expect_error(409, "conflict")
    }

    /// The error body of a `status` with `code` and a message, in the contract's shape.
    pub fn expect_error(&self, status: u16, code: &str) -> ApiErrorBody {
        self.expect_status(status);
        let body = self.error();
        assert_eq!(body.error.code, code, "{:#}", self.body);
        assert!(!body.error.message.is_empty(), "{:#}", self.body);
        body
    }

    pub fn error_code(&self) -> String {
        self.error().error.code
    }

    /// The `field` of every detail of the error body.
    pub fn error_fields(&self) -> Vec<String> {
        self.error().fields()
    }

    /// The body read as `T`, whatever the status.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.body.clone()).unwrap_or_else(|err| {
            panic!(
                "the body is not a {}: {err}\n{:#}",
                std::any::type_name::<T>(),
                self.body
            )
        })
    }

    fn expect_status(&self, status: u16) {
        assert_eq!(self.status, status, "{:#}", self.body);
    }
}
