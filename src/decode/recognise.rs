//! Recognising an event's source profile from its top-level keys (see the table in
//! [`profile`](super::profile)).

use super::profile::{LINUX_SYSMON_CHANNEL, ProfileKind};

/// Recognises the profile of an event from its top-level keys; `None` when nothing fits.
pub fn detect(tape: &[simd_json::Node<'_>]) -> Option<ProfileKind> {
    let simd_json::Node::Object { len, .. } = tape.first()? else {
        return None;
    };
    #[derive(Default)]
    struct Seen {
        event_source: bool,
        event_name: bool,
        event_id: bool,
        channel: bool,
        nested_event: bool,
        linux_channel: bool,
        agent_object: bool,
        tool_object: bool,
        audit_id: bool,
        verb: bool,
        class_uid: bool,
        metadata: bool,
        timestamp: bool,
        ecs_object: bool,
    }
    let mut seen = Seen::default();
    let mut i = 1;
    for _ in 0..*len {
        let simd_json::Node::String(key) = tape[i] else {
            return None;
        };
        let value = &tape[i + 1];
        let is_object = matches!(value, simd_json::Node::Object { .. });
        match key {
            "eventSource" => seen.event_source = true,
            "eventName" => seen.event_name = true,
            "EventID" => seen.event_id = true,
            "Channel" => {
                seen.channel = true;
                seen.linux_channel =
                    matches!(value, simd_json::Node::String(v) if *v == LINUX_SYSMON_CHANNEL);
            }
            "SourceName" | "ProviderGuid" => seen.channel = true,
            "agent" => seen.agent_object = is_object,
            "tool" => seen.tool_object = is_object,
            "Event" => seen.nested_event = is_object,
            "auditID" => seen.audit_id = true,
            "verb" => seen.verb = true,
            "class_uid" => seen.class_uid = true,
            "metadata" => seen.metadata = true,
            "@timestamp" => seen.timestamp = true,
            "ecs" | "event" => seen.ecs_object |= is_object,
            _ => {}
        }
        i += 1 + super::fields::node_extent(value);
    }
    if seen.event_source && seen.event_name {
        Some(ProfileKind::CloudTrail)
    } else if seen.linux_channel {
        Some(ProfileKind::Linux)
    } else if (seen.event_id && seen.channel) || seen.nested_event {
        Some(ProfileKind::Windows)
    } else if seen.audit_id && seen.verb {
        Some(ProfileKind::K8sAudit)
    } else if seen.class_uid && seen.metadata {
        Some(ProfileKind::Ocsf)
    } else if seen.agent_object && seen.tool_object {
        Some(ProfileKind::Agent)
    } else if seen.timestamp && seen.ecs_object {
        Some(ProfileKind::Ecs)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(json: &str) -> Option<ProfileKind> {
        let mut b = json.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut b).unwrap();
        detect(&tape.0)
    }

    #[test]
    fn detects_each_builtin_layout() {
        assert_eq!(
            kind_of(
                r#"{"eventTime":"x","eventSource":"s3.amazonaws.com","eventName":"GetObject"}"#
            ),
            Some(ProfileKind::CloudTrail)
        );
        assert_eq!(
            kind_of(r#"{"EventID":4688,"Channel":"Security"}"#),
            Some(ProfileKind::Windows)
        );
        assert_eq!(
            kind_of(r#"{"Event":{"System":{"EventID":1}}}"#),
            Some(ProfileKind::Windows)
        );
        assert_eq!(
            kind_of(r#"{"auditID":"a","verb":"get","kind":"Event"}"#),
            Some(ProfileKind::K8sAudit)
        );
        assert_eq!(
            kind_of(r#"{"class_uid":3002,"metadata":{},"time":1}"#),
            Some(ProfileKind::Ocsf)
        );
        assert_eq!(
            kind_of(r#"{"@timestamp":"x","event":{"kind":"event"}}"#),
            Some(ProfileKind::Ecs)
        );
        assert_eq!(
            kind_of(r#"{"@timestamp":"x","Channel":"Linux-Sysmon/Operational","EventID":1}"#),
            Some(ProfileKind::Linux)
        );
        assert_eq!(
            kind_of(r#"{"timestamp":"x","agent":{"id":"a"},"tool":{"name":"t"}}"#),
            Some(ProfileKind::Agent)
        );
        // An ECS event has a Beats `agent` object but no `tool`.
        assert_eq!(
            kind_of(r#"{"@timestamp":"x","agent":{"type":"winlogbeat"},"event":{}}"#),
            Some(ProfileKind::Ecs)
        );
        assert_eq!(kind_of(r#"{"something":"else"}"#), None);
        assert_eq!(kind_of(r#"[1,2]"#), None);
    }
}
