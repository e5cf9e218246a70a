//! What a function builds once per cold start: configuration and clients.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::{
    RequestChecksumCalculation, ResponseChecksumValidation, SharedHttpClient,
};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

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
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client(config.trust_system_roots)?)
            .load()
            .await;
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

/// Amazon Trust Services' roots, which S3 and DynamoDB endpoints chain to.
const AMAZON_ROOTS: [&[u8]; 5] = [
    include_bytes!("../certs/Amazon_Root_CA_1.pem"),
    include_bytes!("../certs/Amazon_Root_CA_2.pem"),
    include_bytes!("../certs/Amazon_Root_CA_3.pem"),
    include_bytes!("../certs/Amazon_Root_CA_4.pem"),
    include_bytes!("../certs/Starfield_Services_Root_CA_G2.pem"),
];

/// The HTTPS client of the SDK clients. It trusts Amazon Trust Services' roots only, the CAs
/// of every endpoint the functions call: reading the platform's whole CA store instead took
/// most of a cold start (bench/README.md). `trust_system_roots` restores the platform store.
pub fn https_client(trust_system_roots: bool) -> Result<SharedHttpClient, ConfigError> {
    let trust_store = if trust_system_roots {
        TrustStore::default()
    } else {
        AMAZON_ROOTS.iter().fold(TrustStore::empty(), |store, pem| {
            store.with_pem_certificate(*pem)
        })
    };
    let context = TlsContext::builder()
        .with_trust_store(trust_store)
        .build()
        .map_err(|err| ConfigError::new(format!("TLS trust store: {err}")))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https())
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

#[cfg(test)]
mod tests {
    use super::*;

    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn each_embedded_root_is_one_certificate() {
        for pem in AMAZON_ROOTS {
            let certificates: Vec<_> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(certificates.len(), 1);
            assert!(certificates[0].len() > 300);
        }
        assert!(https_client(false).is_ok());
    }
}
