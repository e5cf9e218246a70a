//! Every route refuses what it must: no key, bad keys, other projects, malformed bodies, and a
//! refused request writes nothing.

use integration_tests::serde_json::{Value, json};
use integration_tests::{Event, TestApi, digests};

const UNKNOWN_KEY: &str = "upk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// A file of the api's project, so that file routes have something to refuse access to.
async fn some_file(api: &TestApi) -> String {
    api.create(json!({"file_name": "a.txt", "file_size": 3, "content_type": "text/plain"}))
        .await
        .plan()
        .file_id
}

#[tokio::test]
async fn every_route_answers_401_without_a_key_or_with_a_bad_one() {
    // GIVEN a file, and a key of its project that was revoked
    let api = TestApi::new().await;
    let file_id = some_file(&api).await;
    let revoked = api
        .services
        .table
        .keys
        .mint(std::slice::from_ref(&api.project), "to revoke")
        .await
        .unwrap();
    api.services.table.keys.revoke(&revoked).await.unwrap();
    for event in Event::ALL {
        for key in [
            None,
            Some(UNKNOWN_KEY),
            Some("upk_short"),
            Some(revoked.as_str()),
        ] {
            // WHEN a route is called without a key, or with an unknown, malformed or revoked one
            let mut call = api
                .call(event)
                .key(key)
                .json(json!({"file_name": "b", "file_size": 1}));
            if event.has_file_id() {
                call = call.file(&file_id);
            }

            // THEN it answers 401
            call.send().await.expect_error(401, "unauthorized");
        }
    }

    // AND nothing was written
    assert_eq!(api.file_count().await, 1);
}

#[tokio::test]
async fn every_route_answers_403_for_another_projects_key() {
    // GIVEN a file of a project, and another project's key
    let api = TestApi::new().await;
    let other = TestApi::new().await;
    let file_id = some_file(&api).await;
    for event in Event::ALL {
        // WHEN a route of the project is called with the other project's key
        let mut call = api
            .call(event)
            .key(Some(&other.key))
            .json(json!({"file_name": "b", "file_size": 1}));
        if event.has_file_id() {
            call = call.file(&file_id);
        }

        // THEN it answers 403
        call.send().await.expect_error(403, "forbidden");
    }

    // AND nothing was written in either project
    assert_eq!(api.file_count().await, 1);
    assert_eq!(other.file_count().await, 0);
}

/// A project id no key could grant (shared::domain::ids::ProjectId) names no project: 404 on
/// every route, as an unknown path would be, with the caller's valid key.
#[tokio::test]
async fn every_route_answers_404_for_a_project_id_no_key_could_grant() {
    // GIVEN a file, and project ids no key could grant
    let api = TestApi::new().await;
    let file_id = some_file(&api).await;
    let too_long = "p".repeat(65);
    for event in Event::ALL {
        for project in [too_long.as_str(), "a.b", "a~b"] {
            // WHEN a route is called for such a project id, with a valid key
            let mut call = api.call(event).project(project);
            if event.has_file_id() {
                call = call.file(&file_id);
            }

            // THEN it answers 404
            call.send().await.expect_error(404, "not_found");
        }
    }

    // AND nothing was written
    assert_eq!(api.file_count().await, 1);
}

#[tokio::test]
async fn file_routes_answer_404_for_another_projects_file_and_malformed_ids() {
    // GIVEN another project's file
    let api = TestApi::new().await;
    let other = TestApi::new().await;
    let others_file = some_file(&other).await;
    let before = other.raw_item(&others_file).await;
    for event in Event::ALL.into_iter().filter(|e| e.has_file_id()) {
        // WHEN a file route is called for it, for a malformed id or for an unknown one
        for file_id in [
            others_file.as_str(),
            "not-a-uuid",
            "00000000-0000-4000-8000-000000000000",
        ] {
            // THEN it answers 404
            api.call(event)
                .file(file_id)
                .send()
                .await
                .expect_error(404, "not_found");
        }
    }

    // AND the other project's file is unchanged
    assert_eq!(other.raw_item(&others_file).await, before);
}

