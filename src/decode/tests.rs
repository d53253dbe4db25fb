use super::*;
use crate::decode::profile::GenericPaths;

fn schema(limits: DecodeLimits, forced: Option<ProfileKind>) -> Schema {
    let mut fields = FieldTable::default();
    fields.intern("eventName");
    fields.intern("CommandLine");
    let specs = ProfileKind::ALL
        .iter()
        .map(|k| ProfileSpec::builtin(*k, &GenericPaths::default()))
        .collect();
    let mut s = Schema::new(fields, specs, limits, forced);
    s.finish();
    s
}

fn decode(
    schema: &Schema,
    raw: &[u8],
) -> Result<(ProfileKind, EventTime, Option<String>, String), DecodeError> {
    let mut d = Decoder::new(schema);
    d.decode(schema, raw, raw.len(), |v| {
        let v = v?;
        Ok((v.kind, v.time, v.identity(schema), v.event_id(schema)))
    })
}

const CT: &[u8] = br#"{"eventTime":"2023-07-10T11:42:18Z","eventSource":"iam.amazonaws.com","eventName":"ListUsers","eventID":"e-1","userIdentity":{"arn":"arn:aws:iam::1:user/bert-jan"}}"#;

#[test]
fn cloudtrail_raw_and_logstash_flattened() {
    let s = schema(DecodeLimits::default(), None);
    let (kind, time, who, id) = decode(&s, CT).unwrap();
    assert_eq!(kind, ProfileKind::CloudTrail);
    assert_eq!(time.to_string(), "2023-07-10T11:42:18.000Z");
    assert_eq!(who.as_deref(), Some("arn:aws:iam::1:user/bert-jan"));
    assert_eq!(id, "e-1");
    // Logstash writes @timestamp instead of eventTime.
    let flat = br#"{"@timestamp":"2020-09-14T00:44:23.000Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","userIdentity":{"accessKeyId":"ASIA1"}}"#;
    let (_, time, who, id) = decode(&s, flat).unwrap();
    assert_eq!(time.to_string(), "2020-09-14T00:44:23.000Z");
    assert_eq!(who.as_deref(), Some("ASIA1"));
    assert!(
        id.starts_with("xxh3:"),
        "no eventID: the id is a hash of the bytes ({id})"
    );
}

#[test]
fn windows_identities_from_each_shipper_agree() {
    let s = schema(DecodeLimits::default(), None);
    let sysmon = br#"{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","@timestamp":"2020-09-21T19:26:06.000Z","User":"THESHIRE\\pgustavo","Hostname":"WKS5","RecordNumber":7}"#;
    let security = br#"{"EventID":4656,"Channel":"Security","@timestamp":"2020-08-07T14:32:57.000Z","SubjectDomainName":"THESHIRE","SubjectUserName":"pgustavo"}"#;
    let nested = br##"{"Event":{"System":{"EventID":4698,"Channel":"Security","Computer":"WKS5","EventRecordID":9,"TimeCreated":{"#attributes":{"SystemTime":"2020-09-21T07:15:27.705Z"}}},"EventData":{"SubjectDomainName":"THESHIRE","SubjectUserName":"PGustavo"}}}"##;
    let mut ids = Vec::new();
    for raw in [&sysmon[..], &security[..], &nested[..]] {
        let (kind, _, who, id) = decode(&s, raw).unwrap();
        assert_eq!(kind, ProfileKind::Windows);
        assert_eq!(who.as_deref(), Some("theshire\\pgustavo"));
        ids.push(id);
    }
    assert_eq!(ids[0], "WKS5/Microsoft-Windows-Sysmon/Operational/7");
    assert_eq!(ids[2], "WKS5/Security/9");
}

/// Bug: a shipper's `@timestamp` (when it read the event, often one value per batch) won over
/// the event's own clock, so a Sysmon chain read in one batch looked simultaneous or reversed.
#[test]
fn the_events_own_clock_wins_over_the_shippers_timestamp() {
    let s = schema(DecodeLimits::default(), None);
    let sysmon = br#"{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","@timestamp":"2020-09-21T19:26:09.000Z","UtcTime":"2020-09-21 19:26:06.123","TimeCreated":"2020-09-21T19:26:06.500Z","User":"W\\x"}"#;
    assert_eq!(
        decode(&s, sysmon).unwrap().1.to_string(),
        "2020-09-21T19:26:06.123Z"
    );
    let security = br#"{"EventID":4688,"Channel":"Security","@timestamp":"2020-09-21T19:26:09.000Z","TimeCreated":"2020-09-21T19:26:06.500Z","SubjectUserName":"u"}"#;
    assert_eq!(
        decode(&s, security).unwrap().1.to_string(),
        "2020-09-21T19:26:06.500Z"
    );
    let linux = br#"{"@timestamp":"2024-03-01T10:00:09Z","UtcTime":"2024-03-01 10:00:00.250","Channel":"Linux-Sysmon/Operational","EventID":1,"User":"deploy"}"#;
    assert_eq!(
        decode(&s, linux).unwrap().1.to_string(),
        "2024-03-01T10:00:00.250Z"
    );
}

