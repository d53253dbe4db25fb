//! The partition: which of a profile's plans an event gets, by the values its rules' log-source
//! guards test.
//!
//! A rule's log source guards it with "field is one of" conditions (on Windows,
//! `process_creation` is Sysmon's channel with event 1, or Security's with 4688; `service:
//! application` is the Application channel). With one plan per profile, every Windows event was
//! scanned for the literals of all 2,407 SigmaHQ Windows rules: a Sysmon image load with every
//! category's `Image` literals, and every event's scalars with the words of every keyword rule,
//! though outside the Application, System and Exchange channels only the mimikatz keywords rule
//! can match.
//!
//! So per profile the (at most [`MAX_KEYS`]) fields its guards test most are the *key*
//! (Windows: `Channel` and `EventID`). Every combination of the values guards name for them,
//! or "another value", gets the plan of the rules whose guard can hold there: a rule is left
//! out only when each alternative of its guard names other values for a key field. Guards are
//! monotone ("is one of", joined with `and` and `or`), so an absent field and an unnamed value
//! leave out the same rules. An event whose key field holds several values gets the profile's
//! whole plan. Candidates' guards are still evaluated: the partition only leaves out rules that
//! cannot match.

use std::collections::HashMap;

use foldhash::fast::FixedState;

use super::logsource::Guard;
use super::predicate::with_text;
use crate::decode::{EventView, FieldTable, Slot};

/// Most key fields per profile.
pub const MAX_KEYS: usize = 2;

/// Longest value a key field's guards may name (a longer one leaves the field out of the
/// key): an event's value is lowercased on the stack.
const KEY_VALUE_MAX: usize = 256;

/// Most combinations of key values a profile's table holds; beyond it the key loses its last
/// field.
const MAX_COMBINATIONS: usize = 1 << 16;

/// The plans of one profile's events, by key.
#[derive(Clone, Debug)]
pub struct PlanIndex {
    keys: Vec<KeyField>,
    /// Combination → plan (an index into the profile's plans): the first key's value index
    /// times the second's value count, plus the second's.
    table: Vec<u32>,
    /// The plan of every applicable rule.
    whole: u32,
}

/// One key field and the values guards name for it.
#[derive(Clone, Debug)]
struct KeyField {
    /// The field's name, as the guards write it.
    field: &'static str,
    slot: Slot,
    /// Lowercased value → its index (from 1; 0 is any other value). Looked up for every
    /// event, with Windows channel names of up to 68 bytes: a fixed fast hash (the keys are
    /// the rules' own values, not the events').
    values: HashMap<Box<[u8]>, u32, FixedState>,
    longest: usize,
}

impl KeyField {
    fn count(&self) -> usize {
        self.values.len() + 1
    }

    /// The index of the field's value in `view`: 0 when absent or unnamed, `None` when the
    /// field holds several values.
    fn value_of(&self, view: &EventView<'_, '_>, scratch: &mut String) -> Option<u32> {
        let mut values = view.values(self.slot);
        let Some(first) = values.next() else {
            return Some(0);
        };
        if values.next().is_some() {
            return None;
        }
        let mut index = 0;
        with_text(first, scratch, |text| {
            index = self.index_of(text);
            false
        });
        Some(index)
    }

    /// The index of `text` among the named values (0: unnamed).
    fn index_of(&self, text: &str) -> u32 {
        let mut buf = [0u8; KEY_VALUE_MAX];
        match buf.get_mut(..text.len()) {
            Some(lower) if text.len() <= self.longest => {
                lower.copy_from_slice(text.as_bytes());
                lower.make_ascii_lowercase();
                self.values.get(&*lower).copied().unwrap_or(0)
            }
            _ => 0,
        }
    }
}

impl PlanIndex {
    /// One plan for every event.
    pub fn single() -> PlanIndex {
        PlanIndex {
            keys: Vec::new(),
            table: vec![0],
            whole: 0,
        }
    }

