//! `scripts/backup-table.sh` against moto's DynamoDB (the moto server the archive tests
//! start answers every service; DynamoDB Local has no backup or point-in-time restore
//! API): an on-demand backup with a dated name, the listing, a restore of the backup into
//! a new table, and a point-in-time restore into another, each holding the table's item.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation must fail the test"
)]

use std::process::{Command, Output};

use aws_sdk_dynamodb::types::AttributeValue;
use wf_integration_tests::{dynamodb_client, require_s3, unique_table_name, workspace_root};

fn script(name: &str, endpoint: &str, table: &str, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(workspace_root().join("scripts").join(name))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DYNAMODB_TABLE_NAME", table)
        .env("DELETION_PROTECTION", "false")
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"))
}

fn succeeded(output: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn item_count(endpoint: &str, table: &str) -> i32 {
    dynamodb_client(endpoint)
        .await
        .scan()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .count()
}

#[tokio::test]
async fn backups_are_dated_listed_and_restored_into_new_tables() {
    // GIVEN the seed's table on moto, holding one run item
    let endpoint = require_s3().endpoint();
    let table = unique_table_name("backup");
    succeeded(
        &script("create-dynamodb-table.sh", endpoint, &table, &[]),
        "create-dynamodb-table.sh",
    );
    dynamodb_client(endpoint)
        .await
        .put_item()
        .table_name(&table)
        .item("PK", AttributeValue::S("RUN#1".into()))
        .item("SK", AttributeValue::S("RUN#1".into()))
        .send()
        .await
        .unwrap();

    // WHEN an on-demand backup is made
    let created = succeeded(
        &script("backup-table.sh", endpoint, &table, &["create"]),
        "create",
    );
    // THEN it is named after the table and the UTC date, and listed with its ARN
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let prefix = format!("backup {table}-{today}-");
    assert!(created.starts_with(&prefix), "{created}");
    let listed = succeeded(
        &script("backup-table.sh", endpoint, &table, &["list"]),
        "list",
    );
    let line = listed
        .lines()
        .find(|l| l.starts_with(&format!("{table}-{today}-")))
        .unwrap_or_else(|| panic!("the backup is not listed:\n{listed}"));
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.get(1), Some(&"AVAILABLE"), "{line}");
    let arn = fields.last().unwrap().trim();
    assert!(created.trim_end().ends_with(arn), "{created} / {arn}");

    // WHEN the backup is restored into a new table
    let restored = format!("{table}_restored");
    succeeded(
        &script(
            "backup-table.sh",
            endpoint,
            &table,
            &["restore", arn, &restored],
        ),
        "restore",
    );
    // THEN the new table holds the item
    assert_eq!(item_count(endpoint, &restored).await, 1);

    // WHEN the table is restored to the latest restorable time, and to a given time
    let latest = format!("{table}_pitr");
    succeeded(
        &script(
            "backup-table.sh",
            endpoint,
            &table,
            &["restore-pitr", &latest],
        ),
        "restore-pitr",
    );
    assert_eq!(item_count(endpoint, &latest).await, 1);
    let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let dated = format!("{table}_pitr_dated");
    succeeded(
        &script(
            "backup-table.sh",
            endpoint,
            &table,
            &["restore-pitr", &dated, &at],
        ),
        "restore-pitr at a time",
    );
    assert_eq!(item_count(endpoint, &dated).await, 1);
}

#[test]
fn a_wrong_command_prints_the_usage_and_changes_nothing() {
    for args in [&[][..], &["restore"][..], &["drop"][..]] {
        // No endpoint is reached: the arguments are refused first.
        let output = script("backup-table.sh", "http://127.0.0.1:9", "t", args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("backup-table.sh create"),
            "{args:?}"
        );
    }
}
