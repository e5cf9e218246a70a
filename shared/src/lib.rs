//! Everything the upload-service functions share: the file model and its DynamoDB mapping, the
//! store, the S3 side, request validation, API keys, configuration and the HTTP plumbing.

pub mod auth;
pub mod config;
pub mod error;
pub mod http;
pub mod inspect;
pub mod item;
pub mod model;
pub mod part_signer;
pub mod plan;
pub mod provision;
pub mod resource;
pub mod services;
pub mod sniff;
pub mod storage;
pub mod store;
pub mod timestamp;
pub mod upload;
pub mod validate;
