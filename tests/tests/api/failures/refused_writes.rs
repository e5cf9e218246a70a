//! Conditional writes refused: the adapter hands back the item DynamoDB returned with the refusal.

use super::*;

/// DynamoDB's refusal of a conditional write, with the item as it is when there is one.
fn refusal(current: Option<&FileRecord>) -> ConditionalCheckFailedException {
    ConditionalCheckFailedException::builder()
        .message("The conditional request failed")
        .set_item(current.map(Item::from))
        .build()
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
                    assert_eq!(refusal, TransitionRefusal::JobSuperseded, "{name}");
                    assert_eq!(&found, latest, "{name}");
                }
                (Err(err), None) => {
                    assert_eq!(shared::http::status_of(&err).as_u16(), 404, "{name}")
                }
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
    // GIVEN a new file
    let record = pending_file(11, None);
    for (existing, created) in [(record.clone(), true), (superseded(&record), false)] {
        // AND a table that refuses its creation, returning what is under its id: the file
        // itself (an earlier attempt applied, its answer lost) or another file
        let put = mock!(DynamoDb::transact_write_items)
            .then_error(move || transaction_refused(2, 0, Some(Item::from(&existing))));
        let api = TestApi::mocked(&[&put], &[]);

        // WHEN the file is created
        let inserted = api.services.table.files.insert_new(&record, None).await;

        // THEN it is created if the refusal returned the file itself, and a server error if not
        assert_eq!(inserted.is_ok(), created, "{inserted:?}");
        if let Err(err) = inserted {
            assert_eq!(shared::http::status_of(&err).as_u16(), 500);
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

    // AND so does verify's assembly of it from its queue
    let assembly = shared::app::verify_queue::Assembly {
        file_id: record.file_id,
        job_id: record.job.as_ref().expect("a job").job_id,
    };
    let assembled = as_function("verify", ::verify::assemble(&api.services, &assembly)).await;
    assert!(assembled.is_err(), "{assembled:?}");
    assert_eq!(release.num_calls(), 2);
}

#[tokio::test]
async fn an_assembly_another_invocation_holds_is_handed_back_to_verify_s_queue() {
    // GIVEN a multipart upload whose parts are all stored, whose assembly another invocation
    // has claimed (the claim's write is refused with a live claim not ours)
    let record = pending_file(12 << 20, Some("upload-1"));
    let job_id = record.job.as_ref().expect("a job").job_id;
    let claimed = shared::dynamo::item::assembly_claim_key(record.file_id, job_id);
    let held = mock!(DynamoDb::put_item)
        .match_requests(|put| is_assembly_claim(put.item()))
        .then_error(move || {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder()
                    .message("The conditional request failed")
                    .set_item(Some(claimed.clone()))
                    .build(),
            )
        });
    let assemble = mock!(S3::complete_multipart_upload)
        .then_output(|| CompleteMultipartUploadOutput::builder().build());
    let api = TestApi::mocked(
        &[&file_lookup(&record), &held],
        &[&all_parts_of_12_mib(), &assemble],
    );
    let backoff = mock!(aws_sdk_sqs::Client::change_message_visibility).then_output(|| {
        aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityOutput::builder()
            .build()
    });
    let queue = shared::app::verify_queue::VerifyQueue::new(
        integration_tests::mocks::sqs_client(&[&backoff]),
        integration_tests::NO_QUEUE,
    );
    let step = shared::app::verify_queue::Step::Assemble(shared::app::verify_queue::Assembly {
        file_id: record.file_id,
        job_id,
    });
    let mut message = aws_lambda_events::sqs::SqsMessage::default();
    message.message_id = Some("m-1".to_owned());
    message.receipt_handle = Some("r-1".to_owned());
    message.body = Some(serde_json::to_string(&step).unwrap());
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    event.records = vec![message];

    // WHEN verify takes the assembly from its queue
    let answer = as_function(
        "verify",
        ::verify::handle_messages(&api.services, &queue, event),
    )
    .await;

    // THEN it leaves storage alone and hands the message back, to come again after its backoff
    assert_eq!(assemble.num_calls(), 0, "the holder assembles");
    let failed: Vec<&str> = answer
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-1"]);
    assert_eq!(backoff.num_calls(), 1);
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
