//! What a function builds once, at its cold start: its settings, and the clients of the
//! services it calls and no others. Each function's `main` says which ([`Environment`]): the
//! token and webhook routes use the table alone, the routes over files' content add storage
//! (with the signing role where they hand out URLs), complete and verify add verify's queue.
//! A setting a function needs and does not have stops its cold start, naming the variable.

use aws_config::environment::{
    EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
};
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::SharedCredentialsProvider;
use tracing_subscriber::filter::Targets;

use crate::app::verify_queue::VerifyQueue;
use crate::aws::{https_client, s3_config, timeouts};
use crate::config::{Config, ConfigError};
use crate::dynamo::{ApiKeys, FileStore, IdempotencyKeys, UploadTokens, Usages, Webhooks};
use crate::events::EventBus;
use crate::s3::{ObjectStore, Presigner, SIGNING_SESSION};
use crate::sqs::Queue;

/// The adapters over the one DynamoDB table.
#[derive(Debug)]
pub struct Table {
    pub files: FileStore,
    /// Each project's usage and quota.
    pub usages: Usages,
    pub keys: ApiKeys,
    pub tokens: UploadTokens,
    pub idempotency: IdempotencyKeys,
    pub webhooks: Webhooks,
}

impl Table {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table_name: &str) -> Self {
        let files = FileStore::new(dynamodb.clone(), table_name);
        Self {
            usages: files.usages(),
            files,
            keys: ApiKeys::new(dynamodb.clone(), table_name),
            tokens: UploadTokens::new(dynamodb.clone(), table_name),
            idempotency: IdempotencyKeys::new(dynamodb.clone(), table_name),
            webhooks: Webhooks::new(dynamodb, table_name),
        }
    }
}

/// The adapters over the bucket: its objects, and the URLs that reach them.
#[derive(Debug)]
pub struct Storage {
    pub objects: ObjectStore,
    pub presigner: Presigner,
}

impl Storage {
    /// `credentials` sign the URLs (the S3 client's own when `None`, see [`Presigner::new`]).
    pub fn new(
        s3: aws_sdk_s3::Client,
        bucket_name: &str,
        credentials: Option<SharedCredentialsProvider>,
    ) -> Self {
        Self {
            objects: ObjectStore::new(s3.clone(), bucket_name),
            presigner: Presigner::new(s3, bucket_name, credentials),
        }
    }
}

/// What the routes over files work with: settings, the table and storage.
#[derive(Debug)]
pub struct Services {
    pub config: Config,
    pub table: Table,
    pub storage: Storage,
}

/// A function's cold start: logging, its settings, and the AWS configuration Lambda gives it
/// ([`load_sdk`]), from which its `main` builds the clients it uses.
#[derive(Debug)]
pub struct Environment {
    pub config: Config,
    sdk: SdkConfig,
}

impl Environment {
    pub async fn load() -> Result<Self, ConfigError> {
        init_logging();
        let config = Config::from_env()?;
        let sdk = load_sdk(&config).await?;
        Ok(Self { config, sdk })
    }

    pub fn table(&self) -> Table {
        Table::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            &self.config.table_name,
        )
    }

    /// Storage whose URLs the function's own credentials would sign: for functions that hand
    /// out none. `BUCKET_NAME` is required.
    pub fn storage(&self) -> Result<Storage, ConfigError> {
        Ok(Storage::new(self.s3(), self.config.bucket()?, None))
    }

    /// Storage whose URLs are signed as the role `URL_SIGNING_ROLE_ARN` names, where it is set
    /// (its sessions' lifetime is known, unlike that of Lambda's own credentials).
    /// `BUCKET_NAME` is required.
    pub async fn signing_storage(&self) -> Result<Storage, ConfigError> {
        let bucket = self.config.bucket()?;
        let signing = match &self.config.url_signing_role_arn {
            Some(role) => Some(signing_role(role, &self.sdk).await),
            None => self.sdk.credentials_provider(),
        };
        Ok(Storage::new(self.s3(), bucket, signing))
    }

    /// The services of a route that hands out URLs: the table, and [`Environment::signing_storage`].
    pub async fn services(self) -> Result<Services, ConfigError> {
        let storage = self.signing_storage().await?;
        Ok(self.services_over(storage))
    }

    /// The settings and the table, with `storage`.
    pub fn services_over(self, storage: Storage) -> Services {
        Services {
            table: self.table(),
            config: self.config,
            storage,
        }
    }

    /// Verify's queue; `VERIFY_QUEUE_URL` is required.
    pub fn verify_queue(&self) -> Result<VerifyQueue, ConfigError> {
        let url = required(&self.config.verify_queue_url, "VERIFY_QUEUE_URL")?;
        Ok(VerifyQueue::new(self.sqs(), url))
    }

    /// The queue of webhook deliveries; `WEBHOOK_QUEUE_URL` is required.
    pub fn webhook_queue(&self) -> Result<Queue, ConfigError> {
        let url = required(&self.config.webhook_queue_url, "WEBHOOK_QUEUE_URL")?;
        Ok(Queue::new(self.sqs(), url))
    }

    /// The bus events are published to; `EVENT_BUS_NAME` is required.
    pub fn event_bus(&self) -> Result<EventBus, ConfigError> {
        let name = required(&self.config.event_bus_name, "EVENT_BUS_NAME")?;
        Ok(EventBus::new(
            aws_sdk_eventbridge::Client::new(&self.sdk),
            name,
        ))
    }

    fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(s3_config(&self.sdk, self.config.s3_force_path_style))
    }

    fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }
}

