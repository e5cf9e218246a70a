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
pub mod provision;
pub mod stream;
mod tokens;
mod usage;
mod webhooks;

pub use files::{
    AssemblyClaim, FilePage, FileStore, ListCursor, Removal, UPDATE_ATTEMPTS, Update, kept_changing,
};
pub use idempotency::{AnswerWrite, Claim, IdempotencyKeys};
pub use keys::{ApiKeys, Bearer, bearer, is_project_id, key_hash};
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
