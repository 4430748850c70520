//! Storage for the workflow runner: the domain model, the [`Store`] port, and its two
//! backends, DynamoDB (the seed's single-table design) and SQLite (embedded).
//!
//! Invariants every backend keeps (the conformance suite checks each one):
//! 1. Every state change is a conditional write; a lost condition writes nothing and
//!    returns [`StoreError::Conflict`].
//! 2. [`Store::commit_step`] is all-or-nothing.
//! 3. Every item carries a `ttl`, so nothing outlives its run for ever.
//! 4. Run listings are newest first, with opaque cursors, for every filter. A cursor is
//!    signed under the store's [`CursorKey`] and bound to its query's filters: an altered,
//!    truncated, foreign or other-query cursor is refused with `InvalidCursor`.

mod cursor;
mod dynamodb;
mod error;
mod ids;
mod keys;
mod model;
mod records;
mod retention;
mod sqlite;
mod store;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use cursor::{Cursor, CursorKey};
pub use dynamodb::{
    BilledTotals, CapacityTotals, DynamoDbStore, LazyClient, load_aws_config,
    run_from_stream_image, run_id_from_sort_key,
};
pub use error::{ItemKind, StoreError};
pub use ids::{MAX_ID_LEN, RunId, StateKey, StepId, WorkflowId};
pub use keys::LISTING_ATTRIBUTES;
pub use model::{
    ErrorInfo, Lease, RunRecord, RunStatus, StateEntry, StepExecution, StepOutput, StepStatus,
    WorkflowRun, now_millis, to_millis,
};
pub use records::MAX_PAYLOAD_BYTES;
pub use retention::{MAX_RUN_LIFETIME_DAYS_VAR, RETENTION_DAYS_VAR, RetentionConfigError};
pub use sqlite::SqliteStore;

pub use store::{
    CommitReceipt, LeaseFence, MAX_PAGE_SIZE, MAX_SUCCESSORS_PER_COMMIT, NewRun, NewStep, Page,
    Park, Retention, RunGuard, RunQuery, RunTransition, StepClaim, StepCommit, StepOutcome,
    StepTransition, Store, Successor, combined_output,
};

#[cfg(test)]
mod sqlite_conformance {
    #[expect(clippy::unused_async, reason = "the suite's factories are async")]
    async fn fresh_store() -> Box<dyn crate::Store> {
        Box::new(crate::SqliteStore::in_memory(crate::Retention::default()).unwrap())
    }

    crate::conformance_suite!(fresh_store);
}
