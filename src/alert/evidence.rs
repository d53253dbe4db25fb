//! Evidence in OCSF's own objects: per contributing event, who acted (`actor`), what was
//! called (`api`), from where (`src_endpoint`, `http_request`), on which host and process
//! (`device`, `process`) and on what (`resources`), from the details the decoder took from the
//! event ([`EventDetails`]); and, over the chain, the alert's `resources` and `observables`.
//!
//! Bounded: [`AlertOptions::max_evidences`] events are shown in full (the first and the last
//! always, then the first event of every other stage, then the earliest), the rest are counted;
//! every value was cut at decode time; the alert's `resources` and `observables` are capped.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::vocab::{DetailKind as K, EventDetails, EventRef};

/// How much of a chain an alert shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertOptions {
    /// Evidences shown in full (at least 2: the first and the last event).
    pub max_evidences: usize,
    /// The most bytes one alert line may take; it must stay below the alert producer's
    /// `message.max.bytes` (1,000,000 by default). An alert above it is rendered again with
    /// fewer evidences and related events, down to the first and last.
    pub max_bytes: usize,
    /// Group findings into incidents (`None`: every finding is its own alert, as before).
    pub incidents: Option<super::incident::IncidentOptions>,
}

impl Default for AlertOptions {
    fn default() -> Self {
        AlertOptions {
            max_evidences: 10,
            max_bytes: 256 * 1024,
            incidents: Some(super::incident::IncidentOptions::default()),
        }
    }
}

/// Most entries of the alert's top-level `resources` and `observables`.
pub const MAX_RESOURCES: usize = 16;
pub const MAX_OBSERVABLES: usize = 32;

/// The indices of `events` shown in full, at most `max` (never fewer than 2 when there are
/// 2): the first and the last, then the first event of each stage not yet shown, then the
/// earliest others; in event order.
pub fn pick(events: &[(EventRef, u32)], max: usize) -> Vec<usize> {
    let n = events.len();
    let max = max.max(2);
    if n <= max {
        return (0..n).collect();
    }
    let mut chosen: BTreeSet<usize> = [0, n - 1].into();
    let mut stages_seen: BTreeSet<u32> = [events[0].1, events[n - 1].1].into();
    for (i, (_, stage)) in events.iter().enumerate() {
        if chosen.len() >= max {
            break;
        }
        if stages_seen.insert(*stage) {
            chosen.insert(i);
        }
    }
    for i in 0..n {
        if chosen.len() >= max {
            break;
        }
        chosen.insert(i);
    }
    chosen.into_iter().collect()
}

/// OCSF `actor`: the user (name, uid, credential) and, for an assumed role, its session.
#[derive(Serialize)]
pub struct Actor<'a> {
    user: User<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<Session<'a>>,
}

#[derive(Serialize)]
struct User<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_uid: Option<&'a str>,
}

#[derive(Serialize)]
struct Session<'a> {
    uid: &'a str,
}

/// OCSF `api`.
#[derive(Serialize)]
pub struct Api<'a> {
    operation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<Named<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<ApiResponse<'a>>,
}

#[derive(Serialize)]
struct Named<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct ApiResponse<'a> {
    error: &'a str,
}

/// OCSF `network_endpoint` (the source of a call).
#[derive(Serialize)]
pub struct Endpoint<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<Location<'a>>,
}

#[derive(Serialize)]
struct Location<'a> {
    country: &'a str,
}

#[derive(Serialize)]
pub struct HttpRequest<'a> {
    user_agent: &'a str,
}

/// OCSF `device`: `type_id` is required; 0 (Unknown) since events rarely say.
#[derive(Serialize)]
pub struct Device<'a> {
    hostname: &'a str,
    type_id: u8,
}

/// OCSF `process` with its parent.
#[derive(Serialize)]
pub struct Process<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    cmd_line: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<FilePath<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_process: Option<Box<Process<'a>>>,
}

#[derive(Serialize)]
struct FilePath<'a> {
    path: &'a str,
    /// OCSF `file.type_id` is required; 1 is a regular file.
    type_id: u8,
    name: &'a str,
}

impl<'a> FilePath<'a> {
    fn new(path: &'a str) -> FilePath<'a> {
        let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        FilePath {
            path,
            type_id: 1,
            name,
        }
    }
}

/// OCSF `resource_details`: something an event acted on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Resource<'a> {
    pub uid: String,
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<&'a str>,
    /// The accounts the resource was shared with (an AMI or snapshot share).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<SharedWith<'a>>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SharedWith<'a> {
    pub shared_with_accounts: Vec<&'a str>,
}

/// The OCSF objects of one evidence, each present when the event showed it.
#[derive(Default, Serialize)]
pub struct Objects<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<Api<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_endpoint: Option<Endpoint<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_request: Option<HttpRequest<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<Device<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<Process<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource<'a>>,
}

