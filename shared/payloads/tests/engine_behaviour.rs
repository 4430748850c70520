//! The engine's behaviour suite (every scenario a workflow author relies on: fan-in,
//! retries, signals, cancel, redrive, crash recovery, lost answers) on SQLite through
//! [`OffloadStore`] with a threshold so small that nearly every input, output, state value
//! and signal payload goes to the blob store: offloading is invisible to steps. The three
//! scenarios that pin the inner stores' 350 KB limit (a too-large input, step output and run
//! output) are left out: the wrapper lifts it to 10 MiB, and `payloads.rs` pins that limit.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed expectation must fail the test"
)]

use std::sync::Arc;
use std::time::Duration;

use wf_payloads::{MemoryBlobs, OffloadStore};
use wf_store::{Retention, SqliteStore, Store};

#[allow(clippy::unused_async, reason = "the suite's factories are async")]
async fn fresh_store() -> Arc<dyn Store> {
    let inner = SqliteStore::in_memory(Retention::default()).unwrap();
    Arc::new(OffloadStore::new(Arc::new(inner), Arc::new(MemoryBlobs::new())).with_threshold(8))
}

wf_engine::engine_suite!(@beyond_item_limits fresh_store, Duration::from_secs(1));
