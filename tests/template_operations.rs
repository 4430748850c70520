//! The operations options of `template.yaml` (issue 13): capacity mode with auto scaling,
//! replicas, the customer-managed key, queue encryption, S3 access logs, backups, cost tags,
//! failure targets, the checkov skips and the dashboard. Each option's combinations are
//! linted and scanned by `scripts/check-deploy.sh`; these tests pin what they contain.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{function_for, resources, template};
use wf_integration_tests::workspace_root;

/// Resource types that take no tags (no `Tags` property in `CloudFormation`).
const UNTAGGABLE: [&str; 13] = [
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueueInlinePolicy",
    "AWS::SNS::Subscription",
    "AWS::Lambda::Permission",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::CloudWatch::Dashboard",
    "AWS::Backup::BackupSelection",
    "AWS::KMS::Alias",
    "AWS::IAM::Policy",
    // Its tags are per replica (Replicas[].Tags), checked below.
    "AWS::DynamoDB::GlobalTable",
    // SAM tags the functions from Globals.Function.Tags.
    "AWS::Serverless::Function",
];

/// The tags of a resource as (key, value) pairs, from a list or a map.
fn tags(value: &Value) -> BTreeMap<String, Value> {
    match value {
        Value::Array(list) => list
            .iter()
            .map(|t| (t["Key"].as_str().unwrap().to_owned(), t["Value"].clone()))
            .collect(),
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        other => panic!("tags are neither a list nor a map: {other}"),
    }
}

fn cost_tags() -> BTreeMap<String, Value> {
    [
        ("Project".to_owned(), json!("wf-runner")),
        ("Stage".to_owned(), json!({ "Ref": "Stage" })),
        ("CostCentre".to_owned(), json!({ "Ref": "CostCentre" })),
    ]
    .into_iter()
    .collect()
}

#[test]
fn every_resource_is_tagged_with_project_stage_and_cost_centre() {
    let want = cost_tags();
    for (id, resource) in resources() {
        let kind = resource["Type"].as_str().unwrap();
        if UNTAGGABLE.contains(&kind) {
            continue;
        }
        let properties = &resource["Properties"];
        let value = match kind {
            "AWS::Backup::BackupVault" => &properties["BackupVaultTags"],
            "AWS::Backup::BackupPlan" => &properties["BackupPlanTags"],
            _ => &properties["Tags"],
        };
        assert!(!value.is_null(), "{id} ({kind}) has no tags");
        assert_eq!(tags(value), want, "{id} ({kind})");
    }
    assert_eq!(
        tags(&template()["Globals"]["Function"]["Tags"]),
        want,
        "functions"
    );
    for replica in resources()["Table"]["Properties"]["Replicas"]
        .as_array()
        .unwrap()
    {
        let spec = replica
            .get("Fn::If")
            .map_or(replica, |branches| &branches[1]);
        assert_eq!(tags(&spec["Tags"]), want, "table replica {spec}");
    }
    assert_eq!(
        template()["Parameters"]["CostCentre"]["Default"],
        "unassigned"
    );
}

/// `!If [UseCmk, <the key>, <else>]`, with the key created or given.
fn key_or(otherwise: &Value) -> Value {
    json!({ "Fn::If": ["UseCmk", {
        "Fn::If": ["CreateKey", { "Fn::GetAtt": ["EncryptionKey", "Arn"] }, { "Ref": "KmsKey" }]
    }, otherwise] })
}

#[test]
fn every_queue_is_encrypted_with_the_key_or_sqs_managed_keys() {
    let no_value = json!({ "Ref": "AWS::NoValue" });
    let mut queues = 0;
    for (id, resource) in resources() {
        if resource["Type"] == "AWS::SQS::Queue" {
            let p = &resource["Properties"];
            assert_eq!(p["KmsMasterKeyId"], key_or(&no_value), "{id}");
            assert_eq!(
                p["SqsManagedSseEnabled"],
                json!({ "Fn::If": ["UseCmk", { "Ref": "AWS::NoValue" }, true] }),
                "{id}"
            );
            queues += 1;
        }
    }
    assert_eq!(queues, 6);
}

