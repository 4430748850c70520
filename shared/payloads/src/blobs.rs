//! The [`PayloadBlobs`] port: where payloads too large for an item go. Backends:
//! [`crate::S3Blobs`] (the deployment), [`crate::FsBlobs`] (a folder beside the CLI's
//! SQLite file) and [`MemoryBlobs`] (tests).
//!
//! Contract:
//! 1. Blobs are scoped to a run: blob `digest` of run `r` is independent of blob `digest`
//!    of any other run, and [`PayloadBlobs::delete_run`] removes every blob of one run.
//! 2. A blob's content is fixed by its digest (the caller names blobs by the SHA-256 of
//!    their bytes), so putting it twice is harmless and concurrent puts agree.
//! 3. [`PayloadBlobs::put`] makes the blob visible whole or not at all.
//! 4. Deleting a blob that is not there is not an error.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Mutex;

use async_trait::async_trait;
use wf_store::{RunId, StoreError};

/// Storage for offloaded payloads.
#[async_trait]
pub trait PayloadBlobs: Send + Sync + Debug {
    /// Stores `bytes` as blob `digest` of `run_id`.
    async fn put(&self, run_id: &RunId, digest: &str, bytes: Vec<u8>) -> Result<(), StoreError>;

    /// Blob `digest` of `run_id`; `None` if it is not there.
    async fn get(&self, run_id: &RunId, digest: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes these blobs of `run_id`.
    async fn delete(&self, run_id: &RunId, digests: &[String]) -> Result<(), StoreError>;

    /// Deletes every blob of `run_id`; returns how many there were.
    async fn delete_run(&self, run_id: &RunId) -> Result<usize, StoreError>;
}

/// A failed blob call as a store error.
pub(crate) fn blob_error(
    operation: &str,
    key: &str,
    retryable: bool,
    source: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Backend {
        message: format!("payload blob store: {operation} {key}"),
        retryable,
        source: Some(Box::new(source)),
    }
}

/// Blobs in memory, for tests and throw-away stores.
#[derive(Debug, Default)]
pub struct MemoryBlobs {
    blobs: Mutex<BTreeMap<(RunId, String), Vec<u8>>>,
}

impl MemoryBlobs {
    /// An empty blob store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many blobs `run_id` has.
    pub fn count(&self, run_id: &RunId) -> usize {
        self.lock().keys().filter(|(run, _)| run == run_id).count()
    }

    /// How many blobs there are in all.
    pub fn total(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(RunId, String), Vec<u8>>> {
        // A panic while holding the lock leaves the map whole (every change is one call).
        self.blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl PayloadBlobs for MemoryBlobs {
    async fn put(&self, run_id: &RunId, digest: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.lock().insert((*run_id, digest.to_owned()), bytes);
        Ok(())
    }

    async fn get(&self, run_id: &RunId, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(&(*run_id, digest.to_owned())).cloned())
    }

    async fn delete(&self, run_id: &RunId, digests: &[String]) -> Result<(), StoreError> {
        let mut blobs = self.lock();
        for digest in digests {
            blobs.remove(&(*run_id, digest.clone()));
        }
        Ok(())
    }

    async fn delete_run(&self, run_id: &RunId) -> Result<usize, StoreError> {
        let mut blobs = self.lock();
        let before = blobs.len();
        blobs.retain(|(run, _), _| run != run_id);
        Ok(before - blobs.len())
    }
}
