//! The verify trigger against real storage: what lands is checked against what was declared,
//! the file settles once, and repeated, stale or foreign events change nothing.

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

#[tokio::test]
async fn single_part_uploads_verify_with_and_without_declared_hashes() {
    let api = TestApi::new().await;
    for (sha256, md5) in [(true, true), (true, false), (false, true), (false, false)] {
        let bytes = format!("%PDF-1.7 sha256={sha256} md5={md5}").into_bytes();
        let plan = upload(&api, &bytes, "application/pdf", sha256, md5).await;
        assert_eq!(
            api.deliver(&plan.s3_key).await,
            Outcome::Verified,
            "sha256={sha256} md5={md5}"
        );
        let file = api.get(&plan.file_id).await.file();
        assert_eq!(file.status, Status::Verified);
        assert!(file.verified_at.is_some());
        assert_eq!(api.download(&plan.file_id).await, bytes);
    }
}

#[tokio::test]
async fn a_checksum_storage_verified_is_not_read_again() {
    // GIVEN a single PUT signed with its SHA-256 and MD5: storage checked both on upload
    let api = TestApi::new().await;
    let mut bytes = PNG.to_vec();
    bytes.resize(1 << 20, 7);
    let plan = upload(&api, &bytes, "image/png", true, true).await;
    let record = api.record(&plan.file_id).await;

    // WHEN it is inspected
    let inspection = inspect_whole(&api, &plan, &record).await;

    // THEN only the leading bytes were read, for the type check
    assert_eq!(inspection.finding, Finding::Sound);
    assert_eq!(
        inspection.bytes_read,
        shared::domain::sniff::SNIFF_LEN as u64
    );
}

#[tokio::test]
async fn a_multipart_upload_is_verified_by_streaming_and_then_deduplicates() {
    // GIVEN a multipart upload of 3 parts and a remainder, completed
    let api = TestApi::with_config(|c| {
        c.multipart_threshold = 5 << 20;
        c.part_size = 5 << 20;
    })
    .await;
    let bytes: Vec<u8> = (0..(15 << 20) + 999)
        .map(|i: usize| (i % 253) as u8)
        .collect();
    let (sha256, md5) = digests(&bytes);
    let plan = api
        .create(json!({"file_name": "data.bin", "file_size": bytes.len(), "sha256": sha256, "md5": md5}))
        .await
        .plan();
    assert_eq!(plan.part_size, 5 << 20);
    api.upload_parts(&plan, &bytes).await;
    let file_id = &plan.file_id;
    assert_eq!(api.complete(file_id).await.file().status, Status::Uploaded);
    let record = api.record(file_id).await;
    let inspection = inspect_whole(&api, &plan, &record).await;
    assert_eq!(
        inspection,
        inspect::Inspection {
            finding: Finding::Sound,
            bytes_read: bytes.len() as u64,
            // assembled from parts, which carried no checksum of their own
            stored_sha256: None,
        }
    );

    // WHEN the trigger runs
    let outcome = verify::handle(
        &api.services,
        api.s3_event("s3-complete-multipart", &plan.s3_key),
    )
    .await
    .unwrap();

    // THEN the file is verified, and the same content declared again is that file
    assert_eq!(outcome, [Outcome::Verified]);
    assert_eq!(api.get(file_id).await.file().status, Status::Verified);
    let again = api
        .create(json!({"file_name": "copy.bin", "file_size": bytes.len(), "sha256": sha256}))
        .await
        .file();
    assert_eq!(again.deduplicated, Some(true));
    assert_eq!(&again.file_id, file_id);
}

#[tokio::test]
async fn an_object_of_another_size_written_to_the_key_is_rejected() {
    let api = TestApi::new().await;
    let created = api
        .create(json!({"file_name": "f.txt", "file_size": 10, "content_type": "text/plain"}))
        .await
        .plan();
    put_directly(&api, &created.s3_key, b"only 7!".to_vec(), "text/plain").await;
    assert_delivery_rejects(&api, &created, RejectionReason::SizeMismatch).await;
}

