//! The single-part upload path against real storage: create → PUT → complete → get, and the
//! PUTs that storage must refuse.

use std::collections::BTreeMap;

use integration_tests::serde_json::json;
use integration_tests::{Plan, Status, TestApi, declaration, digests};

fn pdf_bytes(len: usize) -> Vec<u8> {
    let mut bytes = b"%PDF-1.7\n".to_vec();
    bytes.extend((0..len - bytes.len()).map(|i| (i * 31 % 251) as u8));
    bytes
}

#[tokio::test]
async fn create_put_complete_get_with_sha256_and_md5() {
    // GIVEN a declared PDF with both digests
    let api = TestApi::new().await;
    let bytes = pdf_bytes(300_000);
    let (sha256, md5) = digests(&bytes);
    let plan = api
        .create(json!({
            "file_name": "report.pdf", "file_size": bytes.len(), "content_type": "application/pdf",
            "sha256": sha256, "md5": md5, "metadata": {"category": "invoice"}
        }))
        .await
        .plan();
    assert_eq!(plan.method, "PUT");
    assert_eq!(plan.part_count, 1);
    assert_eq!(plan.upload_id, None);
    assert_eq!(plan.urls.len(), 1);
    assert_eq!(plan.headers["content-type"], "application/pdf");
    assert_eq!(plan.headers["x-amz-checksum-sha256"], sha256);
    assert_eq!(plan.headers["content-md5"], md5);
    let file_id = &plan.file_id;
    assert_eq!(plan.s3_key, format!("uploads/{file_id}/{}", plan.job_id));

    // WHEN the client PUTs the bytes with the signed headers and completes
    api.upload_whole(&plan, bytes.clone()).await;
    let completed = api.complete(file_id).await.file();

    // THEN the file is uploaded, and reads back as declared
    assert_eq!(completed.status, Status::Uploaded);
    let file = api.get(file_id).await.file();
    assert_eq!(file.file_name, "report.pdf");
    assert_eq!(file.sha256, Some(sha256));
    assert_eq!(file.md5, Some(md5));
    assert_eq!(
        file.metadata,
        BTreeMap::from([("category".to_owned(), "invoice".to_owned())])
    );
    assert_eq!(file.download_url, None, "not verified yet");

    // AND the stored object is byte-identical
    assert!(api.stored_bytes(&plan.s3_key).await == bytes);
}

/// Declares `bytes` as a PDF (with the given digests) and returns the plan.
async fn declare(api: &TestApi, bytes: &[u8], with_sha256: bool, with_md5: bool) -> Plan {
    let body = declaration("doc.pdf", "application/pdf", bytes, with_sha256, with_md5);
    api.create(body).await.plan()
}

/// After a PUT that storage refused: nothing is stored, complete answers 409, the record is unchanged.
async fn assert_nothing_landed(api: &TestApi, plan: &Plan) {
    let file_id = &plan.file_id;
    assert_eq!(api.stored_objects(file_id).await, Vec::<String>::new());
    let before = api.raw_item(file_id).await.expect("record exists");
    let completed = api.complete(file_id).await;
    assert_eq!(completed.conflict().reason(), Some("upload_incomplete"));
    assert_eq!(api.raw_item(file_id).await, Some(before));
    assert_eq!(api.get(file_id).await.file().status, Status::PendingUpload);
}

#[tokio::test]
async fn storage_refuses_a_url_whose_key_was_tampered_with() {
    // GIVEN a declared PDF with its sha256
    let api = TestApi::new().await;
    let bytes = pdf_bytes(10_000);
    let plan = declare(&api, &bytes, true, false).await;

    // WHEN the client PUTs to its URL with another job id in the key
    let url = plan.url(1);
    let tampered = url.replace(&plan.job_id, &uuid_like());
    assert_ne!(tampered, url);
    let put = api.put_to(&tampered, &plan, bytes).await;

    // THEN storage refuses the request, and nothing landed
    assert_eq!(put.status(), 403);
    assert_nothing_landed(&api, &plan).await;
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".to_owned()
}

#[tokio::test]
async fn storage_refuses_an_expired_url() {
    // GIVEN a declared PDF whose upload URL lives one second
    let api =
        TestApi::with_config(|config| config.upload_url_expiry = std::time::Duration::from_secs(1))
            .await;
    let bytes = pdf_bytes(10_000);
    let plan = declare(&api, &bytes, true, false).await;

    // WHEN the client PUTs after the URL has expired
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let put = api.put(&plan, 1, bytes).await;

    // THEN storage refuses the request, and nothing landed
    assert_eq!(put.status(), 403);
    assert_nothing_landed(&api, &plan).await;
}

