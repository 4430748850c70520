//! Failure-path scenarios: each forces one interleaving (with the [`Interleave`] store
//! wrapper, a second process, or a clock that runs ahead or behind) and checks that the
//! run ends as the contract says. Numbers refer to the scenarios of the failure-path
//! review (issue 10); each fails on the executor as it was before that work.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use wf_store::{RunStatus, StepId, StepStatus, Store, StoreError};

use super::interleave::{Call, Interleave, run_to, step_to};
use super::{Bed, Recorder};
use crate::{
    EngineError, Registry, RunnerOutcome, StepContext, StepError, StepSpec, StepTask, Workflow,
    step, wait_for_signal,
};

/// The workflows of these scenarios, with durations scaled by `unit`.
pub(super) fn register(registry: &mut Registry, recorder: &Arc<Recorder>, unit: Duration) {
    // Fails terminally on its first call, then succeeds.
    let fails_once = |name: &'static str| {
        let r = Arc::clone(recorder);
        move |_c: StepContext, input: Value| {
            let r = Arc::clone(&r);
            async move {
                if r.call(name) == 1 {
                    return Err(StepError::terminal("broken", "fails the first time"));
                }
                Ok::<Value, StepError>(input)
            }
        }
    };
    let counted = |name: &'static str| {
        let r = Arc::clone(recorder);
        move |_c: StepContext, input: Value| {
            let r = Arc::clone(&r);
            async move {
                r.call(name);
                Ok::<Value, StepError>(input)
            }
        }
    };
    let payload = |bytes: usize| {
        move |_c: StepContext, _input: Value| async move { Ok::<String, StepError>("x".repeat(bytes)) }
    };
    let workflows = [
        Workflow::builder("fail-or-hold", "1")
            .then(step("split", counted("split")))
            .parallel([
                StepSpec::from(step("fails", fails_once("fails"))),
                wait_for_signal("hold", "go", unit * 3600),
            ])
            .then(step("join", counted("join"))),
        {
            let wide = Workflow::builder("wide-fail", "1").then(step("root", counted("root")));
            wide.parallel((0..100).map(|i| {
                let id = format!("branch-{i:03}");
                if i == 99 {
                    step(&id, fails_once("branch-099"))
                } else {
                    step(&id, counted("branch"))
                }
            }))
            .then(step(
                "total",
                |_c: StepContext, parts: BTreeMap<String, Value>| async move {
                    Ok::<usize, StepError>(parts.len())
                },
            ))
        },
        Workflow::builder("tolerant", "1")
            .then(step("prep", counted("prep")))
            .parallel([
                step("optional", {
                    let r = Arc::clone(recorder);
                    move |_c: StepContext, _input: Value| {
                        let r = Arc::clone(&r);
                        async move {
                            r.call("optional");
                            Err::<Value, StepError>(StepError::terminal("nope", "never works"))
                        }
                    }
                })
                .continue_on_error(),
                step("must", fails_once("must")),
            ])
            .then(step("join", counted("join"))),
        Workflow::builder("two-big-leaves", "1")
            .then(step("root", counted("root")))
            .parallel([
                step("big-a", payload(200 * 1024)),
                step("big-b", payload(200 * 1024)),
            ]),
        Workflow::builder("big-optional", "1")
            .then(step("prep", counted("prep")))
            .then(step("huge", payload(wf_store::MAX_PAYLOAD_BYTES + 1)).continue_on_error())
            .then(step("after", counted("after"))),
        Workflow::builder("fenced", "1")
            .then(
                step("write", {
                    let r = Arc::clone(recorder);
                    move |ctx: StepContext, _input: Value| {
                        let r = Arc::clone(&r);
                        async move {
                            if r.call("write") == 1 {
                                // The first attempt stalls until the test lets it go on.
                                r.gate.notified().await;
                                let written = ctx.set_state("result", &"A").await;
                                r.note(match written {
                                    Ok(()) => "A: written".to_owned(),
                                    Err(e) => format!("A: {}", e.code()),
                                });
                                return Ok(json!("A"));
                            }
                            ctx.set_state("result", &"B").await?;
                            Ok::<Value, StepError>(json!("B"))
                        }
                    }
                })
                .timeout(unit * 600),
            )
            .then(step("read", |ctx: StepContext, _input: Value| async move {
                ctx.get_state::<String>("result").await
            })),
        Workflow::builder("two-waits", "1")
            .then(wait_for_signal("first", "go", unit * 3600))
            .then(wait_for_signal("second", "go", unit * 3600)),
    ];
    for workflow in workflows {
        registry.register(workflow.build().unwrap()).unwrap();
    }
}