#[tokio::test]
async fn an_object_with_other_bytes_written_without_checksums_is_rejected() {
    let api = TestApi::new().await;
    for (sha256, md5) in [(true, false), (false, true)] {
        let declared = b"%PDF-1.7 the declared content".to_vec();
        let body = declaration("f.pdf", "application/pdf", &declared, sha256, md5);
        let created = api.create(body).await.plan();
        let mut other = declared.clone();
        *other.last_mut().unwrap() ^= 1;
        put_directly(&api, &created.s3_key, other, "application/pdf").await;
        assert_delivery_rejects(&api, &created, RejectionReason::ChecksumMismatch).await;
    }
}

#[tokio::test]
async fn content_that_is_not_what_its_type_claims_is_rejected() {
    let api = TestApi::new().await;
    let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
    let pe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0".to_vec();
    let html = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script>".to_vec();
    for (bytes, content_type) in [
        (elf.clone(), "image/png"),
        (pe, "image/png"),
        (html, "image/png"),
        (elf, "text/plain"),
    ] {
        let plan = upload(&api, &bytes, content_type, true, false).await;
        assert_delivery_rejects(&api, &plan, RejectionReason::ContentTypeMismatch).await;
    }
    // an object written with another stored content type
    let created = api
        .create(json!({"file_name": "a.png", "file_size": PNG.len(), "content_type": "image/png"}))
        .await
        .plan();
    put_directly(&api, &created.s3_key, PNG.to_vec(), "text/html").await;
    assert_eq!(
        api.deliver(&created.s3_key).await,
        Outcome::Rejected(RejectionReason::ContentTypeMismatch)
    );
}

#[tokio::test]
async fn repeated_stale_and_foreign_events_change_nothing() {
    let api = TestApi::new().await;
    let plan = upload(&api, PNG, "image/png", true, false).await;
    let file_id = &plan.file_id;
    assert_eq!(api.deliver(&plan.s3_key).await, Outcome::Verified);
    let settled = api.raw_item(file_id).await;

    // the same event again
    assert_eq!(
        api.deliver(&plan.s3_key).await,
        Outcome::Ignored("already settled")
    );
    assert_eq!(api.raw_item(file_id).await, settled);

    // an event for the old job, after a reupload
    let new_plan = api
        .reupload(
            file_id,
            json!({"file_size": 3, "content_type": "text/plain"}),
        )
        .await
        .plan();
    let replaced = api.raw_item(file_id).await;
    assert_eq!(
        api.deliver(&plan.s3_key).await,
        Outcome::Ignored("not the file's current upload")
    );
    assert_eq!(api.raw_item(file_id).await, replaced);
    assert_eq!(
        api.deliver(&new_plan.s3_key).await,
        Outcome::Ignored("object no longer exists")
    );
    assert_eq!(api.raw_item(file_id).await, replaced);

    // keys that are not uploads, or of no file, and other buckets
    let unknown = format!("uploads/{}/{}", uuid(), uuid());
    assert_eq!(
        api.deliver(&unknown).await,
        Outcome::Ignored("unknown file")
    );
    assert_eq!(
        api.deliver("../etc/passwd").await,
        Outcome::Ignored("not an upload key")
    );
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/s3-foreign-key.json"
    ))
    .unwrap();
    let foreign: aws_lambda_events::s3::S3Event =
        integration_tests::serde_json::from_str(&sample).unwrap();
    assert_eq!(
        verify::handle(&api.services, foreign).await.unwrap(),
        [Outcome::Ignored("another bucket")]
    );
    let mut ours = api.s3_event("s3-foreign-key", "x");
    ours.records[0].s3.object.key = Some("inbox/Quarterly+report+%E2%80%94+caf%C3%A9.pdf".into());
    assert_eq!(
        verify::handle(&api.services, ours).await.unwrap(),
        [Outcome::Ignored("not an upload key")]
    );
    assert_eq!(api.raw_item(file_id).await, replaced);
}

