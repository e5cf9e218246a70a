//! Failure branches, over SDK clients answered by mock rules (`integration_tests::mocks`): what
//! a client of the API sees when DynamoDB or S3 throttle, fail or refuse, and what the adapters
//! make of the answers the real servers cannot be made to give. No servers, no network.

use aws_sdk_dynamodb::Client as DynamoDb;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_s3::Client as S3;
use aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadOutput;
use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput;
use aws_sdk_s3::operation::delete_object::DeleteObjectOutput;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::operation::list_parts::ListPartsOutput;
use aws_sdk_s3::operation::put_object_tagging::PutObjectTaggingOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_mocks::{Rule, mock};
use integration_tests::mocks::{
    BUCKET, TABLE, assembly_unclaimed, dynamodb_error, file_lookup, is_assembly_claim, keys_file,
    pending_file, s3_error, s3_head_error, transaction_applied, transaction_file,
    transaction_refused, transaction_removes_file,
};
use integration_tests::operations::as_function;
use integration_tests::{ApiReply, Event, TestApi, declaration};
use shared::domain::{FileId, FileRecord, FileStatus, Refusal, Verdict, timestamp};
use shared::dynamo::Update;
use shared::dynamo::item::Item;

/// Attempts per call in the SDK's standard retry mode, which the functions' clients get from
/// `aws-config` and the mocked ones copy.
const ATTEMPTS: usize = 3;

/// The contract's error body with `status` and `code` (`expect_error`), and nothing of the
/// failure behind it.
/// `error()` reads the body as exactly the contract's keys (`error` with `code`, `message` and
/// a list of `details`; `request_id`), and holds the request id to the x-request-id header.
fn assert_error(reply: &ApiReply, status: u16, code: &str) {
    let body = reply.expect_error(status, code);
    assert!(!body.request_id.is_empty());
    let text = reply.body.to_string();
    for internal in [
        TABLE,
        BUCKET,
        "MOCKED",
        "mocked",
        "amazonaws",
        "Exception",
        "SlowDown",
        "AccessDenied",
        "InternalError",
        "InternalServerError",
        "PutItem",
        "GetItem",
        "HeadObject",
        "ListParts",
        "service error",
        "uploads/",
    ] {
        assert!(!text.contains(internal), "{internal:?} leaks: {text}");
    }
}

fn small_file() -> serde_json::Value {
    declaration("notes.txt", "text/plain", b"hello world", false, false)
}

fn s3_key(record: &FileRecord) -> String {
    record.job.as_ref().expect("a job").s3_key.clone()
}

/// Storage deleting whatever object an upload job may have left.
fn object_deleted() -> Rule {
    mock!(S3::delete_object).then_output(|| DeleteObjectOutput::builder().build())
}

/// Storage retagging any object (verify takes what it checks out of the pending rule).
fn object_retagged() -> Rule {
    mock!(S3::put_object_tagging).then_output(|| PutObjectTaggingOutput::builder().build())
}

// Throttling and 5xx: 503 `unavailable`, once the SDK has retried in vain.

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
    let put = mock!(DynamoDb::transact_write_items)
        .sequence()
        .http_response(|| dynamodb_error(400, "ProvisionedThroughputExceededException"))
        .times(ATTEMPTS - 1)
        .output(transaction_applied)
        .build();
    let api = TestApi::mocked(&[&put], &[]);

    let reply = api.create(small_file()).await;

    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(put.num_calls(), ATTEMPTS);
}

#[tokio::test]
async fn get_file_is_unavailable_while_dynamodb_throttles_the_read() {
    let file_id = FileId::random();
    let get = mock!(DynamoDb::get_item)
        .match_requests(move |get| keys_file(get.key(), file_id))
        .then_http_response(|| dynamodb_error(400, "ThrottlingException"));
    let api = TestApi::mocked(&[&get], &[]);

    let reply = api.get(&file_id.to_string()).await;

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
    let record = pending_file(11, None);
    let head = mock!(S3::head_object).then_http_response(|| s3_head_error(503));
    let api = TestApi::mocked(&[&file_lookup(&record)], &[&head]);

    let reply = api.complete(&record.file_id.to_string()).await;

    assert_error(&reply, 503, "unavailable");
}

// Not every failure is worth a retry: a request AWS refuses is a fault of ours, 500 `internal`.