fn task(run_id: wf_store::RunId, id: &str, attempt: u32) -> StepTask {
    StepTask {
        run_id,
        step_id: StepId::parse(id).unwrap(),
        attempt,
    }
}

async fn status(store: &dyn Store, run_id: &wf_store::RunId) -> RunStatus {
    store.get_run(run_id).await.unwrap().status
}

/// Scenario 1, set-up: a `payment` run whose charge failed terminally and committed, but
/// whose move to FAILED never happened (every try throttled), in a process that then
/// died. Returns the run, stuck RUNNING.
async fn strand_a_failed_run(store: &Arc<dyn Store>, unit: Duration) -> wf_store::RunId {
    let faults = Interleave::new(Arc::clone(store));
    faults.fail(u32::MAX, run_to(RunStatus::Failed));
    let mut bed = Bed::new(Arc::clone(&faults) as Arc<dyn Store>, unit);
    let run_id = bed
        .start("payment", json!({ "id": "o-1", "amount": 30 }))
        .await;
    bed.run_until(&run_id, |r| r.finished("charge") == 1).await;
    let run = store.get_run(&run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Running, "the set-up strands the run");
    assert_eq!(bed.step(&run_id, "charge").await.status, StepStatus::Failed);
    run_id
}

/// Scenario 1: A committed terminal failure whose run transition was lost ends the run FAILED,
/// whoever gets there first: the redelivered task, the sweep, or a redrive.
pub async fn a_failure_whose_run_end_was_lost_still_fails_the_run(
    store: Arc<dyn Store>,
    unit: Duration,
) {
    // The redelivered task.
    let run_id = strand_a_failed_run(&store, unit).await;
    let next = Bed::new(Arc::clone(&store), unit);
    next.executor
        .execute(&task(run_id, "charge", 1), None)
        .await
        .unwrap();
    let run = store.get_run(&run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.unwrap().code, "card_declined");

    // The sweep.
    let run_id = strand_a_failed_run(&store, unit).await;
    let report = Bed::new(Arc::clone(&store), unit)
        .executor
        .sweep(Duration::ZERO)
        .await
        .unwrap();
    assert!(report.runs_finished >= 1, "{report:?}");
    assert_eq!(status(&*store, &run_id).await, RunStatus::Failed);

    // A redrive: the run is ended, then redriven, and completes.
    let run_id = strand_a_failed_run(&store, unit).await;
    let mut next = Bed::new(Arc::clone(&store), unit);
    next.recorder.call("charge"); // this process's charge succeeds
    let reopened = next.executor.redrive(&run_id).await.unwrap();
    assert_eq!(reopened.status, RunStatus::Running);
    let run = next.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(next.step(&run_id, "charge").await.attempt, 2);
}

/// Scenario 2: A redrive that lands while the failure's clean-up is cancelling open steps is not
/// undone by the rest of the clean-up.
pub async fn redrive_during_the_failure_clean_up_is_not_undone(
    store: Arc<dyn Store>,
    unit: Duration,
) {
    let faults = Interleave::new(Arc::clone(&store));
    let mut bed = Bed::new(Arc::clone(&faults) as Arc<dyn Store>, unit);
    // GIVEN the clean-up held just before it cancels the open branch `hold`
    let gate = faults.hold(step_to("hold", StepStatus::Cancelled));
    let run_id = bed.start("fail-or-hold", json!({ "n": 1 })).await;
    let executor = Arc::clone(&bed.executor);
    let redrive = async {
        gate.reached().await;
        // WHEN a redrive lands in that gap
        let reopened = executor.redrive(&run_id).await.unwrap();
        gate.release();
        reopened
    };
    // Well below `hold`'s hour-long timeout: the run must still be open afterwards.
    let (outcome, reopened) = tokio::join!(bed.runner.run(&run_id, unit * 10), redrive);
    outcome.unwrap();
    assert_eq!(reopened.status, RunStatus::Running);
    // THEN the branch it kept open is still open, and the run can finish
    let hold = bed.step(&run_id, "hold").await;
    assert_ne!(hold.status, StepStatus::Cancelled, "{hold:?}");
    bed.executor
        .signal(&run_id, "go", &json!("go"))
        .await
        .unwrap();
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(bed.recorder.calls("join"), 1);
}

