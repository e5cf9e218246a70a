//! The bus, the rule and the queues of event delivery, for local runs and tests; deployments get
//! them from template.yaml (keep the two in step).

use aws_sdk_eventbridge::types::{DeadLetterConfig, RetryPolicy, Target};

use crate::events::SOURCE;

/// What [`create`] made.
#[derive(Debug, Clone)]
pub struct EventResources {
    pub queue_url: String,
    pub dead_letter_queue_url: String,
    /// Where the rule puts an event it could not send to `queue_url` (template.yaml's
    /// `WebhookRuleDeadLetters`).
    pub rule_dead_letter_queue_url: String,
}

/// Creates (or finds) the bus `bus`, the queue `queue` of webhook deliveries with its
/// dead-letter queue `<queue>-dlq` (a message goes there after `max_attempts` receives), and a
/// rule sending every event of this service on the bus to the queue, retrying for a day and
/// then keeping what it could not send in `<queue>-rule-dlq`.
pub async fn create(
    events: &aws_sdk_eventbridge::Client,
    sqs: &aws_sdk_sqs::Client,
    bus: &str,
    queue: &str,
    max_attempts: u32,
) -> Result<EventResources, String> {
    let dead_letters = format!("{queue}-dlq");
    let (queue_url, dead_letters) =
        create_queue_with_dead_letters(sqs, queue, &dead_letters, max_attempts).await?;
    let rule_dead_letters = create_queue(sqs, &format!("{queue}-rule-dlq"), None).await?;
    let rule_dead_letters_arn = queue_arn(sqs, &rule_dead_letters).await?;
    let queue_arn = queue_arn(sqs, &queue_url).await?;

    match events.create_event_bus().name(bus).send().await {
        Ok(_) => {}
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_already_exists_exception()) => {}
        Err(err) => return Err(format!("CreateEventBus {bus}: {err:?}")),
    }
    let rule = format!("{bus}-to-{queue}");
    let pattern = serde_json::json!({ "source": [SOURCE] });
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .map_err(|err| format!("PutRule {rule}: {err:?}"))?;
    let target = Target::builder()
        .id("webhook-queue")
        .arn(&queue_arn)
        .retry_policy(
            RetryPolicy::builder()
                .maximum_retry_attempts(185)
                .maximum_event_age_in_seconds(86_400)
                .build(),
        )
        .dead_letter_config(
            DeadLetterConfig::builder()
                .arn(rule_dead_letters_arn)
                .build(),
        )
        .build()
        .map_err(|err| err.to_string())?;
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .map_err(|err| format!("PutTargets {rule}: {err:?}"))?;
    Ok(EventResources {
        queue_url,
        dead_letter_queue_url: dead_letters,
        rule_dead_letter_queue_url: rule_dead_letters,
    })
}

/// Creates (or finds) the queue `name` and its dead-letter queue `dead_letters`, to which a
/// message moves after `max_receives` receives; both URLs.
pub async fn create_queue_with_dead_letters(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    dead_letters: &str,
    max_receives: u32,
) -> Result<(String, String), String> {
    let dead_letters_url = create_queue(sqs, dead_letters, None).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": queue_arn(sqs, &dead_letters_url).await?,
        "maxReceiveCount": max_receives.to_string(),
    });
    let url = create_queue(sqs, name, Some(redrive.to_string())).await?;
    Ok((url, dead_letters_url))
}

/// Creates (or finds) the queue `name`, with the redrive policy `redrive` if given; its URL.
async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    redrive: Option<String>,
) -> Result<String, String> {
    let mut request = sqs.create_queue().queue_name(name);
    if let Some(redrive) = redrive {
        request = request.attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            redrive,
        );
    }
    let output = request
        .send()
        .await
        .map_err(|err| format!("CreateQueue {name}: {err:?}"))?;
    output
        .queue_url
        .ok_or_else(|| format!("CreateQueue {name}: no URL"))
}

/// The ARN of the queue at `url`.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, String> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|err| format!("GetQueueAttributes {url}: {err:?}"))?;
    output
        .attributes
        .and_then(|mut attributes| {
            attributes.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        })
        .ok_or_else(|| format!("GetQueueAttributes {url}: no ARN"))
}