#[tokio::test]
async fn create_answers_400_for_bodies_that_are_not_json_objects() {
    // GIVEN a project with no files
    let api = TestApi::new().await;

    // WHEN a create's body is not a JSON object
    for body in ["", "not json", "[1, 2]", "\"text\"", "{\"file_name\": "] {
        // THEN it answers 400
        api.call(Event::Create)
            .raw_body(body)
            .send()
            .await
            .expect_error(400, "bad_request");
    }

    // WHEN a file is created, and its complete's body is not JSON
    let file_id = some_file(&api).await;
    let before = api.raw_item(&file_id).await;

    // THEN the complete answers 400 too
    api.call(Event::Complete)
        .file(&file_id)
        .raw_body("{oops")
        .send()
        .await
        .expect_error(400, "bad_request");
    // AND nothing was written but the file created
    assert_eq!(api.raw_item(&file_id).await, before);
    assert_eq!(api.file_count().await, 1);
}

#[tokio::test]
async fn create_answers_422_listing_every_bad_field_and_writes_nothing() {
    // GIVEN a project with no files, and create bodies with bad fields
    let api = TestApi::new().await;
    let (sha256, _) = digests(b"x");
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["file_name", "file_size"]),
        (
            json!({"file_name": 5, "file_size": "12"}),
            vec!["file_name", "file_size"],
        ),
        (json!({"file_name": "a", "file_size": 0}), vec!["file_size"]),
        (
            json!({"file_name": "a", "file_size": -5}),
            vec!["file_size"],
        ),
        (
            json!({"file_name": "a", "file_size": 1.5}),
            vec!["file_size"],
        ),
        (
            json!({"file_size": 5_497_558_138_881_u64}),
            vec!["file_name", "file_size"],
        ),
        (
            json!({"file_name": "a", "file_size": 1, "sha256": "%%%"}),
            vec!["sha256"],
        ),
        (
            json!({"file_name": "a", "file_size": 1, "md5": sha256}),
            vec!["md5"],
        ),
        (
            json!({"file_name": "a", "file_size": 1, "sha256": "AAAA"}),
            vec!["sha256"],
        ),
        (
            json!({"file_name": "x".repeat(256), "file_size": 1}),
            vec!["file_name"],
        ),
        (
            json!({"file_name": "bad\nname", "file_size": 1}),
            vec!["file_name"],
        ),
        (
            json!({"file_name": "a", "file_size": 1, "content_type": "no slash"}),
            vec!["content_type"],
        ),
        (
            json!({"file_name": "a", "file_size": 1, "metadata": {"k": "v".repeat(2000)}}),
            vec!["metadata.k"],
        ),
        (
            json!({"file_name": "a", "file_size": 1, "metadata": (0..10).map(|i| (format!("k{i}"), json!("v".repeat(1000)))).collect::<integration_tests::serde_json::Map<_, _>>()}),
            vec!["metadata"],
        ),
        (
            json!({"file_name": "", "file_size": -1, "content_type": 3, "sha256": 1, "md5": "x", "metadata": [1]}),
            vec![
                "content_type",
                "file_name",
                "file_size",
                "md5",
                "metadata[0]",
                "sha256",
            ],
        ),
    ];
    for (body, fields) in cases {
        // WHEN one is sent
        let reply = api.create(body.clone()).await;

        // THEN it answers 422, listing every bad field
        reply.expect_error(422, "validation_error");
        assert_eq!(reply.error_fields(), fields, "for {body}");
    }

    // AND nothing was written
    assert_eq!(api.file_count().await, 0);
}

#[tokio::test]
async fn create_answers_413_above_the_maximum_alone() {
    // GIVEN a maximum file size of 1 GiB
    let api = TestApi::with_config(|config| config.max_file_size = 1 << 30).await;

    // WHEN a create declares a byte more
    let reply = api
        .create(json!({"file_name": "big.bin", "file_size": (1u64 << 30) + 1}))
        .await;

    // THEN it answers 413, naming the size alone, and nothing is written
    reply.expect_error(413, "payload_too_large");
    assert_eq!(reply.error_fields(), ["file_size"]);
    assert_eq!(api.file_count().await, 0);
}

