//! Eviction that attackers cannot exploit: a flood of one-event identities must not push an
//! advanced chain of a high-blast identity out of a shard's bounded state.

use std::path::Path;
use std::sync::Arc;

use credtrail::correlate::{EventRef, Hit, ShardEngine, ShardLimits, Target};
use credtrail::input::Position;
use credtrail::inventory::{IdentityEntry, Inventory, Privilege, ReachSpec};
use credtrail::matcher::{self, CompileOptions, RuleSet};
use credtrail::pipeline::budget::MemoryBudget;
use credtrail::score::Assessor;
use credtrail::sigma::{self, LoadOptions};
use credtrail::time::EventTime;
use proptest::prelude::*;

const RULES: &str = "title: a\nname: a\ndetection: {s: {eventName: A}, condition: s}\n---\ntitle: b\nname: b\ndetection: {s: {eventName: B}, condition: s}\n---\ntitle: c\nname: c\ndetection: {s: {eventName: C}, condition: s}\n---\ntitle: chain\ncorrelation: {type: temporal_ordered, rules: [a, b, c], group-by: [credtrail.identity], timespan: 1h}\n";

const ADMIN: &str = "arn:aws:iam::1:user/admin";
const BUDGET: usize = 8 << 20;

/// The chain of [`RULES`] (correlation 0) and one noisy `event_count` rule (correlation 1)
/// grouped by source address and event name, the kind a detection engineer writes for
/// brute force: one state per distinct address.
const NOISY_RULES: &str = "title: noise\nname: noise\ndetection: {s: {eventName: N}, condition: s}\n---\ntitle: noisy\ncorrelation: {type: event_count, rules: [noise], group-by: [sourceIPAddress, eventName], timespan: 1h, condition: {gte: 1000}}\n";

fn rules() -> Arc<RuleSet> {
    compile_rules(RULES)
}

