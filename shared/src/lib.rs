//! Everything the upload-service functions share.
//!
//! # Layout
//!
//! | module | its job |
//! |---|---|
//! | [`domain`] | the file and its lifecycle, what it holds in storage, declared values, upload plans, events and webhooks, what the service refuses ([`domain::Refusal`]): pure, no I/O |
//! | [`contract`], [`error`] | the contract's JSON shapes (file resource, upload plan, event, usage), which the edge answers and notify and deliver publish; how an operation fails ([`error::Error`]: refused, or a dependency's [`error::Failure`]) and the contract's code for it |
//! | [`config`], [`aws`] | deployment settings read once per cold start; the SDK's configuration for Lambda |
//! | [`dynamo`] | the DynamoDB adapter: the file table's items and conditional writes, its stream's images, API keys, webhooks |
//! | [`s3`] | the S3 adapter: objects and multipart uploads, and presigned URLs apart from them |
//! | [`events`] | the EventBridge adapter: the bus events are published to, and its local provisioning |
//! | [`sqs`] | the SQS adapter: a queue to send to, and received messages handed back later |
//! | `delivery` | the webhook adapter (feature `delivery`, deliver's alone): a signed POST to a checked address |
//! | [`app`] | use cases over the adapters (start an upload job, release the storage a change freed, inspect a stored object), and what a function builds at its cold start: the clients it uses and no others ([`app::services::Environment`]) |
//! | [`http`] | the HTTP edge: the caller, request parsing, authorization prologue, rendering results and errors |
//!
//! The rows are layers, lowest first, and **a module imports only from its own layer or those
//! below** (the adapters are one layer). So the domain imports no adapter (no `aws_*`, no
//! `lambda_*`, no other module of the crate), and nothing but the edge imports the edge.
//! `scripts/check-layout`, run by `scripts/test`, enforces both.

pub mod app;
pub mod aws;
pub mod config;
pub mod contract;
#[cfg(feature = "delivery")]
pub mod delivery;
pub mod domain;
pub mod dynamo;
pub mod error;
pub mod events;
pub mod http;
pub mod s3;
pub mod sqs;
