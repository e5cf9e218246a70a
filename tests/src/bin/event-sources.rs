//! The Lambda triggers of `template.yaml`, for `scripts/dev`: what Lambda's event source mappings
//! do in AWS, done against the local stack through `cargo lambda watch`'s Lambda API, with the
//! tests' sources ([`integration_tests::event_source`]).
//!
//! - verify's queue → verify: the bucket's ObjectCreated events for `uploads/` and verify's own
//!   steps; one message per invocation (the template's `BatchSize`), by two pollers at once
//!   (Lambda scales out). A failed message stays in the queue, to come back when it is visible
//!   again, and after the queue's `maxReceiveCount` goes to its failures queue.
//! - the table's stream → notify: records of file items (the template's filter), shard by shard,
//!   in order, up to 100 at once. A failed invocation is retried; a partial failure resumes from
//!   the first record named, as Lambda checkpoints. Each shard's position outlives any error, so
//!   nothing written is skipped.
//! - the webhook queue → deliver: up to 10 messages per invocation, the same way; deliver sets
//!   when a failed one comes back.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_lambda_events::sqs::SqsBatchResponse;
use aws_lambda_events::streams::DynamoDbEventResponse;
use clap::Parser;
use integration_tests::event_source::{QueueSource, StreamSource, resume_from};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How often an idle stream is read: about the latency a webhook adds locally.
const STREAM_POLL: Duration = Duration::from_millis(100);
/// The wait before a failed invocation or read is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Hands the local stack's events to the functions `cargo lambda watch` serves.
#[derive(Parser)]
struct Options {
    /// The table whose stream goes to notify.
    #[arg(long, env = "TABLE_NAME")]
    table: String,
    /// The queue whose messages go to verify.
    #[arg(long, env = "VERIFY_QUEUE_URL")]
    verify_queue: String,
    /// The queue whose messages go to deliver.
    #[arg(long, env = "WEBHOOK_QUEUE_URL")]
    webhook_queue: String,
    /// The Lambda API's invoke URL, `{}` standing for the function:
    /// http://127.0.0.1:PORT/2015-03-31/functions/{}/invocations
    #[arg(long, env = "INVOKE_URL")]
    invoke_url: String,
}

fn log(message: impl std::fmt::Display) {
    eprintln!("event-sources: {message}");
}

/// Invokes functions the way Lambda's pollers do: synchronously, one event at a time.
#[derive(Clone)]
struct Lambda {
    http: reqwest::Client,
    url: String,
}

impl Lambda {
    /// `function`'s answer to `event` (its partial batch response; none is the default), or
    /// why the invocation failed.
    async fn invoke<A: DeserializeOwned + Default>(
        &self,
        function: &str,
        event: &impl Serialize,
    ) -> Result<A, String> {
        let body = serde_json::to_vec(event).map_err(|err| format!("{function}: {err}"))?;
        let response = self
            .http
            .post(self.url.replace("{}", function))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|err| format!("{function}: {err}"))?;
        let failed = response.headers().contains_key("x-amz-function-error");
        let body = response
            .text()
            .await
            .map_err(|err| format!("{function}: {err}"))?;
        if failed {
            return Err(format!("{function} failed: {body:.500}"));
        }
        if body.trim().is_empty() || body.trim() == "null" {
            return Ok(A::default());
        }
        serde_json::from_str(&body).map_err(|err| {
            format!("{function} answered no partial batch response ({err}): {body:.200}")
        })
    }
}

/// Hands the messages of `queue` to `function`, `batch_size` at a time, for ever.
async fn queue_to(lambda: Lambda, function: &'static str, queue: QueueSource, batch_size: i32) {
    log(format!("{} → {function}", queue.url()));
    loop {
        let messages = match queue.receive(batch_size, 1).await {
            Ok(messages) if messages.is_empty() => continue,
            Ok(messages) => messages,
            Err(err) => {
                log(format!("{err}; will retry"));
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let answer = lambda
            .invoke::<SqsBatchResponse>(function, &queue.event(&messages))
            .await;
        match answer {
            Ok(answer) => match queue.settle(&messages, &answer).await {
                Ok(failed) => log(format!(
                    "{function}: {} messages, {} to retry",
                    messages.len(),
                    failed.len()
                )),
                Err(err) => log(format!("{function}: {err}; will retry")),
            },
            // The messages come back once visible again, as in Lambda.
            Err(err) => log(format!("{err}; will retry")),
        }
    }
}

/// Hands the table's stream to notify, for ever.
async fn stream_to_notify(lambda: Lambda, mut stream: StreamSource, table: String) {
    log(format!("the stream of {table} → notify"));
    loop {
        match stream.read(|_| true).await {
            Ok(batches) if batches.is_empty() => tokio::time::sleep(STREAM_POLL).await,
            Ok(batches) => {
                for batch in batches {
                    notify(&lambda, batch).await;
                }
            }
            // Every shard keeps its position: the read is tried again from there.
            Err(err) => {
                log(format!("reading the stream: {err}; will retry"));
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Hands `records` to notify until all are done: a failure retries the batch, a partial
/// failure resumes from the first record it names.
async fn notify(lambda: &Lambda, mut records: Vec<aws_lambda_events::dynamodb::EventRecord>) {
    while !records.is_empty() {
        let mut event = aws_lambda_events::dynamodb::Event::default();
        event.records = records.clone();
        match lambda
            .invoke::<DynamoDbEventResponse>("notify", &event)
            .await
        {
            Ok(answer) => match resume_from(&records, &answer) {
                None => {
                    log(format!("notify: {} records", records.len()));
                    return;
                }
                Some(first) => {
                    log(format!(
                        "notify could not publish from record {first} of {}; will retry from there",
                        records.len()
                    ));
                    records.drain(..first);
                }
            },
            Err(err) => log(format!("{err}; will retry")),
        }
        tokio::time::sleep(RETRY).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let options = Options::parse();
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let lambda = Lambda {
        // Verify may run up to its 15 minutes.
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(900))
            .no_proxy()
            .build()
            .map_err(|err| err.to_string())?,
        url: options.invoke_url,
    };
    let verify = QueueSource::open(sqs.clone(), &options.verify_queue).await?;
    let webhooks = QueueSource::open(sqs, &options.webhook_queue).await?;
    let stream = StreamSource::open(&sdk, &options.table).await?;
    tokio::join!(
        queue_to(lambda.clone(), "verify", verify.clone(), 1),
        queue_to(lambda.clone(), "verify", verify, 1),
        queue_to(lambda.clone(), "deliver", webhooks, 10),
        stream_to_notify(lambda, stream, options.table),
    );
    Ok(())
}
