//! Steps of one instant: equal event times are simultaneous for `temporal_ordered` (any order
//! of ids and arrival completes a chain), or never follow each other with `order: strict`.

use proptest::prelude::*;

use super::Target;
use super::tests::{ORDERED, drive, hit, run, view};

/// Every permutation of `items`.
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first.clone());
            out.push(p);
        }
    }
    out
}

proptest! {
    // Each case runs six permutations, each compiling the rules (debug build): keep it short.
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    /// Bug: steps of one chain that share an event time (three CloudTrail calls in one second)
    /// were taken in the order of their event ids, so a chain alerted or not depending on
    /// random ids. Equal times are simultaneous: any ids, any arrival order, any lateness
    /// gives one alert with the steps in stage order.
    #[test]
    fn a_chain_whose_steps_share_one_instant_fires_for_every_order_and_id(
        ids in proptest::collection::vec("[a-z0-9]{1,12}", 3),
        lateness in 0i64..=3,
    ) {
        prop_assume!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
        let steps = [
            hit(ORDERED, 1, "alice", 5, &ids[0]),
            hit(ORDERED, 2, "alice", 5, &ids[1]),
            hit(ORDERED, 4, "alice", 5, &ids[2]),
        ];
        for order in permutations(&steps) {
            let got = run(order, lateness);
            prop_assert_eq!(
                got,
                vec![(Target::Correlation(ORDERED), "alice".to_string(), ids.clone())]
            );
        }
    }
}

#[test]
fn two_steps_in_one_instant_after_an_earlier_step_fire() {
    // read at 0, then enum and persist in one later second, persist's id first.
    let got = run(
        vec![
            hit(ORDERED, 1, "bob", 0, "zz-read"),
            hit(ORDERED, 4, "bob", 9, "aa-persist"),
            hit(ORDERED, 2, "bob", 9, "mm-enum"),
        ],
        0,
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2, vec!["zz-read", "mm-enum", "aa-persist"]);
}

const STRICT: &str = r#"
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
credtrail:
  order: strict
"#;

#[test]
fn strict_order_never_chains_steps_of_one_instant() {
    let same = |a: &str, b: &str| vec![hit(0, 1, "carol", 3, a), hit(0, 2, "carol", 3, b)];
    for hits in [same("r", "e"), same("e", "r")] {
        for order in permutations(&hits) {
            assert!(drive(STRICT, order, 0).is_empty());
        }
    }
    // A read before the instant still chains with the enumeration in it, even when another
    // read shares that instant.
    let hits = vec![
        hit(0, 1, "carol", 1, "r0"),
        hit(0, 1, "carol", 3, "r1"),
        hit(0, 2, "carol", 3, "e1"),
    ];
    for order in permutations(&hits) {
        let got: Vec<_> = drive(STRICT, order, 0).iter().map(view).collect();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].2, vec!["r0", "e1"]);
    }
}
