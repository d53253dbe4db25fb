//! Correlation rules and the `credtrail:` extension load loudly: every rule the engine could not
//! run exactly as written fails with the file, line, column and construct; the untrusted-rule
//! budgets (maximum timespan, state) are load errors too.

use std::path::Path;

use credtrail::matcher::{self, CompileOptions};
use credtrail::sigma::{self, LoadError, LoadOptions};

const STEPS: &str = "title: a\nname: a\ndetection: {s: {eventName: A}, condition: s}\n---\n\
title: b\nname: b\ndetection: {s: {eventName: B}, condition: s}\n---\n";

/// Loads and compiles `text`; the errors, or none.
fn errors(text: &str) -> Vec<LoadError> {
    let path = Path::new("corr.yml");
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    sigma::parse_text(path, text, &LoadOptions::default(), &mut rules, &mut errors);
    let catalog = sigma::resolve(rules, &mut errors);
    if errors.is_empty()
        && let Err(e) = matcher::compile(&catalog, &CompileOptions::default())
    {
        errors = e.0;
    }
    errors
}

fn one_error(text: &str) -> LoadError {
    let e = errors(&format!("{STEPS}{text}"));
    assert_eq!(e.len(), 1, "{e:?}");
    e.into_iter().next().unwrap()
}

#[test]
fn every_correlation_type_of_the_spec_loads() {
    for (kind, cond) in [
        ("event_count", "{gte: 3}"),
        ("event_count", "{lt: 3}"),
        ("event_count", "{gt: 2, lte: 9}"),
        ("value_count", "{field: x, eq: 2}"),
        ("value_sum", "{field: x, gte: 100}"),
        ("value_avg", "{field: x, gt: 1.5}"),
        ("value_percentile", "{field: x, percentile: 95, gte: 1000}"),
        ("value_median", "{field: x, lte: 10}"),
        ("temporal", "{gte: 2}"),
        ("temporal", "{eq: 1}"),
        ("temporal_ordered", "{gte: 2}"),
    ] {
        let text = format!(
            "{STEPS}title: c\ncorrelation: {{type: {kind}, rules: [a, b], group-by: [u, v], timespan: 5m, condition: {cond}}}\n"
        );
        assert!(
            errors(&text).is_empty(),
            "{kind} {cond}: {:?}",
            errors(&text)
        );
    }
}

#[test]
fn unknown_extension_keys_name_line_and_column() {
    let e = one_error(
        "title: c\ncorrelation: {type: temporal_ordered, rules: [a, b], timespan: 5m}\ncredtrail:\n  stages:\n    - name: x\n    - max_gaps: 1m\n",
    );
    assert_eq!(e.construct(), "extension");
    assert_eq!((e.loc.line, e.loc.col), (14, 7), "{e}");
    assert!(
        e.to_string().contains("unknown stage key `max_gaps`"),
        "{e}"
    );
}

#[test]
fn tie_order_applies_to_temporal_ordered_only() {
    let chain = "title: c\ncorrelation: {type: temporal_ordered, rules: [a, b], timespan: 5m}\n";
    for order in ["strict", "simultaneous"] {
        let text = format!("{STEPS}{chain}credtrail: {{order: {order}}}\n");
        assert!(errors(&text).is_empty(), "{order}: {:?}", errors(&text));
    }
    let e = one_error(
        "title: c\ncorrelation: {type: temporal, rules: [a, b], timespan: 5m}\ncredtrail: {order: strict}\n",
    );
    assert!(
        e.to_string()
            .contains("`order` applies to temporal_ordered, not `temporal`"),
        "{e}"
    );
}

#[test]
fn extension_values_that_cannot_apply_are_errors() {
    let cases = [
        // one stage entry per rule
        (
            "credtrail: {stages: [{name: x}]}",
            "has 1 entries but the correlation has 2",
        ),
        // a gap on the first stage
        ("credtrail: {stages: [{max_gap: 1m}, {}]}", "first stage"),
        // a gap longer than the timespan
        (
            "credtrail: {stages: [{}, {max_gap: 1h}]}",
            "longer than the timespan",
        ),
        ("credtrail: {absence: {rule: a}}", "needs `within`"),
        ("credtrail: {until: []}", "rule id or name"),
        ("credtrail: {state: {max_groups: -1}}", "positive integer"),
        (
            "credtrail: {order: sometimes}",
            "`order` is `simultaneous` (equal event times in any order, the default) or `strict`",
        ),
    ];
    for (ext, want) in cases {
        let e = one_error(&format!(
            "title: c\ncorrelation: {{type: temporal_ordered, rules: [a, b], timespan: 5m}}\n{ext}\n"
        ));
        assert_eq!(e.construct(), "extension", "{ext}: {e}");
        assert!(e.to_string().contains(want), "{ext}: {e}");
        assert_eq!(e.loc.line, 11, "{ext}: {e}");
    }
}