#[test]
fn limits_are_checked_and_named() {
    let limits = DecodeLimits {
        max_event_bytes: 64,
        max_depth: 4,
        max_fields: 8,
    };
    let s = schema(limits, None);
    assert!(matches!(
        decode(&s, CT),
        Err(DecodeError::TooLarge { limit: 64, .. })
    ));
    let deep = br#"{"a":{"b":{"c":{"d":{"e":1}}}}}"#;
    assert_eq!(decode(&s, deep), Err(DecodeError::TooDeep { limit: 4 }));
    let wide = br#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8}"#;
    assert!(matches!(
        decode(&s, wide),
        Err(DecodeError::TooManyFields { limit: 8, .. })
    ));
}

#[test]
fn hostile_bytes_are_errors_not_panics() {
    let s = schema(DecodeLimits::default(), None);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        decode(&s, deep.as_bytes()),
        Err(DecodeError::TooLarge { .. } | DecodeError::TooDeep { .. })
    ));
    let deep_small = format!("{{\"a\":{}1{}}}", "[".repeat(5_000), "]".repeat(5_000));
    let big = schema(
        DecodeLimits {
            max_event_bytes: 1 << 20,
            ..DecodeLimits::default()
        },
        None,
    );
    assert_eq!(
        decode(&big, deep_small.as_bytes()),
        Err(DecodeError::TooDeep { limit: 64 })
    );
    assert_eq!(
        decode(&s, b"{\"eventName\":\"\xff\xfe\"}"),
        Err(DecodeError::InvalidUtf8)
    );
    assert!(matches!(
        decode(&s, br#"{"eventName":"ListUs"#),
        Err(DecodeError::InvalidJson(_))
    ));
    assert!(matches!(decode(&s, b""), Err(DecodeError::InvalidJson(_))));
    assert_eq!(decode(&s, b"[1,2,3]"), Err(DecodeError::NotAnObject));
    assert_eq!(decode(&s, b"\"text\""), Err(DecodeError::NotAnObject));
    assert_eq!(
        decode(&s, br#"{"hello":"world"}"#),
        Err(DecodeError::UnknownProfile)
    );
}

#[test]
fn wrong_types_where_a_time_is_expected() {
    let s = schema(DecodeLimits::default(), None);
    let array = br#"{"eventTime":["2023-07-10T11:42:18Z"],"eventSource":"x","eventName":"y"}"#;
    let err = decode(&s, array).unwrap_err();
    assert_eq!(
        err,
        DecodeError::BadTime {
            field: "eventTime".into(),
            found: "an array".into()
        }
    );
    assert!(err.to_string().contains("eventTime"), "{err}");
    let text = br#"{"eventTime":"yesterday","eventSource":"x","eventName":"y"}"#;
    assert!(matches!(decode(&s, text), Err(DecodeError::BadTime { .. })));
    let missing = br#"{"eventSource":"x","eventName":"y"}"#;
    assert!(matches!(
        decode(&s, missing),
        Err(DecodeError::NoTime {
            profile: "cloudtrail",
            ..
        })
    ));
    let boolean = br#"{"eventTime":true,"eventSource":"x","eventName":"y"}"#;
    assert!(matches!(
        decode(&s, boolean),
        Err(DecodeError::BadTime { .. })
    ));
}

#[test]
fn forced_profile_skips_detection() {
    let s = schema(DecodeLimits::default(), Some(ProfileKind::Ocsf));
    let (kind, time, ..) = decode(&s, br#"{"time":1688989338000,"anything":1}"#).unwrap();
    assert_eq!(kind, ProfileKind::Ocsf);
    assert_eq!(time.to_string(), "2023-07-10T11:42:18.000Z");
}

#[test]
fn buffers_are_reused_across_events_of_different_sizes() {
    let s = schema(DecodeLimits::default(), None);
    let mut d = Decoder::new(&s);
    let long = format!(
        r#"{{"eventTime":"2023-07-10T11:42:18Z","eventSource":"x","eventName":"{}","eventID":"long"}}"#,
        "A".repeat(10_000)
    );
    for raw in [CT, long.as_bytes(), CT, b"{bad", CT] {
        let r = d.decode(&s, raw, raw.len(), |v| v.map(|v| v.time));
        if raw == CT {
            assert_eq!(r.unwrap().to_string(), "2023-07-10T11:42:18.000Z");
        }
    }
}

#[test]
fn linux_sysmon_time_id_and_identity() {
    let s = schema(DecodeLimits::default(), None);
    let ev = br#"{"@timestamp":"2024-03-01T10:00:00Z","Channel":"Linux-Sysmon/Operational","EventID":1,"Hostname":"web-1","RecordNumber":"4411","User":"deploy","Image":"/usr/bin/cat","CommandLine":"cat /home/deploy/.aws/credentials","auid":"1001","uid":"0"}"#;
    let (kind, time, who, id) = decode(&s, ev).unwrap();
    assert_eq!(kind, ProfileKind::Linux);
    assert_eq!(time.to_string(), "2024-03-01T10:00:00.000Z");
    assert_eq!(who.as_deref(), Some("deploy"));
    assert_eq!(id, "web-1/4411");
    // Without `User`, the audit login uid names the person behind sudo, before the uid.
    let audit = br#"{"@timestamp":"2024-03-01T10:00:01Z","Channel":"Linux-Sysmon/Operational","EventID":11,"Hostname":"web-1","RecordNumber":"4412","auid":"1001","uid":"0"}"#;
    assert_eq!(decode(&s, audit).unwrap().2.as_deref(), Some("1001"));
    let uid_only = br#"{"@timestamp":"2024-03-01T10:00:02Z","Channel":"Linux-Sysmon/Operational","EventID":3,"Hostname":"web-1","RecordNumber":"4413","uid":"0"}"#;
    assert_eq!(decode(&s, uid_only).unwrap().2.as_deref(), Some("0"));
    // The Windows Sysmon channel is still Windows.
    let win = br#"{"@timestamp":"2024-03-01T10:00:00Z","Channel":"Microsoft-Windows-Sysmon/Operational","EventID":1}"#;
    assert_eq!(decode(&s, win).unwrap().0, ProfileKind::Windows);
}

#[test]
fn agent_tool_calls_time_id_and_identity() {
    let s = schema(DecodeLimits::default(), None);
    let ev = br#"{"timestamp":"2024-03-01T10:00:00Z","event_type":"tool_call","event_id":"tc-1","agent":{"id":"agent-7","name":"ops-copilot","session":"s-123","on_behalf_of":"alice@example.com"},"tool":{"name":"aws_secretsmanager_get_secret_value","arguments":{"SecretId":"prod/db/password"}},"target":{"resource":"prod/db/password"},"outcome":"success"}"#;
    let (kind, time, who, id) = decode(&s, ev).unwrap();
    assert_eq!(kind, ProfileKind::Agent);
    assert_eq!(time.to_string(), "2024-03-01T10:00:00.000Z");
    assert_eq!(who.as_deref(), Some("agent-7"));
    assert_eq!(id, "tc-1");
    let no_time = br#"{"agent":{"id":"a"},"tool":{"name":"t"}}"#;
    assert!(matches!(
        decode(&s, no_time),
        Err(DecodeError::NoTime { .. })
    ));
}

#[test]
fn a_session_with_or_without_session_context_is_its_role() {
    let s = schema(DecodeLimits::default(), None);
    let with = br#"{"eventTime":"2024-03-01T10:00:00Z","eventSource":"secretsmanager.amazonaws.com","eventName":"GetSecretValue","eventID":"e-1","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/ops/alice","accessKeyId":"ASIA1","sessionContext":{"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::1:role/team/ops"}}}}"#;
    let without = br#"{"eventTime":"2024-03-01T10:00:01Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"e-2","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/ops/alice","accessKeyId":"ASIA1"}}"#;
    for raw in [&with[..], &without[..]] {
        assert_eq!(
            decode(&s, raw).unwrap().2.as_deref(),
            Some("arn:aws:iam::1:role/ops")
        );
    }
}

#[test]
fn linux_login_user_survives_sudo() {
    let s = schema(DecodeLimits::default(), None);
    // auditbeat (ECS): `user.name` is root under sudo, `user.audit.name` the login user.
    let beat = |user: &str, audit: &str| {
        format!(
            r#"{{"@timestamp":"2024-03-01T10:00:00Z","event":{{"module":"auditd"}},"user":{{"name":"{user}","id":"0","audit":{{"id":"{audit}","name":"alice"}}}}}}"#
        )
    };
    assert_eq!(
        decode(&s, beat("root", "1000").as_bytes())
            .unwrap()
            .2
            .as_deref(),
        Some("alice")
    );
    // A daemon: no login user, the acting user.
    let daemon = br#"{"@timestamp":"2024-03-01T10:00:00Z","event":{"module":"auditd"},"user":{"name":"www-data","audit":{"id":"unset","name":"unset"}}}"#;
    assert_eq!(decode(&s, daemon).unwrap().2.as_deref(), Some("www-data"));
    // auditd's enriched format names the login user in `AUID`; an unset login uid is skipped.
    let enriched = br#"{"@timestamp":"2024-03-01T10:00:00Z","Channel":"Linux-Sysmon/Operational","EventID":1,"Hostname":"web-1","RecordNumber":"1","User":"root","AUID":"alice","auid":"1000","uid":"0"}"#;
    assert_eq!(decode(&s, enriched).unwrap().2.as_deref(), Some("alice"));
    let cron = br#"{"@timestamp":"2024-03-01T10:00:00Z","Channel":"Linux-Sysmon/Operational","EventID":1,"Hostname":"web-1","RecordNumber":"2","auid":"4294967295","uid":"0"}"#;
    assert_eq!(decode(&s, cron).unwrap().2.as_deref(), Some("0"));
}

#[test]
fn windows_domain_spellings_from_each_shipper_are_one_account() {
    let s = schema(DecodeLimits::default(), None);
    let sysmon = br#"{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","@timestamp":"2020-09-21T19:26:06.000Z","User":"CONTOSO\\Alice"}"#;
    let dns = br#"{"EventID":4688,"Channel":"Security","@timestamp":"2020-09-21T19:26:07.000Z","SubjectDomainName":"contoso.local","SubjectUserName":"alice"}"#;
    let upn = br#"{"EventID":4624,"Channel":"Security","@timestamp":"2020-09-21T19:26:08.000Z","TargetDomainName":"-","TargetUserName":"-","User":"alice@CONTOSO.LOCAL"}"#;
    let ecs = br#"{"@timestamp":"2020-09-21T19:26:09.000Z","event":{"code":"4688"},"user":{"domain":"CONTOSO","name":"ALICE"}}"#;
    for raw in [&sysmon[..], &dns[..], &upn[..], &ecs[..]] {
        assert_eq!(
            decode(&s, raw).unwrap().2.as_deref(),
            Some("contoso\\alice")
        );
    }
}

fn key_owner(schema: &Schema, raw: &[u8]) -> (Option<crate::vocab::IdentityRef>, Option<Box<str>>) {
    let mut d = Decoder::new(schema);
    d.decode(schema, raw, raw.len(), |v| {
        let v = v.unwrap();
        let credential = v.identity_ref(schema).and_then(|i| i.credential);
        (v.key_owner(schema, |_| true), credential)
    })
}

#[test]
fn events_that_show_who_owns_their_credential() {
    let s = schema(DecodeLimits::default(), None);
    let named = br#"{"eventTime":"2024-03-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","userIdentity":{"arn":"arn:aws:iam::1:user/alice","accessKeyId":"AKIA1"}}"#;
    let owner = key_owner(&s, named).0.unwrap();
    assert_eq!(&*owner.principal, "arn:aws:iam::1:user/alice");
    assert_eq!(owner.credential.as_deref(), Some("AKIA1"));
    // The key alone, or a bare principal id, shows nobody.
    let key_only = br#"{"eventTime":"2024-03-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","userIdentity":{"accessKeyId":"AKIA1"}}"#;
    assert_eq!(key_owner(&s, key_only).0, None);
    let principal_id = br#"{"eventTime":"2024-03-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","userIdentity":{"principalId":"AIDA1","accessKeyId":"AKIA1"}}"#;
    assert_eq!(key_owner(&s, principal_id).0, None);
    // Linux: the login user acting as itself shows who the login is; under sudo it does not,
    // but still names the login as its credential.
    let login = br#"{"@timestamp":"2024-03-01T10:00:00Z","Channel":"Linux-Sysmon/Operational","EventID":1,"Hostname":"web-1","RecordNumber":"1","User":"alice","auid":"1000","uid":"1000"}"#;
    let owner = key_owner(&s, login).0.unwrap();
    assert_eq!(&*owner.principal, "alice");
    assert_eq!(owner.credential.as_deref(), Some("web-1/auid=1000"));
    let sudo = br#"{"@timestamp":"2024-03-01T10:00:01Z","Channel":"Linux-Sysmon/Operational","EventID":1,"Hostname":"web-1","RecordNumber":"2","User":"root","auid":"1000","uid":"0"}"#;
    let (owner, credential) = key_owner(&s, sudo);
    assert_eq!(owner, None);
    assert_eq!(credential.as_deref(), Some("web-1/auid=1000"));
    let daemon = br#"{"@timestamp":"2024-03-01T10:00:01Z","Channel":"Linux-Sysmon/Operational","EventID":1,"Hostname":"web-1","RecordNumber":"3","User":"root","auid":"4294967295","uid":"0"}"#;
    assert_eq!(key_owner(&s, daemon).1, None, "no login, no credential");
}
