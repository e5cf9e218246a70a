//! `upload-admin`: operator commands against the table and bucket named by `TABLE_NAME` and
//! `BUCKET_NAME` (endpoints and credentials from the standard AWS variables). `--help` lists
//! them; README, "When an alarm fires", says when to use which.

use std::process::ExitCode;
use std::time::Duration;

use admin::{describe, inspect, redrive, stream, stuck};
use aws_config::BehaviorVersion;
use clap::{Parser, Subcommand};
use shared::app::Services;
use shared::app::verify_queue::VerifyQueue;
use shared::config::Config;
use shared::domain::FileId;
use shared::dynamo::ApiKeys;
use shared::{aws, dynamo, s3};

#[derive(Parser)]
#[command(
    name = "upload-admin",
    about = "Operator commands of the upload service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mints an API key for the projects given, and prints it.
    MintKey {
        #[arg(long = "project", required = true)]
        projects: Vec<String>,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Revokes the key read from stdin (so it stays out of shell history).
    RevokeKey,
    /// Moves the files written before the listing index was sharded (index `by_project`) into
    /// the sharded one (`by_project_shard`). Listings read both, so this is needed only before
    /// `by_project` is dropped; safe to run while the service runs, and again.
    MoveListing,
    /// Creates the table (local runs and tests; deployments use template.yaml).
    CreateTable,
    /// Creates the bucket, with CORS for the origins given (default `*`).
    CreateBucket {
        #[arg(long = "allow-origin")]
        origins: Vec<String>,
    },
    /// Creates the event bus, the webhook delivery queue (its dead letters after
    /// `--max-attempts` receives, as template.yaml's WebhookMaxAttempts), and the rule between
    /// them; prints the queue's URL.
    CreateEvents {
        #[arg(long)]
        bus: String,
        #[arg(long)]
        queue: String,
        #[arg(long, default_value_t = 18)]
        max_attempts: u32,
    },
    /// Creates the queue verify reads, sends the bucket's ObjectCreated events to it, gives it
    /// a `<queue>-failures` queue after `--max-receives` receives (as template.yaml's
    /// VerifyQueue); prints its URL.
    CreateVerifyQueue {
        #[arg(long)]
        queue: String,
        #[arg(long, default_value_t = 10)]
        max_receives: u32,
    },
    /// Moves the messages of a dead-letter queue back, to the queue whose failures it keeps
    /// (or `--to`); `--dry-run` counts them. `--queue verify` and `--queue webhooks` name the
    /// dead letters of VERIFY_QUEUE_URL and WEBHOOK_QUEUE_URL; `--queue stream` replays the
    /// batches in NOTIFY_FAILURES_QUEUE_URL (as replay-stream does).
    Redrive {
        #[arg(
            long,
            value_enum,
            required_unless_present = "from",
            conflicts_with = "from"
        )]
        queue: Option<Queue>,
        /// A dead-letter queue's URL (a stack output: VerifyFailuresQueue, …).
        #[arg(long)]
        from: Option<String>,
        /// Where they go; by default the queue whose redrive policy names `--from`. The event
        /// rule's dead letters go to the WebhookQueue output.
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Publishes again the events of the stream records notify gave up on, from the positions
    /// the NotifyFailures queue keeps, to `EVENT_BUS_NAME`'s bus; `--dry-run` counts them.
    ReplayStream {
        /// The NotifyFailures queue's URL (a stack output: NotifyFailuresQueue).
        #[arg(long)]
        from: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Sets a project's quota to the bounds given (a bound not given is none); `--clear`
    /// removes both. Usage above a new bound stays; only what would take more is refused.
    SetQuota {
        #[arg(long)]
        project: String,
        #[arg(long, conflicts_with = "clear")]
        max_files: Option<u64>,
        #[arg(long, conflicts_with = "clear")]
        max_bytes: Option<u64>,
        #[arg(long)]
        clear: bool,
    },
    /// Prints a project's usage and quota, as `GET …/usage` answers them.
    Usage {
        #[arg(long)]
        project: String,
    },
    /// Lists files completed more than `--older-than` ago without a verdict, and multipart
    /// uploads open for more than `--uploads-older-than`, with what to do for each.
    Stuck {
        #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
        older_than: Duration,
        #[arg(long, default_value = "7days", value_parser = humantime::parse_duration)]
        uploads_older_than: Duration,
    },
    /// Hands a stuck file's check to verify again, through `VERIFY_QUEUE_URL`.
    Reverify { file_id: String },
    /// Prints a file's item, objects and tags, and the upload its job has open, as JSON.
    Inspect { file_id: String },
}

