//! CloudTrail chains: the whole chain, persistence and exfiltration at human speed, stolen
//! instance credentials, and three near misses.

use super::{Chain, Scenario};
use crate::tooling::generator::json::Obj;
use crate::tooling::generator::sources::{ACCOUNT, FOREIGN_ACCOUNT, no_params};

const CLI: &str = "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0 exe/x86_64.ubuntu.22";
const CONSOLE: &str = "console.amazonaws.com";
const SECRET: (&str, &str) = ("secretsmanager.amazonaws.com", "GetSecretValue");

fn secret_id(id: &'static str) -> impl Fn(&mut Obj<'_>) {
    move |p: &mut Obj<'_>| {
        p.str("secretId", id);
    }
}

fn user_name(name: &str) -> impl Fn(&mut Obj<'_>) + '_ {
    move |p: &mut Obj<'_>| {
        p.str("userName", name);
    }
}

pub(super) fn cloudtrail(s: Scenario, c: &mut Chain<'_>, n: u64) -> String {
    let user = |who: &str| format!("arn:aws:iam::{ACCOUNT}:user/{who}-{n}");
    match s {
        Scenario::CtFullMachine => {
            let arn = user("contractor");
            c.call(
                0,
                &arn,
                ("sts.amazonaws.com", "GetCallerIdentity"),
                CLI,
                &no_params,
            );
            for (i, id) in [
                "prod/db/password",
                "prod/stripe/api-key",
                "prod/github/deploy-key",
            ]
            .into_iter()
            .enumerate()
            {
                c.call(2 + i as i64, &arn, SECRET, CLI, &secret_id(id));
            }
            c.call(6, &arn, ("iam.amazonaws.com", "ListUsers"), CLI, &no_params);
            c.call(7, &arn, ("iam.amazonaws.com", "ListRoles"), CLI, &no_params);
            c.call(
                9,
                &arn,
                ("s3.amazonaws.com", "ListBuckets"),
                CLI,
                &no_params,
            );
            c.call(
                14,
                &arn,
                ("iam.amazonaws.com", "CreateUser"),
                CLI,
                &user_name("backup-operator"),
            );
            c.call(
                15,
                &arn,
                ("iam.amazonaws.com", "CreateAccessKey"),
                CLI,
                &user_name("backup-operator"),
            );
            c.call(
                21,
                &arn,
                ("events.amazonaws.com", "PutRule"),
                CLI,
                &|p: &mut Obj<'_>| {
                    p.str("name", "nightly-sync")
                        .str("scheduleExpression", "rate(5 minutes)");
                },
            );
            c.call(
                38,
                &arn,
                ("ec2.amazonaws.com", "ModifySnapshotAttribute"),
                CLI,
                &|p: &mut Obj<'_>| {
                    p.str("snapshotId", "snap-0a1b2c3d4e5f60718")
                        .obj("createVolumePermission", |v| {
                            v.obj("add", |a| {
                                a.objs("items", 1, |_, i| {
                                    i.str("userId", FOREIGN_ACCOUNT);
                                });
                            });
                        })
                        .str("attributeType", "CREATE_VOLUME_PERMISSION");
                },
            );
            arn
        }
        Scenario::CtPersistenceHuman => {
            let arn = user("analyst");
            c.call(0, &arn, SECRET, CONSOLE, &secret_id("prod/db/password"));
            c.call(
                15 * 60,
                &arn,
                ("s3.amazonaws.com", "ListBuckets"),
                CONSOLE,
                &no_params,
            );
            c.call(
                38 * 60,
                &arn,
                ("iam.amazonaws.com", "CreateLoginProfile"),
                CONSOLE,
                &user_name("analyst-admin"),
            );
            arn
        }
        Scenario::CtExfiltrationHuman => {
            let arn = format!("arn:aws:sts::{ACCOUNT}:assumed-role/ops-admin/session-{n}");
            c.call(
                0,
                &arn,
                ("ssm.amazonaws.com", "GetParameter"),
                CLI,
                &|p: &mut Obj<'_>| {
                    p.str("name", "/prod/db/master-password")
                        .bool("withDecryption", true);
                },
            );
            c.call(
                12 * 60,
                &arn,
                ("ec2.amazonaws.com", "DescribeInstances"),
                CLI,
                &|p: &mut Obj<'_>| {
                    p.obj("filterSet", |_| {});
                },
            );
            c.call(
                31 * 60,
                &arn,
                ("ec2.amazonaws.com", "ModifyImageAttribute"),
                CLI,
                &|p: &mut Obj<'_>| {
                    p.str("imageId", "ami-0c55b159cbfafe1f0")
                        .obj("launchPermission", |v| {
                            v.obj("add", |a| {
                                a.objs("items", 1, |_, i| {
                                    i.str("userId", FOREIGN_ACCOUNT);
                                });
                            });
                        })
                        .str("attributeType", "launchPermission");
                },
            );
            arn
        }
        Scenario::CtInstanceCredentials => {
            let arn = format!(
                "arn:aws:sts::{ACCOUNT}:assumed-role/web-prod/i-0{:012x}",
                0xabc000 + n
            );
            c.call(
                0,
                &arn,
                ("sts.amazonaws.com", "GetCallerIdentity"),
                CLI,
                &no_params,
            );
            c.call(
                3,
                &arn,
                ("s3.amazonaws.com", "ListBuckets"),
                CLI,
                &no_params,
            );
            for (i, key) in ["customers.csv", "payroll.xlsx", "keys.zip"]
                .into_iter()
                .enumerate()
            {
                c.call(
                    8 + 2 * i as i64,
                    &arn,
                    ("s3.amazonaws.com", "GetObject"),
                    CLI,
                    &move |p: &mut Obj<'_>| {
                        p.str("bucketName", "finance-exports").str("key", key);
                    },
                );
            }
            arn
        }
        Scenario::CtNearNoEnumeration => {
            let arn = user("tester");
            c.call(0, &arn, SECRET, CLI, &secret_id("dev/api"));
            c.call(
                60,
                &arn,
                ("iam.amazonaws.com", "CreateAccessKey"),
                CLI,
                &user_name("tester"),
            );
            arn
        }
        Scenario::CtNearTooSlow => {
            // Every step happens, but the last one 80 minutes after the first: outside 1 h.
            let arn = user("night-shift");
            c.call(0, &arn, SECRET, CONSOLE, &secret_id("prod/db/password"));
            c.call(
                40 * 60,
                &arn,
                ("iam.amazonaws.com", "ListUsers"),
                CONSOLE,
                &no_params,
            );
            c.call(
                80 * 60,
                &arn,
                ("iam.amazonaws.com", "CreateAccessKey"),
                CONSOLE,
                &user_name("night-shift"),
            );
            arn
        }
        _ => {
            // Persistence, enumeration, then the secret read: the wrong order.
            let arn = user("onboarding");
            c.call(
                0,
                &arn,
                ("iam.amazonaws.com", "CreateAccessKey"),
                CONSOLE,
                &user_name("onboarding"),
            );
            c.call(
                120,
                &arn,
                ("iam.amazonaws.com", "ListUsers"),
                CONSOLE,
                &no_params,
            );
            c.call(240, &arn, SECRET, CONSOLE, &secret_id("dev/onboarding"));
            arn
        }
    }
}
