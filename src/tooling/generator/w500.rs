//! The W500 workload: about 500-byte events (CloudTrail and flat Sysmon), Zipf identities,
//! and chains for the 10 correlations of the W500 rule set (see `rules`).
//!
//! Its background is the standard one plus, now and then, the kind of event the W500 noise
//! rules look for (rare API calls, access denials, living-off-the-land binaries used benignly),
//! so the prefilter finds candidates and a few detections alert, as in production.

use super::background::{self, Source};
use super::chains::Chain;
use super::json::Obj;
use super::labels::{ChainLabel, Expect, Speed};
use super::sources::{ACCOUNT, Call, FOREIGN_ACCOUNT, Factory, Generated, Process, no_params};
use crate::time::EventTime;

/// Rarely called AWS APIs: the W500 noise rules select among them.
pub const RARE_APIS: &[(&str, &[&str])] = &[
    (
        "ec2.amazonaws.com",
        &[
            "CreateKeyPair",
            "ImportKeyPair",
            "DeleteVpc",
            "AuthorizeSecurityGroupIngress",
            "DeleteFlowLogs",
            "CreateVpcPeeringConnection",
            "DisableEbsEncryptionByDefault",
        ],
    ),
    (
        "s3.amazonaws.com",
        &[
            "DeleteBucket",
            "PutBucketLifecycle",
            "DeleteBucketPolicy",
            "PutBucketVersioning",
            "PutBucketReplication",
            "DeleteBucketEncryption",
        ],
    ),
    (
        "kms.amazonaws.com",
        &[
            "DisableKey",
            "ScheduleKeyDeletion",
            "PutKeyPolicy",
            "CreateGrant",
            "RetireGrant",
        ],
    ),
    (
        "iam.amazonaws.com",
        &[
            "PutUserPolicy",
            "AttachRolePolicy",
            "DeleteRolePolicy",
            "CreatePolicyVersion",
            "SetDefaultPolicyVersion",
            "DeactivateMFADevice",
        ],
    ),
    (
        "rds.amazonaws.com",
        &[
            "DeleteDBCluster",
            "ModifyDBInstance",
            "RestoreDBInstanceFromDBSnapshot",
            "StopDBInstance",
        ],
    ),
    (
        "lambda.amazonaws.com",
        &[
            "DeleteFunction",
            "PublishLayerVersion",
            "UpdateFunctionConfiguration",
        ],
    ),
    (
        "route53.amazonaws.com",
        &["ChangeResourceRecordSets", "DeleteHostedZone"],
    ),
    (
        "organizations.amazonaws.com",
        &["LeaveOrganization", "InviteAccountToOrganization"],
    ),
    (
        "config.amazonaws.com",
        &["StopConfigurationRecorder", "DeleteDeliveryChannel"],
    ),
    (
        "ssm.amazonaws.com",
        &["SendCommand", "StartSession", "DeleteDocument"],
    ),
];

/// Binaries attackers live off, used benignly by the background now and then.
pub const LOLBINS: &[(&str, &str)] = &[
    (
        "certutil.exe",
        "certutil.exe -hashfile C:\\Users\\Public\\setup.msi SHA256",
    ),
    (
        "rundll32.exe",
        "rundll32.exe shell32.dll,Control_RunDLL desk.cpl",
    ),
    (
        "regsvr32.exe",
        "regsvr32.exe /s C:\\Program Files\\Vendor\\plugin.dll",
    ),
    ("mshta.exe", "mshta.exe C:\\Program Files\\Vendor\\help.hta"),
    ("bitsadmin.exe", "bitsadmin.exe /list /allusers"),
    ("wmic.exe", "wmic.exe os get caption"),
    (
        "msiexec.exe",
        "msiexec.exe /i C:\\Users\\Public\\setup.msi /qn",
    ),
    (
        "cscript.exe",
        "cscript.exe //nologo C:\\Windows\\System32\\slmgr.vbs /dli",
    ),
];

