//! Multipart uploads and reuploads against real storage: parts, resume, abort, races.

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::serde_json::{Value, json};
use integration_tests::{Event, Part, Plan, Status, TestApi, digests};
use shared::s3::PartToSign;

pub(crate) const MIB: usize = 1 << 20;
/// Three full parts of 5 MiB and a remainder.
pub(crate) const FILE_SIZE: usize = 3 * 5 * MIB + 1234;

/// Parts of 5 MiB above 5 MiB.
pub(crate) async fn multipart_api() -> TestApi {
    TestApi::with_config(|config| {
        config.multipart_threshold = 5 * MIB as u64;
        config.part_size = 5 * MIB as u64;
    })
    .await
}

pub(crate) fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// Part `number` of `bytes`, cut at 5 MiB.
pub(crate) fn part(bytes: &[u8], number: u32) -> Vec<u8> {
    let start = (number as usize - 1) * 5 * MIB;
    bytes[start..(start + 5 * MIB).min(bytes.len())].to_vec()
}

async fn create_multipart(api: &TestApi, bytes: &[u8]) -> Plan {
    let (sha256, _) = digests(bytes);
    api.create(json!({"file_name": "big.bin", "file_size": bytes.len(), "sha256": sha256}))
        .await
        .plan()
}

#[tokio::test]
async fn a_multipart_upload_completes_without_etags_and_is_byte_identical() {
    // GIVEN a file above the threshold
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 1);
    let plan = create_multipart(&api, &bytes).await;
    assert_eq!(plan.part_count, 4);
    assert_eq!(plan.part_size, 5 * MIB as u64);
    assert!(plan.upload_id.is_some());
    assert_eq!(plan.headers, BTreeMap::new());
    assert_eq!(plan.urls.len(), 4);

    // WHEN every part is PUT and the upload completed without ETags
    api.upload_parts(&plan, &bytes).await;
    let completed = api.complete(&plan.file_id).await.file();

    // THEN storage holds exactly the bytes
    assert_eq!(completed.status, Status::Uploaded);
    assert!(api.stored_bytes(&plan.s3_key).await == bytes);
}

#[tokio::test]
async fn an_interrupted_upload_resumes_from_the_listed_parts_with_fresh_urls() {
    // GIVEN a client that uploaded two parts and lost its plan
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 2);
    let plan = create_multipart(&api, &bytes).await;
    let file_id = &plan.file_id;
    let mut etags = Vec::new();
    for number in [1, 2] {
        etags.push(api.put_part(plan.url(number), part(&bytes, number)).await);
    }

    // WHEN it lists the stored parts and asks for URLs for the rest
    let listed = api.list_parts(file_id).await.parts();
    let stored = |part_number: u32, etag: &str| Part {
        part_number,
        size: 5 * MIB as u64,
        etag: etag.to_owned(),
    };
    assert_eq!(listed.parts, [stored(1, &etags[0]), stored(2, &etags[1])]);
    // signed(): a 200 with the URLs and their expires_at, a string
    let fresh = api.sign_parts(file_id, &[3, 4]).await.signed();
    for number in [3, 4] {
        etags.push(api.put_part(fresh.url(number), part(&bytes, number)).await);
    }

    // THEN completing with the ETags it holds assembles the file
    let parts: Vec<Value> = etags
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"part_number": i + 1, "etag": e}))
        .collect();
    let completed = api
        .complete_with(file_id, json!({"job_id": plan.job_id, "parts": parts}))
        .await;
    assert_eq!(completed.status, 200, "{:#}", completed.body);
    assert!(api.stored_bytes(&plan.s3_key).await == bytes);
}

