//! Idempotency keys in the table: `IDEMPOTENCY#<project>#<sha256 of the key>` items, claimed by
//! the first request with one conditional write, answered once it is done, expiring after 24 h.
//! Each claim carries a token of its own: only the request holding the claim answers or releases
//! the key, so a late write of a request that lost its claim changes nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::aws;
use crate::domain::idempotency::{
    IdempotencyKey, KEY_LIFETIME, RUNNING_LEASE, Recorded, RecordedState,
};
use crate::domain::timestamp;
use crate::dynamo::item::{self, Item, n, s};
use crate::error::Failure;

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

    /// Claims the key of `claim` in one conditional write; `Some` is what the key holds when
    /// another request claimed it first. A claim whose lease ran out, and a key past its
    /// lifetime that DynamoDB's TTL has not deleted yet (it may take days), do not count.
    pub async fn claim(
        &self,
        claim: &Claim,
        now: OffsetDateTime,
    ) -> Result<Option<Recorded>, Failure> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(claim, now + KEY_LIFETIME)))
            .item("state", s("running"))
            .item("since", s(timestamp::format(now)))
            .condition_expression(
                "attribute_not_exists(pk) OR #ttl <= :now OR (#state = :running AND since < :lease_start)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#ttl", item::TTL)
            .expression_attribute_values(":running", s("running"))
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .expression_attribute_values(":lease_start", s(timestamp::format(now - RUNNING_LEASE)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    let held_by = failed
                        .item
                        .as_ref()
                        .and_then(|item| item::optional_string(item, "claim_token"));
                    if held_by == Some(claim.token.as_str()) {
                        // This very claim, applied by an attempt whose answer was lost.
                        return Ok(None);
                    }
                    match failed.item.as_ref().map(decode) {
                        Some(recorded) => recorded.map(Some),
                        None => Err(Failure::Internal(
                            "idempotency key refused without its item".into(),
                        )),
                    }
                }
                _ => Err(aws::failure("PutItem idempotency key", err)),
            },
        }
    }

    /// Keeps the answer of the request that holds `claim`, for its retries until `kept_until`.
    /// Changes nothing if the request lost its claim meanwhile.
    pub async fn answer(
        &self,
        claim: &Claim,
        status: u16,
        body: &str,
        kept_until: OffsetDateTime,
    ) -> Result<(), Failure> {
        let answer = self.answer_put(claim, status, body, kept_until)?;
        let result = super::put_alone(&self.client, answer).send().await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                tracing::warn!("an idempotent request lost its key before it could answer");
                Ok(())
            }
            Err(err) => Err(aws::failure("PutItem idempotency answer", err)),
        }
    }

    /// The write that keeps `status` and `body` as the answer under `claim`, for a request whose
    /// own write carries it ([`crate::dynamo::FileStore::insert_new`]): both apply, or neither.
    pub fn answer_write(
        &self,
        claim: &Claim,
        status: u16,
        body: &str,
        kept_until: OffsetDateTime,
    ) -> Result<AnswerWrite, Failure> {
        Ok(AnswerWrite {
            claim: claim.clone(),
            put: self.answer_put(claim, status, body, kept_until)?,
        })
    }

    /// The conditional write of an answer under `claim`: [`IdempotencyKeys::answer`] sends it
    /// alone, [`IdempotencyKeys::answer_write`] with the request's own write.
    fn answer_put(
        &self,
        claim: &Claim,
        status: u16,
        body: &str,
        kept_until: OffsetDateTime,
    ) -> Result<Put, Failure> {
        let mut item = item(claim, kept_until);
        item.insert("state".into(), s("answered"));
        item.insert("status".into(), n(status));
        item.insert("body".into(), s(body));
        let (names, values) = held_by(claim);
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(HELD)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|err| Failure::Internal(format!("idempotency answer: {err}")))
    }

    /// Forgets the key `claim` holds (after a 5xx: the retry runs afresh). Changes nothing if
    /// the request lost its claim meanwhile.
    pub async fn release(&self, claim: &Claim) -> Result<(), Failure> {
        let (names, values) = held_by(claim);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(item::PK, s(&claim.pk))
            .key(item::SK, s(SK))
            .condition_expression(HELD)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(DeleteItemError::is_conditional_check_failed_exception) =>
            {
                Ok(())
            }
            Err(err) => Err(aws::failure("DeleteItem idempotency key", err)),
        }
    }
}

