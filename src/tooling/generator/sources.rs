//! The event layouts the generator writes, one function per source, each returning the event's
//! bytes and the id the engine will give it (so labels name events the way alerts do).
//!
//! | source            | layout                                                  | engine id                          |
//! |-------------------|---------------------------------------------------------|------------------------------------|
//! | CloudTrail        | an AWS CloudTrail record                                | `eventID`                          |
//! | Windows, flat     | Sysmon as winlogbeat/OTRF write it (`Channel`, `EventID`) | `Hostname/Channel/RecordNumber`  |
//! | Windows, nested   | Security events as EVTX converters write them (`Event.System`) | `Computer/Channel/EventRecordID` |
//! | Linux             | Sysmon for Linux, flat (`Channel` = `Linux-Sysmon/Operational`) | `Hostname/RecordNumber`     |
//! | Kubernetes audit  | `audit.k8s.io/v1` `Event`                               | `auditID`                          |
//! | AI agent          | credtrail's tool-call audit event (`event_type` = `tool_call`) | `event_id`                  |

use xxhash_rust::xxh3::xxh3_64;

use super::json::Obj;
use super::rng::Rng;
use crate::time::EventTime;

/// The AWS account every generated CloudTrail record belongs to.
pub const ACCOUNT: &str = "111122223333";
/// The account data is shared out to in exfiltration steps.
pub const FOREIGN_ACCOUNT: &str = "999988887777";

/// One generated event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    pub time: EventTime,
    /// The id the engine gives the event (see the module table).
    pub id: String,
    pub bytes: Vec<u8>,
}

/// Request parameters of a CloudTrail record, written by a closure.
pub type Params<'a> = &'a dyn Fn(&mut Obj<'_>);

/// No request parameters (`null`).
pub fn no_params(_: &mut Obj<'_>) {}

/// What a CloudTrail record says, beyond what the [`Factory`] draws itself.
pub struct Call<'a> {
    pub arn: &'a str,
    pub source: &'a str,
    pub name: &'a str,
    pub agent: &'a str,
    pub ip: &'a str,
    pub params: Params<'a>,
    pub error: Option<&'a str>,
}

/// A process, file or network event of Sysmon (Windows flat or Linux).
pub struct Process<'a> {
    pub host: &'a str,
    pub user: &'a str,
    pub image: &'a str,
    pub command_line: &'a str,
    pub parent_image: &'a str,
}

/// A Kubernetes API request.
pub struct KubeRequest<'a> {
    pub user: &'a str,
    pub groups: &'a [&'a str],
    pub verb: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub code: i64,
    pub agent: &'a str,
}

/// An AI agent's tool call.
pub struct ToolCall<'a> {
    pub agent_id: &'a str,
    pub agent_name: &'a str,
    pub session: &'a str,
    pub on_behalf_of: &'a str,
    pub tool: &'a str,
    pub arguments: &'a [(&'a str, &'a str)],
    pub resource: Option<&'a str>,
    pub destination: Option<&'a str>,
    pub outcome: &'a str,
}

/// Builds events; owns the random stream and the record counters.
pub struct Factory {
    pub rng: Rng,
    /// Leave out the CloudTrail fields no rule reads (`eventVersion`, `principalId`,
    /// `accountId`, `requestID`, `readOnly`, `managementEvent`, `recipientAccountId`): the
    /// W500 workload's 500-byte records.
    pub compact: bool,
    record: u64,
    buf: Vec<u8>,
}

impl Factory {
    pub fn new(seed: u64) -> Factory {
        Factory {
            rng: Rng::new(seed),
            compact: false,
            record: 1_000_000,
            buf: Vec::with_capacity(1024),
        }
    }

    fn next_record(&mut self) -> u64 {
        self.record += 1;
        self.record
    }

    fn take(&mut self, time: EventTime, id: String) -> Generated {
        Generated {
            time,
            id,
            bytes: std::mem::replace(&mut self.buf, Vec::with_capacity(1024)),
        }
    }

