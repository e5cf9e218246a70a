//! `upload-admin`: operator commands against the table and bucket named by `TABLE_NAME` and
//! `BUCKET_NAME` (endpoints and credentials from the standard AWS variables).
//!
//! ```text
//! upload-admin mint-key --project <id> [--project <id>…] [--label <text>]
//! upload-admin revoke-key             # reads the key from stdin, so it stays out of shell history
//! upload-admin create-table          # local runs and tests; deployments use template.yaml
//! upload-admin create-bucket [--allow-origin <origin>…]
//! upload-admin create-events --bus <name> --queue <name> [--max-attempts <n>]
//! upload-admin create-verify-queue --queue <name> [--max-receives <n>]
//! ```
//! `create-events` makes the event bus, the webhook delivery queue (with its dead-letter queue
//! after `--max-attempts` receives, 18 by default as in template.yaml) and the rule between them,
//! and prints the queue's URL. `create-verify-queue` makes the queue `verify` reads, sends the
//! bucket's `ObjectCreated` events to it, gives it a `<name>-failures` queue after
//! `--max-receives` receives (10 by default, as in template.yaml), and prints its URL.

use std::process::ExitCode;

use aws_config::BehaviorVersion;
use shared::config::Config;
use shared::dynamo::ApiKeys;
use shared::{aws, dynamo, s3};

const USAGE: &str =
    "usage: upload-admin mint-key --project <id> [--project <id>...] [--label <text>]
       upload-admin revoke-key   (the key on stdin)
       upload-admin create-table
       upload-admin create-bucket [--allow-origin <origin>...]
       upload-admin create-events --bus <name> --queue <name> [--max-attempts <n>]
       upload-admin create-verify-queue --queue <name> [--max-receives <n>]";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("upload-admin: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &[String]) -> Result<(), String> {
    let (command, options) = args.split_first().ok_or(USAGE)?;
    let config = Config::from_env().map_err(|err| err.to_string())?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    match command.as_str() {
        "mint-key" => {
            only(options, &["--project", "--label"])?;
            let projects = values(options, "--project");
            let label = values(options, "--label").pop().unwrap_or_default();
            let keys = ApiKeys::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table_name);
            let key = keys.mint(&projects, &label).await.map_err(describe)?;
            println!("{key}");
        }
        "revoke-key" => {
            only(options, &[])?;
            let mut key = String::new();
            std::io::stdin()
                .read_line(&mut key)
                .map_err(|err| err.to_string())?;
            let keys = ApiKeys::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table_name);
            keys.revoke(key.trim()).await.map_err(describe)?;
            eprintln!("revoked");
        }
        "create-table" => {
            only(options, &[])?;
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            dynamo::provision::create_table(&client, &config.table_name)
                .await
                .map_err(describe)?;
            eprintln!("created table {}", config.table_name);
        }
        "create-bucket" => {
            only(options, &["--allow-origin"])?;
            let mut origins = values(options, "--allow-origin");
            if origins.is_empty() {
                origins.push("*".to_owned());
            }
            let client =
                aws_sdk_s3::Client::from_conf(aws::s3_config(&sdk, config.s3_force_path_style));
            s3::provision::create_bucket(&client, &config.bucket_name, &origins)
                .await
                .map_err(describe)?;
            eprintln!("created bucket {}", config.bucket_name);
        }
        "create-events" => {
            only(options, &["--bus", "--queue", "--max-attempts"])?;
            let required = |name: &str| {
                values(options, name)
                    .pop()
                    .ok_or_else(|| format!("{name} is required\n{USAGE}"))
            };
            let (bus, queue) = (required("--bus")?, required("--queue")?);
            let max_attempts = match values(options, "--max-attempts").pop() {
                None => 18,
                Some(text) => text
                    .parse()
                    .map_err(|_| format!("--max-attempts {text:?} is not a number"))?,
            };
            let created = shared::events::provision::create(
                &aws_sdk_eventbridge::Client::new(&sdk),
                &aws_sdk_sqs::Client::new(&sdk),
                &bus,
                &queue,
                max_attempts,
            )
            .await?;
            eprintln!(
                "created event bus {bus} and queue {queue} (dead letters: {}; the rule's: {})",
                created.dead_letter_queue_url, created.rule_dead_letter_queue_url
            );
            println!("{}", created.queue_url);
        }
        "create-verify-queue" => {
            only(options, &["--queue", "--max-receives"])?;
            let queue = values(options, "--queue")
                .pop()
                .ok_or_else(|| format!("--queue is required\n{USAGE}"))?;
            let max_receives = match values(options, "--max-receives").pop() {
                // template.yaml's VerifyQueue: receives that span hours with verify's backoff
                None => 10,
                Some(text) => text
                    .parse()
                    .map_err(|_| format!("--max-receives {text:?} is not a number"))?,
            };
            let created = s3::provision::create_verify_queue(
                &aws_sdk_s3::Client::from_conf(aws::s3_config(&sdk, config.s3_force_path_style)),
                &aws_sdk_sqs::Client::new(&sdk),
                &config.bucket_name,
                &queue,
                max_receives,
            )
            .await?;
            eprintln!(
                "created queue {queue} for {}'s ObjectCreated events (failures: {})",
                config.bucket_name, created.failures_url
            );
            println!("{}", created.queue_url);
        }
        _ => return Err(USAGE.to_owned()),
    }
    Ok(())
}

/// Refuses any option but `allowed`, each of which takes a value.
fn only(options: &[String], allowed: &[&str]) -> Result<(), String> {
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        if !allowed.contains(&option.as_str()) {
            return Err(format!("unexpected argument {option:?}\n{USAGE}"));
        }
        rest.next()
            .ok_or_else(|| format!("{option} needs a value\n{USAGE}"))?;
    }
    Ok(())
}

/// The values of every `--name value` pair.
fn values(options: &[String], name: &str) -> Vec<String> {
    options
        .chunks(2)
        .filter_map(|pair| match pair {
            [option, value] if option == name => Some(value.clone()),
            _ => None,
        })
        .collect()
}

fn describe(err: shared::domain::ApiError) -> String {
    match err {
        shared::domain::ApiError::Internal(text) | shared::domain::ApiError::Unavailable(text) => {
            text
        }
        other => format!("{other}: {:?}", other.details()),
    }
}