#[tokio::test]
async fn access_denied_by_s3_is_internal_and_not_retried() {
    let record = pending_file(12 << 20, Some("upload-1"));
    let list_parts = mock!(S3::list_parts).then_http_response(|| s3_error(403, "AccessDenied"));
    let api = TestApi::mocked(&[&file_lookup(&record)], &[&list_parts]);

    let reply = api.complete(&record.file_id.to_string()).await;

    assert_error(&reply, 500, "internal");
    assert_eq!(list_parts.num_calls(), 1);
}

#[tokio::test]
async fn a_validation_exception_from_dynamodb_is_internal_and_not_retried() {
    let put = mock!(DynamoDb::transact_write_items)
        .then_http_response(|| dynamodb_error(400, "ValidationException"));
    let api = TestApi::mocked(&[&put], &[&object_deleted()]);

    let reply = api.create(small_file()).await;

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

// Conditional writes refused: the adapter hands back the item DynamoDB returned with the refusal.

/// DynamoDB's refusal of a conditional write, with the item as it is when there is one.
fn refusal(current: Option<&FileRecord>) -> ConditionalCheckFailedException {
    ConditionalCheckFailedException::builder()
        .message("The conditional request failed")
        .set_item(current.map(Item::from))
        .build()
}

/// The file of `record` once a newer upload (a reupload) replaced its job.
fn superseded(record: &FileRecord) -> FileRecord {
    let newer = pending_file(record.content.file_size, None);
    FileRecord {
        job: newer.job,
        ..record.clone()
    }
}

fn all_old(asked: Option<&ReturnValuesOnConditionCheckFailure>) -> bool {
    asked == Some(&ReturnValuesOnConditionCheckFailure::AllOld)
}

#[tokio::test]
async fn a_refused_write_judges_the_change_again_on_the_file_the_refusal_returned() {
    let record = pending_file(11, None);
    let job = record.job.clone().expect("a job");
    let latest = superseded(&record);
    let now = shared::domain::timestamp::now();
    for (name, refused_with) in [("superseded", Some(latest.clone())), ("gone", None)] {
        // GIVEN a table that refuses the write (asked for the item as it is): the mark alone,
        // the verdict with what it moves in the project's usage
        let refused = refused_with.clone();
        let put = mock!(DynamoDb::put_item)
            .match_requests(|put| all_old(put.return_values_on_condition_check_failure()))
            .then_error(move || {
                PutItemError::ConditionalCheckFailedException(refusal(refused.as_ref()))
            });
        let refused = refused_with.clone();
        let transaction = mock!(DynamoDb::transact_write_items)
            .match_requests(|write| {
                let file = write.transact_items().first().and_then(|w| w.put.as_ref());
                file.is_some_and(|put| all_old(put.return_values_on_condition_check_failure()))
            })
            .then_error(move || transaction_refused(2, 0, refused.as_ref().map(Item::from)));
        let api = TestApi::mocked(&[&put, &transaction], &[]);
        let files = &api.services.table.files;

        // WHEN the upload is marked complete, and when it is settled
        let marked = files
            .update(record.clone(), |file| file.mark_uploaded(job.job_id, now))
            .await;
        let verdict = Verdict::Verified {
            s3_key: job.s3_key.clone(),
        };
        let settled = files
            .update(record.clone(), |file| {
                file.settle(
                    job.job_id,
                    verdict.clone(),
                    now,
                    api.services.config.pending_ttl,
                )
                .map(Some)
            })
            .await;

        // THEN each change is judged again on the file the refusal carried, decoded: the job
        // was superseded; a file that is gone is not found. Nothing is written twice.
        for outcome in [marked, settled] {
            match (outcome, &refused_with) {
                (Ok(Update::Refused(refusal, found)), Some(latest)) => {
                    assert_eq!(refusal, Refusal::JobSuperseded, "{name}");
                    assert_eq!(&found, latest, "{name}");
                }
                (Err(err), None) => assert_eq!(err.status(), 404, "{name}"),
                (other, _) => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!((put.num_calls(), transaction.num_calls()), (1, 1), "{name}");
    }
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_is_recognised_as_applied() {
    // GIVEN a write that applied, but whose answer was lost: the SDK's retry is refused, and
    // the refusal carries exactly what the first attempt wrote
    let record = pending_file(11, None);
    let job = record.job.clone().expect("a job");
    let now = shared::domain::timestamp::now();
    let written = record
        .mark_uploaded(job.job_id, now)
        .expect("current")
        .expect("a change");
    let ours = written.clone();
    let put = mock!(DynamoDb::put_item)
        .then_error(move || PutItemError::ConditionalCheckFailedException(refusal(Some(&ours))));
    let api = TestApi::mocked(&[&put], &[]);

    // WHEN the change is applied
    let outcome = api
        .services
        .table
        .files
        .update(record.clone(), |file| file.mark_uploaded(job.job_id, now))
        .await;

    // THEN it is applied, once, not judged again on its own result
    match outcome {
        Ok(Update::Applied { after, .. }) => assert_eq!(after, written),
        other => panic!("{other:?}"),
    }
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_not_an_error_but_another_file_under_its_id_is() {
    let record = pending_file(11, None);
    for (existing, created) in [(record.clone(), true), (superseded(&record), false)] {
        let put = mock!(DynamoDb::transact_write_items)
            .then_error(move || transaction_refused(2, 0, Some(Item::from(&existing))));
        let api = TestApi::mocked(&[&put], &[]);

        let inserted = api.services.table.files.insert_new(&record, None).await;

        assert_eq!(inserted.is_ok(), created, "{inserted:?}");
        if let Err(err) = inserted {
            assert_eq!(err.status(), 500);
        }
    }
}

/// ListParts answers the three parts of a multipart upload of 12 MiB, all stored.
fn all_parts_of_12_mib() -> Rule {
    mock!(S3::list_parts).then_output(|| {
        let part = |number: i32, size: i64| {
            aws_sdk_s3::types::Part::builder()
                .part_number(number)
                .size(size)
                .e_tag(format!("\"etag{number}\""))
                .build()
        };
        ListPartsOutput::builder()
            .parts(part(1, 5 << 20))
            .parts(part(2, 5 << 20))
            .parts(part(3, 2 << 20))
            .build()
    })
}

#[tokio::test]
async fn an_assembly_that_fails_gives_up_its_claim_for_the_retry() {
    // GIVEN a multipart upload whose parts are all stored, which S3 fails to assemble
    let record = pending_file(12 << 20, Some("upload-1"));
    let assemble =
        mock!(S3::complete_multipart_upload).then_http_response(|| s3_error(500, "InternalError"));
    let release = mock!(DynamoDb::delete_item)
        .match_requests(|delete| is_assembly_claim(delete.key()))
        .then_output(|| DeleteItemOutput::builder().build());
    let api = TestApi::mocked(
        &[&file_lookup(&record), &assembly_unclaimed(), &release],
        &[&all_parts_of_12_mib(), &assemble],
    );

    // WHEN the client completes it
    let reply = api.complete(&record.file_id.to_string()).await;

    // THEN it fails for a retry, which need not wait for the claim to lapse
    assert!(reply.status >= 500, "{reply:?}");
    assert_eq!(release.num_calls(), 1);

    // and so does verify's assembly of it from its queue
    let assembly = shared::app::verify_queue::Assembly {
        file_id: record.file_id,
        job_id: record.job.as_ref().expect("a job").job_id,
    };
    let assembled = as_function("verify", ::verify::assemble(&api.services, &assembly)).await;
    assert!(assembled.is_err(), "{assembled:?}");
    assert_eq!(release.num_calls(), 2);
}

#[tokio::test]
async fn a_complete_whose_upload_was_replaced_meanwhile_discards_what_it_assembled() {
    // GIVEN a multipart upload whose parts are all stored, replaced by a newer upload while
    // the complete assembles it (the write is refused with the file as the reupload left it)
    let record = pending_file(12 << 20, Some("upload-1"));
    let replaced = superseded(&record);
    let parts = all_parts_of_12_mib();
    let assemble = mock!(S3::complete_multipart_upload)
        .then_output(|| CompleteMultipartUploadOutput::builder().build());
    let head = mock!(S3::head_object).then_output(|| {
        HeadObjectOutput::builder()
            .content_length(12 << 20)
            .content_type("text/plain")
            .build()
    });
    let abort =
        mock!(S3::abort_multipart_upload).then_http_response(|| s3_error(404, "NoSuchUpload"));
    let delete = object_deleted();
    let mark = mock!(DynamoDb::put_item).then_error(move || {
        PutItemError::ConditionalCheckFailedException(refusal(Some(&replaced)))
    });
    let api = TestApi::mocked(
        &[&file_lookup(&record), &assembly_unclaimed(), &mark],
        &[&parts, &assemble, &head, &abort, &delete],
    );

    // WHEN the client completes it
    let reply = api.complete(&record.file_id.to_string()).await;

    // THEN it is told its upload was superseded, and the object it assembled is removed
    assert_error(&reply, 409, "conflict");
    assert_eq!(reply.conflict().reason(), Some("job_superseded"));
    assert_eq!(
        (assemble.num_calls(), abort.num_calls(), delete.num_calls()),
        (1, 1, 1)
    );
}

// Multipart uploads S3 no longer has (completed, aborted, or expired by the bucket's lifecycle).

#[tokio::test]
async fn an_upload_s3_no_longer_has_is_absent_to_the_object_store() {
    let no_such_upload = || s3_error(404, "NoSuchUpload");
    let list_parts = mock!(S3::list_parts).then_http_response(no_such_upload);
    let complete = mock!(S3::complete_multipart_upload).then_http_response(no_such_upload);
    let abort = mock!(S3::abort_multipart_upload).then_http_response(no_such_upload);
    let api = TestApi::mocked(&[], &[&list_parts, &complete, &abort]);
    let objects = &api.services.storage.objects;
    let key = s3_key(&pending_file(12 << 20, Some("upload-1")));

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
    let head = mock!(S3::head_object).then_http_response(|| s3_head_error(404));
    let api = TestApi::mocked(&[], &[&head]);

    let key = s3_key(&pending_file(11, None));
    assert_eq!(api.services.storage.objects.head(&key).await.unwrap(), None);
    assert_eq!(head.num_calls(), 1);
}

#[tokio::test]
async fn completing_a_single_part_upload_whose_object_is_missing_is_a_conflict() {
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
    let denied = || mock!(S3::head_object).then_http_response(|| s3_head_error(403));

    // complete: 500, not "upload_incomplete"
    let record = pending_file(11, None);
    let head = denied();
    let api = TestApi::mocked(&[&file_lookup(&record)], &[&head]);
    let reply = api.complete(&record.file_id.to_string()).await;
    assert_error(&reply, 500, "internal");

    // verify, for an upload its client completed: an error (the queue retries it), no verdict
    let job = record.job.clone().expect("a job");
    let uploaded = record
        .mark_uploaded(job.job_id, timestamp::now())
        .unwrap()
        .expect("marked uploaded");
    let head = denied();
    let retag = object_retagged();
    let api = TestApi::mocked(&[&file_lookup(&uploaded)], &[&head, &retag]);
    let result = api.verify(api.s3_event("s3-put", &job.s3_key)).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(head.num_calls(), 1, "not retried by the SDK");
}

// The verify trigger: an error makes Lambda deliver the event again; a verdict is not an error.
// (`::verify` is the function's crate, also beside a test module named `verify`.)

#[tokio::test]
async fn verify_fails_for_a_retry_while_dynamodb_throttles() {
    let record = pending_file(11, None);
    let file_id = record.file_id;
    let get = mock!(DynamoDb::get_item)
        .match_requests(move |get| keys_file(get.key(), file_id))
        .then_http_response(|| dynamodb_error(400, "ThrottlingException"));
    let api = TestApi::mocked(&[&get], &[]);

    let result = api.verify(api.s3_event("s3-put", &s3_key(&record))).await;

    assert!(result.is_err(), "{result:?}");
    assert_eq!(get.num_calls(), ATTEMPTS);
}

#[tokio::test]
async fn verify_fails_for_a_retry_when_s3_answers_500() {
    let record = pending_file(11, None);
    let head = mock!(S3::head_object).then_http_response(|| s3_head_error(500));
    let api = TestApi::mocked(&[&file_lookup(&record)], &[&head, &object_retagged()]);

    let result = api.verify(api.s3_event("s3-put", &s3_key(&record))).await;

    assert!(result.is_err(), "{result:?}");
    assert_eq!(head.num_calls(), ATTEMPTS);
}

#[tokio::test]
async fn verify_settles_a_sound_object() {
    // GIVEN a file whose 11 bytes of text are in storage as declared
    let record = pending_file(11, None);
    let job = record.job.clone().expect("a job");
    let etag = "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"";
    let head = mock!(S3::head_object).then_output(move || {
        HeadObjectOutput::builder()
            .content_length(11)
            .content_type("text/plain")
            .e_tag(etag)
            .build()
    });
    let read = mock!(S3::get_object)
        .match_requests(move |get| get.if_match() == Some(etag))
        .then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(b"hello world"))
                .build()
        });
    let retag = object_retagged();
    let file_id = record.file_id;
    let settle = mock!(DynamoDb::transact_write_items)
        .match_requests(move |write| {
            matches!(transaction_file(write), Some(file)
                if file.file_id == file_id
                    && file.status == FileStatus::Verified
                    && file.verified.is_some())
        })
        .then_output(transaction_applied);
    let api = TestApi::mocked(&[&file_lookup(&record), &settle], &[&head, &read, &retag]);

    // WHEN storage reports the object created
    let result = api.verify(api.s3_event("s3-put", &job.s3_key)).await;

    // THEN the object is tagged checking as the check starts, then verified (both kept by the
    // lifecycle rule), then the file settled
    assert_eq!(result.unwrap(), [::verify::Outcome::Verified]);
    assert_eq!((retag.num_calls(), settle.num_calls()), (2, 1));
}

#[tokio::test]
async fn a_verdict_refused_because_the_job_was_replaced_removes_the_object_it_tagged() {
    // GIVEN a sound object of a file whose job a reupload replaces while verify checks it, and
    // the same file verified meanwhile by another invocation (a duplicate event)
    let record = pending_file(11, None);
    let job = record.job.clone().expect("a job");
    let verified = record
        .settle(
            job.job_id,
            Verdict::Verified {
                s3_key: job.s3_key.clone(),
            },
            timestamp::now(),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    for (name, latest, deletes) in [
        ("replaced", superseded(&record), 1),
        ("verified by another invocation", verified, 0),
    ] {
        let etag = "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"";
        let head = mock!(S3::head_object).then_output(move || {
            HeadObjectOutput::builder()
                .content_length(11)
                .content_type("text/plain")
                .e_tag(etag)
                .build()
        });
        let read = mock!(S3::get_object).then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(b"hello world"))
                .build()
        });
        let retag = object_retagged();
        let key = job.s3_key.clone();
        let delete = mock!(S3::delete_object)
            .match_requests(move |delete| delete.key() == Some(key.as_str()))
            .then_output(|| DeleteObjectOutput::builder().build());
        let refused = mock!(DynamoDb::transact_write_items)
            .then_error(move || transaction_refused(2, 0, Some(Item::from(&latest))));
        let api = TestApi::mocked(
            &[&file_lookup(&record), &refused],
            &[&head, &read, &retag, &delete],
        );

        // WHEN the verdict is written after the job changed
        let result = api.verify(api.s3_event("s3-put", &job.s3_key)).await;

        // THEN no verdict, and the object it tagged verified is deleted, unless it is served
        assert_eq!(
            result.unwrap(),
            [::verify::Outcome::Ignored("settled or replaced meanwhile")],
            "{name}"
        );
        assert_eq!(refused.num_calls(), 1, "{name}");
        assert_eq!(delete.num_calls(), deletes, "{name}");
    }
}

