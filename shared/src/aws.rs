//! What the DynamoDB and S3 adapters share: the SDK clients' HTTPS and S3 settings, and how a
//! failed AWS call becomes a `Failure`.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ErrorMetadata, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::config::{
    RequestChecksumCalculation, ResponseChecksumValidation, SharedHttpClient,
};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

use crate::config::ConfigError;
use crate::error::Failure;

/// Classifies a failed AWS call: throttling, timeouts, 5xx (with or without an error code:
/// S3 answers HEAD requests with a bare status) and transport failures are retryable (503);
/// anything else means we sent a request the service refuses (500).
pub fn failure<E>(operation: &str, err: SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = format!("{operation}: {}", DisplayErrorContext(&err));
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Unavailable(text)
        }
        SdkError::ServiceError(service)
            if is_retryable(service.err().meta())
                || is_retryable_status(service.raw().status().as_u16()) =>
        {
            Failure::Unavailable(text)
        }
        _ => Failure::Internal(text),
    }
}

/// Whether a failed write may have applied all the same: no answer came (a timeout, a dispatch
/// failure, an answer that could not be read), the service failed (a 5xx: DynamoDB's
/// `InternalServerError` "may or may not have succeeded"), or the same transaction, sent
/// before, is still being applied. A refusal (a failed condition, throttling, a canceled
/// transaction, a validation error) changed nothing. What this cannot see: an earlier attempt
/// of the SDK's that timed out, followed by a refused one (the SDK reports the last).
pub fn may_have_applied<E>(err: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || service.err().meta().code() == Some("TransactionInProgressException")
        }
        _ => false,
    }
}

/// Too many requests, or the service failed.
fn is_retryable_status(status: u16) -> bool {
    status == 429 || status >= 500
}

fn is_retryable(meta: &ErrorMetadata) -> bool {
    matches!(
        meta.code(),
        Some(
            "ThrottlingException"
                | "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "InternalError"
                | "ServiceUnavailable"
                | "SlowDown"
                | "RequestTimeout"
                | "TransactionInProgressException"
        )
    )
}

/// The deadlines of every S3 and DynamoDB call: `budget` for the whole call, retries
/// included; half of it for each attempt (so a hung dependency costs at most two attempts);
/// connecting at most a second. A call past them fails as a timeout, which is 503.
pub fn timeouts(budget: Duration) -> TimeoutConfig {
    let attempt = budget / 2;
    TimeoutConfig::builder()
        .connect_timeout(attempt.min(Duration::from_secs(1)))
        .read_timeout(attempt)
        .operation_attempt_timeout(attempt)
        .operation_timeout(budget)
        .build()
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
