//! The event path of one test, as Lambda wires it in AWS: the table's stream → `notify` → an
//! event bus → a rule → a queue → `deliver` → a webhook [`Receiver`] on loopback that checks
//! signatures. The bus, rule and queues are the test's own (made by the same provisioning as
//! `scripts/dev`'s); the table is shared, so [`EventPath`] hands `notify` only the stream records
//! of its project, as if the project had the table to itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde_json::{Value, json};
use shared::events::EventBus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::TestApi;
use crate::app::sdk_config;
use crate::operations::{OperationLog, as_function};

/// One test's bus, rule and queues, and its view of the table's stream.
pub struct EventPath {
    project: String,
    config: shared::config::Config,
    webhooks: shared::dynamo::Webhooks,
    usages: shared::dynamo::Usages,
    bus: EventBus,
    pub deliverer: deliver::Deliverer,
    sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dead_letter_queue_url: String,
    stream: StreamTap,
    /// Every EventBridge envelope the queue handed over, in order, repeats included.
    pub envelopes: Vec<Value>,
}

impl TestApi {
    /// The event path of this test's project; a message goes to the dead-letter queue after
    /// `max_attempts` failed deliveries.
    pub async fn event_path(&self, max_attempts: u32) -> EventPath {
        let sdk = sdk_config().await;
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let (bus_name, queue) = (format!("bus-{suffix}"), format!("hooks-{suffix}"));
        let eventbridge = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(&sdk)
                .interceptor(OperationLog)
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .interceptor(OperationLog)
                .build(),
        );
        let created =
            shared::events::provision::create(&eventbridge, &sqs, &bus_name, &queue, max_attempts)
                .await
                .expect("bus, rule and queues");
        let deliverer = deliver::Deliverer::new(
            &self.services.config,
            self.services.table.webhooks.clone(),
            shared::sqs::Queue::new(sqs.clone(), created.queue_url.clone()),
        )
        .expect("deliverer");
        EventPath {
            project: self.project.clone(),
            config: self.services.config.clone(),
            webhooks: self.services.table.webhooks.clone(),
            usages: self.services.table.usages.clone(),
            bus: EventBus::new(eventbridge, bus_name),
            deliverer,
            sqs,
            queue_url: created.queue_url,
            dead_letter_queue_url: created.dead_letter_queue_url,
            stream: StreamTap::open(self.services.table.files.table()).await,
            envelopes: Vec::new(),
        }
    }
}

impl EventPath {
    /// Hands the project's new stream records to `notify`, then the queue's messages to
    /// `deliver`, as Lambda's event source mappings would; `true` if anything moved.
    pub async fn pump(&mut self) -> bool {
        let records = self.stream.read(&self.project).await;
        let moved = !records.is_empty();
        if moved {
            let event = stream_event(records);
            let response =
                as_function("notify", notify::handle(&self.bus, &self.usages, event)).await;
            assert!(
                response.batch_item_failures.is_empty(),
                "notify failed: {response:?}"
            );
        }
        moved | self.deliver_queued().await
    }