#[tokio::test]
async fn a_failed_verify_message_comes_back_after_a_backoff_that_doubles() {
    use aws_lambda_events::sqs::{SqsEvent, SqsMessage};

    for (receives, delay) in [("1", 60), ("3", 240)] {
        // GIVEN verify's queue, and a table that throttles every read
        let record = pending_file(11, None);
        let file_id = record.file_id;
        let get = mock!(DynamoDb::get_item)
            .match_requests(move |get| keys_file(get.key(), file_id))
            .then_http_response(|| dynamodb_error(400, "ThrottlingException"));
        let delayed = mock!(aws_sdk_sqs::Client::change_message_visibility)
            .match_requests(move |change| {
                change.receipt_handle() == Some("receipt-1")
                    && change.visibility_timeout() == Some(delay)
            })
            .then_output(|| {
                aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityOutput::builder().build()
            });
        let sqs = integration_tests::mocks::sqs_client(&[&delayed]);
        let mut api = TestApi::mocked(&[&get], &[]);
        api.verify_queue = shared::app::verify_queue::VerifyQueue::new(
            sqs,
            "https://sqs.eu-west-1.amazonaws.com/000000000000/verify",
        );

        // WHEN S3's event fails on its `receives`th receive
        let mut message = SqsMessage::default();
        message.message_id = Some("message-1".into());
        message.receipt_handle = Some("receipt-1".into());
        message.body = Some(
            integration_tests::serde_json::to_string(&api.s3_event("s3-put", &s3_key(&record)))
                .unwrap(),
        );
        message
            .attributes
            .insert("ApproximateReceiveCount".into(), receives.into());
        let mut event = SqsEvent::default();
        event.records = vec![message];
        let response = as_function(
            "verify",
            ::verify::handle_messages(&api.services, &api.verify_queue, event),
        )
        .await;

        // THEN it is reported failed, and comes back after 1 minute, doubled for each receive
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["message-1"]);
        assert_eq!(delayed.num_calls(), 1, "{receives}");
    }
}

