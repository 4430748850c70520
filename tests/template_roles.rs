//! Each role of `template.yaml` grants exactly the actions its function's code calls, on
//! named resources, and nothing is granted through the template's globals.

use std::collections::BTreeSet;

use super::{function_for, reference, resources, strings, template};

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