#[tokio::test]
async fn complete_names_missing_and_wrong_sized_parts_and_changes_nothing() {
    // GIVEN a multipart upload of four parts, only the first stored through its URL
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 3);
    let plan = create_multipart(&api, &bytes).await;
    let file_id = &plan.file_id;
    api.put_part(plan.url(1), part(&bytes, 1)).await;

    // AND a part 2 of 100 bytes: part URLs refuse a part of another length; a part written with
    // storage credentials (or through a URL handed out before part URLs signed their lengths) is
    // checked by complete.
    api.services
        .storage
        .objects
        .client()
        .upload_part()
        .bucket(api.services.storage.objects.bucket())
        .key(&plan.s3_key)
        .upload_id(plan.upload_id.as_deref().unwrap())
        .part_number(2)
        .body(vec![0; 100].into())
        .send()
        .await
        .unwrap();
    let before = api.raw_item(file_id).await;

    // WHEN the client completes
    let completed = api.complete(file_id).await;

    // THEN it is refused, naming the missing parts and the wrong-sized one, and nothing changed
    let details = completed.conflict().error.details;
    assert_eq!(details[0].reason.as_deref(), Some("upload_incomplete"));
    assert_eq!(details[0].part_numbers, [3, 4]);
    assert_eq!(details[1].part_numbers, [2]);
    assert_eq!(api.raw_item(file_id).await, before);

    // WHEN it completes naming a part with an ETag storage does not have
    let wrong_etag = api
        .complete_with(
            file_id,
            json!({"parts": [{"part_number": 1, "etag": "\"0000\""}]}),
        )
        .await;

    // THEN that is refused too, and the parts are kept for a retry
    assert_eq!(wrong_etag.status, 409);
    assert_eq!(
        api.list_parts(file_id).await.parts().parts.len(),
        2,
        "parts kept for a retry"
    );
}

#[tokio::test]
async fn storage_refuses_part_urls_with_a_tampered_part_number_or_upload_id() {
    // GIVEN a multipart upload and the URL of its first part
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 4);
    let plan = create_multipart(&api, &bytes).await;
    let url = plan.url(1);
    let upload_id = plan.upload_id.as_deref().expect("a multipart upload");
    assert!(url.contains("partNumber=1&"), "{url}");
    for tampered in [
        url.replace("partNumber=1&", "partNumber=2&"),
        url.replace(upload_id, "forged-upload-id"),
    ] {
        // WHEN the part is PUT through the URL with its part number or upload ID altered
        let response = api
            .http
            .put(&tampered)
            .body(part(&bytes, 1))
            .send()
            .await
            .unwrap();

        // THEN storage refuses it
        assert_eq!(response.status(), 403, "{tampered}");
    }

    // AND no part was stored
    assert!(api.list_parts(&plan.file_id).await.parts().parts.is_empty());
}

#[tokio::test]
async fn part_requests_refuse_bad_numbers_and_files_without_an_upload() {
    // GIVEN a multipart upload of four parts
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 5);
    let plan = create_multipart(&api, &bytes).await;
    let file_id = &plan.file_id;
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
        // WHEN URLs are asked for bad part numbers
        let reply = api
            .call(Event::SignParts)
            .file(file_id)
            .json(json!({"part_numbers": numbers}))
            .send()
            .await;

        // THEN the request is refused, naming the bad field
        assert_eq!(reply.status, 422, "{numbers}: {:#}", reply.body);
        assert_eq!(reply.error_fields(), fields, "{numbers}");
    }

    // AND a body that is not a JSON object is a bad request
    assert_eq!(
        api.call(Event::SignParts)
            .file(file_id)
            .raw_body("[1]")
            .send()
            .await
            .status,
        400
    );

    // WHEN a file's upload is over
    let small = api
        .create(json!({"file_name": "s.txt", "file_size": 2}))
        .await
        .plan();
    let small_id = &small.file_id;
    api.upload_whole(&small, b"hi".to_vec()).await;
    assert_eq!(api.complete(small_id).await.status, 200);

    // THEN it has no parts to sign, list or abort
    for reply in [
        api.sign_parts(small_id, &[1]).await,
        api.list_parts(small_id).await,
        api.abort(small_id).await,
    ] {
        assert_eq!(reply.conflict().reason(), Some("no_upload_in_progress"));
    }

    // AND the multipart upload is unchanged
    assert_eq!(api.raw_item(file_id).await, before);
}

#[tokio::test]
async fn a_single_part_upload_gets_fresh_urls_and_lists_its_object_as_part_one() {
    // GIVEN a single-part upload, with no part listed yet
    let api = TestApi::new().await;
    let created = api
        .create(json!({"file_name": "a.txt", "file_size": 5, "content_type": "text/plain"}))
        .await
        .plan();
    let file_id = &created.file_id;
    assert_eq!(api.list_parts(file_id).await.body, json!({"parts": []}));

    // WHEN the client asks for a fresh URL for part 1 and PUTs the bytes through it
    let fresh = api.sign_parts(file_id, &[1]).await.signed();
    assert_eq!(
        api.put_to(fresh.url(1), &created, b"hello".to_vec())
            .await
            .status(),
        200
    );

    // THEN its object is listed as part 1, and there is no part 2 to sign
    let listed = api.list_parts(file_id).await.parts();
    assert_eq!(listed.parts[0].size, 5);
    assert_eq!(api.sign_parts(file_id, &[2]).await.status, 422);
}

