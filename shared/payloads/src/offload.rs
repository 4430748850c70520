//! [`OffloadStore`]: a [`Store`] wrapper that keeps every payload (run input and output,
//! step outputs, state values and so signal payloads) inline while small and puts larger
//! ones in a [`PayloadBlobs`] store, leaving a small reference in the item. Readers never
//! see a reference: every read resolves them.
//!
//! Invariants:
//! 1. A blob is written before the item that references it, so an item never points at a
//!    blob not yet there. A write that then fails leaves an unreferenced blob, deleted
//!    with its run (or by the bucket's lifecycle rule).
//! 2. A payload over [`OffloadStore::max_bytes`] is refused with `TooLarge` naming it
//!    before anything is written (no blob, no item).
//! 3. Blobs are named by the run and the SHA-256 of their bytes, so a reference can only
//!    reach its own run's blobs and a blob read back is checked against its name.
//! 4. A run's blobs go with it: [`Store::delete_run`] deletes all of them;
//!    [`Store::delete_run_children`] (the archiver's clean-up) deletes those of the listed
//!    children, and those of the run image once its `ttl` has passed (the run item is gone
//!    then: only a TTL removal is archived).

use std::borrow::Cow;
use std::sync::Arc;

use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::Value;
use tracing::warn;
use wf_store::{ItemKind, RunId, Store, StoreError, WorkflowRun};

use crate::blobs::PayloadBlobs;
use crate::reference::{self, Stored};

/// Largest payload accepted, in bytes of compact JSON: 10 MiB. API Gateway's 10 MB
/// request limit is the outer bound for payloads that arrive over HTTP.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

/// Payloads larger than this go to the blob store: the inner stores' own limit (350 KB,
/// what fits in a DynamoDB item beside the other attributes).
pub const DEFAULT_OFFLOAD_THRESHOLD: usize = wf_store::MAX_PAYLOAD_BYTES;

/// How many blobs one read fetches at once.
const READ_CONCURRENCY: usize = 8;

/// The wrapper; see the module docs.
#[derive(Debug, Clone)]
pub struct OffloadStore {
    pub(crate) inner: Arc<dyn Store>,
    pub(crate) blobs: Arc<dyn PayloadBlobs>,
    threshold: usize,
    max_bytes: usize,
}

/// A payload ready to store: inline (maybe escaped), or a blob still to put.
pub(crate) enum Prepared<'a> {
    Inline(Cow<'a, Value>),
    Blob { digest: String, bytes: Vec<u8> },
}

impl Prepared<'_> {
    /// What the item stores.
    pub(crate) fn stored(&self) -> Value {
        match self {
            Self::Inline(value) => value.clone().into_owned(),
            Self::Blob { digest, bytes } => {
                reference::reference(digest, u64::try_from(bytes.len()).unwrap_or(u64::MAX))
            }
        }
    }
}

/// Whether a missing blob fails a read (`Strict`) or leaves the reference in place
/// (`Tolerant`: the archiver's gather, see [`Store::export_run_children`] on the wrapper).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    Strict,
    Tolerant,
}

impl OffloadStore {
    /// `inner` with payloads over [`DEFAULT_OFFLOAD_THRESHOLD`] in `blobs`, up to
    /// [`MAX_PAYLOAD_BYTES`].
    pub fn new(inner: Arc<dyn Store>, blobs: Arc<dyn PayloadBlobs>) -> Self {
        Self {
            inner,
            blobs,
            threshold: DEFAULT_OFFLOAD_THRESHOLD,
            max_bytes: MAX_PAYLOAD_BYTES,
        }
    }

