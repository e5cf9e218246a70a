use aws_lambda_events::sqs::SqsEvent;
use deliver::Deliverer;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::app::services::Environment;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let env = Environment::load().await?;
    let deliverer = Deliverer::new(&env.config, env.table().webhooks, env.webhook_queue()?)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, lambda_runtime::Error>(deliverer.handle(event.payload).await)
    }))
    .await
}