#[tokio::test]
async fn the_verdict_does_not_depend_on_when_complete_is_called() {
    let api = TestApi::new().await;
    // verify first, then complete
    let first = upload(&api, &png(1), "image/png", true, false).await;
    assert_eq!(api.deliver(&first.s3_key).await, Outcome::Verified);
    let completed = api.complete(&first.file_id).await.file();
    assert_eq!(completed.status, Status::Verified);
    // complete first, then verify
    let second = upload(&api, &png(2), "image/png", false, false).await;
    assert_eq!(
        api.complete(&second.file_id).await.file().status,
        Status::Uploaded
    );
    assert_eq!(api.deliver(&second.s3_key).await, Outcome::Verified);
    // both at once, several times
    for variant in 3..8 {
        let plan = upload(&api, &png(variant), "image/png", true, true).await;
        let file_id = &plan.file_id;
        let (completed, outcome) = tokio::join!(api.complete(file_id), api.deliver(&plan.s3_key));
        assert_eq!(completed.status, 200, "{:#}", completed.body);
        assert_eq!(outcome, Outcome::Verified);
        assert_eq!(api.get(file_id).await.file().status, Status::Verified);
    }
}

#[tokio::test]
async fn a_rejected_reupload_keeps_the_verified_version_and_a_verified_one_replaces_it() {
    let api = TestApi::new().await;
    let plan = upload(&api, PNG, "image/png", true, false).await;
    let file_id = &plan.file_id;
    assert_eq!(api.deliver(&plan.s3_key).await, Outcome::Verified);

    // a reupload whose bytes are not a PNG is rejected; the first version stays downloadable
    let bad = api
        .reupload(
            file_id,
            json!({"file_size": 4, "content_type": "image/png"}),
        )
        .await
        .plan();
    api.upload_whole(&bad, b"nope".to_vec()).await;
    assert_eq!(
        api.deliver(&bad.s3_key).await,
        Outcome::Rejected(RejectionReason::ContentTypeMismatch)
    );
    let file = api.get(file_id).await.file();
    assert_eq!(
        (file.status, file.rejection_reason.as_deref()),
        (Status::Rejected, Some("content_type_mismatch"))
    );
    assert_eq!(api.download(file_id).await, PNG);

    // a good reupload replaces it, and the old object is removed
    let mut png2 = PNG.to_vec();
    png2.extend_from_slice(b"v2");
    let good = api
        .reupload(
            file_id,
            json!({"file_size": png2.len(), "content_type": "image/png"}),
        )
        .await
        .plan();
    api.upload_whole(&good, png2.clone()).await;
    assert_eq!(api.deliver(&good.s3_key).await, Outcome::Verified);
    assert_eq!(api.stored_objects(file_id).await, [good.s3_key]);
    assert_eq!(api.download(file_id).await, png2);
}

/// Writes an object straight to `key`, around the API and its signed headers.
async fn put_directly(api: &TestApi, key: &str, bytes: Vec<u8>, content_type: &str) {
    api.services
        .storage
        .objects
        .client()
        .put_object()
        .bucket(api.services.storage.objects.bucket())
        .key(key)
        .content_type(content_type)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
}

fn uuid() -> String {
    "7d444840-9dc0-41d3-a6a8-a40a5f4d1f1a".to_owned()
}

