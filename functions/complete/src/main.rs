use shared::app::services::Environment;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let env = Environment::load().await?;
    let queue = env.verify_queue()?;
    let services = env.services().await?;
    shared::http::run((services, queue), |state, request| async move {
        let (services, queue) = &*state;
        complete::handle(services, queue, request).await
    })
    .await
}