/// Scenario 3: Redrive of a fan-out wider than one commit: a failed branch created beyond the
/// commit (no parent recorded on its item) is made ready and runs.
pub async fn redrive_runs_failed_branches_created_beyond_one_commit(
    store: Arc<dyn Store>,
    unit: Duration,
) {
    let mut bed = Bed::new(store, unit);
    let run_id = bed.start("wide-fail", json!(1)).await;
    let failed = bed.finished(&run_id).await;
    assert_eq!(failed.status, RunStatus::Failed);
    let branch = bed.step(&run_id, "branch-099").await;
    assert!(branch.parents_done.is_empty(), "created beyond the commit");
    bed.executor.redrive(&run_id).await.unwrap();
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!(100)));
    assert_eq!(run.completed_steps, run.total_steps);
}

/// Scenario 4: Redrive keeps `continue_on_error` steps that already counted as done: the run
/// completes once, when its join has run, with the right output.
pub async fn redrive_keeps_steps_that_continued_on_error(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = Bed::new(store, unit);
    let run_id = bed.start("tolerant", json!({ "n": 4 })).await;
    assert_eq!(bed.finished(&run_id).await.status, RunStatus::Failed);
    bed.executor.redrive(&run_id).await.unwrap();
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(bed.recorder.calls("optional"), 1, "not run again");
    assert_eq!(bed.recorder.calls("join"), 1);
    assert_eq!(
        run.output,
        Some(json!({ "optional": null, "must": { "n": 4 } }))
    );
    assert_eq!((run.completed_steps, run.total_steps), (4, 4));
    assert_eq!(
        bed.step(&run_id, "optional").await.status,
        StepStatus::Failed
    );
}

/// Scenario 5: A run whose combined output is too large to store fails with a clear code instead
/// of staying open (and the sweep handles it like any other run).
pub async fn a_run_output_too_large_fails_the_run(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = Bed::new(Arc::clone(&store), unit);
    let run_id = bed.start("two-big-leaves", json!({})).await;
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.unwrap().code, "run_output_too_large");
    for id in ["big-a", "big-b"] {
        assert_eq!(bed.step(&run_id, id).await.status, StepStatus::Completed);
    }
}

