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
