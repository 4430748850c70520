//! The store conformance suite against DynamoDB Local: the same cases the SQLite backend
//! passes, each on a fresh table with the seed's keys and indexes. A DynamoDB Local that
//! cannot start fails every case; nothing is skipped. The store signs its cursors under a
//! configured key (the SQLite run of the suite uses the built-in one), so both paths of
//! `CursorKey` meet the forged-cursor table.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed expectation must fail the test"
)]

use wf_integration_tests::{create_table, dynamodb_client, require_dynamodb, unique_table_name};
use wf_store::{CursorKey, DynamoDbStore, Retention};

async fn fresh_store() -> Box<DynamoDbStore> {
    let local = require_dynamodb();
    let client = dynamodb_client(local.endpoint()).await;
    let table = unique_table_name("conformance");
    create_table(&client, &table)
        .await
        .expect("create the test table");
    let key = CursorKey::derive(b"conformance deployment key").unwrap();
    Box::new(DynamoDbStore::new(client, table, Retention::default()).with_cursor_key(key))
}

wf_store::conformance_suite!(fresh_store);