/// The OCSF objects of an event with `details`.
pub fn objects(details: Option<&EventDetails>) -> Objects<'_> {
    let Some(d) = details else {
        return Objects::default();
    };
    let user = d.get(K::User);
    let credential = d.get(K::Credential);
    let actor = (user.is_some() || credential.is_some()).then(|| Actor {
        user: User {
            name: user.map(short_name),
            uid: user,
            credential_uid: credential,
        },
        session: user
            .filter(|u| u.contains(":assumed-role/"))
            .map(|uid| Session { uid }),
    });
    let api = d.get(K::Operation).map(|operation| Api {
        operation,
        service: d.get(K::Service).map(|name| Named { name }),
        response: d.get(K::Error).map(|error| ApiResponse { error }),
    });
    let (ip, country) = (d.get(K::SrcIp), d.get(K::SrcCountry));
    let src_endpoint = (ip.is_some() || country.is_some()).then(|| Endpoint {
        ip,
        location: country.map(|country| Location { country }),
    });
    let parent =
        (d.get(K::ParentCmdLine).is_some() || d.get(K::ParentProcess).is_some()).then(|| {
            Box::new(Process {
                cmd_line: d.get(K::ParentCmdLine),
                file: d.get(K::ParentProcess).map(FilePath::new),
                parent_process: None,
            })
        });
    let process = (d.get(K::CmdLine).is_some() || d.get(K::Process).is_some()).then(|| Process {
        cmd_line: d.get(K::CmdLine),
        file: d.get(K::Process).map(FilePath::new),
        parent_process: parent,
    });
    Objects {
        actor,
        api,
        src_endpoint,
        http_request: d
            .get(K::UserAgent)
            .map(|user_agent| HttpRequest { user_agent }),
        device: d.get(K::Hostname).map(|hostname| Device {
            hostname,
            type_id: 0,
        }),
        process,
        resources: resources(d),
    }
}

/// The resources one event names, each once: secrets, buckets, images and snapshots (with
/// the accounts they were shared with), Kubernetes objects with their namespace, files.
fn resources(d: &EventDetails) -> Vec<Resource<'_>> {
    let shared: Vec<&str> = d.all(K::SharedWith).collect();
    let shared_with = || {
        (!shared.is_empty()).then(|| SharedWith {
            shared_with_accounts: shared.clone(),
        })
    };
    let mut out = Vec::new();
    for (kind, value) in d.iter() {
        let r = |kind: &'static str| Resource {
            uid: value.to_string(),
            kind,
            namespace: None,
            data: None,
        };
        match kind {
            K::Secret => out.push(r("secret")),
            K::Bucket => out.push(r("bucket")),
            K::Image => out.push(Resource {
                data: shared_with(),
                ..r("image")
            }),
            K::Snapshot => out.push(Resource {
                data: shared_with(),
                ..r("snapshot")
            }),
            K::File => out.push(r("file")),
            K::Resource => out.push(r("resource")),
            K::Object => {
                let namespace = d.get(K::Namespace);
                let kind = d.get(K::ObjectKind).unwrap_or("object");
                let uid = match namespace {
                    Some(ns) => format!("{ns}/{value}"),
                    None => value.to_string(),
                };
                out.push(Resource {
                    uid,
                    kind,
                    namespace,
                    data: None,
                });
            }
            // A request on a whole kind (`list secrets` in a namespace) names no object.
            K::ObjectKind if d.get(K::Object).is_none() => {
                let namespace = d.get(K::Namespace);
                out.push(Resource {
                    uid: format!("{}/*", namespace.unwrap_or("")),
                    kind: value,
                    namespace,
                    data: None,
                });
            }
            _ => {}
        }
    }
    out.dedup();
    out
}

/// The last segment of an ARN or a `DOMAIN\user`: the name a person reads.
fn short_name(user: &str) -> &str {
    user.rsplit(['/', '\\']).next().unwrap_or(user)
}

/// The alert's `resources`: what the chain's own events acted on, each once, at most
/// [`MAX_RESOURCES`] (the earliest first).
pub fn chain_resources(events: &[(EventRef, u32)]) -> Vec<Resource<'_>> {
    let mut out: Vec<Resource<'_>> = Vec::new();
    for (e, _) in events {
        let Some(d) = e.details.as_deref() else {
            continue;
        };
        for r in resources(d) {
            if out.len() >= MAX_RESOURCES {
                return out;
            }
            match out.iter_mut().find(|o| o.uid == r.uid && o.kind == r.kind) {
                // A later event sharing the same image adds its accounts.
                Some(o) => {
                    if let (Some(a), Some(b)) = (&mut o.data, r.data) {
                        for acc in b.shared_with_accounts {
                            if !a.shared_with_accounts.contains(&acc) {
                                a.shared_with_accounts.push(acc);
                            }
                        }
                    }
                }
                None => out.push(r),
            }
        }
    }
    out
}

/// An OCSF `observable`: a value worth pivoting on, with the attribute it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Observable<'a> {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub type_name: &'static str,
    pub type_id: u8,
    pub value: &'a str,
}

