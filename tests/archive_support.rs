//! Shared by the archive tests and the archive benchmark: finished runs written through
//! the store, and real DynamoDB stream records turned into the Lambda event shape.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use chrono::{TimeDelta, Utc};
use serde_json::{Map, Value, json};
use wf_store::{
    NewRun, NewStep, RunId, RunStatus, RunTransition, StateKey, StepClaim, StepCommit, StepId,
    StepOutcome, StepStatus, Store, WorkflowId, WorkflowRun,
};

/// A completed run of `steps` steps, each with an output, and one state entry.
pub(crate) async fn finished_run(
    store: &dyn Store,
    workflow: &str,
    steps: u32,
    retention_days: Option<u32>,
) -> WorkflowRun {
    let at = Utc::now();
    let new_steps: Vec<NewStep> = (0..steps)
        .map(|i| NewStep {
            step_id: StepId::parse(format!("step-{i}")).unwrap(),
            execution_index: i,
            status: StepStatus::Ready,
            parents_total: 0,
            not_before: None,
        })
        .collect();
    let run = store
        .create_run(
            &NewRun {
                run_id: RunId::generate(),
                workflow_id: WorkflowId::parse(workflow).unwrap(),
                workflow_version: "1".into(),
                status: RunStatus::Running,
                total_steps: steps,
                input: json!({ "orderId": "o-1", "lines": [{ "sku": "a", "quantity": 2 }] }),
                resource_id: Some("o-1".into()),
                tags: BTreeMap::from([("env".into(), "test".into())]),
                idempotency_key: None,
                retention_days,
                created_at: at,
            },
            &new_steps,
        )
        .await
        .unwrap();
    for step in &new_steps {
        let owner = format!("worker-{}", step.step_id);
        store
            .claim_step(&StepClaim {
                run_id: run.run_id,
                step_id: step.step_id.clone(),
                attempt: 1,
                owner: owner.clone(),
                now: at,
                lease_until: at + TimeDelta::seconds(60),
                if_absent: None,
                wake: None,
                park: None,
            })
            .await
            .unwrap();
        store
            .commit_step(&StepCommit {
                run_id: run.run_id,
                step_id: step.step_id.clone(),
                attempt: 1,
                lease_owner: owner,
                outcome: StepOutcome::Completed {
                    output: json!({ "step": step.step_id.as_str(), "ok": true, "note": "x".repeat(200) }),
                },
                successors: Vec::new(),
                completed_steps: 1,
                duration_ms: 5,
                at,
            })
            .await
            .unwrap();
    }
    store
        .set_state(
            &run.run_id,
            &StateKey::parse("customer").unwrap(),
            &json!({ "name": "Ada" }),
            at,
        )
        .await
        .unwrap();
    let run = store.get_run(&run.run_id).await.unwrap();
    store
        .transition_run(
            &run.run_id,
            &RunTransition {
                expected_status: run.status,
                expected_version: run.version,
                status: RunStatus::Completed,
                at: Utc::now(),
                output: Some(json!({ "shipped": true })),
                output_from: Vec::new(),
                error: None,
            },
        )
        .await
        .unwrap()
}

/// An attribute value in DynamoDB JSON, as Lambda delivers it.
pub(crate) fn attribute_json(value: &AttributeValue) -> Value {
    use base64::Engine as _;
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(b.as_ref())
    };
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": image_json(m) }),
        other => panic!("unexpected attribute value {other:?}"),
    }
}

/// An item in DynamoDB JSON.
pub(crate) fn image_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect::<Map<_, _>>(),
    )
}

/// One Streams API record in the shape of a Lambda DynamoDB event record. The Streams
/// API spells the identity `Type`/`PrincipalId`; the Lambda event `type`/`principalId`.
pub(crate) fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let change = record.dynamodb().unwrap();
    let mut dynamodb = Map::new();
    if let Some(at) = change.approximate_creation_date_time() {
        dynamodb.insert(
            "ApproximateCreationDateTime".into(),
            json!(at.as_secs_f64()),
        );
    }
    for (name, image) in [
        ("Keys", change.keys()),
        ("NewImage", change.new_image()),
        ("OldImage", change.old_image()),
    ] {
        if let Some(image) = image {
            dynamodb.insert(name.into(), image_json(image));
        }
    }
    dynamodb.insert("SequenceNumber".into(), json!(change.sequence_number()));
    dynamodb.insert("SizeBytes".into(), json!(change.size_bytes().unwrap_or(0)));
    dynamodb.insert(
        "StreamViewType".into(),
        json!(
            change
                .stream_view_type()
                .map(aws_sdk_dynamodbstreams::types::StreamViewType::as_str)
        ),
    );
    let mut out = json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(aws_sdk_dynamodbstreams::types::OperationType::as_str),
        "eventVersion": record.event_version(),
        "eventSource": record.event_source(),
        "awsRegion": record.aws_region(),
        "eventSourceARN": stream_arn,
        "dynamodb": dynamodb,
    });
    if let Some(identity) = record.user_identity() {
        out["userIdentity"] = json!({
            "type": identity.r#type(),
            "principalId": identity.principal_id(),
        });
    }
    out
}

/// Every record of the stream so far, from the start of each shard.
pub(crate) async fn read_stream(
    client: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
) -> Vec<Record> {
    let stream = client
        .describe_stream()
        .stream_arn(stream_arn)
        .send()
        .await
        .unwrap();
    let mut records = Vec::new();
    for shard in stream.stream_description().unwrap().shards() {
        let mut iterator = client
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard.shard_id().unwrap())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_owned);
        while let Some(current) = iterator {
            let page = client
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .unwrap();
            if page.records().is_empty() {
                break;
            }
            records.extend(page.records().iter().cloned());
            iterator = page.next_shard_iterator().map(str::to_owned);
        }
    }
    records
}