#[test]
fn the_key_encrypts_logs_bucket_topic_backups_and_the_functions_environment() {
    let no_value = json!({ "Ref": "AWS::NoValue" });
    for (id, resource) in resources() {
        if resource["Type"] == "AWS::Logs::LogGroup" {
            assert_eq!(
                resource["Properties"]["KmsKeyId"],
                key_or(&no_value),
                "{id}"
            );
        }
    }
    assert_eq!(
        template()["Globals"]["Function"]["KmsKeyArn"],
        key_or(&no_value)
    );
    let bucket = &resources()["ArchiveBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        [0];
    assert_eq!(
        bucket["ServerSideEncryptionByDefault"]["SSEAlgorithm"],
        "aws:kms"
    );
    assert_eq!(
        bucket["ServerSideEncryptionByDefault"]["KMSMasterKeyID"],
        key_or(&no_value)
    );
    assert_eq!(
        resources()["AlarmTopic"]["Properties"]["KmsMasterKeyId"],
        key_or(&no_value)
    );
    assert_eq!(
        resources()["BackupVault"]["Properties"]["EncryptionKeyArn"],
        key_or(&no_value)
    );
    let local = &resources()["Table"]["Properties"]["Replicas"][0];
    assert_eq!(
        local["SSESpecification"]["KMSMasterKeyId"],
        key_or(&json!("alias/aws/dynamodb"))
    );
    let key = &resources()["EncryptionKey"];
    assert_eq!(key["Condition"], "CreateKey");
    assert_eq!(key["Properties"]["EnableKeyRotation"], true);
    // Every function role may use the key, and only when there is one.
    let policy = &resources()["FunctionsKeyPolicy"];
    assert_eq!(policy["Condition"], "UseCmk");
    let roles: BTreeSet<String> = policy["Properties"]["Roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Ref"].as_str().unwrap().to_owned())
        .collect();
    let function_roles: BTreeSet<String> =
        ["start-run", "execute-step", "runs-api", "stream-archiver"]
            .iter()
            .map(|f| {
                function_for(f)["Properties"]["Role"]["Fn::GetAtt"][0]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
    assert_eq!(roles, function_roles);
}

/// The auto scaling settings with `seed` as the starting capacity.
fn auto_scaling(seed: &str) -> Value {
    json!({
        "SeedCapacity": { "Ref": seed },
        "MinCapacity": { "Ref": "AutoScalingMinCapacity" },
        "MaxCapacity": { "Ref": "AutoScalingMaxCapacity" },
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": { "Ref": "AutoScalingTargetUtilization" }
        }
    })
}

fn when_provisioned(value: &Value) -> Value {
    json!({ "Fn::If": ["Provisioned", value, { "Ref": "AWS::NoValue" }] })
}

#[test]
fn provisioned_capacity_scales_the_table_and_both_indexes_in_every_replica() {
    let p = &resources()["Table"]["Properties"];
    assert_eq!(
        p["WriteProvisionedThroughputSettings"],
        when_provisioned(
            &json!({ "WriteCapacityAutoScalingSettings": auto_scaling("TableWriteCapacity") })
        )
    );
    for (i, index) in ["Gsi1", "Gsi2"].iter().enumerate() {
        assert_eq!(
            p["GlobalSecondaryIndexes"][i]["WriteProvisionedThroughputSettings"],
            when_provisioned(&json!({
                "WriteCapacityAutoScalingSettings": auto_scaling(&format!("{index}WriteCapacity"))
            }))
        );
    }
    let replicas = p["Replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 3, "this region and up to two replicas");
    for (i, replica) in replicas.iter().enumerate() {
        let spec = if i == 0 {
            replica
        } else {
            let branches = &replica["Fn::If"];
            assert_eq!(branches[0], format!("HasReplica{i}"));
            assert_eq!(branches[2], json!({ "Ref": "AWS::NoValue" }));
            &branches[1]
        };
        assert_eq!(
            spec["ReadProvisionedThroughputSettings"],
            when_provisioned(
                &json!({ "ReadCapacityAutoScalingSettings": auto_scaling("TableReadCapacity") })
            ),
            "replica {i}"
        );
        assert_eq!(
            spec["GlobalSecondaryIndexes"],
            when_provisioned(&json!([
                { "IndexName": "GSI1", "ReadProvisionedThroughputSettings": {
                    "ReadCapacityAutoScalingSettings": auto_scaling("Gsi1ReadCapacity") } },
                { "IndexName": "GSI2", "ReadProvisionedThroughputSettings": {
                    "ReadCapacityAutoScalingSettings": auto_scaling("Gsi2ReadCapacity") } }
            ])),
            "replica {i}"
        );
        assert_eq!(
            spec["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true,
            "replica {i}"
        );
        assert_eq!(
            spec["DeletionProtectionEnabled"],
            json!({ "Ref": "DeletionProtection" }),
            "replica {i}"
        );
        assert!(
            spec["SSESpecification"]["KMSMasterKeyId"].is_object(),
            "replica {i}"
        );
    }
    // The stream, TTL and encryption are table-wide: every replica has them.
    assert_eq!(
        p["StreamSpecification"]["StreamViewType"],
        "NEW_AND_OLD_IMAGES"
    );
    assert_eq!(p["TimeToLiveSpecification"]["Enabled"], true);
}

#[test]
fn backups_run_daily_and_monthly_with_their_retention_and_are_on_in_prod() {
    for id in ["BackupVault", "BackupPlan", "BackupRole", "BackupSelection"] {
        assert_eq!(resources()[id]["Condition"], "HasBackups", "{id}");
    }
    let rules = resources()["BackupPlan"]["Properties"]["BackupPlan"]["BackupPlanRule"]
        .as_array()
        .unwrap();
    let summary: Vec<(String, String, Value)> = rules
        .iter()
        .map(|r| {
            (
                r["RuleName"].as_str().unwrap().to_owned(),
                r["ScheduleExpression"].as_str().unwrap().to_owned(),
                r["Lifecycle"]["DeleteAfterDays"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "daily".to_owned(),
                "cron(0 3 * * ? *)".to_owned(),
                json!({ "Ref": "DailyBackupRetentionDays" })
            ),
            (
                "monthly".to_owned(),
                "cron(0 4 1 * ? *)".to_owned(),
                json!({ "Ref": "MonthlyBackupRetentionDays" })
            ),
        ]
    );
    assert_eq!(
        resources()["BackupSelection"]["Properties"]["BackupSelection"]["Resources"],
        json!([{ "Fn::GetAtt": ["Table", "Arn"] }])
    );
    assert_eq!(template()["Parameters"]["Backups"]["Default"], "false");
    let samconfig = std::fs::read_to_string(workspace_root().join("samconfig.toml")).unwrap();
    let prod = samconfig
        .split("[prod.deploy.parameters]")
        .nth(1)
        .expect("samconfig.toml has a prod deploy section");
    let overrides = prod
        .lines()
        .find(|l| l.starts_with("parameter_overrides"))
        .unwrap();
    assert!(overrides.contains("Backups=true"), "{overrides}");
}

#[test]
fn every_asynchronously_invoked_function_has_a_failure_target() {
    // start-run (EventBridge, async invoke) and execute-step (the sweep schedule).
    for (folder, queue) in [
        ("start-run", "StartRunFailureQueue"),
        ("execute-step", "SweepFailureQueue"),
    ] {
        let config = &function_for(folder)["Properties"]["EventInvokeConfig"];
        assert_eq!(
            config["DestinationConfig"]["OnFailure"]["Type"], "SQS",
            "{folder}"
        );
        assert_eq!(
            config["DestinationConfig"]["OnFailure"]["Destination"],
            json!({ "Fn::GetAtt": [queue, "Arn"] }),
            "{folder}"
        );
    }
    for folder in ["start-run", "runs-api"] {
        assert_eq!(
            function_for(folder)["Properties"]["ReservedConcurrentExecutions"],
            json!({ "Ref": "ApiConcurrency" }),
            "{folder}: reserved concurrency bounds what HTTP bursts do to the table"
        );
    }
}

#[test]
fn every_checkov_skip_says_why() {
    let mut skips = 0;
    for (id, resource) in resources() {
        let Some(list) = resource["Metadata"]["checkov"]["skip"].as_array() else {
            continue;
        };
        for skip in list {
            let check = skip["id"].as_str().unwrap();
            assert!(check.starts_with("CKV_AWS_"), "{id}: {check}");
            let reason = skip["comment"].as_str().unwrap_or_default();
            assert!(
                reason.len() > 40,
                "{id}: {check} is skipped without a reason"
            );
            skips += 1;
        }
    }
    assert_eq!(
        skips, 13,
        "the README lists each skip; update it with this count"
    );
}

#[test]
fn the_dashboard_shows_runs_steps_archive_queues_stream_table_and_functions() {
    let body = resources()["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
        .as_str()
        .unwrap();
    // The EMF metrics of the functions (shared/lambda's EmfMetrics) and of stream-archiver.
    for metric in [
        "RunsStarted",
        "RunsCompleted",
        "RunsFailed",
        "StepDuration",
        "StepRetries",
        "StepFailures",
        "RunsArchived",
        "ArchivedBytes",
        "CleanupFailures",
        "IteratorAge",
        "ConsumedReadCapacityUnits",
        "ConsumedWriteCapacityUnits",
        "ReadThrottleEvents",
        "WriteThrottleEvents",
    ] {
        assert!(
            body.contains(&format!("\"{metric}\"")),
            "dashboard lacks {metric}"
        );
    }
    assert!(body.contains("\"p50\"") && body.contains("\"p99\""));
    for queue in [
        "StepQueue",
        "StepDeadLetterQueue",
        "StartEventDeadLetterQueue",
        "StartRunFailureQueue",
        "SweepFailureQueue",
        "ArchiveFailureQueue",
    ] {
        assert!(
            body.contains(&format!("${{{queue}.QueueName}}")),
            "dashboard lacks {queue}"
        );
    }
    for function in [
        "StartRunFunction",
        "ExecuteStepFunction",
        "RunsApiFunction",
        "StreamArchiverFunction",
    ] {
        for metric in ["Errors", "Throttles", "Duration"] {
            assert!(
                body.contains(&format!(
                    "[\"AWS/Lambda\", \"{metric}\", \"FunctionName\", \"${{{function}}}\""
                )),
                "dashboard lacks {function} {metric}"
            );
        }
    }
    // The body is JSON once the ${...} references are filled in.
    serde_json::from_str::<Value>(&fill_references(body)).expect("the dashboard body is JSON");
}

/// Replaces every `${Name}` or `${Name.Attr}` of a `!Sub` string by a plain word.
fn fill_references(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').expect("an unterminated ${");
        out.push_str("ref");
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}
