//! In-process dispatch for the CLI and tests: tasks go into a channel, and a
//! [`LocalRunner`] runs them on tokio tasks after their delay. Under paused tokio time the
//! delays cost nothing, so durable sleeps and backoff are tested without waiting.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use wf_store::{RunId, Store, WorkflowRun};

use super::{Dispatcher, StepTask};
use crate::error::EngineError;
use crate::executor::Executor;

/// Sends tasks to the [`LocalRunner`] that holds the other end.
#[derive(Debug, Clone)]
pub struct InProcessDispatcher {
    sender: mpsc::UnboundedSender<(StepTask, Duration)>,
}

impl InProcessDispatcher {
    /// A dispatcher and the receiver a [`LocalRunner`] takes.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<(StepTask, Duration)>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Self { sender }, receiver)
    }
}

#[async_trait]
impl Dispatcher for InProcessDispatcher {
    async fn dispatch(&self, tasks: &[StepTask], delay: Duration) -> Result<(), EngineError> {
        for task in tasks {
            self.sender
                .send((task.clone(), delay))
                .map_err(|_| EngineError::Dispatch {
                    message: "the local runner has stopped".to_owned(),
                    source: None,
                })?;
        }
        Ok(())
    }
}

/// How a [`LocalRunner`] call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunnerOutcome {
    /// The run ended.
    Finished(WorkflowRun),
    /// The run is parked: its next task is due later than the runner was asked to wait
    /// (a long sleep, a signal wait). The store keeps it; `wf resume` or a signal goes on.
    Parked {
        /// The run as it is.
        run: WorkflowRun,
        /// How long until the next task is due.
        next_due_in: Duration,
    },
    /// Nothing is queued or running, yet the run has not ended (tasks were lost, e.g. by
    /// a crash; a sweep re-dispatches them).
    Idle(WorkflowRun),
}

/// Runs dispatched tasks in this process.
#[derive(Debug)]
pub struct LocalRunner {
    executor: Arc<Executor>,
    receiver: mpsc::UnboundedReceiver<(StepTask, Duration)>,
    queue: BinaryHeap<Reverse<(Instant, u64, StepTask)>>,
    sequence: u64,
    running: JoinSet<(StepTask, Result<(), EngineError>)>,
    budget: Option<Duration>,
    /// Time spent executing tasks, summed: what execute-step invocations would bill.
    busy: Arc<Mutex<Duration>>,
    /// Most tasks run at once (none: every due task).
    max_running: Option<usize>,
    /// Where the runner looks at the run it waits for (by default the executor's store).
    watch: Option<Arc<dyn Store>>,
}

/// How long a task that failed with a transient error waits before it runs again, as an
/// SQS message would after its visibility timeout.
const REDELIVERY_DELAY: Duration = Duration::from_millis(200);

impl LocalRunner {
    /// A runner executing with `executor` the tasks that arrive on `receiver`.
    pub fn new(
        executor: Arc<Executor>,
        receiver: mpsc::UnboundedReceiver<(StepTask, Duration)>,
    ) -> Self {
        Self {
            executor,
            receiver,
            queue: BinaryHeap::new(),
            sequence: 0,
            running: JoinSet::new(),
            budget: None,
            busy: Arc::default(),
            max_running: None,
            watch: None,
        }
    }

    /// Executes each task with this much time, as a Lambda invocation would have: a
    /// task then chains a single ready successor instead of dispatching it.
    #[must_use]
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Runs at most `max` tasks at once, as that many Lambda instances would: with one,
    /// each task's time is its own, not shared with others on this machine's cores.
    #[must_use]
    pub fn with_max_running(mut self, max: usize) -> Self {
        self.max_running = Some(max.max(1));
        self
    }

    /// Looks at the awaited run through `store` (the same table), so that a measurement
    /// of the executor's store leaves out the runner's own looks, which no deployment
    /// makes.
    #[must_use]
    pub fn with_watch_store(mut self, store: Arc<dyn Store>) -> Self {
        self.watch = Some(store);
        self
    }

    /// Time spent executing tasks so far, summed over tasks (durable sleeps and waits,
    /// which are queue delays, are not in it): what execute-step invocations would bill,
    /// an upper bound when tasks of one batch run side by side.
    pub fn busy(&self) -> Duration {
        self.busy.lock().map_or(Duration::ZERO, |busy| *busy)
    }

