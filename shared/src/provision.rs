//! Creates the table and bucket where no CloudFormation runs: local runs and tests.
//! `template.yaml` declares the same layout for deployments; keep the two in step.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};

use crate::error::ApiError;
use crate::item;

pub async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), ApiError> {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|err| ApiError::Internal(err.to_string()))
    };
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(|err| ApiError::Internal(err.to_string()))
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
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    let by_content = GlobalSecondaryIndex::builder()
        .index_name(item::BY_CONTENT_INDEX)
        .key_schema(key(item::DEDUP_KEY, KeyType::Hash)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(item::PK)?)
        .attribute_definitions(attribute(item::SK)?)
        .attribute_definitions(attribute(item::GSI1PK)?)
        .attribute_definitions(attribute(item::GSI1SK)?)
        .attribute_definitions(attribute(item::DEDUP_KEY)?)
        .key_schema(key(item::PK, KeyType::Hash)?)
        .key_schema(key(item::SK, KeyType::Range)?)
        .global_secondary_indexes(by_project)
        .global_secondary_indexes(by_content)
        .send()
        .await
        .map_err(|err| ApiError::from_aws("CreateTable", err))?;
    Ok(())
}

/// The bucket, with the CORS rule browsers need to PUT parts and read their ETags.
pub async fn create_bucket(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    allowed_origins: &[String],
) -> Result<(), ApiError> {
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|err| ApiError::from_aws("CreateBucket", err))?;
    let rule = CorsRule::builder()
        .set_allowed_origins(Some(allowed_origins.to_vec()))
        .allowed_methods("PUT")
        .allowed_methods("GET")
        .allowed_methods("HEAD")
        .allowed_headers("*")
        .expose_headers("ETag")
        .max_age_seconds(3600)
        .build()
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    let cors = CorsConfiguration::builder()
        .cors_rules(rule)
        .build()
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    client
        .put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(cors)
        .send()
        .await
        .map_err(|err| ApiError::from_aws("PutBucketCors", err))?;
    Ok(())
}
