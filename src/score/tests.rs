//! The score's arithmetic and its promises (issue 11: monotone in the chain, single events below
//! chains).
use super::*;
use crate::inventory::{Credential, Reach, ReachSpec};

fn admin() -> IdentityEntry {
    IdentityEntry {
        pattern: "x".into(),
        kind: None,
        owner: None,
        environment: Some("prod".into()),
        privilege: Some(Privilege::Admin),
        reach: ReachSpec {
            secrets: Some(Reach::Count(120)),
            accounts: Some(Reach::Count(4)),
            data_stores: Some(Reach::Count(40)),
        },
        credential: Some(Credential {
            kind: CredentialKind::LongLivedKey,
            age_days: Some(400),
        }),
        canary: false,
    }
}

fn input<'a>(entry: Option<&'a IdentityEntry>, gaps: &[i64], stage: (u32, u32)) -> ScoreInput<'a> {
    ScoreInput {
        entry,
        touched: Touched {
            secrets: 3,
            resources: 5,
            hosts: 0,
            regions: 1,
            services: 3,
        },
        stage,
        gaps: gaps.iter().map(|s| Span::from_secs(*s)).collect(),
        canary: false,
        level: None,
    }
}

#[test]
fn points_add_up_to_the_score() {
    let e = admin();
    for (entry, gaps, stage) in [
        (Some(&e), vec![2, 3], (3, 3)),
        (None, vec![600, 1200], (2, 4)),
        (Some(&e), vec![], (1, 4)),
    ] {
        let s = score(
            &ScoreConfig::default(),
            &Weights::default(),
            &input(entry, &gaps, stage),
        );
        assert_eq!(s.factors.iter().map(|f| f.points).sum::<u32>(), s.score);
        assert!(s.score <= 100);
    }
}

#[test]
fn an_admin_at_machine_speed_outranks_an_unknown_at_human_speed() {
    let e = admin();
    let fast = score(
        &ScoreConfig::default(),
        &Weights::default(),
        &input(Some(&e), &[2, 3, 1], (4, 4)),
    );
    let slow = score(
        &ScoreConfig::default(),
        &Weights::default(),
        &input(None, &[900, 1200, 600], (4, 4)),
    );
    assert!(fast.machine_speed && !slow.machine_speed);
    assert!(
        fast.score > slow.score + 20,
        "{} vs {}",
        fast.score,
        slow.score
    );
    assert!(!slow.in_inventory);
    assert!(slow.factors[0].detail.contains("not in the inventory"));
    assert_eq!(fast.risk_level().0, 4);
}

#[test]
fn canaries_score_the_maximum() {
    let mut i = input(None, &[600], (1, 4));
    i.canary = true;
    let s = score(&ScoreConfig::default(), &Weights::default(), &i);
    assert_eq!(s.score, 100);
}

fn low() -> IdentityEntry {
    IdentityEntry {
        privilege: Some(Privilege::Low),
        environment: Some("dev".into()),
        credential: None,
        reach: ReachSpec::default(),
        ..admin()
    }
}

fn touched_from(v: [u32; 5]) -> Touched {
    Touched {
        secrets: v[0],
        resources: v[1],
        hosts: v[2],
        regions: v[3],
        services: v[4],
    }
}

fn level_of(i: u8) -> Option<crate::sigma::Level> {
    use crate::sigma::Level::*;
    [
        None,
        Some(Informational),
        Some(Low),
        Some(Medium),
        Some(High),
        Some(Critical),
    ][i as usize % 6]
}

proptest::proptest! {
    /// Issue 11: the full 4-stage chain scored 80, below its own 3-stage part at 81 (a
    /// slower last step lowered the tempo). A chain never scores below any of its prefixes.
    #[test]
    fn a_chain_never_scores_below_its_prefix(
        gaps in proptest::collection::vec(0i64..7200, 1..6),
        touched in proptest::array::uniform5(0u32..40),
        more in proptest::array::uniform5(0u32..5),
        who in 0usize..3,
        level in 0u8..6,
    ) {
        let (a, l) = (admin(), low());
        let entry = [None, Some(&a), Some(&l)][who];
        let n = gaps.len() as u32 + 1;
        let grown = touched_from(std::array::from_fn(|i| touched[i] + more[i]));
        let full = score(&ScoreConfig::default(), &Weights::default(), &ScoreInput {
            entry, touched: grown, stage: (n, n),
            gaps: gaps.iter().map(|g| Span::from_secs(*g)).collect(),
            canary: false, level: level_of(level),
        });
        for k in 1..n {
            let prefix = score(&ScoreConfig::default(), &Weights::default(), &ScoreInput {
                entry, touched: touched_from(touched), stage: (k, n),
                gaps: gaps[..k as usize - 1].iter().map(|g| Span::from_secs(*g)).collect(),
                canary: false, level: level_of(level),
            });
            proptest::prop_assert!(prefix.score <= full.score,
                "prefix {k}/{n}: {} > {}", prefix.score, full.score);
        }
    }

    /// Issue 11: on W500 every single-event detection scored 51 ("stage 1 of 1" earned the
    /// stage points), above a real 3-stage chain at 46. A single event earns no chain
    /// points and scores below any 3-stage chain of the same identity class.
    #[test]
    fn a_single_event_scores_below_any_three_stage_chain_of_its_identity(
        single_touched in proptest::array::uniform5(0u32..1000),
        chain_touched in proptest::array::uniform5(0u32..3),
        gaps in proptest::collection::vec(0i64..86_400, 2..=2),
        who in 0usize..3,
        single_level in 0u8..6,
        chain_level in 0u8..6,
    ) {
        let (a, l) = (admin(), low());
        let entry = [None, Some(&a), Some(&l)][who];
        let single = score(&ScoreConfig::default(), &Weights::default(), &ScoreInput {
            entry, touched: touched_from(single_touched), stage: (1, 1), gaps: vec![],
            canary: false, level: level_of(single_level),
        });
        let chain = score(&ScoreConfig::default(), &Weights::default(), &ScoreInput {
            entry, touched: touched_from(chain_touched), stage: (3, 3),
            gaps: gaps.iter().map(|g| Span::from_secs(*g)).collect(),
            canary: false, level: level_of(chain_level),
        });
        let chain_points: u32 = single.factors.iter()
            .filter(|f| f.name == "stage" || f.name == "tempo").map(|f| f.points).sum();
        proptest::prop_assert_eq!(chain_points, 0);
        proptest::prop_assert!(single.score < chain.score,
            "single {} vs chain {}", single.score, chain.score);
    }
}

#[test]
fn largest_remainder_is_exact() {
    assert_eq!(largest_remainder(&[10.4, 20.4, 30.2], 61), vec![11, 20, 30]);
    assert_eq!(largest_remainder(&[0.5, 0.5], 1).iter().sum::<u32>(), 1);
    assert_eq!(
        largest_remainder(&[33.3, 33.3, 33.4], 100)
            .iter()
            .sum::<u32>(),
        100
    );
}
