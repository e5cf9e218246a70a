//! What a function builds once per cold start: configuration and clients.

use aws_config::environment::{
    EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
};
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::SharedCredentialsProvider;
use tracing_subscriber::filter::Targets;

use crate::app::verify_queue::VerifyQueue;
use crate::aws::{https_client, s3_config, timeouts};
use crate::config::{Config, ConfigError};
use crate::domain::ApiError;
use crate::dynamo::{ApiKeys, FileStore, IdempotencyKeys, UploadTokens, Usages, Webhooks};
use crate::s3::{ObjectStore, Presigner, SIGNING_SESSION};

/// The configuration and the adapters every use case works with.
#[derive(Debug)]
pub struct Services {
    pub config: Config,
    pub files: FileStore,
    pub keys: ApiKeys,
    pub tokens: UploadTokens,
    pub idempotency: IdempotencyKeys,
    pub webhooks: Webhooks,
    /// Each project's usage and quota.
    pub usages: Usages,
    pub objects: ObjectStore,
    pub presigner: Presigner,
    /// Where steps for verify go, when `VERIFY_QUEUE_URL` is set.
    pub verify_queue: Option<VerifyQueue>,
}

impl Services {
    /// A function's services: its settings and AWS configuration from the environment
    /// ([`load_sdk`]). URLs are signed as the role `URL_SIGNING_ROLE_ARN` names, where it is set.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let sdk = load_sdk(&config).await?;
        let signing = match &config.url_signing_role_arn {
            Some(role) => Some(signing_role(role, &bounded(&sdk, &config)).await),
            None => sdk.credentials_provider(),
        };
        Ok(Self::signing_with(config, &sdk, signing))
    }

    /// Clients over `sdk`, each call bounded by the configured deadlines, signing URLs with
    /// `sdk`'s credentials.
    pub fn new(config: Config, sdk: &SdkConfig) -> Self {
        let signing = sdk.credentials_provider();
        Self::signing_with(config, sdk, signing)
    }

    /// [`Services::new`], signing URLs with `signing`.
    fn signing_with(
        config: Config,
        sdk: &SdkConfig,
        signing: Option<SharedCredentialsProvider>,
    ) -> Self {
        let sdk = bounded(sdk, &config);
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let s3 = aws_sdk_s3::Client::from_conf(s3_config(&sdk, config.s3_force_path_style));
        Self::from_clients(config, dynamodb, s3, signing)
            .with_verify_queue(aws_sdk_sqs::Client::new(&sdk))
    }

    /// The queue of verify's steps over `sqs`, where `VERIFY_QUEUE_URL` is set.
    fn with_verify_queue(mut self, sqs: aws_sdk_sqs::Client) -> Self {
        self.verify_queue = self
            .config
            .verify_queue_url
            .as_ref()
            .map(|url| VerifyQueue::new(sqs, url));
        self
    }

    /// The queue of verify's steps; an error where `VERIFY_QUEUE_URL` is not set.
    pub fn verify_queue(&self) -> Result<&VerifyQueue, ApiError> {
        self.verify_queue
            .as_ref()
            .ok_or_else(|| ApiError::Internal("VERIFY_QUEUE_URL is not set".into()))
    }

    /// [`Services::new`], with `interceptor` seeing every call of both clients (tests record
    /// which operations each function performs, to check its IAM policy), and the endpoints of
    /// `endpoints` in place of the configured ones (tests put fault proxies in between).
    #[cfg(feature = "testing")]
    pub fn with_interceptor<I>(
        config: Config,
        sdk: &SdkConfig,
        interceptor: I,
        endpoints: &Endpoints,
    ) -> Self
    where
        I: aws_sdk_s3::config::Intercept + Clone + 'static,
    {
        let sdk = bounded(sdk, &config);
        let mut dynamodb =
            aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(interceptor.clone());
        if let Some(endpoint) = &endpoints.dynamodb {
            dynamodb = dynamodb.endpoint_url(endpoint);
        }
        let mut s3 = s3_config(&sdk, config.s3_force_path_style)
            .to_builder()
            .interceptor(interceptor.clone());
        if let Some(endpoint) = &endpoints.s3 {
            s3 = s3.endpoint_url(endpoint);
        }
        let credentials = sdk.credentials_provider();
        let sqs = aws_sdk_sqs::config::Builder::from(&sdk).interceptor(interceptor);
        Self::from_clients(
            config,
            aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
            aws_sdk_s3::Client::from_conf(s3.build()),
            credentials,
        )
        .with_verify_queue(aws_sdk_sqs::Client::from_conf(sqs.build()))
    }

    /// Services over clients built elsewhere (tests hand in clients with mocked responses);
    /// `credentials` sign the URLs (the S3 client's own when `None`, see [`Presigner::new`]).
    pub fn from_clients(
        config: Config,
        dynamodb: aws_sdk_dynamodb::Client,
        s3: aws_sdk_s3::Client,
        credentials: Option<SharedCredentialsProvider>,
    ) -> Self {
        let files = FileStore::new(dynamodb.clone(), &config.table_name);
        Self {
            usages: files.usages(),
            files,
            keys: ApiKeys::new(dynamodb.clone(), &config.table_name),
            tokens: UploadTokens::new(dynamodb.clone(), &config.table_name),
            idempotency: IdempotencyKeys::new(dynamodb.clone(), &config.table_name),
            webhooks: Webhooks::new(dynamodb.clone(), &config.table_name),
            objects: ObjectStore::new(s3.clone(), &config.bucket_name),
            presigner: Presigner::new(s3, &config.bucket_name, credentials),
            verify_queue: None,
            config,
        }
    }
}