/// Issue 10: a single PUT may add standard headers its URL does not sign, and storage keeps and
/// serves them (`Content-Encoding: gzip` turns the verified bytes into something else for every
/// client). Each ends `rejected` with `unexpected_metadata`, its object deleted.
#[tokio::test]
async fn an_object_stored_with_headers_the_service_did_not_set_is_rejected() {
    let api = TestApi::new().await;
    let bytes = b"plain text, honestly".to_vec();
    for (header, value) in [
        ("content-encoding", "gzip"),
        ("content-disposition", "inline"),
        ("content-language", "fr"),
        ("expires", "Wed, 21 Oct 2037 07:28:00 GMT"),
    ] {
        let plan = upload_plan(&api, &bytes).await;
        let response = plan
            .put(&api.http, plan.url(1), bytes.clone())
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "storage took {header}: {}",
            response.status()
        );
        assert_delivery_rejects(&api, &plan, RejectionReason::UnexpectedMetadata).await;
    }
    // Cache-Control is signed (browsers add max-age=0 to a conditional PUT by themselves): any
    // other value is refused by storage, before a byte is stored.
    let plan = upload_plan(&api, &bytes).await;
    assert_eq!(plan.headers["cache-control"], "max-age=0");
    let mut headers = plan.headers.clone();
    headers.insert("cache-control".into(), "public, max-age=31536000".into());
    let refused = headers
        .iter()
        .fold(api.http.put(plan.url(1)), |put, (name, value)| {
            put.header(name, value)
        })
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "storage took another Cache-Control");
    // x-amz-meta-* and a website redirect are refused by storage on a presigned PUT (unsigned
    // x-amz-* headers); written behind the API's back they are rejected too.
    for write in ["metadata", "redirect"] {
        let plan = upload_plan(&api, &bytes).await;
        let put = api
            .services
            .storage
            .objects
            .client()
            .put_object()
            .bucket(api.services.storage.objects.bucket())
            .key(&plan.s3_key)
            .content_type("text/plain")
            .body(bytes.clone().into());
        let put = match write {
            "metadata" => put.metadata("owner", "someone-else"),
            _ => put.website_redirect_location("https://evil.example/"),
        };
        put.send().await.unwrap();
        assert_delivery_rejects(&api, &plan, RejectionReason::UnexpectedMetadata).await;
    }
}

