use aws_lambda_events::s3::S3Event;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::app::Services;
use shared::app::services::init_logging;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let services = Services::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<S3Event>| async {
        verify::handle(&services, event.payload)
            .await
            .map(|_| ())
            .map_err(|err| lambda_runtime::Error::from(format!("{err:?}")))
    }))
    .await
}
