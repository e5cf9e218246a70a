#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run(|services, request| async move { complete::handle(&services, request).await })
        .await
}
