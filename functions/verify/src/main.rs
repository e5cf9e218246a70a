use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::app::services::Environment;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let env = Environment::load().await?;
    let queue = env.verify_queue()?;
    // Verify hands out no URL: storage without the signing role.
    let storage = env.storage()?;
    let services = env.services_over(storage);
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, lambda_runtime::Error>(
            verify::handle_messages(&services, &queue, event.payload).await,
        )
    }))
    .await
}
