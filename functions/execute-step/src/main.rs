//! Lambda entry point: wiring only. Dependencies are built once per cold start; each
//! invocation borrows them.

use lambda_runtime::{Error, run, service_fn};
use wf_lambda::Deps;

// One thread: Lambda runs one invocation per process, and at this memory size gives the
// function less than one vCPU, so worker threads would add init time (spawning them) and
// memory, not throughput. Records of a batch still run concurrently on it.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let deps = Deps::from_env().await?;
    run(service_fn(|event| execute_step::handle(&deps, event))).await
}
