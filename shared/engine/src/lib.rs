//! The workflow engine: typed workflow definitions, a registry, and the executor that runs
//! steps through a [`Dispatcher`] against any [`wf_store::Store`].
//!
//! Guarantees (each tested in this crate and against DynamoDB Local):
//! 1. Every step runs at least once; its result is committed exactly once (one
//!    all-or-nothing `commit_step` per attempt, conditioned on the step's lease).
//! 2. Every state change is a conditional write, so duplicate or late tasks never move a
//!    run or a step backwards, and never run a completed step's successors twice.
//! 3. Nothing accepted is lost: a task lost between commit and dispatch, or a worker that
//!    dies mid-step, is recovered by [`Executor::sweep`].
//! 4. A run finishes on the workflow version it started with.

mod clock;
mod dispatch;
mod error;
mod executor;
mod registry;
mod retry;
mod step;
mod telemetry;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
mod workflow;

pub use clock::{Clock, SystemClock, TokioClock};
pub use dispatch::{
    Dispatcher, InProcessDispatcher, LocalRunner, RecordingDispatcher, RunnerOutcome, StepTask,
};
#[cfg(feature = "sqs")]
pub use dispatch::{MAX_SQS_DELAY, SqsDispatcher};
pub use error::{EngineError, InputError, ResultExt, StepError};
pub use executor::{Executor, ExecutorConfig, StartRequest, Started, SweepCadence, SweepReport};
pub use registry::Registry;
pub use retry::{Backoff, RetryPolicy, StepConfig};
pub use step::StepContext;
pub use telemetry::{Event, Observer, fields};
pub use workflow::{
    StepSpec, TypedStep, Workflow, WorkflowBuilder, WorkflowInfo, sleep, step, wait_for_signal,
};
