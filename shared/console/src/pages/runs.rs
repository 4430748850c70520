//! The runs list: filters, counts by status, one page of runs newest first, and a link
//! to the next page. The counts and the table refresh themselves.

use maud::{Markup, html};
use wf_engine::WorkflowInfo;
use wf_store::{Page, RunStatus, WorkflowRun};

use super::{badge, duration_ms, layout, time};
use crate::filters::{ListParams, encode};

/// How many runs of one status match the filters; `capped` when there are more.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StatusCount {
    pub(crate) status: RunStatus,
    pub(crate) count: usize,
    pub(crate) capped: bool,
}

/// What the runs list shows.
#[derive(Debug)]
pub(crate) struct RunsPage<'a> {
    pub(crate) params: &'a ListParams,
    pub(crate) page: &'a Page<WorkflowRun>,
    pub(crate) counts: &'a [StatusCount],
    pub(crate) workflows: &'a [WorkflowInfo],
    pub(crate) read_only: bool,
}

fn value(field: Option<&String>) -> &str {
    field.map_or("", String::as_str)
}

/// The whole page.
pub(crate) fn runs_page(view: &RunsPage<'_>) -> Markup {
    let p = view.params;
    let live_src = format!("/?{}", p.query_string(&[("partial", "1")]));
    let body = html! {
        h1 { "Runs" }
        @if !view.read_only {
            section class="start-links" {
                "Start a run: "
                @for w in view.workflows {
                    a class="button" href={ "/workflows/" (encode(&w.workflow_id)) "/start" } { (w.workflow_id) }
                }
            }
        }
        form class="filters" method="get" action="/" {
            label { "Workflow "
                select name="workflow" {
                    option value="" { "any" }
                    @for w in view.workflows {
                        option value=(w.workflow_id) selected[value(p.workflow.as_ref()) == w.workflow_id] { (w.workflow_id) }
                    }
                }
            }
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in RunStatus::ALL {
                        option value=(s.as_str()) selected[value(p.status.as_ref()).eq_ignore_ascii_case(s.as_str())] { (s.as_str()) }
                    }
                }
            }
            label { "Resource " input type="text" name="resource" value=(value(p.resource.as_ref())); }
            label { "Tag " input type="text" name="tag" placeholder="key=value" value=(value(p.tag.as_ref())); }
            label { "From " input type="text" name="from" placeholder="2026-01-31T09:00:00Z" value=(value(p.from.as_ref())); }
            label { "To " input type="text" name="to" placeholder="RFC 3339" value=(value(p.to.as_ref())); }
            button type="submit" { "Filter" }
            a href="/" { "clear" }
        }
        section id="live" data-refresh="3000" data-src=(live_src) {
            (runs_fragment(view))
        }
    };
    layout("Runs", &body)
}

/// The part that refreshes: counts, table, next-page link.
pub(crate) fn runs_fragment(view: &RunsPage<'_>) -> Markup {
    let p = view.params;
    let unfiltered = ListParams {
        status: None,
        ..p.clone()
    };
    html! {
        ul class="counts" {
            @for c in view.counts {
                li {
                    a href={ "/?" (unfiltered.query_string(&[("status", c.status.as_str())])) } {
                        (badge(c.status.as_str()))
                        " " span class="count" data-status=(c.status.as_str()) {
                            (c.count) @if c.capped { "+" }
                        }
                    }
                }
            }
        }
        @if view.page.items.is_empty() {
            p class="empty" { "No runs match." }
        } @else {
            table class="runs" {
                thead { tr {
                    th { "Run" } th { "Workflow" } th { "Status" } th { "Steps" }
                    th { "Created (UTC)" } th { "Duration" } th { "Resource" } th { "Tags" }
                } }
                tbody {
                    @for run in &view.page.items {
                        tr data-run=(run.run_id) {
                            td { a class="run-link" href={ "/runs/" (run.run_id) } { code { (run.run_id) } } }
                            td { (run.workflow_id) " v" (run.workflow_version) }
                            td { (badge(run.status.as_str())) }
                            td { (run.completed_steps) "/" (run.total_steps) }
                            td { (time(run.created_at)) }
                            td {
                                @if let Some(end) = run.completed_at {
                                    (duration_ms((end - run.started_at.unwrap_or(run.created_at)).num_milliseconds()))
                                } @else { "–" }
                            }
                            td { (run.resource_id.as_deref().unwrap_or("")) }
                            td { @for (k, v) in &run.tags { span class="tag" { (k) "=" (v) } " " } }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &view.page.next {
            p class="paging" {
                a id="next-page" href={ "/?" (p.query_string(&[("cursor", next.as_str())])) } { "Next page →" }
            }
        }
    }
}
