//! Verify: the streaming hash pipeline against `sha256sum` on the same bytes, the whole check of
//! a stored 1 GiB object with its peak memory, and the bytes read when storage already verified.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use base64::Engine;
use integration_tests::serde_json::{Value, json};
use integration_tests::{Plan, TestApi};
use sha2::{Digest, Sha256};

pub const GIB: u64 = 1 << 30;

/// A file of `size` pseudo-random bytes and its base64 SHA-256.
pub fn make_file(dir: &Path, size: u64) -> Result<(PathBuf, String), String> {
    let path = dir.join(format!("bench-{size}.bin"));
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| e.to_string())?);
    let mut hasher = Sha256::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < size {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let n = (size - written).min(block.len() as u64) as usize;
        file.write_all(&block[..n]).map_err(|e| e.to_string())?;
        hasher.update(&block[..n]);
        written += n as u64;
    }
    file.flush().map_err(|e| e.to_string())?;
    Ok((
        path,
        base64::engine::general_purpose::STANDARD.encode(hasher.finalize()),
    ))
}

/// Seconds `sha256sum` takes over the file.
pub fn sha256sum_seconds(path: &Path) -> Result<f64, String> {
    let started = Instant::now();
    let status = Command::new("sha256sum")
        .arg(path)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("sha256sum failed: {status}"));
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Seconds the verify pipeline takes to hash the file (read from disk, as `sha256sum` does).
pub async fn pipeline_seconds(path: &Path, md5_too: bool) -> Result<f64, String> {
    let body = ByteStream::from_path(path)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    shared::app::inspect::digest(body, true, md5_too)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(started.elapsed().as_secs_f64())
}

/// Uploads the file as a multipart upload through the API (create, part PUTs with URLs signed
/// in batches, as `POST …/parts` hands them out, complete) and returns the plan.
pub async fn upload_multipart(
    api: &TestApi,
    path: &Path,
    size: u64,
    sha256: &str,
) -> Result<Plan, String> {
    let plan = api
        .create(json!({"file_name": "big.bin", "file_size": size, "sha256": sha256}))
        .await
        .plan();
    let numbers: Vec<u32> = (1..=plan.part_count).collect();
    for batch in numbers.chunks(100) {
        let signed = api.sign_parts(&plan.file_id, batch).await.signed();
        for &number in batch {
            let offset = u64::from(number - 1) * plan.part_size;
            let len = plan.part_size.min(size - offset);
            api.put_part(signed.url(number), read_range(path, offset, len)?)
                .await;
        }
    }
    api.complete(&plan.file_id).await.file();
    Ok(plan)
}

fn read_range(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| e.to_string())?;
    let mut bytes = vec![0; len as usize];
    file.read_exact(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// What a child process reports after checking one stored object.
pub struct ChildInspection {
    pub seconds: f64,
    pub bytes_read: u64,
    pub peak_rss_kib: u64,
}

/// Runs `upload-bench inspect-child` in a fresh process, so that its peak memory is the check's.
pub fn inspect_in_child(api: &TestApi, file_id: &str) -> Result<ChildInspection, String> {
    let output = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args([
            "inspect-child",
            api.services.table.files.table(),
            api.services.storage.objects.bucket(),
            file_id,
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "inspect-child: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let report: Value =
        integration_tests::serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    if report["finding"] != "Sound" {
        return Err(format!("the object did not check out: {report}"));
    }
    Ok(ChildInspection {
        seconds: report["seconds"].as_f64().unwrap_or(f64::NAN),
        bytes_read: report["bytes_read"].as_u64().unwrap_or(0),
        peak_rss_kib: report["peak_rss_kib"].as_u64().unwrap_or(0),
    })
}

/// The child side: checks the current job's object of `file_id` and reports as JSON.
pub async fn inspect_child(table: &str, bucket: &str, file_id: &str) -> Result<(), String> {
    let services = shared::app::Services::new(
        integration_tests::config(table, bucket),
        &integration_tests::sdk_config().await,
    )
    .unwrap();
    let record = services
        .table
        .files
        .get(file_id.parse().map_err(|_| "file id")?)
        .await
        .map_err(|e| format!("{e:?}"))?
        .ok_or("no such file")?;
    let job = record.job.ok_or("no job")?;
    let started = Instant::now();
    let inspection = shared::app::inspect::inspect(
        &services.storage.objects,
        &job.s3_key,
        &record.content,
        None,
        shared::app::inspect::Budget::UNLIMITED,
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    let report = json!({
        "seconds": started.elapsed().as_secs_f64(),
        "bytes_read": inspection.bytes_read,
        "finding": format!("{:?}", inspection.finding),
        "peak_rss_kib": crate::stats::peak_rss_kib(),
    });
    println!("{report}");
    Ok(())
}

/// Seconds one check of the file's current object takes in process, in steps of `budget_bytes`
/// as verify takes them: each step resumes from the last checkpoint and writes the next one on
/// the record (conditional PutItem), as verify does before it hands on. The file is not settled,
/// so the check can run again. Returns the seconds and the number of steps.
pub async fn stepwise_seconds(
    api: &TestApi,
    file_id: &str,
    budget_bytes: u64,
) -> Result<(f64, u32), String> {
    use shared::app::inspect::{Budget, Finding, inspect};
    use shared::dynamo::Update;

    let services = &api.services;
    let id = file_id.parse().map_err(|_| "file id")?;
    let mut record = services
        .table
        .files
        .get(id)
        .await
        .map_err(|e| format!("{e:?}"))?
        .ok_or("no such file")?;
    let job = record.job.clone().ok_or("no job")?;
    let budget = Budget {
        bytes: budget_bytes,
        ..Budget::UNLIMITED
    };
    let started = Instant::now();
    let (mut resume, mut steps) = (None, 0);
    loop {
        steps += 1;
        let inspection = inspect(
            &services.storage.objects,
            &job.s3_key,
            &record.content,
            resume.as_ref(),
            budget,
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
        let checkpoint = match inspection.finding {
            Finding::Unfinished(checkpoint) => checkpoint,
            Finding::Sound => break,
            other => return Err(format!("finding {other:?}")),
        };
        let from = record.job.as_ref().and_then(|job| job.checkpoint.clone());
        let update = services
            .table
            .files
            .update(record, |file| {
                file.record_progress(job.job_id, from.as_ref(), checkpoint.clone())
            })
            .await
            .map_err(|e| format!("{e:?}"))?;
        let Update::Applied { after, .. } = update else {
            return Err("checkpoint not written".into());
        };
        record = after;
        resume = Some(checkpoint);
    }
    Ok((started.elapsed().as_secs_f64(), steps))
}

/// Seconds a plain GET of the file's current object takes, its bytes read and dropped: the pace
/// storage serves at, under any check.
pub async fn get_seconds(api: &TestApi, file_id: &str) -> Result<f64, String> {
    let id = file_id.parse().map_err(|_| "file id")?;
    let record = api
        .services
        .table
        .files
        .get(id)
        .await
        .map_err(|e| format!("{e:?}"))?
        .ok_or("no such file")?;
    let job = record.job.ok_or("no job")?;
    let started = Instant::now();
    let mut body = api
        .services
        .storage
        .objects
        .read(&job.s3_key, None)
        .await
        .map_err(|e| format!("{e:?}"))?;
    while let Some(chunk) = body.next().await {
        chunk.map_err(|e| e.to_string())?;
    }
    Ok(started.elapsed().as_secs_f64())
}
