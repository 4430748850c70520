//! `template.yaml` against the code and the seed:
//! - every folder in `functions/` has a template function whose `CodeUri` points at it,
//!   and every template function points at an existing crate of that name;
//! - each function gets the environment, logging and event sources its code reads;
//! - each role grants exactly the actions its function's code calls, on named resources;
//! - the template's table is the table `scripts/create-dynamodb-table.sh` creates (run on
//!   DynamoDB Local): keys, attributes, billing, GSIs, TTL, stream, PITR, deletion protection;
//! - the operations options (`template_operations.rs` beside this file): capacity mode and auto
//!   scaling, replicas, the KMS key, queue encryption, backups, tags, the dashboard.
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
use wf_integration_tests::{dynamodb_client, require_dynamodb, unique_table_name, workspace_root};

#[path = "template_operations.rs"]
mod operations;

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

/// (action, resource) pairs a role's inline policies allow.
fn grants(role: &str) -> BTreeSet<(String, String)> {
    let role = &resources()[role];
    assert_eq!(role["Type"], "AWS::IAM::Role");
    let assume = &role["Properties"]["AssumeRolePolicyDocument"]["Statement"];
    assert_eq!(assume[0]["Principal"]["Service"], "lambda.amazonaws.com");
    assert!(
        role["Properties"].get("ManagedPolicyArns").is_none(),
        "managed policies grant on every resource"
    );
    let mut grants = BTreeSet::new();
    for policy in role["Properties"]["Policies"].as_array().unwrap() {
        for statement in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
            assert_eq!(statement["Effect"], "Allow");
            for action in strings(&statement["Action"]) {
                for resource in strings(&statement["Resource"]) {
                    grants.insert((action.clone(), resource));
                }
            }
        }
    }
    grants
}

fn expect_grants(pairs: &[(&[&str], &[&str])]) -> BTreeSet<(String, String)> {
    let mut set = BTreeSet::new();
    for (actions, resources) in pairs {
        for action in *actions {
            for resource in *resources {
                set.insert(((*action).to_owned(), (*resource).to_owned()));
            }
        }
    }
    set
}