#[tokio::test]
async fn storage_refuses_a_different_content_type() {
    // GIVEN a declared PDF
    let api = TestApi::new().await;
    let bytes = pdf_bytes(10_000);
    let mut plan = declare(&api, &bytes, false, false).await;

    // WHEN the client PUTs it as text/html instead
    plan.headers
        .insert("content-type".to_owned(), "text/html".to_owned());
    let put = api.put(&plan, 1, bytes).await;

    // THEN storage refuses the request, and nothing landed
    assert_eq!(put.status(), 403);
    assert_nothing_landed(&api, &plan).await;
}

#[tokio::test]
async fn storage_refuses_a_body_whose_sha256_differs() {
    // GIVEN a declared PDF with its sha256
    let api = TestApi::new().await;
    let bytes = pdf_bytes(10_000);
    let plan = declare(&api, &bytes, true, false).await;

    // WHEN the client PUTs a body with one bit flipped
    let mut other = bytes.clone();
    other[5000] ^= 1;
    let put = api.put(&plan, 1, other).await;

    // THEN storage refuses the body, and nothing landed
    assert_eq!(put.status(), 400, "{}", put.text().await.unwrap());
    assert_nothing_landed(&api, &plan).await;
}

#[tokio::test]
async fn storage_refuses_a_body_whose_md5_differs() {
    // GIVEN a declared PDF with its md5
    let api = TestApi::new().await;
    let bytes = pdf_bytes(10_000);
    let plan = declare(&api, &bytes, false, true).await;

    // WHEN the client PUTs a body with one bit flipped
    let mut other = bytes.clone();
    other[9999] ^= 1;
    let put = api.put(&plan, 1, other).await;

    // THEN storage refuses the body, and nothing landed
    assert_eq!(put.status(), 400, "{}", put.text().await.unwrap());
    assert_nothing_landed(&api, &plan).await;
}

#[tokio::test]
async fn storage_refuses_a_body_of_another_length() {
    // GIVEN a plan without digests: only the signed content-length guards the size
    let api = TestApi::new().await;
    let bytes = pdf_bytes(10_000);
    let plan = declare(&api, &bytes, false, false).await;

    // WHEN the client sends fewer bytes, with their true length
    let put = api
        .http
        .put(plan.url(1))
        .header("content-type", "application/pdf")
        .body(bytes[..9_000].to_vec())
        .send()
        .await
        .unwrap();

    // THEN storage refuses the request
    assert_eq!(put.status(), 403);
    assert_nothing_landed(&api, &plan).await;
}

#[tokio::test]
async fn complete_is_idempotent_and_checks_the_job_id() {
    // GIVEN a declared PDF whose bytes the client has PUT
    let api = TestApi::new().await;
    let bytes = pdf_bytes(10_000);
    let plan = declare(&api, &bytes, true, true).await;
    let file_id = &plan.file_id;
    api.upload_whole(&plan, bytes).await;

    // WHEN it is completed naming another job
    let stale = api
        .complete_with(file_id, json!({"job_id": uuid_like()}))
        .await;

    // THEN it is refused as superseded, and the file still waits for its upload
    assert_eq!(stale.conflict().reason(), Some("job_superseded"));
    assert_eq!(api.get(file_id).await.file().status, Status::PendingUpload);

    // WHEN it is completed naming its own job, and then completed again
    let first = api
        .complete_with(file_id, json!({"job_id": plan.job_id}))
        .await
        .file();
    let item = api.raw_item(file_id).await;
    let second = api.complete(file_id).await.file();

    // THEN the second answer is the first one, and nothing more was written
    assert_eq!(second.status, Status::Uploaded);
    assert_eq!(second.updated_at, first.updated_at);
    assert_eq!(
        api.raw_item(file_id).await,
        item,
        "a repeated complete writes nothing"
    );
}

#[tokio::test]
async fn an_upload_url_writes_once_and_cannot_replace_what_landed() {
    // GIVEN a single-part upload without digests, PUT once
    let api = TestApi::new().await;
    let bytes = pdf_bytes(10_000);
    let plan = declare(&api, &bytes, false, false).await;
    assert_eq!(plan.headers["if-none-match"], "*");
    api.upload_whole(&plan, bytes.clone()).await;

    // WHEN the same URL is used again with other bytes of the same length and type
    let mut other = bytes.clone();
    other[100] ^= 0xff;
    let again = api.put(&plan, 1, other).await;

    // THEN storage refuses, and the object is what landed first
    assert_eq!(again.status(), 412);
    assert!(api.stored_bytes(&plan.s3_key).await == bytes);
}
