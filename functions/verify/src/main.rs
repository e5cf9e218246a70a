use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::app::Services;
use shared::app::services::init_logging;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let services = Services::from_env().await?;
    services.verify_queue()?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, lambda_runtime::Error>(verify::handle_messages(&services, event.payload).await)
    }))
    .await
}
