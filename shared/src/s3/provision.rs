//! Creates the bucket where no CloudFormation runs: local runs and tests. `template.yaml`
//! declares the same bucket for deployments; keep the two in step.

use aws_sdk_s3::types::{
    CorsConfiguration, CorsRule, Event, FilterRule, FilterRuleName, NotificationConfiguration,
    NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
};

use crate::aws;
use crate::error::Failure;
use crate::events::provision::{create_queue_with_dead_letters, queue_arn};

/// What [`create_verify_queue`] made.
#[derive(Debug, Clone)]
pub struct VerifyQueues {
    pub queue_url: String,
    pub failures_url: String,
}

/// The queue `verify` reads, as template.yaml's `VerifyQueue`: the bucket's `ObjectCreated`
/// events for `uploads/` go to it, and a message received `max_receives` times without being
/// handled moves to `<queue>-failures`, to be redriven by an operator.
pub async fn create_verify_queue(
    s3: &aws_sdk_s3::Client,
    sqs: &aws_sdk_sqs::Client,
    bucket: &str,
    queue: &str,
    max_receives: u32,
) -> Result<VerifyQueues, String> {
    let failures = format!("{queue}-failures");
    let (queue_url, failures_url) =
        create_queue_with_dead_letters(sqs, queue, &failures, max_receives).await?;
    let to_queue = QueueConfiguration::builder()
        .queue_arn(queue_arn(sqs, &queue_url).await?)
        .events(Event::S3ObjectCreated)
        .filter(
            NotificationConfigurationFilter::builder()
                .key(
                    S3KeyFilter::builder()
                        .filter_rules(
                            FilterRule::builder()
                                .name(FilterRuleName::Prefix)
                                .value("uploads/")
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
        .map_err(|err| err.to_string())?;
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(to_queue)
                .build(),
        )
        .send()
        .await
        .map_err(|err| format!("PutBucketNotificationConfiguration {bucket}: {err:?}"))?;
    Ok(VerifyQueues {
        queue_url,
        failures_url,
    })
}

/// The headers a browser sends with its PUTs to storage: those the service signs into a single
/// PUT's URL (a part's URL signs only its length, which the browser sets itself). The bucket's
/// CORS rule allows exactly these, here and in template.yaml.
pub const BROWSER_PUT_HEADERS: [&str; 6] = [
    "cache-control",
    "content-type",
    "content-md5",
    "if-none-match",
    "x-amz-checksum-sha256",
    "x-amz-tagging",
];

/// The bucket, with the CORS rule browsers need to PUT objects and parts (and read their ETags,
/// which Uppy and others look for).
pub async fn create_bucket(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    allowed_origins: &[String],
) -> Result<(), Failure> {
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
        .set_allowed_headers(Some(BROWSER_PUT_HEADERS.map(str::to_owned).to_vec()))
        .expose_headers("ETag")
        .max_age_seconds(3600)
        .build()
        .map_err(|err| Failure::Internal(err.to_string()))?;
    let cors = CorsConfiguration::builder()
        .cors_rules(rule)
        .build()
        .map_err(|err| Failure::Internal(err.to_string()))?;
    client
        .put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(cors)
        .send()
        .await
        .map_err(|err| aws::failure("PutBucketCors", err))?;
    Ok(())
}
