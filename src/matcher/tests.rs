use std::path::Path;

use super::*;
use crate::decode::Decoder;
use crate::sigma::{self, LoadErrors, LoadOptions};

pub(crate) fn ruleset(yaml: &str) -> RuleSet {
    compile_text("test.yml", yaml, &CompileOptions::default()).unwrap()
}

/// Parses `yaml` as the rule file `name` (it must parse and resolve) and compiles it with
/// `opts`: the load's outcome, for tests of what fails it.
pub(crate) fn compile_text(
    name: &str,
    yaml: &str,
    opts: &CompileOptions,
) -> Result<RuleSet, LoadErrors> {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    sigma::parse_text(
        Path::new(name),
        yaml,
        &LoadOptions::default(),
        &mut rules,
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    let catalog = sigma::resolve(rules, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    compile(&catalog, opts)
}

/// Titles of the detections `event` matches.
pub(crate) fn matched(rules: &RuleSet, event: &str) -> Vec<String> {
    let mut decoder = Decoder::new(&rules.schema);
    let mut matcher = Matcher::new(rules);
    decoder.decode(&rules.schema, event.as_bytes(), event.len(), |view| {
        let view = view.unwrap();
        let mut out = Vec::new();
        matcher.matches(rules, &view, &mut out);
        out.iter()
            .map(|&d| rules.detection_meta(d).title.clone())
            .collect()
    })
}

/// How many detections `event` matches, and how many were evaluated in full.
fn matches_and_candidates(rules: &RuleSet, event: &str) -> (usize, usize) {
    let mut decoder = Decoder::new(&rules.schema);
    let mut matcher = Matcher::new(rules);
    decoder.decode(&rules.schema, event.as_bytes(), event.len(), |view| {
        let mut out = Vec::new();
        matcher.matches(rules, &view.unwrap(), &mut out);
        (out.len(), matcher.last_candidates())
    })
}

fn one(detection: &str, event: &str) -> bool {
    let yaml = format!("title: t\nlogsource:\n  product: aws\ndetection:\n{detection}");
    let rules = ruleset(&yaml);
    !matched(&rules, event).is_empty()
}

const CT: &str = r#"{"eventVersion":"1.08","eventTime":"2023-07-10T11:42:18Z","eventSource":"secretsmanager.amazonaws.com","eventName":"GetSecretValue","userAgent":"aws-cli/2.0 Python/3.8","sourceIPAddress":"10.1.2.3","requestParameters":{"secretId":"prod/db/Password"},"userIdentity":{"arn":"arn:aws:iam::1:user/bert-jan","type":"IAMUser"},"resources":[{"ARN":"arn:a"},{"ARN":"arn:b"}],"readOnly":true,"count":42}"#;

#[test]
fn equality_is_case_insensitive_and_cased_is_not() {
    assert!(one(
        "  sel:\n    eventName: getsecretvalue\n  condition: sel\n",
        CT
    ));
    assert!(!one(
        "  sel:\n    eventName|cased: getsecretvalue\n  condition: sel\n",
        CT
    ));
    assert!(one(
        "  sel:\n    eventName|cased: GetSecretValue\n  condition: sel\n",
        CT
    ));
}

#[test]
fn string_shapes_and_wildcards() {
    assert!(one(
        "  sel:\n    userAgent|startswith: AWS-CLI\n  condition: sel\n",
        CT
    ));
    assert!(one(
        "  sel:\n    userAgent|endswith: 3.8\n  condition: sel\n",
        CT
    ));
    assert!(one(
        "  sel:\n    userAgent|contains: python\n  condition: sel\n",
        CT
    ));
    assert!(one(
        "  sel:\n    userAgent: 'aws-cli/*python/?.?'\n  condition: sel\n",
        CT
    ));
    assert!(!one(
        "  sel:\n    userAgent: 'aws-cli/*ruby*'\n  condition: sel\n",
        CT
    ));
    assert!(one(
        "  sel:\n    requestParameters.secretId|contains|all: [prod, password]\n  condition: sel\n",
        CT
    ));
    assert!(!one(
        "  sel:\n    requestParameters.secretId|contains|all: [prod, staging]\n  condition: sel\n",
        CT
    ));
}

#[test]
fn lists_in_events_match_any_element() {
    assert!(one(
        "  sel:\n    resources.ARN: arn:b\n  condition: sel\n",
        CT
    ));
    assert!(!one(
        "  sel:\n    resources.ARN: arn:c\n  condition: sel\n",
        CT
    ));
}

#[test]
fn numbers_booleans_cidr_exists_regex() {
    assert!(one("  sel:\n    count: 42\n  condition: sel\n", CT));
    assert!(one("  sel:\n    count|gt: 41\n  condition: sel\n", CT));
    assert!(!one("  sel:\n    count|lt: 42\n  condition: sel\n", CT));
    assert!(one("  sel:\n    count|lte: 42\n  condition: sel\n", CT));
    assert!(one("  sel:\n    readOnly: true\n  condition: sel\n", CT));
    assert!(one(
        "  sel:\n    sourceIPAddress|cidr: 10.0.0.0/8\n  condition: sel\n",
        CT
    ));
    assert!(!one(
        "  sel:\n    sourceIPAddress|cidr: 192.168.0.0/16\n  condition: sel\n",
        CT
    ));
    assert!(one(
        "  sel:\n    errorCode|exists: false\n  condition: sel\n",
        CT
    ));
    assert!(one(
        "  sel:\n    eventName|exists: true\n  condition: sel\n",
        CT
    ));
    assert!(one("  sel:\n    errorCode: null\n  condition: sel\n", CT));
    assert!(one(
        "  sel:\n    eventName|re: '^Get[A-Z]'\n  condition: sel\n",
        CT
    ));
    // `re` is case-sensitive unless `i` is given.
    assert!(!one(
        "  sel:\n    eventName|re: '^get'\n  condition: sel\n",
        CT
    ));
    assert!(one(
        "  sel:\n    eventName|re|i: '^get'\n  condition: sel\n",
        CT
    ));
}

#[test]
fn conditions_with_not_and_of() {
    let d = "  sel:\n    eventSource: secretsmanager.amazonaws.com\n  filter:\n    eventName: ListSecrets\n  condition: sel and not filter\n";
    assert!(one(d, CT));
    let d = "  sel_a:\n    eventName: nope\n  sel_b:\n    eventName: GetSecretValue\n  condition: 1 of sel_*\n";
    assert!(one(d, CT));
    let d = "  sel_a:\n    eventName: nope\n  sel_b:\n    eventName: GetSecretValue\n  condition: all of sel_*\n";
    assert!(!one(d, CT));
    // A rule with only a negation has no prefilter literal and must still run.
    assert!(one(
        "  filter:\n    eventName: ListSecrets\n  condition: not filter\n",
        CT
    ));
}

#[test]
fn fieldref_and_keywords() {
    let ev = r#"{"eventSource":"s","eventName":"x","eventTime":"2023-07-10T11:42:18Z","a":"Same","b":"same"}"#;
    assert!(one("  sel:\n    a|fieldref: b\n  condition: sel\n", ev));
    assert!(!one(
        "  sel:\n    a|fieldref|cased: b\n  condition: sel\n",
        ev
    ));
    assert!(one(
        "  keywords:\n    - 'prod/db'\n  condition: keywords\n",
        CT
    ));
    assert!(
        !one(
            "  keywords:\n    - 'eventName'\n  condition: keywords\n",
            CT
        ),
        "keys are not values"
    );
}

#[test]
fn logsource_product_selects_profiles() {
    let rules = ruleset(
        "title: win\nlogsource:\n  product: windows\ndetection:\n  sel:\n    eventName: GetSecretValue\n  condition: sel\n",
    );
    assert!(
        matched(&rules, CT).is_empty(),
        "a Windows rule never runs on CloudTrail events"
    );
}

#[test]
fn windows_guards_and_both_layouts() {
    let rule = "title: net\nlogsource:\n  product: windows\n  category: process_creation\ndetection:\n  sel:\n    Image|endswith: '\\net.exe'\n  condition: sel\n";
    let rules = ruleset(rule);
    let flat = r#"{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","@timestamp":"2020-09-21T19:26:06.000Z","Image":"C:\\Windows\\System32\\net.exe"}"#;
    assert_eq!(matched(&rules, flat), vec!["net"]);
    let other_id = flat.replace("\"EventID\":1", "\"EventID\":5");
    assert!(
        matched(&rules, &other_id).is_empty(),
        "process_creation is Sysmon event 1 only"
    );
    let nested = r##"{"Event":{"System":{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","TimeCreated":{"#attributes":{"SystemTime":"2020-09-21T19:26:06.000Z"}}},"EventData":{"Image":"C:\\Windows\\System32\\net.exe"}}}"##;
    assert_eq!(matched(&rules, nested), vec!["net"]);
    let nested_text = nested.replace(
        "\"EventID\":1",
        "\"EventID\":{\"#attributes\":{\"Qualifiers\":0},\"#text\":1}",
    );
    assert_eq!(matched(&rules, &nested_text), vec!["net"]);
    let string_id = flat.replace("\"EventID\":1", "\"EventID\":\"1\"");
    assert_eq!(matched(&rules, &string_id), vec!["net"]);
}

#[test]
fn prefilter_skips_rules_whose_literals_are_absent() {
    let mut yaml = String::new();
    for i in 0..50 {
        yaml.push_str(&format!(
            "title: r{i}\nlogsource:\n  product: aws\ndetection:\n  sel:\n    eventName: Name{i}\n  condition: sel\n---\n"
        ));
    }
    yaml.push_str("title: hit\nlogsource:\n  product: aws\ndetection:\n  sel:\n    eventName: GetSecretValue\n  condition: sel\n");
    let rules = ruleset(&yaml);
    let mut decoder = Decoder::new(&rules.schema);
    let mut matcher = Matcher::new(&rules);
    let evaluated = decoder.decode(&rules.schema, CT.as_bytes(), CT.len(), |view| {
        let mut out = Vec::new();
        matcher.matches(&rules, &view.unwrap(), &mut out);
        assert_eq!(out.len(), 1);
        matcher.last_candidates()
    });
    assert_eq!(
        evaluated, 1,
        "only the rule whose literal occurs is evaluated"
    );
}

/// A rule whose selections must all hold is a candidate only when each selection's literal
/// occurs (on fields scanned anyway: here another rule's makes `CommandLine` one), not whenever
/// its most selective one does: SigmaHQ's
/// `Image|endswith: \powershell.exe` plus `CommandLine|contains: ...` rules used to be
/// evaluated on every PowerShell start.
#[test]
fn every_clause_of_a_conjunction_must_be_hit_to_make_a_candidate() {
    let yaml = "title: enc\nlogsource:\n  product: windows\ndetection:\n  img:\n    Image|endswith: '\\powershell.exe'\n  cli:\n    CommandLine|contains: ' -enc '\n  condition: img and cli\n---\ntitle: other\nlogsource:\n  product: windows\ndetection:\n  sel:\n    CommandLine|contains: mimikatz\n  condition: sel\n";
    let rules = ruleset(yaml);
    let ev = |cmd: &str| {
        format!(
            r#"{{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","@timestamp":"2024-01-01T00:00:00Z","Image":"C:\\Windows\\powershell.exe","CommandLine":"{cmd}"}}"#
        )
    };
    let candidates = |event: &str| matches_and_candidates(&rules, event);
    assert_eq!(candidates(&ev("powershell -nop -w hidden")), (0, 0));
    assert_eq!(candidates(&ev("powershell -enc AAAA")), (1, 1));
    // Both clauses are necessary, and so either one alone decides nothing.
    let d = (0..rules.detections.len())
        .find(|&d| rules.detection_meta(d as u32).title == "enc")
        .unwrap();
    assert!(rules.plans.iter().any(|p| p.full_mask[d] == 0b11));
}

/// Fields whose literals no necessary set holds are scanned only when a candidate asks: the
/// answer must be the same as an eager scan's, in both directions, and for a second test on the
/// same field in the same event.
#[test]
fn lazily_scanned_fields_answer_contains_tests_exactly() {
    let filter = "  sel:\n    eventName: GetSecretValue\n  filter:\n    userAgent|contains: '{}'\n  condition: sel and not filter\n";
    assert!(
        one(&filter.replace("{}", "terraform"), CT),
        "no terraform in the user agent"
    );
    assert!(
        !one(&filter.replace("{}", "aws-CLI"), CT),
        "aws-cli is in the user agent"
    );
    let both = "  sel:\n    eventName: GetSecretValue\n  a:\n    userAgent|contains: python\n  b:\n    userAgent|contains: 'cli/2'\n  condition: sel and a and b\n";
    assert!(one(both, CT));
    let plan_rules = ruleset(&format!(
        "title: t\nlogsource:\n  product: aws\ndetection:\n{}",
        filter.replace("{}", "terraform")
    ));
    let plan = plan_rules
        .whole_plan(
            plan_rules
                .schema
                .profile(ProfileKind::CloudTrail)
                .unwrap()
                .0,
        )
        .unwrap();
    let agent = plan_rules.schema.fields.get("userAgent").unwrap();
    let scan = plan.scans.iter().find(|s| s.slot == agent).unwrap();
    assert!(
        !scan.eager,
        "the filter's literal is not necessary: scanned on demand"
    );
}

/// Regression: `all` used to require every variant `windash` made of a value (five spellings
/// of each dash, all at once), so `|windash|contains|all` could never match.
#[test]
fn all_with_windash_requires_each_written_value_not_each_variant() {
    let yaml = "title: t\nlogsource:\n  product: windows\ndetection:\n  sel:\n    CommandLine|windash|contains|all: ['-a', '-b']\n  condition: sel\n";
    let rules = ruleset(yaml);
    let ev = |cmd: &str| {
        format!(
            r#"{{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","@timestamp":"2024-01-01T00:00:00Z","CommandLine":"{cmd}"}}"#
        )
    };
    assert_eq!(matched(&rules, &ev("tool /a -b")), vec!["t".to_string()]);
    assert!(matched(&rules, &ev("tool /a")).is_empty());
}

/// Regression: keyword values with wildcards inside and keyword `re` used to fail the load.
#[test]
fn keyword_wildcards_and_regexes_search_every_value() {
    let yaml = "title: t\nlogsource:\n  product: aws\ndetection:\n  kw:\n    - 'get*value'\n  re:\n    '|re': 'bert-[a-z]+$'\n  condition: kw and re\n";
    let rules = ruleset(yaml);
    assert_eq!(matched(&rules, CT), vec!["t".to_string()]);
}

#[test]
fn linux_categories_guard_sysmon_event_ids() {
    let yaml = "title: t\nlogsource:\n  product: linux\n  category: process_creation\ndetection:\n  sel:\n    CommandLine|contains: '.aws/credentials'\n  condition: sel\n";
    let rules = ruleset(yaml);
    let ev = |id: u32| {
        format!(
            r#"{{"@timestamp":"2024-01-01T00:00:00Z","Channel":"Linux-Sysmon/Operational","EventID":{id},"Hostname":"h","RecordNumber":"1","CommandLine":"cat ~/.aws/credentials"}}"#
        )
    };
    assert_eq!(matched(&rules, &ev(1)), vec!["t".to_string()]);
    assert!(
        matched(&rules, &ev(11)).is_empty(),
        "a file event is not a process creation"
    );
}

#[test]
fn agent_tool_call_rules_run_only_on_tool_calls() {
    let yaml = "title: t\nlogsource:\n  product: ai_agent\n  service: tool_calls\ndetection:\n  sel:\n    tool.name|contains: secret\n  condition: sel\n";
    let rules = ruleset(yaml);
    let ev = |kind: &str| {
        format!(
            r#"{{"timestamp":"2024-01-01T00:00:00Z","event_type":"{kind}","event_id":"1","agent":{{"id":"a"}},"tool":{{"name":"get_secret"}}}}"#
        )
    };
    assert_eq!(matched(&rules, &ev("tool_call")), vec!["t".to_string()]);
    assert!(matched(&rules, &ev("tool_result")).is_empty());
}

/// Issue 15: an event whose source address is written IPv4-mapped (`::ffff:10.1.2.3`) matches
/// an IPv4 `cidr` rule, as does the bracketed spelling.
#[test]
fn cidr_matches_the_ipv4_mapped_spelling_of_an_event_address() {
    let rule = "  sel:\n    sourceIPAddress|cidr: 10.0.0.0/8\n  condition: sel\n";
    for spelling in ["::ffff:10.1.2.3", "[::ffff:a01:203]", " ::ffff:10.1.2.3 "] {
        let event = CT.replace("\"10.1.2.3\"", &format!("\"{spelling}\""));
        assert!(one(rule, &event), "{spelling}");
    }
    let outside = CT.replace("\"10.1.2.3\"", "\"::ffff:192.0.2.1\"");
    assert!(!one(rule, &outside));
}

mod globs {
    use proptest::prelude::*;

    use crate::matcher::compile::{glob_to_regex, star_glob};
    use crate::sigma::value::{Part, SigmaString};

    fn part() -> impl Strategy<Value = Part> {
        prop_oneof![
            3 => "[abAB.\\\\ ]{1,3}".prop_map(Part::Lit),
            1 => Just(Part::Star),
        ]
    }

    proptest! {
        /// Wildcards left the regex engine (one multi-pattern regex per field thrashed its lazy
        /// DFA and then allocated a PikeVM cache for every pattern at once: 13.5 GB on SigmaHQ's
        /// process-creation rules). The literal matcher must answer exactly what the anchored
        /// regex it replaces answers, cased or not.
        #[test]
        fn star_globs_agree_with_the_regex_they_replace(
            parts in proptest::collection::vec(part(), 1..6),
            text in "[abAB.\\\\ xy]{0,12}",
            cased in any::<bool>(),
        ) {
            let s = SigmaString(parts);
            let glob = star_glob(&s, cased).expect("ASCII and `*` only: a glob");
            let regex = regex_automata::meta::Regex::new(&glob_to_regex(&s, cased)).unwrap();
            prop_assert_eq!(glob.matches(&text), regex.is_match(&text), "{:?} on {:?}", s, text);
        }
    }

    /// Bug (found by the property test): consecutive literal parts became separate pieces, so
    /// `\\` then `.` matched `\\x.` as if a `*` stood between them.
    #[test]
    fn consecutive_literals_stay_adjacent() {
        let s = SigmaString(vec![
            Part::Lit("\\".into()),
            Part::Lit(".".into()),
            Part::Star,
        ]);
        let glob = star_glob(&s, false).unwrap();
        assert!(glob.matches("\\.exe"));
        assert!(!glob.matches("\\\\."));
    }

    /// Bug (found by the proptest above after the merge): two adjacent literals became two
    /// pieces with room between them, so ` \\*` matched ` A\\`.
    #[test]
    fn adjacent_literals_are_one_piece() {
        let s = SigmaString(vec![
            Part::Lit(" ".into()),
            Part::Lit("\\".into()),
            Part::Star,
        ]);
        let glob = star_glob(&s, false).unwrap();
        assert!(!glob.matches(" A\\"));
        assert!(glob.matches(" \\x"));
    }

    #[test]
    fn what_a_glob_cannot_say_goes_to_a_regex() {
        let one = SigmaString(vec![Part::Lit("a".into()), Part::One, Part::Star]);
        assert!(
            star_glob(&one, false).is_none(),
            "`?` is one character, not one byte"
        );
        let accented = SigmaString(vec![Part::Star, Part::Lit("É".into()), Part::Star]);
        assert!(
            star_glob(&accented, false).is_none(),
            "Unicode case folding"
        );
        assert!(star_glob(&accented, true).is_some(), "cased: bytes compare");
    }
}

/// Keyword rules (values of no field) under log-source guards: a keyword of a guarded rule in
/// an event its guard refuses matches nothing; the same keyword where the guard holds does; an
/// unguarded rule's keywords match in any Windows event, in any case. (Kept as the contract any
/// narrowing of the keyword scan by guard must hold to.)
#[test]
fn keyword_rules_match_by_their_guard_and_their_words_only() {
    let yaml = "title: kw-system\nlogsource:\n  product: windows\n  service: system\ndetection:\n  keywords:\n    - kali\n  condition: keywords\n---\ntitle: kw-any\nlogsource:\n  product: windows\ndetection:\n  keywords:\n    - 'sekurlsa::'\n    - mimikatz\n  condition: keywords\n---\ntitle: kw-app\nlogsource:\n  product: windows\n  service: application\ndetection:\n  keywords:\n    - 'HKTL'\n    - 'mimikatz.exe'\n  condition: keywords\n";
    let rules = ruleset(yaml);
    let sysmon = |cmd: &str| {
        format!(
            r#"{{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","@timestamp":"2024-01-01T00:00:00Z","CommandLine":"{cmd}"}}"#
        )
    };
    let channel = |ch: &str, text: &str| {
        format!(
            r#"{{"EventID":7045,"Channel":"{ch}","@timestamp":"2024-01-01T00:00:00Z","ServiceName":"{text}"}}"#
        )
    };
    let titles = |event: &str| {
        let mut t = matched(&rules, event);
        t.sort();
        t
    };
    assert_eq!(titles(&sysmon("kali MimiKatz")), ["kw-any"]);
    assert_eq!(titles(&sysmon("nothing here at all")), Vec::<String>::new());
    assert_eq!(titles(&channel("System", "kali")), ["kw-system"]);
    assert_eq!(
        titles(&channel("System", "x SEKURLSA::logonpasswords")),
        ["kw-any"]
    );
    assert_eq!(
        titles(&channel("Application", "hktl mimikatz.exe")),
        ["kw-any", "kw-app"]
    );
    assert_eq!(
        titles(&channel("Application", "kali")),
        Vec::<String>::new()
    );
}

/// Regression: values with characters that have no case (SigmaHQ's emoji rules) went to the
/// regex engine as if they needed Unicode case folding, so with no ASCII needle their rules were
/// evaluated on every event, thousands of regexes on each command line (6 ms for a 4 KB one).
/// They are literals now: a rule with only emoji is no candidate without one, and matches with.
#[test]
fn emoji_values_are_literals_and_their_rule_is_no_candidate_without_them() {
    let yaml = "title: emoji\nlogsource:\n  product: windows\ndetection:\n  sel:\n    CommandLine|contains:\n      - \"\u{1F600}\"\n      - \"\u{1F648}\"\n  condition: sel\n";
    let rules = ruleset(yaml);
    assert!(rules.regexes.is_empty(), "an emoji needs no regex");
    let ev = |cmd: &str| {
        format!(
            r#"{{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","@timestamp":"2024-01-01T00:00:00Z","CommandLine":"{cmd}"}}"#
        )
    };
    let run = |event: &str| matches_and_candidates(&rules, event);
    assert_eq!(
        run(&ev(
            "\\\"C:\\\\Program Files\\\\Edge\\\\msedge.exe\\\" --type=renderer"
        )),
        (0, 0)
    );
    assert_eq!(run(&ev("POWERSHELL \u{1F648} -ENC")), (1, 1));
    assert_eq!(run(&ev("powershell \u{1F649} -enc")), (0, 0));
}

/// A `?` pattern goes to the regex engine, but a piece of it without cased letters is still its
/// prefilter needle: an emoji piece too, so the rule is no candidate where the emoji is absent.
#[test]
fn a_caseless_piece_of_a_one_character_wildcard_is_its_needle() {
    let yaml = "title: q\nlogsource:\n  product: windows\ndetection:\n  sel:\n    CommandLine|contains: \"\u{1F648}?x\"\n  condition: sel\n";
    let rules = ruleset(yaml);
    let ev = |cmd: &str| {
        format!(
            r#"{{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","@timestamp":"2024-01-01T00:00:00Z","CommandLine":"{cmd}"}}"#
        )
    };
    assert_eq!(
        matches_and_candidates(&rules, &ev("an x but no emoji")),
        (0, 0)
    );
    assert_eq!(
        matches_and_candidates(&rules, &ev("a \u{1F648}-X b")),
        (1, 1)
    );
    assert_eq!(
        matches_and_candidates(&rules, &ev("a \u{1F648}--x b")),
        (0, 1)
    );
}

/// A keyword rule of the Application channel is not even a candidate on a Sysmon event that
/// holds its word (the partition left it out of that channel's plan), and still matches on
/// the Application channel; an event with two channels gets the whole plan.
#[test]
fn a_services_keyword_rule_is_no_candidate_on_another_channel() {
    let rules = ruleset(
        "title: app\nlogsource:\n  product: windows\n  service: application\ndetection:\n  keywords:\n    - 'mimidrv'\n  condition: keywords\n",
    );
    let event = |channel: &str| {
        format!(
            r#"{{"EventID":1,"Channel":{channel},"@timestamp":"2024-01-01T00:00:00Z","Data":"load mimidrv.sys"}}"#
        )
    };
    assert_eq!(
        matches_and_candidates(&rules, &event(r#""Microsoft-Windows-Sysmon/Operational""#)),
        (0, 0)
    );
    assert_eq!(
        matches_and_candidates(&rules, &event(r#""APPLICATION""#)),
        (1, 1)
    );
    assert_eq!(
        matches_and_candidates(&rules, &event(r#"["Application","Security"]"#)),
        (1, 1)
    );
    let windows = rules.schema.profile(ProfileKind::Windows).unwrap().0;
    assert_eq!(rules.whole_plan(windows).unwrap().applicable, 1);
}

/// A worker makes a regex's search cache only when the regex first searches a text: none up
/// front, none for a regex whose field the event lacks. Making all of SigmaHQ's Windows
/// regexes' caches up front cost each worker 3 MB touched before its first event.
#[test]
fn regex_caches_are_made_when_a_regex_first_searches() {
    let rules = ruleset(
        "title: t\nlogsource:\n  product: aws\ndetection:\n  absent:\n    noSuchField|re: 'x+y'\n  here:\n    eventName|re: '^Get[A-Z]'\n  condition: absent or here\n",
    );
    assert_eq!(rules.regexes.len(), 2);
    let made = |m: &Matcher| m.regex_caches.iter().filter(|c| c.is_some()).count();
    let mut decoder = Decoder::new(&rules.schema);
    let mut matcher = Matcher::new(&rules);
    assert_eq!(made(&matcher), 0);
    let mut out = Vec::new();
    decoder.decode(&rules.schema, CT.as_bytes(), CT.len(), |view| {
        matcher.matches(&rules, &view.unwrap(), &mut out);
    });
    assert_eq!(out.len(), 1, "the eventName regex matches");
    assert_eq!(made(&matcher), 1);
}