/// One benign W500 event: CloudTrail or flat Sysmon (other sources are folded into these two).
pub fn background(
    f: &mut Factory,
    source: Source,
    rank: u64,
    population: u64,
    t: EventTime,
) -> Generated {
    match source {
        Source::CloudTrail => {
            if f.rng.chance(0.004) {
                let (svc, names) = *f.rng.pick(RARE_APIS);
                let name = *f.rng.pick(names);
                let arn = format!("arn:aws:iam::{ACCOUNT}:user/admin-{}", 1000 + rank % 97);
                let denied = f.rng.chance(0.05);
                return f.cloudtrail(
                    t,
                    &Call {
                        arn: &arn,
                        source: svc,
                        name,
                        agent: "console.amazonaws.com",
                        ip: "203.0.113.77",
                        params: &no_params,
                        error: denied.then_some("AccessDenied"),
                    },
                );
            }
            background::event(f, Source::CloudTrail, rank, population, t)
        }
        _ => {
            if f.rng.chance(0.005) {
                let (exe, cmd) = *f.rng.pick(LOLBINS);
                let user = format!("CONTOSO\\u{}", 5000 + rank % 113);
                let image = format!("C:\\Windows\\System32\\{exe}");
                return f.sysmon_windows(
                    t,
                    &Process {
                        host: "WKS500.contoso.local",
                        user: &user,
                        image: &image,
                        command_line: cmd,
                        parent_image: "C:\\Windows\\explorer.exe",
                    },
                );
            }
            background::event(f, Source::WindowsFlat, rank, population, t)
        }
    }
}

/// The W500 chains, one per W500 correlation, and a near miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    CloudChain,
    WindowsChain,
    ShareAndPolicy,
    DeniedBurst,
    SecretSweep,
    NetBurst,
    LateralSpread,
    ConsoleThenKey,
    DefenseEvasion,
    CliS3AfterEnumeration,
    NearSecretThenKey,
}

impl Scenario {
    pub const ALL: [Scenario; 11] = [
        Scenario::CloudChain,
        Scenario::WindowsChain,
        Scenario::ShareAndPolicy,
        Scenario::DeniedBurst,
        Scenario::SecretSweep,
        Scenario::NetBurst,
        Scenario::LateralSpread,
        Scenario::ConsoleThenKey,
        Scenario::DefenseEvasion,
        Scenario::CliS3AfterEnumeration,
        Scenario::NearSecretThenKey,
    ];

    /// The scenario name and the W500 correlation (by name) it must fire.
    fn names(self) -> (&'static str, Option<&'static str>) {
        match self {
            Scenario::CloudChain => ("w500_cloud_chain", Some("w500_corr_cloud_chain")),
            Scenario::WindowsChain => ("w500_windows_chain", Some("w500_corr_windows_chain")),
            Scenario::ShareAndPolicy => {
                ("w500_share_and_policy", Some("w500_corr_share_and_policy"))
            }
            Scenario::DeniedBurst => ("w500_denied_burst", Some("w500_corr_denied_burst")),
            Scenario::SecretSweep => ("w500_secret_sweep", Some("w500_corr_secret_sweep")),
            Scenario::NetBurst => ("w500_net_burst", Some("w500_corr_net_burst")),
            Scenario::LateralSpread => ("w500_lateral_spread", Some("w500_corr_lateral_spread")),
            Scenario::ConsoleThenKey => {
                ("w500_console_then_key", Some("w500_corr_console_then_key"))
            }
            Scenario::DefenseEvasion => ("w500_defense_evasion", Some("w500_corr_defense_evasion")),
            Scenario::CliS3AfterEnumeration => (
                "w500_cli_s3_after_enumeration",
                Some("w500_corr_cli_s3_after_enumeration"),
            ),
            Scenario::NearSecretThenKey => ("w500_near_secret_then_key", None),
        }
    }

    fn windows(self) -> bool {
        matches!(
            self,
            Scenario::WindowsChain | Scenario::NetBurst | Scenario::LateralSpread
        )
    }

    /// Writes chain `n` from `t0`.
    pub fn write(self, f: &mut Factory, n: u64, t0: EventTime) -> (Vec<Generated>, ChainLabel) {
        let mut c = Chain {
            f,
            t0,
            events: Vec::new(),
        };
        let identity = if self.windows() {
            windows(self, &mut c, n)
        } else {
            cloud(self, &mut c, n)
        };
        let mut events = c.events;
        events.sort_by_key(|e| e.time);
        let (name, rule) = self.names();
        let source = if self.windows() {
            Source::WindowsFlat
        } else {
            Source::CloudTrail
        };
        let label = ChainLabel {
            chain: format!("c{n:06}"),
            scenario: name.into(),
            source: source.name().into(),
            product: source.product().into(),
            speed: Speed::Machine,
            expect: if rule.is_some() {
                Expect::Alert
            } else {
                Expect::None
            },
            expected_rules: rule.iter().map(|r| r.to_string()).collect(),
            identity,
            start: String::new(),
            end: String::new(),
            events: Vec::new(),
        }
        .spanning(&events);
        (events, label)
    }
}

const CLI: &str = "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0 exe/x86_64.ubuntu.22";

