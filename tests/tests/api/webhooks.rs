//! Events and webhooks against the real servers: each change of a file travels the table's
//! stream → notify → EventBridge (LocalStack) → a rule → SQS → deliver → a loopback receiver that
//! checks the Standard Webhooks signature.

use std::time::{Duration, Instant};

use integration_tests::delivery::{EventPath, Receiver, event_message, sqs_event};
use integration_tests::mocks;
use integration_tests::serde_json::{Value, json};
use integration_tests::{Status, TestApi, declaration};
use shared::domain::event::EventType;
use shared::domain::webhook::{SigningSecret, WebhookConfig, WebhookUrl};

const TEXT: &str = "text/plain";
const PNG: &str = "image/png";

/// A webhook for every event type pointed at a fresh receiver that trusts its secret.
async fn subscribed(api: &TestApi) -> Receiver {
    let receiver = Receiver::start().await;
    let reply = api.set_webhook(json!({ "url": receiver.url })).await;
    assert_eq!(reply.status, 200, "{:#}", reply.body);
    receiver.trust(
        reply.body["secret"]
            .as_str()
            .expect("a new webhook shows its secret"),
    );
    receiver
}

/// Uploads `bytes` as `content_type` and runs the verify trigger on it: the file's id. Text
/// declared `image/png` is rejected (`content_type_mismatch`); as `text/plain`, verified.
async fn upload_checked(api: &TestApi, bytes: &[u8], content_type: &str) -> String {
    let plan = api
        .create(declaration("notes", content_type, bytes, true, false))
        .await
        .plan();
    api.put(&plan, 1, bytes.to_vec()).await;
    api.deliver(&plan.s3_key).await;
    plan.file_id
}

