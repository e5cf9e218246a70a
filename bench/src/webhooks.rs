//! Issue 11's rows: how long after verify's write a webhook arrives through `scripts/dev`
//! (against the S3 trigger's own latency, the same kind of plumbing, in the same run), and how
//! many deliveries per second `deliver` makes (against plain POSTs to the same receiver).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use integration_tests::delivery::{Receiver, event_message, sqs_event};
use integration_tests::serde_json::{Value, json};
use integration_tests::{Plan, TestApi, digests};

use crate::row;
use crate::stats::{median, millis, percentile};

pub async fn rows(api: &str, key: &str) -> Result<(), String> {
    arrival_latency(api, key, 200, 8).await?;
    delivery_throughput(500, 1).await?;
    delivery_throughput(500, 10).await
}

/// `uploads` single-part uploads by `clients` clients through scripts/dev, each verified by the
/// S3 trigger and announced by a webhook: p50/p99 of verify's write → the webhook's arrival,
/// against the PUT's end → verify's write.
async fn arrival_latency(
    api: &str,
    key: &str,
    uploads: usize,
    clients: usize,
) -> Result<(), String> {
    let http = reqwest::Client::new();
    let receiver = Receiver::start().await;
    let response = http
        .put(format!("{api}/webhook"))
        .bearer_auth(key)
        .json(&json!({ "url": receiver.url, "events": ["file.verified"] }))
        .send()
        .await
        .map_err(|e| format!("PUT webhook: {e}"))?;
    let body: Value = response.json().await.map_err(|e| format!("webhook: {e}"))?;
    receiver.trust(
        body["secret"]
            .as_str()
            .ok_or("no secret in the webhook's answer")?,
    );

    let put_done = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, api, key, next, put_done) = (
            http.clone(),
            api.to_owned(),
            key.to_owned(),
            next.clone(),
            put_done.clone(),
        );
        workers.spawn(async move {
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index >= uploads {
                    return Ok::<_, String>(());
                }
                let (file_id, at) = upload(&http, &api, &key, index).await?;
                put_done.lock().unwrap().insert(file_id, at);
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while receiver.accepted().len() < uploads {
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {uploads} webhooks arrived within 120 s",
                receiver.accepted().len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let put_done = put_done.lock().unwrap();
    let (mut to_verdict, mut to_webhook) = (Vec::new(), Vec::new());
    for delivery in receiver.accepted() {
        let data = &delivery.body["data"];
        let written = wall_clock(data["updated_at"].as_str().unwrap_or_default())?;
        let file_id = data["file_id"].as_str().unwrap_or_default();
        let put = put_done
            .get(file_id)
            .ok_or("a webhook for a file not uploaded here")?;
        to_verdict.push(since(*put, written));
        to_webhook.push(since(written, delivery.received_at));
    }
    let (p50, p99) = (percentile(&to_webhook, 50.0), percentile(&to_webhook, 99.0));
    let (base50, base99) = (percentile(&to_verdict, 50.0), percentile(&to_verdict, 99.0));
    row(
        &format!(
            "11a. verify's write → webhook arrival ({uploads} uploads, {clients} clients, scripts/dev)"
        ),
        format!("p50 {p50:.0} ms, p99 {p99:.0} ms"),
        format!("PUT → verify's write: p50 {base50:.0} ms, p99 {base99:.0} ms"),
        format!("{:.2}×", p50 / base50),
        "same order as the S3 trigger (≤ 2×)",
    );
    Ok(())
}

/// One create and PUT: the file's id and when storage had the bytes.
async fn upload(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    index: usize,
) -> Result<(String, SystemTime), String> {
    let body = format!("webhook bench {index} {}\n", uuid::Uuid::new_v4()).into_bytes();
    let (sha256, _) = digests(&body);
    let response = http
        .post(format!("{api}/files"))
        .bearer_auth(key)
        .json(&json!({"file_name": format!("hook-{index}.txt"), "file_size": body.len(), "content_type": "text/plain", "sha256": sha256}))
        .send()
        .await
        .map_err(|e| format!("create: {e}"))?;
    if response.status() != 201 {
        return Err(format!("create answered {}", response.status()));
    }
    let plan: Plan = response.json().await.map_err(|e| format!("plan: {e}"))?;
    let url = plan.urls.first().ok_or("no url")?;
    let response = plan
        .put(http, url, body)
        .send()
        .await
        .map_err(|e| format!("PUT: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("PUT answered {}", response.status()));
    }
    Ok((plan.file_id, SystemTime::now()))
}

/// `count` events handed to `deliver` in batches of 10, as Lambda's SQS mapping does, the events
/// of `projects` projects taking turns (each project with a webhook on a loopback receiver of
/// its own): deliveries per second, against unsigned POSTs of the same bodies to the same
/// receivers, 10 at a time. A batch reads each of its projects' webhooks once, so one project
/// costs a batch one table read, and ten projects ten.
async fn delivery_throughput(count: usize, projects: usize) -> Result<(), String> {
    let mut subscribed = Vec::new();
    for _ in 0..projects {
        let api = TestApi::new().await;
        let receiver = Receiver::start().await;
        let reply = api.set_webhook(json!({ "url": receiver.url })).await;
        receiver.trust(reply.body["secret"].as_str().ok_or("no secret")?);
        subscribed.push((api, receiver));
    }
    let api = &subscribed[0].0;
    let sdk = integration_tests::sdk_config().await;
    let deliverer = deliver::Deliverer::new(
        &api.services.config,
        api.services.table.webhooks.clone(),
        shared::sqs::Queue::new(
            aws_sdk_sqs::Client::new(&sdk),
            "unused: every delivery succeeds".to_owned(),
        ),
    )
    .map_err(|e| e.to_string())?;
    let messages: Vec<SqsMessage> = (0..count)
        .map(|n| {
            let project = &subscribed[n % projects].0.project;
            event_message(&format!("m-{n}"), project, &format!("evt_{n:032x}"))
        })
        .collect();
    let batches: Vec<SqsEvent> = messages
        .chunks(10)
        .map(|chunk| sqs_event(chunk.to_vec()))
        .collect();
    // The baseline POSTs each event's own body, unsigned, to its project's receiver.
    let posts: Vec<(&str, String)> = messages
        .iter()
        .enumerate()
        .map(|(n, message)| {
            let envelope: Value = serde_json::from_str(message.body.as_deref().unwrap_or("null"))?;
            Ok((
                subscribed[n % projects].1.url.as_str(),
                envelope["detail"].to_string(),
            ))
        })
        .collect::<Result<_, serde_json::Error>>()
        .map_err(|e| e.to_string())?;

    let mut rates = Vec::new();
    let mut baselines = Vec::new();
    let http = reqwest::Client::new();
    for _ in 0..crate::RUNS {
        let started = Instant::now();
        for batch in &batches {
            let response = deliverer.handle(batch.clone()).await;
            if !response.batch_item_failures.is_empty() {
                return Err(format!(
                    "{} deliveries failed",
                    response.batch_item_failures.len()
                ));
            }
        }
        rates.push(count as f64 / started.elapsed().as_secs_f64());

        let started = Instant::now();
        for (batch, chunk) in posts.chunks(10).enumerate() {
            let sent = chunk.iter().enumerate().map(|(n, (url, body))| {
                http.post(*url)
                    .header("webhook-id", format!("baseline-{batch}-{n}"))
                    .body(body.clone())
                    .send()
            });
            for response in futures_util::future::join_all(sent).await {
                response.map_err(|e| format!("baseline POST: {e}"))?;
            }
        }
        baselines.push(count as f64 / started.elapsed().as_secs_f64());
    }
    let (rate, baseline) = (median(&rates), median(&baselines));
    row(
        &format!(
            "11b. webhook deliveries by deliver, batches of 10 of {projects} project(s) \
             ({count} events × {} runs)",
            crate::RUNS
        ),
        format!("{rate:.0} deliveries/s"),
        format!("{baseline:.0} unsigned POSTs/s"),
        format!("{:.2}×", rate / baseline),
        "≥ 0.5×",
    );
    Ok(())
}

fn wall_clock(timestamp: &str) -> Result<SystemTime, String> {
    let at = shared::domain::timestamp::parse(timestamp).ok_or("a bad timestamp")?;
    let nanos = u64::try_from(at.unix_timestamp_nanos()).map_err(|e| e.to_string())?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// Milliseconds from `earlier` to `later` (0 if the clocks disagree).
fn since(earlier: SystemTime, later: SystemTime) -> f64 {
    later.duration_since(earlier).map(millis).unwrap_or(0.0)
}
