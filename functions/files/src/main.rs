use shared::app::services::Environment;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let services = Environment::load().await?.services().await?;
    shared::http::run(services, |services, request| async move {
        files::handle(&services, request).await
    })
    .await
}