    fn enqueue(&mut self, task: StepTask, delay: Duration) {
        self.sequence += 1;
        self.queue
            .push(Reverse((Instant::now() + delay, self.sequence, task)));
    }

    fn start_due(&mut self) {
        let now = Instant::now();
        while self
            .queue
            .peek()
            .is_some_and(|Reverse((due, _, _))| *due <= now)
            && self.max_running.is_none_or(|max| self.running.len() < max)
        {
            if let Some(Reverse((_, _, task))) = self.queue.pop() {
                let executor = Arc::clone(&self.executor);
                let budget = self.budget;
                let busy = Arc::clone(&self.busy);
                self.running.spawn(async move {
                    let started = Instant::now();
                    let result = executor.execute(&task, budget).await;
                    if let Ok(mut busy) = busy.lock() {
                        *busy += started.elapsed();
                    }
                    (task, result)
                });
            }
        }
    }

    /// Runs tasks until `run_id` ends, or until its next task is due more than `max_wait`
    /// from now, or nothing is left to run.
    pub async fn run(
        &mut self,
        run_id: &RunId,
        max_wait: Duration,
    ) -> Result<RunnerOutcome, EngineError> {
        loop {
            while let Ok((task, delay)) = self.receiver.try_recv() {
                self.enqueue(task, delay);
            }
            self.start_due();
            let next_due = self.queue.peek().map(|Reverse((due, _, _))| *due);
            if self.running.is_empty() {
                let store = self.watch.as_ref().unwrap_or(self.executor.store());
                let run = match store.get_run(run_id).await {
                    Ok(run) => run,
                    // A throttle or a 5xx says nothing about the run: look again shortly.
                    Err(error) if error.is_retryable() => {
                        tokio::time::sleep(REDELIVERY_DELAY).await;
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                };
                if run.status.is_terminal() {
                    return Ok(RunnerOutcome::Finished(run));
                }
                match next_due {
                    None => return Ok(RunnerOutcome::Idle(run)),
                    Some(due) if due.saturating_duration_since(Instant::now()) > max_wait => {
                        return Ok(RunnerOutcome::Parked {
                            run,
                            next_due_in: due.saturating_duration_since(Instant::now()),
                        });
                    }
                    Some(_) => {}
                }
            }
            // With every slot taken, a due task waits for one to free, not for its time.
            let full = self
                .max_running
                .is_some_and(|max| self.running.len() >= max);
            let wake = next_due
                .filter(|_| !full)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                Some(result) = self.running.join_next(), if !self.running.is_empty() => {
                    match result {
                        Ok((_, Ok(()))) => {}
                        Ok((task, Err(error))) => {
                            tracing::warn!(error = %error, step_id = %task.step_id, "step task failed; delivering it again");
                            self.enqueue(task, REDELIVERY_DELAY);
                        }
                        Err(join) => tracing::error!(error = %join, "step task panicked"),
                    }
                }
                Some((task, delay)) = self.receiver.recv() => self.enqueue(task, delay),
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Runs every task in flight and every queued task due within `horizon` (of any run),
    /// then returns: late duplicates get their turn before a test checks what they did.
    pub async fn drain(&mut self, horizon: Duration) {
        let until = Instant::now() + horizon;
        loop {
            while let Ok((task, delay)) = self.receiver.try_recv() {
                self.enqueue(task, delay);
            }
            self.start_due();
            let next_due = self
                .queue
                .peek()
                .map(|Reverse((due, _, _))| *due)
                .filter(|due| *due <= until);
            if self.running.is_empty() && next_due.is_none() {
                return;
            }
            let wake = next_due.unwrap_or(until);
            tokio::select! {
                Some(result) = self.running.join_next(), if !self.running.is_empty() => {
                    if let Ok((task, Err(error))) = result {
                        tracing::warn!(error = %error, step_id = %task.step_id, "step task failed; delivering it again");
                        self.enqueue(task, REDELIVERY_DELAY);
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Stops every task in flight, as a crash would.
    pub fn abort(&mut self) {
        self.running.abort_all();
        self.queue.clear();
    }
}