    /// Offloads payloads over `bytes` (tests use a tiny threshold so that every payload
    /// goes to the blob store). Never above the inner store's limit.
    #[must_use]
    pub fn with_threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes.min(wf_store::MAX_PAYLOAD_BYTES);
        self
    }

    /// Refuses payloads over `bytes`.
    #[must_use]
    pub fn with_max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Payloads over this many bytes go to the blob store.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Payloads over this many bytes are refused.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// Decides how `value` is stored; `TooLarge` (naming `what`) over the limit.
    pub(crate) fn prepare<'a>(
        &self,
        what: &'static str,
        value: &'a Value,
    ) -> Result<Prepared<'a>, StoreError> {
        let bytes = encode(value)?;
        if bytes.len() > self.max_bytes {
            return Err(StoreError::TooLarge {
                what,
                size: bytes.len(),
                limit: self.max_bytes,
            });
        }
        if bytes.len() > self.threshold {
            return Ok(Prepared::Blob {
                digest: reference::digest(&bytes),
                bytes,
            });
        }
        Ok(Prepared::Inline(if reference::needs_escape(value) {
            Cow::Owned(reference::escape(value))
        } else {
            Cow::Borrowed(value)
        }))
    }

    /// Puts the blob of a prepared payload (nothing for an inline one).
    pub(crate) async fn put(
        &self,
        run_id: &RunId,
        prepared: Prepared<'_>,
    ) -> Result<(), StoreError> {
        if let Prepared::Blob { digest, bytes } = prepared {
            self.blobs.put(run_id, &digest, bytes).await?;
        }
        Ok(())
    }

    /// Prepares and puts one payload; returns what the item stores.
    pub(crate) async fn offload(
        &self,
        run_id: &RunId,
        what: &'static str,
        value: &Value,
    ) -> Result<Value, StoreError> {
        let prepared = self.prepare(what, value)?;
        let stored = prepared.stored();
        self.put(run_id, prepared).await?;
        Ok(stored)
    }

    /// Prepares several payloads (all checked before any is written), puts them, and
    /// returns what the items store, in order.
    pub(crate) async fn offload_all(
        &self,
        run_id: &RunId,
        values: &[(&'static str, &Value)],
    ) -> Result<Vec<Value>, StoreError> {
        let prepared = values
            .iter()
            .map(|(what, value)| self.prepare(what, value))
            .collect::<Result<Vec<_>, _>>()?;
        let stored = prepared.iter().map(Prepared::stored).collect();
        let writes: Vec<(String, Vec<u8>)> = prepared
            .into_iter()
            .filter_map(|p| match p {
                Prepared::Blob { digest, bytes } => Some((digest, bytes)),
                Prepared::Inline(_) => None,
            })
            .collect();
        futures::stream::iter(writes)
            .map(|(digest, bytes)| async move { self.blobs.put(run_id, &digest, bytes).await })
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(stored)
    }

    /// The value a stored payload stands for.
    pub(crate) async fn resolve(
        &self,
        run_id: &RunId,
        kind: ItemKind,
        attribute: &'static str,
        stored: Value,
        missing: Missing,
    ) -> Result<Value, StoreError> {
        let (digest, size) = match reference::decode(stored) {
            Stored::Inline(value) => return Ok(value),
            Stored::Blob { digest, bytes } => (digest, bytes),
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            kind,
            attribute: attribute.to_owned(),
            reason,
        };
        let Some(bytes) = self.blobs.get(run_id, &digest).await? else {
            if missing == Missing::Tolerant {
                warn!(run_id = %run_id, attribute, digest, "payload blob is missing; reference kept");
                return Ok(reference::reference(&digest, size));
            }
            return Err(corrupt(format!(
                "its payload blob {run_id}/{digest} is missing"
            )));
        };
        if reference::digest(&bytes) != digest {
            return Err(corrupt(format!(
                "payload blob {run_id}/{digest} does not match its digest"
            )));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(format!("payload blob {run_id}/{digest} is not JSON: {e}")))
    }

    /// Resolves an optional payload.
    pub(crate) async fn resolve_opt(
        &self,
        run_id: &RunId,
        kind: ItemKind,
        attribute: &'static str,
        stored: Option<Value>,
        missing: Missing,
    ) -> Result<Option<Value>, StoreError> {
        match stored {
            Some(stored) => Ok(Some(
                self.resolve(run_id, kind, attribute, stored, missing)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    /// A run with its input and output resolved.
    pub(crate) async fn resolve_run(
        &self,
        mut run: WorkflowRun,
        missing: Missing,
    ) -> Result<WorkflowRun, StoreError> {
        let id = run.run_id;
        let input = std::mem::take(&mut run.input);
        let (input, output) = futures::try_join!(
            self.resolve(&id, ItemKind::Run, "input", input, missing),
            self.resolve_opt(&id, ItemKind::Run, "output", run.output.take(), missing),
        )?;
        run.input = input;
        run.output = output;
        Ok(run)
    }

    /// Resolves several runs, a few blobs at a time.
    pub(crate) async fn resolve_runs(
        &self,
        runs: Vec<WorkflowRun>,
    ) -> Result<Vec<WorkflowRun>, StoreError> {
        futures::stream::iter(runs)
            .map(|run| self.resolve_run(run, Missing::Strict))
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await
    }

    /// The digest of the blob a payload read back was (or may have been) stored in: the
    /// reference's, or, for a resolved value over the threshold, its bytes' digest.
    pub(crate) fn blob_digest(&self, value: &Value) -> Option<String> {
        if let Some(digest) = reference::referenced_digest(value) {
            return Some(digest);
        }
        let bytes = encode(value).ok()?;
        (bytes.len() > self.threshold).then(|| reference::digest(&bytes))
    }

    /// Resolves items of one run, a few blobs at a time.
    pub(crate) async fn resolve_each<T, F, Fut>(
        &self,
        items: Vec<T>,
        resolve: F,
    ) -> Result<Vec<T>, StoreError>
    where
        F: Fn(T) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        futures::stream::iter(items)
            .map(resolve)
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await
    }
}

/// The compact JSON of a payload.
fn encode(value: &Value) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::InvalidInput {
        field: "payload",
        reason: format!("does not serialise: {e}"),
    })
}