#[tokio::test]
async fn an_aborted_reupload_leaves_the_verified_version_in_place() {
    // GIVEN a verified file, reuploaded as a multipart upload with one part in storage
    let api = multipart_api().await;
    let original = b"version one".to_vec();
    let created = api
        .create(json!({"file_name": "v.bin", "file_size": original.len()}))
        .await
        .plan();
    let file_id = &created.file_id;
    api.upload_whole(&created, original.clone()).await;
    api.settle_verified(file_id).await;
    let bytes = content(FILE_SIZE, 6);
    let plan = api
        .reupload(file_id, json!({"file_size": bytes.len()}))
        .await
        .plan();
    assert_ne!(plan.job_id, created.job_id);
    api.put_part(plan.url(1), part(&bytes, 1)).await;

    // WHEN the client aborts
    let aborted = api.abort(file_id).await.file();

    // THEN the file is its verified version again, and the upload is gone from storage
    assert_eq!(aborted.status, Status::Verified);
    assert_eq!(aborted.file_size, original.len() as u64);
    assert_eq!(aborted.upload, None);
    let late_part = api
        .http
        .put(plan.url(2))
        .body(part(&bytes, 2))
        .send()
        .await
        .unwrap();
    assert!(
        late_part.status().is_client_error(),
        "{}",
        late_part.status()
    );
    let completed = api.complete(file_id).await;
    assert_eq!(completed.conflict().reason(), Some("no_upload_in_progress"));
    assert_eq!(api.download(file_id).await, original);
}

#[tokio::test]
async fn an_aborted_first_upload_is_rejected_as_aborted() {
    // GIVEN the first upload of a file, a multipart one
    let api = multipart_api().await;
    let plan = create_multipart(&api, &content(FILE_SIZE, 7)).await;
    let file_id = &plan.file_id;

    // WHEN the client aborts
    let aborted = api.abort(file_id).await.file();

    // THEN the file is rejected as aborted, with nothing to download
    assert_eq!(aborted.status, Status::Rejected);
    assert_eq!(aborted.rejection_reason.as_deref(), Some("upload_aborted"));
    assert_eq!(aborted.download_url, None);

    // AND a second abort finds nothing to abort
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
        .await
        .plan();
    let file_id = &created.file_id;
    api.upload_whole(&created, old.clone()).await;
    api.settle_verified(file_id).await;

    // WHEN new content is uploaded and completed
    let plan = api
        .reupload(
            file_id,
            json!({"file_size": new.len(), "content_type": "text/plain", "metadata": {"v": "2"}}),
        )
        .await
        .plan();
    let file = api.get(file_id).await.file();
    assert_eq!(
        (file.status, file.file_name.as_str()),
        (Status::PendingUpload, "doc.txt")
    );
    assert_eq!(api.download(file_id).await, old);
    api.upload_whole(&plan, new.clone()).await;
    assert_eq!(api.complete(file_id).await.file().status, Status::Uploaded);

    // THEN the old content is served until the new content is verified
    assert_eq!(api.download(file_id).await, old);
    api.settle_verified(file_id).await;
    assert_eq!(api.download(file_id).await, new);
    assert_eq!(
        api.get(file_id).await.file().metadata,
        BTreeMap::from([("v".to_owned(), "2".to_owned())])
    );
}

#[tokio::test]
async fn racing_completes_end_in_one_state() {
    // GIVEN a multipart upload with every part stored
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 8);
    let plan = create_multipart(&api, &bytes).await;
    let file_id = &plan.file_id;
    api.upload_parts(&plan, &bytes).await;

    // WHEN two completes race
    let (a, b) = tokio::join!(api.complete(file_id), api.complete(file_id));

    // THEN both answer with the file uploaded, and storage holds exactly the bytes
    assert_eq!(
        (a.status, b.status),
        (200, 200),
        "{:#} {:#}",
        a.body,
        b.body
    );
    assert_eq!(a.file().status, Status::Uploaded);
    assert_eq!(b.file().status, Status::Uploaded);
    assert!(api.stored_bytes(&plan.s3_key).await == bytes);
}

