//! Issue 11, deliverable 4: every conditional write the engine makes recognises its own
//! earlier success when its answer was lost. For each write and each way of losing its
//! answer (a timeout after the write, or the SDK's retry meeting the write), a set of runs
//! goes through with that fault alone, the queue losing nothing: nothing may wait for the
//! sweep, every step commits once and every end is reported once. Known gaps are listed
//! in [`LOST_ANSWER_GAPS`] and passed over until fixed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use wf_store::{RunStatus, StepStatus, Store};

use super::under_faults::workflows;
use super::{ChaosRates, Fault, FaultBed, FaultRates, LOST_ANSWER_GAPS};

/// The writes of the engine's paths (start, claim, commit, materialise, wake, signal,
/// cancel, finish, state).
const WRITES: &[&str] = &[
    "create_run",
    "transition_run",
    "create_step",
    "claim_step",
    "transition_step",
    "commit_step",
    "set_state",
    "set_state_leased",
];

pub async fn no_lost_answer_waits_for_the_sweep(store: Arc<dyn Store>, unit: Duration) {
    let mut found = Vec::new();
    for call in WRITES {
        for mode in [Fault::LostThenTimeout, Fault::LostThenRetried] {
            if LOST_ANSWER_GAPS.contains(&(*call, mode)) {
                continue;
            }
            let name = format!("{call} {mode:?}");
            let problems = probe(Arc::clone(&store), unit, &name, call, mode).await;
            if !problems.is_empty() {
                found.push(format!("{name}: {}", problems.join("; ")));
            }
        }
    }
    assert!(
        found.is_empty(),
        "lost answers not recognised:\n{}",
        found.join("\n")
    );
}

/// Runs a linear run, a fan-in, a failing run and a signalled wait with one kind of lost
/// answer on `call`; returns what went wrong.
async fn probe(
    store: Arc<dyn Store>,
    unit: Duration,
    name: &str,
    call: &'static str,
    mode: Fault,
) -> Vec<String> {
    let mut bed = FaultBed::with_rates(
        store,
        unit,
        name,
        FaultRates::lost_answers(call, mode, 0.5),
        ChaosRates::none(),
        |recorder| workflows(recorder, unit),
    );
    let linear = bed.start("faulty-linear", json!(1)).await;
    let fan_in = bed.start("faulty-fan-in", json!(1)).await;
    let payment = bed.start("faulty-payment", json!({ "id": "o" })).await;
    let approval = bed.start("faulty-approval", json!({})).await;
    bed.until_step(&approval, "await-approval", StepStatus::Waiting)
        .await;
    let executor = Arc::clone(&bed.bed.executor);
    let payload = json!("ok");
    bed.retrying(|| executor.signal(&approval, "approved", &payload))
        .await
        .unwrap();
    for run_id in [linear, fan_in, payment, approval] {
        bed.finish(&run_id).await;
    }
    bed.settle().await;
    let mut problems = Vec::new();
    if bed.swept() > 0 {
        problems.push(format!("the sweep had to dispatch {} task(s)", bed.swept()));
    }
    let expected = [
        (
            linear,
            RunStatus::Completed,
            &["add-one", "double", "minus-three"][..],
        ),
        (
            fan_in,
            RunStatus::Completed,
            &["split", "p1", "p2", "p3", "join"][..],
        ),
        (payment, RunStatus::Failed, &["validate", "charge"][..]),
        (
            approval,
            RunStatus::Completed,
            &["await-approval", "notify"][..],
        ),
    ];
    for (run_id, status, steps) in expected {
        let run = bed.store().get_run(&run_id).await.unwrap();
        if run.status != status {
            problems.push(format!("run {run_id} ended {}, not {status}", run.status));
        }
        problems.extend(bed.commit_problems(&run_id, steps, 1));
    }
    problems
}
