//! The operator's commands (`upload-admin`, the `admin` crate) against the real servers: what
//! an operator does when an alarm fires brings the work back and settles the files.

use std::time::Duration;

use admin::redrive::{self, redrive, source_of};
use admin::stuck::{reverify, stuck_files};
use integration_tests::faults::Fault;
use integration_tests::{Status, TestApi, declaration, queue_of_its_own, sdk_config};
use shared::app::verify_queue::{Step, VerifyQueue};
use shared::domain::FileId;

const TEXT: &str = "text/plain";

/// A file whose bytes are stored and whose upload is completed, and whose `ObjectCreated`
/// event nobody has handed to verify yet: its id and object key.
async fn completed(api: &TestApi, bytes: &[u8]) -> (String, String) {
    let plan = api
        .create(declaration("notes.txt", TEXT, bytes, true, false))
        .await
        .plan();
    api.upload_whole(&plan, bytes.to_vec()).await;
    assert_eq!(api.complete(&plan.file_id).await.status, 200);
    (plan.file_id, plan.s3_key)
}

/// verify's queue of this test, with its failure queue after `max_receives` receives, as
/// template.yaml's VerifyQueue and VerifyFailures: (queue, failures).
async fn verify_queues(
    api: &mut TestApi,
    sqs: &aws_sdk_sqs::Client,
    max_receives: u32,
) -> (String, String) {
    let name = format!("verify-{}", uuid::Uuid::new_v4().simple());
    let (queue, failures) = shared::events::provision::create_queue_with_dead_letters(
        sqs,
        &name,
        &format!("{name}-failures"),
        max_receives,
    )
    .await
    .expect("verify's queues");
    api.verify_queue = VerifyQueue::new(sqs.clone(), &queue);
    (queue, failures)
}

#[tokio::test]
async fn a_verification_that_keeps_failing_is_redriven_and_settles() {
    // GIVEN a completed file whose S3 event is in verify's queue, which keeps what fails
    // twice, while storage fails every request
    let (mut api, dependencies) = TestApi::behind_proxies(Duration::from_secs(2)).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let (queue, failures) = verify_queues(&mut api, &sqs, 2).await;
    let (file_id, key) = completed(&api, b"checked once storage is back").await;
    let event = integration_tests::serde_json::to_string(&api.s3_event("s3-put", &key)).unwrap();
    sqs.send_message()
        .queue_url(&queue)
        .message_body(event)
        .send()
        .await
        .unwrap();
    dependencies.s3.set(Fault::Reset);

    // WHEN verify fails on it twice (each time asking for its backoff, which the test lets pass)
    for _ in 0..2 {
        let pumped = api.pump_verify_queue(&sqs, &queue).await;
        assert_eq!((pumped.handed, pumped.failed.len()), (1, 1));
        let hidden = sqs
            .receive_message()
            .queue_url(&queue)
            .send()
            .await
            .unwrap();
        assert!(hidden.messages().is_empty(), "verify delayed its retry");
        for receipt in pumped.failed {
            sqs.change_message_visibility()
                .queue_url(&queue)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        }
    }

    // THEN the queue moves it to the failure queue
    assert_eq!(api.pump_verify_queue(&sqs, &queue).await.handed, 0);
    assert_eq!(api.get(&file_id).await.file().status, Status::Uploaded);
    // (`--queue verify` finds the failure queue from verify's queue's redrive policy)
    assert_eq!(
        redrive::dead_letters_of(&sqs, &queue).await.unwrap(),
        failures
    );
    let counted = redrive(&sqs, &failures, None, true).await.unwrap();
    assert_eq!((counted.to.as_str(), counted.messages), (queue.as_str(), 1));

    // WHEN storage is back and the operator redrives the failures
    dependencies.s3.set(Fault::None);
    let moved = redrive(&sqs, &failures, None, false).await.unwrap();

    // THEN the message is back in verify's queue, and verify settles the file
    assert_eq!((moved.to.as_str(), moved.messages), (queue.as_str(), 1));
    assert_eq!(api.pump_verify_queue(&sqs, &queue).await.failed, [""; 0]);
    assert_eq!(api.get(&file_id).await.file().status, Status::Verified);
    assert_eq!(
        redrive(&sqs, &failures, None, true).await.unwrap().messages,
        0
    );
}