    /// A CloudTrail record. Keys and principal ids are derived from the ARN, so one identity
    /// keeps one access key; event and request ids are random.
    pub fn cloudtrail(&mut self, t: EventTime, c: &Call<'_>) -> Generated {
        let id = self.rng.uuid();
        let request = self.rng.uuid();
        let h = xxh3_64(c.arn.as_bytes());
        let assumed = c.arn.contains(":assumed-role/");
        let time = seconds(t);
        let read_only = ["Get", "List", "Describe", "Head"]
            .iter()
            .any(|p| c.name.starts_with(p));
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let compact = self.compact;
        let mut o = Obj::new(&mut buf);
        if !compact {
            o.str("eventVersion", "1.08");
        }
        o.obj("userIdentity", |u| {
            u.str("type", if assumed { "AssumedRole" } else { "IAMUser" });
            if !compact {
                u.str(
                    "principalId",
                    &format!("{}{:017X}", if assumed { "AROA" } else { "AIDA" }, h >> 4),
                );
            }
            u.str("arn", c.arn);
            if !compact {
                u.str("accountId", ACCOUNT);
            }
            u.str(
                "accessKeyId",
                &format!(
                    "{}{:016X}",
                    if assumed { "ASIA" } else { "AKIA" },
                    h.rotate_left(17)
                ),
            );
            if !assumed && let Some(name) = c.arn.rsplit('/').next() {
                u.str("userName", name);
            }
        });
        o.str("eventTime", &time)
            .str("eventSource", c.source)
            .str("eventName", c.name)
            .str("awsRegion", "eu-west-1")
            .str("sourceIPAddress", c.ip)
            .str("userAgent", c.agent);
        if let Some(e) = c.error {
            o.str("errorCode", e).str(
                "errorMessage",
                "User is not authorized to perform this operation",
            );
        }
        o.obj("requestParameters", |p| (c.params)(p))
            .null("responseElements");
        if !compact {
            o.str("requestID", &request);
        }
        o.str("eventID", &id);
        if !compact {
            o.bool("readOnly", read_only);
        }
        o.str("eventType", "AwsApiCall");
        if !compact {
            o.bool("managementEvent", true)
                .str("recipientAccountId", ACCOUNT);
        }
        o.end();
        self.buf = buf;
        self.take(t, id)
    }

    /// A Sysmon process creation (event 1) in the flat Windows layout.
    pub fn sysmon_windows(&mut self, t: EventTime, p: &Process<'_>) -> Generated {
        const CHANNEL: &str = "Microsoft-Windows-Sysmon/Operational";
        let record = self.next_record();
        let guid = self.rng.uuid();
        let pid = 1000 + self.rng.below(60_000) as i64;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut o = Obj::new(&mut buf);
        o.str("@timestamp", &t.to_string())
            .str("Channel", CHANNEL)
            .int("EventID", 1)
            .str("Hostname", p.host)
            .int("RecordNumber", record as i64)
            .str("User", p.user)
            .str("Image", p.image)
            .str("CommandLine", p.command_line)
            .str("ParentImage", p.parent_image)
            .int("ProcessId", pid)
            .str("ProcessGuid", &format!("{{{guid}}}"))
            .str("UtcTime", &utc_time(t));
        o.end();
        self.buf = buf;
        self.take(t, format!("{}/{CHANNEL}/{record}", p.host))
    }

    /// A Security-log event in the nested layout EVTX converters write.
    pub fn security_nested(
        &mut self,
        t: EventTime,
        host: &str,
        event_id: i64,
        data: &[(&str, &str)],
    ) -> Generated {
        let record = self.next_record();
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut o = Obj::new(&mut buf);
        o.obj("Event", |e| {
            e.obj("System", |s| {
                s.obj("Provider", |p| {
                    p.obj("#attributes", |a| {
                        a.str("Name", "Microsoft-Windows-Security-Auditing");
                    });
                })
                .int("EventID", event_id)
                .int("EventRecordID", record as i64)
                .str("Channel", "Security")
                .str("Computer", host)
                .obj("TimeCreated", |c| {
                    c.obj("#attributes", |a| {
                        a.str("SystemTime", &t.to_string());
                    });
                });
            })
            .obj("EventData", |d| {
                for (k, v) in data {
                    d.str(k, v);
                }
            });
        });
        o.end();
        self.buf = buf;
        self.take(t, format!("{host}/Security/{record}"))
    }