    /// Pumps until `done` holds, or panics after 30 s.
    pub async fn until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            if !self.pump().await {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Pumps for `quiet` more, to show that nothing else arrives.
    pub async fn drain(&mut self, quiet: Duration) {
        let until = Instant::now() + quiet;
        while Instant::now() < until {
            if !self.pump().await {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Delivers with the functions' settings changed by `adjust` from here on.
    pub fn deliver_with(&mut self, adjust: impl FnOnce(&mut shared::config::Config)) {
        let mut config = self.config.clone();
        adjust(&mut config);
        self.deliverer = deliver::Deliverer::new(
            &config,
            self.webhooks.clone(),
            shared::sqs::Queue::new(self.sqs.clone(), self.queue_url.clone()),
        )
        .expect("deliverer");
    }

    /// The test's bus, to publish to.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// The usage notify gives back to when the TTL removes a file.
    pub fn usages(&self) -> &shared::dynamo::Usages {
        &self.usages
    }

    /// The types of the events the bus carried, in order.
    pub fn published_types(&self) -> Vec<String> {
        self.envelopes
            .iter()
            .map(|envelope| {
                envelope["detail-type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// Messages in the dead-letter queue (received and left there).
    pub async fn dead_letters(&self) -> Vec<Value> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.dead_letter_queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .expect("ReceiveMessage dead letters");
        output
            .messages()
            .iter()
            .map(|message| serde_json::from_str(message.body().unwrap_or("null")).unwrap())
            .collect()
    }

    /// One receive from the queue, handed to `deliver`; the messages it did not report failed
    /// are deleted, as Lambda's SQS mapping does.
    async fn deliver_queued(&mut self) -> bool {
        let messages = receive(&self.sqs, &self.queue_url, 0).await;
        if messages.is_empty() {
            return false;
        }
        let mut records = Vec::new();
        for message in &messages {
            self.envelopes
                .push(serde_json::from_str(message.body().unwrap_or_default()).unwrap());
            records.push(lambda_message(message));
        }
        let response = as_function("deliver", self.deliverer.handle(sqs_event(records))).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|failure| failure.item_identifier.as_str())
            .collect();
        for message in &messages {
            if !failed.contains(&message.message_id().unwrap_or_default()) {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
        }
        true
    }
}

/// One receive of up to 10 messages from `queue`, as Lambda's SQS mapping makes it (with each
/// message's receive count), waiting up to `wait_secs` for one.
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    wait_secs: i32,
) -> Vec<aws_sdk_sqs::types::Message> {
    sqs.receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_secs)
        .message_system_attribute_names(
            aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
        )
        .send()
        .await
        .expect("ReceiveMessage")
        .messages
        .unwrap_or_default()
}

/// `message`, received from SQS, as Lambda's SQS mapping hands it to a function.
pub fn lambda_message(message: &aws_sdk_sqs::types::Message) -> SqsMessage {
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
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:test",
        "awsRegion": "us-east-1",
    }))
    .unwrap()
}

fn stream_event(records: Vec<EventRecord>) -> StreamEvent {
    let mut event = StreamEvent::default();
    event.records = records;
    event
}

/// The table's stream, read from when the tap was opened, as Lambda's stream mapping reads it.
struct StreamTap {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    /// The next iterator of each shard seen (`None` once a shard is closed and read).
    iterators: HashMap<String, Option<String>>,
}

impl StreamTap {
    async fn open(table: &str) -> Self {
        let sdk = sdk_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let stream_arn = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .expect("DescribeTable")
            .table
            .and_then(|table| table.latest_stream_arn)
            .expect("the table has a stream");
        let client = admin::stream::client(&sdk);
        let mut tap = Self {
            client,
            stream_arn,
            iterators: HashMap::new(),
        };
        // What is in the stream already happened before this test looked.
        for shard in tap.shards().await {
            let iterator = tap.iterator(&shard, ShardIteratorType::Latest).await;
            tap.iterators.insert(shard, iterator);
        }
        tap
    }

    async fn shards(&self) -> Vec<String> {
        let output = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .expect("DescribeStream");
        output
            .stream_description
            .map(|description| {
                description
                    .shards()
                    .iter()
                    .filter_map(|shard| shard.shard_id().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn iterator(&self, shard: &str, kind: ShardIteratorType) -> Option<String> {
        self.client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator
    }

    /// New records of `project`'s files, in Lambda's event shape, in stream order.
    async fn read(&mut self, project: &str) -> Vec<EventRecord> {
        for shard in self.shards().await {
            if !self.iterators.contains_key(&shard) {
                // A shard opened since: all of it is new.
                let iterator = self.iterator(&shard, ShardIteratorType::TrimHorizon).await;
                self.iterators.insert(shard, iterator);
            }
        }
        let mut records = Vec::new();
        let mut shards: Vec<_> = self.iterators.keys().cloned().collect();
        shards.sort();
        for shard in shards {
            let Some(Some(iterator)) = self.iterators.get(&shard).cloned() else {
                continue;
            };
            let output = self
                .client
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await
                .expect("GetRecords");
            for record in output.records() {
                if let Some(record) = lambda_record(record, project) {
                    records.push(record);
                }
            }
            self.iterators.insert(shard, output.next_shard_iterator);
        }
        records
    }
}

/// `record` as Lambda hands it over, if it is a change of a file of `project` (the template's
/// filter passes files only).
fn lambda_record(
    record: &aws_sdk_dynamodbstreams::types::Record,
    project: &str,
) -> Option<EventRecord> {
    use aws_sdk_dynamodbstreams::types::AttributeValue;
    let change = record.dynamodb()?;
    let of_project = |image: Option<&HashMap<String, AttributeValue>>| {
        image.is_some_and(|image| {
            image.get("project_id") == Some(&AttributeValue::S(project.to_owned()))
        })
    };
    let ours = of_project(change.old_image()) || of_project(change.new_image());
    (admin::stream::is_file_change(record) && ours)
        .then(|| admin::stream::lambda_record(record).expect("a record Lambda would hand over"))
}

/// The SQS message EventBridge's rule makes of an event of `project_id`: a `file.verified` with
/// id `event_id`, as `notify` publishes it.
pub fn event_message(message_id: &str, project_id: &str, event_id: &str) -> SqsMessage {
    let envelope = json!({
        "version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": "file.verified",
        "source": shared::events::SOURCE, "account": "000000000000",
        "time": "2026-11-22T00:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {
            "id": event_id, "type": "file.verified",
            "timestamp": "2026-11-22T00:00:00.000000Z",
            "data": {
                "file_id": uuid::Uuid::new_v4().to_string(),
                "project_id": project_id,
                "status": "verified",
            },
        },
    });
    let mut message = SqsMessage::default();
    message.message_id = Some(message_id.to_owned());
    message.body = Some(envelope.to_string());
    message
}

/// A batch of `messages`, as Lambda's SQS mapping hands it to `deliver`.
pub fn sqs_event(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

/// One delivery the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub body: Value,
    /// Whether the signature checked out against the receiver's secret.
    pub signed: bool,
    pub answered: u16,
    pub at: Instant,
    /// The wall clock at arrival, to set against the event's own timestamps.
    pub received_at: std::time::SystemTime,
}

#[derive(Default)]
struct ReceiverState {
    secret: Option<String>,
    /// Accept deliveries without checking their signature, while no secret is trusted.
    unsigned: bool,
    /// Answer 500 to the first this many attempts of each delivery.
    fail_first: usize,
    /// Print one line per delivery (the `webhook-receiver` binary).
    print: bool,
    deliveries: Vec<Delivery>,
}

/// A webhook receiver on loopback: records each delivery, checks its Standard Webhooks
/// signature with the `standardwebhooks` crate (a bad signature or a timestamp more than 5
/// minutes off is answered 401), and answers 204 (or 500 while told to fail). The tests' receiver,
/// and `scripts/webhook-receiver`'s (`src/bin/webhook-receiver.rs`).
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    pub async fn start() -> Self {
        Self::start_on(0).await.unwrap()
    }

    /// A receiver on loopback's `port` (0: any free one).
    pub async fn start_on(port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let url = format!("http://{}/hooks/uploads", listener.local_addr()?);
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, shared.clone()));
            }
        });
        Ok(Self { url, state })
    }

    /// The signing secret the webhook's PUT answered with.
    pub fn trust(&self, secret: &str) {
        self.state.lock().unwrap().secret = Some(secret.to_owned());
    }

    /// Accept deliveries whose signature is not checked, while no secret is trusted.
    pub fn accept_unsigned(&self) {
        self.state.lock().unwrap().unsigned = true;
    }

    /// Print one line per delivery on stdout: `<webhook-id> <type> <file_id> <status>` for those
    /// accepted, a line saying otherwise for the others.
    pub fn print(&self) {
        self.state.lock().unwrap().print = true;
    }

    /// Answer 500 to the first `attempts` attempts of every delivery (`usize::MAX`: always).
    pub fn fail_first(&self, attempts: usize) {
        self.state.lock().unwrap().fail_first = attempts;
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.lock().unwrap().deliveries.clone()
    }

    /// The deliveries answered 2xx: what the receiver's application saw.
    pub fn accepted(&self) -> Vec<Delivery> {
        let mut deliveries = self.deliveries();
        deliveries.retain(|delivery| delivery.answered < 300);
        deliveries
    }
}

