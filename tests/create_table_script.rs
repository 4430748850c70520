//! `scripts/create-dynamodb-table.sh` against DynamoDB Local: it creates the seed's table
//! (checked with `DescribeTable` and `DescribeTimeToLive`), and a second run is a no-op.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed expectation must fail the test"
)]

use std::process::{Command, Output};

use aws_sdk_dynamodb::types::{
    BillingMode, KeyType, ProjectionType, ScalarAttributeType, StreamViewType, TimeToLiveStatus,
};
use wf_integration_tests::{dynamodb_client, require_dynamodb, unique_table_name, workspace_root};

fn run_script(endpoint: &str, table: Option<&str>) -> Output {
    let mut command = Command::new("bash");
    command
        .arg(workspace_root().join("scripts/create-dynamodb-table.sh"))
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DYNAMODB_TABLE_NAME")
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB");
    if let Some(table) = table {
        command.env("AWS_DYNAMODB_TABLE_NAME", table);
    }
    command.output().expect("run create-dynamodb-table.sh")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn assert_seed_table(endpoint: &str, table: &str) {
    let client = dynamodb_client(endpoint).await;
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap();
    let t = described.table.unwrap();
    let keys: Vec<_> = t
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
        .collect();
    assert_eq!(
        keys,
        [
            ("PK".to_owned(), KeyType::Hash),
            ("SK".to_owned(), KeyType::Range)
        ]
    );
    let mut attributes: Vec<_> = t
        .attribute_definitions()
        .iter()
        .map(|a| {
            assert_eq!(*a.attribute_type(), ScalarAttributeType::S);
            a.attribute_name().to_owned()
        })
        .collect();
    attributes.sort();
    assert_eq!(
        attributes,
        ["GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "PK", "SK"]
    );
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    assert_eq!(t.deletion_protection_enabled(), Some(true));
    let stream = t.stream_specification().unwrap();
    assert!(stream.stream_enabled());
    assert_eq!(
        stream.stream_view_type(),
        Some(&StreamViewType::NewAndOldImages)
    );
    let mut indexes: Vec<_> = t.global_secondary_indexes().iter().collect();
    indexes.sort_by_key(|i| i.index_name().map(str::to_owned));
    assert_eq!(indexes.len(), 2);
    for (index, n) in indexes.iter().zip(1..) {
        assert_eq!(index.index_name(), Some(format!("GSI{n}").as_str()));
        let schema: Vec<_> = index
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
            .collect();
        assert_eq!(
            schema,
            [
                (format!("GSI{n}PK"), KeyType::Hash),
                (format!("GSI{n}SK"), KeyType::Range)
            ]
        );
        assert_eq!(
            index.projection().and_then(|p| p.projection_type()),
            Some(&ProjectionType::All)
        );
    }
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name(), Some("ttl"));
}

#[tokio::test]
async fn script_creates_the_seed_table_and_is_idempotent() {
    let local = require_dynamodb();
    let table = unique_table_name("script");
    let first = run_script(local.endpoint(), Some(&table));
    assert!(
        first.status.success(),
        "first run failed:\n{}",
        text(&first)
    );
    assert!(text(&first).contains(&format!("creating table {table}")));
    assert_seed_table(local.endpoint(), &table).await;

    let second = run_script(local.endpoint(), Some(&table));
    assert!(
        second.status.success(),
        "second run failed:\n{}",
        text(&second)
    );
    assert!(
        text(&second).contains("already exists"),
        "{}",
        text(&second)
    );
    assert_seed_table(local.endpoint(), &table).await;
}

#[tokio::test]
async fn script_defaults_follow_the_seed() {
    // A private instance, so the default table name cannot collide with another test.
    let local = wf_integration_tests::DynamoDbLocal::start().expect("start DynamoDB Local");
    let output = run_script(local.endpoint(), None);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("creating table workflow_executions in ap-southeast-2"),
        "{}",
        text(&output)
    );
    assert_seed_table(local.endpoint(), "workflow_executions").await;
}
