//! The form that starts a run of one workflow. After a refused start it comes back with
//! what was typed and the error, naming the field as the runs API does.

use maud::{Markup, html};
use wf_engine::WorkflowInfo;

use super::layout;
use crate::error::ConsoleError;

/// What the form holds (as typed).
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(crate) struct StartForm {
    pub(crate) csrf: Option<String>,
    pub(crate) input: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) tags: Option<String>,
    pub(crate) idempotency_key: Option<String>,
}

/// The page.
pub(crate) fn start_page(
    workflow: &WorkflowInfo,
    form: &StartForm,
    csrf: &str,
    error: Option<&ConsoleError>,
) -> Markup {
    let body = html! {
        h1 { "Start " (workflow.workflow_id) " v" (workflow.version) }
        p { (workflow.description) }
        p class="muted" { "Steps: " @for s in &workflow.steps { code { (s) } " " } }
        @if let Some(error) = error {
            div class="error-box" id="form-error" data-code=(error.code()) data-field=[error.field()] {
                strong { (error.code()) } ": " (error.public_message())
                @if let Some(field) = error.field() { " (field " code { (field) } ")" }
            }
        }
        form class="start" method="post" action={ "/workflows/" (workflow.workflow_id) "/start" } {
            input type="hidden" name="csrf" value=(csrf);
            label { "Input (JSON)" textarea name="input" rows="10" cols="60" { (form.input.as_deref().unwrap_or("{}")) } }
            label { "Resource id " input type="text" name="resource" value=(form.resource.as_deref().unwrap_or("")); }
            label { "Tags (one key=value a line)" textarea name="tags" rows="2" cols="40" { (form.tags.as_deref().unwrap_or("")) } }
            label { "Idempotency key " input type="text" name="idempotency_key" value=(form.idempotency_key.as_deref().unwrap_or("")); }
            button id="start-run" type="submit" { "Start run" }
        }
    };
    layout(&format!("Start {}", workflow.workflow_id), &body)
}
