//! The set of workflows a deployment can run, by id and version.

use std::collections::BTreeMap;
use std::sync::Arc;

use wf_store::WorkflowId;

use crate::error::EngineError;
use crate::workflow::{Workflow, WorkflowInfo};

/// Registered workflows. New runs start on a workflow's latest (last registered) version;
/// a run always continues on the version it started with.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    versions: BTreeMap<WorkflowId, BTreeMap<String, Arc<Workflow>>>,
    latest: BTreeMap<WorkflowId, String>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a workflow version; it becomes the latest. `Definition` error if that version
    /// is already registered.
    pub fn register(&mut self, workflow: Workflow) -> Result<(), EngineError> {
        let id = workflow.id().clone();
        let version = workflow.version().to_owned();
        let versions = self.versions.entry(id.clone()).or_default();
        if versions.contains_key(&version) {
            return Err(EngineError::Definition {
                workflow_id: id.to_string(),
                reason: format!("version {version} is registered twice"),
            });
        }
        versions.insert(version.clone(), Arc::new(workflow));
        self.latest.insert(id, version);
        Ok(())
    }

    /// The latest version of `workflow_id`; `UnknownWorkflow` if none.
    pub fn latest(&self, workflow_id: &str) -> Result<Arc<Workflow>, EngineError> {
        let unknown = || EngineError::UnknownWorkflow {
            workflow_id: workflow_id.to_owned(),
            version: None,
        };
        let id = WorkflowId::parse(workflow_id).map_err(|_| unknown())?;
        let version = self.latest.get(&id).ok_or_else(unknown)?;
        self.get(&id, version)
    }

    /// One exact version; `UnknownWorkflow` if it is not registered.
    pub fn get(
        &self,
        workflow_id: &WorkflowId,
        version: &str,
    ) -> Result<Arc<Workflow>, EngineError> {
        self.versions
            .get(workflow_id)
            .and_then(|versions| versions.get(version))
            .cloned()
            .ok_or_else(|| EngineError::UnknownWorkflow {
                workflow_id: workflow_id.to_string(),
                version: Some(version.to_owned()),
            })
    }

    /// Every workflow's latest version.
    pub fn list(&self) -> Vec<WorkflowInfo> {
        self.latest
            .iter()
            .filter_map(|(id, version)| self.get(id, version).ok())
            .map(|w| WorkflowInfo::from(w.as_ref()))
            .collect()
    }
}
