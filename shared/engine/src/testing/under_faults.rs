//! The behaviour suite under faults: the scenarios whose claims must hold whatever the
//! store and the queue do (throttles, 5xx before and after the write, lost, duplicated and
//! late tasks), run through a [`FaultBed`]. User code runs at least once, so these assert
//! what is committed (end status, outputs, one `StepFinished` per step, one `RunFinished`
//! per end, counts), never how often a body ran. Durations scale by `unit`; each step's
//! timeout is short so a lapsed lease costs little on a store reached in real time.
//! [`engine_fault_suite!`](crate::engine_fault_suite) instantiates them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use wf_store::{RunStatus, StepId, StepStatus, Store};

use super::{FaultBed, Recorder};
use crate::{
    EngineError, RetryPolicy, StepContext, StepError, StepSpec, Workflow, sleep, step,
    wait_for_signal,
};

/// Instantiates every fault scenario for a store factory; `$paused` is whether tokio time
/// is paused (embedded stores) or real (stores reached over the network).
#[macro_export]
macro_rules! engine_fault_suite {
    ($factory:path, $unit:expr, $paused:literal) => {
        $crate::engine_suite!(@cases $factory, $unit, $paused;
            linear_runs_complete_under_faults,
            fan_in_joins_every_parent_under_faults,
            retries_reach_their_attempt_under_faults,
            a_failed_run_is_redriven_under_faults,
            conditions_skip_under_faults,
            signals_resume_waits_under_faults,
            sleeps_resume_under_faults,
            cancel_stops_everything_under_faults,
            a_fan_out_of_one_hundred_commits_once_under_faults,
            no_lost_answer_waits_for_the_sweep
        );
    };
}

/// A step body that passes its input on.
async fn pass(_ctx: StepContext, input: Value) -> Result<Value, StepError> {
    Ok(input)
}

/// A step with a timeout that fits the unit and room for retries of transient errors
/// (a body that touches the store meets the injected faults too).
fn quick(spec: impl Into<StepSpec>, unit: Duration) -> StepSpec {
    spec.into()
        .timeout(unit * 20)
        .retry(RetryPolicy::default().max_attempts(8).initial_delay(unit))
}

