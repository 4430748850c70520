//! A run's workflow graph, laid out in layers and drawn as SVG. A step's layer is one
//! below its deepest parent; steps of a layer sit side by side in definition order, so
//! parallel branches share a row. A bar above a step marks a join (several parents), a
//! bar below a step marks a fork (several successors). Each node carries its step's
//! status as a CSS class; steps not created yet are `not-started`.

use std::collections::HashMap;

use maud::{Markup, html};
use wf_engine::Workflow;
use wf_store::{StepExecution, StepStatus};

const NODE_W: i64 = 176;
const NODE_H: i64 = 46;
const GAP_X: i64 = 28;
const GAP_Y: i64 = 60;
const PAD: i64 = 16;
const BAR_W: i64 = 64;
const MAX_LABEL: usize = 22;

/// One node: a step of the definition and, once it exists, its latest execution.
#[derive(Debug)]
struct Node<'a> {
    id: String,
    kind: &'static str,
    parents: Vec<usize>,
    step: Option<&'a StepExecution>,
}

/// A laid-out graph, ready to draw.
#[derive(Debug)]
pub(crate) struct Graph<'a> {
    nodes: Vec<Node<'a>>,
}

/// Each step's row, by step id (a step has one row per run).
pub(crate) fn latest_by_step(steps: &[StepExecution]) -> HashMap<&str, &StepExecution> {
    steps.iter().map(|s| (s.step_id.as_str(), s)).collect()
}

impl<'a> Graph<'a> {
    /// The graph of `workflow`'s definition, coloured by the run's `steps`.
    pub(crate) fn from_definition(workflow: &Workflow, steps: &'a [StepExecution]) -> Self {
        let latest = latest_by_step(steps);
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut nodes = Vec::with_capacity(workflow.step_count());
        for (id, kind, parents) in workflow.graph() {
            let parents = parents
                .iter()
                .filter_map(|p| index.get(p.as_str()).copied())
                .collect();
            index.insert(id.to_string(), nodes.len());
            nodes.push(Node {
                id: id.to_string(),
                kind,
                parents,
                step: latest.get(id.as_str()).copied(),
            });
        }
        Self { nodes }
    }

    /// A graph from the run's step rows alone (parents as far as they finished), for a
    /// run whose workflow version this build does not know.
    pub(crate) fn from_steps(steps: &'a [StepExecution]) -> Self {
        let latest = latest_by_step(steps);
        let mut ordered: Vec<&StepExecution> = latest.into_values().collect();
        ordered.sort_by_key(|s| (s.created_at, s.step_id.as_str().to_owned()));
        let index: HashMap<&str, usize> = ordered
            .iter()
            .enumerate()
            .map(|(i, s)| (s.step_id.as_str(), i))
            .collect();
        let nodes = ordered
            .iter()
            .map(|step| Node {
                id: step.step_id.to_string(),
                kind: if step.waiting_for.is_some() {
                    "wait-signal"
                } else {
                    "step"
                },
                parents: step
                    .parents_done
                    .iter()
                    .filter_map(|p| index.get(p.as_str()).copied())
                    .collect(),
                step: Some(step),
            })
            .collect();
        Self { nodes }
    }

    /// Layers: each node's row, parents first.
    fn ranks(&self) -> Vec<usize> {
        let mut ranks = vec![0_usize; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            let rank = node
                .parents
                .iter()
                .filter(|p| **p < i)
                .filter_map(|p| ranks.get(*p))
                .map(|r| r + 1)
                .max()
                .unwrap_or(0);
            if let Some(slot) = ranks.get_mut(i) {
                *slot = rank;
            }
        }
        ranks
    }

