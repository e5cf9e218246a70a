//! Issue 9's rows: how long a request takes to fail when a dependency hangs (against the
//! documented bound), and what an `Idempotency-Key` costs a create.

use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::faults::Fault;
use integration_tests::serde_json::json;
use integration_tests::{Event, TestApi};

use crate::presign;
use crate::row;
use crate::stats::{millis, percentile};

/// The deployment default of `DEPENDENCY_TIMEOUT_MS`.
const DEADLINE: Duration = Duration::from_secs(2);

pub async fn rows() -> Result<(), String> {
    hung_dependency().await?;
    keyed_creates().await
}

/// 20 creates at once while DynamoDB, then S3, never answers: p50/p99 of the time to the 503.
async fn hung_dependency() -> Result<(), String> {
    let (api, dependencies) = TestApi::behind_proxies(DEADLINE).await;
    let api = Arc::new(api);
    let bound = 3.0 * millis(DEADLINE);
    for (name, proxy, size) in [
        ("DynamoDB", &dependencies.dynamodb, 1024),
        ("S3 (multipart create)", &dependencies.s3, 200 << 20),
    ] {
        proxy.set(Fault::Blackhole);
        let mut requests = tokio::task::JoinSet::new();
        for n in 0..20 {
            let api = api.clone();
            requests.spawn(async move {
                let started = Instant::now();
                let reply = api
                    .call(Event::Create)
                    .header("Idempotency-Key", &format!("hung-{n}"))
                    .json(json!({"file_name": "a.bin", "file_size": size}))
                    .send()
                    .await;
                (reply.status, millis(started.elapsed()))
            });
        }
        let mut latencies = Vec::new();
        while let Some(done) = requests.join_next().await {
            let (status, ms) = done.map_err(|e| e.to_string())?;
            if status != 503 {
                return Err(format!("a create with {name} hung answered {status}"));
            }
            latencies.push(ms);
        }
        proxy.set(Fault::None);
        let p99 = percentile(&latencies, 99.0);
        row(
            &format!("9a. 503 while {name} hangs (20 creates at once)"),
            format!(
                "p50 {:.0} ms, p99 {p99:.0} ms",
                percentile(&latencies, 50.0)
            ),
            format!("bound 3 × {} ms = {bound:.0} ms", DEADLINE.as_millis()),
            format!("{:.2}× bound", p99 / bound),
            "≤ 1×",
        );
    }
    Ok(())
}

/// Creates with and without an `Idempotency-Key`, one caller, same run.
async fn keyed_creates() -> Result<(), String> {
    let api = Arc::new(TestApi::new().await);
    presign::load(api.clone(), 4, 40, true).await?; // warm up
    let (mut plain, mut keyed) = (Vec::new(), Vec::new());
    for _ in 0..crate::RUNS {
        plain.push(presign::load(api.clone(), 1, 200, false).await?);
        keyed.push(presign::load(api.clone(), 1, 200, true).await?);
    }
    let (plain, keyed) = (presign::Load::median(&plain), presign::Load::median(&keyed));
    let (plain_rps, plain_p50, plain_p99) = (plain.per_second, plain.p50_ms, plain.p99_ms);
    let (rps, p50, p99) = (keyed.per_second, keyed.p50_ms, keyed.p99_ms);
    row(
        "9b. create with an Idempotency-Key, 1 caller",
        format!("{rps:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms"),
        format!("without: {plain_rps:.0} req/s, p50 {plain_p50:.2} ms, p99 {plain_p99:.2} ms"),
        format!("+{:.2} ms p50", p50 - plain_p50),
        "≤ 1 round trip more",
    );
    Ok(())
}
