//! Lambda entry point: wiring only. Dependencies are built once per cold start; each
//! invocation borrows them.

use lambda_runtime::{Error, run, service_fn};
use wf_lambda::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let deps = Deps::from_env().await?;
    run(service_fn(|event| start_run::handle(&deps, event))).await
}
