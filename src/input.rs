//! Input: where events come from and how to find each one again.
//!
//! Every event carries a [`Position`]: the source it came from (a file, standard input, or later
//! a Kafka topic partition, all registered in [`Sources`]) and its line number or offset there.
//! An analyst holding an alert can go back to exactly that line.
//!
//! Files are read as JSON lines, plain or compressed (gzip and zstd are recognised by their
//! magic bytes, not their names), and cut into [`Batch`]es: many lines back to back in one
//! buffer, so workers parse without an allocation per event.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Many events of one source, back to back in one buffer with [`BATCH_PADDING`] spare bytes at
/// the end. `seq` orders batches across the whole run.
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
pub fn open(path: &Path, progress: Arc<AtomicU64>) -> Result<Box<dyn BufRead + Send>, InputError> {
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
    let mut buffered = BufReader::with_capacity(
        1 << 20,
        CountingReader {
            inner: CountingReader {
                inner: raw,
                counter: progress,
            },
            counter: compressed.clone(),
        },
    );
    let magic = buffered.fill_buf().map_err(err)?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        let gz = flate2::bufread::MultiGzDecoder::new(buffered);
        let bounded = RatioBound::new(gz, compressed);
        Ok(Box::new(BufReader::with_capacity(1 << 20, bounded)))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let zs = zstd::stream::read::Decoder::with_buffer(buffered).map_err(err)?;
        let bounded = RatioBound::new(zs, compressed);
        Ok(Box::new(BufReader::with_capacity(1 << 20, bounded)))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Limits of the line reader.
#[derive(Clone, Copy, Debug)]
pub struct ReadLimits {
    /// A batch is sent once its buffer holds this many bytes.
    pub batch_bytes: usize,
    /// ... or this many events.
    pub batch_events: usize,
    /// Bytes of one line kept for the dead-letter output; longer lines are cut here and flagged.
    pub max_line_kept: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            batch_bytes: 256 * 1024,
            batch_events: 2048,
            max_line_kept: 64 << 20,
        }
    }
}

/// The UTF-8 byte order mark some Windows tools write at the start of a file (and so at the
/// start of a line when files are concatenated).
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Cuts a byte stream into batches of lines. Blank lines are skipped (they are not events) but
/// still counted in line numbers; a UTF-8 byte order mark at the start of a line is dropped.
///
/// A read error (a truncated or corrupt compressed file) ends the input: the batch being filled
/// keeps the whole lines read before it and is the source's last, and the error waits in
/// [`LineBatcher::take_error`] for the caller to report.
pub struct LineBatcher<R> {
    reader: R,
    source: u32,
    path: PathBuf,
    limits: ReadLimits,
    line: u64,
    done: bool,
    error: Option<InputError>,
}

impl<R: BufRead> LineBatcher<R> {
    pub fn new(reader: R, source: u32, path: PathBuf, limits: ReadLimits) -> Self {
        LineBatcher {
            reader,
            source,
            path,
            limits,
            line: 0,
            done: false,
            error: None,
        }
    }

    /// The read error that ended the input early, once.
    pub fn take_error(&mut self) -> Option<InputError> {
        self.error.take()
    }

