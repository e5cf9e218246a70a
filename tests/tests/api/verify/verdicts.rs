//! Verdicts on what landed: declared digests and types, other bytes or sizes written to the key,
//! headers the service did not set, stale and foreign events, and the URLs that read the result.

use super::*;

#[tokio::test]
async fn single_part_uploads_verify_with_and_without_declared_hashes() {
    // GIVEN PDFs to upload in a single PUT, declaring both digests, one of them, or neither
    let api = TestApi::new().await;
    for (sha256, md5) in [(true, true), (true, false), (false, true), (false, false)] {
        // WHEN one is uploaded
        let bytes = format!("%PDF-1.7 sha256={sha256} md5={md5}").into_bytes();
        let plan = upload(&api, &bytes, "application/pdf", sha256, md5).await;

        // THEN verify verifies it, and it downloads as uploaded
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
    // GIVEN a file declared as 10 bytes
    let api = TestApi::new().await;
    let created = api
        .create(json!({"file_name": "f.txt", "file_size": 10, "content_type": "text/plain"}))
        .await
        .plan();

    // WHEN 7 bytes are written to its key, around the API
    put_directly(&api, &created.s3_key, b"only 7!".to_vec(), "text/plain").await;

    // THEN verify rejects it as a size mismatch
    assert_delivery_rejects(&api, &created, RejectionReason::SizeMismatch).await;
}

#[tokio::test]
async fn an_object_with_other_bytes_written_without_checksums_is_rejected() {
    // GIVEN PDFs declared with their SHA-256 or their MD5
    let api = TestApi::new().await;
    for (sha256, md5) in [(true, false), (false, true)] {
        let declared = b"%PDF-1.7 the declared content".to_vec();
        let body = declaration("f.pdf", "application/pdf", &declared, sha256, md5);
        let created = api.create(body).await.plan();

        // WHEN other bytes of the same length are written to its key, without checksums
        let mut other = declared.clone();
        *other.last_mut().unwrap() ^= 1;
        put_directly(&api, &created.s3_key, other, "application/pdf").await;

        // THEN verify rejects it as a checksum mismatch
        assert_delivery_rejects(&api, &created, RejectionReason::ChecksumMismatch).await;
    }
}

#[tokio::test]
async fn content_that_is_not_what_its_type_claims_is_rejected() {
    // GIVEN executables and HTML declared as PNG, and an executable declared as text
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
        // WHEN one is uploaded
        let plan = upload(&api, &bytes, content_type, true, false).await;

        // THEN verify rejects it as a content type mismatch
        assert_delivery_rejects(&api, &plan, RejectionReason::ContentTypeMismatch).await;
    }

    // WHEN a PNG is written to its key with another stored content type
    let created = api
        .create(json!({"file_name": "a.png", "file_size": PNG.len(), "content_type": "image/png"}))
        .await
        .plan();
    put_directly(&api, &created.s3_key, PNG.to_vec(), "text/html").await;

    // THEN verify rejects that too
    assert_eq!(
        api.deliver(&created.s3_key).await,
        Outcome::Rejected(RejectionReason::ContentTypeMismatch)
    );
}

#[tokio::test]
async fn repeated_stale_and_foreign_events_change_nothing() {
    // GIVEN a verified file
    let api = TestApi::new().await;
    let plan = upload(&api, PNG, "image/png", true, false).await;
    let file_id = &plan.file_id;
    assert_eq!(api.deliver(&plan.s3_key).await, Outcome::Verified);
    let settled = api.raw_item(file_id).await;

    // WHEN the same event comes again
    assert_eq!(
        api.deliver(&plan.s3_key).await,
        Outcome::Ignored("already settled")
    );

    // THEN it is ignored, and nothing changed
    assert_eq!(api.raw_item(file_id).await, settled);

    // WHEN an event for the old job comes, after a reupload
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

    // THEN it is ignored, and nothing changed
    assert_eq!(api.raw_item(file_id).await, replaced);
    // AND so is an event for the new job, whose object is not there
    assert_eq!(
        api.deliver(&new_plan.s3_key).await,
        Outcome::Ignored("object no longer exists")
    );
    assert_eq!(api.raw_item(file_id).await, replaced);

    // WHEN events come for keys that are not uploads, or of no file, and from other buckets
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

    // THEN each is ignored, and nothing changed
    assert_eq!(api.raw_item(file_id).await, replaced);
}

