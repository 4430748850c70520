//! The test bed of the fault-injected suite: the behaviour suite's [`Bed`] over a
//! [`FaultyStore`], its tasks through a [`Chaos`] dispatcher, and the sweep running on its
//! own schedule as in production (every minute, lost dispatches after five; both scaled by
//! `unit`). Clients (starts, signals, cancels, redrives) retry what failed transiently, as
//! a real client would; a start carries an idempotency key so its retry cannot fork a run.
//!
//! Claims are checked on the wrapped store with injection off, after the runner drained.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use wf_store::{RunId, RunStatus, StepStatus, Store, WorkflowRun};

use super::{Bed, ChaosRates, Fault, FaultRates, FaultyStore, Recorder, scenario_seed};
use crate::{EngineError, Event, RunnerOutcome, StartRequest, Workflow};

/// How often the sweep runs, in units (production: every minute).
pub(crate) const SWEEP_EVERY: u32 = 60;
/// How long a ready step waits untouched before the sweep counts its task lost, in units
/// (production: `SWEEP_STALE_AFTER`, five minutes).
pub(crate) const SWEEP_STALE_AFTER: u32 = 300;
/// How long a run may take before it counts as stuck, in units (a bound for a broken
/// engine, far beyond any recovery path; no claim is timed by it).
const STUCK_AFTER: u32 = 20_000;

/// Gaps: lost answers the engine does not recognise yet (issue 11, deliverable 4). The
/// suite spares these; remove an entry when the engine handles it, and the suite tests it.
pub const LOST_ANSWER_GAPS: &[(&str, Fault)] = &[];

/// A bed whose store and dispatcher misbehave.
pub struct FaultBed {
    pub bed: Bed,
    pub faults: Arc<FaultyStore>,
    sweeper: tokio::task::JoinHandle<()>,
    swept: Arc<AtomicU32>,
    unit: Duration,
}

impl Drop for FaultBed {
    fn drop(&mut self) {
        self.sweeper.abort();
    }
}

impl FaultBed {
    /// A bed for scenario `name` (its seed), with the suite's fault and chaos rates and
    /// the sweep on schedule.
    pub fn new(
        store: Arc<dyn Store>,
        unit: Duration,
        name: &str,
        extra: impl FnOnce(&Arc<Recorder>) -> Vec<Workflow>,
    ) -> Self {
        Self::with_rates(
            store,
            unit,
            name,
            FaultRates::suite().sparing(LOST_ANSWER_GAPS),
            ChaosRates::suite(unit),
            extra,
        )
    }

    /// A bed with the given rates.
    pub fn with_rates(
        store: Arc<dyn Store>,
        unit: Duration,
        name: &str,
        rates: FaultRates,
        chaos: ChaosRates,
        extra: impl FnOnce(&Arc<Recorder>) -> Vec<Workflow>,
    ) -> Self {
        let seed = scenario_seed(name);
        let faults = FaultyStore::new(store, rates, seed);
        let recorder = Arc::new(Recorder::default());
        let workflows = extra(&recorder);
        let bed = Bed::assemble_chaotic(
            Arc::clone(&faults) as Arc<dyn Store>,
            unit,
            recorder,
            false,
            Utc::now(),
            workflows,
            Some((chaos, seed.rotate_left(17))),
        );
        let executor = Arc::clone(&bed.executor);
        let swept = Arc::new(AtomicU32::new(0));
        let sweeps = Arc::clone(&swept);
        let sweeper = tokio::spawn(async move {
            let mut every = tokio::time::interval(unit * SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Ok(report) = executor.sweep(unit * SWEEP_STALE_AFTER).await {
                    sweeps.fetch_add(report.tasks_dispatched, Ordering::SeqCst);
                }
            }
        });
        Self {
            bed,
            faults,
            sweeper,
            swept,
            unit,
        }
    }