fn types(deliveries: &[integration_tests::delivery::Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| d.body["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn each_change_is_delivered_once_signed_with_the_file() {
    // GIVEN a webhook for every event type, at a receiver that trusts its secret
    let api = TestApi::new().await;
    let mut path = api.event_path(18).await;
    let receiver = subscribed(&api).await;

    // WHEN a file is verified, another rejected, a third's upload aborted, and the first deleted
    let verified = upload_checked(&api, b"hello", TEXT).await;
    let rejected = upload_checked(&api, b"not a png either", PNG).await;
    let aborted = api
        .create(declaration("a.txt", "text/plain", b"abc", false, false))
        .await
        .plan()
        .file_id;
    assert_eq!(api.abort(&aborted).await.status, 200);
    assert_eq!(api.delete(&verified).await.status, 204);
    path.until("four deliveries", |_| receiver.accepted().len() >= 4)
        .await;
    path.drain(Duration::from_secs(2)).await;

    // THEN each arrived once, signed (in no promised order: the queue and deliver's parallel
    // deliveries reorder them)
    let deliveries = receiver.deliveries();
    assert!(deliveries.iter().all(|d| d.signed && d.answered == 204));
    let mut got: Vec<(String, String)> = deliveries
        .iter()
        .map(|d| {
            let body = &d.body;
            (
                body["data"]["file_id"].as_str().unwrap().to_owned(),
                body["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let mut expected = vec![
        (verified.clone(), "file.verified".to_owned()),
        (verified.clone(), "file.deleted".to_owned()),
        (rejected.clone(), "file.rejected".to_owned()),
        (aborted.clone(), "upload.aborted".to_owned()),
    ];
    expected.sort();
    assert_eq!(got, expected);

    // AND the event is the contract's: id, type, timestamp, the file resource without a URL
    let event = deliveries
        .iter()
        .find(|d| d.body["type"] == "file.verified")
        .unwrap();
    assert!(event.id.starts_with("evt_"));
    assert_eq!(event.body["id"], event.id.as_str());
    assert!(event.body["timestamp"].as_str().unwrap().ends_with('Z'));
    let file: integration_tests::File =
        integration_tests::serde_json::from_value(event.body["data"].clone()).unwrap();
    assert_eq!(file.status, Status::Verified);
    assert_eq!(file.project_id, api.project);
    assert!(event.body["data"].get("download_url").is_none());
    let rejection = deliveries
        .iter()
        .find(|d| d.body["type"] == "file.rejected")
        .unwrap();
    assert_eq!(
        rejection.body["data"]["rejection_reason"],
        "content_type_mismatch"
    );

    // AND the bus carried each event once, typed, for AWS-native consumers
    let mut published = path.published_types();
    published.sort();
    assert_eq!(
        published,
        [
            "file.deleted",
            "file.rejected",
            "file.verified",
            "upload.aborted"
        ]
    );
    assert!(
        path.envelopes
            .iter()
            .all(|e| e["source"] == "upload-service")
    );
}

#[tokio::test]
async fn repeated_s3_events_and_refused_writes_emit_nothing() {
    // GIVEN a webhook for every event type, and a file whose bytes are stored
    let api = TestApi::new().await;
    let mut path = api.event_path(18).await;
    let receiver = subscribed(&api).await;
    let plan = api
        .create(declaration("n.txt", "text/plain", b"twice", true, false))
        .await
        .plan();
    api.put(&plan, 1, b"twice".to_vec()).await;

    // WHEN S3 delivers the same event three times, complete comes after the verdict, and a
    // complete names a job that is not the file's
    for _ in 0..3 {
        api.deliver(&plan.s3_key).await;
    }
    assert_eq!(api.complete(&plan.file_id).await.status, 200);
    let wrong_job = json!({ "job_id": uuid::Uuid::new_v4().to_string() });
    assert_eq!(
        api.complete_with(&plan.file_id, wrong_job).await.status,
        409
    );
    path.until("the verdict", |_| !receiver.accepted().is_empty())
        .await;
    path.drain(Duration::from_secs(2)).await;

    // THEN one event, for the one change
    assert_eq!(types(&receiver.deliveries()), ["file.verified"]);
    assert_eq!(path.published_types(), ["file.verified"]);
}

#[tokio::test]
async fn a_failing_receiver_gets_the_third_attempt_after_backing_off() {
    // GIVEN a webhook whose receiver fails the first two deliveries
    let api = TestApi::new().await;
    let mut path = api.event_path(18).await;
    let receiver = subscribed(&api).await;
    receiver.fail_first(2);

    // WHEN a file is verified
    upload_checked(&api, b"retry me", TEXT).await;
    path.until("an accepted delivery", |_| !receiver.accepted().is_empty())
        .await;

    // THEN the third attempt is accepted, each attempt the same event, signed
    let attempts = receiver.deliveries();
    assert_eq!(
        attempts.iter().map(|d| d.answered).collect::<Vec<_>>(),
        [500, 500, 204]
    );
    assert!(attempts.iter().all(|d| d.id == attempts[0].id && d.signed));
    // AND each attempt backed off longer (WEBHOOK_RETRY_BASE_SECS is 1 here: 1 s, then 2 s)
    let gap = |a: usize| attempts[a + 1].at - attempts[a].at;
    assert!(gap(0) >= Duration::from_millis(900), "{:?}", gap(0));
    assert!(gap(1) >= Duration::from_millis(1900), "{:?}", gap(1));
}

/// Pumps until the dead-letter queue holds something, and returns it.
async fn dead_letters(path: &mut EventPath) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        path.pump().await;
        let dead = path.dead_letters().await;
        if !dead.is_empty() {
            return dead;
        }
        assert!(
            Instant::now() < deadline,
            "nothing reached the dead-letter queue"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn deliveries_that_keep_failing_end_in_the_dead_letter_queue() {
    // GIVEN a webhook whose receiver fails every delivery
    let api = TestApi::new().await;
    // AND a tiny retry budget: two attempts
    let mut path = api.event_path(2).await;
    let receiver = subscribed(&api).await;
    receiver.fail_first(usize::MAX);

    // WHEN a file is verified
    let file_id = upload_checked(&api, b"doomed", TEXT).await;
    let dead = dead_letters(&mut path).await;

    // THEN after two attempts, its event ends in the dead-letter queue
    assert_eq!(receiver.deliveries().len(), 2, "two attempts, then no more");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["detail-type"], "file.verified");
    assert_eq!(dead[0]["detail"]["data"]["file_id"], file_id.as_str());
}

#[tokio::test]
async fn dead_letters_redriven_by_the_operator_are_delivered() {
    // GIVEN an event in the dead-letter queue: the receiver failed both attempts
    let api = TestApi::new().await;
    let mut path = api.event_path(2).await;
    let receiver = subscribed(&api).await;
    receiver.fail_first(2);
    let file_id = upload_checked(&api, b"delivered at last", TEXT).await;
    assert_eq!(dead_letters(&mut path).await.len(), 1);

    // WHEN the operator redrives the dead letters (`upload-admin redrive`)
    let sqs = aws_sdk_sqs::Client::new(&integration_tests::sdk_config().await);
    let moved = admin::redrive::redrive(&sqs, &path.dead_letter_queue_url, None, false)
        .await
        .unwrap();

    // THEN they go back to the delivery queue, and the event is delivered, once
    assert_eq!(
        (moved.to.as_str(), moved.messages),
        (path.queue_url.as_str(), 1)
    );
    path.until("the redriven delivery", |_| !receiver.accepted().is_empty())
        .await;
    path.drain(Duration::from_secs(1)).await;
    let accepted = receiver.accepted();
    assert_eq!(types(&accepted), ["file.verified"]);
    assert_eq!(accepted[0].body["data"]["file_id"], file_id.as_str());
    assert!(path.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_webhook_whose_name_resolves_to_a_private_address_is_refused_at_delivery() {
    // GIVEN a receiver on loopback
    let api = TestApi::new().await;
    let mut path = api.event_path(1).await;
    let receiver = Receiver::start().await;
    // AND a webhook naming it `localhost`, which passes where loopback is allowed (as in
    // `scripts/dev`), and resolves to 127.0.0.1, which a deployment's deliveries may not call
    let url = receiver.url.replace("127.0.0.1", "localhost");
    let reply = api.set_webhook(json!({ "url": url })).await;
    assert_eq!(reply.status, 200, "{:#}", reply.body);
    // AND deliveries that may not call loopback
    path.deliver_with(|config| config.webhook_allow_loopback = false);

    // WHEN a file is verified
    upload_checked(&api, b"ssrf", TEXT).await;
    let dead = dead_letters(&mut path).await;

    // THEN no connection is made, and the event ends in the dead-letter queue
    assert!(receiver.deliveries().is_empty(), "no connection was made");
    assert_eq!(dead[0]["detail-type"], "file.verified");
}

#[tokio::test]
async fn deliveries_follow_the_webhook_as_it_is_when_they_leave() {
    // GIVEN a webhook changed to want only rejections
    let api = TestApi::new().await;
    let mut path = api.event_path(18).await;
    let receiver = subscribed(&api).await;
    let reply = api
        .set_webhook(json!({ "url": receiver.url, "events": ["file.rejected"] }))
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.get("secret").is_none(), "shown only when made");

    // WHEN a verification (not wanted) and a rejection (wanted) happen
    upload_checked(&api, b"fine", TEXT).await;
    upload_checked(&api, b"not a png", PNG).await;
    path.until("the rejection", |_| !receiver.accepted().is_empty())
        .await;
    path.drain(Duration::from_secs(1)).await;

    // THEN only the rejection is delivered; after the webhook is removed, nothing is
    assert_eq!(types(&receiver.deliveries()), ["file.rejected"]);
    assert_eq!(api.delete_webhook().await.status, 204);
    upload_checked(&api, b"not a png", PNG).await;
    path.until("the bus to carry it", |path| {
        path.published_types().len() == 3
    })
    .await;
    path.drain(Duration::from_secs(1)).await;
    assert_eq!(receiver.deliveries().len(), 1);
}

/// Lambda hands `deliver` up to ten messages at once: each project's webhook is read once for
/// them, and each event still goes to its own project's webhook, or nowhere.
#[tokio::test]
async fn a_batch_reads_each_projects_webhook_once_and_delivers_each_event_to_its_own() {
    // GIVEN p1's webhook, at a receiver that trusts its secret, and p2 without one
    let receiver = Receiver::start().await;
    let webhook = trusted_by(&receiver, 7);
    let subscribed = mocks::webhook_lookup("p1", Some(&webhook));
    let unsubscribed = mocks::webhook_lookup("p2", None);
    let api = TestApi::mocked(&[&subscribed, &unsubscribed], &[]);
    let deliverer = loopback_deliverer(&api).await;

    // WHEN one batch carries three events of p1, two of p2 (no webhook) and a stray message
    let mut messages: Vec<_> = ["p1", "p2", "p1", "p2", "p1"]
        .into_iter()
        .enumerate()
        .map(|(n, project)| event_message(&format!("m{n}"), project, &format!("evt_{project}_{n}")))
        .collect();
    let mut stray = event_message("m5", "p1", "evt_stray");
    stray.body = Some("{}".to_owned());
    messages.push(stray);
    let response = deliverer.handle(sqs_event(messages)).await;

    // THEN p1's three arrive signed, nothing else is sent or retried, and each webhook was read
    // once
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let mut ids: Vec<String> = receiver
        .accepted()
        .iter()
        .filter(|delivery| delivery.signed)
        .map(|delivery| delivery.id.clone())
        .collect();
    ids.sort();
    assert_eq!(ids, ["evt_p1_0", "evt_p1_2", "evt_p1_4"]);
    assert_eq!(receiver.deliveries().len(), 3);
    assert_eq!(subscribed.num_calls(), 1);
    assert_eq!(unsubscribed.num_calls(), 1);
}

#[tokio::test]
async fn a_webhook_is_set_read_rotated_and_removed() {
    // GIVEN a project without a webhook
    let api = TestApi::new().await;
    assert_eq!(api.get_webhook().await.error_code(), "not_found");

    // WHEN a webhook is set
    let set = api
        .set_webhook(json!({"url": "https://hooks.example.com/u", "events": ["file.verified"]}))
        .await;

    // THEN it is answered with its new secret, and as set
    assert_eq!(set.status, 200, "{:#}", set.body);
    let secret = set.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(set.body["url"], "https://hooks.example.com/u");
    assert_eq!(set.body["events"], json!(["file.verified"]));

    // WHEN it is read
    let read = api.get_webhook().await;

    // THEN it is as set, without its secret
    assert_eq!(read.status, 200);
    assert!(read.body.get("secret").is_none());
    assert_eq!(read.body["project_id"], api.project.as_str());
    assert_eq!(read.body["events"], json!(["file.verified"]));

    // WHEN it is set again, with another URL and no event types
    let changed = api
        .set_webhook(json!({"url": "https://hooks.example.com/v"}))
        .await;

    // THEN its secret is not shown, it wants every type, and it keeps when it was created
    assert!(changed.body.get("secret").is_none());
    assert_eq!(
        changed.body["events"].as_array().unwrap().len(),
        4,
        "every type by default"
    );
    assert_eq!(changed.body["created_at"], set.body["created_at"]);

    // WHEN its secret is rotated
    let rotated = api
        .set_webhook(json!({"url": "https://hooks.example.com/v", "rotate_secret": true}))
        .await;

    // THEN a new secret is shown
    let new_secret = rotated.body["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);

    // WHEN it is removed
    assert_eq!(api.delete_webhook().await.status, 204);

    // THEN it is not found, and a second removal finds nothing
    assert_eq!(api.get_webhook().await.status, 404);
    assert_eq!(api.delete_webhook().await.status, 404);
}

#[tokio::test]
async fn bad_webhooks_are_refused_naming_the_field_and_change_nothing() {
    // GIVEN a project without a webhook, where webhooks may not call loopback
    let api = TestApi::with_config(|config| config.webhook_allow_loopback = false).await;
    let long = format!("https://hooks.example.com/{}", "a".repeat(2048));
    let refused = [
        (json!({"url": "http://hooks.example.com/u"}), "url"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "https://me:pw@hooks.example.com/u"}), "url"),
        (json!({"url": long}), "url"),
        (json!({"url": "https://10.0.0.8/u"}), "url"),
        (
            json!({"url": "https://169.254.169.254/latest/meta-data/"}),
            "url",
        ),
        (json!({"url": "http://127.0.0.1:9/u"}), "url"),
        (json!({"url": "https://localhost/u"}), "url"),
        (json!({"url": 7}), "url"),
        (json!({}), "url"),
        (
            json!({"url": "https://hooks.example.com/u", "events": ["file.created"]}),
            "events[0]",
        ),
        (
            json!({"url": "https://hooks.example.com/u", "events": "file.verified"}),
            "events",
        ),
        (
            json!({"url": "https://hooks.example.com/u", "rotate_secret": 1}),
            "rotate_secret",
        ),
    ];
    for (body, field) in refused {
        // WHEN a bad webhook is set
        let reply = api.set_webhook(body.clone()).await;

        // THEN it is refused, naming the field
        assert_eq!(reply.status, 422, "{body}: {:#}", reply.body);
        assert_eq!(reply.error_fields(), [field], "{body}");
    }

    // WHEN a body that is not JSON is sent
    let not_json = api
        .call(integration_tests::Event::SetWebhook)
        .raw_body("url=https://x")
        .send()
        .await;

    // THEN it is a bad request
    assert_eq!(not_json.error_code(), "bad_request");

    // WHEN another project's webhook is set
    let other_project = api
        .call(integration_tests::Event::SetWebhook)
        .project("someone-else")
        .json(json!({"url": "https://hooks.example.com/u"}))
        .send()
        .await;

    // THEN it is forbidden
    assert_eq!(other_project.status, 403);
    // AND nothing was set
    assert_eq!(api.get_webhook().await.status, 404, "nothing was set");
}

#[tokio::test]
async fn a_stream_record_notify_cannot_read_is_set_aside_and_later_changes_publish() {
    // GIVEN a file item written by hand that is no file notify can read (a repair gone wrong,
    // or a version of the service this one cannot read)
    let api = TestApi::new().await;
    let mut path = api.event_path(18).await;
    let mut item = shared::dynamo::item::file_key(shared::domain::FileId::random());
    item.insert("project_id".into(), shared::dynamo::item::s(&api.project));
    item.insert("status".into(), shared::dynamo::item::s("no such status"));
    api.services
        .table
        .files
        .client()
        .put_item()
        .table_name(api.services.table.files.table())
        .set_item(Some(item))
        .send()
        .await
        .expect("PutItem");

    // WHEN a file is verified after it, in the same stream
    upload_checked(&api, b"after the unreadable one", TEXT).await;

    // THEN notify does not fail on it (the path asserts every batch succeeds), and the change
    // after it is published
    path.until("the verdict", |path| !path.envelopes.is_empty())
        .await;
    assert_eq!(path.published_types(), ["file.verified"]);
}

/// Project p1's webhook for every event type, at `receiver`, which trusts its secret (made of
/// `seed`).
fn trusted_by(receiver: &Receiver, seed: u8) -> WebhookConfig {
    let secret = SigningSecret::from_random([seed; 32]);
    receiver.trust(secret.expose());
    let now = shared::domain::timestamp::now();
    WebhookConfig {
        project_id: "p1".to_owned(),
        url: WebhookUrl::parse(&receiver.url, true).unwrap(),
        events: EventType::ALL.into(),
        secret,
        created_at: now,
        updated_at: now,
    }
}

/// A deliverer over the test's webhooks that may call loopback; the queue is never asked to
/// delay a retry (the messages carry no receipt handle).
async fn loopback_deliverer(api: &TestApi) -> deliver::Deliverer {
    let mut config = api.services.config.clone();
    config.webhook_allow_loopback = true;
    deliver::Deliverer::new(
        &config,
        api.services.table.webhooks.clone(),
        shared::sqs::Queue::new(
            aws_sdk_sqs::Client::new(&integration_tests::sdk_config().await),
            "unused: no message has a receipt".to_owned(),
        ),
    )
    .unwrap()
}

/// A `PUT` that read the webhook before a rotation and writes after it must not write back the
/// secret it read: racing PUTs, one rotating, leave the secret the rotation answered, and
/// deliveries are signed with it.
#[tokio::test]
async fn a_put_racing_a_rotation_never_undoes_it() {
    // GIVEN a webhook at a receiver
    let api = TestApi::new().await;
    let receiver = Receiver::start().await;
    let url = receiver.url.clone();
    assert_eq!(api.set_webhook(json!({ "url": url })).await.status, 200);
    let mut rotated_secret = String::new();
    for round in 0..12 {
        // WHEN a PUT and a PUT that rotates the secret race: both read before either writes,
        // most rounds; which writes last varies
        let (plain, rotated) = tokio::join!(
            api.set_webhook(json!({ "url": url })),
            api.set_webhook(json!({ "url": url, "rotate_secret": true })),
        );

        // THEN both succeed, and the stored secret is the one the rotation answered
        assert_eq!(plain.status, 200, "{:#}", plain.body);
        assert_eq!(rotated.status, 200, "{:#}", rotated.body);
        assert!(plain.body.get("secret").is_none());
        rotated_secret = rotated.body["secret"].as_str().unwrap().to_owned();
        let stored = api.services.table.webhooks.get(&api.project).await.unwrap();
        assert_eq!(
            stored.unwrap().secret.expose(),
            rotated_secret,
            "round {round}: the rotation was undone"
        );
    }

    // WHEN an event is delivered after the race
    receiver.trust(&rotated_secret);
    let deliverer = loopback_deliverer(&api).await;
    let message = event_message("m0", &api.project, "evt_after_the_race");
    let response = deliverer.handle(sqs_event(vec![message])).await;

    // THEN it is signed with the rotation's secret
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1);
    assert!(accepted[0].signed, "signed with the rotation's secret");
}

/// What the functions log while `run` runs on this thread.
async fn logs_of<F: std::future::Future<Output = ()>>(run: F) -> String {
    use tracing_subscriber::util::SubscriberInitExt;
    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let guard = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish()
        .set_default();
    run.await;
    drop(guard);
    String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
}

/// A webhook URL's path and query may carry the receiver's secret: logs name its host only,
/// when it is set and when a delivery to it fails (whose error, reqwest's, names the URL).
#[tokio::test]
async fn logs_name_a_webhooks_host_never_its_path_or_query() {
    // GIVEN a webhook URL whose path and query carry secrets
    let api = TestApi::new().await;
    // AND a port nothing listens on: every delivery fails to connect
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/hooks/s3cret-path?token=s3cret-query");
    let deliverer = loopback_deliverer(&api).await;

    // WHEN the webhook is set, and a delivery to it fails
    let logs = logs_of(async {
        let reply = api.set_webhook(json!({ "url": url })).await;
        assert_eq!(reply.status, 200, "{:#}", reply.body);
        let message = event_message("m0", &api.project, "evt_refused");
        let response = deliverer.handle(sqs_event(vec![message])).await;
        assert_eq!(response.batch_item_failures.len(), 1, "{response:?}");
    })
    .await;

    // THEN both are logged, naming the webhook's host, never its path or query
    assert!(
        logs.contains("webhook set") && logs.contains("delivery failed"),
        "{logs}"
    );
    assert!(
        logs.contains(&closed.to_string()),
        "the host is named: {logs}"
    );
    assert!(!logs.contains("s3cret"), "{logs}");
}

/// Deliveries connect to the webhook itself whatever proxy the environment names: a proxy would
/// resolve the webhook's name and connect in the service's stead, past the address check.
#[tokio::test]
async fn deliveries_never_go_through_a_proxy() {
    // GIVEN an environment that names proxies, where nothing answers
    const PROBE: &str = "UPLOAD_SERVICE_PROXY_PROBE";
    const NAME: &str = "webhooks::deliveries_never_go_through_a_proxy";
    if std::env::var_os(PROBE).is_none() {
        // The environment is the whole process's: this test runs again in a process of its
        // own, with proxies named where nothing answers.
        let nowhere = "http://127.0.0.1:9";
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child.args(["--exact", NAME, "--nocapture"]).env(PROBE, "1");
        for variable in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            child.env(variable, nowhere);
            child.env(variable.to_lowercase(), nowhere);
        }
        child.env_remove("NO_PROXY").env_remove("no_proxy");
        let output = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    // AND a webhook at a receiver that trusts its secret
    let receiver = Receiver::start().await;
    let webhook = trusted_by(&receiver, 9);
    let lookup = mocks::webhook_lookup("p1", Some(&webhook));
    let api = TestApi::mocked(&[&lookup], &[]);
    let deliverer = loopback_deliverer(&api).await;

    // WHEN an event is delivered
    let response = deliverer
        .handle(sqs_event(vec![event_message("m0", "p1", "evt_direct")]))
        .await;

    // THEN it reaches the webhook itself
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(receiver.accepted().len(), 1);
}
