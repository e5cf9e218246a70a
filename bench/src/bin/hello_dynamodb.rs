//! The first-invocation baseline: a hello-world `lambda_runtime` function that, for each event,
//! makes the one DynamoDB call presign makes for an unknown API key (a GetItem) with the plain
//! SDK: `aws_config::load_defaults` and its default HTTPS client.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = std::env::var("TABLE_NAME")?;
    let client = &client;
    let table = &table;
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async move {
        let output = client
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S("APIKEY#unknown".into()))
            .key("sk", AttributeValue::S("APIKEY".into()))
            .send()
            .await?;
        Ok::<_, Error>(json!({ "found": output.item.is_some() }))
    }))
    .await
}
