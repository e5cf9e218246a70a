//! Test support without servers: the functions' services over SDK clients whose every call is
//! answered by [`aws_smithy_mocks`] rules, for the failures DynamoDB Local and LocalStack cannot
//! be made to produce (throttling, 5xx, refusals that carry the item, uploads S3 has forgotten).
//!
//! - Failures are answered as the services put them on the wire ([`dynamodb_error`],
//!   [`s3_error`], [`s3_head_error`]), so the SDK's own deserializers and retry classifiers see
//!   what they would see in production.
//! - The clients are configured as the functions configure theirs ([`Table::new`], [`Storage::new`],
//!   [`shared::aws::s3_config`], the standard retry mode of `aws-config` with its 3 attempts),
//!   except that they wait only a millisecond between attempts.
//! - A call that no rule answers panics: nothing here reaches the network.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::retry::RetryPartition;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::operation::upload_part::UploadPartOutput;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use base64::Engine;
use sha2::Digest;
use shared::app::Services;
use shared::app::services::{Storage, Table};
use shared::app::verify_queue::VerifyQueue;
use shared::config::Config;
use shared::domain::ids::ObjectKey;
use shared::domain::values::{FileName, MediaType, Metadata};
use shared::domain::webhook::WebhookConfig;
use shared::domain::{ContentDeclaration, FileId, FileRecord, JobId, UploadJob};
use shared::dynamo::item::{self, Item};

use crate::TestApi;
use crate::app::NO_QUEUE;
use crate::operations::OperationLog;

pub const TABLE: &str = "files-mocked";
pub const BUCKET: &str = "uploads-mocked";
/// The project of every mocked API: each has clients and a key of its own, so they share nothing.
pub const PROJECT: &str = "p1";
/// The region the clients sign for; nothing is sent there.
const REGION: &str = "eu-west-1";

impl TestApi {
    /// Like [`TestApi::new`], over clients that answer only from `dynamodb` and `s3` rules (and
    /// the lookup of this API's key, which every route makes first).
    pub fn mocked(dynamodb: &[&Rule], s3: &[&Rule]) -> Self {
        let config = Config::from_lookup(|name| match name {
            "TABLE_NAME" => Some(TABLE.into()),
            "BUCKET_NAME" => Some(BUCKET.into()),
            _ => None,
        })
        .expect("mocked config");
        let key = new_api_key();
        let key_lookup = key_lookup(&key, PROJECT);
        let presigning = presigning_rules();

        let sdk = sdk_config();
        // Each client retries from a quota of its own: the SDK shares one per partition name
        // across the process, and tests that exhaust it would change each other's attempts.
        let partition = || RetryPartition::new(format!("mocked-{}", uuid::Uuid::new_v4()));
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(&sdk)
            .retry_partition(partition())
            .interceptor(OperationLog)
            .interceptor(answering(dynamodb.iter().copied().chain([&key_lookup])))
            .build();
        let s3 = shared::aws::s3_config(&sdk, config.s3_force_path_style)
            .to_builder()
            .retry_partition(partition())
            .interceptor(OperationLog)
            .interceptor(answering(s3.iter().copied().chain(&presigning)))
            .build();
        let services = Services {
            table: Table::new(
                aws_sdk_dynamodb::Client::from_conf(dynamodb),
                &config.table_name,
            ),
            storage: Storage::new(
                aws_sdk_s3::Client::from_conf(s3),
                BUCKET,
                sdk.credentials_provider(),
            ),
            config,
        };
        Self {
            services,
            verify_queue: VerifyQueue::new(sqs_client(&[]), NO_QUEUE),
            project: PROJECT.to_owned(),
            key,
            http: reqwest::Client::new(),
        }
    }
}

/// An SQS client answering only from `rules` (a queue the functions delay retries on).
pub fn sqs_client(rules: &[&Rule]) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(&sdk_config())
        .interceptor(OperationLog)
        .interceptor(answering(rules.iter().copied()))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// An EventBridge client answering only from `rules` (the bus notify publishes to).
pub fn eventbridge_client(rules: &[&Rule]) -> aws_sdk_eventbridge::Client {
    let config = aws_sdk_eventbridge::config::Builder::from(&sdk_config())
        .interceptor(OperationLog)
        .interceptor(answering(rules.iter().copied()))
        .build();
    aws_sdk_eventbridge::Client::from_conf(config)
}

