//! Signals: a run-scoped payload kept for the run, and the waits it wakes.

use std::time::Duration;

use serde_json::Value;
use tracing::info;
use wf_store::{RunId, StepStatus};

use crate::dispatch::StepTask;
use crate::error::EngineError;

use super::{Executor, signal_key};

impl Executor {
    /// Delivers a signal: its payload is kept for the run (so a wait that starts later
    /// sees it) and every step waiting for it wakes. Returns how many steps woke.
    ///
    /// A signal is a run-scoped latch, not a queue: once sent, every wait on its name
    /// (now or later in the run) completes with the latest payload sent. `UnknownSignal`
    /// (nothing stored) when the run's workflow never waits for `name`.
    ///
    /// A wait that checks for its signal and then parks can race with this call; the
    /// wait looks again after it parks (see `after_commit`), so whichever of the two
    /// writes lands second sees the other.
    pub async fn signal(
        &self,
        run_id: &RunId,
        name: &str,
        payload: &Value,
    ) -> Result<u32, EngineError> {
        let run = self.get_run_head(run_id).await?;
        if run.status.is_terminal() {
            return Err(EngineError::InvalidState {
                run_id: *run_id,
                status: run.status,
                action: "signal",
            });
        }
        let workflow = self.registry.get(&run.workflow_id, &run.workflow_version)?;
        if !workflow.signals().any(|s| s == name) {
            let names: Vec<&str> = workflow.signals().collect();
            return Err(EngineError::UnknownSignal {
                run_id: *run_id,
                name: name.to_owned(),
                expected: if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                },
            });
        }
        let now = self.clock.now();
        self.store
            .set_state(run_id, &signal_key(name)?, payload, now)
            .await?;
        let mut woken = 0;
        for step in self.store.list_steps(run_id).await? {
            if step.status == StepStatus::Waiting && step.waiting_for.as_deref() == Some(name) {
                self.dispatcher
                    .dispatch(
                        &[StepTask {
                            run_id: *run_id,
                            step_id: step.step_id.clone(),
                            attempt: step.attempt,
                        }],
                        Duration::ZERO,
                    )
                    .await?;
                woken += 1;
            }
        }
        info!(run_id = %run_id, signal = name, woken, "signal delivered");
        Ok(woken)
    }
}
