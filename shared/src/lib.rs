//! Everything the upload-service functions share.
//!
//! # Layout
//!
//! | module | its job |
//! |---|---|
//! | [`domain`] | the file and its lifecycle, declared values, upload plans, events and webhooks, the contract's errors: pure, no I/O |
//! | [`app`] | use cases over the adapters (start an upload job, inspect a stored object), and what a function builds at its cold start: the clients it uses and no others ([`app::services::Environment`]) |
//! | [`http`] | the HTTP edge: request parsing, authorization prologue, the contract's JSON shapes, responses |
//! | [`dynamo`] | the DynamoDB adapter: the file table's items and conditional writes, its stream's images, API keys, webhooks |
//! | [`s3`] | the S3 adapter: objects and multipart uploads, and presigned URLs apart from them |
//! | [`events`] | the EventBridge adapter: the bus events are published to, and its local provisioning |
//! | [`config`] | deployment settings read once per cold start |
//!
//! The one rule: **the domain imports no adapter** (no `aws_*`, no `lambda_*`, nothing from
//! `app`, `http`, `dynamo` or `s3`). Adapters and the edge depend on the domain, never the
//! reverse. `scripts/check-layout`, run by `scripts/test`, enforces it.

pub mod app;
pub mod aws;
pub mod config;
pub mod domain;
pub mod dynamo;
pub mod events;
pub mod http;
pub mod s3;