/// The workflows of the fault scenarios.
pub(super) fn workflows(recorder: &Arc<Recorder>, unit: Duration) -> Vec<Workflow> {
    let r = Arc::clone(recorder);
    let slow = move |name: &'static str| {
        let r = Arc::clone(&r);
        move |ctx: StepContext, _input: Value| {
            let r = Arc::clone(&r);
            async move {
                r.call(name);
                // Runs until the run is cancelled, so the cancel always lands while the
                // group runs (its timeout is far beyond the time the cancel takes: an
                // attempt ending at its lease's edge would be the sweep's to recover); a
                // checkpoint whose read fails goes on to the next one.
                loop {
                    tokio::time::sleep(unit / 4).await;
                    if ctx.is_cancelled().await == Ok(true) {
                        return Err::<Value, StepError>(StepError::cancelled());
                    }
                }
            }
        }
    };
    let mut wide = Workflow::builder("faulty-wide", "1").then(quick(step("root", pass), unit));
    wide = wide.parallel((0..100).map(|i| quick(step(&format!("branch-{i:03}"), pass), unit)));
    let built = [
        Workflow::builder("faulty-linear", "1")
            .then(quick(
                step("add-one", |_c: StepContext, x: i64| async move {
                    Ok::<i64, StepError>(x + 1)
                }),
                unit,
            ))
            .then(quick(
                step("double", |ctx: StepContext, x: i64| async move {
                    ctx.set_state("doubled", &(x * 2)).await?;
                    Ok::<i64, StepError>(x * 2)
                }),
                unit,
            ))
            .then(quick(
                step("minus-three", |_c: StepContext, x: i64| async move {
                    Ok::<i64, StepError>(x - 3)
                }),
                unit,
            )),
        Workflow::builder("faulty-fan-in", "1")
            .then(quick(step("split", pass), unit))
            .parallel([1_i64, 2, 3].map(|k| {
                quick(
                    step(
                        &format!("p{k}"),
                        move |_c: StepContext, x: i64| async move { Ok::<i64, StepError>(x + k) },
                    ),
                    unit,
                )
            }))
            .then(quick(
                step(
                    "join",
                    |_c: StepContext, parts: BTreeMap<String, i64>| async move {
                        Ok::<Value, StepError>(
                            json!({ "parts": parts.len(), "sum": parts.values().sum::<i64>() }),
                        )
                    },
                ),
                unit,
            )),
        Workflow::builder("faulty-flaky", "1").then(quick(
            step("flaky", |ctx: StepContext, input: Value| async move {
                if ctx.attempt() < 3 {
                    return Err(StepError::retryable("unavailable", "try again"));
                }
                Ok(input)
            }),
            unit,
        )),
        // Declined on its first attempt (whatever runs it), accepted on the redrive's.
        Workflow::builder("faulty-payment", "1")
            .then(quick(step("validate", pass), unit))
            .then(quick(
                step("charge", |ctx: StepContext, input: Value| async move {
                    if ctx.attempt() == 1 {
                        return Err(StepError::terminal("card_declined", "declined"));
                    }
                    Ok(input)
                }),
                unit,
            ))
            .then(quick(step("ship", pass), unit)),
        Workflow::builder("faulty-gift", "1")
            .then(quick(step("validate", pass), unit))
            .then(quick(
                step("gift-wrap", pass).when(|o: &Value| o["gift"] == json!(true)),
                unit,
            ))
            .then(quick(
                step("ship", |_c: StepContext, o: Value| async move {
                    Ok::<String, StepError>(format!("shipped {}", o["id"]))
                }),
                unit,
            )),
        Workflow::builder("faulty-approval", "1")
            .then(wait_for_signal("await-approval", "approved", unit * 3600))
            .then(quick(step("notify", pass), unit)),
        Workflow::builder("faulty-nap", "1")
            .then(sleep("nap", unit * 30))
            .then(quick(step("notify", pass), unit)),
        Workflow::builder("faulty-slow", "1")
            .then(quick(step("start", pass), unit))
            .parallel([
                quick(step("slow-a", slow("slow-a")), unit).timeout(unit * 100),
                quick(step("slow-b", slow("slow-b")), unit).timeout(unit * 100),
            ])
            .then(quick(step("after", pass), unit)),
        wide.then(quick(
            step(
                "total",
                |_c: StepContext, parts: BTreeMap<String, Value>| async move {
                    Ok::<usize, StepError>(parts.len())
                },
            ),
            unit,
        )),
    ];
    built.into_iter().map(|w| w.build().unwrap()).collect()
}

fn bed(store: Arc<dyn Store>, unit: Duration, name: &str) -> FaultBed {
    FaultBed::new(store, unit, name, |recorder| workflows(recorder, unit))
}

pub async fn linear_runs_complete_under_faults(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = bed(store, unit, "linear");
    let mut runs = Vec::new();
    for x in 0..8_i64 {
        runs.push((x, bed.start("faulty-linear", json!(x)).await));
    }
    for (_, run_id) in &runs {
        bed.finish(run_id).await;
    }
    bed.settle().await;
    bed.report("linear");
    assert!(bed.faults.injected_total() > 0, "faults were injected");
    for (x, run_id) in &runs {
        let run = bed.assert_run(run_id, RunStatus::Completed).await;
        assert_eq!(run.output, Some(json!((x + 1) * 2 - 3)));
        assert_eq!((run.completed_steps, run.total_steps), (3, 3));
        bed.assert_committed_once(run_id, &["add-one", "double", "minus-three"], 1);
        let state = bed.store().all_state(run_id).await.unwrap();
        assert_eq!(state.len(), 1, "one state entry");
        assert_eq!(state[0].value, json!((x + 1) * 2));
    }
}

