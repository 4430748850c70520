//! The dispatch port: how step tasks reach a worker. The engine only ever asks to run a
//! task now or after a delay; SQS (in the functions) and an in-process queue (CLI, tests)
//! implement it.

mod in_process;
#[cfg(feature = "sqs")]
mod sqs;

use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wf_store::{RunId, StepId};

use crate::error::EngineError;

pub use in_process::{InProcessDispatcher, LocalRunner, RunnerOutcome};
#[cfg(feature = "sqs")]
pub use sqs::{MAX_SQS_DELAY, SqsDispatcher};

/// One unit of work: run attempt `attempt` of a step. Small on purpose: payloads are read
/// from the store, never carried in the message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepTask {
    /// The run.
    pub run_id: RunId,
    /// The step.
    pub step_id: StepId,
    /// The attempt the task is for.
    pub attempt: u32,
}

/// Sends step tasks to workers. Delivery is at least once; the executor tolerates
/// duplicates and early or late arrivals.
#[async_trait]
pub trait Dispatcher: Send + Sync + Debug {
    /// Delivers `tasks` after `delay` (zero: now). Longer delays than the transport allows
    /// are fine: a task that arrives early is re-dispatched for the remaining time.
    async fn dispatch(&self, tasks: &[StepTask], delay: Duration) -> Result<(), EngineError>;
}

/// A dispatcher that records what it was asked to send, for tests.
#[derive(Debug, Default)]
pub struct RecordingDispatcher {
    sent: Mutex<Vec<(StepTask, Duration)>>,
}

impl RecordingDispatcher {
    /// Everything dispatched so far, with its delay, and forgets it.
    pub fn take(&self) -> Vec<(StepTask, Duration)> {
        std::mem::take(
            &mut *self
                .sent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

#[async_trait]
impl Dispatcher for RecordingDispatcher {
    async fn dispatch(&self, tasks: &[StepTask], delay: Duration) -> Result<(), EngineError> {
        let mut sent = self
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sent.extend(tasks.iter().map(|t| (t.clone(), delay)));
        Ok(())
    }
}
