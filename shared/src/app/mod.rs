//! The use cases the functions share, over the adapters: starting an upload job, releasing the
//! storage a change freed, inspecting a stored object, deleting a file, storing a direct
//! upload, the steps handed to verify through its queue, and what each function builds at its
//! cold start (`services`).

pub mod complete;
pub mod delete;
pub mod direct;
pub mod inspect;
pub mod release;
pub mod services;
pub mod upload;
pub mod verify;
pub mod verify_queue;

pub use services::Services;