/// A request's claim on its key, with a token of its own.
#[derive(Debug, Clone)]
pub struct Claim {
    pk: String,
    fingerprint: String,
    token: String,
    /// Set once the answer was written with the request's own write.
    answer_kept: Arc<AtomicBool>,
}

impl Claim {
    pub fn new(project_id: &str, key: &IdempotencyKey, fingerprint: &str) -> Self {
        Self {
            pk: pk(project_id, key),
            fingerprint: fingerprint.to_owned(),
            token: uuid::Uuid::new_v4().to_string(),
            answer_kept: Arc::default(),
        }
    }

    /// Whether the answer is kept already, written together with the request's own write.
    pub fn answer_kept(&self) -> bool {
        self.answer_kept.load(Ordering::Acquire)
    }
}

/// The answer of a claimed request, to go with the request's own write in one transaction.
#[derive(Debug)]
pub struct AnswerWrite {
    claim: Claim,
    put: Put,
}

impl AnswerWrite {
    pub(crate) fn put(&self) -> Put {
        self.put.clone()
    }

    /// The transaction applied: the answer is kept.
    pub(crate) fn applied(&self) {
        self.claim.answer_kept.store(true, Ordering::Release);
    }

    /// The write that takes the key back from the request while it still holds it, with the
    /// key as it was when refused. Once it applied, the transaction carrying this answer can
    /// never apply (its answer requires the key held); refused, the key holds what it holds.
    pub(crate) fn take_back(&self) -> Result<Delete, Failure> {
        let (names, values) = held_by(&self.claim);
        Delete::builder()
            .table_name(self.put.table_name())
            .key(item::PK, s(&self.claim.pk))
            .key(item::SK, s(SK))
            .condition_expression(HELD)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|err| Failure::Internal(format!("idempotency take back: {err}")))
    }

    /// Whether `key`, the key's item, holds this answer: the transaction carrying it applied.
    pub(crate) fn kept_in(&self, key: Option<&Item>) -> bool {
        key.is_some_and(|key| {
            item::optional_string(key, "state") == Some("answered")
                && item::optional_string(key, "claim_token") == Some(self.claim.token.as_str())
        })
    }
}

/// The key is still held by the claim whose token is `:token`, and not answered yet.
const HELD: &str = "#state = :running AND claim_token = :token";

/// The names and values of [`HELD`] for `claim`.
fn held_by(claim: &Claim) -> (HashMap<String, String>, Item) {
    let names = HashMap::from([("#state".to_owned(), "state".to_owned())]);
    let values = Item::from([
        (":running".to_owned(), s("running")),
        (":token".to_owned(), s(&claim.token)),
    ]);
    (names, values)
}

/// The key's item, forgotten at `expires_at`: a claim never replays past it (see
/// [`IdempotencyKeys::claim`]), and DynamoDB's TTL deletes it some time after.
fn item(claim: &Claim, expires_at: OffsetDateTime) -> Item {
    Item::from([
        (item::PK.to_owned(), s(&claim.pk)),
        (item::SK.to_owned(), s(SK)),
        ("fingerprint".to_owned(), s(&claim.fingerprint)),
        ("claim_token".to_owned(), s(&claim.token)),
        (item::TTL.to_owned(), n(expires_at.unix_timestamp())),
    ])
}

const SK: &str = "IDEMPOTENCY";

/// Keys are the client's text: hashed, they have one bounded shape in the table.
fn pk(project_id: &str, key: &IdempotencyKey) -> String {
    let hash = hex::encode(Sha256::digest(key.as_str().as_bytes()));
    format!("IDEMPOTENCY#{project_id}#{hash}")
}

fn decode(item: &Item) -> Result<Recorded, Failure> {
    let text = |name: &str| item::optional_string(item, name);
    let malformed = || Failure::Internal("malformed idempotency item".into());
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
