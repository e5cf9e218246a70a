//! Checksums at any size (docs/API.md v1.2): part URLs signed for each part's SHA-256, so storage
//! refuses a corrupted part and only that part is sent again, and the whole file's SHA-256
//! declared at complete by a client that hashed while it uploaded, which verify checks.

use std::collections::BTreeMap;

use integration_tests::serde_json::{Value, json};
use integration_tests::{Event, Plan, SignedParts, Status, TestApi, digests};
use shared::domain::RejectionReason;
use verify::Outcome;

use crate::multipart::{FILE_SIZE, content, multipart_api, part};

fn sha256(bytes: &[u8]) -> String {
    digests(bytes).0
}

/// Declares `bytes` by size alone, with part checksums, as a client that hashes while it
/// uploads does.
async fn create_hashing(api: &TestApi, bytes: &[u8]) -> Plan {
    let plan = api
        .create(
            json!({"file_name": "big.bin", "file_size": bytes.len(), "part_checksums": "sha256"}),
        )
        .await
        .plan();
    assert_eq!(plan.part_checksums.as_deref(), Some("sha256"));
    assert!(plan.urls.is_empty(), "URLs come once parts are hashed");
    plan
}

async fn sign(api: &TestApi, file_id: &str, body: Value) -> integration_tests::ApiReply {
    api.call(Event::SignParts)
        .file(file_id)
        .json(body)
        .send()
        .await
}

/// The URLs of `numbers`, each signed for its part of `bytes`.
async fn sign_hashed(api: &TestApi, plan: &Plan, bytes: &[u8], numbers: &[u32]) -> SignedParts {
    let checksums: BTreeMap<String, String> = numbers
        .iter()
        .map(|&n| (n.to_string(), sha256(&part(bytes, n))))
        .collect();
    sign(api, &plan.file_id, json!({ "checksums": checksums }))
        .await
        .signed()
}

async fn put(
    api: &TestApi,
    plan: &Plan,
    signed: &SignedParts,
    number: u32,
    bytes: Vec<u8>,
) -> reqwest::Response {
    signed
        .put(&api.http, plan, number, bytes)
        .send()
        .await
        .expect("storage answers")
}

#[tokio::test]
async fn storage_refuses_a_corrupted_part_and_only_that_part_is_sent_again() {
    // GIVEN a multipart upload declared by size, its parts' URLs signed for their SHA-256
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 101);
    let plan = create_hashing(&api, &bytes).await;
    let signed = sign_hashed(&api, &plan, &bytes, &[1, 2, 3, 4]).await;
    assert_eq!(
        signed.headers[&2],
        BTreeMap::from([("x-amz-checksum-sha256".to_owned(), sha256(&part(&bytes, 2)))])
    );

    // WHEN part 2 arrives corrupted (one byte flipped in flight)
    let mut corrupted = part(&bytes, 2);
    corrupted[1000] ^= 0x40;
    let refused = put(&api, &plan, &signed, 2, corrupted).await;

    // THEN storage refuses it, and sending it again as it is, with the other parts, completes
    assert_eq!(refused.status(), 400, "{}", refused.text().await.unwrap());
    let stored = api.list_parts(&plan.file_id).await.parts();
    assert!(
        stored.parts.is_empty(),
        "nothing of the corrupted part is kept"
    );
    for number in 1..=4 {
        let response = put(&api, &plan, &signed, number, part(&bytes, number)).await;
        assert_eq!(response.status(), 200, "part {number}");
    }
    let completed = api
        .complete_with(&plan.file_id, json!({"sha256": sha256(&bytes)}))
        .await
        .file();
    assert_eq!(completed.status, Status::Uploaded);
    assert_eq!(completed.sha256.as_deref(), Some(sha256(&bytes).as_str()));
    assert_eq!(api.deliver(&plan.s3_key).await, Outcome::Verified);
    assert!(api.download(&plan.file_id).await == bytes);
}

#[tokio::test]
async fn a_wrong_whole_file_digest_at_complete_ends_rejected() {
    // GIVEN every part stored as signed
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 102);
    let plan = create_hashing(&api, &bytes).await;
    let signed = sign_hashed(&api, &plan, &bytes, &[1, 2, 3, 4]).await;
    for number in 1..=4 {
        assert_eq!(
            put(&api, &plan, &signed, number, part(&bytes, number))
                .await
                .status(),
            200
        );
    }

    // WHEN complete declares a digest the bytes do not have
    let wrong = sha256(b"other bytes");
    let completed = api
        .complete_with(&plan.file_id, json!({ "sha256": wrong }))
        .await;
    assert_eq!(completed.status, 200, "{:#}", completed.body);

    // THEN verify checks it as a declared one
    assert_eq!(
        api.deliver(&plan.s3_key).await,
        Outcome::Rejected(RejectionReason::ChecksumMismatch)
    );
    let file = api.get(&plan.file_id).await.file();
    assert_eq!(file.rejection_reason.as_deref(), Some("checksum_mismatch"));
}

