//! Input: where events come from and how to find each one again.
//!
//! Every event carries a [`Position`]: the source it came from (a file, standard input, or later
//! a Kafka topic partition, all registered in [`Sources`]) and its line number or offset there.
//! An analyst holding an alert can go back to exactly that line.
//!
//! Files are read as JSON lines, plain or compressed (gzip and zstd are recognised by their
//! magic bytes, not their names), and cut into [`Batch`]es by the [`LineBatcher`]: many lines
//! in one buffer, read straight into it, so workers parse without an allocation per event.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

mod lines;
pub use lines::{LineBatcher, ReadLimits};

// Every stage carries a position (evidence, links, dead letters), so it is shared vocabulary.
pub use crate::vocab::Position;

/// Bytes of slack after the last line of a batch, so that simd-json can read past the end of
/// any event without a copy (its SIMD stage loads whole blocks).
pub const BATCH_PADDING: usize = simd_json::INPUT_PADDING;

/// One place events are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceInfo {
    File(PathBuf),
    Stdin,
    Kafka { topic: String, partition: i32 },
}

/// The registry of sources of one run; a [`Position`] names its source by index here.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    list: Vec<SourceInfo>,
}

impl Sources {
    pub fn new() -> Sources {
        Sources::default()
    }

    /// Registers a source and returns its index; registering the same source twice returns the
    /// first index.
    pub fn register(&mut self, info: SourceInfo) -> u32 {
        if let Some(i) = self.list.iter().position(|s| *s == info) {
            return i as u32;
        }
        self.list.push(info);
        (self.list.len() - 1) as u32
    }

    pub fn get(&self, id: u32) -> Option<&SourceInfo> {
        self.list.get(id as usize)
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// One event's bytes inside a [`Batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRef {
    /// Start of the event in `Batch::buf`.
    pub start: usize,
    /// Length in bytes, without the line terminator.
    pub len: usize,
    /// Line number (files) or offset (Kafka).
    pub offset: u64,
    /// The event was longer than the reader keeps; `len` bytes were kept, `full_len` seen.
    pub full_len: usize,
}

impl LineRef {
    pub fn truncated(&self) -> bool {
        self.full_len > self.len
    }
}

/// Many events of one source in one buffer, each named by its range in [`Batch::lines`], with
/// [`BATCH_PADDING`] spare bytes at the end. A file's bytes stay as they were read (line
/// terminators, blank lines and byte order marks between the ranges); Kafka messages are
/// put back to back. `seq` orders batches across the whole run.
#[derive(Debug, Default)]
pub struct Batch {
    pub seq: u64,
    pub source: u32,
    pub buf: Vec<u8>,
    pub lines: Vec<LineRef>,
    /// Set on the last batch of a source: its watermark may go to the end of time.
    pub source_done: bool,
}

impl Batch {
    /// The raw bytes of line `i`.
    pub fn line(&self, i: usize) -> &[u8] {
        let l = &self.lines[i];
        &self.buf[l.start..l.start + l.len]
    }

    /// Adds one event's bytes (Kafka messages arrive whole, not as lines).
    pub fn push_event(&mut self, bytes: &[u8], offset: u64) {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.buf.push(b'\n');
        self.lines.push(LineRef {
            start,
            len: bytes.len(),
            offset,
            full_len: bytes.len(),
        });
    }

    /// Adds the padding simd-json needs after the last event; call once, when full.
    pub fn seal(&mut self) {
        self.buf.resize(self.buf.len() + BATCH_PADDING, b' ');
    }
}

/// Errors opening or reading an input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot open input {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read input {path} after line {line}: {source}")]
    Read {
        path: PathBuf,
        line: u64,
        source: io::Error,
    },
}

/// Counts bytes read from the underlying file (compressed bytes for compressed files), for
/// progress reporting.
pub struct CountingReader<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Most bytes a compressed input may expand to per compressed byte read so far, beyond
/// [`DECOMPRESSED_FLOOR`]. Event logs compress 10-30:1; a bomb (72 KB of zstd expanding to
/// 2 GiB of newlines, 16-26 s of CPU) is stopped after the floor.
pub const MAX_DECOMPRESSION_RATIO: u64 = 250;

/// Bytes any compressed input may expand to whatever its ratio.
pub const DECOMPRESSED_FLOOR: u64 = 64 << 20;

/// Fails a read once the decompressed bytes exceed [`MAX_DECOMPRESSION_RATIO`] times the
/// compressed bytes consumed plus [`DECOMPRESSED_FLOOR`].
struct RatioBound<R> {
    inner: R,
    compressed: Arc<AtomicU64>,
    decompressed: u64,
}

impl<R> RatioBound<R> {
    fn new(inner: R, compressed: Arc<AtomicU64>) -> RatioBound<R> {
        RatioBound {
            inner,
            compressed,
            decompressed: 0,
        }
    }
}

