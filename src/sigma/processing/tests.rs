use std::path::Path;

use super::*;
use crate::sigma::{self, LoadOptions};

fn pipeline(text: &str) -> Pipeline {
    parse_text(Path::new("p.yml"), text, YamlBudget::default()).unwrap()
}

fn load(pipelines: Vec<Pipeline>, rule: &str) -> Result<Rule, Vec<LoadError>> {
    let opts = LoadOptions::with_pipelines(pipelines);
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    sigma::parse_text(Path::new("r.yml"), rule, &opts, &mut rules, &mut errors);
    if errors.is_empty() {
        Ok(rules.remove(0))
    } else {
        Err(errors)
    }
}

fn fields(r: &Rule) -> Vec<Vec<String>> {
    let Body::Detection(d) = &r.body else {
        panic!("not a detection")
    };
    d.selections
        .iter()
        .flat_map(|s| s.alternatives.iter())
        .map(|alt| alt.iter().filter_map(|i| i.field.clone()).collect())
        .collect()
}

const WIN: &str = "title: t\nlogsource: {product: windows, category: process_creation}\ndetection:\n  sel:\n    Image|endswith: '\\x.exe'\n    CommandLine|contains: y\n  condition: sel\n";

#[test]
fn one_to_many_mappings_become_alternatives() {
    let p = pipeline(
        "name: m\ntransformations:\n  - type: field_name_mapping\n    mapping:\n      Image: [process.executable, process.name]\n      CommandLine: process.command_line\n",
    );
    let r = load(vec![p], WIN).unwrap();
    assert_eq!(
        fields(&r),
        vec![
            vec![
                "process.executable".to_string(),
                "process.command_line".into()
            ],
            vec!["process.name".to_string(), "process.command_line".into()],
        ]
    );
}

#[test]
fn logsource_conditions_choose_the_rules_an_item_touches() {
    let p = pipeline(
        "transformations:\n  - type: field_name_prefix\n    prefix: 'winlog.event_data.'\n    rule_conditions: [{type: logsource, product: windows}]\n  - type: field_name_prefix\n    prefix: 'never.'\n    rule_conditions: [{type: logsource, product: linux}]\n",
    );
    let r = load(vec![p], WIN).unwrap();
    assert_eq!(
        fields(&r),
        vec![vec![
            "winlog.event_data.Image".to_string(),
            "winlog.event_data.CommandLine".into()
        ]]
    );
    let negated = pipeline(
        "transformations:\n  - type: field_name_suffix\n    suffix: '.keyword'\n    rule_cond_not: true\n    rule_conditions: [{type: logsource, product: windows}]\n",
    );
    assert_eq!(fields(&load(vec![negated], WIN).unwrap())[0][0], "Image");
}

#[test]
fn prefix_mapping_prefers_the_longest_prefix_and_field_filters_apply() {
    let p = pipeline(
        "transformations:\n  - type: field_name_prefix_mapping\n    mapping: {'requestParameters.': 'api.request.data.', 'requestParameters.policy.': 'x.'}\n  - type: field_name_mapping\n    mapping: {eventName: api.operation, eventSource: api.service.name}\n    field_name_conditions: [{type: exclude_fields, fields: [eventSource]}]\n",
    );
    let r = load(
        vec![p],
        "title: t\nlogsource: {product: aws}\ndetection:\n  sel:\n    requestParameters.secretId: a\n    requestParameters.policy.x: b\n    eventName: c\n    eventSource: d\n  condition: sel\n",
    )
    .unwrap();
    assert_eq!(
        fields(&r)[0],
        vec![
            "api.request.data.secretId",
            "x.x",
            "api.operation",
            "eventSource"
        ]
    );
}

#[test]
fn change_logsource_is_seen_by_later_items_and_add_condition_ands() {
    let p = pipeline(
        "transformations:\n  - type: change_logsource\n    product: ecs\n    rule_conditions: [{type: logsource, category: process_creation}]\n  - type: add_condition\n    conditions: {event.category: process}\n    rule_conditions: [{type: logsource, product: ecs}]\n",
    );
    let r = load(vec![p], WIN).unwrap();
    assert_eq!(r.meta.logsource.product.as_deref(), Some("ecs"));
    let Body::Detection(d) = &r.body else {
        panic!()
    };
    assert_eq!(d.selections.len(), 2);
    assert_eq!(d.condition, Cond::And(vec![Cond::Sel(0), Cond::Sel(1)]));
    assert_ne!(r.meta.version, load(vec![], WIN).unwrap().meta.version);
}

#[test]
fn placeholders_come_from_vars_and_wildcards() {
    let rule = "title: t\nlogsource: {product: aws}\ndetection:\n  sel:\n    src|expand: '%Countries%'\n    ip|expand: '%Ranges%'\n  condition: sel\n";
    assert!(load(vec![], rule).is_err());
    let p = pipeline(
        "vars:\n  Countries: [FR, DE]\ntransformations:\n  - type: value_placeholders\n  - type: wildcard_placeholders\n",
    );
    let r = load(vec![p], rule).unwrap();
    let Body::Detection(d) = &r.body else {
        panic!()
    };
    let items = &d.selections[0].alternatives[0];
    assert_eq!(items[0].patterns.len(), 2);
    assert_eq!(
        items[1].patterns,
        vec![Pattern::Str {
            s: value::SigmaString(vec![value::Part::Star]),
            cased: false
        }]
    );
}

#[test]
fn rule_failure_names_the_rule_and_the_item() {
    let p = pipeline(
        "transformations:\n  - id: no_linux\n    type: rule_failure\n    message: linux rules are not supported here\n    rule_conditions: [{type: logsource, product: windows}]\n",
    );
    let e = load(vec![p], WIN).unwrap_err();
    let text = e[0].to_string();
    assert!(
        text.contains("no_linux") && text.contains("linux rules are not supported"),
        "{text}"
    );
}

#[test]
fn unsupported_constructs_fail_with_their_location() {
    let bad = |text: &str| parse_text(Path::new("p.yml"), text, YamlBudget::default()).unwrap_err();
    let e = bad("transformations:\n  - type: drop_detection_item\n");
    assert_eq!(e.loc.line, 2);
    assert!(e.message.contains("drop_detection_item"), "{}", e.message);
    let e = bad(
        "transformations:\n  - type: field_name_mapping\n    mapping: {a: b}\n    rule_conditions: [{type: contains_detection_item, field: x}]\n",
    );
    assert!(
        e.message.contains("contains_detection_item"),
        "{}",
        e.message
    );
    let e = bad("transformations:\n  - type: field_name_mapping\n    mappings: {a: b}\n");
    assert!(e.message.contains("mappings"), "{}", e.message);
    let e = bad("postprocessing:\n  - type: template\n");
    assert!(e.message.contains("postprocessing"), "{}", e.message);
}

#[test]
fn pipelines_apply_in_priority_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yml");
    let b = dir.path().join("b.yml");
    std::fs::write(
        &a,
        "priority: 20\ntransformations:\n  - type: field_name_prefix\n    prefix: 'outer.'\n",
    )
    .unwrap();
    std::fs::write(
        &b,
        "priority: 10\ntransformations:\n  - type: field_name_prefix\n    prefix: 'inner.'\n",
    )
    .unwrap();
    let ps = load_pipelines(&[a, b]);
    let r = load(ps, WIN).unwrap();
    assert_eq!(fields(&r)[0][0], "outer.inner.Image");
}

fn load_pipelines(paths: &[std::path::PathBuf]) -> Vec<Pipeline> {
    super::load(paths, YamlBudget::default()).unwrap()
}