#[tokio::test]
async fn download_urls_pin_how_the_bytes_are_read() {
    let api = TestApi::new().await;
    let bytes = b"just text".to_vec();
    let plan = upload_plan(&api, &bytes).await;
    api.upload_whole(&plan, bytes.clone()).await;
    assert_eq!(api.deliver(&plan.s3_key).await, Outcome::Verified);
    let url = api.get(&plan.file_id).await.file().download_url.unwrap();
    let response = api.http.get(url).send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    assert_eq!(header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(header("content-encoding").as_deref(), Some("identity"));
    assert_eq!(
        header("cache-control").as_deref(),
        Some("private, no-store")
    );
    assert!(
        header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);
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

#[tokio::test]
async fn an_object_larger_than_the_budget_is_checked_in_steps_from_checkpoints() {
    // GIVEN a budget of 1 MiB per invocation and a completed upload of 12 MiB and a bit
    let api = TestApi::with_config(step_api_config).await;
    let (plan, bytes, first) = upload_large(&api, 12 * MIB + 3, None).await;

    // THEN the first step checked 1 MiB, checkpointed it, and the file shows it
    let file_id = plan.file_id.parse().unwrap();
    let job_id = plan.job_id.parse().unwrap();
    assert_eq!(
        first,
        Outcome::Unfinished(Continuation {
            file_id,
            job_id,
            bytes_checked: MIB
        })
    );
    let file = api.get(&plan.file_id).await.file();
    assert_eq!(
        (file.status, file.bytes_checked),
        (Status::Uploaded, Some(MIB))
    );

    // WHEN each continuation is handed on, THEN 13 steps in all verify it, as one pass would
    let outcomes = check_on(&api, first).await;
    assert_eq!(outcomes.len(), 13);
    assert_eq!(outcomes.last(), Some(&Outcome::Verified));
    let file = api.get(&plan.file_id).await.file();
    assert_eq!((file.status, file.bytes_checked), (Status::Verified, None));
    assert_eq!(api.download(&plan.file_id).await, bytes);

    // and a continuation after the verdict changes nothing
    let settled = api.raw_item(&plan.file_id).await;
    let late = Continuation {
        file_id,
        job_id,
        bytes_checked: 5 * MIB,
    };
    assert_eq!(
        verify::continue_check(&api.services, &late).await.unwrap(),
        Outcome::Ignored("already settled")
    );
    assert_eq!(api.raw_item(&plan.file_id).await, settled);
}

#[tokio::test]
async fn steps_read_in_parallel_windows_from_wherever_the_last_one_stopped() {
    // GIVEN steps of a budget that is no multiple of the reads' windows (of 4 MiB), three
    // ranged GETs at a time
    let api = TestApi::with_config(|c| {
        step_api_config(c);
        c.verify_chunk_bytes = 9 * MIB + 7;
        c.verify_parallel_gets = 3;
    })
    .await;
    let (plan, bytes, first) = upload_large(&api, 20 * MIB + 3, None).await;

    // THEN three steps, each reading several windows at once, verify it as one pass would
    let outcomes = check_on(&api, first).await;
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes.last(), Some(&Outcome::Verified));
    assert_eq!(api.download(&plan.file_id).await, bytes);
}

#[tokio::test]
async fn an_object_checked_in_steps_that_differs_at_its_end_is_rejected() {
    let api = TestApi::with_config(step_api_config).await;
    let size = 6 * MIB + 5;
    let mut other: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    *other.last_mut().unwrap() ^= 1;
    let (_, _, first) = upload_large(&api, size, Some(digests(&other))).await;
    let outcomes = check_on(&api, first).await;
    assert_eq!(outcomes.len(), 7);
    assert_eq!(
        outcomes.last(),
        Some(&Outcome::Rejected(RejectionReason::ChecksumMismatch))
    );
}

#[tokio::test]
async fn a_step_killed_midway_resumes_from_the_last_checkpoint_and_duplicates_change_nothing() {
    // GIVEN a check in steps of 1 MiB, two steps done, storage reached through a fault proxy
    let (mut api, dependencies) = TestApi::behind_proxies(Duration::from_secs(2)).await;
    step_api_config(&mut api.services.config);
    let (plan, _, first) = upload_large(&api, 6 * MIB + 5, None).await;
    let Outcome::Unfinished(second) = first else {
        panic!("unfinished: {first:?}")
    };
    let Outcome::Unfinished(third) = verify::continue_check(&api.services, &second)
        .await
        .unwrap()
    else {
        panic!("unfinished")
    };
    assert_eq!(third.bytes_checked, 2 * MIB);
    let checkpointed = api.raw_item(&plan.file_id).await;

    // WHEN the third step dies while storage does not answer (Lambda's timeout, a crash)
    dependencies.s3.set(Fault::Blackhole);
    let killed = tokio::time::timeout(
        Duration::from_millis(500),
        verify::continue_check(&api.services, &third),
    )
    .await;
    assert!(killed.is_err(), "the step was killed");
    dependencies.s3.set(Fault::None);

    // THEN the file is as the last checkpoint left it, and the retry goes on from there
    assert_eq!(api.raw_item(&plan.file_id).await, checkpointed);
    let (once, twice) = tokio::join!(
        verify::continue_check(&api.services, &third),
        verify::continue_check(&api.services, &third),
    );
    // Two deliveries of one message at once: each goes on from the checkpoint it reads; one
    // loses its write if both read the same one, and no bytes are skipped either way.
    let mut outcomes = vec![once.unwrap(), twice.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, Outcome::Ignored(_)));
    let Outcome::Unfinished(next) = outcomes[0].clone() else {
        panic!("one of them went on: {outcomes:?}")
    };
    assert!(
        matches!(
            &outcomes[1],
            Outcome::Ignored("checked on by another invocation")
        ) || matches!(&outcomes[1], Outcome::Unfinished(other) if other.bytes_checked + MIB == next.bytes_checked || other.bytes_checked == next.bytes_checked + MIB),
        "{outcomes:?}"
    );
    let all = check_on(&api, Outcome::Unfinished(next)).await;
    assert_eq!(all.last(), Some(&Outcome::Verified));
    assert_eq!(api.get(&plan.file_id).await.file().status, Status::Verified);
}

