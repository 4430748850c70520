//! Executes the steps that the console's actions dispatch. One task owns the
//! [`LocalRunner`]; actions nudge it with the run they touched. It keeps driving every
//! nudged run until the run ends or has nothing queued (a signal wait), and waits out
//! long sleeps without spinning.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::mpsc;
use wf_engine::{LocalRunner, RunnerOutcome};
use wf_store::RunId;

/// A queued task due later than this parks the runner; it wakes when it is due or when
/// the next action comes.
const PARK_AFTER: Duration = Duration::from_secs(60);

/// The handle actions nudge.
#[derive(Debug, Clone)]
pub(crate) struct Driver {
    nudges: mpsc::UnboundedSender<RunId>,
}

impl Driver {
    /// Starts the driving task on the current tokio runtime.
    pub(crate) fn spawn(runner: LocalRunner) -> Self {
        let (nudges, receiver) = mpsc::unbounded_channel();
        tokio::spawn(drive(runner, receiver));
        Self { nudges }
    }

    /// Asks for `run_id`'s queued steps to be executed.
    pub(crate) fn nudge(&self, run_id: RunId) {
        if self.nudges.send(run_id).is_err() {
            tracing::error!(%run_id, "the console's step runner has stopped");
        }
    }
}

async fn drive(mut runner: LocalRunner, mut nudges: mpsc::UnboundedReceiver<RunId>) {
    let mut active = BTreeSet::new();
    let mut wake_in: Option<Duration> = None;
    loop {
        let next = match wake_in {
            Some(delay) => match tokio::time::timeout(delay, nudges.recv()).await {
                Ok(None) => return,
                Ok(Some(run_id)) => Some(run_id),
                Err(_) => None,
            },
            None => match nudges.recv().await {
                Some(run_id) => Some(run_id),
                None => return,
            },
        };
        active.extend(next);
        while let Ok(run_id) = nudges.try_recv() {
            active.insert(run_id);
        }
        wake_in = None;
        for run_id in active.clone() {
            match runner.run(&run_id, PARK_AFTER).await {
                Ok(RunnerOutcome::Parked { next_due_in, .. }) => {
                    wake_in = Some(wake_in.map_or(next_due_in, |w| w.min(next_due_in)));
                }
                Ok(RunnerOutcome::Finished(_) | RunnerOutcome::Idle(_)) => {
                    active.remove(&run_id);
                }
                Err(error) => {
                    tracing::warn!(%run_id, %error, "could not drive run");
                    active.remove(&run_id);
                }
            }
        }
    }
}
