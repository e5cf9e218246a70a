//! Multipart uploads and reuploads against real storage: parts, resume, abort, races.

use integration_tests::serde_json::{Value, json};
use integration_tests::{Event, TestApi, digests};

const MIB: usize = 1 << 20;
/// Three full parts of 5 MiB and a remainder.
const FILE_SIZE: usize = 3 * 5 * MIB + 1234;

async fn multipart_api() -> TestApi {
    TestApi::with_config(|config| {
        config.multipart_threshold = 5 * MIB as u64;
        config.part_size = 5 * MIB as u64;
    })
    .await
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn part(bytes: &[u8], number: usize) -> Vec<u8> {
    let start = (number - 1) * 5 * MIB;
    bytes[start..(start + 5 * MIB).min(bytes.len())].to_vec()
}

async fn create_multipart(api: &TestApi, bytes: &[u8]) -> Value {
    let (sha256, _) = digests(bytes);
    let reply = api
        .create(json!({"file_name": "big.bin", "file_size": bytes.len(), "sha256": sha256}))
        .await;
    assert_eq!(reply.status, 201, "{:#}", reply.body);
    reply.body
}

async fn put_part(api: &TestApi, url: &str, bytes: Vec<u8>) -> String {
    let response = api.http.put(url).body(bytes).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.headers()["etag"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_multipart_upload_completes_without_etags_and_is_byte_identical() {
    // GIVEN a file above the threshold
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 1);
    let plan = create_multipart(&api, &bytes).await;
    assert_eq!(plan["part_count"], 4);
    assert_eq!(plan["part_size"], 5 * MIB);
    assert!(plan["upload_id"].is_string());
    assert_eq!(plan["headers"], json!({}));
    let urls = plan["urls"].as_array().unwrap();
    assert_eq!(urls.len(), 4);

    // WHEN every part is PUT and the upload completed without ETags
    for (index, url) in urls.iter().enumerate() {
        put_part(&api, url.as_str().unwrap(), part(&bytes, index + 1)).await;
    }
    let file_id = plan["file_id"].as_str().unwrap();
    let completed = api.complete(file_id).await;

    // THEN storage holds exactly the bytes
    assert_eq!(completed.status, 200, "{:#}", completed.body);
    assert_eq!(completed.body["status"], "uploaded");
    assert!(api.stored_bytes(plan["s3_key"].as_str().unwrap()).await == bytes);
}

#[tokio::test]
async fn an_interrupted_upload_resumes_from_the_listed_parts_with_fresh_urls() {
    // GIVEN a client that uploaded two parts and lost its plan
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 2);
    let plan = create_multipart(&api, &bytes).await;
    let file_id = plan["file_id"].as_str().unwrap();
    let mut etags = Vec::new();
    for number in [1, 2] {
        etags.push(
            put_part(
                &api,
                plan["urls"][number - 1].as_str().unwrap(),
                part(&bytes, number),
            )
            .await,
        );
    }

    // WHEN it lists the stored parts and asks for URLs for the rest
    let listed = api.list_parts(file_id).await;
    assert_eq!(listed.status, 200, "{:#}", listed.body);
    assert_eq!(
        listed.body["parts"],
        json!([
            {"part_number": 1, "size": 5 * MIB, "etag": etags[0]},
            {"part_number": 2, "size": 5 * MIB, "etag": etags[1]},
        ])
    );
    let fresh = api.sign_parts(file_id, &[3, 4]).await;
    assert_eq!(fresh.status, 200, "{:#}", fresh.body);
    assert!(fresh.body["expires_at"].is_string());
    for number in [3, 4] {
        let url = fresh.body["urls"][number.to_string()].as_str().unwrap();
        etags.push(put_part(&api, url, part(&bytes, number)).await);
    }

    // THEN completing with the ETags it holds assembles the file
    let parts: Vec<Value> = etags
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"part_number": i + 1, "etag": e}))
        .collect();
    let completed = api
        .call(Event::Complete)
        .file(file_id)
        .json(json!({"job_id": plan["job_id"], "parts": parts}))
        .send()
        .await;
    assert_eq!(completed.status, 200, "{:#}", completed.body);
    assert!(api.stored_bytes(plan["s3_key"].as_str().unwrap()).await == bytes);
}

