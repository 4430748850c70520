//! A store wrapper that injects the faults a real backend shows, drawn from a seeded RNG
//! so a failing run can be replayed: throttling and 5xx before the write (nothing applied),
//! and answers lost after the write was applied, either as a timeout or 5xx (the SDK's
//! retries ran out) or as the SDK's own retry meeting the write it just made. Reads fail
//! too. Every fault is counted, so a scenario can show that faults were injected.
//!
//! [`fault_seed`] reads the seed from `WF_FAULT_SEED` (the README's test command sets it).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use wf_store::{
    CommitReceipt, LeaseFence, NewRun, NewStep, Page, RunGuard, RunId, RunQuery, RunRecord,
    RunTransition, StateEntry, StateKey, StepClaim, StepCommit, StepExecution, StepId, StepOutput,
    StepTransition, Store, StoreError, WorkflowRun,
};

/// The seed when `WF_FAULT_SEED` is not set.
pub const DEFAULT_FAULT_SEED: u64 = 11;

/// The seed of the fault-injected suite: `WF_FAULT_SEED`, or [`DEFAULT_FAULT_SEED`].
pub fn fault_seed() -> u64 {
    std::env::var("WF_FAULT_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_FAULT_SEED)
}

/// A seed of its own for each scenario, so that one scenario's draws do not depend on
/// which others ran (FNV-1a of the name, mixed with the suite's seed).
pub fn scenario_seed(name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^ fault_seed()
}

/// How often each fault is injected, as a probability per call.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRates {
    /// A write answers `Throttled`; nothing was applied.
    pub throttle: f64,
    /// A write answers a retryable 5xx; nothing was applied.
    pub error_before: f64,
    /// A write is applied and its answer lost: half of these answer a retryable timeout
    /// or 5xx, the other half are retried once more, as the SDK would, and answer what
    /// that retry met (usually a failed condition: the write's own earlier success).
    pub lost_answer: f64,
    /// A read answers `Throttled` or a retryable 5xx.
    pub read_error: f64,
    /// Calls (by method name) never given this kind of lost answer: gaps the engine does
    /// not handle yet, each named where the list is kept.
    pub spare_lost_answer: Vec<(&'static str, Fault)>,
    /// The calls (by method name) faults are injected on; empty: every call.
    pub only: Vec<&'static str>,
    /// The kinds of lost answer drawn from.
    pub lost_modes: Vec<Fault>,
}

impl FaultRates {
    /// No faults at all.
    pub fn none() -> Self {
        Self {
            throttle: 0.0,
            error_before: 0.0,
            lost_answer: 0.0,
            read_error: 0.0,
            spare_lost_answer: Vec::new(),
            only: Vec::new(),
            lost_modes: vec![Fault::LostThenTimeout, Fault::LostThenRetried],
        }
    }

    /// Only lost answers of one kind, on one call, at `rate`.
    pub fn lost_answers(call: &'static str, mode: Fault, rate: f64) -> Self {
        Self {
            lost_answer: rate,
            only: vec![call],
            lost_modes: vec![mode],
            ..Self::none()
        }
    }

    /// The rates of the fault-injected behaviour suite: about one call in ten fails.
    pub fn suite() -> Self {
        Self {
            throttle: 0.03,
            error_before: 0.03,
            lost_answer: 0.04,
            read_error: 0.03,
            ..Self::none()
        }
    }

    /// Never loses the answer of these calls in these ways.
    #[must_use]
    pub fn sparing(mut self, calls: &[(&'static str, Fault)]) -> Self {
        self.spare_lost_answer.extend_from_slice(calls);
        self
    }
}

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// `Throttled`, nothing applied.
    Throttle,
    /// A retryable 5xx, nothing applied.
    ErrorBefore,
    /// Applied, then a retryable timeout.
    LostThenTimeout,
    /// Applied, then retried once; the retry's answer is returned.
    LostThenRetried,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Self::Throttle => "throttle",
            Self::ErrorBefore => "error_before",
            Self::LostThenTimeout => "lost_then_timeout",
            Self::LostThenRetried => "lost_then_retried",
        }
    }
}

fn service_unavailable() -> StoreError {
    StoreError::Backend {
        message: "injected: service unavailable (503)".to_owned(),
        retryable: true,
        source: None,
    }
}

fn timed_out() -> StoreError {
    StoreError::Backend {
        message: "injected: the request timed out after the write was applied".to_owned(),
        retryable: true,
        source: None,
    }
}

