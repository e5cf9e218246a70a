//! The listing across the sharded index (README, "Scale"): newest first over every shard, the
//! `status` filter, cursors that neither skip nor repeat a file while files are created,
//! uploaded and deleted between pages, cursors bound to their project, and files written in the
//! layout before the index was sharded.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::serde_json::json;
use integration_tests::{File, Plan, Status, TestApi};

async fn create(api: &TestApi, name: &str) -> Plan {
    api.create(json!({"file_name": name, "file_size": 5, "content_type": "text/plain"}))
        .await
        .plan()
}

/// Uploads the file's bytes and settles it as verified, as the verify trigger would.
async fn upload(api: &TestApi, plan: &Plan) {
    api.upload_whole(plan, b"hello".to_vec()).await;
    api.settle_verified(&plan.file_id).await;
}

/// Every page of the listing with `query`, `limit` at a time, running `between` after each.
async fn every_page<F: AsyncFnMut()>(
    api: &TestApi,
    query: &[(&str, &str)],
    limit: usize,
    mut between: F,
) -> Vec<File> {
    let limit = limit.to_string();
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut page_query = query.to_vec();
        page_query.push(("limit", &limit));
        if let Some(cursor) = &cursor {
            page_query.push(("cursor", cursor));
        }
        let reply = api.list(&page_query).await;
        assert_eq!(reply.status, 200, "{:#}", reply.body);
        let page = reply.files();
        assert!(page.files.len() <= limit.parse().unwrap());
        listed.extend(page.files);
        between().await;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return listed,
        }
    }
}

/// Each file once, newest first (by creation time, then id, as the listing orders them).
fn assert_once_newest_first(listed: &[File]) {
    let ids: HashSet<_> = listed.iter().map(|file| &file.file_id).collect();
    assert_eq!(ids.len(), listed.len(), "a file listed twice");
    for pair in listed.windows(2) {
        let order = |file: &File| (file.created_at.clone(), file.file_id.clone());
        assert!(
            order(&pair[0]) > order(&pair[1]),
            "out of order: {} then {}",
            pair[0].file_id,
            pair[1].file_id
        );
    }
}

fn ids(files: &[File]) -> Vec<String> {
    files.iter().map(|file| file.file_id.clone()).collect()
}

#[tokio::test]
async fn a_listing_takes_every_shard_newest_first_at_any_page_size() {
    // GIVEN at least 100 files, spread over the listing's shards by their (random) ids, created
    // until every shard holds one, more on some shards than a page takes from a shard at a time
    let api = TestApi::new().await;
    let mut created = Vec::new();
    let mut shards: HashMap<String, usize> = HashMap::new();
    while created.len() < 100 || (shards.len() < 16 && created.len() < 400) {
        let file_id = create(&api, &format!("f{}.txt", created.len()))
            .await
            .file_id;
        let item = api.raw_item(&file_id).await.expect("the file's item");
        *shards
            .entry(item["gsi2pk"].as_s().unwrap().clone())
            .or_default() += 1;
        created.push(file_id);
    }
    assert_eq!(shards.len(), 16, "{} files on {shards:?}", created.len());
    assert!(shards.values().any(|&files| files > 4), "{shards:?}");
    created.reverse();

    for limit in [3, 16, 100] {
        // WHEN the project's files are listed `limit` at a time
        let listed = every_page(&api, &[], limit, async || {}).await;

        // THEN each comes once, newest first
        assert_eq!(ids(&listed), created, "limit {limit}");
    }

    // WHEN all but the files of the two fullest shards are deleted, so that a page takes more
    // from one shard than one query of it reads
    let mut fullest: Vec<_> = shards.iter().collect();
    fullest.sort_by_key(|(_, files)| std::cmp::Reverse(**files));
    let kept_shards: HashSet<&String> = fullest.iter().take(2).map(|(shard, _)| *shard).collect();
    assert!(*fullest[1].1 > 4, "{shards:?}");
    let mut kept = Vec::new();
    for file_id in &created {
        let item = api.raw_item(file_id).await.unwrap();
        if kept_shards.contains(item["gsi2pk"].as_s().unwrap()) {
            kept.push(file_id.clone());
        } else {
            assert_eq!(api.delete(file_id).await.status, 204);
        }
    }

    // THEN the listing still takes them all, in order, whatever the page
    for limit in [16, 5, 100] {
        let listed = every_page(&api, &[], limit, async || {}).await;
        assert_eq!(ids(&listed), kept, "limit {limit}");
    }
}

