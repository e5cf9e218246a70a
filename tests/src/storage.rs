//! What a client does with storage (PUTs to the plan's URLs, downloads), and what the tests read
//! behind the API's back: stored objects, raw table items, the project's file count.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use shared::dynamo::item::{self, Item};

use crate::TestApi;

impl TestApi {
    /// The bytes behind the file's download URL.
    pub async fn download(&self, file_id: &str) -> Vec<u8> {
        let file = self.get(file_id).await.body;
        let url = file["download_url"]
            .as_str()
            .expect("a download URL")
            .to_owned();
        let response = self.http.get(url).send().await.expect("storage answers");
        response.bytes().await.expect("the body").to_vec()
    }

    /// The bytes of the object at `key`.
    pub async fn stored_bytes(&self, key: &str) -> Vec<u8> {
        let object = self
            .services
            .objects
            .client()
            .get_object()
            .bucket(self.services.objects.bucket())
            .key(key)
            .send()
            .await
            .expect("GetObject");
        object
            .body
            .collect()
            .await
            .expect("object body")
            .into_bytes()
            .to_vec()
    }

    /// PUTs `bytes` to the plan's URL for part `index` with the plan's signed headers.
    pub async fn put(&self, plan: &Value, index: usize, bytes: Vec<u8>) -> reqwest::Response {
        let url = plan["urls"][index].as_str().expect("plan has the url");
        self.put_to(url, plan, bytes).await
    }

    pub async fn put_to(&self, url: &str, plan: &Value, bytes: Vec<u8>) -> reqwest::Response {
        let mut request = self.http.put(url).body(bytes);
        for (name, value) in plan["headers"].as_object().expect("plan has headers") {
            request = request.header(name, value.as_str().expect("header values are strings"));
        }
        request.send().await.expect("storage answers")
    }

    /// The raw table item of a file, to check that a failed request changed nothing.
    pub async fn raw_item(&self, file_id: &str) -> Option<Item> {
        let file_id = file_id.parse().expect("file id");
        self.services
            .files
            .client()
            .get_item()
            .table_name(self.services.files.table())
            .set_key(Some(item::file_key(file_id)))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem")
            .item
    }

    /// How many files the project has in the table.
    pub async fn file_count(&self) -> usize {
        let output = self
            .services
            .files
            .client()
            .query()
            .table_name(self.services.files.table())
            .index_name(item::BY_PROJECT_INDEX)
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", AttributeValue::S(item::project_pk(&self.project)))
            .send()
            .await
            .expect("Query");
        output.items().len()
    }

    /// The keys of every object stored under a file's prefix.
    pub async fn stored_objects(&self, file_id: &str) -> Vec<String> {
        let output = self
            .services
            .objects
            .client()
            .list_objects_v2()
            .bucket(self.services.objects.bucket())
            .prefix(format!("{}{file_id}/", shared::domain::ids::UPLOAD_PREFIX))
            .send()
            .await
            .expect("ListObjectsV2");
        output
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }
}
