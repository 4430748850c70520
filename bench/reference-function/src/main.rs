//! The benchmark's reference: the smallest `lambda_runtime` function (the runtime's
//! `basic-lambda` example, echoing its event), built with the workspace's release profile.
//! `scripts/bench-functions.py` starts it side by side with the real functions, so their
//! cold start is reported as a ratio to what a bare Rust Lambda costs on the same machine.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

async fn echo(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(event.payload)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    run(service_fn(echo)).await
}