#[tokio::test]
async fn complete_names_missing_and_wrong_sized_parts_and_changes_nothing() {
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 3);
    let plan = create_multipart(&api, &bytes).await;
    let file_id = plan["file_id"].as_str().unwrap();
    put_part(&api, plan["urls"][0].as_str().unwrap(), part(&bytes, 1)).await;
    put_part(&api, plan["urls"][1].as_str().unwrap(), vec![0; 100]).await;
    let before = api.raw_item(file_id).await;

    let completed = api.complete(file_id).await;

    assert_eq!(completed.status, 409, "{:#}", completed.body);
    let details = &completed.body["error"]["details"];
    assert_eq!(details[0]["reason"], "upload_incomplete");
    assert_eq!(details[0]["part_numbers"], json!([3, 4]));
    assert_eq!(details[1]["part_numbers"], json!([2]));
    assert_eq!(api.raw_item(file_id).await, before);
    let wrong_etag = api
        .call(Event::Complete)
        .file(file_id)
        .json(json!({"parts": [{"part_number": 1, "etag": "\"0000\""}]}))
        .send()
        .await;
    assert_eq!(wrong_etag.status, 409);
    assert_eq!(
        api.list_parts(file_id).await.body["parts"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "parts kept for a retry"
    );
}

#[tokio::test]
async fn storage_refuses_part_urls_with_a_tampered_part_number_or_upload_id() {
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 4);
    let plan = create_multipart(&api, &bytes).await;
    let url = plan["urls"][0].as_str().unwrap();
    let upload_id = plan["upload_id"].as_str().unwrap();
    assert!(url.contains("partNumber=1&"), "{url}");
    for tampered in [
        url.replace("partNumber=1&", "partNumber=2&"),
        url.replace(upload_id, "forged-upload-id"),
    ] {
        let response = api
            .http
            .put(&tampered)
            .body(part(&bytes, 1))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{tampered}");
    }
    assert_eq!(
        api.list_parts(plan["file_id"].as_str().unwrap()).await.body["parts"],
        json!([])
    );
}

#[tokio::test]
async fn part_requests_refuse_bad_numbers_and_files_without_an_upload() {
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 5);
    let plan = create_multipart(&api, &bytes).await;
    let file_id = plan["file_id"].as_str().unwrap();
    let before = api.raw_item(file_id).await;
    for (numbers, fields) in [
        (json!([0]), vec!["part_numbers[0]"]),
        (json!([10001]), vec!["part_numbers[0]"]),
        (json!([5]), vec!["part_numbers[0]"]),
        (json!([1, 2, 2]), vec!["part_numbers[2]"]),
        (json!((1..=101).collect::<Vec<_>>()), vec!["part_numbers"]),
        (json!([]), vec!["part_numbers"]),
        (json!("1"), vec!["part_numbers"]),
    ] {
        let reply = api
            .call(Event::SignParts)
            .file(file_id)
            .json(json!({"part_numbers": numbers}))
            .send()
            .await;
        assert_eq!(reply.status, 422, "{numbers}: {:#}", reply.body);
        assert_eq!(reply.error_fields(), fields, "{numbers}");
    }
    assert_eq!(
        api.call(Event::SignParts)
            .file(file_id)
            .raw_body("[1]")
            .send()
            .await
            .status,
        400
    );

    // a file whose upload is over has no parts to sign, list or abort
    let small = api
        .create(json!({"file_name": "s.txt", "file_size": 2}))
        .await;
    let small_id = small.file_id();
    assert_eq!(api.put(&small.body, 0, b"hi".to_vec()).await.status(), 200);
    assert_eq!(api.complete(&small_id).await.status, 200);
    for reply in [
        api.sign_parts(&small_id, &[1]).await,
        api.list_parts(&small_id).await,
        api.abort(&small_id).await,
    ] {
        assert_eq!(reply.status, 409, "{:#}", reply.body);
        assert_eq!(
            reply.body["error"]["details"][0]["reason"],
            "no_upload_in_progress"
        );
    }
    assert_eq!(api.raw_item(file_id).await, before);
}

#[tokio::test]
async fn a_single_part_upload_gets_fresh_urls_and_lists_its_object_as_part_one() {
    let api = TestApi::new().await;
    let created = api
        .create(json!({"file_name": "a.txt", "file_size": 5, "content_type": "text/plain"}))
        .await;
    let file_id = created.file_id();
    assert_eq!(api.list_parts(&file_id).await.body, json!({"parts": []}));
    let fresh = api.sign_parts(&file_id, &[1]).await;
    assert_eq!(fresh.status, 200, "{:#}", fresh.body);
    let url = fresh.body["urls"]["1"].as_str().unwrap();
    assert_eq!(
        api.put_to(url, &created.body, b"hello".to_vec())
            .await
            .status(),
        200
    );
    let listed = api.list_parts(&file_id).await;
    assert_eq!(listed.body["parts"][0]["size"], 5);
    assert_eq!(api.sign_parts(&file_id, &[2]).await.status, 422);
}

