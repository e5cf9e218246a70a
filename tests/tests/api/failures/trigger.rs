//! The verify trigger: an error makes Lambda deliver the event again; a verdict is not an error.
//! (`::verify` is the function's crate, also beside a test module named `verify`.)

use super::*;

#[tokio::test]
async fn verify_fails_for_a_retry_while_dynamodb_throttles() {
    // GIVEN a file awaiting its bytes, and a table that throttles every read of it
    let record = pending_file(11, None);
    let file_id = record.file_id;
    let get = mock!(DynamoDb::get_item)
        .match_requests(move |get| keys_file(get.key(), file_id))
        .then_http_response(|| dynamodb_error(400, "ThrottlingException"));
    let api = TestApi::mocked(&[&get], &[]);

    // WHEN storage reports its object created
    let result = api.verify(api.s3_event("s3-put", &s3_key(&record))).await;

    // THEN verify fails, after the SDK's own attempts, for Lambda to deliver the event again
    assert!(result.is_err(), "{result:?}");
    assert_eq!(get.num_calls(), ATTEMPTS);
}

#[tokio::test]
async fn verify_fails_for_a_retry_when_s3_answers_500() {
    // GIVEN a file awaiting its bytes, and S3 answering every HEAD of its object with a 500
    let record = pending_file(11, None);
    let head = mock!(S3::head_object).then_http_response(|| s3_head_error(500));
    let api = TestApi::mocked(&[&file_lookup(&record)], &[&head, &object_retagged()]);

    // WHEN storage reports its object created
    let result = api.verify(api.s3_event("s3-put", &s3_key(&record))).await;

    // THEN verify fails, after the SDK's own attempts, for Lambda to deliver the event again
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