    /// The store without faults, to check claims on.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.faults.inner()
    }

    /// Stops the scheduled sweep: a scenario then asserts that every run ends without it
    /// (a run that needed it is reported stuck), whatever the time tasks take.
    pub fn stop_sweep(&self) {
        self.sweeper.abort();
    }

    /// Tasks the scheduled sweep dispatched so far.
    pub fn swept(&self) -> u32 {
        self.swept.load(Ordering::SeqCst)
    }

    /// Calls `action` until it does not fail transiently, as a client retries.
    pub async fn retrying<T, F, Fut>(&self, mut action: F) -> Result<T, EngineError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        loop {
            match action().await {
                Err(error) if error.is_retryable() => tokio::time::sleep(self.unit).await,
                result => return result,
            }
        }
    }

    /// Starts a run, retrying under one idempotency key until it is accepted.
    pub async fn start(&self, workflow: &str, input: Value) -> RunId {
        let request = StartRequest {
            workflow_id: workflow.into(),
            input,
            idempotency_key: Some(ulid::Ulid::new().to_string()),
            ..StartRequest::default()
        };
        let executor = &self.bed.executor;
        self.retrying(|| executor.start(request.clone()))
            .await
            .unwrap()
            .run
            .run_id
    }

    /// Runs tasks (and lets the sweep recover lost ones) until the run ends.
    pub async fn finish(&mut self, run_id: &RunId) -> WorkflowRun {
        let began = tokio::time::Instant::now();
        loop {
            match self.bed.runner.run(run_id, self.unit * SWEEP_EVERY).await {
                Ok(RunnerOutcome::Finished(run)) => return run,
                Ok(RunnerOutcome::Idle(_) | RunnerOutcome::Parked { .. }) => {
                    // Nothing to run until the sweep finds the lost work.
                    tokio::time::sleep(self.unit * SWEEP_EVERY).await;
                }
                Err(error) => assert!(error.is_retryable(), "runner failed: {error}"),
            }
            if began.elapsed() > self.unit * STUCK_AFTER {
                self.faults.set_enabled(false);
                let steps = self.store().list_steps(run_id).await.unwrap();
                let steps: Vec<(String, StepStatus, u32)> = steps
                    .iter()
                    .map(|s| (s.step_id.to_string(), s.status, s.attempt))
                    .collect();
                panic!("run {run_id} is stuck: {steps:?}");
            }
        }
    }

    /// Runs tasks until the run's step `step_id` is at `status` (read without faults).
    pub async fn until_step(&mut self, run_id: &RunId, step_id: &str, status: StepStatus) {
        let store = Arc::clone(self.store());
        let id = wf_store::StepId::parse(step_id).unwrap();
        let unit = self.unit;
        let condition = async {
            loop {
                if let Ok(step) = store.get_step(run_id, &id).await
                    && step.status == status
                {
                    return;
                }
                tokio::time::sleep(unit / 5).await;
            }
        };
        let runner = &mut self.bed.runner;
        let run = async {
            loop {
                let _ = runner.run(run_id, unit * SWEEP_EVERY).await;
                tokio::time::sleep(unit * SWEEP_EVERY).await;
            }
        };
        tokio::select! {
            () = condition => {}
            () = run => {}
        }
    }

    /// Lets late and duplicate tasks run, then turns injection off so the claims are read
    /// as they are.
    pub async fn settle(&mut self) {
        self.bed.runner.drain(self.unit * 20).await;
        self.faults.set_enabled(false);
    }

    /// Asserts each of `steps` of the run was committed exactly once with a terminal status
    /// (one `StepFinished`, the step's metric), and the run's end reported `ends` times.
    pub fn assert_committed_once(&self, run_id: &RunId, steps: &[&str], ends: usize) {
        let problems = self.commit_problems(run_id, steps, ends);
        assert!(problems.is_empty(), "{}", problems.join("; "));
    }

    /// What `assert_committed_once` would fail on.
    pub fn commit_problems(&self, run_id: &RunId, steps: &[&str], ends: usize) -> Vec<String> {
        let mut problems = Vec::new();
        let events = self.bed.recorder.events();
        for id in steps {
            let commits: Vec<(u32, StepStatus)> = events
                .iter()
                .filter_map(|(_, e)| match e {
                    Event::StepFinished {
                        run_id: r,
                        step_id,
                        attempt,
                        status,
                        ..
                    } if r == run_id && step_id.as_str() == *id && status.is_terminal() => {
                        Some((*attempt, *status))
                    }
                    _ => None,
                })
                .collect();
            if commits.len() != 1 {
                problems.push(format!(
                    "{id} of {run_id}: {} StepFinished event(s), not 1: {commits:?}",
                    commits.len()
                ));
            }
        }
        let finished: Vec<RunStatus> = events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::RunFinished { run_id: r, status } if r == run_id => Some(*status),
                _ => None,
            })
            .collect();
        if finished.len() != ends {
            problems.push(format!(
                "run {run_id}: {} RunFinished event(s), not {ends}: {finished:?}",
                finished.len()
            ));
        }
        problems
    }

    /// Asserts the run ended in `status`; returns it as stored.
    pub async fn assert_run(&self, run_id: &RunId, status: RunStatus) -> WorkflowRun {
        let run = self.store().get_run(run_id).await.unwrap();
        assert_eq!(run.status, status, "run {run_id}: {:?}", run.error);
        run
    }

    /// Prints what was injected (a failing seed is replayed with `WF_FAULT_SEED`).
    pub fn report(&self, name: &str) {
        let chaos = self
            .bed
            .chaos
            .as_ref()
            .map(|c| c.counts())
            .unwrap_or_default();
        eprintln!(
            "{name}: seed {}, store faults {:?}, dispatch {chaos:?}, swept {}",
            super::fault_seed(),
            self.faults.injected(),
            self.swept()
        );
    }
}
