//! Test support: real DynamoDB Local and LocalStack (started by `scripts/test`), the sample
//! events of `events/` as request templates, and small helpers to drive the API like a client.

use std::sync::OnceLock;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use shared::app::Services;
use shared::aws;
use shared::config::Config;
use shared::dynamo::item::{self, Item};

pub mod mocks;
pub mod operations;

use operations::{OperationLog, as_function};
pub use serde_json;

const EVENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");

/// The table and bucket this test process uses, created once.
static RESOURCES: OnceLock<(String, String)> = OnceLock::new();

pub async fn sdk_config() -> SdkConfig {
    for variable in ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"] {
        assert!(
            std::env::var_os(variable).is_some(),
            "{variable} is not set: run the tests with scripts/test, which starts DynamoDB Local and LocalStack"
        );
    }
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

fn resources() -> (String, String) {
    RESOURCES
        .get_or_init(|| {
            // A runtime of its own: clients must not outlive the runtime that made them.
            std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    let suffix = uuid::Uuid::new_v4().simple().to_string();
                    let (table, bucket) = (format!("files-{suffix}"), format!("uploads-{suffix}"));
                    let sdk = sdk_config().await;
                    shared::dynamo::provision::create_table(
                        &aws_sdk_dynamodb::Client::new(&sdk),
                        &table,
                    )
                    .await
                    .expect("create table");
                    let s3 = aws_sdk_s3::Client::from_conf(aws::s3_config(&sdk, true));
                    shared::s3::provision::create_bucket(&s3, &bucket, &["*".to_owned()])
                        .await
                        .expect("create bucket");
                    (table, bucket)
                })
            })
            .join()
            .expect("creating the test table and bucket")
        })
        .clone()
}

