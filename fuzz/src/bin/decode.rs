//! Fuzz target: one event, decoded by a profile and matched against the shipped rule pack.
//! The first byte picks the profile (a Kafka topic's forced profile, or recognition per
//! event); the rest is the event. Decoding, salvage, matching, the event id and the identity
//! must never panic, whatever the bytes.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

use credtrail::decode::{Decoder, ProfileKind};
use credtrail::matcher::{self, CompileOptions, Matcher};
use credtrail::sigma::{self, LoadOptions};

fn main() {
    let rules_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let catalog = sigma::load(&[rules_dir], &LoadOptions::default()).expect("the rule pack loads");
    let rules = matcher::compile(&catalog, &CompileOptions::default()).expect("it compiles");
    let mut state = AssertUnwindSafe((Decoder::new(&rules.schema), Matcher::new(&rules), Vec::new()));
    afl::fuzz!(|data: &[u8]| {
        let Some((&pick, raw)) = data.split_first() else {
            return;
        };
        let forced = ProfileKind::ALL.get(pick as usize % (ProfileKind::ALL.len() + 1)).copied();
        let (decoder, matcher, matched) = &mut *state;
        decoder.decode_as(&rules.schema, forced, raw, raw.len(), |view| {
            if let Ok(view) = view {
                matched.clear();
                matcher.matches(&rules, &view, matched);
                let _ = view.event_id(&rules.schema);
                let _ = view.identity(&rules.schema);
            }
        });
    });
}
