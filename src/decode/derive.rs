//! Derived values: what a Security audit event says in its own words, rewritten into the words
//! Sysmon and SigmaHQ's rules use, as extra values of the canonical field.
//!
//! A field map ([`fieldmap`](super::fieldmap)) is enough when only the name differs
//! (`DestAddress` is `DestinationIp`). For some fields the value is spelled differently too,
//! and a rename alone would make the rule silently miss:
//!
//! - Security 5156 says `Direction: %%14593` (outbound) where Sysmon 3 says `Initiated: true`;
//!   41 of SigmaHQ's 51 `network_connection` rules ask for `Initiated: 'true'`.
//! - 5156 says `Protocol: 6` where Sysmon says `tcp`.
//! - 5156 names the program by its device path (`\device\harddiskvolume2\windows\system32\
//!   svchost.exe`); rules write `C:\Windows\...` and filter on `Image|startswith: 'C:\...'`.
//!   The event does not say which drive letter the volume has: `C:` is assumed, as Hayabusa's
//!   SigmaHQ conversion assumes (it turns `C:\` into "any volume"). The device path stays a
//!   value of `Image` too, so `endswith` and `contains` do not depend on the guess.
//! - 4657 splits a registry value into `ObjectName` (`\REGISTRY\MACHINE\SOFTWARE\...\Run`)
//!   and `ObjectValueName` (`evil`); Sysmon's `TargetObject` is one string in the hive's short
//!   name (`HKLM\SOFTWARE\...\Run\evil`), and rules end their `TargetObject|endswith` with the
//!   value name.
//!
//! The rewrites are the ones SigmaHQ's pySigma Windows audit pipeline and Hayabusa's conversion
//! of SigmaHQ rules to Security events make, done on the event instead of on each rule, so
//! every modifier (`startswith`, `re`, `cidr`, ...) sees them. A derived value is added after
//! the values read, never instead of them: a rule written with the Security spelling
//! (`Direction: '%%14593'`) still finds it.
//!
//! A derivation runs only when some loaded rule names its target field, and costs an event
//! one slot check per derivation when the source field is absent.

use simd_json::{Node, StaticNode};

use super::fields::{FieldTable, Slot, SlotValues};
use super::profile::ProfileKind;

/// How a derived value is made from its source values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rewrite {
    /// WFP `Direction` (`%%14593`/`Outbound`, `%%14592`/`Inbound`) to Sysmon's `Initiated`
    /// (`true`/`false`).
    Initiated,
    /// An IP protocol number (6, 17) to Sysmon's name (`tcp`, `udp`).
    ProtocolName,
    /// `\device\harddiskvolumeN\path` to `C:\path`.
    DrivePath,
    /// `\REGISTRY\MACHINE\key` and `\REGISTRY\USER\key` (first source) with a value name
    /// (second source) to `HKLM\key\value` and `HKU\key\value`.
    RegistryPath,
}

/// One derivation: `target` gets a value made by `rewrite` from the values of `sources`.
#[derive(Clone, Copy, Debug)]
struct Derivation {
    target: &'static str,
    sources: &'static [&'static str],
    rewrite: Rewrite,
}

/// The Windows profile's derivations (Security 5156 and 4657).
const WINDOWS: &[Derivation] = &[
    Derivation {
        target: "Initiated",
        sources: &["Direction"],
        rewrite: Rewrite::Initiated,
    },
    Derivation {
        target: "Protocol",
        sources: &["Protocol"],
        rewrite: Rewrite::ProtocolName,
    },
    Derivation {
        target: "Image",
        sources: &["Application"],
        rewrite: Rewrite::DrivePath,
    },
    Derivation {
        target: "TargetObject",
        sources: &["ObjectName", "ObjectValueName"],
        rewrite: Rewrite::RegistryPath,
    },
];

/// A derivation resolved to slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledDerivation {
    target: Slot,
    sources: Vec<Slot>,
    rewrite: Rewrite,
}

/// The derivations of `kind` whose target a rule already interned in `fields`, with their
/// source fields interned (the profile's trie then finds them). Call after the rules' fields
/// and before the tries are built.
pub fn compile(kind: ProfileKind, fields: &mut FieldTable) -> Vec<CompiledDerivation> {
    let table: &[Derivation] = match kind {
        ProfileKind::Windows => WINDOWS,
        _ => &[],
    };
    table
        .iter()
        .filter_map(|d| {
            let target = fields.get(d.target)?;
            Some(CompiledDerivation {
                target,
                sources: d.sources.iter().map(|s| fields.intern(s)).collect(),
                rewrite: d.rewrite,
            })
        })
        .collect()
}

/// Most values of one source field a derivation looks at (an EventData field has one).
const MAX_SOURCE_VALUES: usize = 4;

