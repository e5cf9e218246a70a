//! The DynamoDB adapter: one table holds files, API keys, upload tokens and webhooks (`item` has the layout). Every change
//! of a file is one conditional write on its item.

mod files;
mod idempotency;
// The key schema is the adapter's own; tests that check "nothing was written" read raw items.
#[cfg(feature = "testing")]
pub mod item;
#[cfg(not(feature = "testing"))]
pub(crate) mod item;
mod keys;
mod listing;
pub mod provision;
pub mod stream;
mod tokens;
mod usage;
mod webhooks;

use crate::error::Failure;
use item::Item;

pub use files::{AssemblyClaim, FileStore, Remove, UPDATE_ATTEMPTS, Update, kept_changing};
pub use idempotency::{AnswerWrite, Claim, IdempotencyKeys};
pub use keys::{ApiKeys, KEY_PREFIX, key_hash};
pub use listing::{FilePage, ListCursor};
pub use tokens::UploadTokens;
pub use usage::Usages;
pub use webhooks::Webhooks;

/// `put`, the write a transaction would make, sent as a PutItem of its own.
fn put_alone(
    client: &aws_sdk_dynamodb::Client,
    put: aws_sdk_dynamodb::types::Put,
) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
    client
        .put_item()
        .table_name(put.table_name)
        .set_item(Some(put.item))
        .set_condition_expression(put.condition_expression)
        .set_expression_attribute_names(put.expression_attribute_names)
        .set_expression_attribute_values(put.expression_attribute_values)
        .set_return_values_on_condition_check_failure(put.return_values_on_condition_check_failure)
}

/// `delete`, the write a transaction would make, sent as a DeleteItem of its own.
fn delete_alone(
    client: &aws_sdk_dynamodb::Client,
    delete: aws_sdk_dynamodb::types::Delete,
) -> aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder {
    client
        .delete_item()
        .table_name(delete.table_name)
        .set_key(Some(delete.key))
        .set_condition_expression(delete.condition_expression)
        .set_expression_attribute_names(delete.expression_attribute_names)
        .set_expression_attribute_values(delete.expression_attribute_values)
        .set_return_values_on_condition_check_failure(
            delete.return_values_on_condition_check_failure,
        )
}

/// The code of a transaction's write whose condition failed.
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// What became of a transaction ([`transact`]).
pub(crate) enum Transacted {
    Applied,
    /// The condition of the `index`th write failed; `item`: that item as it is, when the write
    /// asked for it (a file's writes do).
    Refused {
        index: usize,
        item: Option<Item>,
    },
    /// Another transaction was writing the same items (racing changes of one project's
    /// usage): nothing written, worth sending again.
    Contended,
    /// No answer: it may have applied, or may still.
    Unknown(String),
}

/// Sends `items` as one transaction (`what` names it in errors), and says what became of it.
/// A throttled transaction wrote nothing: the SDK sent every attempt with one
/// `ClientRequestToken`, and DynamoDB answers one of those after an attempt that applied with
/// success.
pub(crate) async fn transact(
    client: &aws_sdk_dynamodb::Client,
    items: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
    what: &str,
) -> Result<Transacted, Failure> {
    use aws_sdk_dynamodb::error::DisplayErrorContext;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;

    let result = client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await;
    let err = match result {
        Ok(_) => return Ok(Transacted::Applied),
        Err(err) => err,
    };
    let reasons = match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(canceled)) => {
            canceled.cancellation_reasons().to_vec()
        }
        _ => Vec::new(),
    };
    if let Some(index) = reasons
        .iter()
        .position(|reason| reason.code() == Some(CONDITION_FAILED))
    {
        let item = reasons[index].item().cloned();
        return Ok(Transacted::Refused { index, item });
    }
    if reasons
        .iter()
        .any(|reason| reason.code() == Some("TransactionConflict"))
    {
        return Ok(Transacted::Contended);
    }
    let described = format!("TransactWriteItems {what}: {}", DisplayErrorContext(&err));
    if reasons.is_empty() && crate::aws::may_have_applied(&err) {
        Ok(Transacted::Unknown(described))
    } else if reasons.is_empty() {
        Err(crate::aws::failure(
            &format!("TransactWriteItems {what}"),
            err,
        ))
    } else {
        Err(Failure::Unavailable(described))
    }
}