#[tokio::test]
async fn a_retried_event_removes_superseded_content_whose_deletion_failed() {
    // GIVEN a file serving verified content, written at T, and an event for it again: the retry
    // of a verification whose deletion of the version it replaced failed
    let pending = pending_file(11, None);
    let job = pending.job.clone().expect("a job");
    let served_key = job.s3_key.clone();
    let verdict = Verdict::Verified {
        s3_key: served_key.clone(),
    };
    let record = pending
        .settle(
            job.job_id,
            verdict,
            timestamp::now(),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    let verified_at = record
        .verified
        .as_ref()
        .unwrap()
        .verified_at
        .unix_timestamp();
    let prefix = shared::domain::ids::file_prefix(record.file_id);
    let (old, newer) = (format!("{prefix}old-job"), format!("{prefix}newer-job"));
    let object = |key: &str, at: i64| {
        aws_sdk_s3::types::Object::builder()
            .key(key)
            .last_modified(aws_smithy_types::DateTime::from_secs(at))
            .build()
    };
    let listed = [
        object(&old, verified_at - 100),
        object(&served_key, verified_at - 1),
        object(&newer, verified_at + 100),
    ];
    let list = mock!(S3::list_objects_v2).then_output(move || {
        aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output::builder()
            .set_contents(Some(listed.to_vec()))
            .build()
    });
    let old_key = old.clone();
    let delete = mock!(S3::delete_object)
        .match_requests(move |delete| delete.key() == Some(old_key.as_str()))
        .then_output(|| DeleteObjectOutput::builder().build());
    let api = TestApi::mocked(&[&file_lookup(&record)], &[&list, &delete]);

    // WHEN the event comes again
    let result = api.verify(api.s3_event("s3-put", &served_key)).await;

    // THEN only what was written before the served version, and is not it, is removed
    assert_eq!(
        result.unwrap(),
        [::verify::Outcome::Ignored("already settled")]
    );
    assert_eq!(delete.num_calls(), 1);
}

// Dependencies that hang or reset: the SDK's deadlines (DEPENDENCY_TIMEOUT_MS) bound every call,
// so the client gets 503 instead of waiting for the function's timeout.

/// What a fake dependency on loopback does with each connection.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Accepts, reads, never answers.
    Blackhole,
    /// Accepts and closes at once.
    Reset,
}

