//! Forged cursors: every cursor a store did not issue for the query it comes back with is
//! refused with `InvalidCursor`, and the genuine one still resumes exactly after the last
//! run of its page.

use base64::Engine as _;

use super::queries::seed_runs;
use super::t;
use crate::{Cursor, CursorKey, RunQuery, RunStatus, Store, StoreError, WorkflowId, WorkflowRun};

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn decode(cursor: &Cursor) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.as_str())
        .unwrap()
}

fn sort_key(run: &WorkflowRun) -> String {
    crate::keys::listing_sort_key(run.created_at, &run.run_id)
}

/// The first page of `query` and its cursor.
async fn first_page(store: &dyn Store, query: &RunQuery) -> (Vec<WorkflowRun>, Cursor) {
    let page = store.list_runs(query).await.unwrap();
    let next = page.next.expect("a second page");
    (page.items, next)
}

/// Every way to misuse a cursor: `(case, query, cursor)`. `genuine` is the first cursor of
/// `orders`, at `position`; `completed_cursor` the first of `completed`.
fn forgeries(
    orders: &RunQuery,
    genuine: &Cursor,
    position: &str,
    completed: &RunQuery,
    completed_cursor: &Cursor,
) -> Vec<(String, RunQuery, Cursor)> {
    let with = |change: &dyn Fn(&mut RunQuery)| {
        let mut query = orders.clone();
        change(&mut query);
        query
    };
    let mut cases: Vec<(String, RunQuery, Cursor)> = Vec::new();
    // One bit flipped in every byte: version, tag and position alike.
    let bytes = decode(genuine);
    for index in 0..bytes.len() {
        let mut tampered = bytes.clone();
        tampered[index] ^= 1 << (index % 8);
        cases.push((
            format!("bit {} of byte {index} flipped", index % 8),
            orders.clone(),
            Cursor::parse(encode(&tampered)),
        ));
    }
    let text = genuine.as_str();
    for (name, cut) in [
        ("last character cut", &text[..text.len() - 1]),
        ("cut in half", &text[..text.len() / 2]),
        ("tag only", &text[..23]),
        ("empty", ""),
    ] {
        cases.push((
            format!("truncated: {name}"),
            orders.clone(),
            Cursor::parse(cut),
        ));
    }
    cases.push((
        "truncated: last byte of the position dropped".into(),
        orders.clone(),
        Cursor::parse(encode(&bytes[..bytes.len() - 1])),
    ));
    cases.push((
        "signed under another deployment's key".into(),
        orders.clone(),
        Cursor::issue(
            &CursorKey::derive(b"another deployment's key").unwrap(),
            orders,
            position,
        ),
    ));
    cases.push((
        "the unsigned sort key (the old format)".into(),
        orders.clone(),
        Cursor::parse(encode(position.as_bytes())),
    ));
    cases.push((
        "not base64".into(),
        orders.clone(),
        Cursor::parse("not-a-cursor!"),
    ));
    let other_filters: [(&str, RunQuery); 6] = [
        (
            "another workflow",
            with(&|q| q.workflow_id = Some(WorkflowId::parse("docs").unwrap())),
        ),
        ("no workflow filter", with(&|q| q.workflow_id = None)),
        (
            "a resource filter added",
            with(&|q| q.resource_id = Some("res-0".into())),
        ),
        (
            "a tag filter added",
            with(&|q| q.tag = Some(("env".into(), "prod".into()))),
        ),
        ("a start time added", with(&|q| q.created_from = Some(t(0)))),
        ("an end time added", with(&|q| q.created_to = Some(t(1000)))),
    ];
    for (name, query) in other_filters {
        cases.push((format!("other filters: {name}"), query, genuine.clone()));
    }
    for (name, status) in [
        ("RUNNING", Some(RunStatus::Running)),
        ("FAILED", Some(RunStatus::Failed)),
        ("every status", None),
    ] {
        let query = RunQuery {
            status,
            ..completed.clone()
        };
        cases.push((
            format!("other status partition: {name}"),
            query,
            completed_cursor.clone(),
        ));
    }
    cases
}

pub async fn forged_cursors_are_refused(store: &dyn Store) {
    let runs = seed_runs(store).await;
    let orders = RunQuery {
        workflow_id: Some(WorkflowId::parse("orders").unwrap()),
        limit: 3,
        ..RunQuery::default()
    };
    let completed = RunQuery {
        status: Some(RunStatus::Completed),
        limit: 2,
        ..RunQuery::default()
    };
    let (orders_page, genuine) = first_page(store, &orders).await;
    let (_, completed_cursor) = first_page(store, &completed).await;
    let position = sort_key(orders_page.last().unwrap());

    let cases = forgeries(&orders, &genuine, &position, &completed, &completed_cursor);
    for (name, mut query, cursor) in cases {
        query.cursor = Some(cursor);
        match store.list_runs(&query).await {
            Err(StoreError::InvalidCursor { .. }) => {}
            other => panic!("{name}: expected InvalidCursor, got {other:?}"),
        }
    }

    // The genuine cursor, with the page size changed, resumes right after the last run.
    let expected: Vec<_> = runs
        .iter()
        .filter(|r| orders.matches(r))
        .map(|r| r.run_id)
        .collect();
    let resumed = store
        .list_runs(&RunQuery {
            cursor: Some(genuine),
            limit: 50,
            ..orders.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        resumed.items.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        expected[orders_page.len()..],
    );
    assert!(resumed.next.is_none());
}
