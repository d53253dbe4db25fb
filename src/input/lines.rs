//! The line reader: a byte stream cut into [`Batch`]es of lines, read straight into the
//! batch's own buffer.
//!
//! A batch's buffer is what the file's bytes are read into: the lines are found where they
//! landed and named by their ranges, so a byte is copied once, by the kernel, on its way from
//! the page cache to the worker that parses it. Only the line cut at the end of a batch moves:
//! its start is copied to the front of the next batch.
//!
//! How much is read at a time follows the lines seen so far: up to [`ReadLimits::batch_bytes`],
//! but no more than the batch's remaining event count needs at the average line length, so a
//! batch that fills by event count leaves little behind to copy.

use std::io::{self, Read};
use std::path::PathBuf;

use super::{Batch, InputError, LineRef};

/// Limits of the line reader.
#[derive(Clone, Copy, Debug)]
pub struct ReadLimits {
    /// A batch is sent once this many bytes are read into it and it holds a whole line; the
    /// line cut at its end starts the next batch.
    pub batch_bytes: usize,
    /// ... or once it holds this many events.
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

/// Fewest bytes asked of the reader at once.
const MIN_READ: usize = 4096;

/// Bytes asked of the reader at once while the rest of an overlong line is skipped.
const OVERLONG_READ: usize = 64 * 1024;

/// The line being read past [`ReadLimits::max_line_kept`]: its kept bytes stay in the batch,
/// the rest is read and counted, not kept, up to its newline.
#[derive(Clone, Copy, Debug)]
struct Overlong {
    /// Where its kept bytes start in the batch, and where they end.
    start: usize,
    kept_end: usize,
    /// Its length so far.
    seen: usize,
}

/// Cuts a byte stream into batches of lines. Blank lines are skipped (they are not events) but
/// still counted in line numbers; a UTF-8 byte order mark at the start of a line and a carriage
/// return at its end are left out of its range.
///
/// A read error (a truncated or corrupt compressed file) ends the input: the batch being filled
/// keeps the whole lines read before it and is the source's last, and the error waits in
/// [`LineBatcher::take_error`] for the caller to report.
pub struct LineBatcher<R> {
    reader: R,
    source: u32,
    path: PathBuf,
    limits: ReadLimits,
    /// Lines seen so far, blank ones included: the last line's number.
    line: u64,
    /// Bytes of those lines with their terminators, for the average line length.
    line_bytes: u64,
    /// Bytes read after the last line of the batch before: the start of the next line.
    carry: Vec<u8>,
    eof: bool,
    done: bool,
    error: Option<InputError>,
}

impl<R: Read> LineBatcher<R> {
    pub fn new(reader: R, source: u32, path: PathBuf, limits: ReadLimits) -> Self {
        LineBatcher {
            reader,
            source,
            path,
            limits,
            line: 0,
            line_bytes: 0,
            carry: Vec::new(),
            eof: false,
            done: false,
            error: None,
        }
    }

    /// The read error that ended the input early, once.
    pub fn take_error(&mut self) -> Option<InputError> {
        self.error.take()
    }

