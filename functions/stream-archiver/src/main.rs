//! Lambda entry point. A placeholder handler until the engine lands: it acknowledges the
//! event so the function can be deployed and invoked end to end.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({ "accepted": true, "requestId": event.context.request_id }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    run(service_fn(handle)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn acknowledges_an_event() {
        let event = LambdaEvent::new(json!({}), lambda_runtime::Context::default());
        let response = handle(event).await.unwrap();
        assert_eq!(response["accepted"], true);
    }
}
