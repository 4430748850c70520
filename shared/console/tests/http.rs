//! HTTP-level tests of every console page and action, on the embedded store, through
//! the router (no socket): what each page shows, what each action changes, and that bad
//! input (unknown run, malformed JSON, bad filters, a missing CSRF token, read-only mode,
//! a foreign Host) gets a clear 4xx with a stable code and changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use support::{Harness, approval_input};
use wf_archive::{ArchivePrefix, Archiver, FsArchiveSink};
use wf_store::{RunStatus, StepStatus};

fn waiting_for_signal(record: &wf_store::RunRecord) -> bool {
    record
        .steps
        .iter()
        .any(|s| s.status == StepStatus::Waiting && s.waiting_for.is_some())
}

#[tokio::test]
async fn runs_list_shows_runs_newest_first_with_counts_and_pages() {
    let h = Harness::new();
    let one_run = h.start_approval().await;
    let other_run = h.start_approval().await;
    // Listings sort by creation time in milliseconds, then run id: two runs started in
    // the same millisecond are ordered by id, not by which call came first.
    let key = |run: &wf_store::WorkflowRun| (run.created_at, run.run_id.to_string());
    let (first, second) = if key(&one_run) < key(&other_run) {
        (one_run, other_run)
    } else {
        (other_run, one_run)
    };
    let page = h.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    let (a, b) = (
        page.body.find(&second.run_id.to_string()).unwrap(),
        page.body.find(&first.run_id.to_string()).unwrap(),
    );
    assert!(a < b, "newest first");
    assert!(
        page.body.contains(r#"data-status="PENDING">2"#)
            || page.body.contains(r#"data-status="RUNNING">2"#),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("data-refresh"),
        "the list refreshes itself"
    );

    // A page of one, then the cursor to the next.
    let one = h.get("/?limit=1").await;
    assert!(one.body.contains(&second.run_id.to_string()));
    assert!(!one.body.contains(&format!("data-run=\"{}\"", first.run_id)));
    let next = one.body.split("id=\"next-page\" href=\"").nth(1).unwrap();
    let next = next.split('"').next().unwrap().replace("&amp;", "&");
    let two = h.get(&next).await;
    assert_eq!(two.status, StatusCode::OK, "{}", two.body);
    assert!(two.body.contains(&format!("data-run=\"{}\"", first.run_id)));

    // The refreshing fragment has no page frame.
    let partial = h.get("/?partial=1").await;
    assert!(partial.body.contains("class=\"counts\"") && !partial.body.contains("<html"));
}

#[tokio::test]
async fn runs_list_filters_by_workflow_status_resource_tag_and_time() {
    let h = Harness::new();
    let run = h.start_approval().await;
    let id = format!("data-run=\"{}\"", run.run_id);
    for (query, shown) in [
        ("workflow=approval", true),
        ("workflow=order-fulfilment", false),
        ("status=completed", false),
        ("resource=invoice-7", true),
        ("resource=other", false),
        ("tag=team%3Dfinance", true),
        ("tag=team%3Dsales", false),
        ("from=2000-01-01T00:00", true),
        ("to=2000-01-01T00:00:00Z", false),
    ] {
        let page = h.get(&format!("/?{query}")).await;
        assert_eq!(page.status, StatusCode::OK, "{query}: {}", page.body);
        assert_eq!(page.body.contains(&id), shown, "{query}");
    }
}

#[tokio::test]
async fn bad_filters_are_refused_naming_the_parameter() {
    let h = Harness::new();
    for (query, field) in [
        ("status=DONE", "status"),
        ("tag=no-equals-sign", "tag"),
        ("from=yesterday", "from"),
        ("to=31%2F01%2F2026", "to"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("limit=ten", "limit"),
    ] {
        let page = h.get(&format!("/?{query}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(page.error_code(), Some("invalid_parameter"), "{query}");
        assert!(
            page.body.contains(&format!("<code>{field}</code>")),
            "{query}: {}",
            page.body
        );
    }
}

#[tokio::test]
async fn run_page_shows_the_graph_with_the_waiting_step_timeline_steps_and_state() {
    let h = Harness::new();
    let run = h.start_approval().await;
    let page = h.get(&format!("/runs/{}", run.run_id)).await;
    assert_eq!(page.status, StatusCode::OK);
    // Nothing executed yet: every node is drawn, none started.
    assert_eq!(page.body.matches("class=\"node s-").count(), 4);

    // Let the console's runner take it to the signal wait (a start from the page nudges it).
    let csrf = h.csrf().await;
    let started = h
        .post(
            "/workflows/approval/start",
            &[("csrf", &csrf), ("input", &approval_input().to_string())],
        )
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let location = started.location().unwrap().to_owned();
    let run_id = location.trim_start_matches("/runs/").parse().unwrap();
    h.until(&run_id, waiting_for_signal).await;

    let page = h.get(&location).await;
    let body = &page.body;
    assert!(
        body.contains(r#"data-step="await-approval" data-status="waiting""#),
        "{body}"
    );
    assert!(body.contains(r#"data-step="submit" data-status="completed""#));
    assert!(body.contains(r#"data-step="notify" data-status="not-started""#));
    assert!(body.contains("waits for signal approved"));
    assert!(body.contains("class=\"timeline\""));
    assert!(
        body.contains("id=\"step-submit\""),
        "each step has its details"
    );
    assert!(
        body.contains("&quot;requester&quot;: &quot;grace&quot;"),
        "state and input shown"
    );
    assert!(body.contains("<code>request</code>"), "the state entry");
    assert!(body.contains(r#"id="signal-form""#) && body.contains(r#"value="approved""#));
    assert!(body.contains("data-refresh=\"1000\""), "live while it runs");
    let partial = h.get(&format!("{location}?partial=1")).await;
    assert!(partial.body.contains("class=\"graph\"") && !partial.body.contains("<html"));
}

#[tokio::test]
async fn signal_from_the_page_completes_the_run() {
    let h = Harness::new();
    let csrf = h.csrf().await;
    let started = h
        .post(
            "/workflows/approval/start",
            &[("csrf", &csrf), ("input", &approval_input().to_string())],
        )
        .await;
    let location = started.location().unwrap().to_owned();
    let run_id = location.trim_start_matches("/runs/").parse().unwrap();
    h.until(&run_id, waiting_for_signal).await;

    let sent = h
        .post(
            &format!("{location}/signal"),
            &[
                ("csrf", &csrf),
                ("name", "approved"),
                ("payload", r#"{"approver":"ada","approved":true}"#),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert_eq!(sent.location(), Some(location.as_str()));
    h.until(&run_id, |r| r.run.status.is_terminal()).await;
    let page = h.get(&location).await;
    assert!(
        page.body
            .contains(r#"id="run-status" data-status="COMPLETED""#),
        "{}",
        page.body
    );
    assert!(page.body.contains("new laptop was approved by ada"));
    assert!(
        page.body.contains("data-final"),
        "the page stops refreshing"
    );
    assert!(
        !page.body.contains("id=\"signal-form\""),
        "no actions on an ended run"
    );
}

#[tokio::test]
async fn cancel_and_redrive_from_the_page() {
    let h = Harness::new();
    let csrf = h.csrf().await;
    let run = h.start_approval().await;
    let cancelled = h
        .post(
            &format!("/runs/{}/cancel", run.run_id),
            &[("csrf", &csrf), ("reason", "test")],
        )
        .await;
    assert_eq!(
        cancelled.status,
        StatusCode::SEE_OTHER,
        "{}",
        cancelled.body
    );
    assert_eq!(
        h.store.get_run(&run.run_id).await.unwrap().status,
        RunStatus::Cancelled
    );

    // Redrive applies to failed runs only: 409 for a cancelled one.
    let refused = h
        .post(&format!("/runs/{}/redrive", run.run_id), &[("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.error_code(), Some("invalid_state"));

    // An empty subject fails the first step terminally; redrive runs it again.
    let started = h
        .post(
            "/workflows/approval/start",
            &[
                ("csrf", &csrf),
                (
                    "input",
                    r#"{"subject":" ","requester":"g","amountCents":1}"#,
                ),
            ],
        )
        .await;
    let location = started.location().unwrap().to_owned();
    let run_id = location.trim_start_matches("/runs/").parse().unwrap();
    h.until(&run_id, |r| r.run.status == RunStatus::Failed)
        .await;
    let page = h.get(&location).await;
    assert!(
        page.body.contains("id=\"redrive-run\""),
        "a failed run offers redrive"
    );
    assert!(
        page.body.contains("invalid_request"),
        "the step's error is shown"
    );
    let redriven = h
        .post(&format!("{location}/redrive"), &[("csrf", &csrf)])
        .await;
    assert_eq!(redriven.status, StatusCode::SEE_OTHER, "{}", redriven.body);
}

#[tokio::test]
async fn start_form_refuses_bad_input_naming_the_field_and_starts_nothing() {
    let h = Harness::new();
    let csrf = h.csrf().await;
    for (input, tags, status, code, field) in [
        ("{not json", "", 400, "malformed_json", "input"),
        (
            r#"{"subject":"x","requester":"y"}"#,
            "",
            422,
            "invalid_input",
            "input",
        ),
        (
            r#"{"subject":"x","requester":"y","amountCents":"lots"}"#,
            "",
            422,
            "invalid_input",
            "input.amountCents",
        ),
        (
            &approval_input().to_string(),
            "no-equals",
            400,
            "invalid_parameter",
            "tags",
        ),
    ] {
        let page = h
            .post(
                "/workflows/approval/start",
                &[("csrf", &csrf), ("input", input), ("tags", tags)],
            )
            .await;
        assert_eq!(page.status.as_u16(), status, "{input}: {}", page.body);
        assert_eq!(page.error_code(), Some(code), "{input}");
        assert!(
            page.body.contains(&format!("data-field=\"{field}\"")),
            "{input}: {}",
            page.body
        );
        assert!(
            page.body.contains("id=\"start-run\""),
            "the form comes back"
        );
    }
    let unknown = h
        .post(
            "/workflows/no-such-flow/start",
            &[("csrf", &csrf), ("input", "{}")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), Some("unknown_workflow"));
    let form = h.get("/workflows/no-such-flow/start").await;
    assert_eq!(form.status, StatusCode::NOT_FOUND);
    let runs = h
        .store
        .list_runs(&wf_store::RunQuery::default())
        .await
        .unwrap();
    assert!(runs.items.is_empty(), "nothing was started");
}

#[tokio::test]
async fn actions_without_the_csrf_token_are_refused_and_change_nothing() {
    let h = Harness::new();
    let run = h.start_approval().await;
    let base = format!("/runs/{}", run.run_id);
    for token in [None, Some(""), Some("0000")] {
        for (path, extra) in [
            (format!("{base}/cancel"), ("reason", "x")),
            (format!("{base}/signal"), ("name", "approved")),
            (format!("{base}/redrive"), ("x", "y")),
            ("/workflows/approval/start".to_owned(), ("input", "{}")),
        ] {
            let mut form = vec![extra];
            if let Some(token) = token {
                form.push(("csrf", token));
            }
            let answer = h.post(&path, &form).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path} {token:?}");
            assert_eq!(answer.error_code(), Some("csrf_token_invalid"), "{path}");
        }
    }
    let record = h.store.export_run(&run.run_id).await.unwrap();
    assert_eq!(record.run.status, RunStatus::Running);
    assert_eq!(
        h.store
            .list_runs(&wf_store::RunQuery::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn bad_run_ids_payloads_and_bodies_get_clear_errors() {
    let h = Harness::new();
    let csrf = h.csrf().await;
    let run = h.start_approval().await;
    let unknown = "01KABCDEFGHJKMNPQRSTVWXYZ0";
    for (uri, status, code) in [
        (format!("/runs/{unknown}"), 404, "run_not_found"),
        ("/runs/not-a-run-id".to_owned(), 400, "invalid_parameter"),
        ("/no/such/page".to_owned(), 404, "not_found"),
        ("/workflows/approval/nothing".to_owned(), 404, "not_found"),
    ] {
        let page = h.get(&uri).await;
        assert_eq!(page.status.as_u16(), status, "{uri}: {}", page.body);
        assert_eq!(page.error_code(), Some(code), "{uri}");
        assert!(page.body.contains(code), "the page shows the code");
    }
    let base = format!("/runs/{}", run.run_id);
    for (path, form, status, code, field) in [
        (
            format!("{base}/signal"),
            vec![("name", "approved"), ("payload", "{oops")],
            400,
            "malformed_json",
            "payload",
        ),
        (
            format!("{base}/signal"),
            vec![("name", " ")],
            400,
            "invalid_parameter",
            "name",
        ),
        (
            format!("/runs/{unknown}/signal"),
            vec![("name", "approved")],
            404,
            "run_not_found",
            "",
        ),
        (
            format!("/runs/{unknown}/cancel"),
            vec![],
            404,
            "run_not_found",
            "",
        ),
        (
            "/runs/bad/redrive".to_owned(),
            vec![],
            400,
            "invalid_parameter",
            "runId",
        ),
    ] {
        let mut form = form;
        form.push(("csrf", &csrf));
        let answer = h.post(&path, &form).await;
        assert_eq!(answer.status.as_u16(), status, "{path}: {}", answer.body);
        assert_eq!(answer.error_code(), Some(code), "{path}");
        if !field.is_empty() {
            assert!(
                answer.body.contains(&format!("<code>{field}</code>")),
                "{path}: {}",
                answer.body
            );
        }
    }
    // A body that is not a form at all.
    let request = Request::post(format!("{base}/cancel"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let answer = support::send(&h.router, request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.error_code(), Some("invalid_parameter"));
    assert_eq!(
        h.store.get_run(&run.run_id).await.unwrap().status,
        RunStatus::Running
    );
}

#[tokio::test]
async fn read_only_console_offers_and_accepts_no_actions() {
    let h = Harness::with(|console, _| console.read_only(true));
    let run = h.start_approval().await;
    let list = h.get("/").await;
    assert!(!list.body.contains("/start\""), "no start links");
    let page = h.get(&format!("/runs/{}", run.run_id)).await;
    assert!(!page.body.contains("<form method=\"post\"") && !page.body.contains("name=\"csrf\""));
    assert_eq!(
        h.get("/workflows/approval/start").await.status,
        StatusCode::FORBIDDEN
    );
    for path in ["cancel", "signal", "redrive"] {
        let answer = h
            .post(
                &format!("/runs/{}/{path}", run.run_id),
                &[("name", "approved"), ("csrf", "x")],
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(answer.error_code(), Some("read_only"));
    }
    assert_eq!(
        h.store.get_run(&run.run_id).await.unwrap().status,
        RunStatus::Running
    );
}

#[tokio::test]
async fn user_supplied_values_are_escaped() {
    let h = Harness::new();
    let evil = "<script>alert(1)</script>";
    let run = h
        .executor
        .start(wf_engine::StartRequest {
            workflow_id: "approval".to_owned(),
            input: serde_json::json!({ "subject": evil, "requester": evil, "amountCents": 1 }),
            idempotency_key: Some(evil.to_owned()),
            resource_id: Some(evil.to_owned()),
            tags: [(evil.to_owned(), evil.to_owned())].into(),
            retention_days: None,
        })
        .await
        .unwrap()
        .run;
    for uri in [
        "/".to_owned(),
        format!("/runs/{}", run.run_id),
        format!("/?resource={}", support::encode(evil)),
    ] {
        let page = h.get(&uri).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.body.contains(evil), "{uri} has raw markup");
        assert!(page.body.contains("&lt;script&gt;"), "{uri}");
    }
}

#[tokio::test]
async fn foreign_hosts_are_refused_and_pages_carry_security_headers() {
    let h = Harness::new();
    let request = |host: &str| {
        Request::get("/")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    };
    for host in [
        "127.0.0.1:8080",
        "localhost:8080",
        "[::1]:8080",
        "localhost",
    ] {
        let page = support::send(&h.router, request(host)).await;
        assert_eq!(page.status, StatusCode::OK, "{host}");
        let csp = page.headers.get(header::CONTENT_SECURITY_POLICY).unwrap();
        assert!(csp.to_str().unwrap().contains("default-src 'self'"));
    }
    let page = support::send(&h.router, request("evil.example:8080")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(page.error_code(), Some("host_not_allowed"));
    let css = h.get("/assets/console.css").await;
    assert_eq!(
        css.headers.get(header::CONTENT_TYPE).unwrap(),
        "text/css; charset=utf-8"
    );
    assert!(
        h.get("/assets/console.js")
            .await
            .body
            .contains("data-refresh")
    );
}

#[tokio::test]
async fn archived_runs_open_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(FsArchiveSink::new(dir.path()));
    let prefix = ArchivePrefix::parse("runs/").unwrap();
    let h = Harness::with(|console, store| {
        console.with_archive(Archiver::new(
            Arc::clone(store),
            sink.clone(),
            prefix.clone(),
        ))
    });
    let unconfigured = Harness::new();
    let none = unconfigured.get("/archive").await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert_eq!(none.error_code(), Some("archive_not_configured"));

    let run = h.start_approval().await;
    let archiver = Archiver::new(Arc::clone(&h.store), sink.clone(), prefix.clone());
    archiver.archive_expired(&run, None).await.unwrap();
    h.store.delete_run(&run.run_id).await.unwrap();

    assert_eq!(
        h.get("/archive").await.status,
        StatusCode::OK,
        "the lookup form"
    );
    let page = h
        .get(&format!("/archive?run={}&workflow=approval", run.run_id))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Archived run, read-only"));
    assert!(page.body.contains("class=\"graph\""));
    assert!(
        !page.body.contains("name=\"csrf\""),
        "no actions on an archived run"
    );
    assert!(!page.body.contains("data-refresh=\""), "no refresh");
    for (query, status, code) in [
        ("run=01KABCDEFGHJKMNPQRSTVWXYZ0", 404, "archive_not_found"),
        ("run=nope", 400, "invalid_parameter"),
    ] {
        let page = h.get(&format!("/archive?{query}")).await;
        assert_eq!(page.status.as_u16(), status, "{query}: {}", page.body);
        assert_eq!(page.error_code(), Some(code), "{query}");
    }
}
