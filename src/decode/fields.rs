//! Fields: the names rules use, interned into slots, and the per-profile map from JSON paths to
//! those slots.
//!
//! A rule says `userIdentity.arn` or `CommandLine`; an event is a JSON tree. At load time every
//! field name any rule (or profile) needs gets a [`Slot`]. Each source profile then builds a
//! [`PathTrie`]: the JSON paths where that profile finds each slot (a Windows profile finds
//! `CommandLine` at the top level of flat events and under `Event.EventData` in nested ones).
//! Decoding walks the event's tape once, descending only into keys the trie knows, and records
//! the tape nodes of each slot in [`SlotValues`]. Nothing is looked up by name per event.

use std::collections::HashMap;

use foldhash::fast::FixedState;

/// The index of an interned field name.
pub type Slot = u32;

/// Field names interned to slots. Slots are dense, so per-event tables are plain vectors.
#[derive(Clone, Debug, Default)]
pub struct FieldTable {
    names: Vec<Box<str>>,
    by_name: HashMap<Box<str>, Slot>,
}

impl FieldTable {
    /// The slot of `name`, interning it on first use.
    pub fn intern(&mut self, name: &str) -> Slot {
        if let Some(&s) = self.by_name.get(name) {
            return s;
        }
        let s = self.names.len() as Slot;
        self.names.push(name.into());
        self.by_name.insert(name.into(), s);
        s
    }

    pub fn get(&self, name: &str) -> Option<Slot> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, slot: Slot) -> &str {
        &self.names[slot as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Slot, &str)> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (i as Slot, &**n))
    }
}

/// One step of a JSON path: a key, or any key (for containers whose child element name varies,
/// such as Windows `UserData`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    Key(Box<str>),
    AnyKey,
}

const NO_NODE: u32 = u32::MAX;

#[derive(Clone, Debug, Default)]
struct TrieNode {
    children: HashMap<Box<str>, u32, FixedState>,
    any_child: Option<u32>,
    /// Slots whose path ends here.
    slots: Vec<Slot>,
}

/// A trie of JSON paths ending in slots, for one source profile.
#[derive(Clone, Debug)]
pub struct PathTrie {
    nodes: Vec<TrieNode>,
    /// Whether an event key that the trie does not know is tried again with its spaces
    /// removed (Windows EventData: Defender writes `Threat Name` where rules say `ThreatName`).
    fold_spaces: bool,
}

impl Default for PathTrie {
    fn default() -> Self {
        PathTrie {
            nodes: vec![TrieNode::default()],
            fold_spaces: false,
        }
    }
}

/// Longest key whose spaces are removed for a second look-up; longer keys are not folded
/// (the copy lives on the stack, so folding allocates nothing).
const MAX_FOLDED_KEY: usize = 128;

/// Paths deeper than this are inserted only as written, not in every dotted spelling.
const MAX_DOTTED_SPELLINGS_DEPTH: usize = 6;

impl PathTrie {
    /// Adds `path` as a place where `slot` is found. Besides the nested spelling
    /// (`{"a":{"b":1}}`), every flattened spelling is added too (`{"a.b":1}`), because
    /// Logstash-style and ECS-flattened events write dotted keys.
    pub fn insert(&mut self, path: &[Step], slot: Slot) {
        let has_wildcard = path.iter().any(|s| matches!(s, Step::AnyKey));
        if path.len() <= MAX_DOTTED_SPELLINGS_DEPTH && !has_wildcard {
            // Each of the len-1 gaps between steps is either a nesting level or a dot.
            let gaps = path.len().saturating_sub(1);
            for mask in 0u32..(1 << gaps) {
                self.insert_exact(&join_by_mask(path, mask), slot);
            }
        } else {
            self.insert_exact(path, slot);
        }
    }

    fn insert_exact(&mut self, path: &[Step], slot: Slot) {
        let mut at = 0usize;
        for step in path {
            let next = match step {
                Step::Key(k) => self.nodes[at].children.get(k).copied(),
                Step::AnyKey => self.nodes[at].any_child,
            };
            at = match next {
                Some(n) => n as usize,
                None => {
                    let n = self.nodes.len() as u32;
                    self.nodes.push(TrieNode::default());
                    match step {
                        Step::Key(k) => {
                            self.nodes[at].children.insert(k.clone(), n);
                        }
                        Step::AnyKey => self.nodes[at].any_child = Some(n),
                    }
                    n as usize
                }
            };
        }
        if !self.nodes[at].slots.contains(&slot) {
            self.nodes[at].slots.push(slot);
        }
    }

    /// Makes event keys compare with their spaces removed when the key as written is unknown.
    pub fn fold_spaces(&mut self, fold: bool) {
        self.fold_spaces = fold;
    }

