//! A test case's events made real: each event's source profile recognised as the engine would,
//! its time written into the profile's time field (`base_time + at`), and an id given to events
//! that have none, so that a duplicated event keeps its id.

use serde_json::{Map, Value};

use crate::decode::fields::Step;
use crate::decode::{GenericPaths, ProfileKind, ProfileSpec, profile};
use crate::time::EventTime;

/// One event ready to be written as a JSON line.
#[derive(Clone, Debug)]
pub struct Built {
    /// Index in the case's `events` (or `usize::MAX` for inserted events).
    pub index: usize,
    pub time: EventTime,
    pub json: Value,
}

impl Built {
    /// The event with its time set to `time`.
    pub fn at(&self, time: EventTime, kind: ProfileKind) -> Built {
        let mut json = self.json.clone();
        set_time(&mut json, kind, time);
        Built {
            index: self.index,
            time,
            json,
        }
    }
}

/// Recognises the profile of `event` (the engine's own detection).
pub fn profile_of(event: &Value) -> Option<ProfileKind> {
    let mut bytes = serde_json::to_vec(event).ok()?;
    let tape = simd_json::to_tape(&mut bytes).ok()?;
    profile::detect(&tape.0)
}

/// Prepares `event` to happen at `time`; `id` is used when the event has no id of its own.
pub fn build(
    index: usize,
    event: &Value,
    time: EventTime,
    id: &str,
) -> Result<(Built, ProfileKind), String> {
    let Value::Object(_) = event else {
        return Err("an event must be a JSON object".into());
    };
    // The runner writes the time and the id, and some profiles are recognised by those (ECS by
    // its `@timestamp`, Kubernetes by its `auditID`): try each profile with them filled in.
    let completed = || {
        COMPLETABLE.iter().find_map(|&(kind, with_id)| {
            let mut e = event.clone();
            set_time(&mut e, kind, time);
            if with_id {
                fill_ids(&mut e, kind, id);
            }
            (profile_of(&e) == Some(kind)).then_some(kind)
        })
    };
    let kind = profile_of(event).or_else(completed).ok_or_else(|| {
        "no source profile recognises this event (CloudTrail needs eventSource and eventName, \
         Windows EventID and Channel, Sysmon for Linux its Channel, Kubernetes verb, \
         agent tool calls agent and tool objects, OCSF class_uid and metadata, ECS an event \
         object)"
            .to_string()
    })?;
    let mut json = event.clone();
    set_time(&mut json, kind, time);
    fill_ids(&mut json, kind, id);
    Ok((Built { index, time, json }, kind))
}

/// The profiles an event may be recognised as once its time (and, when `true`, its id) is
/// written, in the order tried. ECS's id lives in the `event` object that recognises ECS, so
/// writing it would make anything ECS.
const COMPLETABLE: [(ProfileKind, bool); 2] =
    [(ProfileKind::K8sAudit, true), (ProfileKind::Ecs, false)];

/// Fills in the id fields the event lacks (wherever the profile would look for them), so that
/// every event of a case has its own id and a duplicate keeps it.
fn fill_ids(json: &mut Value, kind: ProfileKind, id: &str) {
    let spec = ProfileSpec::builtin(kind, &GenericPaths::default());
    let last = spec.id_fields.len().saturating_sub(1);
    for (k, f) in spec.id_fields.iter().enumerate() {
        if !present(json, &spec, f) {
            let value = if k == last { id } else { "credtrail-test" };
            set(json, f, Value::String(value.into()));
        }
    }
}

/// Writes `time` into the time field of `kind` the event already uses, else where a shipper
/// would: `@timestamp` for Windows and Linux (Sysmon's `UtcTime`, which the profile prefers,
/// belongs to some event ids only), the profile's first time field for the others.
pub fn set_time(json: &mut Value, kind: ProfileKind, time: EventTime) {
    let spec = ProfileSpec::builtin(kind, &GenericPaths::default());
    let shipper = matches!(kind, ProfileKind::Windows | ProfileKind::Linux);
    let field = spec
        .time_fields
        .iter()
        .find(|f| get(json, f).is_some())
        .or_else(|| {
            let mut fields = spec.time_fields.iter();
            if shipper {
                fields.find(|f| *f == "@timestamp")
            } else {
                fields.next()
            }
        })
        .cloned()
        .unwrap_or_else(|| "@timestamp".into());
    let value = if kind == ProfileKind::Ocsf {
        Value::from(time.as_millis())
    } else {
        Value::String(time.to_string())
    };
    set(json, &field, value);
}

