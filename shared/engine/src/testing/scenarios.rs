//! The behaviour scenarios: what a run does (steps, fan-out and fan-in, retries,
//! conditions, cancel, signals, sleeps, redrive) and how it survives duplicate tasks,
//! crashes and bad input.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wf_store::{RunQuery, RunStatus, StepId, StepStatus, Store};

use super::{Bed, Recorder, registry};
use crate::{
    EngineError, Event, Executor, InProcessDispatcher, LocalRunner, RetryPolicy, RunnerOutcome,
    StartRequest, StepContext, StepError, Workflow, step,
};

pub async fn linear_workflow_runs_to_completion(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = Bed::new(store, unit);
    let run_id = bed.start("linear", json!(5)).await;
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!(9)), "((5 + 1) * 2) - 3");
    assert_eq!((run.completed_steps, run.total_steps), (3, 3));
    assert!(run.started_at.is_some() && run.completed_at.is_some());
    for id in ["add-one", "double", "minus-three"] {
        let step = bed.step(&run_id, id).await;
        assert_eq!(
            (step.status, step.attempt),
            (StepStatus::Completed, 1),
            "{id}"
        );
    }
    let state = bed.executor.store().all_state(&run_id).await.unwrap();
    assert_eq!(state.len(), 1, "the step wrote run-scoped state");
    assert_eq!(state[0].value, json!(12));
    assert_eq!(bed.recorder.calls("add-one"), 1);
}

pub async fn fan_in_receives_all_three_parents(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = Bed::new(store, unit);
    let run_id = bed.start("fan-in", json!(10)).await;
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!({ "parts": 3, "sum": 36 })));
    assert_eq!(bed.recorder.calls("join"), 1, "the join ran once");
    let join = bed.step(&run_id, "join").await;
    assert_eq!(join.parents_done.len(), 3);
}

pub async fn flaky_step_retries_with_backoff_within_bounds(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = Bed::new(store, unit);
    let run_id = bed.start("flaky", json!({ "x": 1 })).await;
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(bed.recorder.calls("flaky"), 3);
    let step = bed.step(&run_id, "flaky").await;
    assert_eq!((step.status, step.attempt), (StepStatus::Completed, 3));
    // Attempt n+1 is scheduled within the backoff ceiling after attempt n failed, and does
    // not start before attempt n failed. The schedule is what the engine decides; how late
    // a loaded machine wakes the timer is not, so wall-clock lateness is not asserted.
    let policy = RetryPolicy::default().max_attempts(4).initial_delay(unit);
    let retries: Vec<(u32, Duration)> = bed
        .recorder
        .dispatched()
        .into_iter()
        .filter(|(task, _)| task.step_id.as_str() == "flaky" && task.attempt > 1)
        .map(|(task, delay)| (task.attempt, delay))
        .collect();
    assert_eq!(
        retries.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        [2, 3],
        "one retry task per failed attempt"
    );
    for (attempt, delay) in &retries {
        let ceiling = policy.ceiling(attempt - 1);
        assert!(
            *delay <= ceiling,
            "attempt {attempt} scheduled after {delay:?} > ceiling {ceiling:?}"
        );
    }
    let events = bed.recorder.events();
    let at = |wanted: &dyn Fn(&Event) -> bool| -> Vec<DateTime<Utc>> {
        events
            .iter()
            .filter(|(_, e)| wanted(e))
            .map(|(t, _)| *t)
            .collect()
    };
    let failed_at = at(&|e| {
        matches!(
            e,
            Event::StepFinished {
                status: StepStatus::Retrying,
                ..
            }
        )
    });
    let started_at = at(&|e| matches!(e, Event::StepStarted { attempt, .. } if *attempt > 1));
    assert_eq!((failed_at.len(), started_at.len()), (2, 2));
    for (n, (failed, started)) in failed_at.iter().zip(&started_at).enumerate() {
        assert!(
            started >= failed,
            "attempt {} started before its failure",
            n + 2
        );
    }
}

