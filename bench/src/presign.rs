//! Create requests through the presign handler against the local servers: requests per second
//! and latency at 1 and 16 concurrent callers, with DynamoDB's own PutItem latency beside them.

use std::sync::Arc;
use std::time::Instant;

use integration_tests::serde_json::json;
use integration_tests::{Event, TestApi, digests};

use crate::stats::{median, millis, percentile};

pub struct Load {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Load {
    /// Each figure's median over `runs`.
    pub fn median(runs: &[Load]) -> Load {
        let of = |figure: fn(&Load) -> f64| median(&runs.iter().map(figure).collect::<Vec<_>>());
        Load {
            per_second: of(|run| run.per_second),
            p50_ms: of(|run| run.p50_ms),
            p99_ms: of(|run| run.p99_ms),
        }
    }
}

/// One create with a fresh SHA-256, so that the dedup lookup runs and finds nothing; with an
/// `Idempotency-Key` of its own if `keyed`.
async fn create(api: &TestApi, keyed: bool) -> Result<f64, String> {
    let (sha256, _) = digests(uuid::Uuid::new_v4().as_bytes());
    let key = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let mut call = api
        .call(Event::Create)
        .json(json!({"file_name": "bench.bin", "file_size": 1_048_576, "content_type": "application/pdf", "sha256": sha256}));
    if keyed {
        call = call.header("Idempotency-Key", &key);
    }
    let reply = call.send().await;
    if reply.status != 201 {
        return Err(format!("create answered {}: {}", reply.status, reply.body));
    }
    Ok(millis(started.elapsed()))
}

pub async fn load(
    api: Arc<TestApi>,
    concurrency: usize,
    requests: usize,
    keyed: bool,
) -> Result<Load, String> {
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let api = api.clone();
        workers.spawn(async move {
            let mut latencies = Vec::new();
            for _ in 0..requests / concurrency {
                latencies.push(create(&api, keyed).await?);
            }
            Ok::<_, String>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = workers.join_next().await {
        latencies.extend(done.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Load {
        per_second: latencies.len() as f64 / elapsed,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
    })
}

/// The floor under a create: the median of `samples` PutItems of a file-sized item to the same
/// DynamoDB.
pub async fn put_item_p50(api: &TestApi, samples: usize) -> f64 {
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        latencies.push(millis(api.put_item_baseline().await));
    }
    percentile(&latencies, 50.0)
}
