//! Reading files back: one file, listings newest first with cursors and a status filter, and
//! the download URL of a verified file.

use std::collections::HashSet;

use integration_tests::serde_json::json;
use integration_tests::{Event, TestApi, digests};

async fn create(api: &TestApi, name: &str, bytes: &[u8]) -> integration_tests::serde_json::Value {
    let (sha256, _) = digests(bytes);
    let reply = api
        .create(json!({"file_name": name, "file_size": bytes.len(), "content_type": "application/pdf", "sha256": sha256}))
        .await;
    assert_eq!(reply.status, 201, "{:#}", reply.body);
    reply.body
}

/// Creates and uploads `bytes`, then settles the job as verified, as the verify trigger would.
async fn upload_verified(api: &TestApi, name: &str, bytes: &[u8]) -> String {
    let plan = create(api, name, bytes).await;
    assert_eq!(api.put(&plan, 0, bytes.to_vec()).await.status(), 200);
    let file_id = plan["file_id"].as_str().unwrap().to_owned();
    api.settle_verified(&file_id).await;
    file_id
}

#[tokio::test]
async fn listing_is_newest_first_paginated_and_filtered_by_status() {
    // GIVEN five files, one of them uploaded
    let api = TestApi::new().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            create(&api, &format!("f{i}.pdf"), format!("%PDF-{i}").as_bytes()).await["file_id"]
                .clone(),
        );
    }
    let uploaded = created[2].as_str().unwrap();
    let plan = api.get(uploaded).await.body["upload"].clone();
    assert_eq!(plan["urls"], json!([]), "file resources carry no live URLs");
    let sixth = api.create(json!({"file_name": "x", "file_size": 1})).await;
    assert_eq!(sixth.status, 201);

    // WHEN listing two at a time
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut call = api.call(Event::ListFiles).query("limit", "2");
        if let Some(cursor) = &cursor {
            call = call.query("cursor", cursor);
        }
        let page = call.send().await;
        assert_eq!(page.status, 200, "{:#}", page.body);
        let files = page.body["files"].as_array().unwrap();
        assert!(files.len() <= 2);
        seen.extend(files.iter().map(|f| f["file_id"].clone()));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }

    // THEN every file comes once, newest first
    assert_eq!(seen.len(), 6);
    assert_eq!(
        seen.iter()
            .map(|id| id.to_string())
            .collect::<HashSet<_>>()
            .len(),
        6
    );
    let mut oldest_first: Vec<_> = seen[1..].to_vec();
    oldest_first.reverse();
    assert_eq!(oldest_first, created);

    // AND the status filter keeps only matching files
    let pending = api
        .call(Event::ListFiles)
        .query("status", "pending_upload")
        .query("limit", "100")
        .send()
        .await;
    assert_eq!(pending.body["files"].as_array().unwrap().len(), 6);
    let verified = api
        .call(Event::ListFiles)
        .query("status", "verified")
        .send()
        .await;
    assert_eq!(verified.body, json!({"files": [], "next_cursor": null}));
}

#[tokio::test]
async fn a_verified_file_downloads_with_a_safe_content_disposition() {
    // GIVEN a file with an awkward name, uploaded and settled as verified
    let api = TestApi::new().await;
    let bytes = b"%PDF-1.4 tiny".to_vec();
    let name = "na\u{ef}ve \"quoted\"; r\u{e9}sum\u{e9}\\.pdf";
    let file_id = upload_verified(&api, name, &bytes).await;

    // WHEN the client reads the file and follows its download URL
    let file = api.get(&file_id).await;
    assert_eq!(file.body["status"], "verified");
    assert!(file.body["verified_at"].is_string());
    let url = file.body["download_url"]
        .as_str()
        .expect("verified files have a download URL");
    let download = api.http.get(url).send().await.unwrap();

    // THEN storage serves the bytes as an attachment whose name cannot break out of the header
    assert_eq!(download.status(), 200);
    let disposition = download.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        disposition,
        "attachment; filename=\"na_ve _quoted_; r_sum__.pdf\"; filename*=UTF-8''na%C3%AFve%20%22quoted%22%3B%20r%C3%A9sum%C3%A9%5C.pdf"
    );
    assert_eq!(download.headers()["content-type"], "application/pdf");
    assert_eq!(download.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // AND a complete after the verdict returns the file as it is
    let completed = api.complete(&file_id).await;
    assert_eq!(completed.status, 200);
    assert_eq!(completed.body["status"], "verified");
}

#[tokio::test]
async fn create_with_verified_content_returns_the_existing_file() {
    let api = TestApi::new().await;
    let bytes = b"%PDF-1.4 dedup me".to_vec();
    let file_id = upload_verified(&api, "first.pdf", &bytes).await;

    let again = api.create(json!({"file_name": "second.pdf", "file_size": bytes.len(), "sha256": digests(&bytes).0})).await;
    assert_eq!(again.status, 200, "{:#}", again.body);
    assert_eq!(again.body["deduplicated"], true);
    assert_eq!(again.body["file_id"], file_id);
    assert_eq!(again.body["file_name"], "first.pdf");
    assert_eq!(api.file_count().await, 1);

    // another project with the same content does not see it
    let other = TestApi::new().await;
    let theirs = other
        .create(
            json!({"file_name": "x.pdf", "file_size": bytes.len(), "sha256": digests(&bytes).0}),
        )
        .await;
    assert_eq!(theirs.status, 201);
}