#[tokio::test]
async fn a_complete_leaves_an_upload_that_another_request_is_assembling_to_it() {
    // GIVEN an uploaded multipart file whose assembly another request has claimed, for 4 s
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 9);
    let plan = create_multipart(&api, &bytes).await;
    let file_id = &plan.file_id;
    api.upload_parts(&plan, &bytes).await;
    let lease = Duration::from_secs(60);
    let lapses_in = Duration::from_secs(4);
    let claimed_at = shared::domain::timestamp::now() - (lease - lapses_in);
    let upload_id = plan.upload_id.as_deref().expect("a multipart upload");
    let claim = api
        .services
        .table
        .files
        .claim_assembly(
            file_id.parse().expect("file id"),
            plan.job_id.parse().expect("job id"),
            claimed_at,
            lease,
        )
        .await
        .expect("PutItem");
    assert!(claim.is_some(), "nobody else holds it");
    let before = api.raw_item(file_id).await;

    // WHEN the client completes meanwhile
    let waiting = api.complete(file_id).await;

    // THEN it is told to retry, and storage was not asked to assemble the upload
    assert_eq!(waiting.conflict().reason(), Some("concurrent_update"));
    let objects = &api.services.storage.objects;
    assert!(
        objects
            .multipart_upload_exists(&plan.s3_key, upload_id)
            .await
            .expect("ListParts"),
        "the upload is the claim holder's to assemble"
    );
    assert_eq!(api.raw_item(file_id).await, before);

    // WHEN the claim lapses (its holder crashed) and the client retries
    tokio::time::sleep(lapses_in).await;
    let retried = api.complete(file_id).await;

    // THEN the retry assembles it
    assert_eq!(retried.file().status, Status::Uploaded);
    assert!(api.stored_bytes(&plan.s3_key).await == bytes);
}

