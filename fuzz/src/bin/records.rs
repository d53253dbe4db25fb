//! Fuzz target: a cluster record (hit, credential link or stamp) as stage 2 and the lineage
//! reader take it from a topic: parsed, validated against the shipped CloudTrail rules, a
//! stamp applied to a frontier. Nothing may panic; what validates must write back to a record
//! that reads the same.

use std::path::PathBuf;
use std::sync::Arc;

use credtrail::cluster::frontier::{Frontier, Inputs};
use credtrail::cluster::placement::RulesFingerprint;
use credtrail::cluster::record::{HitRecord, Origin, Record};
use credtrail::matcher::{self, CompileOptions};
use credtrail::sigma::{self, LoadOptions};
use credtrail::vocab::Position;

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/cloudtrail");
    let catalog = sigma::load(std::slice::from_ref(&dir), &LoadOptions::default())
        .expect("the shipped rules load");
    let rules = matcher::compile(&catalog, &CompileOptions::default()).expect("they compile");
    let ours = RulesFingerprint::of(&rules);
    let inputs = Arc::new(Inputs::new([("cloudtrail".to_string(), 4)]));
    afl::fuzz!(|data: &[u8]| {
        let Ok(record) = Record::parse(data) else {
            return;
        };
        match record {
            Record::Hit(h) => {
                let origin = h.origin.clone();
                let pos = Position {
                    source: 0,
                    offset: 7,
                };
                if let Ok(hit) = h.into_hit(&rules, ours, pos, |g, _| g.len() as u64) {
                    let again = HitRecord::of(&hit, origin, ours).expect("a read hit writes");
                    let bytes = Record::Hit(again).to_bytes();
                    assert!(Record::parse(&bytes).is_ok(), "written record does not read");
                }
            }
            Record::Link(l) => {
                let origin: Origin = l.origin.clone();
                let _ = (l.into_link(None), origin);
            }
            Record::Stamp(s) => {
                let mut f = Frontier::new(inputs.clone());
                let _ = f.stamp(&s);
                let _ = f.time();
                let _ = f.admits(
                    &s.topic,
                    s.partition,
                    credtrail::time::EventTime(s.frontier),
                );
            }
        }
    });
}