#[tokio::test]
async fn part_urls_of_an_upload_with_part_checksums_need_every_parts_digest() {
    // GIVEN an upload declared by size, with part checksums
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 103);
    let plan = create_hashing(&api, &bytes).await;
    let before = api.raw_item(&plan.file_id).await;
    let good = sha256(&part(&bytes, 1));

    // AND requests whose digests are missing, extra or malformed
    for (body, fields) in [
        (json!({"part_numbers": [1, 2]}), vec!["checksums"]),
        (
            json!({"part_numbers": [1, 2], "checksums": {"1": good}}),
            vec!["checksums.2"],
        ),
        (
            json!({"part_numbers": [1], "checksums": {"1": good, "3": good}}),
            vec!["checksums.3"],
        ),
        (
            json!({"checksums": {"0": good, "5": good, "01": good, "2": "not base64"}}),
            vec!["checksums.0", "checksums.01", "checksums.2", "checksums.5"],
        ),
        (json!({"checksums": {}}), vec!["checksums"]),
        (json!({"checksums": [good]}), vec!["checksums"]),
    ] {
        // WHEN part URLs are asked for with one of them
        let reply = sign(&api, &plan.file_id, body.clone()).await;

        // THEN the request is refused, naming each faulty field
        assert_eq!(reply.status, 422, "{body}: {:#}", reply.body);
        assert_eq!(reply.error_fields(), fields, "{body}");
    }

    // AND the record is unchanged
    assert_eq!(api.raw_item(&plan.file_id).await, before);
}

#[tokio::test]
async fn an_upload_started_without_part_checksums_signs_none() {
    // GIVEN an upload declared by size, without part checksums
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 104);
    let plan = api
        .create(json!({"file_name": "big.bin", "file_size": bytes.len()}))
        .await
        .plan();
    assert_eq!(plan.part_checksums, None);
    assert_eq!(plan.urls.len(), 4);

    // WHEN a part's URL is asked for with its digest
    let reply = sign(
        &api,
        &plan.file_id,
        json!({"part_numbers": [1], "checksums": {"1": sha256(&part(&bytes, 1))}}),
    )
    .await;

    // THEN the request is refused, naming the checksums
    assert_eq!(reply.status, 422, "{:#}", reply.body);
    assert_eq!(reply.error_fields(), ["checksums"]);

    // WHEN it is asked for without one
    let plain = api.sign_parts(&plan.file_id, &[1]).await.signed();

    // THEN it is signed with no checksum header
    assert!(plain.headers.is_empty());
}

#[tokio::test]
async fn a_digest_at_complete_other_than_the_declared_one_is_refused_and_changes_nothing() {
    // GIVEN a single PUT declared with its SHA-256, stored
    let api = TestApi::new().await;
    let bytes = b"declared up front".to_vec();
    let plan = api
        .create(json!({"file_name": "a.txt", "file_size": bytes.len(), "content_type": "text/plain", "sha256": sha256(&bytes)}))
        .await
        .plan();
    api.upload_whole(&plan, bytes.clone()).await;
    let before = api.raw_item(&plan.file_id).await;

    // WHEN complete gives another one, or a malformed one
    let other = api
        .complete_with(&plan.file_id, json!({"sha256": sha256(b"x"), "md5": "bad"}))
        .await;
    assert_eq!(other.status, 422, "{:#}", other.body);
    assert_eq!(other.error_fields(), ["md5"]);
    let other = api
        .complete_with(&plan.file_id, json!({ "sha256": sha256(b"x") }))
        .await;

    // THEN it is refused, naming the field, and nothing changed
    assert_eq!(other.status, 422, "{:#}", other.body);
    assert_eq!(other.error_fields(), ["sha256"]);
    assert_eq!(api.raw_item(&plan.file_id).await, before);

    // AND the same digest again is no conflict
    let same = api
        .complete_with(&plan.file_id, json!({ "sha256": sha256(&bytes) }))
        .await;
    assert_eq!(same.status, 200, "{:#}", same.body);
}