/// Scenario 6: A run of a workflow version this deployment lacks fails with
/// `unknown_workflow_version` (task, sweep); a run the sweep cannot handle is passed over
/// with an event; neither stops the recovery of the other runs.
pub async fn one_bad_run_never_stops_the_sweep(store: Arc<dyn Store>, unit: Duration) {
    // GIVEN a run parked on a signal, under a deployment that has its workflow
    let retired = || {
        Workflow::builder("retired", "1")
            .then(wait_for_signal("wait", "approved", unit * 3600))
            .then(step("notify", |_c: StepContext, v: Value| async move {
                Ok::<Value, StepError>(v)
            }))
            .build()
            .unwrap()
    };
    let mut old = Bed::build_with(Arc::clone(&store), unit, vec![retired()]);
    let orphan = old.start("retired", json!({})).await;
    let _ = old.runner.run(&orphan, unit * 10).await.unwrap();
    // AND a deployment without that workflow, whose own run lost its first dispatch
    let faults = Interleave::new(Arc::clone(&store));
    let recorder = Arc::new(Recorder::default());
    let mut new = Bed::build(
        Arc::clone(&faults) as Arc<dyn Store>,
        unit,
        Arc::clone(&recorder),
        false,
    );
    let healthy = new.start("linear", json!(5)).await;
    new.runner.abort();
    // AND a third run on which listing steps fails
    let broken = new.start("cool-off", json!({})).await;
    new.runner.abort();
    faults.fail(
        1,
        move |call| matches!(call, Call::ListSteps(id) if **id == broken),
    );
    // WHEN the sweep runs
    let report = new.executor.sweep(Duration::ZERO).await.unwrap();
    // THEN the orphan failed with a code that says why, the broken run was passed over
    // with an event, and the healthy run was recovered
    assert_eq!(report.runs_checked, 3, "{report:?}");
    assert_eq!(report.runs_skipped, 1, "{report:?}");
    assert!(report.tasks_dispatched >= 1, "{report:?}");
    let failed = store.get_run(&orphan).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.error.unwrap().code, "unknown_workflow_version");
    assert!(recorder.events().iter().any(|(_, e)| matches!(
        e,
        crate::Event::RunNotRecovered { run_id, .. } if *run_id == broken
    )));
    assert_eq!(new.finished(&healthy).await.status, RunStatus::Completed);
    // A redrive needs the version back: until then it says so.
    assert!(matches!(
        new.executor.redrive(&orphan).await,
        Err(EngineError::UnknownWorkflow { .. })
    ));
    // And once a deployment has it again, the redrive takes the run to the end.
    old.executor.redrive(&orphan).await.unwrap();
    old.executor
        .signal(&orphan, "approved", &json!("yes"))
        .await
        .unwrap();
    assert_eq!(old.finished(&orphan).await.status, RunStatus::Completed);
}

/// Scenario 7: A `continue_on_error` step whose output is too large flows on as a failure: its
/// successor runs and the run completes.
pub async fn an_oversized_output_of_a_step_that_continues_on_error_flows_on(
    store: Arc<dyn Store>,
    unit: Duration,
) {
    let mut bed = Bed::new(store, unit);
    let run_id = bed.start("big-optional", json!({ "n": 7 })).await;
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    let huge = bed.step(&run_id, "huge").await;
    assert_eq!(huge.status, StepStatus::Failed);
    assert_eq!(huge.error.unwrap().code, "output_too_large");
    assert_eq!(bed.recorder.calls("after"), 1);
    assert_eq!((run.completed_steps, run.total_steps), (3, 3));
}

/// Scenario 8: A signal sent between a wait's check for it and the wait's parking (its first
/// claim) wakes the wait.
pub async fn a_signal_sent_while_the_wait_parks_is_seen(store: Arc<dyn Store>, unit: Duration) {
    let faults = Interleave::new(Arc::clone(&store));
    let mut bed = Bed::new(Arc::clone(&faults) as Arc<dyn Store>, unit);
    // The wait parks by its first claim: hold that write until the signal has been sent.
    let gate = faults.hold(|call| {
        matches!(call, Call::ClaimStep(c)
            if c.park.as_ref().is_some_and(|park| park.signal.is_some()))
    });
    let run_id = bed.start("approval", json!({ "doc": "d-9" })).await;
    let executor = Arc::clone(&bed.executor);
    let signal = async {
        gate.reached().await;
        let woken = executor
            .signal(&run_id, "approved", &json!({ "by": "grace" }))
            .await
            .unwrap();
        gate.release();
        woken
    };
    // Well below the wait's hour-long timeout: only the signal can finish the run.
    let (outcome, woken) = tokio::join!(bed.runner.run(&run_id, unit * 100), signal);
    assert_eq!(woken, 0, "the step was not yet WAITING");
    let RunnerOutcome::Finished(run) = outcome.unwrap() else {
        panic!("the signal was missed");
    };
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!({ "by": "grace" })));
}

