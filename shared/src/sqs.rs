//! The SQS adapter: a queue the service sends messages to, and whose received messages it hands
//! back later than the queue's own visibility timeout would (the retries' backoff).

use std::time::Duration;

use crate::aws;
use crate::domain::ApiError;

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

    pub async fn send(&self, body: String) -> Result<(), ApiError> {
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
    pub async fn retry_later(&self, receipt_handle: &str, delay: Duration) -> Result<(), ApiError> {
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
}