impl<R: Read> Read for RatioBound<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.decompressed += n as u64;
        let compressed = self.compressed.load(Ordering::Relaxed);
        let allowed = compressed
            .saturating_mul(MAX_DECOMPRESSION_RATIO)
            .saturating_add(DECOMPRESSED_FLOOR);
        if self.decompressed > allowed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} bytes decompressed from {compressed}: over the bound of {MAX_DECOMPRESSION_RATIO}:1 beyond the first {} MiB (a decompression bomb?)",
                    self.decompressed,
                    DECOMPRESSED_FLOOR >> 20
                ),
            ));
        }
        Ok(n)
    }
}

/// Opens `path` (`-` is standard input) for reading lines, decompressing gzip or zstd when the
/// first bytes say so. `progress` counts the raw bytes consumed. A compressed input that
/// expands past [`MAX_DECOMPRESSION_RATIO`] fails to read.
///
/// A plain input is not buffered here: the [`LineBatcher`] reads it straight into its batches.
pub fn open(path: &Path, progress: Arc<AtomicU64>) -> Result<Box<dyn Read + Send>, InputError> {
    let err = |source| InputError::Open {
        path: path.to_path_buf(),
        source,
    };
    let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path).map_err(err)?)
    };
    let compressed = Arc::new(AtomicU64::new(0));
    let mut counted = CountingReader {
        inner: CountingReader {
            inner: raw,
            counter: progress,
        },
        counter: compressed.clone(),
    };
    let magic = read_magic(&mut counted).map_err(err)?;
    let whole = Cursor::new(magic.clone()).chain(counted);
    if magic.starts_with(&[0x1f, 0x8b]) {
        let buffered = BufReader::with_capacity(1 << 20, whole);
        let gz = flate2::bufread::MultiGzDecoder::new(buffered);
        Ok(Box::new(RatioBound::new(gz, compressed)))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let buffered = BufReader::with_capacity(1 << 20, whole);
        let zs = zstd::stream::read::Decoder::with_buffer(buffered).map_err(err)?;
        Ok(Box::new(RatioBound::new(zs, compressed)))
    } else {
        Ok(Box::new(whole))
    }
}

/// The first four bytes of `r` (fewer if it is shorter), read however they arrive.
fn read_magic(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut magic = Vec::with_capacity(4);
    r.by_ref().take(4).read_to_end(&mut magic)?;
    Ok(magic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_inputs_are_recognised_by_magic_bytes() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let text = b"{\"x\":1}\n{\"x\":2}\n";
        let gz_path = dir.path().join("events.data");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text).unwrap();
        std::fs::write(&gz_path, gz.finish().unwrap()).unwrap();
        let zst_path = dir.path().join("events.other");
        std::fs::write(&zst_path, zstd::encode_all(&text[..], 1).unwrap()).unwrap();
        for p in [gz_path, zst_path] {
            let counter = Arc::new(AtomicU64::new(0));
            let mut r = open(&p, counter.clone()).unwrap();
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            assert_eq!(s.as_bytes(), text);
            assert!(counter.load(Ordering::Relaxed) > 0);
        }
    }

    /// Issue 15: a 72 KB `.zst` expanding to 2 GiB of newlines cost 16-26 s of CPU, with no
    /// bound on the decompressed size. Now the read fails after the floor, naming the bound;
    /// an ordinary compressed file (here 100,000 events) is read whole.
    #[test]
    fn a_decompression_bomb_is_stopped_at_the_ratio_bound() {
        let dir = tempfile::tempdir().unwrap();
        let bomb = dir.path().join("bomb.zst");
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
        let chunk = vec![b'\n'; 1 << 20];
        for _ in 0..256 {
            io::Write::write_all(&mut enc, &chunk).unwrap();
        }
        let packed = enc.finish().unwrap();
        assert!(packed.len() < 100_000, "{} bytes", packed.len());
        std::fs::write(&bomb, &packed).unwrap();
        let mut r = open(&bomb, Arc::new(AtomicU64::new(0))).unwrap();
        let mut sink = Vec::new();
        let err = r.read_to_end(&mut sink).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("250:1"), "{err}");
        assert!(
            sink.len() as u64 <= DECOMPRESSED_FLOOR + (1 << 21),
            "{}",
            sink.len()
        );

        let events: Vec<u8> = (0..100_000)
            .flat_map(|i| format!("{{\"eventName\":\"ListUsers\",\"n\":{i}}}\n").into_bytes())
            .collect();
        let ok = dir.path().join("ok.zst");
        std::fs::write(&ok, zstd::encode_all(&events[..], 3).unwrap()).unwrap();
        let mut text = Vec::new();
        open(&ok, Arc::new(AtomicU64::new(0)))
            .unwrap()
            .read_to_end(&mut text)
            .unwrap();
        assert_eq!(text, events);
    }
}