    /// A Sysmon for Linux event: `event_id` 1 (process), 3 (network), 11 (file create) or 23
    /// (file delete); `extra` adds the event's own fields (`TargetFilename`, `DestinationIp`..).
    pub fn sysmon_linux(
        &mut self,
        t: EventTime,
        event_id: i64,
        p: &Process<'_>,
        uid: u32,
        extra: &[(&str, &str)],
    ) -> Generated {
        let record = self.next_record();
        let pid = 1000 + self.rng.below(60_000) as i64;
        let uid = uid.to_string();
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut o = Obj::new(&mut buf);
        o.str("@timestamp", &t.to_string())
            .str("Channel", "Linux-Sysmon/Operational")
            .int("EventID", event_id)
            .str("Hostname", p.host)
            .int("RecordNumber", record as i64)
            .str("User", p.user)
            .int("ProcessId", pid)
            .str("Image", p.image);
        if event_id == 1 {
            o.str("CommandLine", p.command_line)
                .str("ParentImage", p.parent_image)
                .str("CurrentDirectory", "/home");
        }
        for (k, v) in extra {
            o.str(k, v);
        }
        o.str("auid", &uid).str("uid", &uid);
        o.end();
        self.buf = buf;
        self.take(t, format!("{}/{record}", p.host))
    }

    /// A Kubernetes audit event at stage `ResponseComplete`, as the API server writes it: the
    /// request URI under `/api/v1` for core resources and `/apis/GROUP/v1` for the others,
    /// `objectRef.apiGroup` for the latter, and no namespace on cluster-scoped resources.
    pub fn kube_audit(&mut self, t: EventTime, r: &KubeRequest<'_>) -> Generated {
        let id = self.rng.uuid();
        let ip = format!("10.20.{}.{}", self.rng.below(8), 2 + self.rng.below(250));
        let group = api_group(r.resource);
        let namespace = r.namespace.filter(|_| !cluster_scoped(r.resource));
        let mut uri = match group {
            Some(g) => format!("/apis/{g}/v1/"),
            None => String::from("/api/v1/"),
        };
        if let Some(ns) = namespace {
            uri.push_str("namespaces/");
            uri.push_str(ns);
            uri.push('/');
        }
        uri.push_str(r.resource);
        if let Some(n) = r.name {
            uri.push('/');
            uri.push_str(n);
        }
        if let Some(s) = r.subresource {
            uri.push('/');
            uri.push_str(s);
        }
        let stamp = micros(t);
        let done = micros(t.plus(crate::time::Span::from_millis(3)));
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut o = Obj::new(&mut buf);
        o.str("kind", "Event")
            .str("apiVersion", "audit.k8s.io/v1")
            .str("level", "Metadata")
            .str("auditID", &id)
            .str("stage", "ResponseComplete")
            .str("requestURI", &uri)
            .str("verb", r.verb)
            .obj("user", |u| {
                u.str("username", r.user).strs("groups", r.groups);
            })
            .strs("sourceIPs", &[&ip])
            .str("userAgent", r.agent)
            .obj("objectRef", |obj| {
                obj.str("resource", r.resource);
                if let Some(ns) = namespace {
                    obj.str("namespace", ns);
                }
                if let Some(n) = r.name {
                    obj.str("name", n);
                }
                if let Some(s) = r.subresource {
                    obj.str("subresource", s);
                }
                if let Some(g) = group {
                    obj.str("apiGroup", g);
                }
                obj.str("apiVersion", "v1");
            })
            .obj("responseStatus", |s| {
                s.int("code", r.code);
            })
            .str("requestReceivedTimestamp", &stamp)
            .str("stageTimestamp", &done);
        o.end();
        self.buf = buf;
        self.take(t, id)
    }

