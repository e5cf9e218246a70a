#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run(|services, request| async move { tokens::handle(&services, request).await })
        .await
}
