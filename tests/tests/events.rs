//! The sample events in `events/` are what API Gateway sends: `lambda_http` reads them, and the
//! handlers answer them as they stand (their key is a placeholder, so with 401), echoing the
//! gateway's request id.

use integration_tests::serde_json::Value;
use integration_tests::{ApiReply, TestApi};

const EVENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");

#[tokio::test]
async fn every_sample_http_event_reaches_its_handler_as_it_stands() {
    let api = TestApi::new().await;
    let cases = [
        ("presign.json", "POST /v1/projects/{project_id}/files"),
        (
            "complete.json",
            "POST /v1/projects/{project_id}/files/{file_id}/complete",
        ),
        (
            "files-get.json",
            "GET /v1/projects/{project_id}/files/{file_id}",
        ),
        ("files-list.json", "GET /v1/projects/{project_id}/files"),
    ];
    for (name, route) in cases {
        let text = std::fs::read_to_string(format!("{EVENTS_DIR}/{name}")).unwrap();
        let raw: Value = integration_tests::serde_json::from_str(&text).unwrap();
        assert_eq!(raw["routeKey"], route, "{name}");
        let request =
            lambda_http::request::from_str(&text).unwrap_or_else(|err| panic!("{name}: {err}"));
        let response = match name {
            "presign.json" => presign::handle(&api.services, request).await,
            "complete.json" => complete::handle(&api.services, request).await,
            _ => files::handle(&api.services, request).await,
        };
        let reply = ApiReply::from(response);
        assert_eq!(reply.status, 401, "{name}: {:#}", reply.body);
        assert_eq!(
            reply.request_id.as_deref(),
            raw["requestContext"]["requestId"].as_str(),
            "{name}"
        );
    }
}
