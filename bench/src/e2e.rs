//! End to end through `scripts/dev`: uploads by concurrent clients over HTTP, each create → PUT →
//! complete → verified (by the S3 trigger), timed per stage; errors and lost records counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::serde_json::json;
use integration_tests::{File, Plan, Status, digests};

use crate::stats::millis;

/// Per-upload stage latencies in ms, or the error that stopped it.
type Stages = [f64; 4];

pub struct Outcome {
    pub seconds: f64,
    pub stages: Vec<Stages>,
    pub errors: Vec<String>,
    pub lost: usize,
}

pub const STAGES: [&str; 4] = ["create", "PUT", "complete", "verified after complete"];

async fn one_upload(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    index: usize,
) -> Result<Result<Stages, ()>, String> {
    let mut body = format!("upload {index} {}\n", uuid::Uuid::new_v4()).into_bytes();
    body.resize(1024 + (index * 997) % (63 * 1024), b'.');
    let (sha256, _) = digests(&body);
    let auth = format!("Bearer {key}");

    let t = Instant::now();
    let response = http
        .post(format!("{api}/files"))
        .header("authorization", &auth)
        .json(&json!({"file_name": format!("e2e-{index}.txt"), "file_size": body.len(), "content_type": "text/plain", "sha256": sha256}))
        .send()
        .await
        .map_err(|e| format!("create: {e}"))?;
    if response.status() != 201 {
        return Err(format!("create answered {}", response.status()));
    }
    let plan: Plan = response.json().await.map_err(|e| format!("plan: {e}"))?;
    let create = millis(t.elapsed());

    let t = Instant::now();
    let url = plan.urls.first().ok_or("no url")?;
    let response = plan
        .put(http, url, body)
        .send()
        .await
        .map_err(|e| format!("PUT: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("PUT answered {}", response.status()));
    }
    let put = millis(t.elapsed());

    let file_id = &plan.file_id;
    let t = Instant::now();
    let response = http
        .post(format!("{api}/files/{file_id}/complete"))
        .header("authorization", &auth)
        .send()
        .await
        .map_err(|e| format!("complete: {e}"))?;
    if response.status() != 200 {
        return Err(format!("complete answered {}", response.status()));
    }
    let complete = millis(t.elapsed());

    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        let file: File = http
            .get(format!("{api}/files/{file_id}"))
            .header("authorization", &auth)
            .send()
            .await
            .map_err(|e| format!("get: {e}"))?
            .json()
            .await
            .map_err(|e| format!("file: {e}"))?;
        match file.status {
            Status::Verified => return Ok(Ok([create, put, complete, millis(t.elapsed())])),
            Status::Rejected => return Err(format!("rejected: {:?}", file.rejection_reason)),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    Ok(Err(()))
}

pub async fn run(api: &str, key: &str, uploads: usize, clients: usize) -> Outcome {
    let http = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, api, key, next) = (http.clone(), api.to_owned(), key.to_owned(), next.clone());
        workers.spawn(async move {
            let mut results = Vec::new();
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index >= uploads {
                    break results;
                }
                results.push(one_upload(&http, &api, &key, index).await);
            }
        });
    }
    let (mut stages, mut errors, mut lost) = (Vec::new(), Vec::new(), 0);
    while let Some(done) = workers.join_next().await {
        for result in done.unwrap_or_default() {
            match result {
                Ok(Ok(times)) => stages.push(times),
                Ok(Err(())) => lost += 1,
                Err(error) => errors.push(error),
            }
        }
    }
    Outcome {
        seconds: started.elapsed().as_secs_f64(),
        stages,
        errors,
        lost,
    }
}
