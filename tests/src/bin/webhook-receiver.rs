//! A webhook receiver for local development (`scripts/webhook-receiver`): prints one line per
//! delivery and checks its Standard Webhooks signature; the tests' receiver
//! (`integration_tests::delivery::Receiver`), listening on a port of loopback.

use clap::Parser;
use integration_tests::delivery::Receiver;

/// Prints webhook deliveries and checks their signatures.
#[derive(Parser)]
struct Options {
    /// The port of 127.0.0.1 to listen on.
    #[arg(long, default_value_t = 8787)]
    port: u16,
    /// The webhook's signing secret (whsec_…), as `PUT …/webhook` answered it: a delivery whose
    /// signature does not check out, or whose timestamp is more than 5 minutes off, is answered
    /// 401. Without it, signatures are not checked.
    #[arg(long)]
    secret: Option<String>,
    /// Answer 500 to the first N attempts of each delivery, to watch the retries.
    #[arg(long, default_value_t = 0)]
    fail: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let options = Options::parse();
    if let Some(secret) = &options.secret
        && standardwebhooks::Webhook::new(secret).is_err()
    {
        eprintln!("webhook-receiver: --secret is not whsec_ followed by base64");
        std::process::exit(2);
    }
    let receiver = Receiver::start_on(options.port).await?;
    match &options.secret {
        Some(secret) => receiver.trust(secret),
        None => receiver.accept_unsigned(),
    }
    receiver.fail_first(options.fail);
    receiver.print();
    eprintln!(
        "webhook-receiver: listening on http://127.0.0.1:{}/",
        options.port
    );
    tokio::signal::ctrl_c().await
}
