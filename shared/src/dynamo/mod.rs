//! The DynamoDB adapter: one table holds files and API keys (`item` has the layout). Every change
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

pub use files::{FilePage, FileStore, ListCursor, Update};
pub use idempotency::{AnswerWrite, Claim, IdempotencyKeys};
pub use keys::{ApiKeys, is_project_id};
