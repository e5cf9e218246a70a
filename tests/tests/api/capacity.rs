//! The capacity model (`integration_tests::capacity`): held to what DynamoDB Local reports each
//! write consumed, and the bound on the writes one upload puts on a key its project's other
//! uploads share, which is what caps one project's uploads a second (README, "Scale").

use aws_sdk_dynamodb::types::{
    AttributeValue, ConsumedCapacity, Put, ReturnConsumedCapacity, TransactWriteItem, Update,
};
use integration_tests::TestApi;
use integration_tests::capacity::{self, Layout, UploadPath, Write};
use integration_tests::serde_json::json;

/// The units the model put on the table and on each index, from `writes`.
fn modeled(writes: &[Write]) -> Vec<(String, u64)> {
    let mut by_target: std::collections::BTreeMap<String, u64> = Default::default();
    for write in writes
        .iter()
        .filter(|write| write.layout == Layout::Sharded)
    {
        let target = write.partition.split(' ').next().unwrap_or_default();
        *by_target.entry(target.to_owned()).or_default() += write.units;
    }
    by_target.into_iter().collect()
}

/// The units DynamoDB Local reports, by the same names.
fn reported(consumed: &[ConsumedCapacity]) -> Vec<(String, u64)> {
    let mut by_target: std::collections::BTreeMap<String, u64> = Default::default();
    for capacity in consumed {
        if let Some(table) = capacity.table() {
            *by_target.entry("table".to_owned()).or_default() +=
                table.capacity_units().unwrap_or_default() as u64;
        }
        for (index, units) in capacity.global_secondary_indexes().into_iter().flatten() {
            *by_target.entry(index.clone()).or_default() +=
                units.capacity_units().unwrap_or_default() as u64;
        }
    }
    by_target
        .into_iter()
        .filter(|(_, units)| *units > 0)
        .collect()
}

#[tokio::test]
async fn the_model_counts_the_units_dynamodb_reports_consumed() {
    // GIVEN a file item as the service writes it, with 8 KiB of metadata, copied under new keys
    let api = TestApi::new().await;
    let plan = api
        .create(
            json!({"file_name": "f.txt", "file_size": 10, "metadata": capacity::metadata(8000)}),
        )
        .await
        .plan();
    let file = api.raw_item(&plan.file_id).await.expect("the file's item");
    let (client, table) = (
        api.services.table.files.client(),
        api.services.table.files.table(),
    );
    let copy = |name: &str| {
        let mut item = file.clone();
        item.insert(
            "pk".into(),
            AttributeValue::S(format!("FILE#capacity-{name}-{}", plan.file_id)),
        );
        item
    };
    let key_of = |item: &std::collections::HashMap<String, AttributeValue>| {
        std::collections::HashMap::from([
            ("pk".to_owned(), item["pk"].clone()),
            ("sk".to_owned(), item["sk"].clone()),
        ])
    };
    let (one, two) = (copy("one"), copy("two"));

    // WHEN each kind of write the service makes is made with its consumed capacity reported
    let (cases, writes) = capacity::record(async {
        let mut cases: Vec<(&str, usize, Vec<ConsumedCapacity>)> = Vec::new();
        let mark = capacity::mark();
        let put = client
            .put_item()
            .table_name(table)
            .set_item(Some(one.clone()))
            .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
            .send()
            .await
            .unwrap();
        cases.push((
            "put a new file item",
            mark,
            put.consumed_capacity.into_iter().collect(),
        ));
        for (name, expression, value) in [
            (
                "set an attribute every index leaves out",
                "SET #a = :v",
                "claim",
            ),
            ("set the status", "SET #a = :v", "status"),
        ] {
            let mark = capacity::mark();
            let update = client
                .update_item()
                .table_name(table)
                .set_key(Some(key_of(&one)))
                .update_expression(expression)
                .expression_attribute_names("#a", value)
                .expression_attribute_values(":v", AttributeValue::S("x".into()))
                .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
                .send()
                .await
                .unwrap();
            cases.push((name, mark, update.consumed_capacity.into_iter().collect()));
        }
        let mark = capacity::mark();
        let transaction = client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(table)
                            .set_item(Some(two.clone()))
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(table)
                            .key("pk", AttributeValue::S(format!("PROJECT#{}", api.project)))
                            .key("sk", AttributeValue::S("CAPACITY".into()))
                            .update_expression("ADD #n :one")
                            .expression_attribute_names("#n", "files")
                            .expression_attribute_values(":one", AttributeValue::N("1".into()))
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
            .send()
            .await
            .unwrap();
        cases.push((
            "a transaction: a new file item and a counter",
            mark,
            transaction.consumed_capacity.unwrap_or_default(),
        ));
        let mark = capacity::mark();
        let delete = client
            .delete_item()
            .table_name(table)
            .set_key(Some(key_of(&one)))
            .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
            .send()
            .await
            .unwrap();
        cases.push((
            "delete a file item",
            mark,
            delete.consumed_capacity.into_iter().collect(),
        ));
        cases
    })
    .await;

    // THEN the model puts the units DynamoDB counted on the table and on each index
    let ends: Vec<usize> = cases
        .iter()
        .skip(1)
        .map(|(_, mark, _)| *mark)
        .chain([writes.len()])
        .collect();
    for ((name, start, consumed), end) in cases.iter().zip(ends) {
        assert_eq!(
            modeled(&writes[*start..end]),
            reported(consumed),
            "{name}: {:#?}",
            &writes[*start..end]
        );
    }
}

/// The most write units one upload (or delete) of a file with 8 KiB of metadata may put on a key
/// its project's other uploads share: DynamoDB's 1,000 units a second per partition over S3's
/// 3,500 PUTs a second per prefix, the rate one project is to sustain (README, "Scale"). Before
/// the listing index and the usage item were sharded, the index took 45 (22 uploads a second).
const MAX_UNITS_PER_UPLOAD_ON_A_SHARED_KEY: f64 = 1000.0 / 3500.0;
/// The most writes an upload may put on such a key, of any size: a create and a verdict on its
/// listing shard and its usage shard, each in a transaction, and one more.
const MAX_WRITES_PER_UPLOAD_ON_A_SHARED_KEY: f64 = 5.0 / 16.0;

#[tokio::test]
async fn no_upload_path_puts_more_than_its_share_of_writes_on_a_key_of_its_project() {
    for path in UploadPath::ALL {
        // GIVEN a project
        let api = UploadPath::api().await;
        let mut uploads = Vec::new();

        // WHEN three files with 8 KiB of metadata go through the path
        for seed in 0..3 {
            uploads.push(path.run(&api, 8000, seed).await);
        }

        // THEN no key their uploads share takes more than the set units and writes per upload
        let shared = capacity::shared_partitions(&uploads, Layout::Sharded);
        assert!(
            !shared.is_empty(),
            "{}: the project's keys are written",
            path.name()
        );
        for (partition, units, writes) in &shared {
            assert!(
                *units <= MAX_UNITS_PER_UPLOAD_ON_A_SHARED_KEY
                    && *writes <= MAX_WRITES_PER_UPLOAD_ON_A_SHARED_KEY,
                "{}: {units:.3} units, {writes:.3} writes per upload on {partition}",
                path.name()
            );
        }
    }
}
