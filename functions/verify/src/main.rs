use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::app::Services;
use shared::app::services::{init_logging, load_sdk};
use shared::config::{Config, ConfigError};
use verify::VerifyQueue;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = Config::from_env()?;
    let queue_url = config
        .verify_queue_url
        .clone()
        .ok_or_else(|| ConfigError::new("VERIFY_QUEUE_URL is not set"))?;
    let sdk = load_sdk(&config).await?;
    let queue = VerifyQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url);
    let services = Services::new(config, &sdk);
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, lambda_runtime::Error>(queue.handle(&services, event.payload).await)
    }))
    .await
}