    /// The child of `node` for `key` with its spaces removed, if folding applies.
    fn folded_child(&self, node: &TrieNode, key: &str) -> Option<u32> {
        if !self.fold_spaces || key.len() > MAX_FOLDED_KEY || !key.contains(' ') {
            return None;
        }
        let mut buf = [0u8; MAX_FOLDED_KEY];
        let mut len = 0;
        for &b in key.as_bytes().iter().filter(|&&b| b != b' ') {
            buf[len] = b;
            len += 1;
        }
        // Removing ASCII spaces from UTF-8 leaves UTF-8.
        let folded = std::str::from_utf8(&buf[..len]).ok()?;
        node.children.get(folded).copied()
    }

    /// Walks the object at `tape[start]`, recording in `out` every node whose path the trie
    /// knows. Recursion follows the trie, whose depth is fixed at load time, never the event.
    pub fn extract(&self, tape: &[simd_json::Node<'_>], start: usize, out: &mut SlotValues) {
        self.walk_object(tape, start, 0, out);
    }

    fn walk_object(
        &self,
        tape: &[simd_json::Node<'_>],
        at: usize,
        trie: usize,
        out: &mut SlotValues,
    ) {
        let simd_json::Node::Object { len, .. } = tape[at] else {
            return;
        };
        let node = &self.nodes[trie];
        let mut i = at + 1;
        for _ in 0..len {
            let simd_json::Node::String(key) = tape[i] else {
                return;
            };
            let value = i + 1;
            let child = node
                .children
                .get(key)
                .copied()
                .or_else(|| self.folded_child(node, key))
                .or(node.any_child);
            if let Some(child) = child {
                self.visit(tape, value, child as usize, out);
            }
            i = value + node_extent(&tape[value]);
        }
    }

    fn visit(&self, tape: &[simd_json::Node<'_>], value: usize, trie: usize, out: &mut SlotValues) {
        let node = &self.nodes[trie];
        for &slot in &node.slots {
            out.push(slot, value as u32);
        }
        if node.children.is_empty() && node.any_child.is_none() {
            return;
        }
        match tape[value] {
            simd_json::Node::Object { .. } => self.walk_object(tape, value, trie, out),
            // A path that crosses an array continues into each element object
            // (`requestParameters.instancesSet.items.instanceId`).
            simd_json::Node::Array { len, .. } => {
                let mut e = value + 1;
                for _ in 0..len {
                    if matches!(tape[e], simd_json::Node::Object { .. }) {
                        self.walk_object(tape, e, trie, out);
                    }
                    e += node_extent(&tape[e]);
                }
            }
            _ => {}
        }
    }
}

/// The number of tape entries `node` spans, itself included.
pub fn node_extent(node: &simd_json::Node<'_>) -> usize {
    match node {
        simd_json::Node::Object { count, .. } | simd_json::Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

/// Joins the steps of a wildcard-free path with dots where `mask` has a bit set for the gap.
fn join_by_mask(path: &[Step], mask: u32) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(path.len());
    let mut current = String::new();
    for (i, step) in path.iter().enumerate() {
        let Step::Key(k) = step else { continue };
        if i > 0 && mask & (1 << (i - 1)) != 0 {
            current.push('.');
        } else if i > 0 {
            out.push(Step::Key(std::mem::take(&mut current).into()));
        }
        current.push_str(k);
    }
    out.push(Step::Key(current.into()));
    out
}

/// Splits a field name into path steps at dots.
pub fn split_path(name: &str) -> Vec<Step> {
    name.split('.').map(|s| Step::Key(s.into())).collect()
}

/// For one event: the tape nodes found for each slot, in document order. Reset per event in
/// O(1) with a generation counter instead of clearing a vector as long as the slot table.
#[derive(Clone, Debug, Default)]
pub struct SlotValues {
    generation: u32,
    slot_generation: Vec<u32>,
    head: Vec<u32>,
    tail: Vec<u32>,
    /// (tape node, next entry)
    entries: Vec<(u32, u32)>,
    /// Values the profile derived from the event rather than read from it (see
    /// [`derive`](super::derive)): (slot, text). Only the first `derived_len` are this event's;
    /// the strings behind them keep their allocation for the next event.
    derived: Vec<(Slot, String)>,
    derived_len: usize,
}

impl SlotValues {
    pub fn with_slots(n: usize) -> SlotValues {
        SlotValues {
            generation: 1,
            slot_generation: vec![0; n],
            head: vec![NO_NODE; n],
            tail: vec![NO_NODE; n],
            entries: Vec::new(),
            derived: Vec::new(),
            derived_len: 0,
        }
    }

    /// Forgets every slot's values.
    pub fn reset(&mut self) {
        self.entries.clear();
        self.derived_len = 0;
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.slot_generation.iter_mut().for_each(|g| *g = 0);
            self.generation = 1;
        }
    }

    pub fn push(&mut self, slot: Slot, node: u32) {
        let s = slot as usize;
        if s >= self.slot_generation.len() {
            return;
        }
        let e = self.entries.len() as u32;
        self.entries.push((node, NO_NODE));
        if self.slot_generation[s] != self.generation {
            self.slot_generation[s] = self.generation;
            self.head[s] = e;
        } else {
            let t = self.tail[s] as usize;
            self.entries[t].1 = e;
        }
        self.tail[s] = e;
    }

    /// The tape nodes of `slot`, in document order.
    pub fn nodes(&self, slot: Slot) -> SlotNodes<'_> {
        let s = slot as usize;
        let head = if s < self.slot_generation.len() && self.slot_generation[s] == self.generation {
            self.head[s]
        } else {
            NO_NODE
        };
        SlotNodes {
            values: self,
            next: head,
        }
    }

    pub fn has(&self, slot: Slot) -> bool {
        let s = slot as usize;
        (s < self.slot_generation.len() && self.slot_generation[s] == self.generation)
            || self.derived(slot).next().is_some()
    }

    /// Adds `text` as a derived value of `slot` for this event, after the values read.
    pub fn push_derived(&mut self, slot: Slot, text: impl FnOnce(&mut String)) {
        if self.derived_len == self.derived.len() {
            self.derived.push((slot, String::new()));
        }
        let entry = &mut self.derived[self.derived_len];
        entry.0 = slot;
        entry.1.clear();
        text(&mut entry.1);
        self.derived_len += 1;
    }

    /// The derived values of `slot` for this event, in the order they were added.
    pub fn derived(&self, slot: Slot) -> impl Iterator<Item = &str> {
        self.derived[..self.derived_len]
            .iter()
            .filter(move |(s, _)| *s == slot)
            .map(|(_, text)| text.as_str())
    }
}

/// Iterator over the tape nodes of one slot.
pub struct SlotNodes<'a> {
    values: &'a SlotValues,
    next: u32,
}

impl Iterator for SlotNodes<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.next == NO_NODE {
            return None;
        }
        let (node, next) = self.values.entries[self.next as usize];
        self.next = next;
        Some(node as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract(json: &str, paths: &[(&str, Slot)]) -> Vec<(Slot, Vec<String>)> {
        let mut trie = PathTrie::default();
        for (p, s) in paths {
            trie.insert(&split_path(p), *s);
        }
        let mut bytes = json.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut bytes).unwrap();
        let mut values = SlotValues::with_slots(8);
        values.reset();
        trie.extract(&tape.0, 0, &mut values);
        let mut out = Vec::new();
        for (_, s) in paths {
            let found: Vec<String> = values
                .nodes(*s)
                .map(|n| format!("{:?}", tape.0[n]))
                .collect();
            out.push((*s, found));
        }
        out
    }