    /// An AI agent's tool-call audit event.
    pub fn tool_call(&mut self, t: EventTime, c: &ToolCall<'_>) -> Generated {
        let id = format!("tc-{:016x}", self.rng.next_u64());
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut o = Obj::new(&mut buf);
        o.str("timestamp", &t.to_string())
            .str("event_type", "tool_call")
            .str("event_id", &id)
            .obj("agent", |a| {
                a.str("id", c.agent_id)
                    .str("name", c.agent_name)
                    .str("session", c.session)
                    .str("on_behalf_of", c.on_behalf_of);
            })
            .obj("tool", |tool| {
                tool.str("name", c.tool).obj("arguments", |args| {
                    for (k, v) in c.arguments {
                        args.str(k, v);
                    }
                });
            })
            .obj("target", |tg| {
                if let Some(r) = c.resource {
                    tg.str("resource", r);
                }
                if let Some(d) = c.destination {
                    tg.str("destination", d);
                }
            })
            .str("outcome", c.outcome);
        o.end();
        self.buf = buf;
        self.take(t, id)
    }
}

/// The API group of a Kubernetes resource the generator requests; `None` for the core group.
fn api_group(resource: &str) -> Option<&'static str> {
    match resource {
        "cronjobs" | "jobs" => Some("batch"),
        "deployments" | "replicasets" | "statefulsets" | "daemonsets" => Some("apps"),
        "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings" => {
            Some("rbac.authorization.k8s.io")
        }
        "selfsubjectrulesreviews" | "selfsubjectaccessreviews" => Some("authorization.k8s.io"),
        "leases" => Some("coordination.k8s.io"),
        _ => None,
    }
}

/// Kubernetes resources that live outside namespaces.
fn cluster_scoped(resource: &str) -> bool {
    matches!(
        resource,
        "nodes"
            | "namespaces"
            | "clusterroles"
            | "clusterrolebindings"
            | "selfsubjectrulesreviews"
            | "selfsubjectaccessreviews"
    )
}

/// CloudTrail writes whole seconds: `2026-11-02T09:00:00Z`.
fn seconds(t: EventTime) -> String {
    let mut s = EventTime(t.0 - t.0.rem_euclid(1_000_000_000)).to_string();
    // `...:00.000Z` → `...:00Z`
    s.truncate(s.len() - 5);
    s.push('Z');
    s
}

/// Kubernetes writes microseconds: `2026-11-02T09:00:00.123000Z`.
fn micros(t: EventTime) -> String {
    let mut s = t.to_string();
    s.truncate(s.len() - 1);
    s.push_str("000Z");
    s
}

