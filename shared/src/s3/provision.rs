//! Creates the bucket where no CloudFormation runs: local runs and tests. `template.yaml`
//! declares the same bucket for deployments; keep the two in step.

use aws_sdk_s3::types::{CorsConfiguration, CorsRule};

use crate::aws;
use crate::domain::error::ApiError;

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
        .map_err(|err| aws::failure("CreateBucket", err))?;
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
        .map_err(|err| aws::failure("PutBucketCors", err))?;
    Ok(())
}
