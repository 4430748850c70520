//! `template.yaml` against the code and the seed:
//! - every folder in `functions/` has a template function whose `CodeUri` points at it,
//!   and every template function points at an existing crate of that name;
//! - each function gets the environment, logging and event sources its code reads;
//! - each role grants exactly the actions its function's code calls, on named resources
//!   (`template_roles.rs` beside this file);
//! - the template's table is the table `scripts/create-dynamodb-table.sh` creates (run on
//!   DynamoDB Local): keys, attributes, billing, GSIs, TTL, stream, PITR, deletion protection
//!   (`template_table.rs`);
//! - the operations options (`template_operations.rs`): capacity mode and auto scaling,
//!   replicas, the KMS key, queue encryption, backups, tags, the dashboard.
//!
//! The template is read with cfn-lint's own YAML loader (it understands `!Ref`, `!Sub`,
//! `!GetAtt`, ... and gives the long form), from the venv `scripts/install-deploy-deps.sh`
//! installs; a missing venv is installed, a failed install fails the tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must fail the test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};
use wf_integration_tests::workspace_root;

#[path = "template_operations.rs"]
mod operations;
#[path = "template_roles.rs"]
mod roles;
#[path = "template_table.rs"]
mod table;

const LOAD_TEMPLATE: &str = r"
import json, sys
from cfnlint.decode import cfn_yaml
print(json.dumps(cfn_yaml.load(sys.argv[1])))
";

fn deploy_venv_bin() -> PathBuf {
    let output = Command::new("bash")
        .arg(workspace_root().join("scripts/install-deploy-deps.sh"))
        .output()
        .expect("run scripts/install-deploy-deps.sh");
    assert!(
        output.status.success(),
        "install-deploy-deps.sh failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("the venv's bin directory")
            .trim(),
    )
}

fn template() -> &'static Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let output = Command::new(deploy_venv_bin().join("python"))
            .arg("-c")
            .arg(LOAD_TEMPLATE)
            .arg(workspace_root().join("template.yaml"))
            .output()
            .expect("run the template loader");
        assert!(
            output.status.success(),
            "template.yaml did not load:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    })
}

fn resources() -> &'static serde_json::Map<String, Value> {
    template()["Resources"].as_object().unwrap()
}

/// Logical id -> properties of every `AWS::Serverless::Function`.
fn functions() -> BTreeMap<&'static str, &'static Value> {
    resources()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, r)| (id.as_str(), r))
        .collect()
}

/// The template function whose `CodeUri` is `functions/<folder>`.
fn function_for(folder: &str) -> &'static Value {
    let uri = format!("functions/{folder}");
    functions()
        .into_values()
        .find(|f| f["Properties"]["CodeUri"] == uri.as_str())
        .unwrap_or_else(|| panic!("no template function with CodeUri {uri}"))
}

/// A resource reference in a short, comparable form: `Table.Arn`, `StepQueue`,
/// `${Table.Arn}/index/GSI2`.
fn reference(value: &Value) -> String {
    if let Some(s) = value.as_str() {
        return s.to_owned();
    }
    if let Some(target) = value.get("Ref") {
        return target.as_str().unwrap().to_owned();
    }
    if let Some(parts) = value.get("Fn::GetAtt") {
        return format!(
            "{}.{}",
            parts[0].as_str().unwrap(),
            parts[1].as_str().unwrap()
        );
    }
    if let Some(sub) = value.get("Fn::Sub") {
        return sub.as_str().unwrap().to_owned();
    }
    panic!("unexpected reference {value}")
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().map(reference).collect(),
        other => vec![reference(other)],
    }
}

fn package_name(manifest: &str) -> Option<String> {
    let package = manifest.split("[package]").nth(1)?;
    package.lines().find_map(|line| {
        let value = line.trim().strip_prefix("name")?.trim().strip_prefix('=')?;
        Some(value.trim().trim_matches('"').to_owned())
    })
}

