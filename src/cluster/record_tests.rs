use proptest::prelude::*;

use super::*;
use crate::matcher::tests::ruleset;

const RULES: &str = r#"
title: read
name: read
detection: {sel: {eventName: GetSecretValue}, condition: sel}
---
title: enum
name: enum
detection: {sel: {eventName: ListUsers}, condition: sel}
---
title: chain
correlation:
  type: temporal_ordered
  rules: [read, enum]
  group-by: [userIdentity.arn]
  timespan: 10m
"#;

fn origin() -> Origin {
    Origin {
        topic: "cloudtrail".into(),
        partition: 3,
        offset: 41,
        file: false,
    }
}

fn hit(group: &str, id: &str, details: &[(DetailKind, &str)]) -> Hit {
    Hit {
        target: Target::Correlation(0),
        stages: 0b10,
        group: group.into(),
        value: None,
        shard_key: 0,
        event: EventRef {
            time: EventTime(1_700_000_000_123_456_789),
            key: 77,
            pos: Position {
                source: 9,
                offset: 41,
            },
            id: id.into(),
            parts: None,
            actor: Some("arn:aws:iam::1:user/alice".into()),
            details: EventDetails::new(details.iter().copied()).map(Arc::new),
        },
        touched: vec![(TouchKind::Secret, "prod/db".into())],
    }
}

fn carrier() -> Position {
    Position {
        source: 2,
        offset: 1000,
    }
}

fn read_back(bytes: &[u8], rules: &RuleSet) -> Result<Hit, RecordError> {
    let ours = RulesFingerprint::of(rules);
    match Record::parse(bytes)? {
        Record::Hit(h) => h.into_hit(rules, ours, carrier(), |g, _| g.len() as u64),
        other => panic!("not a hit: {other:?}"),
    }
}

#[test]
fn a_hit_travels_whole_and_lands_at_the_hits_topic_position() {
    let rules = ruleset(RULES);
    let sent = hit(
        "arn:aws:iam::1:user/alice",
        "ev-1",
        &[
            (DetailKind::Operation, "ListUsers"),
            (DetailKind::SrcIp, "203.0.113.9"),
        ],
    );
    let record = HitRecord::of(&sent, origin(), RulesFingerprint::of(&rules)).unwrap();
    let got = read_back(&Record::Hit(record).to_bytes(), &rules).unwrap();
    let with_origin = EventDetails::new([
        (DetailKind::Origin, "kafka:41:3:cloudtrail"),
        (DetailKind::Operation, "ListUsers"),
        (DetailKind::SrcIp, "203.0.113.9"),
    ]);
    let expected = Hit {
        shard_key: sent.group.len() as u64,
        event: EventRef {
            pos: carrier(),
            details: with_origin.map(Arc::new),
            ..sent.event.clone()
        },
        ..sent
    };
    assert_eq!(got, expected);
    let details = got.event.details.unwrap();
    assert_eq!(details.origin(), Some((false, "cloudtrail", 3, 41)));
}

#[test]
fn a_record_of_other_rules_or_naming_no_rule_is_refused_with_the_reason() {
    let rules = ruleset(RULES);
    let sent = hit("g", "ev", &[]);
    let other = RulesFingerprint(1);
    let bytes = Record::Hit(HitRecord::of(&sent, origin(), other).unwrap()).to_bytes();
    let err = read_back(&bytes, &rules).unwrap_err();
    assert!(matches!(err, RecordError::OtherRules { .. }), "{err}");
    assert!(err.to_string().contains("same rules"), "{err}");

    let mut record = HitRecord::of(&sent, origin(), RulesFingerprint::of(&rules)).unwrap();
    record.target = WireTarget::Correlation(5);
    let err = read_back(&Record::Hit(record).to_bytes(), &rules).unwrap_err();
    assert_eq!(err, RecordError::NoSuchTarget("Correlation(5)".into()));
}

