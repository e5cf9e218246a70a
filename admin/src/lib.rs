//! What `upload-admin`'s operator commands do, apart from its command line (`main.rs`), so that
//! the tests drive them against the local stack.
//!
//! - [`redrive`]: dead letters back to the queue they came from.
//! - [`stuck`]: files that wait for a verdict nobody is working on, and old multipart uploads;
//!   [`stuck::reverify`] hands a file's check to verify again.
//! - [`inspect`]: everything the service holds of one file.
//! - [`stream`]: the table's stream as Lambda reads it, and [`stream::replay`] of the records
//!   notify could not publish.

pub mod inspect;
pub mod redrive;
pub mod stream;
pub mod stuck;

/// An SDK error with its cause chain, for a message that names what failed.
fn failure(operation: &str, err: impl std::error::Error) -> String {
    let mut message = format!("{operation}: {err}");
    let mut cause = err.source();
    while let Some(err) = cause {
        message.push_str(&format!(": {err}"));
        cause = err.source();
    }
    message
}

/// What an operator reads of a failed call of the service's own code: a dependency's failure
/// says which call and why; a refusal, what was refused.
pub fn describe(err: impl Into<shared::error::Error>) -> String {
    match err.into() {
        shared::error::Error::Failed(failure) => failure.text().to_owned(),
        refused => format!("{refused}: {:?}", refused.details()),
    }
}
