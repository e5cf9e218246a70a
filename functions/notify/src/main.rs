use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::app::services::Environment;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let env = Environment::load().await?;
    let (bus, usages) = (env.event_bus()?, env.table().usages);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Event>| async {
        Ok::<_, lambda_runtime::Error>(notify::handle(&bus, &usages, event.payload).await)
    }))
    .await
}
