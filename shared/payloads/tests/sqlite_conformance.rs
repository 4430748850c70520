//! The store conformance suite through [`OffloadStore`] on SQLite, with a threshold so
//! small that nearly every payload (every input, most outputs and state values) goes to
//! the blob store: the wrapper must be invisible to every case. The suite's own
//! oversized-payload case pins the inner stores' 350 KB limit, which the wrapper lifts;
//! `payloads.rs` pins the wrapper's own limit instead.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed expectation must fail the test"
)]

use std::sync::Arc;

use wf_payloads::{MemoryBlobs, OffloadStore};
use wf_store::{Retention, SqliteStore};

#[allow(clippy::unused_async, reason = "the suite's factories are async")]
async fn fresh_store() -> Box<OffloadStore> {
    let inner = SqliteStore::in_memory(Retention::default()).unwrap();
    Box::new(OffloadStore::new(Arc::new(inner), Arc::new(MemoryBlobs::new())).with_threshold(8))
}

wf_store::conformance_suite!(@beyond_item_limits fresh_store);