#[test]
fn each_role_grants_exactly_what_its_function_calls() {
    let logs = ["logs:CreateLogStream", "logs:PutLogEvents"];
    let expected: [(&str, BTreeSet<(String, String)>); 4] = [
        (
            "start-run",
            expect_grants(&[
                (&logs, &["StartRunLogGroup.Arn"]),
                (&["dynamodb:GetItem", "dynamodb:PutItem"], &["Table.Arn"]),
                (
                    &["sqs:SendMessage"],
                    &["StepQueue.Arn", "StartRunFailureQueue.Arn"],
                ),
                (
                    &["s3:PutObject", "s3:GetObject"],
                    &["${ArchiveBucket.Arn}/payloads/*"],
                ),
            ]),
        ),
        (
            "execute-step",
            expect_grants(&[
                (&logs, &["ExecuteStepLogGroup.Arn"]),
                (
                    &[
                        "dynamodb:GetItem",
                        "dynamodb:PutItem",
                        "dynamodb:UpdateItem",
                        "dynamodb:DeleteItem",
                        "dynamodb:ConditionCheckItem",
                        "dynamodb:BatchGetItem",
                        "dynamodb:Query",
                    ],
                    &["Table.Arn"],
                ),
                (&["dynamodb:Query"], &["${Table.Arn}/index/GSI2"]),
                (
                    &[
                        "sqs:SendMessage",
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                        "sqs:GetQueueAttributes",
                    ],
                    &["StepQueue.Arn"],
                ),
                (&["sqs:SendMessage"], &["SweepFailureQueue.Arn"]),
                (
                    &["s3:PutObject", "s3:GetObject"],
                    &["${ArchiveBucket.Arn}/payloads/*"],
                ),
            ]),
        ),
        (
            "runs-api",
            expect_grants(&[
                (&logs, &["RunsApiLogGroup.Arn"]),
                (
                    &[
                        "dynamodb:GetItem",
                        "dynamodb:PutItem",
                        "dynamodb:UpdateItem",
                        "dynamodb:ConditionCheckItem",
                        "dynamodb:BatchGetItem",
                        "dynamodb:Query",
                    ],
                    &["Table.Arn"],
                ),
                (
                    &["dynamodb:Query"],
                    &["${Table.Arn}/index/GSI1", "${Table.Arn}/index/GSI2"],
                ),
                (&["sqs:SendMessage"], &["StepQueue.Arn"]),
                (
                    &["s3:PutObject", "s3:GetObject"],
                    &["${ArchiveBucket.Arn}/payloads/*"],
                ),
            ]),
        ),
        (
            "stream-archiver",
            expect_grants(&[
                (&logs, &["StreamArchiverLogGroup.Arn"]),
                (
                    &[
                        "dynamodb:GetItem",
                        "dynamodb:Query",
                        "dynamodb:BatchWriteItem",
                    ],
                    &["Table.Arn"],
                ),
                (
                    &[
                        "dynamodb:DescribeStream",
                        "dynamodb:GetRecords",
                        "dynamodb:GetShardIterator",
                    ],
                    &["Table.StreamArn"],
                ),
                (&["dynamodb:ListStreams"], &["${Table.Arn}/stream/*"]),
                (
                    &["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"],
                    &["${ArchiveBucket.Arn}/${ArchivePrefix}*"],
                ),
                (&["s3:ListBucket"], &["ArchiveBucket.Arn"]),
                (
                    &["s3:GetObject", "s3:DeleteObject"],
                    &["${ArchiveBucket.Arn}/payloads/*"],
                ),
                (&["sqs:SendMessage"], &["ArchiveFailureQueue.Arn"]),
            ]),
        ),
    ];
    let mut roles = BTreeSet::new();
    for (folder, want) in expected {
        let role = reference(&function_for(folder)["Properties"]["Role"]);
        let role = role.strip_suffix(".Arn").unwrap().to_owned();
        let got = grants(&role);
        for (action, resource) in &got {
            assert!(resource != "*", "{folder}: {action} on *");
            assert!(action != "dynamodb:Scan", "{folder}: listings never scan");
        }
        assert_eq!(got, want, "{folder}: role {role}");
        assert!(roles.insert(role), "{folder} shares its role");
    }
    assert!(
        template()["Globals"]["Function"].get("Role").is_none()
            && template()["Globals"]["Function"].get("Policies").is_none()
    );
}

/// What the two tables are made of, in one comparable shape.
#[derive(Debug, PartialEq, Eq)]
struct TableSpec {
    key_schema: Vec<(String, String)>,
    attributes: BTreeMap<String, String>,
    billing_mode: String,
    indexes: BTreeMap<String, (Vec<(String, String)>, String)>,
    ttl_attribute: String,
    stream_view_type: String,
    point_in_time_recovery: bool,
    deletion_protection: bool,
}

