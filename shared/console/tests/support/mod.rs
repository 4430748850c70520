//! What the console's tests and benchmark share: a console over a fresh embedded store
//! with the example workflows plus a 100-step one, and requests sent straight to its
//! router (no socket) or to a server on a free loopback port.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code,
    unreachable_pub,
    reason = "test support: failures should stop the test loudly; each test uses a part"
)]

pub mod webdriver;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use wf_console::Console;
use wf_engine::{
    Executor, InProcessDispatcher, LocalRunner, Registry, StepContext, StepError, SystemClock,
    Workflow, step,
};
use wf_store::{Retention, RunId, SqliteStore, Store, WorkflowRun};

/// The id of the 100-step workflow.
pub const HUNDRED: &str = "hundred-steps";

/// A step of the 100-step workflow: a small output of its own (passing the input on
/// would nest the fan-in objects three times deeper at every join).
async fn pass(ctx: StepContext, _: Value) -> Result<Value, StepError> {
    Ok(json!({ "step": ctx.step_id().to_string(), "ok": true }))
}

/// 100 steps: a first step, then 33 groups of 3 parallel branches, each group joined by
/// the next (so the graph has forks and joins all the way down).
pub fn hundred_step_workflow() -> Workflow {
    let mut builder = Workflow::builder(HUNDRED, "1")
        .description("a first step, then 33 groups of three parallel steps")
        .then(step("start", pass));
    for group in 0..33 {
        builder = builder.parallel((0..3).map(|b| step(&format!("g{group:02}-b{b}"), pass)));
    }
    builder.build().unwrap()
}

/// The example workflows and the 100-step one.
pub fn registry() -> Registry {
    let mut registry = wf_workflows::registry().unwrap();
    registry.register(hundred_step_workflow()).unwrap();
    registry
}

/// An executor with its runner over `store`.
pub fn executor(store: Arc<dyn Store>) -> (Arc<Executor>, LocalRunner) {
    let (dispatcher, receiver) = InProcessDispatcher::new();
    let executor = Arc::new(Executor::new(
        store,
        Arc::new(dispatcher),
        Arc::new(registry()),
        Arc::new(SystemClock),
    ));
    let runner = LocalRunner::new(Arc::clone(&executor), receiver);
    (executor, runner)
}

/// A console over a fresh in-memory store.
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub executor: Arc<Executor>,
    pub router: Router,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(|console, _| console)
    }

    pub fn with(configure: impl FnOnce(Console, &Arc<dyn Store>) -> Console) -> Self {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory(Retention::default()).unwrap());
        let (executor, runner) = executor(Arc::clone(&store));
        let router = configure(Console::new(Arc::clone(&executor), runner), &store)
            .into_router()
            .unwrap();
        Self {
            store,
            executor,
            router,
        }
    }

    pub async fn get(&self, uri: &str) -> Response {
        send(&self.router, Request::get(uri).body(Body::empty()).unwrap()).await
    }

    pub async fn post(&self, uri: &str, form: &[(&str, &str)]) -> Response {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        send(&self.router, request).await
    }

    /// The CSRF token, read off the runs list's start form as a browser would.
    pub async fn csrf(&self) -> String {
        let page = self.get("/workflows/approval/start").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        csrf_in(&page.body)
    }

    /// Starts a run of the approval workflow here (through the executor, not the page).
    pub async fn start_approval(&self) -> WorkflowRun {
        self.executor
            .start(wf_engine::StartRequest {
                workflow_id: "approval".to_owned(),
                input: approval_input(),
                idempotency_key: None,
                resource_id: Some("invoice-7".to_owned()),
                tags: [("team".to_owned(), "finance".to_owned())].into(),
                retention_days: None,
            })
            .await
            .unwrap()
            .run
    }

    /// Waits (polling the store, no deadline: the test runner's timeout is the bound)
    /// until `check` holds for the run.
    pub async fn until(&self, run_id: &RunId, check: impl Fn(&wf_store::RunRecord) -> bool) {
        loop {
            let record = self.store.export_run(run_id).await.unwrap();
            if check(&record) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn approval_input() -> Value {
    json!({ "subject": "new laptop", "requester": "grace", "amountCents": 129_900 })
}

/// The value of the first `name="csrf"` field in a page.
pub fn csrf_in(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Response {
    pub fn error_code(&self) -> Option<&str> {
        self.headers.get("x-wf-error").and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }
}

pub async fn send(router: &Router, request: Request<Body>) -> Response {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Response {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