#[test]
fn every_function_folder_has_a_template_function_and_back() {
    let root = workspace_root();
    let mut folders = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("functions")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            folders.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    assert!(!folders.is_empty(), "functions/ has no folders");

    let mut pointed_at = BTreeSet::new();
    for (id, function) in functions() {
        let uri = function["Properties"]["CodeUri"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: CodeUri must be a plain path"));
        let folder = uri
            .strip_prefix("functions/")
            .unwrap_or_else(|| panic!("{id}: CodeUri {uri} is not under functions/"));
        let manifest = std::fs::read_to_string(root.join(uri).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{id}: CodeUri {uri} has no Cargo.toml: {e}"));
        assert_eq!(
            package_name(&manifest).as_deref(),
            Some(folder),
            "{id}: the crate in {uri} must be named after its folder (its binary is the bootstrap)"
        );
        assert_eq!(
            function["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{id}: BuildMethod"
        );
        assert!(
            pointed_at.insert(folder.to_owned()),
            "two template functions build {uri}"
        );
    }
    assert_eq!(
        folders, pointed_at,
        "folders in functions/ (left) and template functions' CodeUri (right) differ"
    );

    let members = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for folder in &folders {
        assert!(
            members.contains(&format!("\"functions/{folder}\"")),
            "functions/{folder} is not a workspace member"
        );
    }

    let globals = &template()["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(globals["Architectures"], json!([{ "Ref": "Architecture" }]));
    assert_eq!(template()["Parameters"]["Architecture"]["Default"], "arm64");
}

#[test]
fn functions_get_the_environment_logging_and_events_their_code_reads() {
    let globals = &template()["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(globals["TABLE_NAME"], json!({ "Ref": "Table" }));
    assert_eq!(globals["RETENTION_DAYS"], json!({ "Ref": "RetentionDays" }));
    assert_eq!(
        globals["MAX_RUN_LIFETIME_DAYS"],
        json!({ "Ref": "MaxRunLifetimeDays" })
    );
    assert_eq!(globals["PAYLOAD_BUCKET"], json!({ "Ref": "ArchiveBucket" }));
    assert_eq!(globals["PAYLOAD_PREFIX"], json!("payloads/"));

    let expected: [(&str, &[(&str, &str)]); 4] = [
        ("start-run", &[("STEP_QUEUE_URL", "StepQueue")]),
        ("execute-step", &[("STEP_QUEUE_URL", "StepQueue")]),
        (
            "runs-api",
            &[
                ("STEP_QUEUE_URL", "StepQueue"),
                ("CURSOR_KEY", "AWS::StackId"),
            ],
        ),
        (
            "stream-archiver",
            &[
                ("ARCHIVE_BUCKET", "ArchiveBucket"),
                ("ARCHIVE_PREFIX", "ArchivePrefix"),
            ],
        ),
    ];
    for (folder, variables) in expected {
        let properties = &function_for(folder)["Properties"];
        let env = properties["Environment"]["Variables"].as_object().unwrap();
        let got: BTreeMap<&str, String> = env
            .iter()
            .filter(|(k, _)| k.as_str() != "TABLE_HAS_REPLICAS") // a condition; see below
            .map(|(k, v)| (k.as_str(), reference(v)))
            .collect();
        let want: BTreeMap<&str, String> = variables
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        assert_eq!(got, want, "{folder}: environment");

        let logging = &properties["LoggingConfig"];
        assert_eq!(logging["LogFormat"], "JSON", "{folder}");
        let group = reference(&logging["LogGroup"]);
        assert_eq!(
            resources()[&group]["Type"],
            "AWS::Logs::LogGroup",
            "{folder}"
        );
        assert_eq!(
            resources()[&group]["Properties"]["RetentionInDays"],
            json!({ "Ref": "LogRetentionDays" }),
            "{folder}: log retention"
        );
    }
}

#[test]
fn event_sources_are_the_ones_the_handlers_expect() {
    // execute-step: the step queue with partial batch failures, and the sweep schedule.
    let execute = &function_for("execute-step")["Properties"];
    let sqs = &execute["Events"]["StepTasks"];
    assert_eq!(sqs["Type"], "SQS");
    assert_eq!(reference(&sqs["Properties"]["Queue"]), "StepQueue.Arn");
    assert_eq!(
        sqs["Properties"]["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    let sweep = &execute["Events"]["Sweep"];
    assert_eq!(sweep["Type"], "Schedule");
    assert_eq!(sweep["Properties"]["Schedule"], "rate(1 minute)");
    let timeout = execute["Timeout"].as_u64().unwrap();
    let visibility = resources()["StepQueue"]["Properties"]["VisibilityTimeout"]
        .as_u64()
        .unwrap();
    assert!(
        visibility >= 6 * timeout,
        "step queue visibility {visibility}s < 6 x execute-step timeout {timeout}s"
    );
    assert!(
        resources()["StepQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"].is_object()
    );

    // start-run: the EventBridge rule (source wf.runs, the detail-type start-run reads).
    let start = &function_for("start-run")["Properties"];
    let rule = &start["Events"]["StartEvent"];
    assert_eq!(rule["Type"], "EventBridgeRule");
    assert_eq!(
        rule["Properties"]["Pattern"],
        json!({ "source": ["wf.runs"], "detail-type": ["Start Workflow Run"] })
    );
    assert!(rule["Properties"]["DeadLetterConfig"]["Arn"].is_object());
    assert!(rule["Properties"]["RetryPolicy"].is_object());
    assert_eq!(
        start["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"],
        "SQS"
    );

    // stream-archiver: TTL removals of run items only.
    let archiver = &function_for("stream-archiver")["Properties"]["Events"]["TtlRemovals"];
    assert_eq!(archiver["Type"], "DynamoDB");
    let p = &archiver["Properties"];
    assert_eq!(reference(&p["Stream"]), "Table.StreamArn");
    assert_eq!(
        p["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(p["BisectBatchOnFunctionError"], true);
    assert!(p["MaximumRetryAttempts"].as_u64().is_some());
    assert_eq!(
        reference(&p["DestinationConfig"]["OnFailure"]["Destination"]),
        "ArchiveFailureQueue.Arn"
    );
    // The TTL-identity filter always; with replicas, the replicated-delete filter too.
    let filters = p["FilterCriteria"]["Filters"].as_array().unwrap();
    assert_eq!(filters.len(), 2);
    let pattern: Value = serde_json::from_str(filters[0]["Pattern"].as_str().unwrap()).unwrap();
    let crate_pattern: Value = serde_json::from_str(wf_archive::FILTER_PATTERN).unwrap();
    assert_eq!(pattern, crate_pattern);
    assert_eq!(
        pattern,
        json!({
            "eventName": ["REMOVE"],
            "userIdentity": { "type": ["Service"], "principalId": ["dynamodb.amazonaws.com"] },
            "dynamodb": { "Keys": { "SK": { "S": [{ "prefix": "RUN#" }] } } }
        })
    );
    let replicated = &filters[1]["Fn::If"];
    assert_eq!(replicated[0], "HasReplica1");
    assert_eq!(replicated[2], json!({ "Ref": "AWS::NoValue" }));
    let pattern: Value = serde_json::from_str(replicated[1]["Pattern"].as_str().unwrap()).unwrap();
    let crate_pattern: Value = serde_json::from_str(wf_archive::REPLICATED_FILTER_PATTERN).unwrap();
    assert_eq!(pattern, crate_pattern);
    assert_eq!(
        function_for("stream-archiver")["Properties"]["Environment"]["Variables"]["TABLE_HAS_REPLICAS"],
        json!({ "Fn::If": ["HasReplica1", "true", "false"] })
    );
}
