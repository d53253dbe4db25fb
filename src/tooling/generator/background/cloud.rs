//! Benign CloudTrail: applications, developers, administrators, CI roles and Terraform runs.

use xxhash_rust::xxh3::xxh3_64;

use super::ip;
use crate::time::EventTime;
use crate::tooling::generator::json::Obj;
use crate::tooling::generator::sources::{Call, Factory, Generated, no_params};

const CLI: &str = "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0 exe/x86_64.ubuntu.22";
const BOTO: &str = "Boto3/1.34.51 Python/3.11.8 Linux/6.5.0 Botocore/1.34.51";
const JAVA: &str = "aws-sdk-java/1.12.488 Linux/5.10.184 OpenJDK_64-Bit_Server_VM/17.0.7";
const CONSOLE: &str = "console.amazonaws.com";
const TERRAFORM: &str = "APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.40.0";

pub(super) fn cloudtrail(f: &mut Factory, rank: u64, role: u64, t: EventTime) -> Generated {
    let acct = crate::tooling::generator::sources::ACCOUNT;
    // (source, name, user agent, parameters)
    type Api = (&'static str, &'static str);
    let (arn, agent, internal, apis): (String, &str, bool, &[Api]) = match role {
        0..=54 => (
            format!(
                "arn:aws:sts::{acct}:assumed-role/app-{}/i-0{:016x}",
                rank % 40,
                xxh3_64(&rank.to_le_bytes()) >> 4
            ),
            if rank.is_multiple_of(3) { JAVA } else { BOTO },
            true,
            &[
                ("s3.amazonaws.com", "GetObject"),
                ("s3.amazonaws.com", "GetObject"),
                ("s3.amazonaws.com", "PutObject"),
                ("kms.amazonaws.com", "Decrypt"),
                ("kms.amazonaws.com", "GenerateDataKey"),
                ("dynamodb.amazonaws.com", "Query"),
                ("dynamodb.amazonaws.com", "GetItem"),
                ("dynamodb.amazonaws.com", "PutItem"),
                ("sqs.amazonaws.com", "ReceiveMessage"),
                ("sqs.amazonaws.com", "SendMessage"),
                ("sqs.amazonaws.com", "DeleteMessage"),
                ("sts.amazonaws.com", "AssumeRole"),
            ],
        ),
        55..=69 => (
            format!("arn:aws:iam::{acct}:user/dev-{rank}"),
            if rank.is_multiple_of(2) { CLI } else { CONSOLE },
            false,
            &[
                ("ec2.amazonaws.com", "DescribeInstances"),
                ("sts.amazonaws.com", "GetCallerIdentity"),
                ("logs.amazonaws.com", "DescribeLogGroups"),
                ("logs.amazonaws.com", "GetLogEvents"),
                ("lambda.amazonaws.com", "ListFunctions"),
                ("lambda.amazonaws.com", "GetFunction"),
                ("cloudformation.amazonaws.com", "DescribeStacks"),
                ("s3.amazonaws.com", "GetObject"),
                ("kms.amazonaws.com", "Decrypt"),
                ("ec2.amazonaws.com", "DescribeSecurityGroups"),
            ],
        ),
        70..=79 => (
            format!("arn:aws:iam::{acct}:user/admin-{rank}"),
            CONSOLE,
            false,
            &[
                ("iam.amazonaws.com", "ListUsers"),
                ("iam.amazonaws.com", "ListRoles"),
                ("iam.amazonaws.com", "GetUser"),
                ("iam.amazonaws.com", "ListAttachedUserPolicies"),
                ("ec2.amazonaws.com", "DescribeInstances"),
                ("iam.amazonaws.com", "GetAccountSummary"),
                ("iam.amazonaws.com", "CreateAccessKey"),
                ("iam.amazonaws.com", "UpdateLoginProfile"),
                ("s3.amazonaws.com", "PutBucketAcl"),
                ("health.amazonaws.com", "DescribeEventAggregates"),
            ],
        ),
        80..=89 => (
            format!("arn:aws:sts::{acct}:assumed-role/ci-deployer/gh-run-{rank}"),
            BOTO,
            false,
            &[
                ("secretsmanager.amazonaws.com", "GetSecretValue"),
                ("ec2.amazonaws.com", "DescribeInstances"),
                ("ecr.amazonaws.com", "GetAuthorizationToken"),
                ("s3.amazonaws.com", "PutObject"),
                ("cloudformation.amazonaws.com", "DescribeStacks"),
                ("cloudformation.amazonaws.com", "UpdateStack"),
            ],
        ),
        _ => (
            format!("arn:aws:sts::{acct}:assumed-role/terraform/tf-{rank}"),
            TERRAFORM,
            false,
            &[
                ("secretsmanager.amazonaws.com", "GetSecretValue"),
                ("secretsmanager.amazonaws.com", "DescribeSecret"),
                ("secretsmanager.amazonaws.com", "GetResourcePolicy"),
                ("ssm.amazonaws.com", "GetParameter"),
                ("ssm.amazonaws.com", "DescribeParameters"),
                ("ssm.amazonaws.com", "ListTagsForResource"),
                ("ec2.amazonaws.com", "DescribeVpcs"),
                ("ec2.amazonaws.com", "DescribeRouteTables"),
                ("ec2.amazonaws.com", "DescribeSubnets"),
                ("iam.amazonaws.com", "GetRole"),
                ("kms.amazonaws.com", "Decrypt"),
            ],
        ),
    };
    let (source, name) = *f.rng.pick(apis);
    let ip = ip(f, internal);
    let n = f.rng.below(50);
    let params = move |p: &mut Obj<'_>| match name {
        "GetObject" | "PutObject" => {
            p.str("bucketName", "app-data")
                .str("key", &format!("orders/2026/11/{n:02}.json"));
        }
        "GetSecretValue" | "DescribeSecret" | "GetResourcePolicy" => {
            let id = if role >= 90 {
                format!("tf/module-{}", n % 4)
            } else {
                "ci/deploy-token".into()
            };
            p.str("secretId", &id);
        }
        "GetParameter" => {
            p.str("name", &format!("/tf/config/{}", n % 6))
                .bool("withDecryption", n.is_multiple_of(2));
        }
        "Query" | "GetItem" | "PutItem" => {
            p.str("tableName", "orders");
        }
        "ReceiveMessage" | "SendMessage" | "DeleteMessage" => {
            p.str(
                "queueUrl",
                "https://sqs.eu-west-1.amazonaws.com/111122223333/orders",
            );
        }
        "CreateAccessKey" | "UpdateLoginProfile" | "GetUser" => {
            p.str("userName", &format!("dev-{}", 100 + n));
        }
        "PutBucketAcl" => {
            p.str("bucketName", "team-reports").str("acl", "");
        }
        "DescribeInstances" => {
            p.obj("filterSet", |_| {});
        }
        _ => no_params(p),
    };
    f.cloudtrail(
        t,
        &Call {
            arn: &arn,
            source,
            name,
            agent,
            ip: &ip,
            params: &params,
            error: None,
        },
    )
}
