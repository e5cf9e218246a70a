//! The sample events in `events/` are what API Gateway sends: `lambda_http` reads them, and the
//! handlers answer them as they stand (their key is a placeholder, so with 401), echoing the
//! gateway's request id. Every route of `template.yaml` has one.

use integration_tests::serde_json::Value;
use integration_tests::{ApiReply, Event, TestApi, dispatch};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[tokio::test]
async fn every_sample_http_event_reaches_its_handler_as_it_stands() {
    let api = TestApi::new().await;
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    for event in Event::ALL {
        let name = event.file_name();
        let text = std::fs::read_to_string(format!("{ROOT}/events/{name}.json")).unwrap();
        let raw: Value = integration_tests::serde_json::from_str(&text).unwrap();
        assert_eq!(raw["routeKey"], event.route_key(), "{name}");
        let (method, path) = event.route_key().split_once(' ').unwrap();
        assert!(
            template.contains(&format!("Method: {method}\n            Path: {path}\n")),
            "template.yaml has no route {method} {path}"
        );

        let request =
            lambda_http::request::from_str(&text).unwrap_or_else(|err| panic!("{name}: {err}"));
        let reply = ApiReply::from(dispatch(&api.services, event, request).await);

        assert_eq!(reply.status, 401, "{name}: {:#}", reply.body);
        assert_eq!(
            reply.request_id.as_deref(),
            raw["requestContext"]["requestId"].as_str(),
            "{name}"
        );
    }
}

/// `events/notify-stream.json` (a verification, then a TTL expiry) and
/// `events/deliver-sqs.json` (an event for a project without a webhook) are what Lambda hands
/// `notify` and `deliver`: the first publishes one event, the second is dropped, not retried.
#[tokio::test]
async fn the_sample_trigger_events_reach_notify_and_deliver_as_they_stand() {
    let api = TestApi::new().await;
    let mut path = api.event_path(18).await;
    let read = |name: &str| std::fs::read_to_string(format!("{ROOT}/events/{name}.json")).unwrap();

    let stream: aws_lambda_events::dynamodb::Event =
        integration_tests::serde_json::from_str(&read("notify-stream")).unwrap();
    let response = notify::handle(path.bus(), stream).await;
    assert!(response.batch_item_failures.is_empty());
    path.until("the published event", |path| !path.envelopes.is_empty())
        .await;
    path.drain(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        path.published_types(),
        ["file.verified"],
        "the expiry is no event"
    );
    let detail = &path.envelopes[0]["detail"];
    assert_eq!(
        detail["data"]["file_id"],
        "3f8e2a8c-5d0b-4c1e-9a57-2b7c4d9e6f10"
    );
    assert_eq!(detail["data"]["status"], "verified");

    let sqs: aws_lambda_events::sqs::SqsEvent =
        integration_tests::serde_json::from_str(&read("deliver-sqs")).unwrap();
    let response = path.deliverer.handle(sqs).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
}