#[tokio::test]
async fn a_single_put_with_part_checksums_is_signed_for_the_files_digest_which_it_keeps() {
    // GIVEN a small file declared by size with part checksums: one part, the whole file
    let api = TestApi::new().await;
    let bytes = b"a small file, hashed while sent".to_vec();
    let plan = api
        .create(json!({"file_name": "s.txt", "file_size": bytes.len(), "content_type": "text/plain", "part_checksums": "sha256"}))
        .await
        .plan();
    assert_eq!(plan.upload_id, None);
    assert!(plan.urls.is_empty());

    // WHEN its URL is signed for its digest, and a corrupted body is sent before the right one
    let signed = sign(
        &api,
        &plan.file_id,
        json!({"checksums": {"1": sha256(&bytes)}}),
    )
    .await
    .signed();
    let mut corrupted = bytes.clone();
    corrupted[0] ^= 1;
    let refused = put(&api, &plan, &signed, 1, corrupted).await;
    assert_eq!(refused.status(), 400, "{}", refused.text().await.unwrap());
    assert_eq!(
        put(&api, &plan, &signed, 1, bytes.clone()).await.status(),
        200
    );

    // THEN verify, here before complete, proves the digest by storage's own check and keeps it,
    // so complete's digest agrees with it, and another one is refused
    assert_eq!(api.deliver(&plan.s3_key).await, Outcome::Verified);
    let file = api.get(&plan.file_id).await.file();
    assert_eq!(file.sha256.as_deref(), Some(sha256(&bytes).as_str()));
    let completed = api
        .complete_with(&plan.file_id, json!({ "sha256": sha256(&bytes) }))
        .await
        .file();
    assert_eq!(completed.status, Status::Verified);
    let other = api
        .complete_with(&plan.file_id, json!({ "sha256": sha256(b"x") }))
        .await;
    assert_eq!(other.error_fields(), ["sha256"]);

    // AND a part checksum other than a declared digest cannot sign the one part
    let other_bytes = b"other bytes, declared".to_vec();
    let declared = api
        .create(json!({"file_name": "d.txt", "file_size": other_bytes.len(), "content_type": "text/plain", "sha256": sha256(&other_bytes), "part_checksums": "sha256"}))
        .await
        .plan();
    let reply = sign(
        &api,
        &declared.file_id,
        json!({"checksums": {"1": sha256(b"x")}}),
    )
    .await;
    assert_eq!(reply.error_fields(), ["checksums.1"]);
}

#[tokio::test]
async fn a_digest_arriving_after_its_content_was_verified_without_it_is_refused() {
    // GIVEN a single PUT declared without digests, verified before complete
    let api = TestApi::new().await;
    let bytes = b"verified before its digest".to_vec();
    let plan = api
        .create(json!({"file_name": "late.txt", "file_size": bytes.len(), "content_type": "text/plain"}))
        .await
        .plan();
    api.upload_whole(&plan, bytes.clone()).await;
    assert_eq!(api.deliver(&plan.s3_key).await, Outcome::Verified);
    let before = api.raw_item(&plan.file_id).await;

    // WHEN complete brings the whole file's SHA-256
    let late = api
        .complete_with(&plan.file_id, json!({ "sha256": sha256(&bytes) }))
        .await;

    // THEN it cannot be checked any more: 409, and the file is as it was
    assert_eq!(late.conflict().reason(), Some("already_settled"));
    assert_eq!(api.raw_item(&plan.file_id).await, before);
}

#[tokio::test]
async fn a_hashed_reupload_whose_digest_fails_leaves_the_verified_version_served() {
    // GIVEN a verified file, and a reupload of new content in parts signed for their digests
    let api = multipart_api().await;
    let old = content(FILE_SIZE, 105);
    let plan = create_hashing(&api, &old).await;
    let signed = sign_hashed(&api, &plan, &old, &[1, 2, 3, 4]).await;
    for number in 1..=4 {
        assert_eq!(
            put(&api, &plan, &signed, number, part(&old, number))
                .await
                .status(),
            200
        );
    }
    api.complete_with(&plan.file_id, json!({ "sha256": sha256(&old) }))
        .await
        .file();
    assert_eq!(api.deliver(&plan.s3_key).await, Outcome::Verified);
    let new = content(FILE_SIZE, 106);
    let again = api
        .reupload(
            &plan.file_id,
            json!({"file_size": new.len(), "part_checksums": "sha256"}),
        )
        .await
        .plan();
    assert!(again.urls.is_empty());
    let signed = sign_hashed(&api, &again, &new, &[1, 2, 3, 4]).await;
    for number in 1..=4 {
        assert_eq!(
            put(&api, &again, &signed, number, part(&new, number))
                .await
                .status(),
            200
        );
    }

    // WHEN its complete declares a digest the new bytes do not have
    let completed = api
        .complete_with(&plan.file_id, json!({ "sha256": sha256(&old) }))
        .await;
    assert_eq!(completed.status, 200, "{:#}", completed.body);

    // THEN the new content is rejected, the old one still served, and the old digest still
    // deduplicates to it
    assert_eq!(
        api.deliver(&again.s3_key).await,
        Outcome::Rejected(RejectionReason::ChecksumMismatch)
    );
    assert!(api.download(&plan.file_id).await == old);
    let dedup = api
        .create(json!({"file_name": "copy.bin", "file_size": old.len(), "sha256": sha256(&old)}))
        .await
        .file();
    assert_eq!(
        (dedup.file_id, dedup.deduplicated),
        (plan.file_id, Some(true))
    );
}