/// Sysmon's `UtcTime`: `2026-11-02 09:00:00.123`.
fn utc_time(t: EventTime) -> String {
    let s = t.to_string().replace('T', " ");
    s.trim_end_matches('Z').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> EventTime {
        EventTime::parse("2026-11-02T09:00:01.250Z").unwrap()
    }

    #[test]
    fn time_spellings_match_each_source() {
        assert_eq!(seconds(at()), "2026-11-02T09:00:01Z");
        assert_eq!(micros(at()), "2026-11-02T09:00:01.250000Z");
        assert_eq!(utc_time(at()), "2026-11-02 09:00:01.250");
    }

    #[test]
    fn every_layout_is_json_with_its_id_where_the_engine_reads_it() {
        let mut f = Factory::new(1);
        let ct = f.cloudtrail(
            at(),
            &Call {
                arn: "arn:aws:iam::111122223333:user/a",
                source: "iam.amazonaws.com",
                name: "ListUsers",
                agent: "aws-cli/2",
                ip: "203.0.113.1",
                params: &no_params,
                error: None,
            },
        );
        let v: serde_json::Value = serde_json::from_slice(&ct.bytes).unwrap();
        assert_eq!(v["eventID"], ct.id.as_str());
        assert_eq!(v["userIdentity"]["userName"], "a");
        assert_eq!(v["readOnly"], true);
        let p = Process {
            host: "h1",
            user: "CONTOSO\\a",
            image: "C:\\x.exe",
            command_line: "x",
            parent_image: "C:\\p.exe",
        };
        let w = f.sysmon_windows(at(), &p);
        let v: serde_json::Value = serde_json::from_slice(&w.bytes).unwrap();
        assert_eq!(
            w.id,
            format!(
                "h1/Microsoft-Windows-Sysmon/Operational/{}",
                v["RecordNumber"]
            )
        );
        let n = f.security_nested(at(), "h1", 4698, &[("TaskName", "\\t")]);
        let v: serde_json::Value = serde_json::from_slice(&n.bytes).unwrap();
        assert_eq!(
            n.id,
            format!("h1/Security/{}", v["Event"]["System"]["EventRecordID"])
        );
        let l = f.sysmon_linux(at(), 11, &p, 1000, &[("TargetFilename", "/etc/cron.d/x")]);
        let v: serde_json::Value = serde_json::from_slice(&l.bytes).unwrap();
        assert_eq!(l.id, format!("h1/{}", v["RecordNumber"]));
        assert_eq!(v["TargetFilename"], "/etc/cron.d/x");
        assert_eq!(v["auid"], "1000");
        let k = f.kube_audit(
            at(),
            &KubeRequest {
                user: "u",
                groups: &["system:authenticated"],
                verb: "get",
                resource: "secrets",
                subresource: None,
                namespace: Some("prod"),
                name: Some("db"),
                code: 200,
                agent: "kubectl/v1.30",
            },
        );
        let v: serde_json::Value = serde_json::from_slice(&k.bytes).unwrap();
        assert_eq!(v["auditID"], k.id.as_str());
        assert_eq!(v["requestURI"], "/api/v1/namespaces/prod/secrets/db");
        assert!(v["objectRef"].get("apiGroup").is_none(), "core group");
        let cron = f.kube_audit(
            at(),
            &KubeRequest {
                user: "u",
                groups: &["system:authenticated"],
                verb: "create",
                resource: "cronjobs",
                subresource: None,
                namespace: Some("kube-system"),
                name: Some("node-health"),
                code: 201,
                agent: "kubectl/v1.30",
            },
        );
        let v: serde_json::Value = serde_json::from_slice(&cron.bytes).unwrap();
        assert_eq!(
            v["requestURI"],
            "/apis/batch/v1/namespaces/kube-system/cronjobs/node-health"
        );
        assert_eq!(v["objectRef"]["apiGroup"], "batch");
        let review = f.kube_audit(
            at(),
            &KubeRequest {
                user: "u",
                groups: &["system:authenticated"],
                verb: "create",
                resource: "selfsubjectrulesreviews",
                subresource: None,
                namespace: Some("prod"),
                name: None,
                code: 201,
                agent: "kubectl/v1.30",
            },
        );
        let v: serde_json::Value = serde_json::from_slice(&review.bytes).unwrap();
        assert_eq!(
            v["requestURI"], "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            "cluster-scoped: no namespace"
        );
        assert!(v["objectRef"].get("namespace").is_none());
        let a = f.tool_call(
            at(),
            &ToolCall {
                agent_id: "agent-1",
                agent_name: "ops-copilot",
                session: "s-1",
                on_behalf_of: "alice@example.com",
                tool: "read_file",
                arguments: &[("path", "/x")],
                resource: Some("/x"),
                destination: None,
                outcome: "success",
            },
        );
        let v: serde_json::Value = serde_json::from_slice(&a.bytes).unwrap();
        assert_eq!(v["event_id"], a.id.as_str());
        assert_eq!(v["agent"]["id"], "agent-1");
        assert_eq!(v["tool"]["arguments"]["path"], "/x");
    }
}
