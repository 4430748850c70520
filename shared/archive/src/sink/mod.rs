//! The [`ArchiveSink`] port: where archive objects go. Backends: [`S3ArchiveSink`] (the
//! deployment) and [`FsArchiveSink`] (a local folder, for the CLI and tests).
//!
//! Contract:
//! 1. [`ArchiveSink::put`] makes the object visible whole or not at all: a failed upload
//!    leaves no partial object (a multipart upload is aborted, a temporary file removed).
//! 2. [`ArchiveSink::head`] returns the metadata written with the object, so a repeated
//!    archive of the same run can be recognised without reading the body.
//! 3. Keys are `/`-separated relative paths; they never start with `/` or contain `..`.

mod fs;
mod s3;

use std::fmt::Debug;

use async_trait::async_trait;

pub use fs::FsArchiveSink;
pub use s3::{MIN_PART_SIZE, S3ArchiveSink};

use crate::error::ArchiveError;
use crate::format::{ArchiveEncoder, ObjectInfo};

/// Storage for archive objects.
#[async_trait]
pub trait ArchiveSink: Send + Sync + Debug {
    /// The metadata of the object at `key`; `None` if there is none.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ArchiveError>;

    /// Writes the encoder's chunks as the object at `key`, replacing any object there,
    /// with `info` as its metadata. Returns the object's size in bytes.
    async fn put(
        &self,
        key: &str,
        info: &ObjectInfo,
        body: &mut ArchiveEncoder<'_>,
    ) -> Result<u64, ArchiveError>;

    /// The bytes of the object at `key`; `None` if there is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ArchiveError>;

    /// The names of the folders directly under `prefix` (empty or ending in `/`), without
    /// the prefix and without a trailing `/`.
    async fn list_folders(&self, prefix: &str) -> Result<Vec<String>, ArchiveError>;
}

/// Metadata names on archive objects (S3 user metadata, `x-amz-meta-*`).
pub(crate) mod meta {
    pub(crate) const SCHEMA_VERSION: &str = "wf-schema-version";
    pub(crate) const RUN_VERSION: &str = "wf-run-version";
    pub(crate) const ITEMS: &str = "wf-items";
}
