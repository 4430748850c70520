//! The engine's behaviour suite: scenarios that take any store, so the same tests run on
//! SQLite (under paused tokio time, where a day of sleeping costs nothing) and on DynamoDB
//! Local (in real time, with durations scaled down). [`engine_suite!`](crate::engine_suite)
//! instantiates them. Behind the `test-util` feature.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::missing_panics_doc,
    clippy::too_many_lines,
    clippy::type_complexity,
    missing_docs,
    reason = "test scenarios: a failed expectation must panic"
)]

mod bed;
mod chaos;
mod failures;
mod fault_bed;
mod faults;
mod interleave;
mod lost_answers;
mod registry;
mod scenarios;
mod under_faults;

pub use bed::{Bed, Recorder};
pub use chaos::{Chaos, ChaosCounts, ChaosRates};
pub use failures::*;
pub use fault_bed::{FaultBed, LOST_ANSWER_GAPS};
pub use faults::{DEFAULT_FAULT_SEED, Fault, FaultRates, FaultyStore, fault_seed, scenario_seed};
pub use interleave::{Call, Gate, Interleave};
pub use lost_answers::*;
use registry::registry;
pub use scenarios::*;
pub use under_faults::*;

/// Instantiates every scenario for a store factory under paused tokio time (for stores
/// that do no network I/O). `$unit` scales all durations.
#[macro_export]
macro_rules! engine_suite {
    ($factory:path, $unit:expr) => {
        $crate::engine_suite!(@long $factory, $unit);
        $crate::engine_suite_realtime!(@paused $factory, $unit, true);
    };
    // Every scenario but the three that pin the stores' own 350 KB payload limit (a too
    // large input, step output and run output), for a wrapper that lifts it (the payload
    // offloader). The lists live here alone, so a new scenario reaches every store.
    (@beyond_item_limits $factory:path, $unit:expr) => {
        $crate::engine_suite!(@long $factory, $unit);
        $crate::engine_suite_realtime!(@beyond_item_limits $factory, $unit, true);
    };
    (@long $factory:path, $unit:expr) => {
        $crate::engine_suite!(@cases $factory, $unit, true;
            signal_wait_times_out,
            durable_sleep_parks_and_resumes
        );
    };
    (@cases $factory:path, $unit:expr, $paused:literal; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "current_thread", start_paused = $paused)]
            async fn $case() {
                let store = $factory().await;
                $crate::testing::$case(store, $unit).await;
            }
        )*
    };
}

/// Instantiates the scenarios that finish in a few seconds of real time (everything but
/// the hour-long signal timeout and the day-long sleep), for stores reached over the
/// network, such as DynamoDB Local.
#[macro_export]
macro_rules! engine_suite_realtime {
    ($factory:path, $unit:expr) => {
        $crate::engine_suite_realtime!(@paused $factory, $unit, false);
    };
    (@paused $factory:path, $unit:expr, $paused:literal) => {
        $crate::engine_suite_realtime!(@beyond_item_limits $factory, $unit, $paused);
        $crate::engine_suite!(@cases $factory, $unit, $paused;
            bad_inputs_are_rejected_and_nothing_is_written,
            a_run_output_too_large_fails_the_run,
            an_oversized_output_of_a_step_that_continues_on_error_flows_on
        );
    };
    (@beyond_item_limits $factory:path, $unit:expr, $paused:literal) => {
        $crate::engine_suite!(@cases $factory, $unit, $paused;
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
            writes_whose_answers_were_lost_are_recognised
        );
    };
}