pub async fn terminal_failure_fails_the_run_and_redrive_completes_it(
    store: Arc<dyn Store>,
    unit: Duration,
) {
    let mut bed = Bed::new(store, unit);
    let run_id = bed
        .start("payment", json!({ "id": "o-1", "amount": 30 }))
        .await;
    let failed = bed.finished(&run_id).await;
    assert_eq!(failed.status, RunStatus::Failed);
    let error = failed.error.clone().unwrap();
    assert_eq!(error.code, "card_declined");
    assert!(error.message.contains("charge"), "{}", error.message);
    assert_eq!(
        bed.recorder.calls("charge"),
        1,
        "terminal errors are not retried"
    );
    assert_eq!(bed.recorder.calls("ship"), 0);
    assert_eq!(bed.step(&run_id, "charge").await.status, StepStatus::Failed);

    let redriven = bed.executor.redrive(&run_id).await.unwrap();
    assert_eq!(redriven.status, RunStatus::Running);
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.error, None);
    assert_eq!(
        bed.recorder.calls("validate"),
        1,
        "completed steps keep their output"
    );
    assert_eq!(bed.recorder.calls("charge"), 2);
    assert_eq!(bed.recorder.calls("ship"), 1);
    assert_eq!(bed.step(&run_id, "charge").await.attempt, 2);
    assert!(matches!(
        bed.executor.redrive(&run_id).await,
        Err(EngineError::InvalidState {
            action: "redrive",
            ..
        })
    ));
}

pub async fn false_condition_skips_and_the_flow_goes_on(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = Bed::new(store, unit);
    let run_id = bed
        .start("gift", json!({ "id": "o-7", "amount": 5, "gift": false }))
        .await;
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!("shipped o-7")));
    assert_eq!(
        bed.step(&run_id, "gift-wrap").await.status,
        StepStatus::Skipped
    );
    assert_eq!(bed.recorder.calls("gift-wrap"), 0);
    assert_eq!(run.completed_steps, 3, "skipped steps count as done");

    let run_id = bed
        .start("gift", json!({ "id": "o-8", "amount": 5, "gift": true }))
        .await;
    bed.finished(&run_id).await;
    assert_eq!(
        bed.step(&run_id, "gift-wrap").await.status,
        StepStatus::Completed
    );
}

pub async fn cancel_during_a_parallel_group_stops_everything(
    store: Arc<dyn Store>,
    unit: Duration,
) {
    let mut bed = Bed::new(store, unit);
    let run_id = bed.start("slow-parallel", json!({})).await;
    let executor = Arc::clone(&bed.executor);
    let recorder = Arc::clone(&bed.recorder);
    let cancel = async move {
        // Wait until both branches run.
        while recorder.calls("slow-a") == 0 || recorder.calls("slow-b") == 0 {
            tokio::time::sleep(unit / 4).await;
        }
        executor
            .cancel(&run_id, "customer changed their mind")
            .await
            .unwrap()
    };
    let (outcome, cancelled) = tokio::join!(bed.run(&run_id), cancel);
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    let RunnerOutcome::Finished(run) = outcome else {
        panic!("run did not end: {outcome:?}");
    };
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(run.error.unwrap().message, "customer changed their mind");
    // Let the running branches reach their checkpoint and stop.
    bed.runner.run(&run_id, unit * 100).await.unwrap();
    tokio::time::sleep(unit * 12).await;
    for id in ["slow-a", "slow-b"] {
        let step = bed.step(&run_id, id).await;
        assert_eq!(step.status, StepStatus::Cancelled, "{id}");
    }
    assert_eq!(
        bed.recorder.calls("after"),
        0,
        "nothing after the group ran"
    );
    assert!(
        bed.executor
            .store()
            .get_step(&run_id, &StepId::parse("after").unwrap())
            .await
            .is_err()
    );
    assert!(matches!(
        bed.executor.cancel(&run_id, "again").await,
        Err(EngineError::InvalidState {
            action: "cancel",
            ..
        })
    ));
}