#[tokio::test]
async fn the_verdict_does_not_depend_on_when_complete_is_called() {
    // GIVEN PNGs, each uploaded in a single PUT
    let api = TestApi::new().await;

    // WHEN verify comes first, then complete
    let first = upload(&api, &png(1), "image/png", true, false).await;
    assert_eq!(api.deliver(&first.s3_key).await, Outcome::Verified);
    let completed = api.complete(&first.file_id).await.file();

    // THEN complete answers the file verified
    assert_eq!(completed.status, Status::Verified);

    // WHEN complete comes first, then verify
    let second = upload(&api, &png(2), "image/png", false, false).await;
    assert_eq!(
        api.complete(&second.file_id).await.file().status,
        Status::Uploaded
    );

    // THEN verify verifies the file
    assert_eq!(api.deliver(&second.s3_key).await, Outcome::Verified);
    for variant in 3..8 {
        // WHEN both come at once, several times
        let plan = upload(&api, &png(variant), "image/png", true, true).await;
        let file_id = &plan.file_id;
        let (completed, outcome) = tokio::join!(api.complete(file_id), api.deliver(&plan.s3_key));

        // THEN the file is verified
        assert_eq!(completed.status, 200, "{:#}", completed.body);
        assert_eq!(outcome, Outcome::Verified);
        assert_eq!(api.get(file_id).await.file().status, Status::Verified);
    }
}

#[tokio::test]
async fn a_rejected_reupload_keeps_the_verified_version_and_a_verified_one_replaces_it() {
    // GIVEN a verified PNG
    let api = TestApi::new().await;
    let plan = upload(&api, PNG, "image/png", true, false).await;
    let file_id = &plan.file_id;
    assert_eq!(api.deliver(&plan.s3_key).await, Outcome::Verified);

    // WHEN it is reuploaded with bytes that are not a PNG
    let bad = api
        .reupload(
            file_id,
            json!({"file_size": 4, "content_type": "image/png"}),
        )
        .await
        .plan();
    api.upload_whole(&bad, b"nope".to_vec()).await;

    // THEN the reupload is rejected; the first version stays downloadable
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

    // WHEN it is reuploaded with a good PNG
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

    // THEN the good reupload is verified and replaces it, and the old object is removed
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
    // GIVEN plain text to upload in a single PUT
    let api = TestApi::new().await;
    let bytes = b"plain text, honestly".to_vec();
    for (header, value) in [
        ("content-encoding", "gzip"),
        ("content-disposition", "inline"),
        ("content-language", "fr"),
        ("expires", "Wed, 21 Oct 2037 07:28:00 GMT"),
    ] {
        // WHEN its PUT adds a standard header its URL does not sign, which storage takes
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

        // THEN verify rejects it as unexpected metadata
        assert_delivery_rejects(&api, &plan, RejectionReason::UnexpectedMetadata).await;
    }

    // WHEN its PUT sends another Cache-Control: that header is signed (browsers add max-age=0 to
    // a conditional PUT by themselves)
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

    // THEN storage refuses it, before a byte is stored
    assert_eq!(refused.status(), 403, "storage took another Cache-Control");
    for write in ["metadata", "redirect"] {
        // WHEN x-amz-meta-* or a website redirect, which storage refuses on a presigned PUT
        // (unsigned x-amz-* headers), is written behind the API's back
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

        // THEN it is rejected too
        assert_delivery_rejects(&api, &plan, RejectionReason::UnexpectedMetadata).await;
    }
}

#[tokio::test]
async fn download_urls_pin_how_the_bytes_are_read() {
    // GIVEN a verified file of plain text
    let api = TestApi::new().await;
    let bytes = b"just text".to_vec();
    let plan = upload_plan(&api, &bytes).await;
    api.upload_whole(&plan, bytes.clone()).await;
    assert_eq!(api.deliver(&plan.s3_key).await, Outcome::Verified);

    // WHEN its download URL is followed
    let url = api.get(&plan.file_id).await.file().download_url.unwrap();
    let response = api.http.get(url).send().await.unwrap();

    // THEN the bytes come as text, not encoded, not cached, as an attachment
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
