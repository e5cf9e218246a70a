//! What is left, and what a retry finds, after a failure part-way: a request that fails with 5xx,
//! a direct upload whose second file cannot be stored, a complete racing a rejection, a token's
//! write whose answer was lost, and the cost of an unknown key.

use super::*;

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

    // GIVEN a token for one file, and a file of ours
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
        // AND a table whose answer to the claim is lost (a 500), and which refuses the SDK's
        // retry with the token as it holds it then
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

        // WHEN a slot of the token is claimed for our file
        let claimed = api.services.table.tokens.claim(&token, &[ours], now).await;

        // THEN the SDK sent the claim twice, and it stands if the token holds our file; if not,
        // it is refused as the token now stands
        assert_eq!(update.num_calls(), 2, "the SDK sent the claim again");
        match (claimed, expected) {
            (Ok(after), Ok(())) => assert!(after.created(ours)),
            (Err(err), Err(status)) => {
                assert_eq!(shared::http::status_of(&err).as_u16(), status, "{err:?}")
            }
            (got, expected) => panic!("{got:?}, expected {expected:?}"),
        }
    }
}
