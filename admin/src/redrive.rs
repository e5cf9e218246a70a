//! Dead letters back to the queue they came from, once what made them fail is fixed.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, QueueAttributeName, SendMessageBatchRequestEntry,
};

use crate::failure;

/// What a redrive did or, on a dry run, would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// The queue the messages went (or would go) to.
    pub to: String,
    /// Messages moved; on a dry run, those waiting (as SQS counts them, approximately).
    pub messages: u64,
}

/// The queue whose failures go to `dead_letters`: the one queue whose redrive policy names it.
/// A queue that is the dead-letter target of none (the event rule's, say) needs `--to`.
pub async fn source_of(sqs: &Client, dead_letters: &str) -> Result<String, String> {
    let output = sqs
        .list_dead_letter_source_queues()
        .queue_url(dead_letters)
        .send()
        .await
        .map_err(|err| failure("ListDeadLetterSourceQueues", err))?;
    match output.queue_urls() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "no queue's redrive policy names {dead_letters}: say where its messages go with --to"
        )),
        many => Err(format!(
            "{} queues send their failures to {dead_letters}: say which with --to",
            many.len()
        )),
    }
}

/// The dead-letter queue of `queue`: the one its redrive policy names.
pub async fn dead_letters_of(sqs: &Client, queue: &str) -> Result<String, String> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|err| failure("GetQueueAttributes", err))?;
    let policy = output
        .attributes()
        .and_then(|attributes| attributes.get(&QueueAttributeName::RedrivePolicy))
        .ok_or_else(|| format!("{queue} has no redrive policy, so no dead-letter queue"))?;
    let policy: serde_json::Value =
        serde_json::from_str(policy).map_err(|err| format!("{queue}'s redrive policy: {err}"))?;
    // arn:aws:sqs:<region>:<account>:<name>
    let arn = policy["deadLetterTargetArn"].as_str().unwrap_or_default();
    let parts: Vec<&str> = arn.split(':').collect();
    let [_, _, "sqs", _, account, name] = parts.as_slice() else {
        return Err(format!("{queue}'s redrive policy names no queue: {arn:?}"));
    };
    sqs.get_queue_url()
        .queue_name(*name)
        .queue_owner_aws_account_id(*account)
        .send()
        .await
        .map_err(|err| failure("GetQueueUrl", err))?
        .queue_url
        .ok_or_else(|| format!("no URL for {arn}"))
}

/// Moves every message of `from` to `to` (by default, the queue whose failures `from` keeps).
/// Each message is sent before it is deleted, so none is lost; one whose deletion fails is
/// moved twice, which the consumers take as the repeat they already handle. Bodies move, not
/// attributes: those of a dead letter describe its failure (EventBridge's `ERROR_CODE`), and the
/// consumers read bodies only. Stops at the first receive that finds nothing.
pub async fn redrive(
    sqs: &Client,
    from: &str,
    to: Option<&str>,
    dry_run: bool,
) -> Result<Redriven, String> {
    let to = match to {
        Some(to) => to.to_owned(),
        None => source_of(sqs, from).await?,
    };
    if dry_run {
        let messages = waiting(sqs, from).await?;
        return Ok(Redriven { to, messages });
    }
    let mut moved = 0;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(from)
            .max_number_of_messages(10)
            // Long enough to send and delete a batch; a message whose move failed comes back
            // after it, for the next run.
            .visibility_timeout(120)
            // Long polling asks every server of the queue: a short poll may miss messages.
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|err| failure("ReceiveMessage", err))?;
        let messages = received.messages();
        if messages.is_empty() {
            return Ok(Redriven {
                to,
                messages: moved,
            });
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(index, message)| {
                SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(message.body().unwrap_or_default())
                    .build()
                    .map_err(|err| err.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sent = sqs
            .send_message_batch()
            .queue_url(&to)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| failure("SendMessageBatch", err))?;
        let deletions = sent
            .successful()
            .iter()
            .filter_map(|entry| {
                let message = &messages[entry.id().parse::<usize>().ok()?];
                DeleteMessageBatchRequestEntry::builder()
                    .id(entry.id())
                    .receipt_handle(message.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        let count = deletions.len() as u64;
        if !deletions.is_empty() {
            sqs.delete_message_batch()
                .queue_url(from)
                .set_entries(Some(deletions))
                .send()
                .await
                .map_err(|err| failure("DeleteMessageBatch", err))?;
        }
        moved += count;
        if let Some(refused) = sent.failed().first() {
            return Err(format!(
                "SendMessageBatch to {to} refused a message ({}: {}); {moved} moved",
                refused.code(),
                refused.message().unwrap_or_default()
            ));
        }
    }
}

/// How many messages `queue` holds, visible or being received.
pub async fn waiting(sqs: &Client, queue: &str) -> Result<u64, String> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|err| failure("GetQueueAttributes", err))?;
    let attributes = output.attributes().cloned().unwrap_or_default();
    Ok(attributes
        .values()
        .filter_map(|count| count.parse::<u64>().ok())
        .sum())
}
