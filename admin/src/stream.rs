//! The table's stream, read as Lambda's stream mapping reads it, and the replay of the records
//! notify could not publish, from the positions `NotifyFailures` keeps.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::dynamo::Usages;
use shared::events::EventBus;

use crate::failure;

/// A client of the table's stream. DynamoDB Local serves it at its own endpoint, so where only
/// `AWS_ENDPOINT_URL_DYNAMODB` is set (local runs and tests), that is the stream's too.
pub fn client(sdk: &SdkConfig) -> Client {
    let mut config = aws_sdk_dynamodbstreams::config::Builder::from(sdk);
    if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODBSTREAMS").is_none()
        && let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
    {
        config = config.endpoint_url(endpoint);
    }
    Client::from_conf(config.build())
}

/// Whether `record` is a change of a file: what template.yaml's filter passes to notify.
pub fn is_file_change(record: &Record) -> bool {
    let file = |image: Option<&HashMap<String, AttributeValue>>| {
        image.is_some_and(|image| image.get("sk") == Some(&AttributeValue::S("FILE".into())))
    };
    record.dynamodb().is_some_and(|change| file(change.keys()))
}

/// `record` as Lambda's stream mapping hands it to notify.
pub fn lambda_record(record: &Record) -> Result<EventRecord, String> {
    let change = record
        .dynamodb()
        .ok_or("a stream record without its change")?;
    let image = |image: Option<&HashMap<String, AttributeValue>>| {
        image.map(|image| {
            let item: serde_dynamo::Item = image.clone().into();
            serde_json::to_value(item).unwrap_or(Value::Null)
        })
    };
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": change
            .approximate_creation_date_time()
            .map(|at| at.as_secs_f64())
            .unwrap_or_default(),
        "Keys": image(change.keys()),
        "SequenceNumber": change.sequence_number(),
        "SizeBytes": change.size_bytes().unwrap_or_default(),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(old) = image(change.old_image()) {
        dynamodb["OldImage"] = old;
    }
    if let Some(new) = image(change.new_image()) {
        dynamodb["NewImage"] = new;
    }
    let mut lambda = json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|name| name.as_str()),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/replayed/stream/now",
    });
    // A removal by the table's TTL is marked so: notify publishes nothing for it.
    if let Some(identity) = record.user_identity() {
        lambda["userIdentity"] = json!({
            "type": identity.r#type(),
            "principalId": identity.principal_id(),
        });
    }
    serde_json::from_value(lambda).map_err(|err| format!("the record as Lambda's: {err}"))
}

/// What the stream mapping's on-failure destination receives for a batch it gave up on.
#[derive(Debug, Deserialize)]
struct FailedBatch {
    #[serde(rename = "DDBStreamBatchInfo")]
    batch: BatchInfo,
}

/// Where the batch is in the stream: a shard, and the first and last sequence numbers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchInfo {
    shard_id: String,
    start_sequence_number: String,
    end_sequence_number: String,
    stream_arn: String,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Failed batches whose records were published again (their messages deleted).
    pub batches: u64,
    /// Changes of files among their records, handed to notify.
    pub changes: u64,
}

/// Reads each failed batch `failures` (the `NotifyFailures` queue) names from the stream, and
/// does what notify does with it (gives back expired files' usage, publishes the files' events
/// to `bus`), then deletes the message. Events are
/// derived from the changes, so a change published before carries the same id again, which
/// consumers take as a repeat. A batch the stream no longer holds (past 24 hours) or that fails
/// to publish stops the replay with its message kept.
pub async fn replay(
    sqs: &aws_sdk_sqs::Client,
    streams: &Client,
    bus: &EventBus,
    usages: &Usages,
    failures: &str,
) -> Result<Replayed, String> {
    let mut replayed = Replayed {
        batches: 0,
        changes: 0,
    };
    loop {
        let received = sqs
            .receive_message()
            .queue_url(failures)
            .max_number_of_messages(1)
            .visibility_timeout(300)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|err| failure("ReceiveMessage", err))?;
        let Some(message) = received.messages().first() else {
            return Ok(replayed);
        };
        let body = message.body().unwrap_or_default();
        let failed: FailedBatch = serde_json::from_str(body)
            .map_err(|err| format!("not a stream failure record ({err}): {body}"))?;
        let records = read_batch(streams, &failed.batch).await?;
        let mut event = Event::default();
        event.records = records
            .iter()
            .filter(|record| is_file_change(record))
            .map(lambda_record)
            .collect::<Result<_, _>>()?;
        let changes = event.records.len() as u64;
        let response = notify::handle(bus, usages, event).await;
        if !response.batch_item_failures.is_empty() {
            return Err(format!(
                "publishing the batch of shard {} failed again (notify's log says why); its message is kept",
                failed.batch.shard_id
            ));
        }
        sqs.delete_message()
            .queue_url(failures)
            .receipt_handle(message.receipt_handle().unwrap_or_default())
            .send()
            .await
            .map_err(|err| failure("DeleteMessage", err))?;
        replayed.batches += 1;
        replayed.changes += changes;
    }
}

/// The records of `batch`, in order.
async fn read_batch(streams: &Client, batch: &BatchInfo) -> Result<Vec<Record>, String> {
    let mut iterator = streams
        .get_shard_iterator()
        .stream_arn(&batch.stream_arn)
        .shard_id(&batch.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(&batch.start_sequence_number)
        .send()
        .await
        .map_err(|err| failure("GetShardIterator (the stream keeps records 24 hours)", err))?
        .shard_iterator;
    let end = sequence(&batch.end_sequence_number);
    let mut records = Vec::new();
    // An open shard answers empty pages at its end; the batch's records came before it.
    let mut empty_pages = 0;
    while let Some(current) = iterator.take() {
        let page = streams
            .get_records()
            .shard_iterator(current)
            .send()
            .await
            .map_err(|err| failure("GetRecords", err))?;
        if page.records().is_empty() {
            empty_pages += 1;
            if empty_pages == 5 {
                break;
            }
        }
        for record in page.records() {
            let at = record
                .dynamodb()
                .and_then(|change| change.sequence_number())
                .map(sequence)
                .unwrap_or_default();
            if at > end {
                return Ok(records);
            }
            records.push(record.clone());
            if at == end {
                return Ok(records);
            }
        }
        iterator = page.next_shard_iterator;
    }
    Ok(records)
}

/// A sequence number, ordered as a number: (digits, text) of the decimal string.
fn sequence(text: &str) -> (usize, String) {
    let digits = text.trim_start_matches('0');
    (digits.len(), digits.to_owned())
}
