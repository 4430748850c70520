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

wf_engine::engine_suite!(@cases fresh_store, Duration::from_secs(1), true;
    signal_wait_times_out,
    durable_sleep_parks_and_resumes,
    linear_workflow_runs_to_completion,
    fan_in_receives_all_three_parents,
    flaky_step_retries_with_backoff_within_bounds,
    terminal_failure_fails_the_run_and_redrive_completes_it,
    false_condition_skips_and_the_flow_goes_on,
    cancel_during_a_parallel_group_stops_everything,
    signal_sent_after_the_wait_starts_resumes_the_run,
    signal_sent_before_the_wait_starts_is_kept,
    every_task_dispatched_twice_commits_once,
    crash_mid_step_then_sweep_completes_exactly_once,
    resume_takes_over_a_dead_process_run_when_its_lease_lapses,
    idempotent_start_replays_or_conflicts,
    runs_finish_on_the_version_they_started_with,
    fan_out_of_one_hundred_beyond_one_transaction,
    a_failure_whose_run_end_was_lost_still_fails_the_run,
    redrive_during_the_failure_clean_up_is_not_undone,
    redrive_runs_failed_branches_created_beyond_one_commit,
    redrive_keeps_steps_that_continued_on_error,
    one_bad_run_never_stops_the_sweep,
    a_signal_sent_while_the_wait_parks_is_seen,
    state_writes_are_fenced_by_the_lease,
    a_signal_is_seen_by_every_wait_on_its_name,
    a_wake_claimed_by_a_worker_whose_clock_is_behind_completes,
    a_task_for_a_step_not_in_the_definition_fails_the_run,
    a_step_whose_timeout_does_not_fit_is_not_started,
    a_run_cancelled_before_its_first_claim_never_starts_it,
    writes_whose_answers_were_lost_are_recognised,
);