/// A project of its own with a key for it, and the services the functions would build.
pub struct TestApi {
    pub services: Services,
    pub project: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl TestApi {
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    /// Like [`TestApi::new`], with deployment settings changed by `adjust`.
    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> Self {
        let (table, bucket) = resources();
        let mut config = Config::from_lookup(|name| match name {
            "TABLE_NAME" => Some(table.clone()),
            "BUCKET_NAME" => Some(bucket.clone()),
            "S3_FORCE_PATH_STYLE" => Some("true".into()),
            _ => None,
        })
        .expect("test config");
        adjust(&mut config);
        let services = Services::with_interceptor(config, &sdk_config().await, OperationLog);
        let project = format!("p-{}", uuid::Uuid::new_v4().simple());
        let key = services
            .keys
            .mint(std::slice::from_ref(&project), "tests")
            .await
            .expect("mint key");
        Self {
            services,
            project,
            key,
            http: reqwest::Client::new(),
        }
    }

    /// A request built from `events/<event>.json` for this project, with this project's key.
    pub fn call(&self, event: Event) -> Call<'_> {
        let text = std::fs::read_to_string(format!("{EVENTS_DIR}/{}.json", event.file_name()))
            .unwrap_or_else(|err| panic!("events/{}.json: {err}", event.file_name()));
        let template: Value = serde_json::from_str(&text).expect("sample event is JSON");
        Call {
            api: self,
            event,
            template,
            project: self.project.clone(),
            file_id: None,
            key: Some(self.key.clone()),
            body: None,
            binary: None,
            query: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub async fn create(&self, body: Value) -> ApiReply {
        self.call(Event::Create).json(body).send().await
    }

    pub async fn complete(&self, file_id: &str) -> ApiReply {
        self.call(Event::Complete).file(file_id).send().await
    }

    pub async fn get(&self, file_id: &str) -> ApiReply {
        self.call(Event::GetFile).file(file_id).send().await
    }

    pub async fn reupload(&self, file_id: &str, body: Value) -> ApiReply {
        self.call(Event::Reupload)
            .file(file_id)
            .json(body)
            .send()
            .await
    }

    pub async fn sign_parts(&self, file_id: &str, part_numbers: &[u32]) -> ApiReply {
        self.call(Event::SignParts)
            .file(file_id)
            .json(json!({ "part_numbers": part_numbers }))
            .send()
            .await
    }

    pub async fn list_parts(&self, file_id: &str) -> ApiReply {
        self.call(Event::ListParts).file(file_id).send().await
    }

    pub async fn abort(&self, file_id: &str) -> ApiReply {
        self.call(Event::AbortUpload).file(file_id).send().await
    }

    /// The file as the store holds it.
    pub async fn record(&self, file_id: &str) -> shared::domain::FileRecord {
        let file_id = file_id.parse().expect("file id");
        self.services
            .files
            .get(file_id)
            .await
            .expect("GetItem")
            .expect("the file exists")
    }

    /// Settles the file's current job as verified, as the verify trigger does once it has
    /// checked the stored object.
    pub async fn settle_verified(&self, file_id: &str) {
        let record = self.record(file_id).await;
        let job = record.job.clone().expect("a job");
        let verdict = shared::domain::Verdict::Verified { s3_key: job.s3_key };
        let now = shared::domain::timestamp::now();
        let settled = self
            .services
            .files
            .update(record, |file| {
                file.settle(job.job_id, verdict.clone(), now).map(Some)
            })
            .await
            .unwrap();
        assert!(
            matches!(settled, shared::dynamo::Update::Applied { .. }),
            "{settled:?}"
        );
    }

    /// `events/<sample>.json`, an S3 notification, for `key` in this test's bucket.
    pub fn s3_event(&self, sample: &str, key: &str) -> aws_lambda_events::s3::S3Event {
        let text = std::fs::read_to_string(format!("{EVENTS_DIR}/{sample}.json"))
            .expect("sample S3 event");
        let mut event: Value = serde_json::from_str(&text).expect("sample is JSON");
        let record = &mut event["Records"][0]["s3"];
        record["bucket"]["name"] = json!(self.services.objects.bucket());
        record["bucket"]["arn"] = json!(format!("arn:aws:s3:::{}", self.services.objects.bucket()));
        record["object"]["key"] = json!(key.replace(' ', "+"));
        serde_json::from_value(event).expect("aws_lambda_events reads the sample")
    }

    /// Delivers an `ObjectCreated:Put` event for `key` to the verify function.
    pub async fn deliver(&self, key: &str) -> verify::Outcome {
        let mut outcomes = self
            .verify(self.s3_event("s3-put", key))
            .await
            .expect("verify succeeds");
        assert_eq!(outcomes.len(), 1);
        outcomes.remove(0)
    }

    /// Hands `event` to the verify function, as S3's notification does.
    pub async fn verify(
        &self,
        event: aws_lambda_events::s3::S3Event,
    ) -> Result<Vec<verify::Outcome>, shared::domain::ApiError> {
        as_function("verify", verify::handle(&self.services, event)).await
    }

    /// The bytes behind the file's download URL.
    pub async fn download(&self, file_id: &str) -> Vec<u8> {
        let file = self.get(file_id).await.body;
        let url = file["download_url"]
            .as_str()
            .expect("a download URL")
            .to_owned();
        let response = self.http.get(url).send().await.expect("storage answers");
        response.bytes().await.expect("the body").to_vec()
    }

    /// The bytes of the object at `key`.
    pub async fn stored_bytes(&self, key: &str) -> Vec<u8> {
        let object = self
            .services
            .objects
            .client()
            .get_object()
            .bucket(self.services.objects.bucket())
            .key(key)
            .send()
            .await
            .expect("GetObject");
        object
            .body
            .collect()
            .await
            .expect("object body")
            .into_bytes()
            .to_vec()
    }

    /// PUTs `bytes` to the plan's URL for part `index` with the plan's signed headers.
    pub async fn put(&self, plan: &Value, index: usize, bytes: Vec<u8>) -> reqwest::Response {
        let url = plan["urls"][index].as_str().expect("plan has the url");
        self.put_to(url, plan, bytes).await
    }

    pub async fn put_to(&self, url: &str, plan: &Value, bytes: Vec<u8>) -> reqwest::Response {
        let mut request = self.http.put(url).body(bytes);
        for (name, value) in plan["headers"].as_object().expect("plan has headers") {
            request = request.header(name, value.as_str().expect("header values are strings"));
        }
        request.send().await.expect("storage answers")
    }

    /// The raw table item of a file, to check that a failed request changed nothing.
    pub async fn raw_item(&self, file_id: &str) -> Option<Item> {
        let file_id = file_id.parse().expect("file id");
        self.services
            .files
            .client()
            .get_item()
            .table_name(self.services.files.table())
            .set_key(Some(item::file_key(file_id)))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem")
            .item
    }

    /// How many files the project has in the table.
    pub async fn file_count(&self) -> usize {
        let output = self
            .services
            .files
            .client()
            .query()
            .table_name(self.services.files.table())
            .index_name(item::BY_PROJECT_INDEX)
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", AttributeValue::S(item::project_pk(&self.project)))
            .send()
            .await
            .expect("Query");
        output.items().len()
    }

    /// The keys of every object stored under a file's prefix.
    pub async fn stored_objects(&self, file_id: &str) -> Vec<String> {
        let output = self
            .services
            .objects
            .client()
            .list_objects_v2()
            .bucket(self.services.objects.bucket())
            .prefix(format!("{}{file_id}/", shared::domain::ids::UPLOAD_PREFIX))
            .send()
            .await
            .expect("ListObjectsV2");
        output
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }
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
}

impl Event {
    pub const ALL: [Event; 8] = [
        Event::Create,
        Event::Complete,
        Event::GetFile,
        Event::ListFiles,
        Event::Reupload,
        Event::SignParts,
        Event::ListParts,
        Event::AbortUpload,
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
        }
    }

    pub fn has_file_id(self) -> bool {
        !matches!(self, Event::Create | Event::ListFiles)
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
        ApiReply::from(dispatch(&self.api.services, self.event, self.request()).await)
    }
}

/// Hands `request` to the function that serves `event`'s route, as API Gateway would.
pub async fn dispatch(services: &Services, event: Event, request: Request) -> Response<Body> {
    match event {
        Event::Create => as_function("presign", presign::handle(services, request)).await,
        Event::Complete => as_function("complete", complete::handle(services, request)).await,
        Event::GetFile | Event::ListFiles => {
            as_function("files", files::handle(services, request)).await
        }
        Event::Reupload | Event::SignParts | Event::ListParts | Event::AbortUpload => {
            as_function("reupload", reupload::handle(services, request)).await
        }
    }
}

/// A handler's response: status, request id header and JSON body.
#[derive(Debug)]
pub struct ApiReply {
    pub status: u16,
    pub request_id: Option<String>,
    /// Whether the answer is one kept for an `Idempotency-Key`, given again.
    pub replayed: bool,
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
        let replayed = match response.headers().get("idempotent-replayed") {
            None => false,
            Some(value) => {
                assert_eq!(value, "true", "idempotent-replayed is true when present");
                true
            }
        };
        let body =
            serde_json::from_slice(response.body().as_ref()).expect("every response is JSON");
        Self {
            status,
            request_id,
            replayed,
            body,
        }
    }
}