    /// Fills `batch` (its allocation reused) with the next lines. Returns false when the input
    /// was already exhausted and nothing was added.
    pub fn next_batch(&mut self, batch: &mut Batch) -> Result<bool, InputError> {
        batch.lines.clear();
        batch.source = self.source;
        batch.source_done = false;
        if self.done {
            batch.buf.clear();
            return Ok(false);
        }
        // The buffer's old bytes are overwritten, never cleared: growing it to a length it had
        // before costs nothing, where clearing it would zero it again on every batch.
        let buf = &mut batch.buf;
        // A new buffer gets the room a batch of ordinary lines needs, once: grown by doubling
        // it would be moved to fresh memory several times, and fresh memory costs a page fault
        // and the kernel's zeroing on its first touch, on the reader's thread.
        let room = (self.limits.batch_bytes).saturating_add(MIN_READ + super::BATCH_PADDING);
        if buf.capacity() < room {
            buf.reserve_exact(room - buf.len());
        }
        let carried = self.carry.len();
        grow(buf, carried);
        buf[..carried].copy_from_slice(&self.carry);
        self.carry.clear();
        let mut filled = carried;
        let mut next = 0usize;
        let mut overlong: Option<Overlong> = None;
        let max_events = self.limits.batch_events.max(1);
        loop {
            if let Some(o) = overlong {
                // Count the rest of the overlong line; keep what follows its newline.
                match memchr::memchr(b'\n', &buf[o.kept_end..filled]) {
                    Some(i) => {
                        let rest = o.kept_end + i + 1;
                        self.finish_line(&mut batch.lines, buf, o.start, o.kept_end, o.seen + i);
                        self.line_bytes += 1;
                        buf.copy_within(rest..filled, o.kept_end);
                        filled -= rest - o.kept_end;
                        next = o.kept_end;
                        overlong = None;
                    }
                    None => {
                        overlong = Some(Overlong {
                            seen: o.seen + (filled - o.kept_end),
                            ..o
                        });
                        filled = o.kept_end;
                    }
                }
            }
            if overlong.is_none() {
                while batch.lines.len() < max_events
                    && let Some(i) = memchr::memchr(b'\n', &buf[next..filled])
                {
                    self.finish_line(&mut batch.lines, buf, next, next + i, i);
                    self.line_bytes += 1;
                    next += i + 1;
                }
                let whole = !batch.lines.is_empty();
                if batch.lines.len() >= max_events || (whole && filled >= self.limits.batch_bytes) {
                    break;
                }
                if !whole && next >= self.limits.batch_bytes {
                    // Only blank lines so far: drop them, or a file of newlines would grow the
                    // batch to its own size.
                    buf.copy_within(next..filled, 0);
                    filled -= next;
                    next = 0;
                }
                if filled - next > self.limits.max_line_kept {
                    let kept_end = next + self.limits.max_line_kept;
                    overlong = Some(Overlong {
                        start: next,
                        kept_end,
                        seen: filled - next,
                    });
                    filled = kept_end;
                }
            }
            if self.eof {
                match overlong.take() {
                    Some(o) => self.finish_line(&mut batch.lines, buf, o.start, o.kept_end, o.seen),
                    None if filled > next => {
                        self.finish_line(&mut batch.lines, buf, next, filled, filled - next)
                    }
                    None => {}
                }
                next = filled;
                self.done = true;
                batch.source_done = true;
                break;
            }
            let want = match overlong {
                Some(_) => OVERLONG_READ,
                None => self.read_size(batch.lines.len(), filled, filled - next),
            };
            grow(buf, filled + want);
            match self.reader.read(&mut buf[filled..filled + want]) {
                Ok(0) => self.eof = true,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    // The partial line is not an event; what came before it stands.
                    self.error = Some(InputError::Read {
                        path: self.path.clone(),
                        line: self.line,
                        source,
                    });
                    filled = next;
                    self.done = true;
                    batch.source_done = true;
                    break;
                }
            }
        }
        self.carry.extend_from_slice(&buf[next..filled]);
        buf.truncate(next);
        batch.seal();
        Ok(!batch.lines.is_empty() || batch.source_done)
    }

    /// Bytes to ask the reader for, with `filled` bytes in the batch of which the last
    /// `partial` are an unfinished line: what the batch's remaining events need at the average
    /// line length so far, within the batch's byte bound. Past that bound (a batch with no
    /// whole line yet), half the line so far, so a long line is read in linear time.
    fn read_size(&self, lines: usize, filled: usize, partial: usize) -> usize {
        let average = match self.line {
            0 => 512,
            n => (self.line_bytes / n).max(1) as usize,
        };
        let needed = (self.limits.batch_events.max(1).saturating_sub(lines))
            .saturating_mul(average)
            .saturating_sub(partial);
        let room = self.limits.batch_bytes.saturating_sub(filled);
        needed.min(room).max(MIN_READ).max(partial / 2)
    }

    /// Ends the line whose bytes are `buf[start..end]` and which was `seen` bytes long: counts
    /// it, and unless it is blank records the range of its first [`ReadLimits::max_line_kept`]
    /// bytes, without a byte order mark or a carriage return.
    fn finish_line(
        &mut self,
        lines: &mut Vec<LineRef>,
        buf: &[u8],
        mut start: usize,
        end: usize,
        mut seen: usize,
    ) {
        self.line += 1;
        self.line_bytes += seen as u64;
        let end = end.min(start + self.limits.max_line_kept);
        if buf[start..end].starts_with(BOM) {
            start += BOM.len();
            seen -= BOM.len();
        }
        let mut len = end - start;
        if len > 0 && buf[start + len - 1] == b'\r' {
            len -= 1;
            seen -= 1;
        }
        if buf[start..start + len].iter().all(u8::is_ascii_whitespace) {
            return;
        }
        lines.push(LineRef {
            start,
            len,
            offset: self.line,
            full_len: seen,
        });
    }
}

/// Makes `buf` at least `len` long; only bytes it never held are zeroed.
fn grow(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    }
}

#[cfg(test)]
#[path = "lines_tests.rs"]
mod tests;
