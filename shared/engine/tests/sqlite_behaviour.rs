//! The engine's behaviour suite on the embedded SQLite store, under paused tokio time: an
//! hour-long signal timeout and a day-long sleep run in milliseconds.

#![allow(
    clippy::expect_used,
    reason = "test setup: a failure must fail the test"
)]

use std::sync::Arc;
use std::time::Duration;

use wf_store::{Retention, SqliteStore, Store};

#[allow(clippy::unused_async, reason = "the suite's factories are async")]
async fn fresh_store() -> Arc<dyn Store> {
    Arc::new(SqliteStore::in_memory(Retention::default()).expect("open an in-memory store"))
}

wf_engine::engine_suite!(fresh_store, Duration::from_secs(1));

/// The suite's fault-injected scenarios (seed: `WF_FAULT_SEED`).
mod under_faults {
    use super::{Duration, fresh_store};

    wf_engine::engine_fault_suite!(fresh_store, Duration::from_secs(1), true);
}