impl ApiReply {
    /// The `field` of every detail of an error body.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["error"]["details"]
            .as_array()
            .map(|details| {
                details
                    .iter()
                    .filter_map(|d| d["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn file_id(&self) -> String {
        self.body["file_id"]
            .as_str()
            .expect("body has file_id")
            .to_owned()
    }
}

/// A create body declaring `bytes` as `file_name` of `content_type`, with their SHA-256 and MD5
/// when asked.
pub fn declaration(
    file_name: &str,
    content_type: &str,
    bytes: &[u8],
    sha256: bool,
    md5: bool,
) -> Value {
    let (sha256_digest, md5_digest) = digests(bytes);
    let mut body =
        json!({"file_name": file_name, "file_size": bytes.len(), "content_type": content_type});
    if sha256 {
        body["sha256"] = json!(sha256_digest);
    }
    if md5 {
        body["md5"] = json!(md5_digest);
    }
    body
}

/// Base64 SHA-256 and MD5 of `bytes`, as the API expects them.
pub fn digests(bytes: &[u8]) -> (String, String) {
    use base64::Engine;
    use sha2::Digest;
    let b64 = base64::engine::general_purpose::STANDARD;
    (
        b64.encode(sha2::Sha256::digest(bytes)),
        b64.encode(md5::Md5::digest(bytes)),
    )
}