/// Whether the profile finds `field` in the event, on any of its paths.
fn present(json: &Value, spec: &ProfileSpec, field: &str) -> bool {
    fn walk(v: &Value, path: &[Step]) -> bool {
        match path.split_first() {
            None => !v.is_null(),
            Some((Step::Key(k), rest)) => v.get(&**k).is_some_and(|c| walk(c, rest)),
            Some((Step::AnyKey, rest)) => v
                .as_object()
                .is_some_and(|m| m.values().any(|c| walk(c, rest))),
        }
    }
    get(json, field).is_some() || spec.paths(field).iter().any(|p| walk(json, p))
}

/// The value at a dotted path (or at a top-level key spelt with the dots).
pub fn get<'a>(json: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = json.get(path) {
        return Some(v);
    }
    let mut at = json;
    for part in path.split('.') {
        at = at.get(part)?;
    }
    Some(at)
}

/// Sets the value at a dotted path, creating objects on the way.
pub fn set(json: &mut Value, path: &str, value: Value) {
    if let Some(slot) = json.get_mut(path) {
        *slot = value;
        return;
    }
    let mut at = json;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(map) = at else {
            return;
        };
        if i + 1 == parts.len() {
            map.insert((*part).to_string(), value);
            return;
        }
        at = map
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudtrail_events_get_their_time_and_an_id() {
        let e = serde_json::json!({"eventSource": "iam.amazonaws.com", "eventName": "ListUsers"});
        let t = EventTime::parse("2024-01-01T00:00:12Z").unwrap();
        let (b, kind) = build(0, &e, t, "case-0").unwrap();
        assert_eq!(kind, ProfileKind::CloudTrail);
        assert_eq!(b.json["eventTime"], "2024-01-01T00:00:12.000Z");
        assert_eq!(b.json["eventID"], "case-0");
    }

    #[test]
    fn an_event_with_an_id_keeps_it() {
        let e = serde_json::json!({"eventSource": "s", "eventName": "n", "eventID": "mine"});
        let (b, _) = build(0, &e, EventTime::from_millis(0), "other").unwrap();
        assert_eq!(b.json["eventID"], "mine");
    }

    #[test]
    fn windows_and_ocsf_times_go_where_their_profile_reads_them() {
        let w =
            serde_json::json!({"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational"});
        let (b, kind) = build(0, &w, EventTime::from_millis(1_000), "7").unwrap();
        assert_eq!(kind, ProfileKind::Windows);
        assert_eq!(b.json["@timestamp"], "1970-01-01T00:00:01.000Z");
        assert_eq!(b.json["EventRecordID"], "7");
        // The nxlog spelling of the same fields counts as present.
        let n = serde_json::json!({"EventID": 1, "Channel": "Security", "Hostname": "h", "RecordNumber": 3});
        let (b, _) = build(0, &n, EventTime::from_millis(1_000), "7").unwrap();
        assert!(b.json.get("EventRecordID").is_none() && b.json.get("Computer").is_none());
        let o = serde_json::json!({"class_uid": 3002, "metadata": {"product": {}}});
        let (b, _) = build(0, &o, EventTime::from_millis(1_000), "9").unwrap();
        assert_eq!(b.json["time"], 1_000);
        assert_eq!(b.json["metadata"]["uid"], "9");
    }

    #[test]
    fn kubernetes_events_without_an_audit_id_are_recognised_once_given_one() {
        let e = serde_json::json!({"verb": "get", "user": {"username": "x"},
            "objectRef": {"resource": "secrets"}});
        let (b, kind) = build(0, &e, EventTime::from_millis(2_000), "a-1").unwrap();
        assert_eq!(kind, ProfileKind::K8sAudit);
        assert_eq!(b.json["auditID"], "a-1");
        assert_eq!(
            b.json["requestReceivedTimestamp"],
            "1970-01-01T00:00:02.000Z"
        );
    }

    #[test]
    fn unknown_layouts_are_refused_with_a_reason() {
        let e = serde_json::json!({"something": "else"});
        let err = build(0, &e, EventTime::from_millis(0), "x").unwrap_err();
        assert!(err.contains("no source profile"), "{err}");
    }
}
