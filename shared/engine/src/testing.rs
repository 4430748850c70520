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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wf_store::{RunId, RunQuery, RunStatus, StepId, StepStatus, Store};

mod chaos;
mod failures;
mod fault_bed;
mod faults;
mod interleave;
mod lost_answers;
mod under_faults;

pub use chaos::{Chaos, ChaosCounts, ChaosRates};
pub use failures::*;
pub use fault_bed::{FaultBed, LOST_ANSWER_GAPS};
pub use faults::{DEFAULT_FAULT_SEED, Fault, FaultRates, FaultyStore, fault_seed, scenario_seed};
pub use interleave::{Call, Gate, Interleave};
pub use lost_answers::*;
pub use under_faults::*;

use crate::{
    Clock, Dispatcher, EngineError, Event, Executor, ExecutorConfig, InProcessDispatcher,
    LocalRunner, Observer, Registry, RetryPolicy, RunnerOutcome, StartRequest, StepContext,
    StepError, StepTask, TokioClock, Workflow, sleep, step, wait_for_signal,
};

/// Instantiates every scenario for a store factory under paused tokio time (for stores
/// that do no network I/O). `$unit` scales all durations.
#[macro_export]
macro_rules! engine_suite {
    ($factory:path, $unit:expr) => {
        $crate::engine_suite!(@cases $factory, $unit, true;
            signal_wait_times_out,
            durable_sleep_parks_and_resumes
        );
        $crate::engine_suite_realtime!(@paused $factory, $unit, true);
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
            bad_inputs_are_rejected_and_nothing_is_written,
            idempotent_start_replays_or_conflicts,
            runs_finish_on_the_version_they_started_with,
            fan_out_of_one_hundred_beyond_one_transaction,
            a_failure_whose_run_end_was_lost_still_fails_the_run,
            redrive_during_the_failure_clean_up_is_not_undone,
            redrive_runs_failed_branches_created_beyond_one_commit,
            redrive_keeps_steps_that_continued_on_error,
            a_run_output_too_large_fails_the_run,
            one_bad_run_never_stops_the_sweep,
            an_oversized_output_of_a_step_that_continues_on_error_flows_on,
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

/// Counts invocations of user code per step, and records every event with its time.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Lets a step that waits on it go on (scenarios that stall a step mid-run).
    pub gate: tokio::sync::Notify,
    notes: Mutex<Vec<String>>,
    calls: Mutex<HashMap<String, u32>>,
    events: Mutex<Vec<(DateTime<Utc>, Event)>>,
    dispatched: Mutex<Vec<(StepTask, Duration)>>,
    clock: Mutex<Option<Arc<dyn Clock>>>,
}

impl Recorder {
    fn call(&self, step: &str) -> u32 {
        let mut calls = self.calls.lock().unwrap();
        let n = calls.entry(step.to_owned()).or_default();
        *n += 1;
        *n
    }

    /// Notes steps leave for the test (what a stalled attempt saw).
    pub fn note(&self, text: String) {
        self.notes.lock().unwrap().push(text);
    }

    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap().clone()
    }

    pub fn calls(&self, step: &str) -> u32 {
        self.calls.lock().unwrap().get(step).copied().unwrap_or(0)
    }

    pub fn events(&self) -> Vec<(DateTime<Utc>, Event)> {
        self.events.lock().unwrap().clone()
    }

    /// Every task handed to the dispatcher, with the delay it was scheduled after.
    pub fn dispatched(&self) -> Vec<(StepTask, Duration)> {
        self.dispatched.lock().unwrap().clone()
    }

    fn finished(&self, step: &str) -> usize {
        self.events()
            .iter()
            .filter(|(_, e)| {
                matches!(e, Event::StepFinished { step_id, status, .. }
                if step_id.as_str() == step && status.is_terminal())
            })
            .count()
    }
}

