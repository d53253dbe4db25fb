//! Dead letters: events that could not be processed, kept whole with the reason, so nothing is
//! lost silently. In replay they go to a JSON-lines file, created on the first dead letter.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Serialize;

use crate::input::{Position, SourceInfo, Sources};

/// One event that could not be processed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub pos: Position,
    /// A short stable reason code (`invalid_json`, `late`, ...).
    pub kind: &'static str,
    /// The reason in words.
    pub reason: String,
    /// The event's bytes as read (cut at the reader's limit when `truncated`).
    pub raw: Vec<u8>,
    /// The event's full length in bytes.
    pub bytes: usize,
}

impl DeadLetter {
    pub fn truncated(&self) -> bool {
        self.raw.len() < self.bytes
    }
}

#[derive(Serialize)]
struct Record<'a> {
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    kind: &'a str,
    reason: &'a str,
    bytes: usize,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
}

/// Renders a dead letter as one JSON line (without the newline). Bytes that are not UTF-8 are
/// kept exactly, base64-encoded in `raw_base64`.
pub fn render(d: &DeadLetter, sources: &Sources) -> Vec<u8> {
    let (source, line, partition, offset) = match sources.get(d.pos.source) {
        Some(SourceInfo::File(p)) => (p.display().to_string(), Some(d.pos.offset), None, None),
        Some(SourceInfo::Stdin) => ("-".to_string(), Some(d.pos.offset), None, None),
        Some(SourceInfo::Kafka { topic, partition }) => {
            (topic.clone(), None, Some(*partition), Some(d.pos.offset))
        }
        None => (
            format!("source#{}", d.pos.source),
            Some(d.pos.offset),
            None,
            None,
        ),
    };
    let text = std::str::from_utf8(&d.raw).ok();
    let record = Record {
        source,
        line,
        partition,
        offset,
        kind: d.kind,
        reason: &d.reason,
        bytes: d.bytes,
        truncated: d.truncated(),
        raw: text,
        raw_base64: if text.is_none() {
            Some(base64::engine::general_purpose::STANDARD.encode(&d.raw))
        } else {
            None
        },
    };
    serde_json::to_vec(&record).unwrap_or_else(|e| {
        format!("{{\"kind\":\"render_error\",\"reason\":\"{e}\"}}").into_bytes()
    })
}

/// A dead-letter file, opened when the first dead letter arrives.
pub struct DeadLetterFile {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    written: u64,
}

impl DeadLetterFile {
    pub fn new(path: &Path) -> DeadLetterFile {
        DeadLetterFile {
            path: path.to_path_buf(),
            out: None,
            written: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that the file can be created, before any input is read, without leaving an
    /// empty file behind (it is still created only for the first dead letter).
    pub fn check_writable(&self) -> io::Result<()> {
        let existed = self.path.exists();
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)?;
        if !existed {
            std::fs::remove_file(&self.path)?;
        }
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn write(&mut self, d: &DeadLetter, sources: &Sources) -> io::Result<()> {
        if self.out.is_none() {
            self.out = Some(BufWriter::new(File::create(&self.path)?));
        }
        if let Some(out) = &mut self.out {
            out.write_all(&render(d, sources))?;
            out.write_all(b"\n")?;
        }
        self.written += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(o) => o.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_kept_exactly_in_base64() {
        let mut sources = Sources::new();
        let s = sources.register(SourceInfo::File("in.jsonl".into()));
        let d = DeadLetter {
            pos: Position {
                source: s,
                offset: 7,
            },
            kind: "invalid_utf8",
            reason: "invalid UTF-8 in event".into(),
            raw: vec![b'{', 0xff, b'}'],
            bytes: 3,
        };
        let v: serde_json::Value = serde_json::from_slice(&render(&d, &sources)).unwrap();
        assert_eq!(v["source"], "in.jsonl");
        assert_eq!(v["line"], 7);
        assert_eq!(v["raw_base64"], "e/99");
        assert!(v.get("raw").is_none());
        assert_eq!(v["truncated"], false);
    }
}
