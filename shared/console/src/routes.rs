//! The routes and their handlers. Handlers are thin: parse and check the request, call
//! the store or the executor, render a page. Every POST checks read-only mode first, then
//! the CSRF token, then its input; success answers 303 to the run's page.

use std::sync::Arc;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use wf_engine::{EngineError, StartRequest, WorkflowInfo};
use wf_store::{RunId, RunQuery, RunRecord, RunStatus, StoreError, WorkflowId};

use crate::AppState;
use crate::assets;
use crate::error::ConsoleError;
use crate::filters::ListParams;
use crate::pages::{self, RunPage, RunsPage, StartForm, StatusCount};

type Shared = State<Arc<AppState>>;
type Page = Result<Response, ConsoleError>;

/// Counts by status stop at this many runs each (shown as `1000+`).
pub(crate) const COUNT_CAP: u32 = 1000;

/// Every route of the console.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(runs))
        .route("/runs/{run_id}", get(run))
        .route("/runs/{run_id}/cancel", axum::routing::post(cancel))
        .route("/runs/{run_id}/signal", axum::routing::post(signal))
        .route("/runs/{run_id}/redrive", axum::routing::post(redrive))
        .route(
            "/workflows/{workflow_id}/start",
            get(start_form).post(start),
        )
        .route("/archive", get(archive))
        .route("/assets/console.css", get(assets::css))
        .route("/assets/console.js", get(assets::js))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .with_state(state)
}

