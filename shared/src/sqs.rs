//! The SQS adapter: a queue the service sends messages to, and whose received messages it hands
//! back later than the queue's own visibility timeout would (the retries' backoff).

use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsMessage};

use crate::aws;
use crate::domain::webhook::retry_delay;
use crate::error::Failure;

#[derive(Debug, Clone)]
pub struct Queue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl Queue {
    pub fn new(sqs: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            sqs,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn send(&self, body: String) -> Result<(), Failure> {
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|err| aws::failure("SQS SendMessage", err))?;
        Ok(())
    }

    /// Has the queue hand the received message back after `delay` rather than after its
    /// visibility timeout.
    pub async fn retry_later(&self, receipt_handle: &str, delay: Duration) -> Result<(), Failure> {
        self.sqs
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(delay.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|err| aws::failure("SQS ChangeMessageVisibility", err))?;
        Ok(())
    }

    /// A received message that failed: the queue hands it back after a wait that doubles with
    /// each receive, from `base` ([`retry_delay`]; if asking for that fails, the queue's own
    /// visibility timeout applies). Answers the failure to report in the batch's response.
    pub async fn retry_with_backoff(
        &self,
        message: &SqsMessage,
        base: Duration,
    ) -> BatchItemFailure {
        let attempt = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok())
            .unwrap_or(1);
        let delay = retry_delay(base, attempt);
        tracing::warn!(message_id = ?message.message_id, attempt, retry_in_secs = delay.as_secs(), "the message will be retried");
        if let Some(receipt) = &message.receipt_handle
            && let Err(err) = self.retry_later(receipt, delay).await
        {
            tracing::warn!(error = ?err, "could not delay the retry");
        }
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = message.message_id.clone().unwrap_or_default();
        failure
    }
}