/// A setting this function cannot start without.
fn required<'a>(setting: &'a Option<String>, variable: &str) -> Result<&'a str, ConfigError> {
    setting.as_deref().ok_or_else(|| {
        ConfigError::new(format!(
            "{variable} is not set, and this function cannot start without it"
        ))
    })
}

impl Services {
    /// Services over `sdk` (tools and tests: they load it their own way), each call bounded
    /// by the configured deadlines, signing URLs with `sdk`'s credentials. `BUCKET_NAME` is
    /// required.
    pub fn new(config: Config, sdk: &SdkConfig) -> Result<Self, ConfigError> {
        let sdk = bounded(sdk, &config);
        let s3 = aws_sdk_s3::Client::from_conf(s3_config(&sdk, config.s3_force_path_style));
        let bucket = config.bucket()?;
        Ok(Self {
            table: Table::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table_name),
            storage: Storage::new(s3, bucket, sdk.credentials_provider()),
            config,
        })
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
    ) -> Result<Self, ConfigError>
    where
        I: aws_sdk_s3::config::Intercept + Clone + 'static,
    {
        let bucket = config.bucket()?;
        let sdk = bounded(sdk, &config);
        let mut dynamodb =
            aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(interceptor.clone());
        if let Some(endpoint) = &endpoints.dynamodb {
            dynamodb = dynamodb.endpoint_url(endpoint);
        }
        let mut s3 = s3_config(&sdk, config.s3_force_path_style)
            .to_builder()
            .interceptor(interceptor);
        if let Some(endpoint) = &endpoints.s3 {
            s3 = s3.endpoint_url(endpoint);
        }
        Ok(Self {
            table: Table::new(
                aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
                &config.table_name,
            ),
            storage: Storage::new(
                aws_sdk_s3::Client::from_conf(s3.build()),
                bucket,
                sdk.credentials_provider(),
            ),
            config,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(pairs: &[(&str, &str)]) -> Environment {
        let config = Config::from_lookup(|name| {
            pairs
                .iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .unwrap();
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .build();
        Environment { config, sdk }
    }

    #[test]
    fn a_bucket_queue_or_bus_a_function_needs_and_lacks_stops_its_cold_start_naming_the_variable() {
        let bare = environment(&[("TABLE_NAME", "t")]);
        for (refused, variable) in [
            (bare.storage().err(), "BUCKET_NAME"),
            (bare.verify_queue().err(), "VERIFY_QUEUE_URL"),
            (bare.webhook_queue().err(), "WEBHOOK_QUEUE_URL"),
            (bare.event_bus().err(), "EVENT_BUS_NAME"),
        ] {
            let message = refused.expect("refused").to_string();
            assert!(message.contains(variable), "{message}");
        }

        let wired = environment(&[
            ("TABLE_NAME", "t"),
            ("BUCKET_NAME", "b"),
            (
                "VERIFY_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/verify",
            ),
            (
                "WEBHOOK_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/webhooks",
            ),
            ("EVENT_BUS_NAME", "uploads"),
        ]);
        assert!(wired.verify_queue().is_ok());
        assert_eq!(
            wired.webhook_queue().unwrap().url(),
            "https://sqs.eu-west-1.amazonaws.com/1/webhooks"
        );
        assert!(wired.event_bus().is_ok());
    }
}
