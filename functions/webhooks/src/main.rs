#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run(|services, request| async move { webhooks::handle(&services, request).await })
        .await
}