/// A loopback endpoint that misbehaves as `fault` says, for as long as the test runs.
async fn faulty_endpoint(fault: Fault) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            match fault {
                Fault::Blackhole => held.push(connection),
                Fault::Reset => drop(connection),
            }
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn a_hung_or_resetting_table_answers_503_within_the_deadline() {
    let budget = std::time::Duration::from_millis(400);
    for fault in [Fault::Blackhole, Fault::Reset] {
        // GIVEN DynamoDB that never answers, or drops every connection
        let endpoint = faulty_endpoint(fault).await;
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::for_tests(),
            ))
            .retry_config(aws_config::retry::RetryConfig::standard())
            .build();
        let config = shared::config::Config::from_lookup(|name| match name {
            "TABLE_NAME" => Some(TABLE.into()),
            "BUCKET_NAME" => Some(BUCKET.into()),
            "DEPENDENCY_TIMEOUT_MS" => Some(budget.as_millis().to_string()),
            _ => None,
        })
        .expect("config");
        let api = TestApi {
            services: shared::app::Services::new(config, &sdk),
            verify_queue: shared::app::verify_queue::VerifyQueue::new(
                aws_sdk_sqs::Client::new(&sdk),
                integration_tests::NO_QUEUE,
            ),
            project: "p1".into(),
            key: "upk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
            http: reqwest::Client::new(),
        };

        // WHEN a file is declared
        let started = std::time::Instant::now();
        let reply = api.create(small_file()).await;

        // THEN the answer is 503 with the contract's body, within the deadline (and some slack
        // for a busy machine), not whenever the platform would give up
        assert_error(&reply, 503, "unavailable");
        let took = started.elapsed();
        assert!(
            took < budget + std::time::Duration::from_secs(1),
            "{fault:?}: {took:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_key_costs_one_table_read_however_often_it_is_tried() {
    // GIVEN a table that has no such key
    let unknown = format!("upk_{}A", "B".repeat(42));
    let lookup = mock!(DynamoDb::get_item)
        .match_requests(|get| {
            get.key()
                .and_then(|key| key.get("pk"))
                .and_then(|pk| pk.as_s().ok())
                .is_some_and(|pk| pk.starts_with("APIKEY#"))
        })
        .then_output(|| GetItemOutput::builder().build());
    let api = TestApi::mocked(&[&lookup], &[]);

    // WHEN it is tried again and again
    for _ in 0..5 {
        let reply = api
            .call(integration_tests::Event::ListFiles)
            .key(Some(&unknown))
            .send()
            .await;
        // THEN each try is refused, but only the first reads the table
        assert_error(&reply, 401, "unauthorized");
    }
    assert_eq!(lookup.num_calls(), 1);
}

