//! The bed every scenario runs on: an executor, a runner, and a recorder of what user
//! code did and which tasks were dispatched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use wf_store::{RunId, StepId, Store};

use super::registry;
use super::{Chaos, ChaosRates};
use crate::{
    Clock, Dispatcher, EngineError, Event, Executor, ExecutorConfig, InProcessDispatcher,
    LocalRunner, Observer, RunnerOutcome, StartRequest, StepTask, TokioClock, Workflow,
};

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
    pub(super) fn call(&self, step: &str) -> u32 {
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

    pub(super) fn finished(&self, step: &str) -> usize {
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

    pub(super) fn build(
        store: Arc<dyn Store>,
        unit: Duration,
        recorder: Arc<Recorder>,
        twice: bool,
    ) -> Self {
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

    pub(super) fn assemble(
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
    pub(super) fn assemble_chaotic(
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
