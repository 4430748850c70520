//! Workflow definitions: a validated graph of steps, built with [`Workflow::builder`].
//!
//! Data flow: a step with no parents receives the run input; a step with one parent
//! receives that parent's output; a step with several parents (fan-in) receives an object
//! mapping each parent's id to its output. A skipped step passes its input on as its
//! output; a sleep passes its input on; a signal wait outputs the signal's payload. The
//! run's output is its one leaf step's output, or an object of every leaf's output.

#[cfg(test)]
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wf_store::{StepId, WorkflowId};

use crate::error::{EngineError, StepError};
use crate::retry::{RetryPolicy, StepConfig};
use crate::step::{ErasedCondition, ErasedStep, InputCheck, StepContext, erase, erase_condition};

/// What a node does when it runs.
#[derive(Clone)]
pub(crate) enum NodeKind {
    /// Runs user code.
    Task { run: ErasedStep, check: InputCheck },
    /// Parks the step for a fixed time.
    Sleep { duration: Duration },
    /// Parks the step until a named signal arrives, or fails it after `timeout`.
    WaitSignal { signal: String, timeout: Duration },
}

/// One step of a definition.
#[derive(Clone)]
pub(crate) struct Node {
    pub(crate) id: StepId,
    pub(crate) kind: NodeKind,
    pub(crate) parents: Vec<StepId>,
    pub(crate) config: StepConfig,
    pub(crate) condition: Option<ErasedCondition>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            NodeKind::Task { .. } => "task",
            NodeKind::Sleep { .. } => "sleep",
            NodeKind::WaitSignal { .. } => "wait-signal",
        };
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("kind", &kind)
            .field("parents", &self.parents)
            .finish_non_exhaustive()
    }
}

/// A step to add to a workflow: its id, body and configuration.
#[must_use]
pub struct StepSpec {
    id: String,
    kind: NodeKind,
    config: StepConfig,
    condition: Option<ErasedCondition>,
}

/// A task step running `body`: an async fn `(StepContext, I) -> Result<O, StepError>`.
pub fn step<I, O, F, Fut>(id: &str, body: F) -> TypedStep<I>
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + 'static,
    F: Fn(StepContext, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, StepError>> + Send + 'static,
{
    let (run, check) = erase(body);
    TypedStep {
        spec: StepSpec {
            id: id.to_owned(),
            kind: NodeKind::Task { run, check },
            config: StepConfig::default(),
            condition: None,
        },
        input: std::marker::PhantomData,
    }
}

/// A step that sleeps durably for `duration`, then passes its input on.
pub fn sleep(id: &str, duration: Duration) -> StepSpec {
    StepSpec {
        id: id.to_owned(),
        kind: NodeKind::Sleep { duration },
        config: StepConfig::default(),
        condition: None,
    }
}

/// A step that waits for the signal `signal` (its payload becomes the step's output), and
/// fails with code `signal_timeout` if none arrives within `timeout`. A signal sent before
/// the wait starts is kept and consumed when it does.
pub fn wait_for_signal(id: &str, signal: &str, timeout: Duration) -> StepSpec {
    StepSpec {
        id: id.to_owned(),
        kind: NodeKind::WaitSignal {
            signal: signal.to_owned(),
            timeout,
        },
        config: StepConfig::default(),
        condition: None,
    }
}

/// A task step that still knows its input type, so a typed condition can be attached.
#[must_use]
pub struct TypedStep<I> {
    spec: StepSpec,
    input: std::marker::PhantomData<fn(I)>,
}

impl<I: DeserializeOwned + 'static> TypedStep<I> {
    /// Runs the step only when `predicate` holds for its input; otherwise the step is
    /// `SKIPPED`, passes its input on, and the flow goes on.
    pub fn when(mut self, predicate: impl Fn(&I) -> bool + Send + Sync + 'static) -> Self {
        self.spec.condition = Some(erase_condition(predicate));
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.spec = self.spec.retry(policy);
        self
    }

    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.spec = self.spec.timeout(timeout);
        self
    }

    /// Lets the flow go on after a terminal failure.
    pub fn continue_on_error(mut self) -> Self {
        self.spec = self.spec.continue_on_error();
        self
    }
}

impl<I> From<TypedStep<I>> for StepSpec {
    fn from(step: TypedStep<I>) -> Self {
        step.spec
    }
}

impl StepSpec {
    /// Sets the retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// Lets the flow go on after a terminal failure.
    pub fn continue_on_error(mut self) -> Self {
        self.config.continue_on_error = true;
        self
    }
}

/// A validated workflow definition.
#[derive(Debug, Clone)]
pub struct Workflow {
    id: WorkflowId,
    version: String,
    description: String,
    nodes: Vec<Node>,
    index: HashMap<StepId, usize>,
    successors: Vec<Vec<usize>>,
}