/// The queues an operator redrives by name, each from the environment the functions use.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Queue {
    /// VerifyFailures, back to VerifyQueue (VERIFY_QUEUE_URL).
    Verify,
    /// WebhookDeadLetters, back to WebhookQueue (WEBHOOK_QUEUE_URL).
    Webhooks,
    /// NotifyFailures' batches, read from the stream and published (NOTIFY_FAILURES_QUEUE_URL).
    Stream,
}

/// A variable the command needs, named in the error when it is missing.
fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set (README, When an alarm fires)"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("upload-admin: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    let config = Config::from_env().map_err(|err| err.to_string())?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let keys = || ApiKeys::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table_name);
    let s3_client =
        || aws_sdk_s3::Client::from_conf(aws::s3_config(&sdk, config.s3_force_path_style));
    let usages =
        || shared::dynamo::Usages::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table_name);
    // The default chain (profiles, SSO, ...) an operator's shell has, not a function's.
    let services = || async { Services::new(config.clone(), &sdk).map_err(|err| err.to_string()) };
    let bucket = || config.bucket().map_err(|err| err.to_string());
    match command {
        Command::MintKey { projects, label } => {
            let key = keys().mint(&projects, &label).await.map_err(describe)?;
            println!("{key}");
        }
        Command::RevokeKey => {
            let mut key = String::new();
            std::io::stdin()
                .read_line(&mut key)
                .map_err(|err| err.to_string())?;
            keys().revoke(key.trim()).await.map_err(describe)?;
            eprintln!("revoked");
        }
        Command::CreateTable => {
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            dynamo::provision::create_table(&client, &config.table_name)
                .await
                .map_err(describe)?;
            eprintln!("created table {}", config.table_name);
        }
        Command::CreateBucket { mut origins } => {
            if origins.is_empty() {
                origins.push("*".to_owned());
            }
            let bucket = bucket()?;
            s3::provision::create_bucket(&s3_client(), bucket, &origins)
                .await
                .map_err(describe)?;
            eprintln!("created bucket {bucket}");
        }
        Command::CreateEvents {
            bus,
            queue,
            max_attempts,
        } => {
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
        Command::CreateVerifyQueue {
            queue,
            max_receives,
        } => {
            let bucket = bucket()?;
            let created = s3::provision::create_verify_queue(
                &s3_client(),
                &aws_sdk_sqs::Client::new(&sdk),
                bucket,
                &queue,
                max_receives,
            )
            .await?;
            eprintln!(
                "created queue {queue} for {bucket}'s ObjectCreated events (failures: {})",
                created.failures_url
            );
            println!("{}", created.queue_url);
        }
        Command::Redrive {
            queue: Some(Queue::Stream),
            dry_run,
            ..
        } => {
            let from = env("NOTIFY_FAILURES_QUEUE_URL")?;
            replay_stream(&sdk, &config, &from, dry_run).await?;
        }
        Command::Redrive {
            queue,
            from,
            to,
            dry_run,
        } => {
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let from = match (queue, from) {
                (_, Some(from)) => from,
                (Some(Queue::Verify), None) => {
                    redrive::dead_letters_of(&sqs, &env("VERIFY_QUEUE_URL")?).await?
                }
                (Some(Queue::Webhooks), None) => {
                    redrive::dead_letters_of(&sqs, &env("WEBHOOK_QUEUE_URL")?).await?
                }
                (Some(Queue::Stream) | None, None) => unreachable!("clap requires one"),
            };
            let done = redrive::redrive(&sqs, &from, to.as_deref(), dry_run).await?;
            if dry_run {
                println!("{} messages would move to {}", done.messages, done.to);
            } else {
                println!("moved {} messages to {}", done.messages, done.to);
            }
        }
        Command::ReplayStream { from, dry_run } => {
            replay_stream(&sdk, &config, &from, dry_run).await?;
        }
        Command::SetQuota {
            project,
            max_files,
            max_bytes,
            clear,
        } => {
            if !clear && max_files.is_none() && max_bytes.is_none() {
                return Err("give --max-files, --max-bytes, or --clear to remove the quota".into());
            }
            let quota = shared::domain::usage::Quota {
                max_files,
                max_bytes,
            };
            let usages = usages();
            usages.set_quota(&project, quota).await.map_err(describe)?;
            let found = usages.get(&project).await.map_err(describe)?;
            println!("{:#}", shared::contract::usage(&project, &found));
        }
        Command::MoveListing => {
            let moved = services()
                .await?
                .table
                .files
                .move_listing_to_shards()
                .await
                .map_err(describe)?;
            println!("{moved} files moved to the sharded listing index");
        }
        Command::Usage { project } => {
            let found = usages().get(&project).await.map_err(describe)?;
            println!("{:#}", shared::contract::usage(&project, &found));
        }
        Command::Stuck {
            older_than,
            uploads_older_than,
        } => {
            let services = services().await?;
            for file in stuck::stuck_files(&services, older_than).await? {
                let record = &file.record;
                println!(
                    "file {} (project {}) uploaded {} without a verdict: upload-admin reverify {}",
                    record.file_id,
                    record.project_id,
                    shared::domain::timestamp::format(record.updated_at),
                    record.file_id
                );
            }
            for upload in stuck::open_uploads(&services, uploads_older_than).await? {
                let whose = upload
                    .file_id
                    .map_or("no file of the service".to_owned(), |id| {
                        format!("file {id}")
                    });
                println!(
                    "multipart upload {} of {} ({whose}) open since {}: the bucket's lifecycle aborts it after IncompleteUploadDays; its file's DELETE …/upload aborts it now",
                    upload.upload_id,
                    upload.key,
                    shared::domain::timestamp::format(upload.initiated)
                );
            }
        }
        Command::Reverify { file_id } => {
            let url = config
                .verify_queue_url
                .clone()
                .ok_or("VERIFY_QUEUE_URL is not set: reverify hands the check to verify's queue")?;
            let queue = VerifyQueue::new(aws_sdk_sqs::Client::new(&sdk), url);
            let step =
                stuck::reverify(&services().await?, &queue, parse_file_id(&file_id)?).await?;
            eprintln!("handed to verify: {step:?}");
        }
        Command::Inspect { file_id } => {
            let found = inspect::inspect(&services().await?, parse_file_id(&file_id)?).await?;
            println!("{found:#}");
        }
    }
    Ok(())
}

/// Replays the stream batches the NotifyFailures queue `from` keeps (`--dry-run`: counts them).
async fn replay_stream(
    sdk: &aws_config::SdkConfig,
    config: &Config,
    from: &str,
    dry_run: bool,
) -> Result<(), String> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    if dry_run {
        let waiting = redrive::waiting(&sqs, from).await?;
        println!("{waiting} failed batches to replay");
        return Ok(());
    }
    let bus_name = config
        .event_bus_name
        .clone()
        .ok_or("EVENT_BUS_NAME is not set (a stack output: EventBusName)")?;
    let bus = shared::events::EventBus::new(aws_sdk_eventbridge::Client::new(sdk), bus_name);
    let usages =
        shared::dynamo::Usages::new(aws_sdk_dynamodb::Client::new(sdk), &config.table_name);
    let done = stream::replay(&sqs, &stream::client(sdk), &bus, &usages, from).await?;
    println!(
        "replayed {} failed batches: {} changes of files handed to notify",
        done.batches, done.changes
    );
    Ok(())
}

fn parse_file_id(text: &str) -> Result<FileId, String> {
    text.parse()
        .map_err(|()| format!("{text:?} is not a file id"))
}