pub async fn fan_in_joins_every_parent_under_faults(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = bed(store, unit, "fan-in");
    let mut runs = Vec::new();
    for x in 0..4_i64 {
        runs.push((x, bed.start("faulty-fan-in", json!(x)).await));
    }
    for (_, run_id) in &runs {
        bed.finish(run_id).await;
    }
    bed.settle().await;
    bed.report("fan-in");
    for (x, run_id) in &runs {
        let run = bed.assert_run(run_id, RunStatus::Completed).await;
        assert_eq!(run.output, Some(json!({ "parts": 3, "sum": 3 * x + 6 })));
        assert_eq!(run.completed_steps, 5);
        bed.assert_committed_once(run_id, &["split", "p1", "p2", "p3", "join"], 1);
        let join = bed
            .store()
            .get_step(run_id, &StepId::parse("join").unwrap())
            .await
            .unwrap();
        assert_eq!(join.parents_done.len(), 3);
    }
}

pub async fn retries_reach_their_attempt_under_faults(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = bed(store, unit, "flaky");
    let run_id = bed.start("faulty-flaky", json!({ "x": 1 })).await;
    bed.finish(&run_id).await;
    bed.settle().await;
    bed.report("flaky");
    let run = bed.assert_run(&run_id, RunStatus::Completed).await;
    assert_eq!(run.output, Some(json!({ "x": 1 })));
    let step = bed
        .store()
        .get_step(&run_id, &StepId::parse("flaky").unwrap())
        .await
        .unwrap();
    assert_eq!((step.status, step.attempt), (StepStatus::Completed, 3));
    bed.assert_committed_once(&run_id, &["flaky"], 1);
    let retried = bed
        .bed
        .recorder
        .events()
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                crate::Event::StepFinished {
                    status: StepStatus::Retrying,
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        retried, 2,
        "attempts 1 and 2 committed their retry once each"
    );
}

pub async fn a_failed_run_is_redriven_under_faults(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = bed(store, unit, "redrive");
    let run_id = bed
        .start("faulty-payment", json!({ "id": "o-1", "amount": 30 }))
        .await;
    let failed = bed.finish(&run_id).await;
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.error.unwrap().code, "card_declined");
    let executor = Arc::clone(&bed.bed.executor);
    let mut tried = false;
    let redriven = bed
        .retrying(|| {
            let first = !std::mem::replace(&mut tried, true);
            let executor = Arc::clone(&executor);
            async move {
                match executor.redrive(&run_id).await {
                    // A retry whose first try was applied but answered with an error.
                    Err(EngineError::InvalidState { status, .. })
                        if !first && status == RunStatus::Running =>
                    {
                        Ok(())
                    }
                    other => other.map(|_| ()),
                }
            }
        })
        .await;
    redriven.unwrap();
    let run = bed.finish(&run_id).await;
    bed.settle().await;
    bed.report("redrive");
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.error, None);
    assert_eq!(run.completed_steps, 3);
    bed.assert_committed_once(&run_id, &["validate", "ship"], 2);
    let charge = bed
        .store()
        .get_step(&run_id, &StepId::parse("charge").unwrap())
        .await
        .unwrap();
    assert_eq!((charge.status, charge.attempt), (StepStatus::Completed, 2));
}

pub async fn conditions_skip_under_faults(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = bed(store, unit, "gift");
    let plain = bed
        .start("faulty-gift", json!({ "id": "o-7", "gift": false }))
        .await;
    let gift = bed
        .start("faulty-gift", json!({ "id": "o-8", "gift": true }))
        .await;
    bed.finish(&plain).await;
    bed.finish(&gift).await;
    bed.settle().await;
    bed.report("gift");
    for (run_id, wrapped, label) in [
        (plain, StepStatus::Skipped, "\"o-7\""),
        (gift, StepStatus::Completed, "\"o-8\""),
    ] {
        let run = bed.assert_run(&run_id, RunStatus::Completed).await;
        assert_eq!(run.output, Some(json!(format!("shipped {label}"))));
        assert_eq!(run.completed_steps, 3, "skipped steps count as done");
        let step = bed
            .store()
            .get_step(&run_id, &StepId::parse("gift-wrap").unwrap())
            .await
            .unwrap();
        assert_eq!(step.status, wrapped);
        bed.assert_committed_once(&run_id, &["validate", "gift-wrap", "ship"], 1);
    }
}