/// Builds a [`Workflow`]: steps run in sequence unless added with
/// [`WorkflowBuilder::parallel`] or [`WorkflowBuilder::after`].
#[must_use]
pub struct WorkflowBuilder {
    id: String,
    version: String,
    description: String,
    specs: Vec<(StepSpec, Vec<String>)>,
    frontier: Vec<String>,
}

impl Workflow {
    /// Starts a definition of workflow `id` at `version`.
    pub fn builder(id: &str, version: &str) -> WorkflowBuilder {
        WorkflowBuilder {
            id: id.to_owned(),
            version: version.to_owned(),
            description: String::new(),
            specs: Vec::new(),
            frontier: Vec::new(),
        }
    }

    /// The workflow id.
    pub fn id(&self) -> &WorkflowId {
        &self.id
    }

    /// The version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// One line on what it does.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Number of steps.
    pub fn step_count(&self) -> usize {
        self.nodes.len()
    }

    /// Step ids in definition order.
    pub fn step_ids(&self) -> impl Iterator<Item = &StepId> {
        self.nodes.iter().map(|n| &n.id)
    }

    /// The names of the signals this workflow waits for, in definition order.
    pub fn signals(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().filter_map(|n| match &n.kind {
            NodeKind::WaitSignal { signal, .. } => Some(signal.as_str()),
            _ => None,
        })
    }

    /// Each step in definition order with its kind (`task`, `sleep` or `wait-signal`) and
    /// its parents, for drawing the workflow's graph (the `wf console` does).
    pub fn graph(&self) -> impl Iterator<Item = (&StepId, &'static str, &[StepId])> {
        self.nodes.iter().map(|n| {
            let kind = match &n.kind {
                NodeKind::Task { .. } => "task",
                NodeKind::Sleep { .. } => "sleep",
                NodeKind::WaitSignal { .. } => "wait-signal",
            };
            (&n.id, kind, n.parents.as_slice())
        })
    }

    pub(crate) fn node(&self, id: &StepId) -> Option<(usize, &Node)> {
        let index = *self.index.get(id)?;
        self.nodes.get(index).map(|node| (index, node))
    }

    pub(crate) fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter()
    }

    pub(crate) fn roots(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.parents.is_empty())
    }

    pub(crate) fn successors_of(&self, index: usize) -> impl Iterator<Item = (usize, &Node)> {
        self.successors
            .get(index)
            .into_iter()
            .flatten()
            .filter_map(|i| self.nodes.get(*i).map(|n| (*i, n)))
    }

    pub(crate) fn leaves(&self) -> impl Iterator<Item = &Node> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| self.successors.get(*i).is_none_or(Vec::is_empty))
            .map(|(_, n)| n)
    }

    /// Checks a run input against every first step's input type.
    pub fn check_input(&self, input: &serde_json::Value) -> Result<(), EngineError> {
        for (_, node) in self.roots() {
            if let NodeKind::Task { check, .. } = &node.kind {
                check(input)?;
            }
        }
        Ok(())
    }
}

impl WorkflowBuilder {
    /// Sets the one-line description shown by `wf workflows`.
    pub fn description(mut self, text: &str) -> Self {
        text.clone_into(&mut self.description);
        self
    }

    /// Adds a step after every step of the current frontier (the previous step, or all
    /// branches of the previous parallel group).
    pub fn then(mut self, spec: impl Into<StepSpec>) -> Self {
        let spec = spec.into();
        let id = spec.id.clone();
        self.specs.push((spec, std::mem::take(&mut self.frontier)));
        self.frontier = vec![id];
        self
    }

    /// Adds branches that all follow the current frontier and run in parallel; the next
    /// step added with `then` waits for all of them (fan-in).
    pub fn parallel<S: Into<StepSpec>>(mut self, branches: impl IntoIterator<Item = S>) -> Self {
        let parents = std::mem::take(&mut self.frontier);
        for branch in branches {
            let spec = branch.into();
            self.frontier.push(spec.id.clone());
            self.specs.push((spec, parents.clone()));
        }
        self
    }

    /// Adds a step after the named steps, whatever the frontier; it becomes the frontier.
    pub fn after(mut self, parents: &[&str], spec: impl Into<StepSpec>) -> Self {
        let spec = spec.into();
        let id = spec.id.clone();
        self.specs
            .push((spec, parents.iter().map(|p| (*p).to_owned()).collect()));
        self.frontier = vec![id];
        self
    }