#[tokio::test]
async fn s3_events_and_continuations_reach_verify_through_its_queue() {
    // GIVEN verify's queue, holding S3's test event and the event of an upload of 6 steps
    let queue_url = integration_tests::verify_queue_url().await;
    let api = TestApi::with_config(|c| {
        step_api_config(c);
        c.verify_queue_url = Some(queue_url.clone());
    })
    .await;
    let sqs = aws_sdk_sqs::Client::new(&integration_tests::sdk_config().await);
    let bytes: Vec<u8> = (0..5 * MIB + 7).map(|i| (i % 241) as u8).collect();
    let plan = upload_in_parts(&api, &bytes, true).await;
    let s3_event = api.s3_event("s3-complete-multipart", &plan.s3_key);
    for body in [
        json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}).to_string(),
        integration_tests::serde_json::to_string(&s3_event).unwrap(),
    ] {
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    // WHEN each message is handed to verify as Lambda's SQS mapping does (one per invocation)
    let outcomes = drain(&api, &sqs, &queue_url).await;

    // THEN the test event was dropped, and six steps, each queued by the one before, verified it
    assert_eq!(outcomes.len(), 1 + 6);
    assert_eq!(outcomes.last(), Some(&Outcome::Verified));
    assert_eq!(api.get(&plan.file_id).await.file().status, Status::Verified);
}

