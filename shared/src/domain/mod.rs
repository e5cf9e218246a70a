//! The domain: what a file is and how it changes, the values a client declares, the upload
//! plan, and what the service refuses ([`Refusal`]). Pure code: no AWS SDK, no Lambda, no I/O,
//! so that every rule here is tested without servers. (`scripts/check-layout` fails the build if
//! that changes.)

pub mod error;
pub mod event;
pub mod file;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod idempotency;
pub mod ids;
pub mod parts;
pub mod plan;
pub mod request;
pub mod sniff;
pub mod storage;
pub mod timestamp;
pub mod token;
pub mod usage;
pub mod values;
pub mod webhook;

pub use error::{Detail, Refusal};
pub use file::{
    Checkpoint, FileRecord, FileStatus, RejectionReason, TransitionRefusal, UploadJob, Verdict,
    VerifiedVersion,
};
pub use ids::{FileId, JobId};
pub use request::ContentDeclaration;
