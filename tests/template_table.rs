//! The template's table is the table `scripts/create-dynamodb-table.sh` creates (run on
//! DynamoDB Local): keys, attributes, billing, GSIs, TTL, stream, PITR, deletion protection.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};
use wf_integration_tests::{dynamodb_client, require_dynamodb, unique_table_name, workspace_root};

use super::{resources, template};

/// What the two tables are made of, in one comparable shape.
#[derive(Debug, PartialEq, Eq)]
struct TableSpec {
    key_schema: Vec<(String, String)>,
    attributes: BTreeMap<String, String>,
    billing_mode: String,
    indexes: BTreeMap<String, (Vec<(String, String)>, String)>,
    ttl_attribute: String,
    stream_view_type: String,
    point_in_time_recovery: bool,
    deletion_protection: bool,
}

fn keys_of(value: &Value) -> Vec<(String, String)> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap().to_owned(),
                k["KeyType"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The table as the template deploys it with its defaults (on demand, one region).
fn template_table() -> TableSpec {
    let table = &resources()["Table"];
    assert_eq!(table["Type"], "AWS::DynamoDB::GlobalTable");
    assert_eq!(table["DeletionPolicy"], "Retain");
    assert_eq!(table["UpdateReplacePolicy"], "Retain");
    let p = &table["Properties"];
    assert_eq!(p["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(p["SSESpecification"]["SSEEnabled"], true);
    // This region's replica; deletion protection is the DeletionProtection parameter, and
    // the script's default is on, as is the parameter's.
    let local = &p["Replicas"][0];
    assert_eq!(local["Region"], json!({ "Ref": "AWS::Region" }));
    assert_eq!(
        local["DeletionProtectionEnabled"],
        json!({ "Ref": "DeletionProtection" })
    );
    assert_eq!(
        p["BillingMode"],
        json!({ "Fn::If": ["Provisioned", "PROVISIONED", "PAY_PER_REQUEST"] })
    );
    assert_eq!(
        template()["Parameters"]["CapacityMode"]["Default"],
        "ON_DEMAND"
    );
    let protection = &template()["Parameters"]["DeletionProtection"]["Default"];
    TableSpec {
        key_schema: keys_of(&p["KeySchema"]),
        attributes: p["AttributeDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["AttributeName"].as_str().unwrap().to_owned(),
                    a["AttributeType"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
        billing_mode: "PAY_PER_REQUEST".to_owned(),
        indexes: p["GlobalSecondaryIndexes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["IndexName"].as_str().unwrap().to_owned(),
                    (
                        keys_of(&i["KeySchema"]),
                        i["Projection"]["ProjectionType"]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                    ),
                )
            })
            .collect(),
        ttl_attribute: p["TimeToLiveSpecification"]["AttributeName"]
            .as_str()
            .unwrap()
            .to_owned(),
        stream_view_type: p["StreamSpecification"]["StreamViewType"]
            .as_str()
            .unwrap()
            .to_owned(),
        point_in_time_recovery:
            local["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
                .as_bool()
                .unwrap(),
        deletion_protection: protection.as_str().unwrap().parse().unwrap(),
    }
}

#[tokio::test]
async fn the_template_table_is_the_table_the_script_creates() {
    let local = require_dynamodb();
    let table = unique_table_name("template");
    let output = Command::new("bash")
        .arg(workspace_root().join("scripts/create-dynamodb-table.sh"))
        .env("AWS_ENDPOINT_URL", local.endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DYNAMODB_TABLE_NAME", &table)
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .env_remove("DELETION_PROTECTION")
        .output()
        .expect("run create-dynamodb-table.sh");
    assert!(
        output.status.success(),
        "create-dynamodb-table.sh failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let script = script_table(local.endpoint(), &table, &output).await;
    assert_eq!(
        script,
        template_table(),
        "create-dynamodb-table.sh (left) and template.yaml (right) make different tables"
    );
}

/// The table the script made, as DynamoDB Local describes it; `output` is the script's.
async fn script_table(endpoint: &str, table: &str, output: &std::process::Output) -> TableSpec {
    let client = dynamodb_client(endpoint).await;
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(
        ttl.time_to_live_status()
            .map(aws_sdk_dynamodb::types::TimeToLiveStatus::as_str),
        Some("ENABLED")
    );
    // DynamoDB Local has no continuous-backups API (UnknownOperationException), so the
    // script's PITR request is read from the script itself: it must ask for PITR, and it
    // must have tried (on AWS a refusal fails the script; only an emulator is excused).
    let script_text =
        std::fs::read_to_string(workspace_root().join("scripts/create-dynamodb-table.sh")).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pitr = script_text.contains(
        "update-continuous-backups --table-name \"$table\" \\\n  --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true",
    ) && stdout.contains("point-in-time recovery");
    let pairs = |keys: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<(String, String)> {
        keys.iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect()
    };
    TableSpec {
        key_schema: pairs(described.key_schema()),
        attributes: described
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect(),
        billing_mode: described
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|b| b.as_str().to_owned())
            .unwrap_or_default(),
        indexes: described
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                (
                    i.index_name().unwrap().to_owned(),
                    (
                        pairs(i.key_schema()),
                        i.projection()
                            .and_then(|p| p.projection_type())
                            .map(|p| p.as_str().to_owned())
                            .unwrap_or_default(),
                    ),
                )
            })
            .collect(),
        ttl_attribute: ttl.attribute_name().unwrap().to_owned(),
        stream_view_type: described
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        point_in_time_recovery: pitr,
        deletion_protection: described.deletion_protection_enabled().unwrap_or(false),
    }
}
