//! What a function builds once per cold start: configuration and clients.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};

use crate::auth::ApiKeys;
use crate::config::{Config, ConfigError};
use crate::storage::ObjectStore;
use crate::store::FileStore;

#[derive(Debug)]
pub struct Services {
    pub config: Config,
    pub files: FileStore,
    pub objects: ObjectStore,
    pub keys: ApiKeys,
}

impl Services {
    /// Reads the environment and the AWS configuration chain (region, credentials, endpoints).
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Ok(Self::new(config, &sdk))
    }

    pub fn new(config: Config, sdk: &SdkConfig) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let s3 = aws_sdk_s3::Client::from_conf(s3_config(sdk, config.s3_force_path_style));
        Self {
            files: FileStore::new(dynamodb.clone(), &config.table_name),
            keys: ApiKeys::new(dynamodb, &config.table_name),
            objects: ObjectStore::new(s3, &config.bucket_name, sdk.credentials_provider()),
            config,
        }
    }
}

/// Checksums only where S3 requires them: the SDK's default CRC headers would be signed into
/// presigned URLs that clients cannot satisfy (awslabs/aws-sdk-rust#1253).
pub fn s3_config(sdk: &SdkConfig, force_path_style: bool) -> aws_sdk_s3::Config {
    aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(force_path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build()
}

/// JSON logs, one line per event, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .init();
}