    /// The SVG.
    pub(crate) fn render(&self) -> Markup {
        let ranks = self.ranks();
        let rows = ranks.iter().max().map_or(0, |r| r + 1);
        let mut row_sizes = vec![0_i64; rows];
        let mut column = vec![0_i64; self.nodes.len()];
        for (i, rank) in ranks.iter().enumerate() {
            if let (Some(size), Some(col)) = (row_sizes.get_mut(*rank), column.get_mut(i)) {
                *col = *size;
                *size += 1;
            }
        }
        let widest = row_sizes.iter().copied().max().unwrap_or(1);
        let width = widest * (NODE_W + GAP_X) - GAP_X + 2 * PAD;
        let height = i64::try_from(rows).unwrap_or(0) * (NODE_H + GAP_Y) - GAP_Y + 2 * PAD;
        let position = |i: usize| -> (i64, i64) {
            let rank = ranks.get(i).copied().unwrap_or(0);
            let in_row = row_sizes.get(rank).copied().unwrap_or(1);
            let row_width = in_row * (NODE_W + GAP_X) - GAP_X;
            let x = PAD
                + (width - 2 * PAD - row_width) / 2
                + column.get(i).copied().unwrap_or(0) * (NODE_W + GAP_X);
            let y = PAD + i64::try_from(rank).unwrap_or(0) * (NODE_H + GAP_Y);
            (x, y)
        };
        let mut children = vec![0_usize; self.nodes.len()];
        for node in &self.nodes {
            for p in &node.parents {
                if let Some(count) = children.get_mut(*p) {
                    *count += 1;
                }
            }
        }
        html! {
            svg class="graph" xmlns="http://www.w3.org/2000/svg" role="img"
                aria-label="workflow graph" width=(width) height=(height)
                viewBox={ "0 0 " (width) " " (height) } {
                @for (i, node) in self.nodes.iter().enumerate() {
                    @let (cx, cy) = position(i);
                    @let join = node.parents.len() > 1;
                    @for p in &node.parents {
                        @let (px, py) = position(*p);
                        @let forked = children.get(*p).is_some_and(|c| *c > 1);
                        @let x1 = px + NODE_W / 2;
                        @let y1 = py + NODE_H + if forked { 12 } else { 0 };
                        @let x2 = cx + NODE_W / 2;
                        @let y2 = cy - if join { 12 } else { 0 };
                        @let done = self.nodes.get(*p).and_then(|n| n.step).is_some_and(|s| s.status.is_terminal());
                        path class={ "edge" @if done { " done" } }
                            d={ "M" (x1) " " (y1) " C" (x1) " " (i64::midpoint(y1, y2)) " " (x2) " " (i64::midpoint(y1, y2)) " " (x2) " " (y2) } {}
                    }
                    @if join {
                        rect class="bar join" x=(cx + (NODE_W - BAR_W) / 2) y=(cy - 12) width=(BAR_W) height="5" rx="2" {}
                    }
                    @if children.get(i).is_some_and(|c| *c > 1) {
                        rect class="bar fork" x=(cx + (NODE_W - BAR_W) / 2) y=(cy + NODE_H + 7) width=(BAR_W) height="5" rx="2" {}
                    }
                    (node_markup(node, cx, cy))
                }
            }
        }
    }
}

/// The CSS class of a step's state.
pub(crate) fn status_class(step: Option<&StepExecution>) -> &'static str {
    match step.map(|s| s.status) {
        None => "not-started",
        // A join every parent has told waits only for its claim, as a ready step does.
        Some(StepStatus::Pending) if step.is_some_and(StepExecution::joined) => "ready",
        Some(StepStatus::Pending) => "pending",
        Some(StepStatus::Ready) => "ready",
        Some(StepStatus::Running) => "running",
        Some(StepStatus::Waiting) => "waiting",
        Some(StepStatus::Retrying) => "retrying",
        Some(StepStatus::Completed) => "completed",
        Some(StepStatus::Failed) => "failed",
        Some(StepStatus::Skipped) => "skipped",
        Some(StepStatus::Cancelled) => "cancelled",
    }
}

/// What a node's second line says.
fn subtitle(node: &Node<'_>) -> String {
    match node.step {
        None => format!("{} · not started", node.kind),
        Some(step) => match (step.status, &step.waiting_for) {
            (StepStatus::Waiting, Some(signal)) => format!("waits for signal {signal}"),
            (StepStatus::Waiting, None) => "sleeping".to_owned(),
            (StepStatus::Retrying, _) => format!("retrying · attempt {}", step.attempt),
            (status, _) => format!("{} · {}", node.kind, status.as_str().to_lowercase()),
        },
    }
}

fn label(id: &str) -> String {
    if id.chars().count() > MAX_LABEL {
        let short: String = id.chars().take(MAX_LABEL - 1).collect();
        format!("{short}…")
    } else {
        id.to_owned()
    }
}

fn node_markup(node: &Node<'_>, x: i64, y: i64) -> Markup {
    let class = status_class(node.step);
    let sub = subtitle(node);
    html! {
        a href={ "#step-" (node.id) } {
            g class={ "node s-" (class) } data-step=(node.id) data-status=(class) {
                title { (node.id) ": " (sub) }
                rect x=(x) y=(y) width=(NODE_W) height=(NODE_H) rx="8" {}
                text class="id" x=(x + 10) y=(y + 19) { (label(&node.id)) }
                text class="sub" x=(x + 10) y=(y + 36) { (sub) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_engine::{StepContext, StepError, step};

    async fn pass(_: StepContext, v: serde_json::Value) -> Result<serde_json::Value, StepError> {
        Ok(v)
    }

    #[test]
    fn parallel_branches_share_a_row_and_the_join_has_a_bar() {
        let workflow = Workflow::builder("fan", "1")
            .then(step("a", pass))
            .parallel([step("b", pass), step("c", pass)])
            .then(step("d", pass))
            .build()
            .unwrap();
        let graph = Graph::from_definition(&workflow, &[]);
        assert_eq!(graph.ranks(), vec![0, 1, 1, 2]);
        let svg = graph.render().into_string();
        assert_eq!(svg.matches("class=\"bar join\"").count(), 1);
        assert_eq!(svg.matches("class=\"bar fork\"").count(), 1);
        assert_eq!(svg.matches("class=\"edge\"").count(), 4);
        assert_eq!(svg.matches("s-not-started").count(), 4);
    }
}
