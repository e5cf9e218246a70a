use shared::app::services::Environment;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    // The table alone: this route touches no storage and hands out no URL.
    let env = Environment::load().await?;
    shared::http::run((env.table(), env.config), |state, request| async move {
        let (table, config) = &*state;
        webhooks::handle(table, config, request).await
    })
    .await
}