impl Observer for Recorder {
    fn on_event(&self, event: &Event) {
        let now = self
            .clock
            .lock()
            .unwrap()
            .as_ref()
            .map_or_else(Utc::now, |c| c.now());
        self.events.lock().unwrap().push((now, event.clone()));
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: String,
    amount: u32,
    #[serde(default)]
    gift: bool,
}

/// Every workflow the scenarios use, with durations scaled by `unit`.
fn registry(recorder: &Arc<Recorder>, unit: Duration) -> Registry {
    let mut registry = Registry::new();
    let r = Arc::clone(recorder);
    let counted = move |name: &'static str| {
        let r = Arc::clone(&r);
        move |_ctx: StepContext, input: Value| {
            let r = Arc::clone(&r);
            async move {
                r.call(name);
                Ok::<Value, StepError>(input)
            }
        }
    };
    let r = Arc::clone(recorder);
    registry
        .register(
            Workflow::builder("linear", "1")
                .then(step("add-one", {
                    let r = Arc::clone(&r);
                    move |_ctx: StepContext, x: i64| {
                        let r = Arc::clone(&r);
                        async move {
                            r.call("add-one");
                            Ok::<i64, StepError>(x + 1)
                        }
                    }
                }))
                .then(step("double", |_ctx: StepContext, x: i64| async move {
                    Ok::<i64, StepError>(x * 2)
                }))
                .then(step("minus-three", |ctx: StepContext, x: i64| async move {
                    ctx.set_state("last", &x).await?;
                    Ok::<i64, StepError>(x - 3)
                }))
                .build()
                .unwrap(),
        )
        .unwrap();
    registry
        .register(
            Workflow::builder("fan-in", "1")
                .then(step("split", counted("split")))
                .parallel([
                    step("p1", |_c: StepContext, x: i64| async move {
                        Ok::<i64, StepError>(x + 1)
                    }),
                    step("p2", |_c: StepContext, x: i64| async move {
                        Ok::<i64, StepError>(x + 2)
                    }),
                    step("p3", |_c: StepContext, x: i64| async move {
                        Ok::<i64, StepError>(x + 3)
                    }),
                ])
                .then(step("join", {
                    let r = Arc::clone(&r);
                    move |_c: StepContext, parts: BTreeMap<String, i64>| {
                        let r = Arc::clone(&r);
                        async move {
                            r.call("join");
                            Ok::<Value, StepError>(
                                json!({ "parts": parts.len(), "sum": parts.values().sum::<i64>() }),
                            )
                        }
                    }
                }))
                .build()
                .unwrap(),
        )
        .unwrap();
    registry
        .register(
            Workflow::builder("flaky", "1")
                .then(
                    step("flaky", {
                        let r = Arc::clone(&r);
                        move |ctx: StepContext, input: Value| {
                            let r = Arc::clone(&r);
                            async move {
                                r.call("flaky");
                                if ctx.attempt() < 3 {
                                    return Err(StepError::retryable("unavailable", "try again"));
                                }
                                Ok(input)
                            }
                        }
                    })
                    .retry(RetryPolicy::default().max_attempts(4).initial_delay(unit)),
                )
                .build()
                .unwrap(),
        )
        .unwrap();
    registry
        .register(
            Workflow::builder("payment", "1")
                .then(step("validate", {
                    let r = Arc::clone(&r);
                    move |_c: StepContext, order: Order| {
                        let r = Arc::clone(&r);
                        async move {
                            r.call("validate");
                            Ok::<Order, StepError>(order)
                        }
                    }
                }))
                .then(step("charge", {
                    let r = Arc::clone(&r);
                    move |_c: StepContext, order: Order| {
                        let r = Arc::clone(&r);
                        async move {
                            if r.call("charge") == 1 {
                                return Err(StepError::terminal(
                                    "card_declined",
                                    "the card was declined",
                                ));
                            }
                            Ok::<Order, StepError>(order)
                        }
                    }
                }))
                .then(step("ship", counted("ship")))
                .build()
                .unwrap(),
        )
        .unwrap();
    registry
        .register(
            Workflow::builder("gift", "1")
                .then(step("validate", |_c: StepContext, o: Order| async move {
                    Ok::<Order, StepError>(o)
                }))
                .then(
                    step("gift-wrap", counted("gift-wrap"))
                        .when(|o: &Value| o["gift"] == json!(true)),
                )
                .then(step("ship", |_c: StepContext, o: Order| async move {
                    Ok::<String, StepError>(format!("shipped {}", o.id))
                }))
                .build()
                .unwrap(),
        )
        .unwrap();
    let slow = move |name: &'static str| {
        let r = Arc::clone(recorder);
        move |ctx: StepContext, input: Value| {
            let r = Arc::clone(&r);
            async move {
                r.call(name);
                for _ in 0..40 {
                    tokio::time::sleep(unit / 4).await;
                    ctx.check_cancelled().await?;
                }
                Ok::<Value, StepError>(input)
            }
        }
    };
    registry
        .register(
            Workflow::builder("slow-parallel", "1")
                .then(step("start", counted("start")))
                .parallel([
                    step("slow-a", slow("slow-a")).timeout(unit * 60),
                    step("slow-b", slow("slow-b")).timeout(unit * 60),
                ])
                .then(step("after", counted("after")))
                .build()
                .unwrap(),
        )
        .unwrap();
    registry
        .register(
            Workflow::builder("approval", "1")
                .then(wait_for_signal("await-approval", "approved", unit * 3600))
                .then(step("notify", counted("notify")))
                .build()
                .unwrap(),
        )
        .unwrap();
    registry
        .register(
            Workflow::builder("cool-off", "1")
                .then(sleep("cool-off", unit * 86_400))
                .then(step("notify", counted("notify")))
                .build()
                .unwrap(),
        )
        .unwrap();
    registry
        .register(
            Workflow::builder("crashy", "1")
                .then(
                    step("slow", {
                        let r = Arc::clone(recorder);
                        move |_c: StepContext, input: Value| {
                            let r = Arc::clone(&r);
                            async move {
                                r.call("slow");
                                tokio::time::sleep(unit * 6).await;
                                Ok::<Value, StepError>(input)
                            }
                        }
                    })
                    .timeout(unit * 10),
                )
                .then(step("after", counted("after")))
                .build()
                .unwrap(),
        )
        .unwrap();
    let mut wide = Workflow::builder("wide", "1").then(step("root", counted("root")));
    wide = wide.parallel((0..100).map(|i| {
        step(
            &format!("branch-{i:03}"),
            |_c: StepContext, x: i64| async move { Ok::<i64, StepError>(x) },
        )
    }));
    registry
        .register(
            wide.then(step(
                "total",
                |_c: StepContext, parts: BTreeMap<String, i64>| async move {
                    Ok::<usize, StepError>(parts.len())
                },
            ))
            .build()
            .unwrap(),
        )
        .unwrap();
    failures::register(&mut registry, recorder, unit);
    registry
}

