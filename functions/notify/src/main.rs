use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::app::services::{init_logging, load_sdk};
use shared::config::{Config, ConfigError};
use shared::dynamo::Usages;
use shared::events::EventBus;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = Config::from_env()?;
    let bus_name = config
        .event_bus_name
        .clone()
        .ok_or_else(|| ConfigError::new("EVENT_BUS_NAME is not set"))?;
    let sdk = load_sdk(&config).await?;
    let bus = EventBus::new(aws_sdk_eventbridge::Client::new(&sdk), bus_name);
    let usages = Usages::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table_name);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Event>| async {
        Ok::<_, lambda_runtime::Error>(notify::handle(&bus, &usages, event.payload).await)
    }))
    .await
}
