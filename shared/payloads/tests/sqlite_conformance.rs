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

wf_store::conformance_suite!(@cases fresh_store;
    run_round_trips_with_every_field,
    creating_a_run_twice_conflicts,
    idempotency_key_is_reserved_once,
    missing_items_are_not_found,
    concurrent_transitions_exactly_one_wins,
    stale_transition_conflicts_and_finishing_sets_retention,
    claim_race_exactly_one_wins,
    claim_fails_while_lease_is_held_and_succeeds_after_it_lapses,
    claim_with_wrong_attempt_conflicts,
    commit_writes_status_output_successors_and_progress,
    fan_in_successor_is_ready_only_after_every_parent,
    duplicate_commit_conflicts_and_changes_nothing,
    retrying_and_waiting_commits_park_the_step,
    a_commit_after_a_cancel_request_conflicts_and_writes_nothing,
    a_claim_may_create_an_absent_step,
    a_guarded_create_applies_only_while_the_run_is_unchanged,
        a_large_input_survives_every_read_and_write_of_its_run,
    a_large_run_output_made_of_step_outputs_reads_back_whole,
    outputs_load_in_batches,
    state_entries_set_get_delete_has_all,
    transition_step_checks_the_from_status,
    pagination_covers_every_filter,
    time_range_queries_are_inclusive,
    invalid_cursor_and_limit_are_rejected,
    forged_cursors_are_refused,
    ttl_is_on_every_item,
    delete_removes_every_item,
    export_delete_import_round_trips,
    children_are_exported_and_deleted_without_the_run_item,
    guarded_transition_applies_only_while_the_run_is_unchanged,
    state_writes_under_a_lost_lease_conflict,
);