async fn serve(mut socket: tokio::net::TcpStream, state: Arc<Mutex<ReceiverState>>) {
    let mut buffer = Vec::new();
    let (head_len, headers, content_length) = loop {
        let mut chunk = [0u8; 4096];
        let read = socket.read(&mut chunk).await.unwrap_or(0);
        if read == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..read]);
        let mut parsed = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut parsed);
        if let Ok(httparse::Status::Complete(head_len)) = request.parse(&buffer) {
            let mut headers = http::HeaderMap::new();
            for header in request.headers.iter() {
                headers.insert(
                    http::HeaderName::from_bytes(header.name.as_bytes()).unwrap(),
                    http::HeaderValue::from_bytes(header.value).unwrap(),
                );
            }
            let length = headers
                .get("content-length")
                .and_then(|value| value.to_str().ok()?.parse().ok())
                .unwrap_or(0usize);
            break (head_len, headers, length);
        }
    };
    while buffer.len() < head_len + content_length {
        let mut chunk = [0u8; 4096];
        let read = socket.read(&mut chunk).await.unwrap_or(0);
        if read == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = &buffer[head_len..head_len + content_length];
    let answered = {
        let mut state = state.lock().unwrap();
        let id = headers
            .get("webhook-id")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let signed = state.secret.as_deref().is_some_and(|secret| {
            standardwebhooks::Webhook::new(secret)
                .and_then(|webhook| webhook.verify(body, &headers))
                .is_ok()
        });
        let attempts = state.deliveries.iter().filter(|d| d.id == id).count();
        let trusted = signed || (state.unsigned && state.secret.is_none());
        let answered = if !trusted {
            401
        } else if attempts < state.fail_first {
            500
        } else {
            204
        };
        let body = serde_json::from_slice(body).unwrap_or(Value::Null);
        if state.print {
            print_delivery(&id, &body, answered, attempts + 1);
        }
        state.deliveries.push(Delivery {
            id,
            body,
            signed,
            answered,
            at: Instant::now(),
            received_at: std::time::SystemTime::now(),
        });
        answered
    };
    let response =
        format!("HTTP/1.1 {answered} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// One line per delivery, so that a search for `<type> <file_id>` finds only accepted ones.
fn print_delivery(id: &str, event: &Value, answered: u16, attempt: usize) {
    let field = |name: &str| event["data"][name].as_str().unwrap_or("-").to_owned();
    let kind = event["type"].as_str().unwrap_or("(not an event)");
    let file_id = field("file_id");
    match answered {
        401 => println!("{id} refused, bad signature or timestamp: {kind} of {file_id}"),
        500 => println!("{id} failed on purpose, attempt {attempt}: {kind} of {file_id}"),
        _ => println!("{id} {kind} {file_id} {}", field("status")),
    }
}
