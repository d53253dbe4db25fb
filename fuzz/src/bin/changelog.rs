//! Fuzz target: a changelog partition as a new owner reads it on assignment (records of any
//! keys and values, tombstones, markers, in any order), restored against the shipped
//! CloudTrail rules. Nothing may panic; what restores must be adopted by a shard whole.
//!
//! The input is a stream of records: a key length byte (mod 64), the key, a flag byte (bit 0:
//! a value follows, else a tombstone), a two-byte little-endian value length (mod 4096), the
//! value.

use std::path::PathBuf;
use std::sync::Arc;

use credtrail::cluster::changelog::Replica;
use credtrail::correlate::{ShardEngine, ShardLimits};
use credtrail::matcher::{self, CompileOptions};
use credtrail::sigma::{self, LoadOptions};

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/cloudtrail");
    let catalog = sigma::load(std::slice::from_ref(&dir), &LoadOptions::default())
        .expect("the shipped rules load");
    let rules = Arc::new(matcher::compile(&catalog, &CompileOptions::default()).expect("compile"));
    afl::fuzz!(|data: &[u8]| {
        let mut replica = Replica::new(1 << 20);
        let mut rest = data;
        while let Some((&klen, tail)) = rest.split_first() {
            let klen = (klen % 64) as usize;
            if tail.len() < klen + 1 {
                break;
            }
            let (key, tail) = tail.split_at(klen);
            let (flag, tail) = (tail[0], &tail[1..]);
            if flag & 1 == 0 {
                replica.apply(key, None);
                rest = tail;
                continue;
            }
            if tail.len() < 2 {
                break;
            }
            let vlen = (u16::from_le_bytes([tail[0], tail[1]]) % 4096) as usize;
            let tail = &tail[2..];
            let vlen = vlen.min(tail.len());
            let (value, tail) = tail.split_at(vlen);
            replica.apply(key, Some(value));
            rest = tail;
        }
        let keys = replica.keys().len();
        if let Ok(restored) = replica.restore(&rules, 0) {
            assert_eq!(restored.snapshot.states.len(), keys, "the marker's count is the keys");
            let mut shard = ShardEngine::new(rules.clone(), ShardLimits::default());
            shard
                .import(restored.snapshot)
                .expect("a restored partition is adopted whole");
        }
    });
}