#[test]
fn hostile_records_are_refused_not_guessed_at() {
    let rules = ruleset(RULES);
    let fp = RulesFingerprint::of(&rules);
    let good = HitRecord::of(&hit("g", "ev", &[]), origin(), fp).unwrap();
    let cases: Vec<(HitRecord, &str)> = vec![
        (
            HitRecord {
                group: "x".repeat(MAX_TEXT + 1),
                ..good.clone()
            },
            "group",
        ),
        (
            HitRecord {
                group: format!("a{IDENTITY_MARK}"),
                ..good.clone()
            },
            "unresolved identity",
        ),
        (
            HitRecord {
                time: i64::MAX,
                ..good.clone()
            },
            "not an instant",
        ),
        (
            HitRecord {
                details: vec![(DetailKind::User, "u".into()); DETAILS_PER_EVENT + 1],
                ..good.clone()
            },
            "details",
        ),
    ];
    for (record, why) in cases {
        let err = read_back(&Record::Hit(record).to_bytes(), &rules).unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    for (bytes, why) in [
        (b"{\"kind\":\"hit\"".to_vec(), "not a record"),
        (b"{\"kind\":\"nope\"}".to_vec(), "not a record"),
        (vec![b' '; MAX_RECORD_BYTES + 1], "bound"),
    ] {
        let err = Record::parse(&bytes).unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    let mut v2 = serde_json::to_value(Record::Hit(good)).unwrap();
    v2["v"] = 2.into();
    let err = Record::parse(v2.to_string().as_bytes()).unwrap_err();
    assert_eq!(err, RecordError::Version(2));
    let mut extra = serde_json::to_value(Record::Stamp(Stamp {
        v: VERSION,
        topic: "t".into(),
        partition: 0,
        frontier: 5,
    }))
    .unwrap();
    extra["surprise"] = 1.into();
    assert!(Record::parse(extra.to_string().as_bytes()).is_err());
}

#[test]
fn a_nested_finding_does_not_travel() {
    let rules = ruleset(RULES);
    let mut nested = hit("g", "ev", &[]);
    nested.event.parts = Some(Arc::from(vec![(nested.event.clone(), 0u32)]));
    assert_eq!(
        HitRecord::of(&nested, origin(), RulesFingerprint::of(&rules)),
        Err(RecordError::Nested)
    );
}

#[test]
fn a_link_travels_whole() {
    let link = Link {
        time: EventTime(5_000_000_123),
        key: 9,
        kind: LinkKind::AssumeRole,
        minted: vec![
            "ASIAEXAMPLE".into(),
            "arn:aws:sts::1:assumed-role/r/s".into(),
        ],
        caller: IdentityRef {
            principal: "arn:aws:iam::1:user/alice".into(),
            credential: Some("AKIAEXAMPLE".into()),
            session: None,
        },
        lifetime: Span::from_secs(3600),
        pos: Some(Position {
            source: 1,
            offset: 2,
        }),
    };
    let bytes = Record::Link(LinkRecord::of(&link, origin())).to_bytes();
    let Record::Link(back) = Record::parse(&bytes).unwrap() else {
        panic!("not a link");
    };
    assert_eq!(back.into_link(None).unwrap(), Link { pos: None, ..link });
}

proptest! {
    #[test]
    fn any_hit_within_bounds_reads_back_as_written(
        group in "[a-zA-Z0-9:/@._ \\x{1f}-]{0,80}",
        id in "\\PC{1,40}",
        value in proptest::option::of("\\PC{0,30}"),
        stages: u64,
        time in (i64::MIN + 1)..i64::MAX,
        key: u64,
        op in "\\PC{0,300}",
    ) {
        let rules = ruleset(RULES);
        let mut sent = hit(&group, &id, &[(DetailKind::Operation, &op)]);
        sent.value = value.map(Into::into);
        sent.stages = stages;
        sent.event.time = EventTime(time);
        sent.event.key = key;
        let record = HitRecord::of(&sent, origin(), RulesFingerprint::of(&rules)).unwrap();
        let got = read_back(&Record::Hit(record).to_bytes(), &rules).unwrap();
        prop_assert_eq!(&got.group, &sent.group);
        prop_assert_eq!(&got.value, &sent.value);
        prop_assert_eq!(got.stages, sent.stages);
        prop_assert_eq!(&got.event.id, &sent.event.id);
        prop_assert_eq!(got.event.time, sent.event.time);
        prop_assert_eq!(got.event.key, sent.event.key);
        let facts = |d: &Option<Arc<EventDetails>>| -> Vec<(DetailKind, String)> {
            d.iter()
                .flat_map(|d| d.iter())
                .filter(|(k, _)| *k != DetailKind::Origin)
                .map(|(k, v)| (k, v.to_string()))
                .collect()
        };
        prop_assert_eq!(facts(&got.event.details), facts(&sent.event.details));
        let details = got.event.details.clone().unwrap();
        prop_assert_eq!(details.origin(), Some((false, "cloudtrail", 3, 41)));
    }
}