/// The wrapper.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    rates: FaultRates,
    rng: Mutex<fastrand::Rng>,
    enabled: AtomicBool,
    injected: Mutex<BTreeMap<(&'static str, &'static str), u32>>,
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore")
            .field("rates", &self.rates)
            .finish_non_exhaustive()
    }
}

impl FaultyStore {
    /// Wraps `inner`, drawing faults at `rates` from an RNG seeded with `seed`.
    pub fn new(inner: Arc<dyn Store>, rates: FaultRates, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            inner,
            rates,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            enabled: AtomicBool::new(true),
            injected: Mutex::new(BTreeMap::new()),
        })
    }

    /// The wrapped store, reached without faults (what a test checks its claims on).
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// Turns injection on or off (off: every call goes straight through).
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::SeqCst);
    }

    /// Faults injected so far, by (call, fault).
    pub fn injected(&self) -> BTreeMap<(&'static str, &'static str), u32> {
        self.injected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How many faults were injected in all.
    pub fn injected_total(&self) -> u32 {
        self.injected().values().sum()
    }

    fn draw(&self, call: &'static str, write: bool) -> Option<Fault> {
        if !self.enabled.load(Ordering::SeqCst) {
            return None;
        }
        let rates = &self.rates;
        if !rates.only.is_empty() && !rates.only.contains(&call) {
            return None;
        }
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let roll = rng.f64();
        let fault = if write {
            if roll < rates.throttle {
                Some(Fault::Throttle)
            } else if roll < rates.throttle + rates.error_before {
                Some(Fault::ErrorBefore)
            } else if roll < rates.throttle + rates.error_before + rates.lost_answer {
                let lost = rates
                    .lost_modes
                    .get(rng.usize(..rates.lost_modes.len().max(1)));
                lost.copied()
                    .filter(|lost| !rates.spare_lost_answer.contains(&(call, *lost)))
            } else {
                None
            }
        } else if roll < rates.read_error {
            Some(if rng.bool() {
                Fault::Throttle
            } else {
                Fault::ErrorBefore
            })
        } else {
            None
        };
        drop(rng);
        if let Some(fault) = fault {
            *self
                .injected
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry((call, fault.name()))
                .or_default() += 1;
        }
        fault
    }

    async fn read<T, F>(&self, call: &'static str, fut: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        match self.draw(call, false) {
            Some(Fault::Throttle) => Err(StoreError::Throttled),
            Some(_) => Err(service_unavailable()),
            None => fut.await,
        }
    }

    async fn write<'a, T, F, Fut>(&'a self, call: &'static str, send: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut + 'a,
        Fut: Future<Output = Result<T, StoreError>> + 'a,
    {
        match self.draw(call, true) {
            None => send().await,
            Some(Fault::Throttle) => Err(StoreError::Throttled),
            Some(Fault::ErrorBefore) => Err(service_unavailable()),
            Some(Fault::LostThenTimeout) => {
                let _lost = send().await;
                Err(timed_out())
            }
            Some(Fault::LostThenRetried) => {
                let _lost = send().await;
                send().await
            }
        }
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn create_run(&self, run: &NewRun, steps: &[NewStep]) -> Result<WorkflowRun, StoreError> {
        self.write("create_run", || self.inner.create_run(run, steps))
            .await
    }
    async fn get_run(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        self.read("get_run", self.inner.get_run(run_id)).await
    }
    async fn get_run_head(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        self.read("get_run_head", self.inner.get_run_head(run_id))
            .await
    }
    async fn peek_run_head(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        self.read("peek_run_head", self.inner.peek_run_head(run_id))
            .await
    }
    async fn load_run_input(&self, run_id: &RunId) -> Result<Value, StoreError> {
        self.read("load_run_input", self.inner.load_run_input(run_id))
            .await
    }
    async fn peek_step(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<StepExecution, StoreError> {
        self.read("peek_step", self.inner.peek_step(run_id, step_id))
            .await
    }
    async fn create_step_guarded(
        &self,
        run_id: &RunId,
        step: &NewStep,
        guard: RunGuard,
        at: DateTime<Utc>,
    ) -> Result<StepExecution, StoreError> {
        self.write("create_step_guarded", || {
            self.inner.create_step_guarded(run_id, step, guard, at)
        })
        .await
    }
    async fn request_cancel(
        &self,
        run_id: &RunId,
        step_id: &StepId,
        guard: RunGuard,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write("request_cancel", || {
            self.inner.request_cancel(run_id, step_id, guard, at)
        })
        .await
    }
    async fn transition_run(
        &self,
        run_id: &RunId,
        transition: &RunTransition,
    ) -> Result<WorkflowRun, StoreError> {
        self.write("transition_run", || {
            self.inner.transition_run(run_id, transition)
        })
        .await
    }
    async fn create_step(
        &self,
        run_id: &RunId,
        step: &NewStep,
        at: DateTime<Utc>,
    ) -> Result<StepExecution, StoreError> {
        self.write("create_step", || self.inner.create_step(run_id, step, at))
            .await
    }
    async fn get_step(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<StepExecution, StoreError> {
        self.read("get_step", self.inner.get_step(run_id, step_id))
            .await
    }
    async fn list_steps(&self, run_id: &RunId) -> Result<Vec<StepExecution>, StoreError> {
        self.read("list_steps", self.inner.list_steps(run_id)).await
    }
    async fn claim_step(&self, claim: &StepClaim) -> Result<StepExecution, StoreError> {
        self.write("claim_step", || self.inner.claim_step(claim))
            .await
    }
    async fn transition_step(
        &self,
        transition: &StepTransition,
    ) -> Result<StepExecution, StoreError> {
        self.write("transition_step", || self.inner.transition_step(transition))
            .await
    }
    async fn commit_step(&self, commit: &StepCommit) -> Result<CommitReceipt, StoreError> {
        self.write("commit_step", || self.inner.commit_step(commit))
            .await
    }
    async fn save_output(
        &self,
        run_id: &RunId,
        step_id: &StepId,
        output: &Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write("save_output", || {
            self.inner.save_output(run_id, step_id, output, at)
        })
        .await
    }
    async fn load_output(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<Option<StepOutput>, StoreError> {
        self.read("load_output", self.inner.load_output(run_id, step_id))
            .await
    }
    async fn load_outputs(
        &self,
        run_id: &RunId,
        step_ids: &[StepId],
    ) -> Result<Vec<StepOutput>, StoreError> {
        self.read("load_outputs", self.inner.load_outputs(run_id, step_ids))
            .await
    }
    async fn set_state(
        &self,
        run_id: &RunId,
        key: &StateKey,
        value: &Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write("set_state", || self.inner.set_state(run_id, key, value, at))
            .await
    }
    async fn get_state(&self, run_id: &RunId, key: &StateKey) -> Result<Option<Value>, StoreError> {
        self.read("get_state", self.inner.get_state(run_id, key))
            .await
    }
    async fn delete_state(&self, run_id: &RunId, key: &StateKey) -> Result<bool, StoreError> {
        self.write("delete_state", || self.inner.delete_state(run_id, key))
            .await
    }
    async fn set_state_leased(
        &self,
        run_id: &RunId,
        key: &StateKey,
        value: &Value,
        at: DateTime<Utc>,
        lease: &LeaseFence,
    ) -> Result<(), StoreError> {
        self.write("set_state_leased", || {
            self.inner.set_state_leased(run_id, key, value, at, lease)
        })
        .await
    }
    async fn delete_state_leased(
        &self,
        run_id: &RunId,
        key: &StateKey,
        lease: &LeaseFence,
    ) -> Result<bool, StoreError> {
        self.write("delete_state_leased", || {
            self.inner.delete_state_leased(run_id, key, lease)
        })
        .await
    }
    async fn has_state(&self, run_id: &RunId, key: &StateKey) -> Result<bool, StoreError> {
        self.read("has_state", self.inner.has_state(run_id, key))
            .await
    }
    async fn all_state(&self, run_id: &RunId) -> Result<Vec<StateEntry>, StoreError> {
        self.read("all_state", self.inner.all_state(run_id)).await
    }
    async fn list_runs(&self, query: &RunQuery) -> Result<Page<WorkflowRun>, StoreError> {
        self.read("list_runs", self.inner.list_runs(query)).await
    }
    async fn export_run(&self, run_id: &RunId) -> Result<RunRecord, StoreError> {
        self.read("export_run", self.inner.export_run(run_id)).await
    }
    async fn delete_run(&self, run_id: &RunId) -> Result<(), StoreError> {
        self.write("delete_run", || self.inner.delete_run(run_id))
            .await
    }
    async fn export_run_children(&self, run: &WorkflowRun) -> Result<RunRecord, StoreError> {
        self.read("export_run_children", self.inner.export_run_children(run))
            .await
    }
    async fn delete_run_children(&self, record: &RunRecord) -> Result<(), StoreError> {
        self.write("delete_run_children", || {
            self.inner.delete_run_children(record)
        })
        .await
    }
    async fn import_run(&self, record: &RunRecord) -> Result<(), StoreError> {
        self.write("import_run", || self.inner.import_run(record))
            .await
    }
}
