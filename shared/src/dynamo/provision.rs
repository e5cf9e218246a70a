//! Creates the table where no CloudFormation runs: local runs and tests. `template.yaml`
//! declares the same layout for deployments; keep the two in step.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};

use crate::aws;
use crate::dynamo::item;
use crate::error::Failure;

pub async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), Failure> {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|err| Failure::Internal(err.to_string()))
    };
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(|err| Failure::Internal(err.to_string()))
    };
    let by_project = GlobalSecondaryIndex::builder()
        .index_name(item::BY_PROJECT_INDEX)
        .key_schema(key(item::GSI1PK, KeyType::Hash)?)
        .key_schema(key(item::GSI1SK, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|err| Failure::Internal(err.to_string()))?;
    let by_project_shard = GlobalSecondaryIndex::builder()
        .index_name(item::BY_PROJECT_SHARD_INDEX)
        .key_schema(key(item::GSI2PK, KeyType::Hash)?)
        .key_schema(key(item::GSI1SK, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .map_err(|err| Failure::Internal(err.to_string()))?;
    let by_content = GlobalSecondaryIndex::builder()
        .index_name(item::BY_CONTENT_INDEX)
        .key_schema(key(item::DEDUP_KEY, KeyType::Hash)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .map_err(|err| Failure::Internal(err.to_string()))?;
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(item::PK)?)
        .attribute_definitions(attribute(item::SK)?)
        .attribute_definitions(attribute(item::GSI1PK)?)
        .attribute_definitions(attribute(item::GSI1SK)?)
        .attribute_definitions(attribute(item::GSI2PK)?)
        .attribute_definitions(attribute(item::DEDUP_KEY)?)
        .key_schema(key(item::PK, KeyType::Hash)?)
        .key_schema(key(item::SK, KeyType::Range)?)
        .global_secondary_indexes(by_project)
        .global_secondary_indexes(by_project_shard)
        .global_secondary_indexes(by_content)
        // The stream `notify` derives events from: every change, with the item before and after.
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(|err| Failure::Internal(err.to_string()))?,
        )
        .send()
        .await
        .map_err(|err| aws::failure("CreateTable", err))?;
    Ok(())
}
