//! [`TestApi`]: a project of its own on the tests' table and bucket, with a method per route
//! and per step of the verify trigger, so that a test reads as the story it checks.

use std::sync::OnceLock;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use serde_json::{Value, json};
use shared::app::Services;
use shared::app::services::Endpoints;
use shared::app::verify_queue::VerifyQueue;
use shared::aws;
use shared::config::Config;

use crate::call::{ApiReply, Event, sample_event};
use crate::event_source::QueueSource;
use crate::faults::FaultProxy;
use crate::operations::{OperationLog, as_function};

/// The queue of a test that set no `VERIFY_QUEUE_URL`: there is none, and what is sent to it
/// fails.
pub const NO_QUEUE: &str = "http://127.0.0.1:9/000000000000/no-verify-queue";

/// The table and bucket this test process uses, created once.
static RESOURCES: OnceLock<(String, String)> = OnceLock::new();

/// The SDK configuration of the local servers that `scripts/test` starts.
pub async fn sdk_config() -> SdkConfig {
    for variable in ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"] {
        assert!(
            std::env::var_os(variable).is_some(),
            "{variable} is not set: run the tests with scripts/test, which starts DynamoDB Local and LocalStack"
        );
    }
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// A queue of its own in LocalStack, for verify's steps; its URL.
pub async fn verify_queue_url() -> String {
    queue_of_its_own("verify").await
}

/// A queue of the test's own in LocalStack, named after `purpose`; its URL.
pub async fn queue_of_its_own(purpose: &str) -> String {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let name = format!("{purpose}-{}", uuid::Uuid::new_v4().simple());
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("a queue URL")
}

/// The functions' configuration over `table` and `bucket` of the local servers.
pub fn config(table: &str, bucket: &str) -> Config {
    Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(table.to_owned()),
        "BUCKET_NAME" => Some(bucket.to_owned()),
        "S3_FORCE_PATH_STYLE" => Some("true".into()),
        // The tests' webhook receivers listen on loopback; a failed delivery comes back in 1 s.
        "WEBHOOK_ALLOW_LOOPBACK" => Some("true".into()),
        "WEBHOOK_RETRY_BASE_SECS" => Some("1".into()),
        // DynamoDB Local on two shared cores applies racing transactions on one item one after
        // another, slower than AWS by far: past the 2 s production deadline when a test races
        // 32 creates against a quota while other tests run. The deadline itself is held by the
        // fault tests (`behind_proxies`), which cross it on purpose.
        "DEPENDENCY_TIMEOUT_MS" => Some("10000".into()),
        _ => None,
    })
    .expect("test config")
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

/// What one [`TestApi::pump_verify_queue`] did.
#[derive(Debug)]
pub struct Pumped {
    /// Messages handed to verify.
    pub handed: usize,
    /// The receipt handles of those verify reported failed, left in the queue.
    pub failed: Vec<String>,
}

/// The servers behind a [`TestApi::behind_proxies`], each through a proxy a test can make fail.
pub struct Dependencies {
    pub dynamodb: FaultProxy,
    pub s3: FaultProxy,
}