    /// The plan (an index into the profile's plans) for `view`.
    #[inline]
    pub fn plan_of(&self, view: &EventView<'_, '_>, scratch: &mut String) -> u32 {
        self.plan_by(|k| k.value_of(view, scratch))
    }

    /// The plan for the value index of each key field (`None`: several values, the whole plan).
    #[inline]
    fn plan_by(&self, mut value_of: impl FnMut(&KeyField) -> Option<u32>) -> u32 {
        let mut at = 0usize;
        for k in &self.keys {
            let Some(i) = value_of(k) else {
                return self.whole;
            };
            at = at * k.count() + i as usize;
        }
        self.table.get(at).copied().unwrap_or(self.whole)
    }

    /// The profile's whole plan.
    pub fn whole(&self) -> u32 {
        self.whole
    }

    /// The plan for an event whose key fields hold `texts` (by key field slot; a slot not
    /// listed is absent), the way [`PlanIndex::plan_of`] finds it.
    pub fn plan_of_texts(&self, texts: &[(Slot, &str)]) -> u32 {
        self.plan_by(|k| {
            Some(
                texts
                    .iter()
                    .find(|(slot, _)| *slot == k.slot)
                    .map_or(0, |(_, t)| k.index_of(t)),
            )
        })
    }

    /// Shifts every plan index by `by` (the profile's first plan among all profiles').
    pub fn offset(&mut self, by: u32) {
        self.table.iter_mut().for_each(|p| *p += by);
        self.whole += by;
    }

