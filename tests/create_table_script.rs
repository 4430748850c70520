//! `scripts/create-dynamodb-table.sh` against DynamoDB Local: it creates the seed's table
//! (checked with `DescribeTable` and `DescribeTimeToLive`), and a second run is a no-op;
//! `CAPACITY_MODE=PROVISIONED` provisions the table and both GSIs; bad settings are refused;
//! `REPLICA_REGIONS` asks for a replica per region (on moto, which accepts `UpdateTable`'s
//! replica updates but does not model replicas: DynamoDB Local refuses them).
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
use wf_integration_tests::{
    dynamodb_client, require_dynamodb, require_s3, unique_table_name, workspace_root,
};

fn run_script(endpoint: &str, table: Option<&str>) -> Output {
    run_script_with(endpoint, table, &[])
}

fn run_script_with(endpoint: &str, table: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new("bash");
    command
        .arg(workspace_root().join("scripts/create-dynamodb-table.sh"))
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DYNAMODB_TABLE_NAME")
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .env_remove("CAPACITY_MODE")
        .env_remove("READ_CAPACITY")
        .env_remove("WRITE_CAPACITY")
        .env_remove("REPLICA_REGIONS");
    if let Some(table) = table {
        command.env("AWS_DYNAMODB_TABLE_NAME", table);
    }
    command.envs(env.iter().copied());
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
            Some(&ProjectionType::Include)
        );
        assert_eq!(
            index
                .projection()
                .map(aws_sdk_dynamodb::types::Projection::non_key_attributes),
            Some(&wf_store::LISTING_ATTRIBUTES.map(str::to_owned)[..])
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

#[tokio::test]
async fn provisioned_capacity_applies_to_the_table_and_both_indexes() {
    let local = require_dynamodb();
    let table = unique_table_name("provisioned");
    let output = run_script_with(
        local.endpoint(),
        Some(&table),
        &[
            ("CAPACITY_MODE", "PROVISIONED"),
            ("READ_CAPACITY", "7"),
            ("WRITE_CAPACITY", "9"),
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let described = dynamodb_client(local.endpoint())
        .await
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let throughput = described.provisioned_throughput().unwrap();
    assert_eq!(
        (
            throughput.read_capacity_units(),
            throughput.write_capacity_units()
        ),
        (Some(7), Some(9))
    );
    assert_ne!(
        described
            .billing_mode_summary()
            .and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    assert_eq!(described.global_secondary_indexes().len(), 2);
    for index in described.global_secondary_indexes() {
        let throughput = index.provisioned_throughput().unwrap();
        assert_eq!(
            (
                throughput.read_capacity_units(),
                throughput.write_capacity_units()
            ),
            (Some(7), Some(9)),
            "{:?}",
            index.index_name()
        );
    }
}

#[test]
fn bad_capacity_settings_are_refused_before_any_call() {
    // (settings, what the error names); the endpoint is never reached.
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("CAPACITY_MODE", "FAST")], "CAPACITY_MODE"),
        (
            &[("CAPACITY_MODE", "PROVISIONED"), ("READ_CAPACITY", "0")],
            "READ_CAPACITY",
        ),
        (
            &[("CAPACITY_MODE", "PROVISIONED"), ("WRITE_CAPACITY", "lots")],
            "WRITE_CAPACITY",
        ),
        (
            &[
                ("CAPACITY_MODE", "PROVISIONED"),
                ("REPLICA_REGIONS", "eu-west-1"),
            ],
            "REPLICA_REGIONS",
        ),
    ];
    for (env, field) in cases {
        let output = run_script_with("http://127.0.0.1:9", Some("t"), env);
        assert_eq!(output.status.code(), Some(2), "{env:?}: {}", text(&output));
        assert!(text(&output).contains(field), "{env:?}: {}", text(&output));
    }
}

#[test]
fn replica_regions_ask_for_one_replica_per_region() {
    let endpoint = require_s3().endpoint(); // moto's server answers DynamoDB too
    let table = unique_table_name("replicas");
    let output = run_script_with(
        endpoint,
        Some(&table),
        &[
            ("REPLICA_REGIONS", "eu-west-1,us-west-2"),
            ("DELETION_PROTECTION", "false"),
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let out = text(&output);
    let first = out.find("adding a replica in eu-west-1").expect(&out);
    let second = out.find("adding a replica in us-west-2").expect(&out);
    let ready = out.find(&format!("table {table} is ready")).expect(&out);
    assert!(first < second && second < ready, "{out}");
}