/// Hands each message of the queue to verify as Lambda's SQS mapping does, one per invocation,
/// until the queue stays empty; every message must succeed. The outcomes, in order.
async fn drain(api: &TestApi, sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Outcome> {
    use aws_lambda_events::sqs::SqsMessage;
    use integration_tests::operations::as_function;

    let mut outcomes = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let Some(message) = received.messages().first() else {
            break;
        };
        let mut record = SqsMessage::default();
        record.message_id = message.message_id.clone();
        record.body = message.body.clone();
        let outcome = as_function(
            "verify",
            verify::process(&api.services, &api.verify_queue, &record),
        )
        .await;
        outcomes.extend(outcome.expect("verify handles the message"));
        sqs.delete_message()
            .queue_url(queue_url)
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    outcomes
}

#[tokio::test]
async fn an_upload_of_more_parts_than_complete_assembles_is_assembled_by_verify() {
    // GIVEN complete assembling at most 1 part, and an upload of 2
    let queue_url = integration_tests::verify_queue_url().await;
    let api = TestApi::with_config(|c| {
        c.multipart_threshold = 5 * MIB;
        c.part_size = 5 * MIB;
        c.assemble_inline_max_parts = 1;
        c.verify_queue_url = Some(queue_url.clone());
    })
    .await;
    let sqs = aws_sdk_sqs::Client::new(&integration_tests::sdk_config().await);
    let bytes: Vec<u8> = (0..5 * MIB + 1024).map(|i| (i % 239) as u8).collect();
    let plan = api
        .create(declaration(
            "two.bin",
            "application/octet-stream",
            &bytes,
            true,
            false,
        ))
        .await
        .plan();

    // WHEN a part is missing, THEN complete refuses and hands nothing over
    api.put_part(&plan.urls[0], bytes[..5 * MIB as usize].to_vec())
        .await;
    let refused = api.complete(&plan.file_id).await;
    assert_eq!(refused.status, 409);
    assert!(drain(&api, &sqs, &queue_url).await.is_empty());

    // WHEN every part is there, THEN complete answers 202 with the file uploaded, not yet assembled
    api.put_part(&plan.urls[1], bytes[5 * MIB as usize..].to_vec())
        .await;
    let accepted = api.complete(&plan.file_id).await;
    assert_eq!(accepted.status, 202);
    assert_eq!(accepted.body["status"], "uploaded");
    assert!(api.stored_objects(&plan.file_id).await.is_empty());

    // and verify assembles it from its queue; a second assembly finds nothing left to do
    let outcomes = drain(&api, &sqs, &queue_url).await;
    assert_eq!(outcomes, [Outcome::Assembled]);
    let assembly = shared::app::verify_queue::Assembly {
        file_id: plan.file_id.parse().unwrap(),
        job_id: plan.job_id.parse().unwrap(),
    };
    assert_eq!(
        verify::assemble(&api.services, &assembly).await.unwrap(),
        Outcome::Ignored("assembled or aborted already")
    );

    // and the assembled object's event settles the file, as any other's
    let event = api.s3_event("s3-complete-multipart", &plan.s3_key);
    assert_eq!(
        verify::handle(&api.services, event).await.unwrap(),
        [Outcome::Verified]
    );
    assert_eq!(api.download(&plan.file_id).await, bytes);
    let again = api.complete(&plan.file_id).await;
    assert_eq!((again.status, again.file().status), (200, Status::Verified));
}

/// The queue samples of `events/`, for `cargo lambda invoke verify`: S3's event of a key of
/// another bucket, and a continuation and an assembly of a file that does not exist. None
/// changes anything.
#[tokio::test]
async fn the_queue_samples_are_messages_verify_reads() {
    use aws_lambda_events::sqs::SqsEvent;

    let api = TestApi::new().await;
    for (sample, outcome) in [
        ("verify-sqs", Outcome::Ignored("another bucket")),
        ("verify-continuation", Outcome::Ignored("unknown file")),
        ("verify-assemble", Outcome::Ignored("unknown file")),
    ] {
        let path = format!("{}/../events/{sample}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        let event: SqsEvent = integration_tests::serde_json::from_str(&text).unwrap();
        let outcomes = verify::process(&api.services, &api.verify_queue, &event.records[0])
            .await
            .unwrap();
        assert_eq!(outcomes, [outcome], "{sample}");
    }
}

#[tokio::test]
async fn objects_are_written_pending_and_retagged_once_verified_for_the_lifecycle_rule() {
    // GIVEN a single PUT and a multipart upload, as written by clients
    let api = TestApi::with_config(|c| {
        c.multipart_threshold = 5 * MIB;
        c.part_size = 5 * MIB;
    })
    .await;
    let single = upload(&api, &png(12), "image/png", true, false).await;
    let bytes: Vec<u8> = (0..5 * MIB + 9).map(|i| (i % 233) as u8).collect();
    let multipart = upload_in_parts(&api, &bytes, false).await;

    // THEN both are tagged pending (the lifecycle rule expires them unless verified)
    for plan in [&single, &multipart] {
        assert_eq!(api.object_tags(&plan.s3_key).await, ["state=pending"]);
    }

    // WHEN verified, THEN they are tagged verified, which the rule keeps
    assert_eq!(api.deliver(&single.s3_key).await, Outcome::Verified);
    let event = api.s3_event("s3-complete-multipart", &multipart.s3_key);
    assert_eq!(
        verify::handle(&api.services, event).await.unwrap(),
        [Outcome::Verified]
    );
    for plan in [&single, &multipart] {
        assert_eq!(api.object_tags(&plan.s3_key).await, ["state=verified"]);
    }
}

#[tokio::test]
async fn complete_content_leaves_the_pending_rule_as_its_check_starts() {
    // GIVEN a completed upload of parts (which S3 dates by the upload's start: the pending
    // rule may expire it at once), checked in steps of 1 MiB
    let api = TestApi::with_config(step_api_config).await;
    let (plan, _, first) = upload_large(&api, 6 * MIB, None).await;

    // THEN from its first step on, it is tagged checking, which no lifecycle rule expires
    assert!(matches!(first, Outcome::Unfinished(_)), "{first:?}");
    assert_eq!(api.object_tags(&plan.s3_key).await, ["state=checking"]);

    // and verified once the check ends
    assert_eq!(check_on(&api, first).await.last(), Some(&Outcome::Verified));
    assert_eq!(api.object_tags(&plan.s3_key).await, ["state=verified"]);
}

#[tokio::test]
async fn a_completed_upload_whose_object_is_gone_is_rejected_with_its_event() {
    let api = TestApi::with_config(step_api_config).await;
    let mut path = api.event_path(18).await;
    let missing = Outcome::Rejected(RejectionReason::ContentMissing);

    // GIVEN a completed single PUT whose object is removed before verify looks (the lifecycle
    // rule, or a hand), WHEN its event arrives, THEN the file is rejected content_missing
    let single = upload(&api, &png(20), "image/png", true, false).await;
    api.complete(&single.file_id).await.file();
    api.services
        .storage
        .objects
        .delete(&single.s3_key)
        .await
        .unwrap();
    assert_eq!(api.deliver(&single.s3_key).await, missing);
    let file = api.get(&single.file_id).await.file();
    assert_eq!(file.status, Status::Rejected);
    assert_eq!(file.rejection_reason.as_deref(), Some("content_missing"));

    // and so is a large one whose object goes between two steps of its check
    let (large, _, first) = upload_large(&api, 6 * MIB, None).await;
    api.services
        .storage
        .objects
        .delete(&large.s3_key)
        .await
        .unwrap();
    assert_eq!(check_on(&api, first).await.last(), Some(&missing));

    // but a PUT not yet completed may still come: no verdict (the file expires with its TTL)
    let pending = upload(&api, &png(21), "image/png", true, false).await;
    api.services
        .storage
        .objects
        .delete(&pending.s3_key)
        .await
        .unwrap();
    assert_eq!(
        api.deliver(&pending.s3_key).await,
        Outcome::Ignored("object no longer exists")
    );
    assert_eq!(
        api.get(&pending.file_id).await.file().status,
        Status::PendingUpload
    );

    // and each rejection is a file.rejected event
    path.until("both rejections", |path| path.envelopes.len() == 2)
        .await;
    path.drain(Duration::from_secs(1)).await;
    assert_eq!(path.published_types(), ["file.rejected", "file.rejected"]);
    for envelope in &path.envelopes {
        assert_eq!(
            envelope["detail"]["data"]["rejection_reason"],
            "content_missing"
        );
    }
}

#[tokio::test]
async fn the_object_of_a_job_replaced_during_its_check_is_removed() {
    // GIVEN a check under way, its object tagged checking, when the file's job is replaced and
    // the object left behind (a reupload whose deletion of the old job's storage failed)
    let api = TestApi::with_config(step_api_config).await;
    let (plan, _, first) = upload_large(&api, 6 * MIB, None).await;
    let record = api.record(&plan.file_id).await;
    let job = record.job.clone().expect("a job");
    let newer = JobId::random();
    let replaced = UploadJob {
        job_id: newer,
        s3_key: shared::domain::ids::object_key(record.file_id, newer),
        checkpoint: None,
        ..job
    };
    let update = api
        .services
        .table
        .files
        .update(record, |file| {
            Ok(Some(FileRecord {
                job: Some(replaced.clone()),
                ..file.clone()
            }))
        })
        .await
        .unwrap();
    assert!(matches!(update, shared::dynamo::Update::Applied { .. }));

    // WHEN the check goes on, THEN no verdict is written and the object is gone: nobody can
    // serve it, and tagged checking it would never expire
    assert_eq!(
        check_on(&api, first).await.last(),
        Some(&Outcome::Ignored("not the file's current upload"))
    );
    assert!(
        !api.stored_objects(&plan.file_id)
            .await
            .contains(&plan.s3_key)
    );
}
