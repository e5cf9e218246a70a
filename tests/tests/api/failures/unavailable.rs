//! Throttling and 5xx: 503 `unavailable`, once the SDK has retried in vain.

use super::*;

#[tokio::test]
async fn create_is_unavailable_while_dynamodb_throttles_the_write() {
    for code in [
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
    ] {
        // GIVEN a table that throttles every write (a new file is a transaction: the file and
        // what it takes from its project's usage)
        let put = mock!(DynamoDb::transact_write_items)
            .then_http_response(move || dynamodb_error(400, code));
        let delete = object_deleted();
        let api = TestApi::mocked(&[&put], &[&delete]);

        // WHEN a file is declared
        let reply = api.create(small_file()).await;

        // THEN the client is told to retry later, after the SDK's own attempts, and the upload
        // job that was planned for it leaves nothing in storage
        assert_error(&reply, 503, "unavailable");
        assert_eq!(put.num_calls(), ATTEMPTS, "{code}");
        assert_eq!(delete.num_calls(), 1, "{code}");
    }
}

#[tokio::test]
async fn create_is_unavailable_when_dynamodb_answers_500() {
    // GIVEN a table that fails every write of a file with a 500, which may have applied, and
    // has no such file yet
    let put = mock!(DynamoDb::transact_write_items)
        .then_http_response(|| dynamodb_error(500, "InternalServerError"));
    let read = mock!(DynamoDb::get_item)
        .match_requests(|get| {
            get.key()
                .and_then(|key| key.get("pk"))
                .and_then(|pk| pk.as_s().ok())
                .is_some_and(|pk| pk.starts_with("FILE#"))
        })
        .then_output(|| GetItemOutput::builder().build());
    let delete = object_deleted();
    let api = TestApi::mocked(&[&put, &read], &[&delete]);

    // WHEN a file is declared
    let reply = api.create(small_file()).await;

    // THEN 503 after the SDK's attempts and one read of the file; the file may still appear
    // (a write on its way), so its upload is kept (the bucket's lifecycle rules remove it if not)
    assert_error(&reply, 503, "unavailable");
    assert_eq!(put.num_calls(), ATTEMPTS);
    assert_eq!((read.num_calls(), delete.num_calls()), (1, 0));
}

#[tokio::test]
async fn a_write_throttled_until_the_last_attempt_goes_unnoticed() {
    // GIVEN a table that throttles the write of a new file until the SDK's last attempt
    let put = mock!(DynamoDb::transact_write_items)
        .sequence()
        .http_response(|| dynamodb_error(400, "ProvisionedThroughputExceededException"))
        .times(ATTEMPTS - 1)
        .output(transaction_applied)
        .build();
    let api = TestApi::mocked(&[&put], &[]);

    // WHEN a file is declared
    let reply = api.create(small_file()).await;

    // THEN it is created, at the last attempt
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(put.num_calls(), ATTEMPTS);
}

#[tokio::test]
async fn get_file_is_unavailable_while_dynamodb_throttles_the_read() {
    // GIVEN a table that throttles every read of a file
    let file_id = FileId::random();
    let get = mock!(DynamoDb::get_item)
        .match_requests(move |get| keys_file(get.key(), file_id))
        .then_http_response(|| dynamodb_error(400, "ThrottlingException"));
    let api = TestApi::mocked(&[&get], &[]);

    // WHEN the client reads the file
    let reply = api.get(&file_id.to_string()).await;

    // THEN it is told to retry later, after the SDK's own attempts
    assert_error(&reply, 503, "unavailable");
    assert_eq!(get.num_calls(), ATTEMPTS);
}

#[tokio::test]
async fn complete_is_unavailable_while_s3_slows_down_listing_parts() {
    // GIVEN a multipart upload, and S3 slowing down every request
    let record = pending_file(12 << 20, Some("upload-1"));
    let list_parts = mock!(S3::list_parts).then_http_response(|| s3_error(503, "SlowDown"));
    let api = TestApi::mocked(&[&file_lookup(&record)], &[&list_parts]);

    // WHEN the client completes it
    let reply = api.complete(&record.file_id.to_string()).await;

    // THEN it is told to retry later, and nothing is recorded (a PutItem would find no rule)
    assert_error(&reply, 503, "unavailable");
    assert_eq!(list_parts.num_calls(), ATTEMPTS);
}

// S3 answers a HEAD with a status and no body, so the error has no code: the status alone must
// make it retryable.
#[tokio::test]
async fn complete_is_unavailable_while_s3_slows_down_the_head_of_the_object() {
    // GIVEN a single PUT's file, and S3 slowing down every HEAD of its object
    let record = pending_file(11, None);
    let head = mock!(S3::head_object).then_http_response(|| s3_head_error(503));
    let api = TestApi::mocked(&[&file_lookup(&record)], &[&head]);

    // WHEN the client completes it
    let reply = api.complete(&record.file_id.to_string()).await;

    // THEN it is told to retry later
    assert_error(&reply, 503, "unavailable");
}

// Not every failure is worth a retry: a request AWS refuses is a fault of ours, 500 `internal`.

#[tokio::test]
async fn access_denied_by_s3_is_internal_and_not_retried() {
    // GIVEN a multipart upload, and S3 denying access to its parts
    let record = pending_file(12 << 20, Some("upload-1"));
    let list_parts = mock!(S3::list_parts).then_http_response(|| s3_error(403, "AccessDenied"));
    let api = TestApi::mocked(&[&file_lookup(&record)], &[&list_parts]);

    // WHEN the client completes it
    let reply = api.complete(&record.file_id.to_string()).await;

    // THEN it fails as internal, and S3 is not asked again
    assert_error(&reply, 500, "internal");
    assert_eq!(list_parts.num_calls(), 1);
}

#[tokio::test]
async fn a_validation_exception_from_dynamodb_is_internal_and_not_retried() {
    // GIVEN a table that refuses the write of a new file as invalid
    let put = mock!(DynamoDb::transact_write_items)
        .then_http_response(|| dynamodb_error(400, "ValidationException"));
    let api = TestApi::mocked(&[&put], &[&object_deleted()]);

    // WHEN a file is declared
    let reply = api.create(small_file()).await;

    // THEN it fails as internal, and the table is not asked again
    assert_error(&reply, 500, "internal");
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn a_create_that_cannot_be_recorded_aborts_the_multipart_upload_it_opened() {
    // GIVEN storage that opens multipart uploads, and a table that refuses the write
    let open = mock!(S3::create_multipart_upload).then_output(|| {
        CreateMultipartUploadOutput::builder()
            .upload_id("opened")
            .build()
    });
    let abort = mock!(S3::abort_multipart_upload)
        .match_requests(|abort| abort.upload_id() == Some("opened"))
        .then_output(|| AbortMultipartUploadOutput::builder().build());
    let delete = object_deleted();
    let put = mock!(DynamoDb::transact_write_items)
        .then_http_response(|| dynamodb_error(400, "ValidationException"));
    let api = TestApi::mocked(&[&put], &[&open, &abort, &delete]);

    // WHEN a file above the multipart threshold is declared
    let reply = api
        .create(serde_json::json!({"file_name": "big.bin", "file_size": 200u64 << 20}))
        .await;

    // THEN the request fails and the upload it opened is aborted
    assert_error(&reply, 500, "internal");
    assert_eq!((open.num_calls(), abort.num_calls()), (1, 1));
}
