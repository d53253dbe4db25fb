//! Fuzz target: a checkpoint record's value (`<offset> <resume>`) and commit metadata, read
//! as the service reads them after a restart. What decodes must encode back to itself.

use credtrail::service::ledger::Resume;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let rest = match text.split_once(' ') {
            Some((offset, rest)) if offset.parse::<u64>().is_ok() => rest,
            _ => text,
        };
        if let Ok(Some(resume)) = Resume::decode(rest) {
            let again = Resume::decode(&resume.encode());
            assert_eq!(again, Ok(Some(resume)), "{rest:?} does not round-trip");
        }
    });
}