/// Scenario 9: An attempt whose lease another worker took over (its clock ran ahead by more than
/// the lease margin) can no longer write run state; the winner's state is what later
/// steps read.
pub async fn state_writes_are_fenced_by_the_lease(store: Arc<dyn Store>, unit: Duration) {
    let recorder = Arc::new(Recorder::default());
    let mut a = Bed::build(Arc::clone(&store), unit, Arc::clone(&recorder), false);
    // Further ahead than A's lease (its timeout plus the margin) reaches.
    let ahead = Utc::now() + TimeDelta::from_std(unit * 1000).unwrap();
    let mut b = Bed::build_at(Arc::clone(&store), unit, Arc::clone(&recorder), ahead);
    let run_id = a.start("fenced", json!({})).await;
    let takeover = async {
        while recorder.calls("write") == 0 {
            tokio::time::sleep(unit / 4).await;
        }
        // B's clock says A's lease lapsed: B claims the step A still runs, and commits.
        b.executor
            .execute(&task(run_id, "write", 1), None)
            .await
            .unwrap();
        recorder.gate.notify_one();
        while recorder.notes().is_empty() {
            tokio::time::sleep(unit / 4).await;
        }
    };
    let (outcome, ()) = tokio::join!(a.runner.run(&run_id, unit * 10), takeover);
    outcome.unwrap();
    assert_eq!(recorder.notes(), ["A: lease_lost"]);
    let run = b.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!("B")));
}