    /// Validates and builds: step ids parse and are unique, every parent exists and comes
    /// earlier (so there is no cycle), and there is at least one step.
    pub fn build(self) -> Result<Workflow, EngineError> {
        let invalid = |reason: String| EngineError::Definition {
            workflow_id: self.id.clone(),
            reason,
        };
        let id = WorkflowId::parse(self.id.as_str()).map_err(|e| invalid(e.to_string()))?;
        if self.version.is_empty() {
            return Err(invalid("the version must not be empty".to_owned()));
        }
        if self.specs.is_empty() {
            return Err(invalid("a workflow needs at least one step".to_owned()));
        }
        let mut index = HashMap::new();
        let mut nodes = Vec::with_capacity(self.specs.len());
        for (position, (spec, parents)) in self.specs.into_iter().enumerate() {
            let step_id = StepId::parse(spec.id.as_str())
                .map_err(|e| invalid(format!("step {:?}: {e}", spec.id)))?;
            let mut parent_ids = Vec::with_capacity(parents.len());
            for parent in parents {
                let parent_id = StepId::parse(parent.as_str())
                    .ok()
                    .filter(|p| index.contains_key(p))
                    .ok_or_else(|| {
                        invalid(format!(
                            "step {step_id} follows {parent:?}, which is not defined before it"
                        ))
                    })?;
                if parent_ids.contains(&parent_id) {
                    return Err(invalid(format!(
                        "step {step_id} lists parent {parent_id} twice"
                    )));
                }
                parent_ids.push(parent_id);
            }
            if index.insert(step_id.clone(), position).is_some() {
                return Err(invalid(format!("step id {step_id} is used twice")));
            }
            nodes.push(Node {
                id: step_id,
                kind: spec.kind,
                parents: parent_ids,
                config: spec.config,
                condition: spec.condition,
            });
        }
        let mut successors = vec![Vec::new(); nodes.len()];
        for (position, node) in nodes.iter().enumerate() {
            for parent in &node.parents {
                if let Some(list) = index.get(parent).and_then(|p| successors.get_mut(*p)) {
                    list.push(position);
                }
            }
        }
        Ok(Workflow {
            id,
            version: self.version,
            description: self.description,
            nodes,
            index,
            successors,
        })
    }
}

/// Summary of a registered workflow, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowInfo {
    /// The id.
    pub workflow_id: String,
    /// The latest version.
    pub version: String,
    /// What it does.
    pub description: String,
    /// Its steps in definition order.
    pub steps: Vec<String>,
}

impl From<&Workflow> for WorkflowInfo {
    fn from(workflow: &Workflow) -> Self {
        Self {
            workflow_id: workflow.id.to_string(),
            version: workflow.version.clone(),
            description: workflow.description.clone(),
            steps: workflow.step_ids().map(ToString::to_string).collect(),
        }
    }
}

/// Parent ids of every node, for tests.
#[cfg(test)]
pub(crate) fn parents_of(workflow: &Workflow) -> BTreeMap<String, Vec<String>> {
    workflow
        .nodes
        .iter()
        .map(|n| {
            (
                n.id.to_string(),
                n.parents.iter().map(ToString::to_string).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn noop(
        _: StepContext,
        input: serde_json::Value,
    ) -> Result<serde_json::Value, StepError> {
        Ok(input)
    }

    #[test]
    fn builder_wires_sequence_fan_out_and_fan_in() {
        let workflow = Workflow::builder("orders", "1")
            .then(step("validate", noop))
            .parallel([step("reserve", noop), step("charge", noop)])
            .then(step("ship", noop))
            .build()
            .unwrap();
        let parents = parents_of(&workflow);
        assert_eq!(parents["reserve"], ["validate"]);
        assert_eq!(parents["ship"], ["reserve", "charge"]);
        assert_eq!(workflow.roots().count(), 1);
        assert_eq!(
            workflow
                .leaves()
                .map(|n| n.id.to_string())
                .collect::<Vec<_>>(),
            ["ship"]
        );
    }

    #[test]
    fn builder_rejects_bad_definitions() {
        let duplicate = Workflow::builder("w", "1")
            .then(step("a", noop))
            .then(step("a", noop))
            .build();
        assert!(
            matches!(duplicate, Err(EngineError::Definition { reason, .. }) if reason.contains("used twice"))
        );
        let dangling = Workflow::builder("w", "1")
            .after(&["ghost"], step("a", noop))
            .build();
        assert!(
            matches!(dangling, Err(EngineError::Definition { reason, .. }) if reason.contains("not defined before"))
        );
        let bad_id = Workflow::builder("w", "1").then(step("a#b", noop)).build();
        assert!(bad_id.is_err());
        assert!(Workflow::builder("w", "1").build().is_err(), "no steps");
        assert!(
            Workflow::builder("w", "")
                .then(step("a", noop))
                .build()
                .is_err(),
            "no version"
        );
    }
}