pub async fn signal_sent_after_the_wait_starts_resumes_the_run(
    store: Arc<dyn Store>,
    unit: Duration,
) {
    let mut bed = Bed::new(store, unit);
    let run_id = bed.start("approval", json!({ "doc": "d-1" })).await;
    let RunnerOutcome::Parked { run, .. } = bed.runner.run(&run_id, unit * 10).await.unwrap()
    else {
        panic!("the run should park on its signal wait");
    };
    assert!(!run.status.is_terminal());
    let waiting = bed.step(&run_id, "await-approval").await;
    assert_eq!(waiting.status, StepStatus::Waiting);
    assert_eq!(waiting.waiting_for.as_deref(), Some("approved"));
    let woken = bed
        .executor
        .signal(&run_id, "approved", &json!({ "by": "ada" }))
        .await
        .unwrap();
    assert_eq!(woken, 1);
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(
        run.output,
        Some(json!({ "by": "ada" })),
        "the payload flows on"
    );
    assert_eq!(bed.recorder.calls("notify"), 1);
}

pub async fn signal_sent_before_the_wait_starts_is_kept(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = Bed::new(store, unit);
    let run_id = bed.start("approval", json!({ "doc": "d-2" })).await;
    // No task has run yet: the wait has not started.
    let woken = bed
        .executor
        .signal(&run_id, "approved", &json!("yes"))
        .await
        .unwrap();
    assert_eq!(woken, 0);
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!("yes")));
}

pub async fn signal_wait_times_out(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = Bed::new(store, unit);
    let started = bed.clock.now();
    let run_id = bed.start("approval", json!({ "doc": "d-3" })).await;
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.unwrap().code, "signal_timeout");
    let waited = bed.clock.now() - started;
    assert!(
        waited >= chrono::TimeDelta::from_std(unit * 3600).unwrap(),
        "timed out after {waited}"
    );
}

pub async fn durable_sleep_parks_and_resumes(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = Bed::new(store, unit);
    let started = bed.clock.now();
    let run_id = bed.start("cool-off", json!({ "n": 1 })).await;
    let RunnerOutcome::Parked { next_due_in, .. } =
        bed.runner.run(&run_id, unit * 10).await.unwrap()
    else {
        panic!("a day-long sleep parks the run");
    };
    assert!(next_due_in > unit * 80_000);
    let sleeping = bed.step(&run_id, "cool-off").await;
    assert_eq!(sleeping.status, StepStatus::Waiting);
    // A new process (new executor and runner, same store) picks the run up after a sweep.
    let mut later = Bed::new(Arc::clone(bed.executor.store()), unit);
    tokio::time::sleep(unit * 86_401).await;
    let report = later.executor.sweep(Duration::ZERO).await.unwrap();
    assert!(report.tasks_dispatched >= 1, "{report:?}");
    let run = later.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!({ "n": 1 })));
    assert!(bed.clock.now() - started >= chrono::TimeDelta::from_std(unit * 86_400).unwrap());
}

pub async fn every_task_dispatched_twice_commits_once(store: Arc<dyn Store>, unit: Duration) {
    let recorder = Arc::new(Recorder::default());
    let mut bed = Bed::build(store, unit, Arc::clone(&recorder), true);
    let run_id = bed.start("fan-in", json!(1)).await;
    let run = bed.finished(&run_id).await;
    // Let the duplicates drain.
    bed.runner.run(&run_id, unit * 100).await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!({ "parts": 3, "sum": 9 })));
    assert_eq!(recorder.calls("split"), 1);
    assert_eq!(recorder.calls("join"), 1, "successors run once");
    for id in ["split", "p1", "p2", "p3", "join"] {
        assert_eq!(recorder.finished(id), 1, "{id} committed once");
    }
    assert_eq!(
        bed.executor
            .store()
            .get_run(&run_id)
            .await
            .unwrap()
            .completed_steps,
        5
    );
}

