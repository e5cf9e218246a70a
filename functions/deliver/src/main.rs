use aws_lambda_events::sqs::SqsEvent;
use deliver::Deliverer;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::app::services::{init_logging, load_sdk};
use shared::config::{Config, ConfigError};
use shared::dynamo::Webhooks;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = Config::from_env()?;
    let queue_url = config
        .webhook_queue_url
        .clone()
        .ok_or_else(|| ConfigError::new("WEBHOOK_QUEUE_URL is not set"))?;
    let sdk = load_sdk(&config).await?;
    let webhooks = Webhooks::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table_name);
    let deliverer = Deliverer::new(&config, webhooks, aws_sdk_sqs::Client::new(&sdk), queue_url)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, lambda_runtime::Error>(deliverer.handle(event.payload).await)
    }))
    .await
}
