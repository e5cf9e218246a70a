//! The integration tests: one binary, a module per area. They drive the functions' handlers
//! with the sample events of `events/` against DynamoDB Local and LocalStack (started by
//! `scripts/test`), except `failures`, whose clients are answered by SDK-level mocks; `faults` puts fault proxies
//! between the functions and the servers.

mod access;
mod capacity;
mod checksums;
mod delete;
mod direct;
mod events;
mod failures;
mod faults;
mod files;
mod idempotency;
mod listing;
mod multipart;
mod operations;
mod tokens;
mod upload;
mod usage;
mod verify;
mod webhooks;
