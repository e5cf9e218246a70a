//! The test kit: drives the functions' handlers like a client of the API would, against real
//! DynamoDB Local and LocalStack (started by `scripts/test`) or SDK-level mocks, with the sample
//! events of `events/` as request templates, and reads their answers as the contract's types.
//! The integration tests (`tests/api`) and the benchmarks (`bench`) are written on it.
//!
//! - `app`: [`TestApi`], a project of its own with a method per route and per verify step.
//! - `call`: one request built from a sample event ([`Call`]), and its answer ([`ApiReply`]),
//!   whose accessors assert the status and read the body as a type of `wire`.
//! - `wire`: the JSON of `docs/API.md` declared on the test side ([`Plan`], [`File`],
//!   [`ApiErrorBody`], …), and request bodies ([`declaration`], [`digests`]).
//! - `storage`: PUTs to the plan's URLs, and what the tests read behind the API's back
//!   (objects, raw items, file counts).
//! - [`delivery`]: the event path (stream → notify → bus → queue → deliver) of one test, and a
//!   webhook [`delivery::Receiver`] on loopback that checks signatures.
//! - [`faults`]: a TCP proxy that makes a real server hang, answer late, reset or cut answers.
//! - [`mocks`]: the services over mocked SDK clients, for failures the servers cannot produce.
//! - [`operations`]: the AWS operations each function performs, for `scripts/check-iam`.
//! - [`capacity`]: the write units each write puts on each partition of the table and its
//!   indexes, for the capacity model (what one project sustains before a key saturates).

mod app;
mod call;
pub mod capacity;
pub mod delivery;
pub mod event_source;
pub mod faults;
pub mod mocks;
pub mod operations;
mod storage;
mod wire;

pub use app::{
    Dependencies, NO_QUEUE, Pumped, TestApi, config, queue_of_its_own, sdk_config, verify_queue_url,
};
pub use call::{ApiReply, Call, Event, FormBody, dispatch, sample_stream_record};
pub use serde_json;
pub use wire::{
    ApiErrorBody, ErrorDetail, ErrorInfo, File, FilePage, MintedToken, Part, Plan, SignedParts,
    Status, StoredParts, declaration, digests,
};
