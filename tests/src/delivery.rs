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
use serde_json::{Value, json};
use shared::events::EventBus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::TestApi;
use crate::app::sdk_config;
use crate::event_source::{QueueSource, StreamSource};
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
    queue: QueueSource,
    stream: StreamSource,
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
        let queue = QueueSource::open(sqs.clone(), &created.queue_url)
            .await
            .expect("the webhook queue");
        EventPath {
            project: self.project.clone(),
            config: self.services.config.clone(),
            webhooks: self.services.table.webhooks.clone(),
            usages: self.services.table.usages.clone(),
            bus: EventBus::new(eventbridge, bus_name),
            deliverer,
            sqs,
            queue,
            queue_url: created.queue_url,
            dead_letter_queue_url: created.dead_letter_queue_url,
            stream: StreamSource::open(&sdk, self.services.table.files.table())
                .await
                .expect("the table's stream"),
            envelopes: Vec::new(),
        }
    }
}

impl EventPath {
    /// Hands the project's new stream records to `notify`, then the queue's messages to
    /// `deliver`, as Lambda's event source mappings would; `true` if anything moved.
    pub async fn pump(&mut self) -> bool {
        let project = &self.project;
        let records: Vec<EventRecord> = self
            .stream
            .read(|record| of_project(record, project))
            .await
            .expect("the table's stream")
            .concat();
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
        let messages = self.queue.receive(10, 0).await.expect("the webhook queue");
        if messages.is_empty() {
            return false;
        }
        for message in &messages {
            self.envelopes
                .push(serde_json::from_str(message.body().unwrap_or_default()).unwrap());
        }
        let event = self.queue.event(&messages);
        let answer = as_function("deliver", self.deliverer.handle(event)).await;
        self.queue
            .settle(&messages, &answer)
            .await
            .expect("deliver names messages of its batch");
        true
    }
}

fn stream_event(records: Vec<EventRecord>) -> StreamEvent {
    let mut event = StreamEvent::default();
    event.records = records;
    event
}

/// Whether `record` is a change of a file of `project`.
fn of_project(record: &aws_sdk_dynamodbstreams::types::Record, project: &str) -> bool {
    use aws_sdk_dynamodbstreams::types::AttributeValue;
    let of_project = |image: Option<&HashMap<String, AttributeValue>>| {
        image.is_some_and(|image| {
            image.get("project_id") == Some(&AttributeValue::S(project.to_owned()))
        })
    };
    record
        .dynamodb()
        .is_some_and(|change| of_project(change.old_image()) || of_project(change.new_image()))
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