fn compile_rules(text: &str) -> Arc<RuleSet> {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    sigma::parse_text(
        Path::new("flood.yml"),
        text,
        &LoadOptions::default(),
        &mut rules,
        &mut errors,
    );
    let catalog = sigma::resolve(rules, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    Arc::new(matcher::compile(&catalog, &CompileOptions::default()).unwrap())
}

fn assessor() -> Arc<Assessor> {
    let admin = IdentityEntry {
        pattern: ADMIN.into(),
        kind: None,
        owner: None,
        environment: None,
        privilege: Some(Privilege::Admin),
        reach: ReachSpec::default(),
        credential: None,
        canary: false,
    };
    let inventory = Inventory::new(vec![admin], Vec::new(), Path::new("inline")).unwrap();
    Arc::new(Assessor {
        inventory: Some(Arc::new(inventory)),
        ..Assessor::default()
    })
}

fn hit(group: &str, stage: u32, at_ms: i64, n: u64) -> Hit {
    hit_of(0, group, stage, at_ms, n)
}

fn hit_of(correlation: u32, group: &str, stage: u32, at_ms: i64, n: u64) -> Hit {
    Hit {
        target: Target::Correlation(correlation),
        stages: 1 << stage,
        group: group.into(),
        value: None,
        event: EventRef {
            time: EventTime::from_millis(1_700_000_000_000 + at_ms),
            key: n,
            pos: Position {
                source: 0,
                offset: n,
            },
            id: format!("e{n}").into(),
            parts: None,
            actor: None,
            details: None,
        },
        shard_key: 0,
        touched: Vec::new(),
    }
}

/// Floods `flood` one-event identities (each a first step, so each a new state) through one
/// shard while the admin's chain takes its three steps at `steps` (positions in the flood).
/// Returns (alerts for the admin, evictions, largest state bytes seen).
fn run(flood: u64, steps: [u64; 3]) -> (usize, u64, usize) {
    let mut engine = ShardEngine::new(
        rules(),
        ShardLimits {
            max_pending: 1 << 16,
            max_states: usize::MAX,
            max_state_bytes: BUDGET,
        },
    )
    .with_assessor(assessor());
    let mut out = Vec::new();
    let mut largest = 0;
    let mut next_step = 0;
    for i in 0..flood {
        while next_step < 3 && steps[next_step] == i {
            engine.push(
                hit(
                    ADMIN,
                    next_step as u32,
                    i as i64,
                    u64::MAX - next_step as u64,
                ),
                &mut out,
            );
            next_step += 1;
        }
        engine.push(
            hit(&format!("arn:aws:iam::1:user/flood-{i}"), 0, i as i64, i),
            &mut out,
        );
        if i % 256 == 0 {
            engine.advance(
                EventTime::from_millis(1_700_000_000_000 + i as i64),
                &mut out,
            );
            largest = largest.max(engine.state_bytes());
        }
    }
    engine.advance(
        EventTime::from_millis(1_700_000_000_000 + flood as i64 + 1),
        &mut out,
    );
    largest = largest.max(engine.state_bytes());
    let admin_alerts = out.iter().filter(|f| &*f.group == ADMIN).count();
    (admin_alerts, engine.stats().evicted, largest)
}

/// One state is added after the budget check: the budget can be exceeded by one state's size.
const SLACK: usize = 4096;

#[test]
fn one_million_flood_identities_do_not_evict_an_advanced_admin_chain() {
    let (alerts, evicted, largest) = run(1_000_000, [1_000, 400_000, 999_000]);
    assert_eq!(alerts, 1, "the admin's chain survived and fired");
    assert!(
        evicted > 900_000,
        "the flood was evicted instead ({evicted})"
    );
    assert!(
        largest <= BUDGET + SLACK,
        "state grew to {largest} bytes, over the {BUDGET} budget"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]

    #[test]
    fn any_interleaving_keeps_the_admin_chain_within_budget(a in 0u64..50_000, b in 0u64..50_000, c in 0u64..50_000) {
        let mut steps = [a, b, c];
        steps.sort_unstable();
        let (alerts, evicted, largest) = run(60_000, steps);
        prop_assert_eq!(alerts, 1);
        prop_assert!(evicted > 0);
        prop_assert!(largest <= BUDGET + SLACK);
    }
}

#[test]
fn without_the_inventory_the_budget_still_holds() {
    // The same flood with nobody marked: memory stays bounded; which chain survives is then
    // decided by stage and age alone.
    let mut engine = ShardEngine::new(
        rules(),
        ShardLimits {
            max_pending: 1 << 16,
            max_states: usize::MAX,
            max_state_bytes: 1 << 20,
        },
    );
    let mut out = Vec::new();
    for i in 0..100_000u64 {
        engine.push(hit(&format!("u{i}"), 0, i as i64, i), &mut out);
        if i % 256 == 0 {
            engine.advance(
                EventTime::from_millis(1_700_000_000_000 + i as i64),
                &mut out,
            );
            assert!(engine.state_bytes() <= (1 << 20) + SLACK);
        }
    }
}

/// Regression (issue 13, "rules evict each other"): one noisy `event_count` rule grouped by
/// source address filled the shard's budget and evicted, oldest first, an ordinary (not
/// inventory-marked) identity's chain in progress of another rule. Each rule's states are now
/// ranked apart and the shard evicts from the rule holding the most bytes, so the flood evicts
/// only its own states.
#[test]
fn one_noisy_rule_does_not_evict_another_rules_chain() {
    let text = format!("{RULES}---\n{NOISY_RULES}");
    let rules = compile_rules(&text);
    let noisy = rules
        .correlations
        .iter()
        .position(|c| c.kind == credtrail::sigma::CorrelationType::EventCount)
        .expect("the noisy rule compiled") as u32;
    let chain = 1 - noisy;
    let mut engine = ShardEngine::new(
        rules,
        ShardLimits {
            max_pending: 1 << 16,
            max_states: usize::MAX,
            max_state_bytes: BUDGET,
        },
    );
    let victim = "arn:aws:iam::1:user/victim";
    let mut out = Vec::new();
    let flood = 1_500_000u64;
    engine.push(hit_of(chain, victim, 0, 0, u64::MAX), &mut out);
    for i in 0..flood {
        let group = format!(
            "10.{}.{}.{}\u{1f}ListBuckets",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        );
        engine.push(hit_of(noisy, &group, 0, i as i64, i), &mut out);
        if i % 1024 == 0 {
            engine.advance(
                EventTime::from_millis(1_700_000_000_000 + i as i64),
                &mut out,
            );
            assert!(engine.state_bytes() <= BUDGET + SLACK);
        }
    }
    engine.push(
        hit_of(chain, victim, 1, flood as i64, u64::MAX - 1),
        &mut out,
    );
    engine.push(
        hit_of(chain, victim, 2, flood as i64 + 1, u64::MAX - 2),
        &mut out,
    );
    engine.advance(
        EventTime::from_millis(1_700_000_000_000 + flood as i64 + 2),
        &mut out,
    );
    let alerts = out.iter().filter(|f| &*f.group == victim).count();
    assert_eq!(
        alerts, 1,
        "the victim's chain survived the other rule's flood"
    );
    assert!(
        engine.stats().evicted > 1_000_000,
        "the flood evicted its own states ({})",
        engine.stats().evicted
    );
}

/// Issue 13's second flood: a victim (nobody the inventory marks) at stage 1, then a million
/// one-event identities of the same rule, then the victim's stages 2 and 3. Within one rule and
/// one rank the oldest state goes first, so what saves the victim is a budget that holds a
/// million states: the split of a 2 GiB memory budget for one shard (1 GiB of state) does,
/// with nothing evicted.
#[test]
fn a_million_one_event_identities_fit_a_2gib_budget_and_the_victim_alerts() {
    let split = MemoryBudget::new(Some(2 << 30)).unwrap().split(1, 1);
    let mut engine = ShardEngine::new(rules(), split.shard);
    let victim = "arn:aws:iam::1:user/victim";
    let mut out = Vec::new();
    let flood = 1_000_000u64;
    engine.push(hit(victim, 0, 0, u64::MAX), &mut out);
    for i in 0..flood {
        engine.push(
            hit(&format!("arn:aws:iam::1:user/flood-{i}"), 0, i as i64, i),
            &mut out,
        );
        if i % 4096 == 0 {
            engine.advance(
                EventTime::from_millis(1_700_000_000_000 + i as i64),
                &mut out,
            );
        }
    }
    let per_state = engine.state_bytes() / engine.live_states();
    engine.push(hit(victim, 1, flood as i64, u64::MAX - 1), &mut out);
    engine.push(hit(victim, 2, flood as i64 + 1, u64::MAX - 2), &mut out);
    engine.advance(
        EventTime::from_millis(1_700_000_000_000 + flood as i64 + 2),
        &mut out,
    );
    assert_eq!(out.iter().filter(|f| &*f.group == victim).count(), 1);
    assert_eq!(engine.stats().evicted, 0, "{per_state} bytes per state");
    assert!(engine.state_bytes() <= split.shard.max_state_bytes);
}