#[tokio::test]
async fn a_complete_racing_an_abort_ends_in_one_consistent_state() {
    // GIVEN six rounds, each a fresh multipart upload with every part stored
    for seed in 0..6 {
        let api = multipart_api().await;
        let bytes = content(FILE_SIZE, 10 + seed);
        let plan = create_multipart(&api, &bytes).await;
        let file_id = &plan.file_id;
        api.upload_parts(&plan, &bytes).await;

        // WHEN a complete and an abort race
        let (completed, aborted) = tokio::join!(api.complete(file_id), api.abort(file_id));

        // THEN one of them alone claimed the file, and the file and storage agree with it
        let file = api.get(file_id).await.file();
        let stored = api.stored_objects(file_id).await;
        match (completed.status, aborted.status) {
            (200, 409) => {
                assert_eq!(file.status, Status::Uploaded);
                assert_eq!(stored.len(), 1);
            }
            (409, 200) => {
                assert_eq!(file.status, Status::Rejected);
                assert_eq!(file.rejection_reason.as_deref(), Some("upload_aborted"));
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
    // GIVEN three rounds, each a fresh file whose bytes are uploaded but not completed
    for _ in 0..3 {
        let api = TestApi::new().await;
        let created = api
            .create(json!({"file_name": "r.txt", "file_size": 3}))
            .await
            .plan();
        let file_id = &created.file_id;
        api.upload_whole(&created, b"abc".to_vec()).await;

        // WHEN a complete and a reupload race
        let (completed, replaced) = tokio::join!(
            api.complete(file_id),
            api.reupload(file_id, json!({"file_size": 4}))
        );

        // THEN whichever came first, the reupload wins: the new job is current and waits for
        // its bytes
        let replaced = replaced.plan();
        assert!(
            matches!(completed.status, 200 | 409),
            "{:#}",
            completed.body
        );
        let file = api.get(file_id).await.file();
        assert_eq!(file.status, Status::PendingUpload);
        assert_eq!(file.upload.expect("an upload").job_id, replaced.job_id);
        assert_eq!(file.file_size, 4);
    }
}

#[tokio::test]
async fn bulk_signed_part_urls_are_the_sdks_and_storage_takes_them() {
    // GIVEN a multipart upload of four parts, the last one shorter
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 20);
    let plan = create_multipart(&api, &bytes).await;
    let (key, upload_id) = (
        plan.s3_key.as_str(),
        plan.upload_id.as_deref().expect("a multipart upload"),
    );
    let objects = &api.services.storage.presigner;
    let expiry = std::time::Duration::from_secs(900);
    let signed_at = std::time::SystemTime::now();
    let parts: Vec<PartToSign> = (1..=4)
        .map(|number| PartToSign {
            number,
            length: part(&bytes, number).len() as u64,
            sha256: None,
        })
        .collect();

    // WHEN its part URLs are signed in bulk
    let bulk = objects
        .presign_parts_at(key, upload_id, &parts, expiry, signed_at)
        .await
        .unwrap();

    // THEN each is byte for byte the SDK's, and storage accepts every part through them
    for to_sign in &parts {
        let number = to_sign.number;
        let sdk = objects
            .presign_part_at(key, upload_id, to_sign, expiry, signed_at)
            .await
            .unwrap();
        assert_eq!(bulk[&number], sdk, "part {number}");
        api.put_part(&bulk[&number], part(&bytes, number)).await;
    }
    let completed = api.complete(&plan.file_id).await;
    assert_eq!(completed.status, 200, "{:#}", completed.body);
    assert!(api.stored_bytes(key).await == bytes);
}

/// Issue 10: a part URL signs its part's exact length, so storage refuses a longer or a shorter
/// body before storing (and billing) a byte of it: a file declared small cannot park terabytes.
#[tokio::test]
async fn storage_refuses_a_part_of_any_other_length() {
    // GIVEN a multipart upload of four parts, the last one shorter
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 21);
    let plan = create_multipart(&api, &bytes).await;
    let full = part(&bytes, 1);
    let last = part(&bytes, 4);
    for (number, body) in [
        (1, [full.as_slice(), b"one byte more"].concat()),
        (1, full[..full.len() - 1].to_vec()),
        (4, [last.as_slice(), &full[..5 * MIB - last.len()]].concat()),
        (4, last[..last.len() - 1].to_vec()),
    ] {
        // WHEN a part longer or shorter than its URL signs is PUT through it
        let response = api
            .http
            .put(plan.url(number))
            .body(body)
            .send()
            .await
            .unwrap();

        // THEN storage refuses it
        assert_eq!(response.status(), 403, "part {number}");
    }

    // AND stored none of them
    assert!(api.list_parts(&plan.file_id).await.parts().parts.is_empty());

    // WHEN the right lengths are PUT through the same URLs
    for number in [1, 4] {
        api.put_part(plan.url(number), part(&bytes, number)).await;
    }

    // THEN they go through
    assert_eq!(api.list_parts(&plan.file_id).await.parts().parts.len(), 2);
}

/// Issue 10: the bucket's lifecycle rule (or anyone) may abort an incomplete multipart upload;
/// signing more parts for it, or listing its parts, answers 409 `upload_expired`.
#[tokio::test]
async fn an_upload_storage_no_longer_has_is_expired() {
    // GIVEN a multipart upload with one part stored, which storage then aborted
    let api = multipart_api().await;
    let bytes = content(FILE_SIZE, 22);
    let plan = create_multipart(&api, &bytes).await;
    api.put_part(plan.url(1), part(&bytes, 1)).await;
    api.services
        .storage
        .objects
        .abort_multipart_upload(&plan.s3_key, plan.upload_id.as_deref().unwrap())
        .await
        .unwrap();
    let before = api.raw_item(&plan.file_id).await;

    // WHEN the client signs more parts for it, or lists its parts
    for reply in [
        api.sign_parts(&plan.file_id, &[2]).await,
        api.list_parts(&plan.file_id).await,
    ] {
        // THEN it is told the upload expired
        assert_eq!(reply.conflict().reason(), Some("upload_expired"));
    }

    // AND nothing changed
    assert_eq!(api.raw_item(&plan.file_id).await, before);

    // WHEN the client reuploads
    let again = api
        .reupload(&plan.file_id, json!({"file_size": FILE_SIZE}))
        .await
        .plan();

    // THEN the reupload starts afresh: a new upload, whose parts can be signed
    assert_eq!(api.sign_parts(&plan.file_id, &[2]).await.status, 200);
    assert_ne!(again.upload_id, plan.upload_id);
}
