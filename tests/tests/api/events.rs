//! The sample events in `events/` are what API Gateway sends: `lambda_http` reads them, and the
//! handlers answer them as they stand (their key is a placeholder, so with 401), echoing the
//! gateway's request id. Every route of `template.yaml` has one.

use integration_tests::operations::as_function;
use integration_tests::serde_json::Value;
use integration_tests::{ApiReply, Event, TestApi, dispatch};
use shared::http::routes::{ROUTES, Route};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[tokio::test]
async fn every_sample_http_event_reaches_its_handler_as_it_stands() {
    // GIVEN the template's routes, and the sample event of each, which names its route
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

        // WHEN the sample event is handed to its function
        let request =
            lambda_http::request::from_str(&text).unwrap_or_else(|err| panic!("{name}: {err}"));
        let reply = ApiReply::from(dispatch(&api, event, request).await);

        // THEN it is answered as it stands: 401 for its placeholder key, with the gateway's
        // request id
        assert_eq!(reply.status, 401, "{name}: {:#}", reply.body);
        assert_eq!(
            reply.request_id.as_deref(),
            raw["requestContext"]["requestId"].as_str(),
            "{name}"
        );
    }
}

/// The functions are the directories of `functions/` (the workspace's members, `scripts/build`'s
/// and the bench's list): template.yaml deploys each of them, and every route reaches the same
/// function there, in `cargo lambda watch`'s router (Cargo.toml), in the routes the functions
/// dispatch on (`shared::http::routes`) and in the test kit.
#[test]
fn every_route_reaches_the_same_function_deployed_served_locally_and_tested() {
    // GIVEN the directories of `functions/`, template.yaml and Cargo.toml
    let read = |file: &str| std::fs::read_to_string(format!("{ROOT}/{file}")).unwrap();
    let (template, manifest) = (read("template.yaml"), read("Cargo.toml"));
    const CODE_URI: &str = "CodeUri: target/lambda/";
    let function_at = |text: &str| text.split('/').next().unwrap().to_owned();
    let mut directories: Vec<String> = std::fs::read_dir(format!("{ROOT}/functions"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();

    // WHEN the functions template.yaml deploys are listed
    let mut deployed: Vec<String> = template.split(CODE_URI).skip(1).map(function_at).collect();
    directories.sort();
    deployed.sort();

    // THEN they are the directories
    assert_eq!(deployed, directories, "template.yaml's functions");

    // WHEN the routes the functions dispatch on, and who may take them, are listed
    let mut declared: Vec<String> = ROUTES.iter().map(Route::key).collect();
    let mut sampled: Vec<String> = Event::ALL
        .iter()
        .map(|e| e.route_key().to_owned())
        .collect();
    declared.sort();
    sampled.sort();

    // THEN they are the same routes as the test kit's
    assert_eq!(declared, sampled, "shared::http::routes::ROUTES");

    // WHEN each route is followed to its function
    for event in Event::ALL {
        // THEN it reaches the same function in ROUTES, in template.yaml and in Cargo.toml's
        // router
        let (method, path) = event.route_key().split_once(' ').unwrap();
        let declared = ROUTES
            .iter()
            .find(|r| r.key() == event.route_key())
            .unwrap();
        assert_eq!(
            declared.function,
            event.function(),
            "{method} {path} in ROUTES"
        );
        let route = template
            .find(&format!("Method: {method}\n            Path: {path}\n"))
            .unwrap_or_else(|| panic!("template.yaml has no route {method} {path}"));
        let code_uri = template[..route].rfind(CODE_URI).unwrap() + CODE_URI.len();
        assert_eq!(
            function_at(&template[code_uri..]),
            event.function(),
            "{method} {path} in template.yaml"
        );
        let routed = manifest
            .split(&format!("\n\"{path}\" = ["))
            .nth(1)
            .and_then(|rest| rest.split("]\n").next())
            .unwrap_or_else(|| panic!("Cargo.toml's router has no {path}"));
        let entry = format!(
            "{{ method = \"{method}\", function = \"{}\" }}",
            event.function()
        );
        assert!(
            routed.contains(&entry),
            "{method} {path} in Cargo.toml's router: {routed}"
        );
    }
}

/// `events/notify-stream.json` (a verification, then a TTL expiry) and
/// `events/deliver-sqs.json` (an event for a project without a webhook) are what Lambda hands
/// `notify` and `deliver`: the first publishes one event, the second is dropped, not retried.
#[tokio::test]
async fn the_sample_trigger_events_reach_notify_and_deliver_as_they_stand() {
    // GIVEN a project's event path, and the sample trigger events
    let api = TestApi::new().await;
    let mut path = api.event_path(18).await;
    let read = |name: &str| std::fs::read_to_string(format!("{ROOT}/events/{name}.json")).unwrap();

    // WHEN the sample stream event (a verification, then a TTL expiry) is handed to notify
    let stream: aws_lambda_events::dynamodb::Event =
        integration_tests::serde_json::from_str(&read("notify-stream")).unwrap();
    let response = as_function("notify", notify::handle(path.bus(), path.usages(), stream)).await;

    // THEN it publishes one event, the verification's
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

    // WHEN the sample SQS event (for a project without a webhook) is handed to deliver
    let sqs: aws_lambda_events::sqs::SqsEvent =
        integration_tests::serde_json::from_str(&read("deliver-sqs")).unwrap();
    let response = path.deliverer.handle(sqs).await;

    // THEN it is dropped, not retried
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
}

/// Browsers meet the same CORS rules locally as deployed: template.yaml's bucket and API allow
/// what the local bucket (`upload-admin create-bucket`) and gateway (`scripts/gateway.mjs`) do,
/// and every header of a plan that a browser's script sends is allowed.
#[tokio::test]
async fn cors_is_the_same_locally_as_deployed_and_allows_what_plans_ask_for() {
    // GIVEN template.yaml, and the local gateway's script
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    let gateway = std::fs::read_to_string(format!("{ROOT}/scripts/gateway.mjs")).unwrap();

    // WHEN the CORS lists of each are read
    let list_after = |text: &str, marker: &str| -> Vec<String> {
        let start = text.find(marker).unwrap_or_else(|| panic!("{marker}")) + marker.len();
        let rest = &text[start..];
        let open = rest.find('[').unwrap();
        let close = rest.find(']').unwrap();
        rest[open + 1..close]
            .split(',')
            .map(|item| {
                item.trim()
                    .trim_matches(|c| c == '\'' || c == '"')
                    .to_owned()
            })
            .filter(|item| !item.is_empty())
            .collect()
    };
    let bucket_headers = list_after(&template, "AllowedHeaders:");

    // THEN the bucket allows what the local bucket does, and the API allows and exposes what
    // the local gateway does
    assert_eq!(bucket_headers, shared::s3::provision::BROWSER_PUT_HEADERS);
    assert_eq!(
        list_after(&template, "        AllowHeaders:"),
        list_after(&gateway, "ALLOW_HEADERS =")
    );
    assert_eq!(
        list_after(&template, "        AllowMethods:"),
        list_after(&gateway, "ALLOW_METHODS =")
    );
    assert_eq!(
        list_after(&template, "        ExposeHeaders:"),
        list_after(&gateway, "EXPOSE_HEADERS =")
    );

    // AND a browser reads only the headers CORS exposes: every one the service sets for clients
    assert_eq!(
        list_after(&template, "        ExposeHeaders:"),
        shared::http::CLIENT_HEADERS
    );

    // WHEN a file is declared with both digests, so that its plan has every header
    let api = TestApi::new().await;
    let (sha256, md5) = integration_tests::digests(b"cors");
    let plan = api
        .create(integration_tests::serde_json::json!({
            "file_name": "a.txt", "file_size": 4, "content_type": "text/plain",
            "sha256": sha256, "md5": md5
        }))
        .await
        .plan();

    // THEN the bucket allows every header of its plan but Content-Length, which is the
    // browser's own (a script may not set it), never preflighted
    for name in plan.headers.keys().filter(|name| *name != "content-length") {
        assert!(
            bucket_headers.contains(name),
            "{name} is not allowed by the bucket's CORS"
        );
    }
}