    /// Number of key fields (for tests and diagnostics).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}

/// The rule subsets a profile's plans hold, and how events find theirs.
pub struct Partition {
    pub index: PlanIndex,
    /// Per plan: positions in the applicable rules given to [`partition`].
    pub subsets: Vec<Vec<usize>>,
}

/// Partitions the rules applicable to one profile by their guards there (`None`: unguarded).
pub fn partition(guards: &[Option<Guard>], fields: &FieldTable) -> Partition {
    let whole: Vec<usize> = (0..guards.len()).collect();
    let keys = key_fields(guards, fields);
    // A key whose plans are nearly whole costs plans to build and saves little (ECS: the
    // `event.category` alternatives hold whatever the channel, and its median plan held 69 %
    // of SigmaHQ's Windows rules): unless the median plan holds at most two thirds of the
    // rules, fewer keys are tried, then none.
    for n in (1..=keys.len()).rev() {
        let p = partition_by(&keys[..n], guards);
        let mut sizes: Vec<usize> = p
            .subsets
            .iter()
            .enumerate()
            .filter(|&(i, _)| i as u32 != p.index.whole)
            .map(|(_, s)| s.len())
            .collect();
        sizes.sort_unstable();
        if sizes
            .get(sizes.len() / 2)
            .is_some_and(|&m| m * 3 <= guards.len() * 2)
        {
            return p;
        }
    }
    Partition {
        index: PlanIndex::single(),
        subsets: vec![whole],
    }
}

/// The partition by `keys`.
fn partition_by(keys: &[KeyField], guards: &[Option<Guard>]) -> Partition {
    let mut distinct: Vec<&Guard> = Vec::new();
    let mut guard_of: Vec<Option<usize>> = Vec::with_capacity(guards.len());
    for g in guards {
        guard_of.push(
            g.as_ref()
                .map(|g| match distinct.iter().position(|d| *d == g) {
                    Some(i) => i,
                    None => {
                        distinct.push(g);
                        distinct.len() - 1
                    }
                }),
        );
    }
    let combinations: usize = keys.iter().map(KeyField::count).product();
    let mut table = Vec::with_capacity(combinations);
    let mut plan_of_signature: HashMap<Vec<bool>, u32> = HashMap::new();
    let mut subsets: Vec<Vec<usize>> = Vec::new();
    let mut subset_of = |signature: Vec<bool>, subsets: &mut Vec<Vec<usize>>| -> u32 {
        if let Some(&p) = plan_of_signature.get(&signature) {
            return p;
        }
        let subset = guard_of
            .iter()
            .enumerate()
            .filter(|(_, g)| g.is_none_or(|g| signature[g]))
            .map(|(i, _)| i)
            .collect();
        subsets.push(subset);
        let p = (subsets.len() - 1) as u32;
        plan_of_signature.insert(signature, p);
        p
    };
    let whole_plan = subset_of(vec![true; distinct.len()], &mut subsets);
    let mut combination = vec![0usize; keys.len()];
    for _ in 0..combinations {
        let signature = distinct
            .iter()
            .map(|g| holds_somewhere(g, keys, &combination))
            .collect();
        table.push(subset_of(signature, &mut subsets));
        // The next combination, the last key varying fastest.
        for k in (0..combination.len()).rev() {
            combination[k] += 1;
            if combination[k] < keys[k].count() {
                break;
            }
            combination[k] = 0;
        }
    }
    Partition {
        index: PlanIndex {
            keys: keys.to_vec(),
            table,
            whole: whole_plan,
        },
        subsets,
    }
}

/// Whether some alternative of `guard` can hold when each key field holds the value of index
/// `combination` (0: a value no guard names).
fn holds_somewhere(guard: &Guard, keys: &[KeyField], combination: &[usize]) -> bool {
    guard.alternatives.iter().any(|conditions| {
        conditions.iter().all(|c| {
            let Some(k) = keys.iter().position(|key| key.field == c.field) else {
                // Not a key field: it may hold.
                return true;
            };
            combination[k] != 0
                && c.values
                    .iter()
                    .any(|v| keys[k].index_of(v) as usize == combination[k])
        })
    })
}

/// The fields the guards test most (most alternatives naming them first, then by name), at
/// most [`MAX_KEYS`] and [`MAX_COMBINATIONS`] combinations, with the values named for each.
fn key_fields(guards: &[Option<Guard>], fields: &FieldTable) -> Vec<KeyField> {
    let mut uses: HashMap<&'static str, usize> = HashMap::new();
    for g in guards.iter().flatten() {
        for c in g.alternatives.iter().flatten() {
            *uses.entry(c.field).or_default() += 1;
        }
    }
    let mut ranked: Vec<(&'static str, usize)> = uses.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut keys: Vec<KeyField> = Vec::new();
    for (field, _) in ranked.into_iter().take(MAX_KEYS) {
        let Some(slot) = fields.get(field) else {
            continue;
        };
        let mut values: HashMap<Box<[u8]>, u32, FixedState> = HashMap::default();
        for g in guards.iter().flatten() {
            for c in g.alternatives.iter().flatten().filter(|c| c.field == field) {
                for v in c.values {
                    let lower: Box<[u8]> = v.as_bytes().to_ascii_lowercase().into();
                    let next = values.len() as u32 + 1;
                    values.entry(lower).or_insert(next);
                }
            }
        }
        let longest = values.keys().map(|v| v.len()).max().unwrap_or(0);
        if longest > KEY_VALUE_MAX {
            continue;
        }
        keys.push(KeyField {
            field,
            slot,
            values,
            longest,
        });
        if keys.iter().map(KeyField::count).product::<usize>() > MAX_COMBINATIONS {
            keys.pop();
            break;
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::logsource::FieldIs;
    use proptest::prelude::*;

    const FIELDS: [&str; 3] = ["Channel", "EventID", "Other"];
    const VALUES: [&[&str]; 5] = [&["a"], &["A", "b"], &["1"], &["2", "1"], &["c"]];
    const TEXTS: [&str; 6] = ["a", "B", "1", "2", "c", "zz"];

    fn table() -> FieldTable {
        let mut t = FieldTable::default();
        for f in FIELDS {
            t.intern(f);
        }
        t
    }

    /// Whether `guard` holds on an event whose fields hold `texts` (absent where `None`),
    /// evaluated directly.
    fn holds(guard: &Guard, texts: &[Option<&str>; 3]) -> bool {
        guard.alternatives.iter().any(|alt| {
            alt.iter().all(|c| {
                let f = FIELDS.iter().position(|f| *f == c.field).unwrap_or(0);
                texts[f].is_some_and(|t| c.values.iter().any(|v| v.eq_ignore_ascii_case(t)))
            })
        })
    }

    fn guard_strategy() -> impl Strategy<Value = Option<Guard>> {
        let condition = (0..FIELDS.len(), 0..VALUES.len()).prop_map(|(f, v)| FieldIs {
            field: FIELDS[f],
            values: VALUES[v],
        });
        let alternative = prop::collection::vec(condition, 1..3);
        prop::option::of(
            prop::collection::vec(alternative, 1..3)
                .prop_map(|alternatives| Guard { alternatives }),
        )
    }

    proptest! {
        /// Whatever the guards and the event, a rule whose guard holds on the event is in the
        /// plan the event gets: the partition only leaves out rules that cannot match.
        #[test]
        fn a_rule_whose_guard_holds_is_in_the_events_plan(
            guards in prop::collection::vec(guard_strategy(), 1..8),
            picks in prop::collection::vec(prop::option::of(0..TEXTS.len()), 3),
        ) {
            let fields = table();
            let p = partition(&guards, &fields);
            let texts: [Option<&str>; 3] = [
                picks[0].map(|i| TEXTS[i]),
                picks[1].map(|i| TEXTS[i]),
                picks[2].map(|i| TEXTS[i]),
            ];
            let given: Vec<(Slot, &str)> = FIELDS
                .iter()
                .zip(texts)
                .filter_map(|(f, t)| Some((fields.get(f)?, t?)))
                .collect();
            let plan = p.index.plan_of_texts(&given) as usize;
            let subset = &p.subsets[plan];
            for (i, g) in guards.iter().enumerate() {
                if g.as_ref().is_none_or(|g| holds(g, &texts)) {
                    prop_assert!(subset.contains(&i), "rule {} ({:?}) left out of {:?}", i, g, texts);
                }
            }
            // The whole plan holds every rule.
            prop_assert_eq!(p.subsets[p.index.whole() as usize].len(), guards.len());
        }
    }

    /// Two services and an unguarded rule: each channel's events get their service's rules and
    /// the unguarded one, another channel only the unguarded one.
    #[test]
    fn each_channel_gets_its_services_rules() {
        let fields = table();
        let on = |channel: &'static [&'static str]| {
            Some(Guard {
                alternatives: vec![vec![FieldIs {
                    field: "Channel",
                    values: channel,
                }]],
            })
        };
        let guards = vec![on(&["a"]), on(&["c"]), None];
        let p = partition(&guards, &fields);
        assert_eq!(p.index.key_count(), 1);
        let channel = fields.get("Channel").unwrap();
        let subset = |text: &str| &p.subsets[p.index.plan_of_texts(&[(channel, text)]) as usize];
        assert_eq!(subset("A"), &vec![0, 2]);
        assert_eq!(subset("c"), &vec![1, 2]);
        assert_eq!(subset("zz"), &vec![2]);
        assert_eq!(&p.subsets[p.index.plan_of_texts(&[]) as usize], &vec![2]);
    }

    /// Guards whose every alternative has one the key cannot decide (ECS's `event.category`
    /// beside `winlog.channel`) would give plans nearly whole: the profile keeps one plan.
    #[test]
    fn a_key_that_leaves_plans_nearly_whole_is_dropped() {
        let fields = table();
        let guard = |channel: &'static [&'static str]| {
            Some(Guard {
                alternatives: vec![
                    vec![
                        FieldIs {
                            field: "Channel",
                            values: channel,
                        },
                        FieldIs {
                            field: "EventID",
                            values: &["1"],
                        },
                    ],
                    vec![FieldIs {
                        field: "Other",
                        values: &["c"],
                    }],
                ],
            })
        };
        let p = partition(&[guard(&["a"]), guard(&["b"]), guard(&["a"])], &fields);
        assert_eq!(p.index.key_count(), 0);
        assert_eq!(p.subsets, vec![vec![0, 1, 2]]);
    }
}