/// What the clients share with the functions' `aws_config::defaults`: behavior version and the
/// standard retry mode, with a region and static credentials instead of the environment's.
fn sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDMOCKED",
            "mocked-secret",
            None,
            None,
            "mocks",
        )))
        .retry_config(RetryConfig::standard().with_initial_backoff(Duration::from_millis(1)))
        .http_client(create_mock_http_client())
        .build()
}

/// An interceptor answering each call from the first of `rules` that matches it; a call that
/// none matches panics.
fn answering<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> MockResponseInterceptor {
    rules.into_iter().fold(
        MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny),
        MockResponseInterceptor::with_rule,
    )
}

/// A well-formed key, random like those `ApiKeys::mint` makes.
fn new_api_key() -> String {
    let secret = [
        uuid::Uuid::new_v4().into_bytes(),
        uuid::Uuid::new_v4().into_bytes(),
    ]
    .concat();
    format!(
        "upk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    )
}

/// GetItem of the item of `key` answers it, granting `project`, as `ApiKeys::mint` wrote it.
fn key_lookup(key: &str, project: &str) -> Rule {
    let hash: String = sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let pk = AttributeValue::S(item::api_key_pk(&hash));
    let found = Item::from([
        (item::PK.to_owned(), pk.clone()),
        (item::SK.to_owned(), item::s(item::API_KEY_SK)),
        (
            "projects".to_owned(),
            AttributeValue::Ss(vec![project.to_owned()]),
        ),
        ("label".to_owned(), item::s("mocks")),
    ]);
    mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(move |get| get.key().and_then(|key| key.get(item::PK)) == Some(&pk))
        .then_output(move || {
            GetItemOutput::builder()
                .set_item(Some(found.clone()))
                .build()
        })
}

/// Presigning runs the client's interceptors up to signing, so the mock sees the requests of
/// every URL the functions sign; these rules let them through. Nothing is sent for them: the
/// functions never send a PutObject or an UploadPart, and their GetObject reads set no
/// `response-content-disposition`, so a real call of these is still answered by no rule.
fn presigning_rules() -> [Rule; 3] {
    [
        mock!(aws_sdk_s3::Client::put_object).then_output(|| PutObjectOutput::builder().build()),
        mock!(aws_sdk_s3::Client::upload_part).then_output(|| UploadPartOutput::builder().build()),
        mock!(aws_sdk_s3::Client::get_object)
            .match_requests(|get| get.response_content_disposition().is_some())
            .then_output(|| GetObjectOutput::builder().build()),
    ]
}

/// A DynamoDB error as DynamoDB sends it: `status` and a JSON body naming the error type.
pub fn dynamodb_error(status: u16, code: &str) -> HttpResponse {
    let body = serde_json::json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"),
        "message": format!("mocked {code}"),
    });
    let mut response = HttpResponse::new(status_code(status), SdkBody::from(body.to_string()));
    let headers = response.headers_mut();
    headers.insert("content-type", "application/x-amz-json-1.0");
    headers.insert("x-amzn-requestid", "MOCKED");
    response
}

/// An EventBridge error as EventBridge sends it: `status` and a JSON body naming the error type.
pub fn eventbridge_error(status: u16, code: &str) -> HttpResponse {
    let body = serde_json::json!({"__type": code, "message": format!("mocked {code}")});
    let mut response = HttpResponse::new(status_code(status), SdkBody::from(body.to_string()));
    let headers = response.headers_mut();
    headers.insert("content-type", "application/x-amz-json-1.1");
    headers.insert("x-amzn-requestid", "MOCKED");
    response
}

/// An S3 error as S3 sends it: `status` and an XML body with the code.
pub fn s3_error(status: u16, code: &str) -> HttpResponse {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>mocked {code}</Message><RequestId>MOCKED</RequestId></Error>"
    );
    let mut response = s3_head_error(status);
    *response.body_mut() = SdkBody::from(body);
    response
        .headers_mut()
        .insert("content-type", "application/xml");
    response
}

/// An S3 error answering a HEAD request: S3 sends the status alone, without a body.
pub fn s3_head_error(status: u16) -> HttpResponse {
    let mut response = HttpResponse::new(status_code(status), SdkBody::empty());
    response.headers_mut().insert("x-amz-request-id", "MOCKED");
    response
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::try_from(status).expect("an HTTP status")
}