/// A dispatcher that records every task with the delay it was given, and sends each once
/// or, to exercise duplicate delivery, twice.
#[derive(Debug)]
struct Recording {
    inner: InProcessDispatcher,
    recorder: Arc<Recorder>,
    twice: bool,
}

#[async_trait]
impl Dispatcher for Recording {
    async fn dispatch(&self, tasks: &[StepTask], delay: Duration) -> Result<(), EngineError> {
        self.recorder
            .dispatched
            .lock()
            .unwrap()
            .extend(tasks.iter().map(|t| (t.clone(), delay)));
        self.inner.dispatch(tasks, delay).await?;
        if self.twice {
            self.inner.dispatch(tasks, delay).await?;
        }
        Ok(())
    }
}

/// An executor, a runner and a recorder over one store.
pub struct Bed {
    pub executor: Arc<Executor>,
    pub runner: LocalRunner,
    pub recorder: Arc<Recorder>,
    pub clock: Arc<dyn Clock>,
    /// The chaotic dispatcher in front of the runner's queue, if the bed has one.
    pub chaos: Option<Arc<Chaos>>,
    unit: Duration,
}

impl Bed {
    pub fn new(store: Arc<dyn Store>, unit: Duration) -> Self {
        Self::build(store, unit, Arc::new(Recorder::default()), false)
    }

    fn build(store: Arc<dyn Store>, unit: Duration, recorder: Arc<Recorder>, twice: bool) -> Self {
        Self::assemble(store, unit, recorder, twice, Utc::now(), Vec::new())
    }

    /// A process whose clock reads `start` now (ahead or behind the others).
    pub fn build_at(
        store: Arc<dyn Store>,
        unit: Duration,
        recorder: Arc<Recorder>,
        start: DateTime<Utc>,
    ) -> Self {
        Self::assemble(store, unit, recorder, false, start, Vec::new())
    }

