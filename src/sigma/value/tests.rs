use super::*;
use crate::sigma::yaml::{Loc, Node, Value};

fn node(v: Value) -> Node {
    Node {
        loc: Loc::default(),
        value: v,
    }
}

fn s(text: &str) -> Node {
    node(Value::Str(text.into()))
}

fn item(spec: &str, value: Node) -> Result<FieldItem, ItemError> {
    compile_item(spec, &value, &Placeholders::new())
}

fn strings(item: &FieldItem) -> Vec<SigmaString> {
    item.patterns
        .iter()
        .map(|p| match p {
            Pattern::Str { s, .. } => s.clone(),
            other => panic!("not a string pattern: {other:?}"),
        })
        .collect()
}

#[test]
fn escapes_follow_the_specification() {
    // A backslash before a wildcard escapes it; two backslashes are one literal backslash.
    assert_eq!(
        SigmaString::parse(r"C:\Windows\*"),
        SigmaString::literal(r"C:\Windows*")
    );
    assert_eq!(
        SigmaString::parse(r"C:\Windows\\*"),
        SigmaString(vec![Part::Lit(r"C:\Windows\".into()), Part::Star])
    );
    assert_eq!(SigmaString::parse(r"a\*b"), SigmaString::literal("a*b"));
    assert_eq!(
        SigmaString::parse(r"a\\*"),
        SigmaString(vec![Part::Lit(r"a\".into()), Part::Star])
    );
    assert_eq!(
        SigmaString::parse("a?c"),
        SigmaString(vec![
            Part::Lit("a".into()),
            Part::One,
            Part::Lit("c".into())
        ])
    );
    assert_eq!(SigmaString::parse(r"\n"), SigmaString::literal(r"\n"));
}

#[test]
fn contains_startswith_endswith_add_wildcards_once() {
    let c = item("f|contains", s("*x")).unwrap();
    assert_eq!(
        strings(&c),
        vec![SigmaString(vec![
            Part::Star,
            Part::Lit("x".into()),
            Part::Star
        ])]
    );
    let e = item("f|endswith", s(r"\net.exe")).unwrap();
    assert_eq!(
        strings(&e),
        vec![SigmaString(vec![Part::Star, Part::Lit(r"\net.exe".into())])]
    );
    let st = item("f|startswith", s("a")).unwrap();
    assert_eq!(
        strings(&st),
        vec![SigmaString(vec![Part::Lit("a".into()), Part::Star])]
    );
}

#[test]
fn numbers_are_compared_as_text_without_wildcards() {
    let i = item("EventID", node(Value::Int(4688))).unwrap();
    assert_eq!(strings(&i), vec![SigmaString::literal("4688")]);
}

#[test]
fn base64offset_matches_the_specification_example() {
    // The Sigma documentation's example for `base64offset|contains: 'http://'`.
    let b = item("f|base64offset|contains", s("http://")).unwrap();
    let lits: Vec<String> = strings(&b)
        .iter()
        .map(|x| x.literals().collect::<String>())
        .collect();
    assert_eq!(lits, vec!["aHR0cDovL", "h0dHA6Ly", "odHRwOi8v"]);
}

#[test]
fn wide_then_base64_encodes_utf16le() {
    let b = item("f|wide|base64", s("ab")).unwrap();
    // "ab" in UTF-16LE is 61 00 62 00, base64 "YQBiAA==".
    assert_eq!(strings(&b), vec![SigmaString::literal("YQBiAA==")]);
    let bom = item("f|utf16|base64", s("a")).unwrap();
    // FF FE 61 00
    assert_eq!(strings(&bom), vec![SigmaString::literal("//5hAA==")]);
    assert!(
        item("f|utf16", s("a")).is_err(),
        "a byte-order mark is not text"
    );
}

#[test]
fn windash_makes_every_dash_variant() {
    let w = item("CommandLine|contains|windash", s(" -enc ")).unwrap();
    assert_eq!(w.patterns.len(), 5);
    let firsts: Vec<String> = strings(&w).iter().map(|x| x.literals().collect()).collect();
    assert!(firsts.contains(&" /enc ".to_string()));
    assert!(firsts.contains(&" \u{2013}enc ".to_string()));
    let two = item("f|windash", s("-a -b")).unwrap();
    assert_eq!(two.patterns.len(), 25);
    // A dash inside a word is not an option prefix.
    let none = item("f|windash", s("a-b")).unwrap();
    assert_eq!(none.patterns.len(), 1);
}

#[test]
fn invalid_chains_are_errors() {
    for (spec, value) in [
        ("f|cidr|contains", s("10.0.0.0/8")),
        ("f|re|base64", s("x")),
        ("f|contains|startswith", s("x")),
        ("f|gt|contains", node(Value::Int(1))),
        ("f|exists|all", node(Value::Bool(true))),
        ("f|i", s("x")),
        ("f|contains|contains", s("x")),
        ("f|base64|contains|base64", s("x")),
    ] {
        assert!(item(spec, value).is_err(), "{spec} should not compile");
    }
    assert_eq!(
        item("f|nosuch", s("x")),
        Err(ItemError::UnknownModifier("nosuch".into()))
    );
}

#[test]
fn comparison_modifiers_take_the_right_values() {
    assert!(item("f|gt", s("x")).is_err());
    assert!(item("f|cidr", s("not-an-ip")).is_err());
    assert!(item("f|exists", s("yes")).is_err());
    let c = item("f|cidr", s("10.0.0.0/8")).unwrap();
    let Pattern::Cidr(net) = c.patterns[0] else {
        panic!()
    };
    assert!(net.contains("10.1.2.3".parse().unwrap()));
    assert!(!net.contains("11.0.0.1".parse().unwrap()));
    let v6 = Cidr::parse("2001:db8::/32").unwrap();
    assert!(v6.contains("2001:db8::1".parse().unwrap()));
    assert!(!v6.contains("10.0.0.1".parse().unwrap()));
}

#[test]
fn expand_needs_a_pipeline_value() {
    let err = item("f|expand", s("%admins%")).unwrap_err();
    assert!(matches!(err, ItemError::Unsupported(_)));
    let mut ph = Placeholders::new();
    ph.insert("admins".into(), vec!["root".into(), "adm*".into()]);
    let ok = compile_item("f|expand", &s("u=%admins%"), &ph).unwrap();
    assert_eq!(ok.patterns.len(), 2);
}

#[test]
fn all_and_neq_and_null() {
    let a = item("f|contains|all", node(Value::Seq(vec![s("a"), s("b")]))).unwrap();
    assert!(a.all);
    let n = item("f|neq", s("x")).unwrap();
    assert!(n.negate);
    let null = item("f", node(Value::Null)).unwrap();
    assert_eq!(null.patterns, vec![Pattern::Null]);
    assert!(item("f", node(Value::Seq(vec![]))).is_err());
}

/// Issue 15: `::ffff:10.0.0.1`, the IPv4-mapped spelling of `10.0.0.1`, escaped IPv4 `cidr`
/// rules.
#[test]
fn ipv4_mapped_ipv6_is_the_ipv4_address() {
    let net = Cidr::parse("10.0.0.0/8").unwrap();
    for ip in [
        "::ffff:10.0.0.1",
        "::FFFF:10.255.0.1",
        "::ffff:a00:1",
        "0:0:0:0:0:ffff:a00:1",
    ] {
        assert!(net.contains(ip.parse().unwrap()), "{ip}");
    }
    assert!(!net.contains("::ffff:11.0.0.1".parse().unwrap()));
    // Only the mapped prefix is IPv4: IPv4-compatible and NAT64 addresses are IPv6.
    assert!(!net.contains("::10.0.0.1".parse().unwrap()));
    assert!(!net.contains("64:ff9b::a00:1".parse().unwrap()));
}

/// Issue 15: the other way round, a rule written over the mapped range matches the IPv4
/// spelling of an address in it.
#[test]
fn an_ipv6_mapped_network_contains_the_ipv4_spelling() {
    let net = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
    assert!(net.contains("10.9.9.9".parse().unwrap()));
    assert!(!net.contains("11.0.0.1".parse().unwrap()));
    let all_v6 = Cidr::parse("::/0").unwrap();
    assert!(all_v6.contains("192.0.2.1".parse().unwrap()));
}

/// Issue 15: an address in brackets or with an IPv6 zone is still that address.
#[test]
fn brackets_and_zones_do_not_hide_an_address() {
    use crate::sigma::value::parse_ip;
    assert_eq!(
        parse_ip(" [::ffff:10.0.0.1] "),
        "10.0.0.1"
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|v4| match v4 {
                std::net::IpAddr::V4(v4) => std::net::IpAddr::V6(v4.to_ipv6_mapped()),
                v6 => v6,
            })
    );
    assert_eq!(parse_ip("fe80::1%eth0"), "fe80::1".parse().ok());
    assert_eq!(parse_ip("10.0.0.1%eth0"), None);
    assert_eq!(parse_ip("[10.0.0.1"), None);
    let net = Cidr::parse("fe80::/10").unwrap();
    assert!(parse_ip("fe80::1%25eth0").is_some_and(|ip| net.contains(ip)));
}