/// The alert's `observables`: source IPs, users, hosts, user agents, command lines and
/// resources of the chain's events, each once, at most [`MAX_OBSERVABLES`].
pub fn observables(events: &[(EventRef, u32)]) -> Vec<Observable<'_>> {
    let mut out: Vec<Observable<'_>> = Vec::new();
    for (e, _) in events {
        let Some(d) = e.details.as_deref() else {
            continue;
        };
        for (kind, value) in d.iter() {
            let (name, type_name, type_id) = match kind {
                K::SrcIp => ("evidences.src_endpoint.ip", "IP Address", 2),
                K::User => ("evidences.actor.user.uid", "User Name", 4),
                K::Hostname => ("evidences.device.hostname", "Hostname", 1),
                K::UserAgent => ("evidences.http_request.user_agent", "HTTP User-Agent", 16),
                K::CmdLine => ("evidences.process.cmd_line", "Command Line", 13),
                K::Credential => (
                    "evidences.actor.user.credential_uid",
                    "User Credential ID",
                    19,
                ),
                K::Secret | K::Bucket | K::Image | K::Snapshot | K::Object | K::Resource => {
                    ("resources.uid", "Resource UID", 10)
                }
                _ => continue,
            };
            let o = Observable {
                name,
                type_name,
                type_id,
                value,
            };
            if out.contains(&o) {
                continue;
            }
            if out.len() >= MAX_OBSERVABLES {
                return out;
            }
            out.push(o);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::EventTime;
    use crate::vocab::DetailKind;
    use crate::vocab::Position;
    use std::sync::Arc;

    fn ev(i: u64, stage: u32) -> (EventRef, u32) {
        (
            EventRef {
                time: EventTime::from_millis(i as i64),
                key: i,
                pos: Position {
                    source: 0,
                    offset: i,
                },
                id: format!("e{i}").into(),
                parts: None,
                actor: None,
                details: None,
            },
            stage,
        )
    }

    #[test]
    fn the_first_and_last_events_and_every_stage_are_shown_within_the_bound() {
        let mut events: Vec<_> = (0..50).map(|i| ev(i, 0)).collect();
        events.extend((50..100).map(|i| ev(i, 1)));
        events.push(ev(100, 2));
        let shown = pick(&events, 4);
        assert_eq!(shown, vec![0, 1, 50, 100]);
        assert_eq!(pick(&events, 0), vec![0, 100]);
        assert_eq!(pick(&events[..3], 10), vec![0, 1, 2]);
    }

    #[test]
    fn an_ami_share_shows_the_image_and_the_account_it_was_shared_with() {
        let d = EventDetails::new([
            (DetailKind::User, "arn:aws:iam::1:user/bert-jan"),
            (DetailKind::Operation, "ModifyImageAttribute"),
            (DetailKind::Image, "ami-1"),
            (DetailKind::SharedWith, "012345678901"),
        ])
        .unwrap();
        let o = objects(Some(&d));
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["actor"]["user"]["name"], "bert-jan");
        assert_eq!(v["api"]["operation"], "ModifyImageAttribute");
        assert_eq!(v["resources"][0]["uid"], "ami-1");
        assert_eq!(
            v["resources"][0]["data"]["shared_with_accounts"][0],
            "012345678901"
        );
        let mut e = ev(1, 0);
        e.0.details = Some(Arc::new(d));
        let obs = observables(std::slice::from_ref(&e));
        assert!(obs.iter().any(|o| o.type_id == 10 && o.value == "ami-1"));
        assert!(obs.iter().any(|o| o.type_id == 4));
    }

    #[test]
    fn a_kubernetes_secret_is_one_resource_with_its_namespace() {
        let d = EventDetails::new([
            (DetailKind::ObjectKind, "secrets"),
            (DetailKind::Object, "db-creds"),
            (DetailKind::Namespace, "payments"),
        ])
        .unwrap();
        let mut a = ev(1, 0);
        a.0.details = Some(Arc::new(d.clone()));
        let mut b = ev(2, 1);
        b.0.details = Some(Arc::new(d));
        let events = [a, b];
        let r = chain_resources(&events);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].uid, "payments/db-creds");
        assert_eq!(r[0].namespace, Some("payments"));
        assert_eq!(r[0].kind, "secrets");
    }

    #[test]
    fn details_are_capped_per_value_and_per_event() {
        let long = "x".repeat(5000);
        let d = EventDetails::new((0..40).map(|_| (DetailKind::CmdLine, long.as_str()))).unwrap();
        // Repeats are kept once; the value is cut with an ellipsis.
        assert_eq!(d.iter().count(), 1);
        let v = d.get(DetailKind::CmdLine).unwrap();
        assert!(v.len() <= crate::vocab::DETAIL_MAX_LEN + '…'.len_utf8());
        assert!(v.ends_with('…'));
        let many: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
        let d = EventDetails::new(many.iter().map(|v| (DetailKind::Resource, v.as_str()))).unwrap();
        assert_eq!(d.iter().count(), crate::vocab::DETAILS_PER_EVENT);
        assert!(EventDetails::new([(DetailKind::User, "")]).is_none());
    }
}
