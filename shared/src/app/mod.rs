//! The use cases the functions share, over the adapters: starting an upload job and discarding
//! its storage, inspecting a stored object, deleting a file, storing a direct upload, the steps handed to verify through
//! its queue, and the services a function builds once.

pub mod delete;
pub mod direct;
pub mod inspect;
pub mod services;
pub mod upload;
pub mod verify_queue;

pub use services::Services;