#[tokio::test]
async fn a_request_that_fails_with_5xx_forgets_its_idempotency_key() {
    for event in [Event::Create, Event::Complete, Event::Reupload] {
        // GIVEN a table that takes the key's claim, but fails every read and write of files
        let pk_starts = |item: Option<&Item>, prefix: &str| {
            item.and_then(|item| item.get("pk"))
                .and_then(|pk| pk.as_s().ok())
                .is_some_and(|pk| pk.starts_with(prefix))
        };
        let claim = mock!(DynamoDb::put_item)
            .match_requests(move |put| pk_starts(put.item(), "IDEMPOTENCY#"))
            .then_output(|| PutItemOutput::builder().build());
        let write = mock!(DynamoDb::put_item)
            .match_requests(move |put| pk_starts(put.item(), "FILE#"))
            .then_http_response(|| dynamodb_error(500, "InternalServerError"));
        let read = mock!(DynamoDb::get_item)
            .match_requests(move |get| pk_starts(get.key(), "FILE#"))
            .then_http_response(|| dynamodb_error(500, "InternalServerError"));
        // (create writes its file and the key's answer in one transaction)
        let transaction = mock!(DynamoDb::transact_write_items)
            .then_http_response(|| dynamodb_error(500, "InternalServerError"));
        let forget = mock!(DynamoDb::delete_item)
            .match_requests(move |delete| pk_starts(delete.key(), "IDEMPOTENCY#"))
            .then_output(|| DeleteItemOutput::builder().build());
        let api = TestApi::mocked(
            &[&claim, &write, &transaction, &read, &forget],
            &[&object_deleted()],
        );

        // WHEN a request with a key fails for want of the table
        let body = match event {
            Event::Complete => serde_json::json!({}),
            _ => serde_json::json!({"file_name": "a.txt", "file_size": 5}),
        };
        let mut call = api.call(event).header("Idempotency-Key", "k-1").json(body);
        if event != Event::Create {
            call = call.file(&FileId::random().to_string());
        }
        let reply = call.send().await;

        // THEN it answers 503, and its key is forgotten so that the retry runs afresh (create
        // takes it back itself first, to find out whether its transaction applied)
        assert_error(&reply, 503, "unavailable");
        assert_eq!(claim.num_calls(), 1, "{event:?}");
        assert!(forget.num_calls() >= 1, "{event:?}");
    }
}