/// Endpoints that replace the configured ones, for tests.
#[cfg(feature = "testing")]
#[derive(Debug, Default, Clone)]
pub struct Endpoints {
    pub dynamodb: Option<String>,
    pub s3: Option<String>,
}

/// Credentials of sessions of the role `role`, assumed with `sdk`'s, each lasting
/// [`SIGNING_SESSION`] (the longest AWS grants a role session assumed from another).
async fn signing_role(role: &str, sdk: &SdkConfig) -> SharedCredentialsProvider {
    let provider = aws_config::sts::AssumeRoleProvider::builder(role)
        .session_name("upload-url-signer")
        .session_length(SIGNING_SESSION)
        .configure(sdk)
        .build()
        .await;
    SharedCredentialsProvider::new(provider)
}

/// A function's AWS configuration, as Lambda gives it: the region and the role's credentials
/// from the environment alone (the default chain's profile, IMDS, ECS and web-identity
/// providers have nothing to answer in Lambda, and are not built at each cold start), endpoint
/// overrides from `AWS_ENDPOINT_URL*` (the local stack), this service's HTTPS client, and every
/// call bounded by the configured deadlines: for clients of other services too. Tools people
/// run (upload-admin, the tests) keep the default chain.
pub async fn load_sdk(config: &Config) -> Result<SdkConfig, ConfigError> {
    for variable in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        if std::env::var_os(variable).is_none() {
            return Err(ConfigError::new(format!(
                "{variable} is not set: a function takes its role's credentials from the \
                 environment, as Lambda sets them"
            )));
        }
    }
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(EnvironmentVariableRegionProvider::new())
        .credentials_provider(EnvironmentVariableCredentialsProvider::new())
        .http_client(https_client(config.trust_system_roots)?)
        .load()
        .await;
    if sdk.region().is_none() {
        return Err(ConfigError::new(
            "AWS_REGION is not set: a function takes its region from the environment",
        ));
    }
    Ok(bounded(&sdk, config))
}

/// `sdk` with every call bounded by the configured deadlines.
fn bounded(sdk: &SdkConfig, config: &Config) -> SdkConfig {
    sdk.to_builder()
        .timeout_config(timeouts(config.dependency_timeout))
        .build()
}

/// JSON logs, one line per event, filtered by `RUST_LOG` (default `info`): a level, or targets
/// with levels (`shared=debug,info`), read without a regular-expression engine (`Targets`).
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time();
    tracing_subscriber::registry()
        .with(json)
        .with(filter)
        .init();
}
