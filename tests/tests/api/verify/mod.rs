//! The verify trigger against real storage: what lands is checked against what was declared,
//! the file settles once, and repeated, stale or foreign events change nothing.

mod lifecycle;
mod queue;
mod steps;
mod verdicts;

use std::time::Duration;

use integration_tests::faults::Fault;
use integration_tests::serde_json::json;
use integration_tests::{Plan, Status, TestApi, declaration, digests};
use shared::app::inspect::{self, Finding};
use shared::app::verify_queue::Continuation;
use shared::domain::{FileRecord, JobId, RejectionReason, UploadJob};
use verify::Outcome;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// A PNG of its own: the same content twice in a project would deduplicate.
fn png(variant: u8) -> Vec<u8> {
    let mut bytes = PNG.to_vec();
    bytes.push(variant);
    bytes
}

/// Declares and PUTs `bytes` through the API; returns the plan.
async fn upload(api: &TestApi, bytes: &[u8], content_type: &str, sha256: bool, md5: bool) -> Plan {
    let plan = api
        .create(declaration("f", content_type, bytes, sha256, md5))
        .await
        .plan();
    api.upload_whole(&plan, bytes.to_vec()).await;
    plan
}

/// Declares `bytes` with their SHA-256 (and MD5 if `md5`), PUTs every part and completes.
async fn upload_in_parts(api: &TestApi, bytes: &[u8], md5: bool) -> Plan {
    let body = declaration("parts.bin", "application/octet-stream", bytes, true, md5);
    let plan = api.create(body).await.plan();
    api.upload_parts(&plan, bytes).await;
    api.complete(&plan.file_id).await.file();
    plan
}

/// Delivers the event for the plan's object, which must be rejected for `reason` and deleted.
async fn assert_delivery_rejects(api: &TestApi, plan: &Plan, reason: RejectionReason) {
    assert_eq!(api.deliver(&plan.s3_key).await, Outcome::Rejected(reason));
    let file = api.get(&plan.file_id).await.file();
    assert_eq!(file.status, Status::Rejected);
    assert_eq!(file.rejection_reason.as_deref(), Some(reason.as_str()));
    assert_eq!(file.download_url, None);
    assert!(
        api.stored_objects(&plan.file_id).await.is_empty(),
        "the rejected object is deleted"
    );
}

/// One check of the plan's object, without a budget.
async fn inspect_whole(
    api: &TestApi,
    plan: &Plan,
    record: &shared::domain::FileRecord,
) -> inspect::Inspection {
    let unlimited = inspect::Budget::UNLIMITED;
    inspect::inspect(
        &api.services.storage.objects,
        &plan.s3_key,
        &record.content,
        None,
        unlimited,
    )
    .await
    .unwrap()
}

/// A fresh declaration of `bytes` as text, with its SHA-256.
async fn upload_plan(api: &TestApi, bytes: &[u8]) -> Plan {
    let mut body = declaration("notes.txt", "text/plain", bytes, true, false);
    body["metadata"] = json!({ "nonce": uuid::Uuid::new_v4().to_string() });
    // A distinct SHA-256 each time would need distinct bytes; without a verified twin, the
    // same bytes are never deduplicated, since every one of these uploads is rejected.
    api.create(body).await.plan()
}

const MIB: u64 = 1 << 20;

/// Uploads `size` pseudo-random bytes in 5 MiB parts, declared with `sha256` and `md5` (or the
/// content's own digests), completes, and hands S3's event to verify: its first step's outcome.
async fn upload_large(
    api: &TestApi,
    size: u64,
    declared: Option<(String, String)>,
) -> (Plan, Vec<u8>, Outcome) {
    let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let (sha256, md5) = declared.unwrap_or_else(|| digests(&bytes));
    let plan = api
        .create(json!({"file_name": "large.bin", "file_size": size, "sha256": sha256, "md5": md5}))
        .await
        .plan();
    api.upload_parts(&plan, &bytes).await;
    api.complete(&plan.file_id).await.file();
    let mut first = verify::handle(
        &api.services,
        api.s3_event("s3-complete-multipart", &plan.s3_key),
    )
    .await
    .unwrap();
    (plan, bytes, first.remove(0))
}

/// Hands each continuation on, as the verify queue does, until the check ends: the outcomes.
async fn check_on(api: &TestApi, mut outcome: Outcome) -> Vec<Outcome> {
    let mut outcomes = vec![outcome.clone()];
    while let Outcome::Unfinished(continuation) = &outcome {
        outcome = verify::continue_check(&api.services, continuation)
            .await
            .unwrap();
        outcomes.push(outcome.clone());
    }
    outcomes
}

fn step_api_config(c: &mut shared::config::Config) {
    c.multipart_threshold = 5 * MIB;
    c.part_size = 5 * MIB;
    c.verify_chunk_bytes = MIB;
}