/// Adds to `slots` the values `derivations` make from the event's values on `tape`. Allocates
/// nothing once the slot table's derived strings have grown to the event's needs.
pub fn apply(derivations: &[CompiledDerivation], tape: &[Node<'_>], slots: &mut SlotValues) {
    for d in derivations {
        let Some(&first) = d.sources.first() else {
            continue;
        };
        if !slots.has(first) {
            continue;
        }
        let mut nodes = [0usize; MAX_SOURCE_VALUES];
        let mut count = 0;
        for n in slots.nodes(first).take(MAX_SOURCE_VALUES) {
            nodes[count] = n;
            count += 1;
        }
        for &n in &nodes[..count] {
            match (d.rewrite, &tape[n]) {
                (Rewrite::Initiated, Node::String(v)) => {
                    if let Some(initiated) = initiated(v) {
                        slots.push_derived(d.target, |out| out.push_str(initiated));
                    }
                }
                (Rewrite::ProtocolName, value) => {
                    let name = match value {
                        Node::String(v) => protocol_name(v.trim()),
                        Node::Static(StaticNode::I64(6) | StaticNode::U64(6)) => Some("tcp"),
                        Node::Static(StaticNode::I64(17) | StaticNode::U64(17)) => Some("udp"),
                        _ => None,
                    };
                    if let Some(name) = name {
                        slots.push_derived(d.target, |out| out.push_str(name));
                    }
                }
                (Rewrite::DrivePath, Node::String(v)) => {
                    if let Some(rest) = after_volume(v) {
                        slots.push_derived(d.target, |out| {
                            out.push_str("C:");
                            out.push_str(rest);
                        });
                    }
                }
                (Rewrite::RegistryPath, Node::String(v)) => {
                    let Some((hive, key)) = registry_hive(v) else {
                        continue;
                    };
                    let value_name = d
                        .sources
                        .get(1)
                        .and_then(|&s| slots.nodes(s).next())
                        .and_then(|n| match tape[n] {
                            Node::String(name) => Some(name),
                            _ => None,
                        })
                        .filter(|name| !name.is_empty() && *name != "-");
                    slots.push_derived(d.target, |out| {
                        out.push_str(hive);
                        out.push_str(key);
                        if let Some(name) = value_name {
                            out.push('\\');
                            out.push_str(name);
                        }
                    });
                }
                _ => {}
            }
        }
    }
}

fn initiated(direction: &str) -> Option<&'static str> {
    let d = direction.trim();
    if d == "%%14593" || d.eq_ignore_ascii_case("outbound") {
        Some("true")
    } else if d == "%%14592" || d.eq_ignore_ascii_case("inbound") {
        Some("false")
    } else {
        None
    }
}

fn protocol_name(number: &str) -> Option<&'static str> {
    match number {
        "6" => Some("tcp"),
        "17" => Some("udp"),
        _ => None,
    }
}

/// The path after `\device\harddiskvolumeN`, starting with its `\`.
fn after_volume(path: &str) -> Option<&str> {
    const PREFIX: &str = "\\device\\harddiskvolume";
    let head = path.get(..PREFIX.len())?;
    if !head.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let rest = &path[PREFIX.len()..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &rest[digits..];
    (digits > 0 && rest.starts_with('\\')).then_some(rest)
}

/// The short hive name Sysmon writes and the key after the hive, starting with its `\`.
fn registry_hive(object: &str) -> Option<(&'static str, &str)> {
    for (long, short) in [("\\registry\\machine", "HKLM"), ("\\registry\\user", "HKU")] {
        if let Some(head) = object.get(..long.len())
            && head.eq_ignore_ascii_case(long)
        {
            let key = &object[long.len()..];
            if key.is_empty() || key.starts_with('\\') {
                return Some((short, key));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_rewritten_to_sysmon_spellings() {
        assert_eq!(initiated("%%14593"), Some("true"));
        assert_eq!(initiated("Inbound"), Some("false"));
        assert_eq!(initiated("%%14594"), None);
        assert_eq!(protocol_name("17"), Some("udp"));
        assert_eq!(protocol_name("tcp"), None);
        assert_eq!(
            after_volume("\\device\\harddiskvolume2\\windows\\system32\\svchost.exe"),
            Some("\\windows\\system32\\svchost.exe")
        );
        assert_eq!(after_volume("System"), None);
        assert_eq!(after_volume("\\device\\harddiskvolume\\x"), None);
        assert_eq!(
            registry_hive("\\REGISTRY\\MACHINE\\SOFTWARE\\Run"),
            Some(("HKLM", "\\SOFTWARE\\Run"))
        );
        assert_eq!(
            registry_hive("\\REGISTRY\\USER\\S-1-5-21-1\\Software"),
            Some(("HKU", "\\S-1-5-21-1\\Software"))
        );
        assert_eq!(registry_hive("\\REGISTRY\\MACHINEX"), None);
        assert_eq!(registry_hive("C:\\Windows\\file.txt"), None);
    }

    #[test]
    fn only_targets_a_rule_names_are_derived() {
        let mut fields = FieldTable::default();
        assert!(compile(ProfileKind::Windows, &mut fields).is_empty());
        assert!(
            fields.get("Direction").is_none(),
            "no source interned for nothing"
        );
        let initiated = fields.intern("Initiated");
        let compiled = compile(ProfileKind::Windows, &mut fields);
        assert_eq!(compiled.len(), 1);
        assert_eq!(compiled[0].target, initiated);
        assert_eq!(compiled[0].sources, vec![fields.get("Direction").unwrap()]);
        assert!(compile(ProfileKind::Ecs, &mut fields).is_empty());
    }
}