/// A signal is a run-scoped latch: every wait on its name, now or later, sees it.
pub async fn a_signal_is_seen_by_every_wait_on_its_name(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = Bed::new(store, unit);
    let run_id = bed.start("two-waits", json!({})).await;
    let _ = bed.runner.run(&run_id, unit * 10).await.unwrap();
    bed.executor.signal(&run_id, "go", &json!(1)).await.unwrap();
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!(1)));
    // A name the workflow never waits for is refused, and nothing is stored.
    let other = bed.start("two-waits", json!({})).await;
    assert!(matches!(
        bed.executor.signal(&other, "../etc", &json!(1)).await,
        Err(EngineError::UnknownSignal { .. })
    ));
    assert!(
        bed.executor
            .store()
            .all_state(&other)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A sleep woken by one worker and claimed by another whose clock runs behind completes;
/// it does not park again for its whole duration.
pub async fn a_wake_claimed_by_a_worker_whose_clock_is_behind_completes(
    store: Arc<dyn Store>,
    unit: Duration,
) {
    let mut bed = Bed::new(Arc::clone(&store), unit);
    let run_id = bed.start("cool-off", json!({ "n": 2 })).await;
    let _ = bed.runner.run(&run_id, unit * 10).await.unwrap();
    let parked = bed.step(&run_id, "cool-off").await;
    let until = parked.not_before.unwrap();
    // The waker (clock past `until`) moves the step to READY, as `wake` does.
    store
        .transition_step(&wf_store::StepTransition {
            run_id,
            step_id: parked.step_id.clone(),
            from: vec![StepStatus::Waiting],
            status: StepStatus::Ready,
            attempt: None,
            not_before: Some(until),
            waiting_for: None,
            error: None,
            at: until,
            run_guard: None,
        })
        .await
        .unwrap();
    // A worker an hour behind claims it.
    let behind = Utc::now() - TimeDelta::from_std(unit * 3600).unwrap();
    let mut late = Bed::build_at(store, unit, Arc::new(Recorder::default()), behind);
    late.executor
        .execute(&task(run_id, "cool-off", parked.attempt), None)
        .await
        .unwrap();
    assert_eq!(
        late.step(&run_id, "cool-off").await.status,
        StepStatus::Completed
    );
    assert_eq!(late.finished(&run_id).await.status, RunStatus::Completed);
}

/// A task naming a step its definition lacks (edited without a new version) fails the
/// run with `step_not_in_definition`, instead of being dropped with the run left open.
pub async fn a_task_for_a_step_not_in_the_definition_fails_the_run(
    store: Arc<dyn Store>,
    unit: Duration,
) {
    let mut bed = Bed::new(store, unit);
    let run_id = bed.start("approval", json!({})).await;
    let _ = bed.runner.run(&run_id, unit * 10).await.unwrap();
    bed.executor
        .execute(&task(run_id, "renamed-step", 1), None)
        .await
        .unwrap();
    let run = bed.executor.store().get_run(&run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.unwrap().code, "step_not_in_definition");
}

/// A step is not started when its timeout does not fit in what is left of the
/// invocation: the task is handed back untouched.
pub async fn a_step_whose_timeout_does_not_fit_is_not_started(
    store: Arc<dyn Store>,
    unit: Duration,
) {
    let bed = Bed::new(store, unit);
    let run_id = bed.start("crashy", json!({})).await;
    // `slow` has a timeout of 10 units; 5 are left.
    let result = bed
        .executor
        .execute(&task(run_id, "slow", 1), Some(unit * 5))
        .await;
    assert!(
        matches!(result, Err(EngineError::NoTimeToStart { .. })),
        "{result:?}"
    );
    assert!(result.unwrap_err().is_retryable());
    assert_eq!(bed.recorder.calls("slow"), 0);
    // Never claimed: a first step's claim is what creates it.
    let slow = bed
        .executor
        .store()
        .get_step(&run_id, &StepId::parse("slow").unwrap())
        .await;
    assert!(matches!(slow, Err(StoreError::NotFound { .. })), "{slow:?}");
}

/// A run cancelled before its first step was claimed: that step had no item (its claim
/// creates it), so the clean-up records it cancelled, and its task, delivered after the
/// cancel, starts nothing (a claim that would create it finds it cancelled).
pub async fn a_run_cancelled_before_its_first_claim_never_starts_it(
    store: Arc<dyn Store>,
    unit: Duration,
) {
    let bed = Bed::new(store, unit);
    let run_id = bed.start("linear", json!(5)).await;
    bed.executor
        .cancel(&run_id, "changed my mind")
        .await
        .unwrap();
    assert_eq!(
        bed.step(&run_id, "add-one").await.status,
        StepStatus::Cancelled,
        "recorded cancelled by the clean-up"
    );
    bed.executor
        .execute(&task(run_id, "add-one", 1), None)
        .await
        .unwrap();
    assert_eq!(bed.recorder.calls("add-one"), 0);
    assert_eq!(
        bed.step(&run_id, "add-one").await.status,
        StepStatus::Cancelled
    );
}

/// Lost answers: a claim, a wake and a run's final write that were applied but whose
/// answers were lost (the store's retry met the write itself) are recognised as this
/// worker's own: no task is dropped, nothing waits for a lease to lapse or for the
/// sweep, and the run's end is reported once.
pub async fn writes_whose_answers_were_lost_are_recognised(store: Arc<dyn Store>, unit: Duration) {
    let faults = Interleave::new(Arc::clone(&store));
    let mut bed = Bed::new(Arc::clone(&faults) as Arc<dyn Store>, unit);
    faults.lose_answer(
        1,
        |call| matches!(call, Call::ClaimStep(c) if c.step_id.as_str() == "add-one"),
    );
    faults.lose_answer(1, run_to(RunStatus::Completed));
    let run_id = bed.start("linear", json!(5)).await;
    // Idle (not Finished) if the claim's task had been dropped.
    let run = bed.finished(&run_id).await;
    assert_eq!(run.output, Some(json!(9)));
    assert_eq!(bed.recorder.calls("add-one"), 1);
    let ends = bed
        .recorder
        .events()
        .iter()
        .filter(|(_, e)| matches!(e, crate::Event::RunFinished { run_id: id, .. } if *id == run_id))
        .count();
    assert_eq!(ends, 1, "the run's end is reported once");

    // A wake (the claim that wakes a parked step) whose answer was lost: the step still
    // runs at once.
    faults.lose_answer(
        1,
        |call| matches!(call, Call::ClaimStep(c) if c.step_id.as_str() == "await-approval" && c.wake.is_some()),
    );
    let run_id = bed.start("approval", json!({ "doc": "d-10" })).await;
    let _ = bed.runner.run(&run_id, unit * 10).await.unwrap();
    bed.executor
        .signal(&run_id, "approved", &json!("ok"))
        .await
        .unwrap();
    let RunnerOutcome::Finished(run) = bed.runner.run(&run_id, unit * 10).await.unwrap() else {
        panic!("the woken step waited");
    };
    assert_eq!(run.status, RunStatus::Completed);
}