#[test]
fn until_and_absence_need_sequence_types_and_detection_rules() {
    let e = one_error(
        "title: c\ncorrelation: {type: event_count, rules: [a], timespan: 5m, condition: {gte: 2}}\ncredtrail: {until: [b]}\n",
    );
    assert!(
        e.to_string().contains("temporal and temporal_ordered"),
        "{e}"
    );
    let e = one_error(
        "title: c\ncorrelation: {type: temporal, rules: [a, b], timespan: 5m}\ncredtrail: {until: [a]}\n",
    );
    assert!(e.to_string().contains("both a stage"), "{e}");
    let e = one_error(
        "title: c\ncorrelation: {type: temporal, rules: [a, b], timespan: 5m}\ncredtrail: {absence: {rule: nope, within: 1m}}\n",
    );
    assert_eq!(e.construct(), "correlation-reference", "{e}");
}

#[test]
fn an_extension_on_a_detection_is_an_error() {
    let e = errors("title: d\ndetection: {s: {a: 1}, condition: s}\ncredtrail: {}\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].to_string().contains("applies to correlation rules"),
        "{}",
        e[0]
    );
}

#[test]
fn untrusted_budgets_are_load_errors() {
    let e = one_error("title: c\ncorrelation: {type: temporal, rules: [a, b], timespan: 400d}\n");
    assert_eq!(e.construct(), "limit");
    assert!(
        e.to_string().contains("longer than the engine's maximum"),
        "{e}"
    );
    let e = one_error(
        "title: c\ncorrelation: {type: temporal, rules: [a, b], timespan: 1h}\ncredtrail: {state: {max_groups: 100000000}}\n",
    );
    assert!(e.to_string().contains("over the engine's ceiling"), "{e}");
    let e = one_error(
        "title: c\ncorrelation: {type: event_count, rules: [a], timespan: 1h, condition: {gte: 50}}\ncredtrail: {state: {max_events: 10}}\n",
    );
    assert!(e.to_string().contains("needs 50 events"), "{e}");
}

#[test]
fn conditions_the_engine_cannot_run_exactly_are_refused() {
    let e = one_error(
        "title: c\ncorrelation: {type: temporal_ordered, rules: [a, b], timespan: 1h, condition: {gte: 1}}\n",
    );
    assert!(e.to_string().contains("temporal_ordered condition"), "{e}");
    let e = one_error(
        "title: c\ncorrelation: {type: temporal, rules: [a, b], timespan: 1h, condition: {gt: 5}}\n",
    );
    assert!(e.to_string().contains("can never hold"), "{e}");
}

#[test]
fn a_correlation_of_correlations_needs_the_inner_group_by() {
    let e = one_error(
        "title: inner\nname: inner\ncorrelation: {type: event_count, rules: [a], group-by: [user], timespan: 1h, condition: {gte: 2}}\n---\n\
         title: outer\ncorrelation: {type: temporal_ordered, rules: [inner, b], group-by: [host], timespan: 1h}\n",
    );
    assert!(
        e.to_string()
            .contains("`host` is not a group-by field of the referenced correlation"),
        "{e}"
    );
}

#[test]
fn one_correlation_cannot_feed_two_differently_grouped_ones() {
    let e = one_error(
        "title: inner\nname: inner\ncorrelation: {type: event_count, rules: [a], group-by: [user, host], timespan: 1h, condition: {gte: 2}}\n---\n\
         title: by user\ncorrelation: {type: temporal_ordered, rules: [inner, b], group-by: [user], timespan: 1h}\n---\n\
         title: by host\ncorrelation: {type: temporal_ordered, rules: [inner, b], group-by: [host], timespan: 1h}\n",
    );
    assert!(e.to_string().contains("group by different fields"), "{e}");
}

