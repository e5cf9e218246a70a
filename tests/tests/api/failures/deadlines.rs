//! Dependencies that hang or reset: the SDK's deadlines (DEPENDENCY_TIMEOUT_MS) bound every call,
//! so the client gets 503 instead of waiting for the function's timeout.

use super::*;

/// What a fake dependency on loopback does with each connection.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Accepts, reads, never answers.
    Blackhole,
    /// Accepts and closes at once.
    Reset,
}

/// A loopback endpoint that misbehaves as `fault` says, for as long as the test runs.
async fn faulty_endpoint(fault: Fault) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            match fault {
                Fault::Blackhole => held.push(connection),
                Fault::Reset => drop(connection),
            }
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn a_hung_or_resetting_table_answers_503_within_the_deadline() {
    let budget = std::time::Duration::from_millis(400);
    for fault in [Fault::Blackhole, Fault::Reset] {
        // GIVEN DynamoDB that never answers, or drops every connection
        let endpoint = faulty_endpoint(fault).await;
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::for_tests(),
            ))
            .retry_config(aws_config::retry::RetryConfig::standard())
            .build();
        let config = shared::config::Config::from_lookup(|name| match name {
            "TABLE_NAME" => Some(TABLE.into()),
            "BUCKET_NAME" => Some(BUCKET.into()),
            "DEPENDENCY_TIMEOUT_MS" => Some(budget.as_millis().to_string()),
            _ => None,
        })
        .expect("config");
        let api = TestApi {
            services: shared::app::Services::new(config, &sdk).unwrap(),
            verify_queue: shared::app::verify_queue::VerifyQueue::new(
                aws_sdk_sqs::Client::new(&sdk),
                integration_tests::NO_QUEUE,
            ),
            project: "p1".into(),
            key: "upk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
            http: reqwest::Client::new(),
        };

        // WHEN a file is declared
        let started = std::time::Instant::now();
        let reply = api.create(small_file()).await;

        // THEN the answer is 503 with the contract's body, within the deadline (and some slack
        // for a busy machine), not whenever the platform would give up
        assert_error(&reply, 503, "unavailable");
        let took = started.elapsed();
        assert!(
            took < budget + std::time::Duration::from_secs(1),
            "{fault:?}: {took:?}"
        );
    }
}