    /// A process whose deployment also has `extra` workflows.
    pub fn build_with(store: Arc<dyn Store>, unit: Duration, extra: Vec<Workflow>) -> Self {
        let recorder = Arc::new(Recorder::default());
        Self::assemble(store, unit, recorder, false, Utc::now(), extra)
    }

    fn assemble(
        store: Arc<dyn Store>,
        unit: Duration,
        recorder: Arc<Recorder>,
        twice: bool,
        start: DateTime<Utc>,
        extra: Vec<Workflow>,
    ) -> Self {
        Self::assemble_chaotic(store, unit, recorder, twice, start, extra, None)
    }

    /// As `assemble`, with tasks passing through a [`Chaos`] dispatcher when given its
    /// rates and seed.
    fn assemble_chaotic(
        store: Arc<dyn Store>,
        unit: Duration,
        recorder: Arc<Recorder>,
        twice: bool,
        start: DateTime<Utc>,
        extra: Vec<Workflow>,
        chaos: Option<(ChaosRates, u64)>,
    ) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(start));
        *recorder.clock.lock().unwrap() = Some(Arc::clone(&clock));
        let (dispatcher, receiver) = InProcessDispatcher::new();
        let mut dispatcher: Arc<dyn Dispatcher> = Arc::new(Recording {
            inner: dispatcher,
            recorder: Arc::clone(&recorder),
            twice,
        });
        let chaos =
            chaos.map(|(rates, seed)| Arc::new(Chaos::new(Arc::clone(&dispatcher), rates, seed)));
        if let Some(chaos) = &chaos {
            dispatcher = Arc::clone(chaos) as Arc<dyn Dispatcher>;
        }
        let config = ExecutorConfig {
            lease_margin: unit * 2,
            chain_margin: unit,
        };
        let mut workflows = registry(&recorder, unit);
        for workflow in extra {
            workflows.register(workflow).unwrap();
        }
        let executor = Arc::new(
            Executor::new(store, dispatcher, Arc::new(workflows), Arc::clone(&clock))
                .with_observer(Arc::clone(&recorder) as Arc<dyn Observer>)
                .with_config(config),
        );
        let runner = LocalRunner::new(Arc::clone(&executor), receiver);
        Self {
            executor,
            runner,
            recorder,
            clock,
            chaos,
            unit,
        }
    }

    pub async fn start(&self, workflow: &str, input: Value) -> RunId {
        let request = StartRequest {
            workflow_id: workflow.into(),
            input,
            ..StartRequest::default()
        };
        self.executor.start(request).await.unwrap().run.run_id
    }

    /// Runs until the run ends or parks for longer than two simulated days.
    pub async fn run(&mut self, run_id: &RunId) -> RunnerOutcome {
        self.runner.run(run_id, self.unit * 200_000).await.unwrap()
    }

    pub async fn finished(&mut self, run_id: &RunId) -> wf_store::WorkflowRun {
        match self.run(run_id).await {
            RunnerOutcome::Finished(run) => run,
            other => panic!("run did not finish: {other:?}"),
        }
    }

    /// Runs the run's tasks until user code of step `id` has started, then kills the
    /// runner mid-step, as a crashed process would. Waits on the event, not on a fixed
    /// time, so a slow machine cannot make the kill land before the step starts.
    pub async fn kill_once_started(&mut self, run_id: &RunId, id: &str) {
        self.run_until(run_id, |r| r.calls(id) > 0).await;
    }

    /// Runs the run's tasks until `reached` holds for the recorder, then kills the runner
    /// (queue and running tasks), as a process that dies there would.
    pub async fn run_until(&mut self, run_id: &RunId, reached: impl Fn(&Recorder) -> bool) {
        let recorder = Arc::clone(&self.recorder);
        let condition = async {
            while !reached(&recorder) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::select! {
            outcome = self.runner.run(run_id, self.unit * 200_000) => {
                panic!("the run got past the point it was to be killed at: {outcome:?}")
            }
            () = condition => {}
        }
        self.runner.abort();
    }

    pub async fn step(&self, run_id: &RunId, id: &str) -> wf_store::StepExecution {
        self.executor
            .store()
            .get_step(run_id, &StepId::parse(id).unwrap())
            .await
            .unwrap()
    }
}

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