fn cloud(s: Scenario, c: &mut Chain<'_>, n: u64) -> String {
    let arn = format!("arn:aws:iam::{ACCOUNT}:user/w500-actor-{n}");
    let secret = |id: String| {
        move |p: &mut Obj<'_>| {
            p.str("secretId", &id);
        }
    };
    let sm = ("secretsmanager.amazonaws.com", "GetSecretValue");
    let key = ("iam.amazonaws.com", "CreateAccessKey");
    let list_users = ("iam.amazonaws.com", "ListUsers");
    match s {
        Scenario::CloudChain => {
            c.call(0, &arn, sm, CLI, &secret("prod/payments/api".into()));
            c.call(4, &arn, list_users, CLI, &no_params);
            c.call(9, &arn, key, CLI, &no_params);
        }
        Scenario::ShareAndPolicy => {
            c.call(
                0,
                &arn,
                ("s3.amazonaws.com", "PutBucketPolicy"),
                CLI,
                &|p: &mut Obj<'_>| {
                    p.str("bucketName", "finance-exports");
                },
            );
            c.call(
                20,
                &arn,
                ("ec2.amazonaws.com", "ModifySnapshotAttribute"),
                CLI,
                &|p: &mut Obj<'_>| {
                    p.obj("createVolumePermission", |v| {
                        v.obj("add", |a| {
                            a.objs("items", 1, |_, i| {
                                i.str("userId", FOREIGN_ACCOUNT);
                            });
                        });
                    });
                },
            );
        }
        Scenario::DeniedBurst => {
            for i in 0..12 {
                let t = c.at(i * 5);
                let e = c.f.cloudtrail(
                    t,
                    &Call {
                        arn: &arn,
                        source: "iam.amazonaws.com",
                        name: "ListAttachedRolePolicies",
                        agent: CLI,
                        ip: "198.51.100.23",
                        params: &no_params,
                        error: Some("AccessDenied"),
                    },
                );
                c.events.push(e);
            }
        }
        Scenario::SecretSweep => {
            for i in 0..6 {
                c.call(
                    i * 3,
                    &arn,
                    sm,
                    CLI,
                    &secret(format!("prod/service-{i}/token")),
                );
            }
        }
        Scenario::ConsoleThenKey => {
            let t = c.at(0);
            let e = c.f.cloudtrail(
                t,
                &Call {
                    arn: &arn,
                    source: "signin.amazonaws.com",
                    name: "ConsoleLogin",
                    agent: "Mozilla/5.0",
                    ip: "198.51.100.7",
                    params: &no_params,
                    error: None,
                },
            );
            c.events.push(e);
            c.call(300, &arn, key, "console.amazonaws.com", &no_params);
        }
        Scenario::DefenseEvasion => {
            c.call(
                0,
                &arn,
                ("cloudtrail.amazonaws.com", "StopLogging"),
                CLI,
                &no_params,
            );
            c.call(
                40,
                &arn,
                ("guardduty.amazonaws.com", "DeleteDetector"),
                CLI,
                &no_params,
            );
        }
        Scenario::CliS3AfterEnumeration => {
            c.call(0, &arn, list_users, CLI, &no_params);
            c.call(
                30,
                &arn,
                ("s3.amazonaws.com", "GetObject"),
                CLI,
                &|p: &mut Obj<'_>| {
                    p.str("bucketName", "finance-exports").str("key", "q3.csv");
                },
            );
        }
        _ => {
            // Secret read, then a new key, but no enumeration between: not the cloud chain.
            c.call(0, &arn, sm, CLI, &secret("dev/api".into()));
            c.call(60, &arn, key, CLI, &no_params);
        }
    }
    arn
}

fn windows(s: Scenario, c: &mut Chain<'_>, n: u64) -> String {
    let user = format!("CONTOSO\\w500-actor-{n}");
    let host = format!("WKS{}.contoso.local", 950 + n % 40);
    let sys = |exe: &str| format!("C:\\Windows\\System32\\{exe}");
    match s {
        Scenario::WindowsChain => {
            c.process(0, &host, &user, &sys("rundll32.exe"), "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 712 C:\\Temp\\d.bin full");
            c.process(6, &host, &user, &sys("whoami.exe"), "whoami /all");
            c.process(
                15,
                &host,
                &user,
                &sys("schtasks.exe"),
                "schtasks /create /tn Sync /tr C:\\Temp\\s.exe /sc hourly",
            );
        }
        Scenario::NetBurst => {
            for i in 0..9 {
                c.process(i * 4, &host, &user, &sys("net.exe"), "net user /domain");
            }
        }
        _ => {
            for i in 0..4 {
                let target = format!("WKS{:03}.contoso.local", 100 + i);
                let cmd = format!("PsExec64.exe \\\\{target} -s cmd.exe /c hostname");
                c.process(
                    i as i64 * 20,
                    &target,
                    &user,
                    "C:\\Tools\\PsExec64.exe",
                    &cmd,
                );
            }
        }
    }
    user
}