/// Refuses foreign `Host`s and sets the security headers on every answer.
async fn guard(State(state): Shared, request: Request, next: Next) -> Response {
    if let Some(host) = request.headers().get(header::HOST) {
        let text = host.to_str().unwrap_or_default();
        let name = if text.starts_with('[') {
            text.split_inclusive(']').next().unwrap_or_default()
        } else {
            text.split(':').next().unwrap_or_default()
        };
        if !state.hosts.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            return ConsoleError::ForeignHost {
                host: text.to_owned(),
            }
            .into_response();
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn not_found(request: Request) -> ConsoleError {
    ConsoleError::NotFound {
        path: request.uri().path().to_owned(),
    }
}

/// `?partial=1` asks for the refreshing part only.
#[derive(Debug, Default, Deserialize)]
struct Partial {
    partial: Option<String>,
}

impl Partial {
    fn wanted(&self) -> bool {
        self.partial.as_deref() == Some("1")
    }
}

fn html(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

fn parse_run_id(text: &str) -> Result<RunId, ConsoleError> {
    RunId::parse(text).map_err(|e| ConsoleError::invalid("runId", e.to_string()))
}

fn query<T>(result: Result<Query<T>, QueryRejection>) -> Result<T, ConsoleError> {
    result
        .map(|Query(value)| value)
        .map_err(|e| ConsoleError::invalid("query", e.body_text()))
}

fn form<T>(result: Result<Form<T>, FormRejection>) -> Result<T, ConsoleError> {
    result
        .map(|Form(value)| value)
        .map_err(|e| ConsoleError::invalid("body", e.body_text()))
}

/// Read-only mode, then the CSRF token.
fn may_act(state: &AppState, csrf: Option<&str>) -> Result<(), ConsoleError> {
    if state.read_only {
        return Err(ConsoleError::ReadOnly);
    }
    state.csrf.verify(csrf)
}

fn parse_json(field: &str, text: &str) -> Result<Value, ConsoleError> {
    serde_json::from_str(text).map_err(|e| ConsoleError::MalformedJson {
        field: field.to_owned(),
        reason: e.to_string(),
    })
}

async fn counts(state: &AppState, query: &RunQuery) -> Result<Vec<StatusCount>, ConsoleError> {
    let mut counts = Vec::with_capacity(RunStatus::ALL.len());
    for status in RunStatus::ALL {
        let page = state
            .executor
            .store()
            .list_runs(&RunQuery {
                status: Some(status),
                limit: COUNT_CAP,
                cursor: None,
                ..query.clone()
            })
            .await?;
        counts.push(StatusCount {
            status,
            count: page.items.len(),
            capped: page.next.is_some(),
        });
    }
    Ok(counts)
}

/// `GET /`: the runs list.
async fn runs(
    State(state): Shared,
    params: Result<Query<ListParams>, QueryRejection>,
    partial: Result<Query<Partial>, QueryRejection>,
) -> Page {
    let params = query(params)?;
    let partial = query(partial)?;
    let run_query = params.to_query()?;
    let page = state.executor.store().list_runs(&run_query).await?;
    let counts = counts(&state, &run_query).await?;
    let workflows = state.executor.registry().list();
    let view = RunsPage {
        params: &params,
        page: &page,
        counts: &counts,
        workflows: &workflows,
        read_only: state.read_only,
    };
    Ok(html(if partial.wanted() {
        pages::runs_fragment(&view)
    } else {
        pages::runs_page(&view)
    }))
}

async fn load_run(state: &AppState, run_id: RunId) -> Result<RunRecord, ConsoleError> {
    match state.executor.store().export_run(&run_id).await {
        Ok(record) => Ok(record),
        Err(StoreError::NotFound { .. }) => Err(EngineError::RunNotFound { run_id }.into()),
        Err(error) => Err(error.into()),
    }
}

fn render_run(state: &AppState, record: &RunRecord, archived: bool, partial: bool) -> Response {
    let workflow = state
        .executor
        .registry()
        .get(&record.run.workflow_id, &record.run.workflow_version)
        .ok();
    let view = RunPage {
        record,
        workflow: workflow.as_deref(),
        archived,
        csrf: (!state.read_only && !archived).then(|| state.csrf.as_str()),
        now: chrono::Utc::now(),
    };
    html(if partial {
        pages::run_fragment(&view)
    } else {
        pages::run_page(&view)
    })
}

/// `GET /runs/{run_id}`: a run's page.
async fn run(
    State(state): Shared,
    Path(run_id): Path<String>,
    partial: Result<Query<Partial>, QueryRejection>,
) -> Page {
    let partial = query(partial)?;
    let record = load_run(&state, parse_run_id(&run_id)?).await?;
    Ok(render_run(&state, &record, false, partial.wanted()))
}

#[derive(Debug, Deserialize)]
struct CancelForm {
    csrf: Option<String>,
    reason: Option<String>,
}

/// `POST /runs/{run_id}/cancel`.
async fn cancel(
    State(state): Shared,
    Path(run_id): Path<String>,
    body: Result<Form<CancelForm>, FormRejection>,
) -> Page {
    let body = form(body)?;
    may_act(&state, body.csrf.as_deref())?;
    let run_id = parse_run_id(&run_id)?;
    let reason = body
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "cancelled from the wf console".to_owned());
    state.executor.cancel(&run_id, &reason).await?;
    Ok(Redirect::to(&format!("/runs/{run_id}")).into_response())
}

#[derive(Debug, Deserialize)]
struct SignalForm {
    csrf: Option<String>,
    name: Option<String>,
    payload: Option<String>,
}

/// `POST /runs/{run_id}/signal`: delivers a signal, then executes what it woke.
async fn signal(
    State(state): Shared,
    Path(run_id): Path<String>,
    body: Result<Form<SignalForm>, FormRejection>,
) -> Page {
    let body = form(body)?;
    may_act(&state, body.csrf.as_deref())?;
    let run_id = parse_run_id(&run_id)?;
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ConsoleError::invalid("name", "give the signal's name, e.g. approved"))?;
    let payload = match body.payload.as_deref().map(str::trim) {
        None | Some("") => Value::Null,
        Some(text) => parse_json("payload", text)?,
    };
    state.executor.signal(&run_id, name, &payload).await?;
    state.driver.nudge(run_id);
    Ok(Redirect::to(&format!("/runs/{run_id}")).into_response())
}

#[derive(Debug, Deserialize)]
struct RedriveForm {
    csrf: Option<String>,
}

/// `POST /runs/{run_id}/redrive`: restarts a failed run from its failed steps.
async fn redrive(
    State(state): Shared,
    Path(run_id): Path<String>,
    body: Result<Form<RedriveForm>, FormRejection>,
) -> Page {
    let body = form(body)?;
    may_act(&state, body.csrf.as_deref())?;
    let run_id = parse_run_id(&run_id)?;
    state.executor.redrive(&run_id).await?;
    state.driver.nudge(run_id);
    Ok(Redirect::to(&format!("/runs/{run_id}")).into_response())
}

fn workflow_info(state: &AppState, workflow_id: &str) -> Result<WorkflowInfo, ConsoleError> {
    let workflow = state.executor.registry().latest(workflow_id)?;
    Ok(WorkflowInfo::from(workflow.as_ref()))
}

/// `GET /workflows/{workflow_id}/start`: the start form.
async fn start_form(State(state): Shared, Path(workflow_id): Path<String>) -> Page {
    if state.read_only {
        return Err(ConsoleError::ReadOnly);
    }
    let info = workflow_info(&state, &workflow_id)?;
    Ok(html(pages::start_page(
        &info,
        &StartForm::default(),
        state.csrf.as_str(),
        None,
    )))
}

fn start_request(workflow_id: &str, form: &StartForm) -> Result<StartRequest, ConsoleError> {
    let input = match form.input.as_deref().map(str::trim) {
        None | Some("") => Value::Object(serde_json::Map::new()),
        Some(text) => parse_json("input", text)?,
    };
    let mut tags = std::collections::BTreeMap::new();
    for line in form.tags.as_deref().unwrap_or_default().lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| {
                ConsoleError::invalid("tags", format!("{line:?} must look like key=value"))
            })?;
        tags.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    let text = |v: Option<&String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    Ok(StartRequest {
        workflow_id: workflow_id.to_owned(),
        input,
        idempotency_key: text(form.idempotency_key.as_ref()),
        resource_id: text(form.resource.as_ref()),
        tags,
        retention_days: None,
    })
}