    /// Fills `batch` (cleared first, its allocation reused) with the next lines. Returns false
    /// when the input was already exhausted and nothing was added.
    pub fn next_batch(&mut self, batch: &mut Batch) -> Result<bool, InputError> {
        batch.buf.clear();
        batch.lines.clear();
        batch.source = self.source;
        batch.source_done = false;
        if self.done {
            return Ok(false);
        }
        while batch.buf.len() < self.limits.batch_bytes
            && batch.lines.len() < self.limits.batch_events
        {
            let start = batch.buf.len();
            match self.read_line(batch) {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    batch.source_done = true;
                    break;
                }
                Err(e) => {
                    // The partial line is not an event; what came before it stands.
                    batch.buf.truncate(start);
                    self.error = Some(e);
                    self.done = true;
                    batch.source_done = true;
                    break;
                }
            }
        }
        batch.seal();
        Ok(!batch.lines.is_empty() || batch.source_done)
    }

    /// Reads one line into `batch`; false at end of input.
    fn read_line(&mut self, batch: &mut Batch) -> Result<bool, InputError> {
        let start = batch.buf.len();
        let mut seen = 0usize;
        let mut any = false;
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(InputError::Read {
                        path: self.path.clone(),
                        line: self.line,
                        source,
                    });
                }
            };
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (take, found) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            let room = self.limits.max_line_kept.saturating_sub(seen);
            batch.buf.extend_from_slice(&chunk[..take.min(room)]);
            seen += take;
            self.reader.consume(take + usize::from(found));
            if found {
                break;
            }
        }
        if !any {
            return Ok(false);
        }
        self.line += 1;
        if batch.buf[start..].starts_with(BOM) {
            batch.buf.drain(start..start + BOM.len());
            seen -= BOM.len();
        }
        let mut len = batch.buf.len() - start;
        if len > 0 && batch.buf[start + len - 1] == b'\r' {
            len -= 1;
            seen -= 1;
            batch.buf.truncate(start + len);
        }
        if batch.buf[start..].iter().all(u8::is_ascii_whitespace) {
            batch.buf.truncate(start);
            return Ok(true);
        }
        batch.buf.push(b'\n');
        batch.lines.push(LineRef {
            start,
            len,
            offset: self.line,
            full_len: seen,
        });
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn batches(text: &[u8], limits: ReadLimits) -> Vec<Vec<(u64, String, bool)>> {
        let mut b = LineBatcher::new(Cursor::new(text.to_vec()), 0, "t".into(), limits);
        let mut out = Vec::new();
        let mut batch = Batch::default();
        while b.next_batch(&mut batch).unwrap() {
            out.push(
                (0..batch.lines.len())
                    .map(|i| {
                        let l = batch.lines[i];
                        (
                            l.offset,
                            String::from_utf8_lossy(batch.line(i)).into_owned(),
                            l.truncated(),
                        )
                    })
                    .collect(),
            );
            assert!(batch.buf.len() >= BATCH_PADDING);
        }
        out
    }

    #[test]
    fn lines_keep_their_numbers_across_blank_lines_and_crlf() {
        let got = batches(
            b"{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\":3}",
            ReadLimits::default(),
        );
        assert_eq!(
            got,
            vec![vec![
                (1, "{\"a\":1}".to_string(), false),
                (4, "{\"b\":2}".to_string(), false),
                (5, "{\"c\":3}".to_string(), false)
            ]]
        );
    }

    /// Bug: a UTF-8 byte order mark made line 1, and the first line of every concatenated
    /// file, invalid JSON.
    #[test]
    fn byte_order_marks_are_dropped_at_the_start_of_any_line() {
        let got = batches(
            b"\xEF\xBB\xBF{\"a\":1}\n{\"b\":2}\n\xEF\xBB\xBF{\"c\":3}\n",
            ReadLimits::default(),
        );
        let lines: Vec<&str> = got[0].iter().map(|(_, l, _)| l.as_str()).collect();
        assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
    }

    /// Bug: a truncated gzip file ended the whole replay; the lines before the damage were
    /// lost with it.
    #[test]
    fn a_truncated_gzip_keeps_the_lines_before_the_damage_and_reports_the_error() {
        use std::io::Write;
        let mut text = Vec::new();
        for i in 0..5000 {
            writeln!(text, "{{\"n\":{i},\"pad\":\"{}\"}}", i * 7919 % 1000003).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        let mut bytes = gz.finish().unwrap();
        bytes.truncate(bytes.len() / 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.jsonl.gz");
        std::fs::write(&path, bytes).unwrap();
        let reader = open(&path, Arc::new(AtomicU64::new(0))).unwrap();
        let mut lines = LineBatcher::new(reader, 0, path.clone(), ReadLimits::default());
        let mut batch = Batch::default();
        let mut read = Vec::new();
        while lines.next_batch(&mut batch).unwrap() {
            read.extend((0..batch.lines.len()).map(|i| batch.line(i).to_vec()));
            if batch.source_done {
                break;
            }
        }
        assert!(read.len() > 100 && read.len() < 5000, "{}", read.len());
        for (i, l) in read.iter().enumerate() {
            assert!(l.starts_with(format!("{{\"n\":{i},").as_bytes()));
            assert!(l.ends_with(b"}"), "whole lines only");
        }
        let err = lines.take_error().expect("the damage is reported");
        assert!(err.to_string().contains("cut.jsonl.gz"), "{err}");
    }

    #[test]
    fn batches_split_by_event_count() {
        let limits = ReadLimits {
            batch_events: 2,
            ..ReadLimits::default()
        };
        let got = batches(b"1\n2\n3\n", limits);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), 2);
        assert_eq!(got[1][0].0, 3);
    }

    #[test]
    fn an_overlong_line_is_cut_and_flagged_and_the_next_line_survives() {
        let limits = ReadLimits {
            max_line_kept: 4,
            ..ReadLimits::default()
        };
        let got = batches(b"0123456789\nok\n", limits);
        assert_eq!(got[0][0], (1, "0123".to_string(), true));
        assert_eq!(got[0][1], (2, "ok".to_string(), false));
    }

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
