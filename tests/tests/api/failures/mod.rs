//! Failure branches, over SDK clients answered by mock rules (`integration_tests::mocks`): what
//! a client of the API sees when DynamoDB or S3 throttle, fail or refuse, and what the adapters
//! make of the answers the real servers cannot be made to give. No servers, no network.

mod deadlines;
mod publish;
mod recovery;
mod refused_writes;
mod storage;
mod trigger;
mod unavailable;

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
use shared::domain::{FileId, FileRecord, FileStatus, TransitionRefusal, Verdict, timestamp};
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

/// The file of `record` once a newer upload (a reupload) replaced its job.
fn superseded(record: &FileRecord) -> FileRecord {
    let newer = pending_file(record.content.file_size, None);
    FileRecord {
        job: newer.job,
        ..record.clone()
    }
}