#[tokio::test]
async fn a_direct_upload_whose_second_file_cannot_be_stored_leaves_nothing_of_the_first() {
    use aws_sdk_dynamodb::operation::query::QueryOutput;
    use aws_sdk_s3::operation::put_object::PutObjectOutput;
    use integration_tests::FormBody;

    // GIVEN a table that records files, and storage that takes the first object and fails the
    // second
    let no_duplicate = mock!(DynamoDb::query).then_output(|| QueryOutput::builder().build());
    let record = mock!(DynamoDb::transact_write_items)
        .match_requests(|write| transaction_file(write).is_some())
        .then_output(transaction_applied);
    let removed = mock!(DynamoDb::transact_write_items)
        .match_requests(transaction_removes_file)
        .then_output(transaction_applied);
    let first = mock!(S3::put_object)
        .match_requests(|put| put.content_type() == Some("text/plain"))
        .then_output(|| PutObjectOutput::builder().build());
    let second = mock!(S3::put_object)
        .match_requests(|put| put.content_type() == Some("image/png"))
        .then_http_response(|| s3_error(400, "InvalidRequest"));
    let deleted = object_deleted();
    let api = TestApi::mocked(
        &[&no_duplicate, &record, &removed],
        &[&first, &second, &deleted],
    );

    // WHEN two files are sent in one form
    let form = FormBody::new().file("a.txt", "text/plain", b"first").file(
        "b.png",
        "image/png",
        b"\x89PNG\r\n\x1a\n",
    );
    let reply = api.call(Event::DirectUpload).form(&form).send().await;

    // THEN the request fails, and both records written, and the object stored, are removed
    assert_eq!(reply.status, 500, "{:#}", reply.body);
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    assert_eq!(record.num_calls(), 2);
    assert_eq!(removed.num_calls(), 2, "both records removed");
    assert_eq!(deleted.num_calls(), 2, "both objects' keys deleted");
}

