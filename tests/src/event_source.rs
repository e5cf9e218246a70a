//! Lambda's event source mappings of `template.yaml`, against the local stack: the table's
//! stream ([`StreamSource`]) and the queues ([`QueueSource`]) read as Lambda reads them, their
//! records shaped as Lambda hands them to a function, and a function's partial batch answer
//! applied as Lambda applies it. The tests hand the batches to the handlers in process
//! ([`crate::delivery::EventPath`], `TestApi::pump_verify_queue`); `event-sources`
//! (`scripts/dev`) invokes the functions `cargo lambda watch` serves.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_lambda_events::dynamodb::EventRecord;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use serde_json::json;

/// A queue as Lambda's SQS mapping reads it.
#[derive(Debug, Clone)]
pub struct QueueSource {
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
}

impl QueueSource {
    /// The queue at `url`.
    pub async fn open(sqs: aws_sdk_sqs::Client, url: &str) -> Result<Self, String> {
        let arn = shared::events::provision::queue_arn(&sqs, url).await?;
        Ok(Self {
            sqs,
            url: url.to_owned(),
            arn,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One receive of up to `batch_size` messages, with each one's receive count, waiting up to
    /// `wait_secs` for one.
    pub async fn receive(&self, batch_size: i32, wait_secs: i32) -> Result<Vec<Message>, String> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(batch_size)
            .wait_time_seconds(wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|err| format!("ReceiveMessage {}: {err:?}", self.url))?;
        Ok(output.messages.unwrap_or_default())
    }

    /// `messages` as the event Lambda hands the function.
    pub fn event(&self, messages: &[Message]) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = messages
            .iter()
            .map(|message| self.lambda_message(message))
            .collect();
        event
    }

    fn lambda_message(&self, message: &Message) -> SqsMessage {
        let attributes: HashMap<String, String> = message
            .attributes()
            .map(|attributes| {
                attributes
                    .iter()
                    .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
                    .collect()
            })
            .unwrap_or_default();
        serde_json::from_value(json!({
            "messageId": message.message_id(),
            "receiptHandle": message.receipt_handle(),
            "body": message.body().unwrap_or_default(),
            "attributes": attributes,
            "messageAttributes": {},
            "md5OfBody": message.md5_of_body(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": "us-east-1",
        }))
        .expect("an SQS message as Lambda hands it over")
    }

    /// Applies the function's answer to `messages` as Lambda does: those it did not name as
    /// failed are deleted; the others come back once visible again. An answer naming a message
    /// not in the batch fails the whole batch: nothing is deleted. The ids of the failed ones.
    pub async fn settle(
        &self,
        messages: &[Message],
        answer: &SqsBatchResponse,
    ) -> Result<Vec<String>, String> {
        let failed: Vec<String> = answer
            .batch_item_failures
            .iter()
            .map(|failure| failure.item_identifier.clone())
            .collect();
        let id = |message: &Message| message.message_id().unwrap_or_default().to_owned();
        if let Some(stranger) = failed
            .iter()
            .find(|failed| !messages.iter().any(|message| id(message) == **failed))
        {
            return Err(format!(
                "the answer names {stranger}, which is not in the batch: the whole batch failed"
            ));
        }
        for message in messages
            .iter()
            .filter(|message| !failed.contains(&id(message)))
        {
            self.sqs
                .delete_message()
                .queue_url(&self.url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .map_err(|err| format!("DeleteMessage {}: {err:?}", self.url))?;
        }
        Ok(failed)
    }
}

/// The table's stream as Lambda's stream mapping reads it: every shard in order, those open
/// when the source was opened from then on, later ones from their start.
pub struct StreamSource {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    /// The next iterator of each shard seen (`None` once a shard is closed and read).
    iterators: HashMap<String, Option<String>>,
}

impl StreamSource {
    pub async fn open(sdk: &SdkConfig, table: &str) -> Result<Self, String> {
        let stream_arn = aws_sdk_dynamodb::Client::new(sdk)
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|err| format!("DescribeTable {table}: {err:?}"))?
            .table
            .and_then(|table| table.latest_stream_arn)
            .ok_or_else(|| format!("{table} has no stream"))?;
        let mut source = Self {
            client: admin::stream::client(sdk),
            stream_arn,
            iterators: HashMap::new(),
        };
        // What is in the stream already happened before this source looked.
        for shard in source.shards().await? {
            let iterator = source.iterator(&shard, ShardIteratorType::Latest).await?;
            source.iterators.insert(shard, iterator);
        }
        Ok(source)
    }

    async fn shards(&self) -> Result<Vec<String>, String> {
        let (mut shards, mut after) = (Vec::new(), None);
        loop {
            let description = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(after)
                .send()
                .await
                .map_err(|err| format!("DescribeStream: {err:?}"))?
                .stream_description
                .ok_or("DescribeStream without a description")?;
            shards.extend(
                description
                    .shards()
                    .iter()
                    .filter_map(|shard| shard.shard_id().map(str::to_owned)),
            );
            match description.last_evaluated_shard_id {
                Some(last) => after = Some(last),
                None => return Ok(shards),
            }
        }
    }

    async fn iterator(
        &self,
        shard: &str,
        kind: ShardIteratorType,
    ) -> Result<Option<String>, String> {
        let output = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .send()
            .await
            .map_err(|err| format!("GetShardIterator {shard}: {err:?}"))?;
        Ok(output.shard_iterator)
    }

    /// The new records `keep` keeps, in Lambda's event shape: a batch per shard that has any,
    /// each in stream order. A failed read keeps every shard's position: the next read tries
    /// again from there.
    pub async fn read(
        &mut self,
        keep: impl Fn(&Record) -> bool,
    ) -> Result<Vec<Vec<EventRecord>>, String> {
        for shard in self.shards().await? {
            if !self.iterators.contains_key(&shard) {
                // A shard opened since: all of it is new.
                let iterator = self
                    .iterator(&shard, ShardIteratorType::TrimHorizon)
                    .await?;
                self.iterators.insert(shard, iterator);
            }
        }
        let mut shards: Vec<String> = self.iterators.keys().cloned().collect();
        shards.sort();
        let mut batches = Vec::new();
        for shard in shards {
            let Some(Some(iterator)) = self.iterators.get(&shard).cloned() else {
                continue;
            };
            let output = self
                .client
                .get_records()
                .shard_iterator(iterator)
                .limit(100)
                .send()
                .await
                .map_err(|err| format!("GetRecords {shard}: {err:?}"))?;
            let batch = output
                .records()
                .iter()
                .filter(|record| admin::stream::is_file_change(record) && keep(record))
                .map(admin::stream::lambda_record)
                .collect::<Result<Vec<_>, _>>()?;
            if !batch.is_empty() {
                batches.push(batch);
            }
            self.iterators.insert(shard, output.next_shard_iterator);
        }
        Ok(batches)
    }
}

/// Where Lambda resumes a stream batch after the function's answer: `None` when it is done, or
/// the index of the first record the answer names (the whole batch when it names none of them).
pub fn resume_from(records: &[EventRecord], answer: &DynamoDbEventResponse) -> Option<usize> {
    answer
        .batch_item_failures
        .iter()
        .map(|failure| {
            records
                .iter()
                .position(|record| {
                    record.change.sequence_number.as_deref() == failure.item_identifier.as_deref()
                })
                .unwrap_or(0)
        })
        .min()
}
