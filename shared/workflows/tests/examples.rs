//! Every example workflow, run end to end on the embedded store under paused time.
#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use wf_engine::{
    Executor, InProcessDispatcher, LocalRunner, RunnerOutcome, StartRequest, TokioClock,
};
use wf_store::{Retention, RunStatus, SqliteStore, StepId, StepStatus, Store, WorkflowRun};

struct Bed {
    executor: Arc<Executor>,
    runner: LocalRunner,
}

fn bed() -> Bed {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory(Retention::default()).unwrap());
    let (dispatcher, receiver) = InProcessDispatcher::new();
    let executor = Arc::new(Executor::new(
        store,
        Arc::new(dispatcher),
        Arc::new(wf_workflows::registry().unwrap()),
        Arc::new(TokioClock::starting_at(chrono_now())),
    ));
    let runner = LocalRunner::new(Arc::clone(&executor), receiver);
    Bed { executor, runner }
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    wf_store::now_millis()
}

fn input(file: &str) -> Value {
    let path = format!("{}/inputs/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

impl Bed {
    async fn run(&mut self, workflow: &str, input: Value) -> (RunnerOutcome, WorkflowRun) {
        let started = self
            .executor
            .start(StartRequest {
                workflow_id: workflow.into(),
                input,
                ..StartRequest::default()
            })
            .await
            .unwrap();
        let outcome = self
            .runner
            .run(&started.run.run_id, Duration::from_secs(60))
            .await
            .unwrap();
        (outcome, started.run)
    }

    async fn finished(&mut self, workflow: &str, input: Value) -> WorkflowRun {
        match self.run(workflow, input).await.0 {
            RunnerOutcome::Finished(run) => run,
            other => panic!("{workflow} did not finish: {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn order_fulfilment_retries_the_flaky_gateway_and_ships() {
    let mut bed = bed();
    let run = bed.finished("order-fulfilment", input("order.json")).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let output = run.output.unwrap();
    assert_eq!(output["chargedCents"], 12_900 + 3 * 1_499);
    assert_eq!(output["units"], 4);
    let charge = bed
        .executor
        .store()
        .get_step(&run.run_id, &StepId::parse("charge-payment").unwrap())
        .await
        .unwrap();
    assert_eq!((charge.status, charge.attempt), (StepStatus::Completed, 2));
}

#[tokio::test(start_paused = true)]
async fn order_fulfilment_fails_terminally_on_a_declined_card_or_a_bad_order() {
    let mut bed = bed();
    let mut declined = input("order.json");
    declined["card"] = json!("declined");
    let run = bed.finished("order-fulfilment", declined).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.unwrap().code, "card_declined");

    let mut empty_line = input("order.json");
    empty_line["lines"][0]["quantity"] = json!(0);
    let run = bed.finished("order-fulfilment", empty_line).await;
    assert_eq!(run.error.unwrap().code, "invalid_order");
}

#[tokio::test(start_paused = true)]
async fn document_pipeline_fans_out_and_in_over_a_large_document() {
    let mut bed = bed();
    let run = bed
        .finished("document-pipeline", input("document.json"))
        .await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let output = run.output.unwrap();
    assert_eq!(output["chunks"], 4);
    assert_eq!(output["words"], 3_000);
    assert_eq!(output["documentId"], "doc-42");
    assert_eq!(output["longestWord"], "workflow-extraordinarily");

    // A 300 KB document flows through; one over the payload limit is refused up front.
    let big = json!({ "documentId": "big", "text": "lorem ipsum ".repeat(25_000) });
    let run = bed.finished("document-pipeline", big).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let too_big = json!({ "documentId": "huge", "text": "x".repeat(400 * 1024) });
    let error = bed
        .executor
        .start(StartRequest {
            workflow_id: "document-pipeline".into(),
            input: too_big,
            ..StartRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!((error.code(), error.http_status()), ("too_large", 413));
}

#[tokio::test(start_paused = true)]
async fn approval_parks_until_signalled_then_cools_off_and_notifies() {
    let mut bed = bed();
    let (outcome, run) = bed.run("approval", input("approval.json")).await;
    let RunnerOutcome::Parked { .. } = outcome else {
        panic!("approval should park on its signal: {outcome:?}");
    };
    let decision = json!({ "approver": "ada", "approved": true });
    assert_eq!(
        bed.executor
            .signal(&run.run_id, "approved", &decision)
            .await
            .unwrap(),
        1
    );
    let RunnerOutcome::Finished(done) = bed
        .runner
        .run(&run.run_id, Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("approval did not finish");
    };
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(
        done.output.unwrap()["message"],
        "laptop purchase was approved by ada"
    );
}