#[test]
fn score_settings_in_the_extension_are_checked() {
    let chain = "title: c\ncorrelation: {type: temporal_ordered, rules: [a, b], group-by: [x], timespan: 5m}\n";
    let ok = format!(
        "{chain}credtrail:\n  score:\n    weights: {{reach: 10, touched: 10, stage: 70, tempo: 10}}\n    escalate_at: 1\n"
    );
    assert!(errors(&format!("{STEPS}{ok}")).is_empty());
    for (score, needle) in [
        (
            "weights: {reach: 10, touched: 10, stage: 10, tempo: 10}",
            "add up to 40",
        ),
        ("weights: {reach: 100}", "needs all of"),
        (
            "weights: {reach: 50, touched: 50, stage: 0, tempo: 0, luck: 0}",
            "unknown weight `luck`",
        ),
        ("escalate_at: 2", "between 1 and 1"),
        ("escalate_at: 0", "between 1 and 1"),
        ("colour: red", "unknown score key `colour`"),
    ] {
        let e = one_error(&format!("{chain}credtrail:\n  score:\n    {score}\n"));
        assert!(e.to_string().contains(needle), "{score}: {e}");
        assert_eq!(e.loc.line, 13, "{score}: {e}");
    }
    let count = "title: c\ncorrelation: {type: event_count, rules: [a], group-by: [x], timespan: 5m, condition: {gte: 2}}\ncredtrail:\n  score:\n    escalate_at: 1\n";
    assert!(one_error(count).to_string().contains("temporal_ordered"));
}

/// Issue 10, item 4: misspelt modifiers and rule references name the closest known one.
#[test]
fn misspellings_get_a_did_you_mean() {
    let e = errors("title: m\nid: m1\ndetection: {s: {CommandLine|contians: x}, condition: s}\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].to_string().ends_with(
            "unknown modifier `contians` in `CommandLine|contians`; did you mean `contains`?"
        ),
        "{}",
        e[0]
    );
    let e = one_error(
        "title: c\ncorrelation: {type: temporal_ordered, rules: [a, bb], timespan: 5m}\n",
    );
    assert!(
        e.to_string().ends_with(
            "correlation refers to rule `bb`, which is not loaded (by id or name); did you mean `b`?"
        ),
        "{e}"
    );
    let e = one_error(
        "title: c\ncorrelation: {type: temporal_ordered, rules: [a, zzzz], timespan: 5m}\n",
    );
    assert!(
        e.to_string()
            .ends_with("which is not loaded (by id or name)"),
        "no suggestion for a stranger: {e}"
    );
    let e = one_error(
        "title: f\nlogsource: {product: aws}\nfilter:\n  rules: [aa]\n  known: {x: 1}\n  condition: known\n",
    );
    assert!(
        e.to_string()
            .ends_with("not loaded (by id or name); did you mean `a`?"),
        "{e}"
    );
}

/// Issue 10, item 4 (no cascading errors): the service's load still refuses a set with a bad
/// rule, but lists that rule's error alone: the correlations and filters that reference it
/// (by id, by name, through `until` or another correlation) add no error of their own.
#[test]
fn a_bad_rule_is_one_error_not_one_per_reference() {
    let text = "title: a\nname: a\nlogsource: {product: aws}\ndetection: {s: {eventName|contians: A}, condition: s}\n---\n\
title: b\nname: b\nlogsource: {product: aws}\ndetection: {s: {eventName: B}, condition: s}\n---\n\
title: c\nname: c\ncorrelation: {type: temporal_ordered, rules: [a, b], timespan: 5m}\n---\n\
title: d\nname: d\ncorrelation: {type: temporal_ordered, rules: [b, c], timespan: 5m}\n---\n\
title: e\nname: e\ncorrelation: {type: temporal_ordered, rules: [b, b], timespan: 5m}\ncredtrail: {until: [a]}\n---\n\
title: f\nlogsource: {product: aws}\nfilter:\n  rules: [a, b]\n  known: {x: 1}\n  condition: not known\n";
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    let message = e[0].to_string();
    assert!(
        message.starts_with("corr.yml:4:")
            && message.ends_with(
                ": rule a: unknown modifier `contians` in `eventName|contians`; did you mean `contains`?"
            ),
        "{message}"
    );
    // A reference to a rule that exists nowhere is still an error, held back or not.
    let e = errors(&format!(
        "{text}---\ntitle: g\ncorrelation: {{type: temporal_ordered, rules: [a, nowhere], timespan: 5m}}\n"
    ));
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e[1].to_string()
            .ends_with("correlation refers to rule `nowhere`, which is not loaded (by id or name)"),
        "{}",
        e[1]
    );
}