/// `POST /workflows/{workflow_id}/start`: starts a run; a refused start shows the form
/// again with the error.
async fn start(
    State(state): Shared,
    Path(workflow_id): Path<String>,
    body: Result<Form<StartForm>, FormRejection>,
) -> Page {
    let body = form(body)?;
    may_act(&state, body.csrf.as_deref())?;
    let info = workflow_info(&state, &workflow_id)?;
    let started = match start_request(&workflow_id, &body) {
        Ok(request) => state
            .executor
            .start(request)
            .await
            .map_err(ConsoleError::from),
        Err(error) => Err(error),
    };
    match started {
        Ok(started) => {
            let run_id = started.run.run_id;
            state.driver.nudge(run_id);
            Ok(Redirect::to(&format!("/runs/{run_id}")).into_response())
        }
        Err(error) => {
            let status = error.status();
            let page = pages::start_page(&info, &body, state.csrf.as_str(), Some(&error));
            let mut response = (status, html(page)).into_response();
            response
                .headers_mut()
                .insert("x-wf-error", HeaderValue::from_static(error.code()));
            Ok(response)
        }
    }
}

#[derive(Debug, Deserialize)]
struct ArchiveParams {
    run: Option<String>,
    workflow: Option<String>,
}

/// `GET /archive`: a lookup form, or (with `run`) an archived run, read-only.
async fn archive(
    State(state): Shared,
    params: Result<Query<ArchiveParams>, QueryRejection>,
) -> Page {
    let params = query(params)?;
    let archiver = state.archive.as_ref().ok_or(ConsoleError::NoArchive)?;
    let Some(run_id) = params
        .run
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    else {
        let body = html! {
            h1 { "Archived runs" }
            form method="get" action="/archive" {
                label { "Run id " input type="text" name="run" required; }
                label { "Workflow (optional, faster) " input type="text" name="workflow"; }
                button type="submit" { "Open" }
            }
        };
        return Ok(html(pages::layout("Archive", &body)));
    };
    let run_id = RunId::parse(run_id).map_err(|e| ConsoleError::invalid("run", e.to_string()))?;
    let workflow = params
        .workflow
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| WorkflowId::parse(w).map_err(|e| ConsoleError::invalid("workflow", e.to_string())))
        .transpose()?;
    let copy = archiver.read(&run_id, workflow.as_ref()).await?;
    Ok(render_run(&state, &copy.record, true, false))
}
