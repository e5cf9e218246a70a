//! Reading files back: one file, listings newest first with cursors and a status filter, and
//! the download URL of a verified file.

use std::collections::HashSet;

use integration_tests::serde_json::json;
use integration_tests::{Plan, Status, TestApi, digests};

async fn create(api: &TestApi, name: &str, bytes: &[u8]) -> Plan {
    let (sha256, _) = digests(bytes);
    api.create(json!({"file_name": name, "file_size": bytes.len(), "content_type": "application/pdf", "sha256": sha256}))
        .await
        .plan()
}

/// Creates and uploads `bytes`, then settles the job as verified, as the verify trigger would.
async fn upload_verified(api: &TestApi, name: &str, bytes: &[u8]) -> String {
    let plan = create(api, name, bytes).await;
    api.upload_whole(&plan, bytes.to_vec()).await;
    api.settle_verified(&plan.file_id).await;
    plan.file_id
}

#[tokio::test]
async fn listing_is_newest_first_paginated_and_filtered_by_status() {
    // GIVEN five files, one of them uploaded
    let api = TestApi::new().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            create(&api, &format!("f{i}.pdf"), format!("%PDF-{i}").as_bytes())
                .await
                .file_id,
        );
    }
    let uploaded = &created[2];
    let plan = api.get(uploaded).await.file().upload.expect("an upload");
    assert!(plan.urls.is_empty(), "file resources carry no live URLs");
    let sixth = api.create(json!({"file_name": "x", "file_size": 1})).await;
    assert_eq!(sixth.status, 201);

    // WHEN listing two at a time
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "2")];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor));
        }
        let page = api.list(&query).await.files();
        assert!(page.files.len() <= 2);
        seen.extend(page.files.into_iter().map(|f| f.file_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }

    // THEN every file comes once, newest first
    assert_eq!(seen.len(), 6);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 6);
    let mut oldest_first: Vec<_> = seen[1..].to_vec();
    oldest_first.reverse();
    assert_eq!(oldest_first, created);

    // AND the status filter keeps only matching files
    let pending = api
        .list(&[("status", "pending_upload"), ("limit", "100")])
        .await;
    assert_eq!(pending.files().files.len(), 6);
    let verified = api.list(&[("status", "verified")]).await;
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
    let file = api.get(&file_id).await.file();
    assert_eq!(file.status, Status::Verified);
    assert!(file.verified_at.is_some());
    let url = file
        .download_url
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
    let completed = api.complete(&file_id).await.file();
    assert_eq!(completed.status, Status::Verified);
}

#[tokio::test]
async fn create_with_verified_content_returns_the_existing_file() {
    // GIVEN a verified file
    let api = TestApi::new().await;
    let bytes = b"%PDF-1.4 dedup me".to_vec();
    let file_id = upload_verified(&api, "first.pdf", &bytes).await;

    // WHEN a file with the same content is created
    let again = api.create(json!({"file_name": "second.pdf", "file_size": bytes.len(), "sha256": digests(&bytes).0})).await;

    // THEN the verified file is returned, deduplicated, and no other is made
    let again = again.file();
    assert_eq!(again.deduplicated, Some(true));
    assert_eq!(again.file_id, file_id);
    assert_eq!(again.file_name, "first.pdf");
    assert_eq!(api.file_count().await, 1);

    // AND another project with the same content does not see it
    let other = TestApi::new().await;
    let theirs = other
        .create(
            json!({"file_name": "x.pdf", "file_size": bytes.len(), "sha256": digests(&bytes).0}),
        )
        .await;
    assert_eq!(theirs.status, 201);
}
