//! Payloads of any size. [`OffloadStore`] wraps any [`wf_store::Store`]: a run's input and
//! output, step outputs and state values (signal payloads among them) stay inline in their
//! item while small; over the threshold (350 KB, the inner stores' limit) they go to a
//! [`PayloadBlobs`] store and the item keeps a small reference. Every read resolves
//! references, so steps, the API and the archive see the values themselves. Payloads are
//! accepted up to [`MAX_PAYLOAD_BYTES`] (10 MiB); above, `TooLarge` and nothing is written.
//!
//! Blob stores: [`S3Blobs`] (the deployment: `PAYLOAD_BUCKET`), [`FsBlobs`] (the CLI's
//! embedded store, beside its SQLite file) and [`MemoryBlobs`] (tests).
//!
//! Invariants: see [`OffloadStore`]'s module; in short, a blob is written before any item
//! references it, a reference only reaches its own run's blobs, blobs are checked against
//! their digest when read, and a run's blobs are deleted with it (and archived with it, as
//! values: the archiver reads through the wrapper).

mod blobs;
mod fs;
mod offload;
mod reference;
mod s3;
mod store_impl;
#[cfg(feature = "test-util")]
pub mod testing;

pub use blobs::{MemoryBlobs, PayloadBlobs};
pub use fs::FsBlobs;
pub use offload::{DEFAULT_OFFLOAD_THRESHOLD, MAX_PAYLOAD_BYTES, OffloadStore};
pub use s3::{DEFAULT_PAYLOAD_PREFIX, S3Blobs};