#[tokio::test]
async fn an_aborted_reupload_leaves_the_verified_version_in_place() {
    // GIVEN a verified file, reuploaded as a multipart upload with one part in storage
    let api = multipart_api().await;
    let original = b"version one".to_vec();
    let created = api
        .create(json!({"file_name": "v.bin", "file_size": original.len()}))
        .await;
    let file_id = created.file_id();
    assert_eq!(
        api.put(&created.body, 0, original.clone()).await.status(),
        200
    );
    api.settle_verified(&file_id).await;
    let bytes = content(FILE_SIZE, 6);
    let plan = api
        .reupload(&file_id, json!({"file_size": bytes.len()}))
        .await;
    assert_eq!(plan.status, 201, "{:#}", plan.body);
    assert_ne!(plan.body["job_id"], created.body["job_id"]);
    put_part(
        &api,
        plan.body["urls"][0].as_str().unwrap(),
        part(&bytes, 1),
    )
    .await;

    // WHEN the client aborts
    let aborted = api.abort(&file_id).await;

    // THEN the file is its verified version again, and the upload is gone from storage
    assert_eq!(aborted.status, 200, "{:#}", aborted.body);
    assert_eq!(aborted.body["status"], "verified");
    assert_eq!(aborted.body["file_size"], original.len());
    assert_eq!(aborted.body["upload"], json!(null));
    let late_part = api
        .http
        .put(plan.body["urls"][1].as_str().unwrap())
        .body(part(&bytes, 2))
        .send()
        .await
        .unwrap();
    assert!(
        late_part.status().is_client_error(),
        "{}",
        late_part.status()
    );
    let completed = api.complete(&file_id).await;
    assert_eq!(completed.status, 409);
    assert_eq!(
        completed.body["error"]["details"][0]["reason"],
        "no_upload_in_progress"
    );
    assert_eq!(api.download(&file_id).await, original);
}

#[tokio::test]
async fn an_aborted_first_upload_is_rejected_as_aborted() {
    let api = multipart_api().await;
    let plan = create_multipart(&api, &content(FILE_SIZE, 7)).await;
    let file_id = plan["file_id"].as_str().unwrap();
    let aborted = api.abort(file_id).await;
    assert_eq!(aborted.status, 200, "{:#}", aborted.body);
    assert_eq!(aborted.body["status"], "rejected");
    assert_eq!(aborted.body["rejection_reason"], "upload_aborted");
    assert_eq!(aborted.body["download_url"], json!(null));
    assert_eq!(
        api.abort(file_id).await.status,
        409,
        "a second abort finds nothing to abort"
    );
}

#[tokio::test]
async fn a_reupload_keeps_the_old_content_downloadable_until_the_new_is_verified() {
    // GIVEN a verified file
    let api = TestApi::new().await;
    let (old, new) = (b"old content".to_vec(), b"new content, longer".to_vec());
    let created = api
        .create(
            json!({"file_name": "doc.txt", "file_size": old.len(), "content_type": "text/plain"}),
        )
        .await;
    let file_id = created.file_id();
    assert_eq!(api.put(&created.body, 0, old.clone()).await.status(), 200);
    api.settle_verified(&file_id).await;

    // WHEN new content is uploaded and completed
    let plan = api
        .reupload(
            &file_id,
            json!({"file_size": new.len(), "content_type": "text/plain", "metadata": {"v": "2"}}),
        )
        .await;
    assert_eq!(plan.status, 201, "{:#}", plan.body);
    let file = api.get(&file_id).await.body;
    assert_eq!(
        (file["status"].as_str(), file["file_name"].as_str()),
        (Some("pending_upload"), Some("doc.txt"))
    );
    assert_eq!(api.download(&file_id).await, old);
    assert_eq!(api.put(&plan.body, 0, new.clone()).await.status(), 200);
    assert_eq!(api.complete(&file_id).await.body["status"], "uploaded");

    // THEN the old content is served until the new content is verified
    assert_eq!(api.download(&file_id).await, old);
    api.settle_verified(&file_id).await;
    assert_eq!(api.download(&file_id).await, new);
    assert_eq!(api.get(&file_id).await.body["metadata"], json!({"v": "2"}));
}