fn keys_of(value: &Value) -> Vec<(String, String)> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap().to_owned(),
                k["KeyType"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The table as the template deploys it with its defaults (on demand, one region).
fn template_table() -> TableSpec {
    let table = &resources()["Table"];
    assert_eq!(table["Type"], "AWS::DynamoDB::GlobalTable");
    assert_eq!(table["DeletionPolicy"], "Retain");
    assert_eq!(table["UpdateReplacePolicy"], "Retain");
    let p = &table["Properties"];
    assert_eq!(p["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(p["SSESpecification"]["SSEEnabled"], true);
    // This region's replica; deletion protection is the DeletionProtection parameter, and
    // the script's default is on, as is the parameter's.
    let local = &p["Replicas"][0];
    assert_eq!(local["Region"], json!({ "Ref": "AWS::Region" }));
    assert_eq!(
        local["DeletionProtectionEnabled"],
        json!({ "Ref": "DeletionProtection" })
    );
    assert_eq!(
        p["BillingMode"],
        json!({ "Fn::If": ["Provisioned", "PROVISIONED", "PAY_PER_REQUEST"] })
    );
    assert_eq!(
        template()["Parameters"]["CapacityMode"]["Default"],
        "ON_DEMAND"
    );
    let protection = &template()["Parameters"]["DeletionProtection"]["Default"];
    TableSpec {
        key_schema: keys_of(&p["KeySchema"]),
        attributes: p["AttributeDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["AttributeName"].as_str().unwrap().to_owned(),
                    a["AttributeType"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
        billing_mode: "PAY_PER_REQUEST".to_owned(),
        indexes: p["GlobalSecondaryIndexes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["IndexName"].as_str().unwrap().to_owned(),
                    (
                        keys_of(&i["KeySchema"]),
                        i["Projection"]["ProjectionType"]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                    ),
                )
            })
            .collect(),
        ttl_attribute: p["TimeToLiveSpecification"]["AttributeName"]
            .as_str()
            .unwrap()
            .to_owned(),
        stream_view_type: p["StreamSpecification"]["StreamViewType"]
            .as_str()
            .unwrap()
            .to_owned(),
        point_in_time_recovery:
            local["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
                .as_bool()
                .unwrap(),
        deletion_protection: protection.as_str().unwrap().parse().unwrap(),
    }
}

#[tokio::test]
async fn the_template_table_is_the_table_the_script_creates() {
    let local = require_dynamodb();
    let table = unique_table_name("template");
    let output = Command::new("bash")
        .arg(workspace_root().join("scripts/create-dynamodb-table.sh"))
        .env("AWS_ENDPOINT_URL", local.endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DYNAMODB_TABLE_NAME", &table)
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .env_remove("DELETION_PROTECTION")
        .output()
        .expect("run create-dynamodb-table.sh");
    assert!(
        output.status.success(),
        "create-dynamodb-table.sh failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let script = script_table(local.endpoint(), &table, &output).await;
    assert_eq!(
        script,
        template_table(),
        "create-dynamodb-table.sh (left) and template.yaml (right) make different tables"
    );
}

/// The table the script made, as DynamoDB Local describes it; `output` is the script's.
async fn script_table(endpoint: &str, table: &str, output: &std::process::Output) -> TableSpec {
    let client = dynamodb_client(endpoint).await;
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(
        ttl.time_to_live_status()
            .map(aws_sdk_dynamodb::types::TimeToLiveStatus::as_str),
        Some("ENABLED")
    );
    // DynamoDB Local has no continuous-backups API (UnknownOperationException), so the
    // script's PITR request is read from the script itself: it must ask for PITR, and it
    // must have tried (on AWS a refusal fails the script; only an emulator is excused).
    let script_text =
        std::fs::read_to_string(workspace_root().join("scripts/create-dynamodb-table.sh")).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pitr = script_text.contains(
        "update-continuous-backups --table-name \"$table\" \\\n  --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true",
    ) && stdout.contains("point-in-time recovery");
    let pairs = |keys: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<(String, String)> {
        keys.iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect()
    };
    TableSpec {
        key_schema: pairs(described.key_schema()),
        attributes: described
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect(),
        billing_mode: described
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|b| b.as_str().to_owned())
            .unwrap_or_default(),
        indexes: described
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                (
                    i.index_name().unwrap().to_owned(),
                    (
                        pairs(i.key_schema()),
                        i.projection()
                            .and_then(|p| p.projection_type())
                            .map(|p| p.as_str().to_owned())
                            .unwrap_or_default(),
                    ),
                )
            })
            .collect(),
        ttl_attribute: ttl.attribute_name().unwrap().to_owned(),
        stream_view_type: described
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        point_in_time_recovery: pitr,
        deletion_protection: described.deletion_protection_enabled().unwrap_or(false),
    }
}