pub async fn crash_mid_step_then_sweep_completes_exactly_once(
    store: Arc<dyn Store>,
    unit: Duration,
) {
    let mut bed = Bed::new(Arc::clone(&store), unit);
    let run_id = bed.start("crashy", json!({ "k": "v" })).await;
    // GIVEN a worker killed while its step runs
    bed.kill_once_started(&run_id, "slow").await;
    assert_eq!(bed.recorder.calls("slow"), 1);
    let stuck = bed.step(&run_id, "slow").await;
    assert_eq!(stuck.status, StepStatus::Running);
    // WHEN its lease lapses and a sweep runs in a new process
    let mut next = Bed::new(store, unit);
    let early = next.executor.sweep(Duration::ZERO).await.unwrap();
    let lease_until = stuck.lease.as_ref().map(|l| l.until).unwrap();
    if next.clock.now() < lease_until {
        // Only meaningful if the sweep ended while the lease was live (a loaded machine
        // can take longer than the lease between the claim and this sweep).
        assert_eq!(early.tasks_dispatched, 0, "a live lease is left alone");
    }
    tokio::time::sleep(unit * 13).await;
    let report = next.executor.sweep(Duration::ZERO).await.unwrap();
    assert_eq!(report.tasks_dispatched, 1);
    // THEN the step runs again, and its result is committed once
    let run = next.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(next.recorder.calls("slow"), 1);
    assert_eq!(next.recorder.finished("slow"), 1);
    assert_eq!(
        bed.recorder.finished("slow"),
        0,
        "the killed attempt never committed"
    );
    assert_eq!(run.completed_steps, 2);
}

pub async fn resume_takes_over_a_dead_process_run_when_its_lease_lapses(
    store: Arc<dyn Store>,
    unit: Duration,
) {
    let mut bed = Bed::new(Arc::clone(&store), unit);
    let run_id = bed.start("crashy", json!({ "k": "v" })).await;
    bed.kill_once_started(&run_id, "slow").await;
    // A new process resumes at once: the step still holds the dead process's lease, so
    // its task is scheduled for when the lease lapses, and the runner waits for it.
    let mut next = Bed::new(store, unit);
    let run = next.executor.store().get_run(&run_id).await.unwrap();
    let (dispatched, finished) = next.executor.resume_run(&run).await.unwrap();
    assert_eq!((dispatched, finished), (1, false));
    let run = next.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(next.recorder.finished("slow"), 1);
    assert_eq!(next.recorder.finished("after"), 1);
}

pub async fn bad_inputs_are_rejected_and_nothing_is_written(store: Arc<dyn Store>, unit: Duration) {
    let bed = Bed::new(Arc::clone(&store), unit);
    let big = "x".repeat(wf_store::MAX_PAYLOAD_BYTES + 1);
    let cases: Vec<(&str, Value, Option<&str>, &str, u16, Option<&str>)> = vec![
        (
            "no-such-workflow",
            json!({}),
            None,
            "unknown_workflow",
            404,
            None,
        ),
        (
            "payment",
            json!({ "id": 7, "amount": 1 }),
            None,
            "invalid_input",
            422,
            Some(".id"),
        ),
        (
            "payment",
            json!({ "id": "o", "amount": -1 }),
            None,
            "invalid_input",
            422,
            Some(".amount"),
        ),
        (
            "payment",
            json!({ "amount": 1 }),
            None,
            "invalid_input",
            422,
            Some("missing field `id`"),
        ),
        (
            "payment",
            json!("an order"),
            None,
            "invalid_input",
            422,
            Some("expected struct Order"),
        ),
        (
            "linear",
            json!("five"),
            None,
            "invalid_input",
            422,
            Some("expected i64"),
        ),
        (
            "payment",
            json!({ "id": big, "amount": 1 }),
            None,
            "too_large",
            413,
            None,
        ),
        (
            "payment",
            json!({ "id": "o", "amount": 1 }),
            Some(""),
            "invalid_input",
            400,
            Some("idempotencyKey"),
        ),
    ];
    for (workflow, input, key, code, status, mention) in cases {
        let request = StartRequest {
            workflow_id: workflow.into(),
            input,
            idempotency_key: key.map(str::to_owned),
            ..StartRequest::default()
        };
        let error = bed.executor.start(request).await.unwrap_err();
        assert_eq!(
            (error.code(), error.http_status()),
            (code, status),
            "{workflow}: {error}"
        );
        if let Some(mention) = mention {
            assert!(
                error.to_string().contains(mention),
                "{error} should mention {mention}"
            );
        }
    }
    let runs = store.list_runs(&RunQuery::default()).await.unwrap();
    assert!(
        runs.items.is_empty(),
        "nothing was written: {:?}",
        runs.items
    );
}

