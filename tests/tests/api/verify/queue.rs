//! Verify's queue: S3's events and the service's own steps (continuations, assemblies) reach
//! verify through it, as the sample messages of `events/` show.

use super::*;

#[tokio::test]
async fn s3_events_and_continuations_reach_verify_through_its_queue() {
    // GIVEN verify's queue, holding S3's test event and the event of an upload of 6 steps
    let queue_url = integration_tests::verify_queue_url().await;
    let api = TestApi::with_config(|c| {
        step_api_config(c);
        c.verify_queue_url = Some(queue_url.clone());
    })
    .await;
    let sqs = aws_sdk_sqs::Client::new(&integration_tests::sdk_config().await);
    let bytes: Vec<u8> = (0..5 * MIB + 7).map(|i| (i % 241) as u8).collect();
    let plan = upload_in_parts(&api, &bytes, true).await;
    let s3_event = api.s3_event("s3-complete-multipart", &plan.s3_key);
    for body in [
        json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}).to_string(),
        integration_tests::serde_json::to_string(&s3_event).unwrap(),
    ] {
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    // WHEN each message is handed to verify as Lambda's SQS mapping does (one per invocation)
    let outcomes = drain(&api, &sqs, &queue_url).await;

    // THEN the test event was dropped, and six steps, each queued by the one before, verified it
    assert_eq!(outcomes.len(), 1 + 6);
    assert_eq!(outcomes.last(), Some(&Outcome::Verified));
    assert_eq!(api.get(&plan.file_id).await.file().status, Status::Verified);
}

/// Hands each message of the queue to verify as Lambda's SQS mapping does, one per invocation,
/// until the queue stays empty; every message must succeed. The outcomes, in order.
async fn drain(api: &TestApi, sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Outcome> {
    use aws_lambda_events::sqs::SqsMessage;
    use integration_tests::operations::as_function;

    let mut outcomes = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let Some(message) = received.messages().first() else {
            break;
        };
        let mut record = SqsMessage::default();
        record.message_id = message.message_id.clone();
        record.body = message.body.clone();
        let outcome = as_function(
            "verify",
            verify::process(&api.services, &api.verify_queue, &record),
        )
        .await;
        outcomes.extend(outcome.expect("verify handles the message"));
        sqs.delete_message()
            .queue_url(queue_url)
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    outcomes
}

#[tokio::test]
async fn an_upload_of_more_parts_than_complete_assembles_is_assembled_by_verify() {
    // GIVEN complete assembling at most 1 part, and an upload of 2
    let queue_url = integration_tests::verify_queue_url().await;
    let api = TestApi::with_config(|c| {
        c.multipart_threshold = 5 * MIB;
        c.part_size = 5 * MIB;
        c.assemble_inline_max_parts = 1;
        c.verify_queue_url = Some(queue_url.clone());
    })
    .await;
    let sqs = aws_sdk_sqs::Client::new(&integration_tests::sdk_config().await);
    let bytes: Vec<u8> = (0..5 * MIB + 1024).map(|i| (i % 239) as u8).collect();
    let plan = api
        .create(declaration(
            "two.bin",
            "application/octet-stream",
            &bytes,
            true,
            false,
        ))
        .await
        .plan();

    // WHEN a part is missing
    api.put_part(&plan.urls[0], bytes[..5 * MIB as usize].to_vec())
        .await;
    let refused = api.complete(&plan.file_id).await;

    // THEN complete refuses and hands nothing over
    assert_eq!(refused.status, 409);
    assert!(drain(&api, &sqs, &queue_url).await.is_empty());

    // WHEN every part is there
    api.put_part(&plan.urls[1], bytes[5 * MIB as usize..].to_vec())
        .await;
    let accepted = api.complete(&plan.file_id).await;

    // THEN complete answers 202 with the file uploaded, not yet assembled
    assert_eq!(accepted.status, 202);
    assert_eq!(accepted.body["status"], "uploaded");
    assert!(api.stored_objects(&plan.file_id).await.is_empty());

    // AND verify assembles it from its queue; a second assembly finds nothing left to do
    let outcomes = drain(&api, &sqs, &queue_url).await;
    assert_eq!(outcomes, [Outcome::Assembled]);
    let assembly = shared::app::verify_queue::Assembly {
        file_id: plan.file_id.parse().unwrap(),
        job_id: plan.job_id.parse().unwrap(),
    };
    assert_eq!(
        verify::assemble(&api.services, &assembly).await.unwrap(),
        Outcome::Ignored("assembled or aborted already")
    );

    // AND the assembled object's event settles the file, as any other's
    let event = api.s3_event("s3-complete-multipart", &plan.s3_key);
    assert_eq!(
        verify::handle(&api.services, event).await.unwrap(),
        [Outcome::Verified]
    );
    assert_eq!(api.download(&plan.file_id).await, bytes);
    let again = api.complete(&plan.file_id).await;
    assert_eq!((again.status, again.file().status), (200, Status::Verified));
}

/// The queue samples of `events/`, for `cargo lambda invoke verify`: S3's event of a key of
/// another bucket, and a continuation and an assembly of a file that does not exist. None
/// changes anything.
#[tokio::test]
async fn the_queue_samples_are_messages_verify_reads() {
    // GIVEN the queue samples of `events/`, of another bucket or of no file of this project
    use aws_lambda_events::sqs::SqsEvent;

    let api = TestApi::new().await;
    for (sample, outcome) in [
        ("verify-sqs", Outcome::Ignored("another bucket")),
        ("verify-continuation", Outcome::Ignored("unknown file")),
        ("verify-assemble", Outcome::Ignored("unknown file")),
    ] {
        // WHEN verify reads the sample's message
        let path = format!("{}/../events/{sample}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        let event: SqsEvent = integration_tests::serde_json::from_str(&text).unwrap();
        let outcomes = verify::process(&api.services, &api.verify_queue, &event.records[0])
            .await
            .unwrap();

        // THEN verify ignores it
        assert_eq!(outcomes, [outcome], "{sample}");
    }
}