/// A file of [`PROJECT`] awaiting the bytes of its current job: one PUT of `file_size` bytes of
/// text, or with `upload_id` a multipart upload of parts of 5 MiB.
pub fn pending_file(file_size: u64, upload_id: Option<&str>) -> FileRecord {
    let (file_id, job_id) = (FileId::random(), JobId::random());
    let now = shared::domain::timestamp::now();
    let part_size = if upload_id.is_some() {
        5 << 20
    } else {
        file_size
    };
    let content = ContentDeclaration {
        file_name: FileName::parse("notes.txt").expect("a file name"),
        content_type: MediaType::parse("text/plain").expect("a media type"),
        file_size,
        sha256: None,
        md5: None,
    };
    let job = UploadJob {
        job_id,
        s3_key: ObjectKey::new(file_id, job_id).to_string(),
        upload_id: upload_id.map(str::to_owned),
        part_size,
        part_count: u32::try_from(file_size.div_ceil(part_size)).expect("part count"),
        expires_at: now + Duration::from_secs(900),
        headers: Default::default(),
        part_checksums: false,
        checkpoint: None,
    };
    FileRecord::declare(
        file_id,
        PROJECT.to_owned(),
        content,
        Metadata::default(),
        job,
        now,
        Duration::from_secs(7 * 24 * 3600),
    )
}

/// Whether the key of a GetItem is that of the item of `file_id`.
pub fn keys_file(key: Option<&Item>, file_id: FileId) -> bool {
    key == Some(&item::file_key(file_id))
}

/// Whether `item` (a key, or a whole item) is a claim on assembling an upload.
pub fn is_assembly_claim(item: Option<&Item>) -> bool {
    item.and_then(|item| item.get(item::SK))
        .and_then(|sk| sk.as_s().ok())
        .is_some_and(|sk| sk.starts_with("ASSEMBLY#"))
}

/// PutItem of any claim on assembling an upload takes it: nobody else is assembling.
pub fn assembly_unclaimed() -> Rule {
    mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|put| is_assembly_claim(put.item()))
        .then_output(|| aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build())
}

/// GetItem of `record`'s file answers its item.
pub fn file_lookup(record: &FileRecord) -> Rule {
    let (file_id, found) = (record.file_id, Item::from(record));
    mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(move |get| keys_file(get.key(), file_id))
        .then_output(move || {
            GetItemOutput::builder()
                .set_item(Some(found.clone()))
                .build()
        })
}

/// GetItem of `project_id`'s webhook answers `webhook`'s item, or none.
pub fn webhook_lookup(project_id: &str, webhook: Option<&WebhookConfig>) -> Rule {
    let key = item::webhook_key(project_id);
    let found = webhook.map(Item::from);
    mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(move |get| get.key() == Some(&key))
        .then_output(move || GetItemOutput::builder().set_item(found.clone()).build())
}

/// DynamoDB's cancellation of a transaction of `items` writes whose `refused`th failed its
/// condition, carrying `item` (what a write that asks for the item as it is gets).
pub fn transaction_refused(
    items: usize,
    refused: usize,
    item: Option<Item>,
) -> aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError {
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    let reasons = (0..items)
        .map(|index| {
            if index == refused {
                CancellationReason::builder()
                    .code("ConditionalCheckFailed")
                    .message("The conditional request failed")
                    .set_item(item.clone())
                    .build()
            } else {
                CancellationReason::builder().code("None").build()
            }
        })
        .collect();
    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
        TransactionCanceledException::builder()
            .message("Transaction cancelled, please refer cancellation reasons for specific reasons")
            .set_cancellation_reasons(Some(reasons))
            .build(),
    )
}

/// The file a transaction writes (its first write, a Put), if it writes one.
pub fn transaction_file(
    input: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput,
) -> Option<FileRecord> {
    let put = input.transact_items().first()?.put.as_ref()?;
    FileRecord::try_from(&put.item).ok()
}

/// Whether the transaction removes a file (its first write, a Delete of one).
pub fn transaction_removes_file(
    input: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput,
) -> bool {
    input
        .transact_items()
        .first()
        .and_then(|write| write.delete.as_ref())
        .and_then(|delete| delete.key.get(item::PK))
        .and_then(|pk| pk.as_s().ok())
        .is_some_and(|pk| pk.starts_with("FILE#"))
}

/// A transaction's success.
pub fn transaction_applied()
-> aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput {
    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput::builder().build()
}