#[tokio::test]
async fn complete_answers_422_for_a_malformed_job_id() {
    // GIVEN a file
    let api = TestApi::new().await;
    let file_id = some_file(&api).await;
    let before = api.raw_item(&file_id).await;
    for body in [json!({"job_id": "nope"}), json!({"job_id": 7})] {
        // WHEN its complete names a malformed job id
        let reply = api.complete_with(&file_id, body).await;

        // THEN it answers 422, naming the job id
        reply.expect_error(422, "validation_error");
        assert_eq!(reply.error_fields(), ["job_id"]);
    }

    // AND the file is unchanged
    assert_eq!(api.raw_item(&file_id).await, before);
}

#[tokio::test]
async fn list_answers_422_listing_every_bad_query_parameter() {
    // GIVEN a project with no files
    let api = TestApi::new().await;

    // WHEN its files are listed with a bad status, limit and cursor
    let reply = api
        .list(&[("status", "lost"), ("limit", "0"), ("cursor", "!!")])
        .await;

    // THEN it answers 422, naming each of them
    reply.expect_error(422, "validation_error");
    assert_eq!(reply.error_fields(), ["status", "limit", "cursor"]);
    for limit in ["101", "-1", "ten"] {
        // WHEN the limit is out of range, or no number
        let reply = api.list(&[("limit", limit)]).await;

        // THEN the limit is named
        assert_eq!(reply.error_fields(), ["limit"]);
    }
}

#[tokio::test]
async fn every_json_body_refuses_fields_its_route_does_not_define_and_changes_nothing() {
    // GIVEN a file, and for each route with a JSON body, one with fields it does not define
    // (docs/API.md v1.2, "Strict bodies": a typo never widens a grant nor goes unnoticed)
    let api = TestApi::new().await;
    let file_id = some_file(&api).await;
    let before = api.raw_item(&file_id).await;
    let cases: [(Event, Value, &[&str]); 7] = [
        (
            Event::Create,
            json!({"file_name": "a", "file_size": 1, "content_typ": "text/plain", "tags": []}),
            &["content_typ", "tags"],
        ),
        (
            Event::Create,
            json!({"file_name": "a", "file_size": 1, "metadata": [{"name": "k", "value": "v", "vaule": "w"}]}),
            &["metadata[0].vaule"],
        ),
        (
            Event::Reupload,
            json!({"file_size": 1, "size": 2}),
            &["size"],
        ),
        (
            Event::SignParts,
            json!({"part_numbers": [1], "parts": [1]}),
            &["parts"],
        ),
        (
            Event::Complete,
            json!({"parts": [{"part_number": 1, "etag": "e", "size": 3}], "sha": "x"}),
            &["sha"],
        ),
        (
            Event::MintToken,
            json!({"content_type": ["image/*"], "max_file": 1, "max_files": 2}),
            &["content_type", "max_file"],
        ),
        (
            Event::SetWebhook,
            json!({"url": "https://example.com/hook", "secret": "whsec_mine"}),
            &["secret"],
        ),
    ];
    for (event, body, fields) in cases {
        // WHEN it is sent
        let mut call = api.call(event).json(body.clone());
        if event.has_file_id() {
            call = call.file(&file_id);
        }
        let reply = call.send().await;

        // THEN it answers 422, naming each field as unknown
        reply.expect_error(422, "validation_error");
        assert_eq!(reply.error_fields(), fields, "{event:?} {body}");
        let details = reply.error().error.details;
        assert!(
            details
                .iter()
                .all(|detail| detail.message == "unknown field"),
            "{details:?}"
        );
    }

    // AND nothing changed: no file written, the file as it was, no webhook set
    assert_eq!(api.file_count().await, 1);
    assert_eq!(api.raw_item(&file_id).await, before);
    assert_eq!(api.get_webhook().await.status, 404);
}
