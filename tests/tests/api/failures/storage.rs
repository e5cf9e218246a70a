//! Multipart uploads S3 no longer has (completed, aborted, or expired by the bucket's lifecycle).

use super::*;

#[tokio::test]
async fn an_upload_s3_no_longer_has_is_absent_to_the_object_store() {
    // GIVEN a multipart upload S3 no longer has
    let no_such_upload = || s3_error(404, "NoSuchUpload");
    let list_parts = mock!(S3::list_parts).then_http_response(no_such_upload);
    let complete = mock!(S3::complete_multipart_upload).then_http_response(no_such_upload);
    let abort = mock!(S3::abort_multipart_upload).then_http_response(no_such_upload);
    let api = TestApi::mocked(&[], &[&list_parts, &complete, &abort]);
    let objects = &api.services.storage.objects;
    let key = s3_key(&pending_file(12 << 20, Some("upload-1")));

    // WHEN the object store lists its parts, completes it, or aborts it
    // THEN it finds no such upload, each time
    assert_eq!(objects.list_parts(&key, "upload-1").await.unwrap(), None);
    assert!(
        !objects
            .complete_multipart_upload(&key, "upload-1", &[], shared::s3::INLINE_ASSEMBLY_TIMEOUT)
            .await
            .unwrap()
    );
    assert!(
        !objects
            .abort_multipart_upload(&key, "upload-1")
            .await
            .unwrap()
    );
    // AND S3 was asked once each
    for rule in [&list_parts, &complete, &abort] {
        assert_eq!(rule.num_calls(), 1);
    }
}

#[tokio::test]
async fn the_parts_of_an_upload_s3_no_longer_has_are_a_conflict() {
    // GIVEN a file awaiting a multipart upload that S3 no longer has
    let record = pending_file(12 << 20, Some("upload-1"));
    let list_parts = mock!(S3::list_parts).then_http_response(|| s3_error(404, "NoSuchUpload"));
    let api = TestApi::mocked(&[&file_lookup(&record)], &[&list_parts]);

    // WHEN the client asks which parts are in storage, to resume
    let reply = api.list_parts(&record.file_id.to_string()).await;

    // THEN there is no upload to resume: it expired (docs/API.md v1.1, upload_expired)
    assert_error(&reply, 409, "conflict");
    assert_eq!(reply.conflict().reason(), Some("upload_expired"));
}

// Objects that are not there.

#[tokio::test]
async fn a_missing_object_has_no_head() {
    // GIVEN an object S3 does not have
    let head = mock!(S3::head_object).then_http_response(|| s3_head_error(404));
    let api = TestApi::mocked(&[], &[&head]);

    // WHEN the object store asks for its head
    let key = s3_key(&pending_file(11, None));

    // THEN there is none, at S3's first answer
    assert_eq!(api.services.storage.objects.head(&key).await.unwrap(), None);
    assert_eq!(head.num_calls(), 1);
}

#[tokio::test]
async fn completing_a_single_part_upload_whose_object_is_missing_is_a_conflict() {
    // GIVEN a file awaiting a single PUT whose object S3 does not have
    let record = pending_file(11, None);
    let head = mock!(S3::head_object).then_http_response(|| s3_head_error(404));
    let api = TestApi::mocked(&[&file_lookup(&record)], &[&head]);

    // WHEN the upload is completed before its PUT landed
    let reply = api.complete(&record.file_id.to_string()).await;

    // THEN the client is told the upload is incomplete
    assert_error(&reply, 409, "conflict");
    assert_eq!(reply.conflict().reason(), Some("upload_incomplete"));
}

/// S3 answers 403 to a HEAD its caller may not make, and for a key that does not exist to a
/// role without s3:ListBucket: no proof that the object is missing, which would settle a file
/// for good (complete refuses it, verify rejects it).
#[tokio::test]
async fn a_head_that_s3_denies_is_an_error_not_a_missing_object() {
    // GIVEN S3 denying every HEAD of a single PUT's object
    let denied = || mock!(S3::head_object).then_http_response(|| s3_head_error(403));

    // WHEN the client completes the upload
    let record = pending_file(11, None);
    let head = denied();
    let api = TestApi::mocked(&[&file_lookup(&record)], &[&head]);
    let reply = api.complete(&record.file_id.to_string()).await;

    // THEN complete answers 500, not "upload_incomplete"
    assert_error(&reply, 500, "internal");

    // WHEN verify checks the upload, once its client completed it
    let job = record.job.clone().expect("a job");
    let uploaded = record
        .mark_uploaded(job.job_id, timestamp::now())
        .unwrap()
        .expect("marked uploaded");
    let head = denied();
    let retag = object_retagged();
    let api = TestApi::mocked(&[&file_lookup(&uploaded)], &[&head, &retag]);
    let result = api.verify(api.s3_event("s3-put", &job.s3_key)).await;

    // THEN an error (the queue retries it), no verdict
    assert!(result.is_err(), "{result:?}");
    assert_eq!(head.num_calls(), 1, "not retried by the SDK");
}
