//! `upload-bench`: measures the service and prints the table of `bench/README.md`. Every
//! figure is the median of several runs, with its baseline measured in the same run so that
//! the ratio survives a noisy machine. Run it with `scripts/bench`, which builds the release
//! binaries and starts the local stack (and `scripts/dev --release` for the end-to-end row).
//!
//! ```text
//! upload-bench [cold-start] [first-invocation] [signing] [presign] [faults] [verify] [assembly] [scale] [e2e] [webhooks] [cli]   (all when none is named)
//! ```

mod assembly;
mod cli;
mod cold_start;
mod e2e;
mod faults;
mod first_invocation;
mod presign;
mod scale;
mod signing;
mod stats;
mod verify;
mod webhooks;

use std::path::PathBuf;
use std::sync::Arc;

use integration_tests::TestApi;
use stats::{median, percentile};

pub(crate) const RUNS: usize = 3;

pub(crate) fn row(
    benchmark: &str,
    measured: String,
    baseline: String,
    ratio: String,
    target: &str,
) {
    println!("| {benchmark} | {measured} | {baseline} | {ratio} | {target} |");
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(cli::PEAK_RSS) {
        return cli::peak_rss_of(&args[1..]);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if args.first().map(String::as_str) == Some("inspect-child") {
        return match runtime.block_on(verify::inspect_child(&args[1], &args[2], &args[3])) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let wanted = |section: &str| args.is_empty() || args.iter().any(|a| a == section);
    println!("| benchmark | measured | baseline (same run) | ratio | target |");
    println!("|---|---|---|---|---|");
    let mut result = Ok(());
    if wanted("cold-start") {
        result = result.and_then(|()| cold_starts());
    }
    if wanted("first-invocation") {
        result = result.and_then(|()| {
            let work = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
            let binaries = [
                ("hello-dynamodb", release_dir()?.join("hello-dynamodb")),
                ("presign", functions_dir()?.join("presign")),
            ];
            runtime.block_on(first_invocation::rows(&binaries, &work, 15))
        });
    }
    if wanted("signing") {
        result = result.and_then(|()| raw_signing());
    }
    if wanted("presign") {
        result = result.and_then(|()| runtime.block_on(presign_load()));
    }
    if wanted("faults") {
        result = result.and_then(|()| runtime.block_on(faults::rows()));
    }
    if wanted("verify") {
        result = result.and_then(|()| runtime.block_on(verification()));
    }
    if wanted("assembly") {
        result = result.and_then(|()| runtime.block_on(assembly::rows(&[100, 1000])));
    }
    if wanted("scale") {
        result = result.and_then(|()| runtime.block_on(scale::rows()));
    }
    if wanted("listing") {
        result = result.and_then(|()| runtime.block_on(scale::listing_rows()));
    }
    if wanted("e2e") {
        result = result.and_then(|()| runtime.block_on(end_to_end()));
    }
    if wanted("webhooks") {
        result = result.and_then(|()| {
            let (api, key) = dev_api()?;
            runtime.block_on(webhooks::rows(&api, &key))
        });
    }
    if wanted("cli") {
        result = result.and_then(|()| {
            let (api, key) = dev_api()?;
            runtime.block_on(cli::rows(&api, &key))
        });
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upload-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn release_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Ok(exe.parent().ok_or("no parent directory")?.to_path_buf())
}

/// Where scripts/bench put the functions as they ship (`BENCH_FUNCTIONS`): one binary per
/// directory of `functions/`, built alone, copied before scripts/dev builds the workspace again.
fn functions_dir() -> Result<PathBuf, String> {
    std::env::var_os("BENCH_FUNCTIONS")
        .map(PathBuf::from)
        .ok_or_else(|| "BENCH_FUNCTIONS is not set: run scripts/bench".to_owned())
}

/// Each function scripts/bench put in [`functions_dir`], hello-world first.
fn cold_starts() -> Result<(), String> {
    let dir = functions_dir()?;
    let mut functions: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .map_err(|err| format!("{}: {err}", dir.display()))?
        .map(|entry| {
            let path = entry.map_err(|err| err.to_string())?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            Ok((name.into_owned(), path))
        })
        .collect::<Result<_, String>>()?;
    if functions.is_empty() {
        return Err(format!("no functions in {}", dir.display()));
    }
    functions.sort();
    functions.insert(0, ("hello".to_owned(), release_dir()?.join("hello")));
    let binaries: Vec<(&str, &std::path::Path)> = functions
        .iter()
        .map(|(name, path)| (name.as_str(), path.as_path()))
        .collect();
    let medians = cold_start::measure(&binaries, 15)?;
    let hello = medians[0].1;
    for (name, ms) in &medians[1..] {
        row(
            &format!("1. cold start `{name}` (exec → first poll, median of 15)"),
            format!("{ms:.2} ms"),
            format!("hello-world {hello:.2} ms"),
            format!("{:.2}×", ms / hello),
            "≤ 1.3×",
        );
    }
    Ok(())
}

fn raw_signing() -> Result<(), String> {
    let mut sdk = Vec::new();
    let mut bulk = Vec::new();
    for _ in 0..RUNS {
        let (s, b) = signing::cpu_per_10k()?;
        sdk.push(stats::millis(s));
        bulk.push(stats::millis(b));
    }
    let (sdk, bulk) = (median(&sdk), median(&bulk));
    row(
        "2b. sign 10,000 part URLs, 800-char token (CPU, batches of 100)",
        format!("{bulk:.1} ms ({:.0} URLs/s)", 10_000.0 / (bulk / 1000.0)),
        format!("SDK presigner {sdk:.0} ms"),
        format!("{:.1}× faster", sdk / bulk),
        "< 100 ms",
    );
    Ok(())
}

async fn presign_load() -> Result<(), String> {
    let api = Arc::new(TestApi::new().await);
    presign::load(api.clone(), 4, 40, false).await?; // warm up connections and caches
    let floor = presign::put_item_p50(&api, 200).await;
    for (concurrency, requests) in [(1, 200), (16, 800)] {
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            runs.push(presign::load(api.clone(), concurrency, requests, false).await?);
        }
        let presign::Load {
            per_second: rps,
            p50_ms: p50,
            p99_ms: p99,
        } = presign::Load::median(&runs);
        row(
            &format!("2a. create through the presign handler, {concurrency} caller(s)"),
            format!("{rps:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms"),
            format!("DynamoDB Local PutItem p50 {floor:.2} ms"),
            format!("{:.1}× PutItem", p50 / floor),
            "—",
        );
    }
    // The same creates in a project with a quota: the quota is a condition on the usage item the
    // create writes anyway, so it should cost nothing more.
    let bounded = Arc::new(TestApi::new().await);
    let quota = shared::domain::usage::Quota {
        max_files: Some(1_000_000_000),
        max_bytes: Some(1 << 50),
    };
    bounded
        .services
        .table
        .usages
        .set_quota(&bounded.project, quota)
        .await
        .map_err(|err| err.to_string())?;
    presign::load(bounded.clone(), 4, 40, false).await?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        without.push(presign::load(api.clone(), 1, 200, false).await?);
        with.push(presign::load(bounded.clone(), 1, 200, false).await?);
    }
    let (with, without) = (
        presign::Load::median(&with),
        presign::Load::median(&without),
    );
    row(
        "2q. create with a quota set, 1 caller",
        format!("p50 {:.2} ms, p99 {:.2} ms", with.p50_ms, with.p99_ms),
        format!(
            "without a quota: p50 {:.2} ms, p99 {:.2} ms",
            without.p50_ms, without.p99_ms
        ),
        format!("{:.2}× p50", with.p50_ms / without.p50_ms),
        "≤ one more conditional write",
    );
    Ok(())
}

async fn verification() -> Result<(), String> {
    let dir = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let (path, sha256) = verify::make_file(&dir, verify::GIB)?;
    let mib = |seconds: f64| verify::GIB as f64 / (1 << 20) as f64 / seconds;

    let mut baseline = Vec::new();
    let mut pipeline = Vec::new();
    let mut pipeline_md5 = Vec::new();
    for _ in 0..RUNS {
        baseline.push(verify::sha256sum_seconds(&path)?);
        pipeline.push(verify::pipeline_seconds(&path, false).await?);
        pipeline_md5.push(verify::pipeline_seconds(&path, true).await?);
    }
    let base = mib(median(&baseline));
    for (label, runs) in [("SHA-256", &pipeline), ("SHA-256 + MD5", &pipeline_md5)] {
        let rate = mib(median(runs));
        row(
            &format!("3a. verify hash pipeline, 1 GiB from disk, {label}"),
            format!("{rate:.0} MiB/s"),
            format!("sha256sum {base:.0} MiB/s"),
            format!("{:.2}×", rate / base),
            "≥ 0.8×",
        );
    }

    // The whole check of stored objects, each in a process of its own for its peak memory.
    let api = TestApi::new().await;
    let plan = verify::upload_multipart(&api, &path, verify::GIB, &sha256).await?;
    let (mut checks, mut gets) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        checks.push(verify::inspect_in_child(&api, &plan.file_id)?);
        gets.push(verify::get_seconds(&api, &plan.file_id).await?);
    }
    let rate = mib(median(
        &checks.iter().map(|c| c.seconds).collect::<Vec<_>>(),
    ));
    let rss = median(
        &checks
            .iter()
            .map(|c| c.peak_rss_kib as f64)
            .collect::<Vec<_>>(),
    ) / 1024.0;
    let _ = std::fs::remove_file(&path);
    let from_disk = mib(median(&pipeline));
    row(
        "3b. verify a stored 1 GiB multipart object (LocalStack → stream → verdict)",
        format!("{rate:.0} MiB/s, peak RSS {rss:.1} MiB"),
        format!("hash pipeline from disk {from_disk:.0} MiB/s"),
        format!("{:.2}×", rate / from_disk),
        "≥ 0.9×, RSS < 64 MiB",
    );
    let served = mib(median(&gets));
    row(
        "3b. the same check against storage's own pace",
        format!("{rate:.0} MiB/s"),
        format!("GET of the object, bytes dropped, {served:.0} MiB/s"),
        format!("{:.2}×", rate / served),
        "—",
    );

    // In steps of 64 MiB, each checkpointed on the record, against one pass: both in process.
    const STEP: u64 = 64 << 20;
    let (mut stepwise, mut one_pass, mut steps) = (Vec::new(), Vec::new(), 0);
    for _ in 0..RUNS {
        one_pass.push(
            verify::stepwise_seconds(&api, &plan.file_id, u64::MAX)
                .await?
                .0,
        );
        let (seconds, n) = verify::stepwise_seconds(&api, &plan.file_id, STEP).await?;
        stepwise.push(seconds);
        steps = n;
    }
    let (step_rate, pass_rate) = (mib(median(&stepwise)), mib(median(&one_pass)));
    row(
        &format!(
            "3e. verify the 1 GiB object in {steps} steps of 64 MiB (checkpoint written each step)"
        ),
        format!("{step_rate:.0} MiB/s"),
        format!("one pass {pass_rate:.0} MiB/s"),
        format!("{:.1} % overhead", (1.0 - step_rate / pass_rate) * 100.0),
        "≤ 5 %",
    );

    // The largest object: steps are unbounded in number, each bounded by the budget.
    let defaults = integration_tests::config("t", "b");
    let step_bytes = (defaults.verify_chunk_bytes as f64)
        .min(step_rate * (1 << 20) as f64 * defaults.verify_chunk_time.as_secs_f64());
    let largest = shared::domain::plan::MAX_OBJECT_SIZE as f64;
    let step_secs = step_bytes / (step_rate * (1 << 20) as f64);
    row(
        "3f. largest object verifiable (5 TiB, MAX_FILE_SIZE) at 3e's rate with the default budget",
        format!(
            "{:.0} steps of {:.1} GiB, {step_secs:.0} s each; {:.1} h in all",
            (largest / step_bytes).ceil(),
            step_bytes / (1u64 << 30) as f64,
            largest / (step_rate * (1 << 20) as f64) / 3600.0
        ),
        "verify's timeout 900 s per step".to_owned(),
        format!("{:.2}× timeout", step_secs / 900.0),
        "5 TiB reachable",
    );

    let small_api = TestApi::with_config(|c| c.multipart_threshold = 5 << 20).await;
    let (small, small_sha) = verify::make_file(&dir, 64 << 20)?;
    let plan = verify::upload_multipart(&small_api, &small, 64 << 20, &small_sha).await;
    let _ = std::fs::remove_file(&small);
    let check = verify::inspect_in_child(&small_api, &plan?.file_id)?;
    row(
        "3c. peak RSS verifying a 64 MiB multipart object",
        format!("{:.1} MiB", check.peak_rss_kib as f64 / 1024.0),
        format!("1 GiB object: {rss:.1} MiB"),
        format!("{:.2}×", check.peak_rss_kib as f64 / 1024.0 / rss),
        "independent of size",
    );

    // A single PUT signed with its SHA-256: storage checked it; only the type check reads.
    let body: Vec<u8> = (0..(8 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let (digest, _) = integration_tests::digests(&body);
    let plan = api
        .create(integration_tests::serde_json::json!({"file_name": "one.bin", "file_size": body.len(), "sha256": digest}))
        .await
        .plan();
    api.upload_whole(&plan, body.clone()).await;
    let check = verify::inspect_in_child(&api, &plan.file_id)?;
    row(
        "3d. bytes read verifying an 8 MiB single PUT whose SHA-256 storage checked",
        format!("{} bytes (the type check's prefix)", check.bytes_read),
        format!("object {} bytes", body.len()),
        format!("{:.5}", check.bytes_read as f64 / body.len() as f64),
        "none of the body",
    );
    Ok(())
}

/// The API and key of the `scripts/dev` that `scripts/bench` started.
fn dev_api() -> Result<(String, String), String> {
    match (std::env::var("BENCH_API"), std::env::var("BENCH_KEY")) {
        (Ok(api), Ok(key)) => Ok((api, key)),
        _ => Err("this section needs BENCH_API and BENCH_KEY (scripts/bench sets them)".into()),
    }
}

async fn end_to_end() -> Result<(), String> {
    let (api, key) = dev_api()?;
    let (uploads, clients) = (200, 16);
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(e2e::run(&api, &key, uploads, clients).await);
    }
    let throughput = median(
        &runs
            .iter()
            .map(|r| r.stages.len() as f64 / r.seconds)
            .collect::<Vec<_>>(),
    );
    let errors: usize = runs.iter().map(|r| r.errors.len()).sum();
    let lost: usize = runs.iter().map(|r| r.lost).sum();
    row(
        &format!("4. {uploads} uploads by {clients} clients through scripts/dev (× {RUNS} runs)"),
        format!("{throughput:.1} uploads/s verified"),
        "—".into(),
        "—".into(),
        "errors 0, lost 0",
    );
    for (index, stage) in e2e::STAGES.iter().enumerate() {
        let p50 = median(
            &runs
                .iter()
                .map(|r| percentile(&r.stages.iter().map(|s| s[index]).collect::<Vec<_>>(), 50.0))
                .collect::<Vec<_>>(),
        );
        let p99 = median(
            &runs
                .iter()
                .map(|r| percentile(&r.stages.iter().map(|s| s[index]).collect::<Vec<_>>(), 99.0))
                .collect::<Vec<_>>(),
        );
        row(
            &format!("4. stage: {stage}"),
            format!("p50 {p50:.1} ms, p99 {p99:.1} ms"),
            "—".into(),
            "—".into(),
            "—",
        );
    }
    row(
        "4. errors / lost records",
        format!("{errors} / {lost}"),
        "—".into(),
        "—".into(),
        "0 / 0",
    );
    for error in runs.iter().flat_map(|r| &r.errors).take(5) {
        eprintln!("e2e error: {error}");
    }
    Ok(())
}