#[tokio::test]
async fn a_complete_that_finds_the_object_gone_because_verify_rejected_it_answers_the_file() {
    // GIVEN a single PUT that complete reads pending, whose object the verify trigger then
    // rejects and removes before complete looks at it (seen in Chromium: a spoofed image)
    let pending = pending_file(11, None);
    let job = pending.job.clone().expect("a job");
    let rejected = pending
        .settle(
            job.job_id,
            Verdict::Rejected(shared::domain::RejectionReason::ContentTypeMismatch),
            timestamp::now(),
            std::time::Duration::from_secs(3600),
        )
        .expect("a verdict");
    let (file_id, before, after) = (pending.file_id, Item::from(&pending), Item::from(&rejected));
    let reads = mock!(DynamoDb::get_item)
        .match_requests(move |get| keys_file(get.key(), file_id))
        .sequence()
        .output(move || {
            GetItemOutput::builder()
                .set_item(Some(before.clone()))
                .build()
        })
        .output(move || {
            GetItemOutput::builder()
                .set_item(Some(after.clone()))
                .build()
        })
        .build();
    let gone = mock!(S3::head_object).then_http_response(|| s3_head_error(404));
    let api = TestApi::mocked(&[&reads], &[&gone]);

    // WHEN the client completes
    let reply = api.complete(&file_id.to_string()).await;

    // THEN it is told the file as verify left it, not that nothing was uploaded
    let file = reply.file();
    assert_eq!(file.status, integration_tests::Status::Rejected);
    assert_eq!(reads.num_calls(), 2);
}

#[tokio::test]
async fn a_token_claim_that_applied_before_its_answer_was_lost_is_not_refused_on_retry() {
    use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
    use shared::domain::token::UploadToken;

    let now = timestamp::now();
    let token = UploadToken {
        hash: "0".repeat(64),
        project_id: "p".into(),
        expires_at: now + std::time::Duration::from_secs(600),
        max_file_size: None,
        content_types: Vec::new(),
        max_files: 1,
        metadata: Default::default(),
        files: Default::default(),
        minted_by: None,
    };
    let ours = FileId::random();
    let with_file = |file_id: FileId, expires_at| UploadToken {
        files: [file_id].into(),
        expires_at,
        ..token.clone()
    };
    let live = token.expires_at;
    let past = now - std::time::Duration::from_secs(1);
    for (held, expected) in [
        // The first attempt took the last slot, its answer was lost, the SDK sent it again:
        // the retry is refused with the token as the first attempt left it.
        (with_file(ours, live), Ok(())),
        // Another file took the last slot: used up.
        (with_file(FileId::random(), live), Err(403)),
        // Expired meanwhile, and not holding this file: 401.
        (with_file(FileId::random(), past), Err(401)),
    ] {
        let item = Item::from(&held);
        let mut item_with_files = item.clone();
        item_with_files.insert(
            shared::dynamo::item::TOKEN_FILES.into(),
            aws_sdk_dynamodb::types::AttributeValue::Ss(
                held.files.iter().map(FileId::to_string).collect(),
            ),
        );
        let update = mock!(DynamoDb::update_item)
            .sequence()
            .http_status(500, None)
            .error(move || {
                UpdateItemError::ConditionalCheckFailedException(
                    ConditionalCheckFailedException::builder()
                        .message("The conditional request failed")
                        .set_item(Some(item_with_files.clone()))
                        .build(),
                )
            })
            .build();
        let api = TestApi::mocked(&[&update], &[]);

        let claimed = api.services.table.tokens.claim(&token, &[ours], now).await;

        assert_eq!(update.num_calls(), 2, "the SDK sent the claim again");
        match (claimed, expected) {
            (Ok(after), Ok(())) => assert!(after.created(ours)),
            (Err(err), Err(status)) => assert_eq!(err.status(), status, "{err:?}"),
            (got, expected) => panic!("{got:?}, expected {expected:?}"),
        }
    }
}
