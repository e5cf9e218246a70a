//! Idempotency keys in the table: `IDEMPOTENCY#<project>#<sha256 of the key>` items, claimed by
//! the first request with one conditional write, answered once it is done, expiring after 24 h.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::aws;
use crate::domain::error::ApiError;
use crate::domain::idempotency::{
    IdempotencyKey, KEY_LIFETIME, RUNNING_LEASE, Recorded, RecordedState,
};
use crate::domain::timestamp;
use crate::dynamo::item::{self, Item, n, s};

#[derive(Clone, Debug)]
pub struct IdempotencyKeys {
    client: Client,
    table: String,
}

impl IdempotencyKeys {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Claims `key` for a request with `fingerprint`, in one conditional write; `Some` is what
    /// the key already holds, when another request claimed it first (one whose lease ran out
    /// does not count).
    pub async fn claim(
        &self,
        project_id: &str,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Recorded>, ApiError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.item(project_id, key, fingerprint, now)))
            .item("state", s("running"))
            .item("since", s(timestamp::format(now)))
            .condition_expression(
                "attribute_not_exists(pk) OR (#state = :running AND since < :lease_start)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":running", s("running"))
            .expression_attribute_values(":lease_start", s(timestamp::format(now - RUNNING_LEASE)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    match failed.item.as_ref().map(decode) {
                        Some(recorded) => recorded.map(Some),
                        None => Err(ApiError::Internal(
                            "idempotency key refused without its item".into(),
                        )),
                    }
                }
                _ => Err(aws::failure("PutItem idempotency key", err)),
            },
        }
    }

    /// Keeps the answer of the request that claimed `key`, for its retries.
    pub async fn answer(
        &self,
        project_id: &str,
        key: &IdempotencyKey,
        fingerprint: &str,
        status: u16,
        body: &str,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.item(project_id, key, fingerprint, now)))
            .item("state", s("answered"))
            .item("status", n(status))
            .item("body", s(body))
            .send()
            .await
            .map_err(|err| aws::failure("PutItem idempotency answer", err))?;
        Ok(())
    }

    /// Forgets `key` (after a 5xx: the retry runs afresh).
    pub async fn release(&self, project_id: &str, key: &IdempotencyKey) -> Result<(), ApiError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(item::PK, s(pk(project_id, key)))
            .key(item::SK, s(SK))
            .send()
            .await
            .map_err(|err| aws::failure("DeleteItem idempotency key", err))?;
        Ok(())
    }

    fn item(
        &self,
        project_id: &str,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: OffsetDateTime,
    ) -> Item {
        Item::from([
            (item::PK.to_owned(), s(pk(project_id, key))),
            (item::SK.to_owned(), s(SK)),
            ("fingerprint".to_owned(), s(fingerprint)),
            (
                item::TTL.to_owned(),
                n((now + KEY_LIFETIME).unix_timestamp()),
            ),
        ])
    }
}

const SK: &str = "IDEMPOTENCY";

/// Keys are the client's text: hashed, they have one bounded shape in the table.
fn pk(project_id: &str, key: &IdempotencyKey) -> String {
    let hash = hex::encode(Sha256::digest(key.as_str().as_bytes()));
    format!("IDEMPOTENCY#{project_id}#{hash}")
}

fn decode(item: &Item) -> Result<Recorded, ApiError> {
    let text = |name: &str| item::optional_string(item, name);
    let malformed = || ApiError::Internal("malformed idempotency item".into());
    let state = match text("state") {
        Some("running") => RecordedState::Running {
            since: text("since")
                .and_then(timestamp::parse)
                .ok_or_else(malformed)?,
        },
        Some("answered") => RecordedState::Answered {
            status: match item.get("status") {
                Some(AttributeValue::N(status)) => status.parse().map_err(|_| malformed())?,
                _ => return Err(malformed()),
            },
            body: text("body").ok_or_else(malformed)?.to_owned(),
        },
        _ => return Err(malformed()),
    };
    Ok(Recorded {
        fingerprint: text("fingerprint").ok_or_else(malformed)?.to_owned(),
        state,
    })
}