    #[test]
    fn nested_and_dotted_spellings_reach_the_same_slot() {
        let got = extract(
            r#"{"a":{"b":"nested"},"a.b":"dotted","x":1}"#,
            &[("a.b", 0)],
        );
        assert_eq!(got[0].1, vec![r#"String("nested")"#, r#"String("dotted")"#]);
    }

    #[test]
    fn paths_cross_arrays_of_objects() {
        let got = extract(
            r#"{"items":[{"id":"i-1"},{"id":"i-2"},3]}"#,
            &[("items.id", 0)],
        );
        assert_eq!(got[0].1, vec![r#"String("i-1")"#, r#"String("i-2")"#]);
    }

    #[test]
    fn unknown_subtrees_are_skipped_and_siblings_found() {
        let json = r#"{"skip":{"deep":[{"x":{"y":1}}]},"want":"yes"}"#;
        let got = extract(json, &[("want", 1)]);
        assert_eq!(got[0].1, vec![r#"String("yes")"#]);
    }

    #[test]
    fn any_key_steps_match_every_child() {
        let mut trie = PathTrie::default();
        trie.insert(
            &[
                Step::Key("UserData".into()),
                Step::AnyKey,
                Step::Key("Name".into()),
            ],
            0,
        );
        let mut bytes = br#"{"UserData":{"LogFileCleared":{"Name":"x"}}}"#.to_vec();
        let tape = simd_json::to_tape(&mut bytes).unwrap();
        let mut values = SlotValues::with_slots(1);
        values.reset();
        trie.extract(&tape.0, 0, &mut values);
        assert_eq!(values.nodes(0).count(), 1);
    }

    #[test]
    fn keys_with_spaces_fold_only_when_asked() {
        let json = r#"{"Threat Name":"HackTool:Win32/Mimikatz"}"#;
        let mut bytes = json.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut bytes).unwrap();
        let mut trie = PathTrie::default();
        trie.insert(&split_path("ThreatName"), 0);
        let mut values = SlotValues::with_slots(1);
        values.reset();
        trie.extract(&tape.0, 0, &mut values);
        assert_eq!(values.nodes(0).count(), 0, "no folding by default");
        trie.fold_spaces(true);
        values.reset();
        trie.extract(&tape.0, 0, &mut values);
        assert_eq!(values.nodes(0).count(), 1);
    }

    #[test]
    fn reset_forgets_previous_event() {
        let mut v = SlotValues::with_slots(2);
        v.reset();
        v.push(1, 7);
        assert!(v.has(1));
        v.reset();
        assert!(!v.has(1));
        assert_eq!(v.nodes(1).count(), 0);
    }
}