pub async fn signals_resume_waits_under_faults(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = bed(store, unit, "signal");
    let executor = Arc::clone(&bed.bed.executor);
    // One signal sent once its wait has parked, one before any task ran.
    let after = bed.start("faulty-approval", json!({ "doc": "d-1" })).await;
    bed.until_step(&after, "await-approval", StepStatus::Waiting)
        .await;
    let before = bed.start("faulty-approval", json!({ "doc": "d-2" })).await;
    for (run_id, payload) in [(after, json!({ "by": "ada" })), (before, json!("yes"))] {
        bed.retrying(|| executor.signal(&run_id, "approved", &payload))
            .await
            .unwrap();
    }
    bed.finish(&after).await;
    bed.finish(&before).await;
    bed.settle().await;
    bed.report("signal");
    for (run_id, output) in [(after, json!({ "by": "ada" })), (before, json!("yes"))] {
        let run = bed.assert_run(&run_id, RunStatus::Completed).await;
        assert_eq!(run.output, Some(output), "the payload flows on");
        bed.assert_committed_once(&run_id, &["await-approval", "notify"], 1);
    }
}

pub async fn sleeps_resume_under_faults(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = bed(store, unit, "sleep");
    let started = tokio::time::Instant::now();
    let run_id = bed.start("faulty-nap", json!({ "n": 1 })).await;
    bed.finish(&run_id).await;
    bed.settle().await;
    bed.report("sleep");
    let run = bed.assert_run(&run_id, RunStatus::Completed).await;
    assert_eq!(run.output, Some(json!({ "n": 1 })));
    assert!(
        started.elapsed() >= unit * 30,
        "the sleep was not cut short"
    );
    bed.assert_committed_once(&run_id, &["nap", "notify"], 1);
}

pub async fn cancel_stops_everything_under_faults(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = bed(store, unit, "cancel");
    let run_id = bed.start("faulty-slow", json!({})).await;
    bed.until_step(&run_id, "slow-a", StepStatus::Running).await;
    super::lost_answers::cancel(&bed, &run_id).await;
    let run = bed.finish(&run_id).await;
    // The running branches stop at their next checkpoint (or commit) and are cancelled;
    // one whose worker's clean-up failed is looked at again when its lease lapses.
    bed.bed.runner.drain(unit * 150).await;
    bed.settle().await;
    bed.report("cancel");
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(run.error.unwrap().message, "customer changed their mind");
    bed.assert_committed_once(&run_id, &["start"], 1);
    for id in ["slow-a", "slow-b"] {
        let step = bed
            .store()
            .get_step(&run_id, &StepId::parse(id).unwrap())
            .await
            .unwrap();
        assert_eq!(step.status, StepStatus::Cancelled, "{id}");
    }
    assert!(
        bed.store()
            .get_step(&run_id, &StepId::parse("after").unwrap())
            .await
            .is_err(),
        "nothing after the group was created"
    );
}

pub async fn a_fan_out_of_one_hundred_commits_once_under_faults(
    store: Arc<dyn Store>,
    unit: Duration,
) {
    let mut bed = bed(store, unit, "wide");
    let run_id = bed.start("faulty-wide", json!(3)).await;
    bed.finish(&run_id).await;
    bed.settle().await;
    bed.report("wide");
    let run = bed.assert_run(&run_id, RunStatus::Completed).await;
    assert_eq!(run.output, Some(json!(100)));
    assert_eq!(run.completed_steps, 102);
    let mut ids: Vec<String> = (0..100).map(|i| format!("branch-{i:03}")).collect();
    ids.extend(["root".to_owned(), "total".to_owned()]);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    bed.assert_committed_once(&run_id, &ids, 1);
}