/// A project of its own with a key for it, and the services the functions would build.
pub struct TestApi {
    pub services: Services,
    /// Verify's queue, as complete and verify have it: the configured `VERIFY_QUEUE_URL`, or
    /// [`NO_QUEUE`].
    pub verify_queue: VerifyQueue,
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
        Self::build(adjust, &Endpoints::default()).await
    }

    /// Like [`TestApi::new`], with the functions reaching DynamoDB and S3 through fault
    /// proxies, and each of their calls bounded by `deadline` (`DEPENDENCY_TIMEOUT_MS`).
    pub async fn behind_proxies(deadline: Duration) -> (Self, Dependencies) {
        let endpoint = |variable| std::env::var(variable).expect("scripts/test sets it");
        let dependencies = Dependencies {
            dynamodb: FaultProxy::start(&endpoint("AWS_ENDPOINT_URL_DYNAMODB")).await,
            s3: FaultProxy::start(&endpoint("AWS_ENDPOINT_URL_S3")).await,
        };
        let endpoints = Endpoints {
            dynamodb: Some(dependencies.dynamodb.url().to_owned()),
            s3: Some(dependencies.s3.url().to_owned()),
        };
        let api = Self::build(|config| config.dependency_timeout = deadline, &endpoints).await;
        (api, dependencies)
    }

    async fn build(adjust: impl FnOnce(&mut Config), endpoints: &Endpoints) -> Self {
        let (table, bucket) = resources();
        let mut config = config(&table, &bucket);
        adjust(&mut config);
        let sdk = sdk_config().await;
        let queue_url = config.verify_queue_url.clone();
        let services = Services::with_interceptor(config, &sdk, OperationLog, endpoints).unwrap();
        let sqs = aws_sdk_sqs::config::Builder::from(&sdk)
            .timeout_config(aws::timeouts(services.config.dependency_timeout))
            .interceptor(OperationLog)
            .build();
        let verify_queue = VerifyQueue::new(
            aws_sdk_sqs::Client::from_conf(sqs),
            queue_url.as_deref().unwrap_or(NO_QUEUE),
        );
        let project = format!("p-{}", uuid::Uuid::new_v4().simple());
        let key = services
            .table
            .keys
            .mint(std::slice::from_ref(&project), "tests")
            .await
            .expect("mint key");
        Self {
            services,
            verify_queue,
            project,
            key,
            http: reqwest::Client::new(),
        }
    }

    /// `POST …/files`: declares a file; [`ApiReply::plan`] is its upload plan.
    pub async fn create(&self, body: Value) -> ApiReply {
        self.call(Event::Create).json(body).send().await
    }

    /// `POST …/complete` without a body: the service lists the parts itself.
    pub async fn complete(&self, file_id: &str) -> ApiReply {
        self.call(Event::Complete).file(file_id).send().await
    }

    /// `POST …/complete` with `body` (`job_id`, `parts`).
    pub async fn complete_with(&self, file_id: &str, body: Value) -> ApiReply {
        self.call(Event::Complete)
            .file(file_id)
            .json(body)
            .send()
            .await
    }

    pub async fn get(&self, file_id: &str) -> ApiReply {
        self.call(Event::GetFile).file(file_id).send().await
    }

    /// `GET …/files` with the query parameters `query`.
    pub async fn list(&self, query: &[(&str, &str)]) -> ApiReply {
        query
            .iter()
            .fold(self.call(Event::ListFiles), |call, (name, value)| {
                call.query(name, value)
            })
            .send()
            .await
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

    /// `POST …/uploads` with `form`, with the project's API key.
    pub async fn direct_upload(&self, form: &crate::FormBody) -> ApiReply {
        self.call(Event::DirectUpload).form(form).send().await
    }

    /// `POST …/upload-tokens` with `body`, with the project's API key.
    pub async fn mint_token(&self, body: Value) -> ApiReply {
        self.call(Event::MintToken).json(body).send().await
    }

    /// A token minted with `body`, for the calls that [`Call::key`] makes with it.
    pub async fn token(&self, body: Value) -> String {
        let reply = self.mint_token(body).await;
        assert_eq!(reply.status, 201, "{:#}", reply.body);
        reply.json::<crate::MintedToken>().token
    }

    /// `DELETE …/files/{file_id}`.
    pub async fn delete(&self, file_id: &str) -> ApiReply {
        self.call(Event::DeleteFile).file(file_id).send().await
    }

    /// `PUT …/webhook` with `body`.
    pub async fn set_webhook(&self, body: Value) -> ApiReply {
        self.call(Event::SetWebhook).json(body).send().await
    }

    pub async fn get_webhook(&self) -> ApiReply {
        self.call(Event::GetWebhook).send().await
    }

    pub async fn delete_webhook(&self) -> ApiReply {
        self.call(Event::DeleteWebhook).send().await
    }

    /// The file as the store holds it.
    pub async fn record(&self, file_id: &str) -> shared::domain::FileRecord {
        let file_id = file_id.parse().expect("file id");
        self.services
            .table
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
            .table
            .files
            .update(record, |file| {
                file.settle(
                    job.job_id,
                    verdict.clone(),
                    now,
                    self.services.config.pending_ttl,
                )
                .map(Some)
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
        let mut event = sample_event(sample);
        let record = &mut event["Records"][0]["s3"];
        record["bucket"]["name"] = json!(self.services.storage.objects.bucket());
        record["bucket"]["arn"] = json!(format!(
            "arn:aws:s3:::{}",
            self.services.storage.objects.bucket()
        ));
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

    /// One receive from verify's queue `url`, handed to verify as Lambda's SQS mapping hands
    /// it (its receive count included); the messages verify does not report failed are
    /// deleted, as the mapping does.
    pub async fn pump_verify_queue(&self, sqs: &aws_sdk_sqs::Client, url: &str) -> Pumped {
        let queue = QueueSource::open(sqs.clone(), url)
            .await
            .expect("verify's queue");
        let messages = queue.receive(10, 1).await.expect("verify's queue");
        let answer = as_function(
            "verify",
            verify::handle_messages(&self.services, &self.verify_queue, queue.event(&messages)),
        )
        .await;
        let failed = queue
            .settle(&messages, &answer)
            .await
            .expect("verify names messages of its batch");
        Pumped {
            handed: messages.len(),
            failed: messages
                .iter()
                .filter(|message| {
                    failed
                        .iter()
                        .any(|id| Some(id.as_str()) == message.message_id())
                })
                .map(|message| message.receipt_handle().unwrap_or_default().to_owned())
                .collect(),
        }
    }

    /// Hands `event` to the verify function, as S3's notification does.
    pub async fn verify(
        &self,
        event: aws_lambda_events::s3::S3Event,
    ) -> Result<Vec<verify::Outcome>, shared::error::Error> {
        as_function("verify", verify::handle(&self.services, event)).await
    }
}
