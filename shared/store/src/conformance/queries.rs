//! Conformance cases for listing runs: every filter pages through all its runs, time
//! ranges are inclusive, and bad cursors and limits are refused.

use std::collections::BTreeMap;

use serde_json::json;

use super::{new_run, t};
use crate::{RunQuery, RunStatus, RunTransition, Store, StoreError, WorkflowId, WorkflowRun};

/// 24 runs, one per millisecond step of 10 ms: two workflows, three statuses, two
/// resources, two tag values. Returns them newest first.
pub(super) async fn seed_runs(store: &dyn Store) -> Vec<WorkflowRun> {
    let mut runs = Vec::new();
    for i in 0..24_i64 {
        let mut request = new_run(if i % 2 == 0 { "orders" } else { "docs" }, t(i * 10));
        request.resource_id = Some(format!("res-{}", i % 3));
        request.tags =
            BTreeMap::from([("env".into(), if i % 4 == 0 { "prod" } else { "dev" }.into())]);
        let mut run = store.create_run(&request, &[]).await.unwrap();
        if i % 3 == 1 {
            let transition = RunTransition {
                expected_status: RunStatus::Running,
                expected_version: run.version,
                status: RunStatus::Completed,
                at: t(i * 10 + 1),
                output: Some(json!(i)),
                output_from: Vec::new(),
                error: None,
            };
            run = store
                .transition_run(&run.run_id, &transition)
                .await
                .unwrap();
        }
        runs.push(run.summary());
    }
    runs.reverse();
    runs
}

async fn collect_pages(store: &dyn Store, mut query: RunQuery) -> (Vec<WorkflowRun>, usize) {
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.list_runs(&query).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= query.limit as usize);
        all.extend(page.items);
        match page.next {
            Some(cursor) => query.cursor = Some(cursor),
            None => return (all, pages),
        }
        assert!(pages < 100, "pagination does not end");
    }
}

pub async fn pagination_covers_every_filter(store: &dyn Store) {
    let runs = seed_runs(store).await;
    let workflow = |w: &str| Some(WorkflowId::parse(w).unwrap());
    let queries = [
        RunQuery::default(),
        RunQuery {
            workflow_id: workflow("orders"),
            ..RunQuery::default()
        },
        RunQuery {
            status: Some(RunStatus::Completed),
            ..RunQuery::default()
        },
        RunQuery {
            resource_id: Some("res-2".into()),
            ..RunQuery::default()
        },
        RunQuery {
            tag: Some(("env".into(), "prod".into())),
            ..RunQuery::default()
        },
        RunQuery {
            workflow_id: workflow("docs"),
            status: Some(RunStatus::Running),
            resource_id: Some("res-0".into()),
            ..RunQuery::default()
        },
        RunQuery {
            status: Some(RunStatus::Running),
            tag: Some(("env".into(), "dev".into())),
            ..RunQuery::default()
        },
        RunQuery {
            workflow_id: workflow("nobody"),
            ..RunQuery::default()
        },
    ];
    for (n, base) in queries.into_iter().enumerate() {
        let expected: Vec<_> = runs.iter().filter(|r| base.matches(r)).cloned().collect();
        let query = RunQuery {
            limit: 4,
            ..base.clone()
        };
        let (listed, pages) = collect_pages(store, query).await;
        assert_eq!(
            listed.iter().map(|r| r.run_id).collect::<Vec<_>>(),
            expected.iter().map(|r| r.run_id).collect::<Vec<_>>(),
            "query {n}: {base:?}"
        );
        assert_eq!(listed, expected, "query {n}");
        assert_eq!(
            pages,
            expected.len().div_ceil(4).max(1),
            "query {n}: no empty trailing page"
        );
    }
}

pub async fn time_range_queries_are_inclusive(store: &dyn Store) {
    let runs = seed_runs(store).await;
    let from = t(50);
    let to = t(120);
    for base in [
        RunQuery::default(),
        RunQuery {
            workflow_id: Some(WorkflowId::parse("orders").unwrap()),
            ..RunQuery::default()
        },
        RunQuery {
            status: Some(RunStatus::Running),
            ..RunQuery::default()
        },
    ] {
        let query = RunQuery {
            created_from: Some(from),
            created_to: Some(to),
            limit: 3,
            ..base
        };
        let expected: Vec<_> = runs
            .iter()
            .filter(|r| query.matches(r))
            .map(|r| r.run_id)
            .collect();
        let (listed, _) = collect_pages(store, query.clone()).await;
        assert_eq!(
            listed.iter().map(|r| r.run_id).collect::<Vec<_>>(),
            expected
        );
        assert!(
            listed
                .iter()
                .all(|r| r.created_at >= from && r.created_at <= to)
        );
    }
    let only_from = RunQuery {
        created_from: Some(t(200)),
        limit: 50,
        ..RunQuery::default()
    };
    let page = store.list_runs(&only_from).await.unwrap();
    assert_eq!(page.items.len(), 4, "runs at 200, 210, 220, 230");
    assert!(page.next.is_none());
}

pub async fn invalid_cursor_and_limit_are_rejected(store: &dyn Store) {
    let bad_cursor = RunQuery {
        cursor: Some(crate::Cursor::parse("not-a-cursor!")),
        ..RunQuery::default()
    };
    assert!(matches!(
        store.list_runs(&bad_cursor).await,
        Err(StoreError::InvalidCursor { .. })
    ));
    let bad_limit = RunQuery {
        limit: crate::MAX_PAGE_SIZE + 1,
        ..RunQuery::default()
    };
    assert!(matches!(
        store.list_runs(&bad_limit).await,
        Err(StoreError::InvalidInput { field: "limit", .. })
    ));
}