#[tokio::test]
async fn stuck_lists_a_file_whose_trigger_never_came_and_reverify_settles_it() {
    // GIVEN a completed file whose ObjectCreated event was lost
    let mut api = TestApi::new().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let (queue, _) = verify_queues(&mut api, &sqs, 10).await;
    let (file_id, _) = completed(&api, b"nobody told verify").await;
    let id: FileId = file_id.parse().unwrap();

    // WHEN the operator lists what is stuck
    let stuck = stuck_files(&api.services, Duration::ZERO).await.unwrap();

    // THEN the file is there, with its check as the step to hand verify
    let found = stuck
        .iter()
        .find(|file| file.record.file_id == id)
        .expect("listed");
    assert!(
        matches!(found.step, Step::Continue(step) if step.file_id == id),
        "{:?}",
        found.step
    );
    let later = stuck_files(&api.services, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(
        later.iter().all(|file| file.record.file_id != id),
        "not an hour old"
    );

    // WHEN they reverify it
    reverify(&api.services, &api.verify_queue, id)
        .await
        .unwrap();

    // THEN verify gets the step and settles the file, which is stuck no more
    assert_eq!(api.pump_verify_queue(&sqs, &queue).await.failed, [""; 0]);
    assert_eq!(api.get(&file_id).await.file().status, Status::Verified);
    let stuck = stuck_files(&api.services, Duration::ZERO).await.unwrap();
    assert!(stuck.iter().all(|file| file.record.file_id != id));
    let refused = reverify(&api.services, &api.verify_queue, id)
        .await
        .unwrap_err();
    assert!(refused.contains("verified"), "{refused}");
}

#[tokio::test]
async fn inspect_shows_the_item_the_objects_and_their_tags() {
    // GIVEN a verified file
    let api = TestApi::new().await;
    let (file_id, key) = completed(&api, b"look at me").await;
    api.deliver(&key).await;

    // WHEN the operator inspects it
    let found = admin::inspect::inspect(&api.services, file_id.parse().unwrap())
        .await
        .unwrap();

    // THEN they see its item, its objects and their tags, and no upload open
    assert_eq!(found["item"]["status"], "verified", "{found:#}");
    assert_eq!(found["objects"][0]["key"], key.as_str(), "{found:#}");
    assert_eq!(found["objects"][0]["size"], 10);
    assert_eq!(found["objects"][0]["tags"]["state"], "verified");
    assert!(found["open_upload"].is_null());
}

#[tokio::test]
async fn a_redrive_needs_its_destination_named_when_no_queue_redrives_to_it() {
    // GIVEN a queue that no queue redrives to, like the event rule's dead letters (they are no
    // queue's: they go to the webhook queue by name)
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let lonely = queue_of_its_own("lonely").await;

    // WHEN the operator redrives it without naming where to
    let refused = source_of(&sqs, &lonely).await.unwrap_err();

    // THEN they are told to name the destination with `--to`
    assert!(refused.contains("--to"), "{refused}");
}

/// Where `file_id`'s change to `status` is in the table's stream: (stream ARN, shard, sequence
/// number), as the stream mapping's failure destination names a batch.
async fn stream_position(api: &TestApi, file_id: &str, status: &str) -> (String, String, String) {
    use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
    let sdk = sdk_config().await;
    let stream_arn = api
        .services
        .table
        .files
        .client()
        .describe_table()
        .table_name(api.services.table.files.table())
        .send()
        .await
        .unwrap()
        .table
        .and_then(|table| table.latest_stream_arn)
        .expect("the table has a stream");
    let streams = admin::stream::client(&sdk);
    let described = streams
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await
        .unwrap();
    let shards = described
        .stream_description
        .unwrap()
        .shards
        .unwrap_or_default();
    let wanted = |image: Option<&std::collections::HashMap<String, AttributeValue>>| {
        image.is_some_and(|image| {
            image.get("pk") == Some(&AttributeValue::S(format!("FILE#{file_id}")))
                && image.get("status") == Some(&AttributeValue::S(status.to_owned()))
        })
    };
    for shard in shards {
        let shard_id = shard.shard_id.unwrap();
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&stream_arn)
            .shard_id(&shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(current) = iterator.take() {
            let page = streams
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .unwrap();
            if page.records().is_empty() {
                break;
            }
            for record in page.records() {
                let change = record.dynamodb().unwrap();
                if wanted(change.new_image()) {
                    let sequence = change.sequence_number().unwrap().to_owned();
                    return (stream_arn, shard_id, sequence);
                }
            }
            iterator = page.next_shard_iterator;
        }
    }
    panic!("no change of {file_id} to {status} in the stream");
}

#[tokio::test]
async fn a_stream_batch_notify_gave_up_on_is_replayed_and_its_event_published() {
    // GIVEN a verified file whose event notify never published: the stream mapping gave up on
    // its record and put the record's position in the failure queue
    let api = TestApi::new().await;
    let (file_id, key) = completed(&api, b"published late").await;
    api.deliver(&key).await;
    let (stream_arn, shard, sequence) = stream_position(&api, &file_id, "verified").await;
    let mut path = api.event_path(5).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let failures = queue_of_its_own("notify-failures").await;
    let failed_batch = integration_tests::serde_json::json!({
        "version": "1.0",
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": sequence,
            "endSequenceNumber": sequence,
            "batchSize": 1,
            "streamArn": stream_arn,
        },
    });
    sqs.send_message()
        .queue_url(&failures)
        .message_body(failed_batch.to_string())
        .send()
        .await
        .unwrap();

    // WHEN the operator replays the failures (`upload-admin replay-stream`)
    let streams = admin::stream::client(&sdk_config().await);
    let replayed = admin::stream::replay(&sqs, &streams, path.bus(), path.usages(), &failures)
        .await
        .unwrap();

    // THEN the file's event reaches the bus and the webhook queue, and the failure is gone
    assert_eq!((replayed.batches, replayed.changes), (1, 1));
    path.until("the replayed event", |path| !path.envelopes.is_empty())
        .await;
    assert_eq!(path.published_types(), ["file.verified"]);
    assert_eq!(
        path.envelopes[0]["detail"]["data"]["file_id"],
        file_id.as_str()
    );
    assert_eq!(redrive::waiting(&sqs, &failures).await.unwrap(), 0);
}