pub async fn idempotent_start_replays_or_conflicts(store: Arc<dyn Store>, unit: Duration) {
    let bed = Bed::new(store, unit);
    let request = StartRequest {
        workflow_id: "linear".into(),
        input: json!(1),
        idempotency_key: Some("req-42".into()),
        ..StartRequest::default()
    };
    let first = bed.executor.start(request.clone()).await.unwrap();
    assert!(!first.replayed);
    let again = bed.executor.start(request.clone()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.run.run_id, first.run.run_id);
    let other = StartRequest {
        input: json!(2),
        ..request
    };
    assert!(matches!(
        bed.executor.start(other).await,
        Err(EngineError::IdempotencyConflict { run_id, .. }) if run_id == first.run.run_id
    ));
}

pub async fn runs_finish_on_the_version_they_started_with(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = Bed::new(Arc::clone(&store), unit);
    let run_id = bed.start("approval", json!({})).await;
    let _ = bed.runner.run(&run_id, unit * 10).await.unwrap();
    // A new deployment registers version 2 with different steps.
    let recorder = Arc::new(Recorder::default());
    let mut registry = registry(&recorder, unit);
    registry
        .register(
            Workflow::builder("approval", "2")
                .then(step(
                    "auto-approve",
                    |_c: StepContext, v: Value| async move { Ok::<Value, StepError>(v) },
                ))
                .build()
                .unwrap(),
        )
        .unwrap();
    let (dispatcher, receiver) = InProcessDispatcher::new();
    let executor = Arc::new(Executor::new(
        store,
        Arc::new(dispatcher),
        Arc::new(registry),
        Arc::clone(&bed.clock),
    ));
    let mut runner = LocalRunner::new(Arc::clone(&executor), receiver);
    executor
        .signal(&run_id, "approved", &json!("ok"))
        .await
        .unwrap();
    let RunnerOutcome::Finished(run) = runner.run(&run_id, unit * 10).await.unwrap() else {
        panic!("run did not finish");
    };
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.workflow_version, "1");
    let fresh = executor
        .start(StartRequest {
            workflow_id: "approval".into(),
            input: json!({}),
            ..StartRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(
        fresh.run.workflow_version, "2",
        "new runs start on the latest version"
    );
}

pub async fn fan_out_of_one_hundred_beyond_one_transaction(store: Arc<dyn Store>, unit: Duration) {
    let mut bed = Bed::new(store, unit);
    let run_id = bed.start("wide", json!(3)).await;
    let run = bed.finished(&run_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!(100)));
    assert_eq!(run.completed_steps, 102);
    let steps = bed.executor.store().list_steps(&run_id).await.unwrap();
    assert_eq!(steps.len(), 102);
    assert!(
        steps
            .iter()
            .all(|s| s.status == StepStatus::Completed && s.attempt == 1)
    );
}