#[tokio::test]
async fn pages_neither_skip_nor_repeat_a_file_while_files_are_created_uploaded_and_deleted() {
    // GIVEN 30 files
    let api = TestApi::new().await;
    let mut plans = Vec::new();
    for i in 0..30 {
        plans.push(create(&api, &format!("before-{i}.txt")).await);
    }
    let before: Vec<String> = plans.iter().map(|plan| plan.file_id.clone()).collect();
    let deleted: Vec<String> = before.iter().step_by(5).cloned().collect();
    let uploaded: Vec<&Plan> = plans.iter().skip(2).step_by(7).collect();

    // WHEN the listing is read 4 at a time while, between its pages and concurrently with
    // them, files are created, uploaded and deleted
    let mut created_during = Vec::new();
    let writes = async {
        for (i, file_id) in deleted.iter().enumerate() {
            assert_eq!(api.delete(file_id).await.status, 204);
            created_during.push(create(&api, &format!("during-{i}.txt")).await);
            if let Some(plan) = uploaded.get(i) {
                upload(&api, plan).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let listing = every_page(&api, &[], 4, async || {
        tokio::time::sleep(Duration::from_millis(15)).await;
    });
    let (listed, ()) = tokio::join!(listing, writes);

    // THEN each file listed is listed once, newest first, and every file that was there
    // throughout is listed
    assert_once_newest_first(&listed);
    let listed: HashSet<_> = ids(&listed).into_iter().collect();
    for file_id in before.iter().filter(|id| !deleted.contains(id)) {
        assert!(listed.contains(file_id), "{file_id} skipped");
    }

    // AND what was created meanwhile is newer than every file listed before it came
    let after = every_page(&api, &[], 100, async || {}).await;
    assert_eq!(after.len(), 30 - deleted.len() + created_during.len());
    assert_once_newest_first(&after);
}

#[tokio::test]
async fn a_status_filter_pages_through_every_shard_while_files_change_status() {
    // GIVEN 24 files, a third of them verified
    let api = TestApi::new().await;
    let mut plans = Vec::new();
    for i in 0..24 {
        let plan = create(&api, &format!("f{i}.txt")).await;
        if i % 3 == 0 {
            upload(&api, &plan).await;
        }
        plans.push(plan);
    }
    let files: Vec<String> = plans.iter().map(|plan| plan.file_id.clone()).collect();
    let verified: Vec<String> = files.iter().step_by(3).cloned().collect();
    let to_verify: Vec<&Plan> = plans.iter().skip(1).step_by(6).collect();

    // WHEN verified files are listed 2 at a time while other files get verified
    let verifying = async {
        for plan in &to_verify {
            upload(&api, plan).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let listing = every_page(&api, &[("status", "verified")], 2, async || {});
    let (listed, ()) = tokio::join!(listing, verifying);

    // THEN only verified files come, each once, newest first, with every file verified
    // throughout among them
    assert_once_newest_first(&listed);
    assert!(listed.iter().all(|file| file.status == Status::Verified));
    let listed: HashSet<_> = ids(&listed).into_iter().collect();
    for file_id in &verified {
        assert!(listed.contains(file_id), "{file_id} skipped");
    }

    // AND once all is still, the filter finds exactly the verified files
    let mut now_verified: Vec<String> = verified
        .iter()
        .cloned()
        .chain(to_verify.iter().map(|plan| plan.file_id.clone()))
        .collect();
    now_verified.sort_by_key(|id| std::cmp::Reverse(files.iter().position(|f| f == id)));
    let listed = every_page(&api, &[("status", "verified")], 3, async || {}).await;
    assert_eq!(ids(&listed), now_verified);
    let pending = every_page(&api, &[("status", "pending_upload")], 5, async || {}).await;
    assert_eq!(pending.len(), files.len() - now_verified.len());
}

#[tokio::test]
async fn a_cursor_lists_only_its_own_project_and_a_tampered_one_is_refused() {
    // GIVEN a page of one project's listing, with a cursor
    let api = TestApi::new().await;
    let other = TestApi::new().await;
    for i in 0..3 {
        create(&api, &format!("f{i}.txt")).await;
        create(&other, &format!("g{i}.txt")).await;
    }
    let cursor = api
        .list(&[("limit", "1")])
        .await
        .files()
        .next_cursor
        .unwrap();

    // WHEN another project's listing is given it, or a cursor altered
    let foreign = other.list(&[("cursor", &cursor)]).await;
    let mut altered = cursor.clone();
    altered.replace_range(2..3, if &cursor[2..3] == "A" { "B" } else { "A" });
    let tampered = api.list(&[("cursor", &altered)]).await;

    // THEN each is refused with 422 naming the cursor, and the cursor still serves its listing
    for reply in [&foreign, &tampered] {
        reply.expect_error(422, "validation_error");
        assert_eq!(reply.error_fields(), ["cursor"]);
    }
    let rest = api.list(&[("cursor", &cursor)]).await.files();
    assert_eq!(rest.files.len(), 2);
}

/// Puts the file's item back as the service wrote it before the listing index was sharded:
/// under its project in `by_project`, not in a shard.
async fn write_unsharded(api: &TestApi, file_id: &str) {
    let mut item = api.raw_item(file_id).await.expect("the file's item");
    item.remove("gsi2pk");
    item.insert(
        "gsi1pk".into(),
        AttributeValue::S(format!("PROJECT#{}", api.project)),
    );
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
}

#[tokio::test]
async fn files_written_before_the_index_was_sharded_are_listed_moved_by_a_write_or_by_the_admin_tool()
 {
    // GIVEN six files, four of them as the service wrote files before the sharded index
    let api = TestApi::new().await;
    let mut plans = Vec::new();
    for i in 0..6 {
        plans.push(create(&api, &format!("f{i}.txt")).await);
    }
    for plan in &plans[1..5] {
        write_unsharded(&api, &plan.file_id).await;
    }
    let mut created: Vec<String> = plans.iter().map(|plan| plan.file_id.clone()).collect();
    created.reverse();

    // WHEN the project is listed, THEN every file comes once, in order, whichever the layout
    assert_eq!(ids(&every_page(&api, &[], 2, async || {}).await), created);

    // WHEN one of them is uploaded (its next write)
    upload(&api, &plans[3]).await;

    // THEN it moved to its shard, and the listing is unchanged
    let moved = api.raw_item(&created[2]).await.unwrap();
    assert!(moved.contains_key("gsi2pk") && !moved.contains_key("gsi1pk"));
    assert_eq!(ids(&every_page(&api, &[], 4, async || {}).await), created);

    // WHEN the admin tool moves the rest (and is run again)
    let files = &api.services.table.files;
    let first = files.move_listing_to_shards().await.unwrap();
    let again = files.move_listing_to_shards().await.unwrap();

    // THEN the other three moved, only once, each with nothing else of it changed
    assert!(first >= 3, "moved {first}");
    assert_eq!(again, 0);
    let mut layouts = HashMap::new();
    for file_id in &created {
        let item = api.raw_item(file_id).await.unwrap();
        layouts.insert(
            file_id.clone(),
            (item.contains_key("gsi1pk"), item.contains_key("gsi2pk")),
        );
    }
    assert!(layouts.values().all(|layout| *layout == (false, true)));
    assert_eq!(ids(&every_page(&api, &[], 3, async || {}).await), created);
    assert_eq!(
        api.get(&created[3]).await.file().status,
        Status::PendingUpload
    );
}