#[tokio::test]
async fn racing_completes_end_in_one_state() {
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 8);
    let plan = create_multipart(&api, &bytes).await;
    let file_id = plan["file_id"].as_str().unwrap();
    for (index, url) in plan["urls"].as_array().unwrap().iter().enumerate() {
        put_part(&api, url.as_str().unwrap(), part(&bytes, index + 1)).await;
    }
    let (a, b) = tokio::join!(api.complete(file_id), api.complete(file_id));
    assert_eq!(
        (a.status, b.status),
        (200, 200),
        "{:#} {:#}",
        a.body,
        b.body
    );
    assert_eq!(a.body["status"], "uploaded");
    assert_eq!(b.body["status"], "uploaded");
    assert!(api.stored_bytes(plan["s3_key"].as_str().unwrap()).await == bytes);
}

#[tokio::test]
async fn a_complete_racing_an_abort_ends_in_one_consistent_state() {
    for seed in 0..6 {
        let api = multipart_api().await;
        let bytes = content(FILE_SIZE, 10 + seed);
        let plan = create_multipart(&api, &bytes).await;
        let file_id = plan["file_id"].as_str().unwrap();
        for (index, url) in plan["urls"].as_array().unwrap().iter().enumerate() {
            put_part(&api, url.as_str().unwrap(), part(&bytes, index + 1)).await;
        }
        let (completed, aborted) = tokio::join!(api.complete(file_id), api.abort(file_id));
        let file = api.get(file_id).await.body;
        let stored = api.stored_objects(file_id).await;
        match (completed.status, aborted.status) {
            (200, 409) => {
                assert_eq!(file["status"], "uploaded");
                assert_eq!(stored.len(), 1);
            }
            (409, 200) => {
                assert_eq!(file["status"], "rejected");
                assert_eq!(file["rejection_reason"], "upload_aborted");
                assert!(
                    stored.is_empty(),
                    "an aborted upload leaves no object: {stored:?}"
                );
            }
            other => panic!(
                "complete and abort both claimed the file: {other:?} {:#} {:#}",
                completed.body, aborted.body
            ),
        }
    }
}

#[tokio::test]
async fn a_reupload_racing_a_complete_ends_in_one_consistent_state() {
    for _ in 0..3 {
        let api = TestApi::new().await;
        let created = api
            .create(json!({"file_name": "r.txt", "file_size": 3}))
            .await;
        let file_id = created.file_id();
        assert_eq!(
            api.put(&created.body, 0, b"abc".to_vec()).await.status(),
            200
        );
        let (completed, replaced) = tokio::join!(
            api.complete(&file_id),
            api.reupload(&file_id, json!({"file_size": 4}))
        );
        // whichever came first, the reupload wins: the new job is current and waits for its bytes
        assert_eq!(replaced.status, 201, "{:#}", replaced.body);
        assert!(
            matches!(completed.status, 200 | 409),
            "{:#}",
            completed.body
        );
        let file = api.get(&file_id).await.body;
        assert_eq!(file["status"], "pending_upload");
        assert_eq!(file["upload"]["job_id"], replaced.body["job_id"]);
        assert_eq!(file["file_size"], 4);
    }
}

#[tokio::test]
async fn bulk_signed_part_urls_are_the_sdks_and_storage_takes_them() {
    // GIVEN a multipart upload of four parts
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 20);
    let plan = create_multipart(&api, &bytes).await;
    let (key, upload_id) = (
        plan["s3_key"].as_str().unwrap(),
        plan["upload_id"].as_str().unwrap(),
    );
    let objects = &api.services.presigner;
    let expiry = std::time::Duration::from_secs(900);
    let signed_at = std::time::SystemTime::now();

    // WHEN its part URLs are signed in bulk
    let bulk = objects
        .presign_parts_at(key, upload_id, &[1, 2, 3, 4], expiry, signed_at)
        .await
        .unwrap();

    // THEN each is byte for byte the SDK's, and storage accepts every part through them
    for number in 1..=4 {
        let sdk = objects
            .presign_part_at(key, upload_id, number, expiry, signed_at)
            .await
            .unwrap();
        assert_eq!(bulk[&number], sdk, "part {number}");
        put_part(&api, &bulk[&number], part(&bytes, number as usize)).await;
    }
    let completed = api.complete(plan["file_id"].as_str().unwrap()).await;
    assert_eq!(completed.status, 200, "{:#}", completed.body);
    assert!(api.stored_bytes(key).await == bytes);
}
