//! What a client does with storage (PUTs to the plan's URLs, downloads), and what the tests read
//! behind the API's back: stored objects, raw table items, the project's file count, and the
//! latency of a bare PutItem beside which the bench puts a create.

use std::time::{Duration, Instant};

use shared::dynamo::item::{self, Item};

use crate::TestApi;
use crate::wire::Plan;

impl TestApi {
    /// PUTs `bytes` to the plan's URL for part `number` (1 for a single-part upload) with the
    /// plan's signed headers; storage's answer is the test's to check.
    pub async fn put(&self, plan: &Plan, number: u32, bytes: Vec<u8>) -> reqwest::Response {
        self.put_to(plan.url(number), plan, bytes).await
    }

    /// PUTs `bytes` to `url` with the plan's signed headers.
    pub async fn put_to(&self, url: &str, plan: &Plan, bytes: Vec<u8>) -> reqwest::Response {
        plan.put(&self.http, url, bytes)
            .send()
            .await
            .expect("storage answers")
    }

    /// PUTs the whole of a single-part upload, which storage must take.
    pub async fn upload_whole(&self, plan: &Plan, bytes: Vec<u8>) {
        let response = self.put(plan, 1, bytes).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    /// PUTs `bytes` to a part URL (a multipart plan signs no headers), which storage must take;
    /// the part's ETag.
    pub async fn put_part(&self, url: &str, bytes: Vec<u8>) -> String {
        let response = self
            .http
            .put(url)
            .body(bytes)
            .send()
            .await
            .expect("storage answers");
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        response.headers()["etag"].to_str().unwrap().to_owned()
    }

    /// PUTs every part of `bytes` to the plan's URLs, cut at its `part_size`; their ETags.
    pub async fn upload_parts(&self, plan: &Plan, bytes: &[u8]) -> Vec<String> {
        let part_size = usize::try_from(plan.part_size).expect("a part size");
        assert_eq!(
            bytes.len().div_ceil(part_size),
            plan.urls.len(),
            "the plan has a URL for every part"
        );
        let mut etags = Vec::new();
        for (url, part) in plan.urls.iter().zip(bytes.chunks(part_size)) {
            etags.push(self.put_part(url, part.to_vec()).await);
        }
        etags
    }

    /// The bytes behind the file's download URL.
    pub async fn download(&self, file_id: &str) -> Vec<u8> {
        let url = self
            .get(file_id)
            .await
            .file()
            .download_url
            .expect("a download URL");
        let response = self.http.get(url).send().await.expect("storage answers");
        response.bytes().await.expect("the body").to_vec()
    }

    /// The bytes of the object at `key`.
    pub async fn stored_bytes(&self, key: &str) -> Vec<u8> {
        let object = self
            .services
            .storage
            .objects
            .client()
            .get_object()
            .bucket(self.services.storage.objects.bucket())
            .key(key)
            .send()
            .await
            .expect("GetObject");
        let body = object.body.collect().await.expect("object body");
        body.into_bytes().to_vec()
    }

    /// The keys of every object stored under a file's prefix.
    pub async fn stored_objects(&self, file_id: &str) -> Vec<String> {
        let prefix = shared::domain::ids::file_prefix(file_id.parse().expect("file id"));
        let listed = self.services.storage.objects.list(&prefix).await;
        let objects = listed.expect("ListObjectsV2");
        objects.into_iter().map(|(key, _)| key).collect()
    }

    /// The tags of the object at `key`, as `name=value`.
    pub async fn object_tags(&self, key: &str) -> Vec<String> {
        let output = self
            .services
            .storage
            .objects
            .client()
            .get_object_tagging()
            .bucket(self.services.storage.objects.bucket())
            .key(key)
            .send()
            .await
            .expect("GetObjectTagging");
        output
            .tag_set()
            .iter()
            .map(|tag| format!("{}={}", tag.key(), tag.value()))
            .collect()
    }

    /// The raw table item of a file, to check that a failed request changed nothing.
    pub async fn raw_item(&self, file_id: &str) -> Option<Item> {
        let file_id = file_id.parse().expect("file id");
        self.services
            .table
            .files
            .client()
            .get_item()
            .table_name(self.services.table.files.table())
            .set_key(Some(item::file_key(file_id)))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem")
            .item
    }

    /// How many files the project has in the table: in either listing index, read directly
    /// (not through the service's clients, which tests may have put behind a fault proxy).
    pub async fn file_count(&self) -> usize {
        let client = aws_sdk_dynamodb::Client::new(&crate::sdk_config().await);
        let mut partitions: Vec<_> = (0..item::LISTING_SHARDS)
            .map(|shard| {
                let partition = item::listing_pk(&self.project, shard);
                (item::BY_PROJECT_SHARD_INDEX, item::GSI2PK, partition)
            })
            .collect();
        partitions.push((
            item::BY_PROJECT_INDEX,
            item::GSI1PK,
            item::project_pk(&self.project),
        ));
        let mut count = 0;
        for (index, attribute, partition) in partitions {
            let mut pages = client
                .query()
                .table_name(self.services.table.files.table())
                .index_name(index)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", attribute)
                .expression_attribute_values(":pk", item::s(partition))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                count += page.expect("Query").count() as usize;
            }
        }
        count
    }

    /// How long one PutItem of a throwaway item, about the size of a file's, takes on the
    /// tests' table: the floor under a create. The item is no file nor key: nothing reads it.
    pub async fn put_item_baseline(&self) -> Duration {
        let throwaway = Item::from([
            (
                item::PK.to_owned(),
                item::s(format!("BASELINE#{}", uuid::Uuid::new_v4())),
            ),
            (item::SK.to_owned(), item::s("BASELINE")),
            ("payload".to_owned(), item::s("x".repeat(600))),
        ]);
        let started = Instant::now();
        self.services
            .table
            .files
            .client()
            .put_item()
            .table_name(self.services.table.files.table())
            .set_item(Some(throwaway))
            .send()
            .await
            .expect("PutItem");
        started.elapsed()
    }
}
