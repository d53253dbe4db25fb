//! Front: a replay's files fed to the engine, in order.
//!
//! Every file is announced as a source first (so an earlier file's events wait for the later
//! files' clocks, as if they were read side by side), then cut into numbered batches, then the
//! end of input is signalled. Who cuts is the [`Cutting`]: the replay's own thread reading
//! ahead of the workers (on a core of its own while one is free), or the workers themselves
//! through a [`Feed`] once they have every core. The batches, their numbers and the output
//! are the same either way.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::feed::{self, Feed, FeedEnd};
use super::{Format, Inputs, Item, Pull, Signal, SourceTime};
use crate::cores;
use crate::deadletter::DeadLetter;
use crate::input::{self, InputError, LineBatcher, ReadLimits};
use crate::matcher::RuleSet;

/// Who cuts a replay's inputs into batches (the batches and the output are the same).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cutting {
    /// The workers once there are as many as cores, the calling thread below that.
    #[default]
    Auto,
    /// The calling thread reads ahead of the workers, on a core of its own when one is free.
    Reader,
    /// Each worker cuts its next batch itself ([`feed`]).
    Workers,
}

impl Cutting {
    /// Whether the workers cut, for `workers` worker threads on this machine.
    fn by_workers(self, workers: usize) -> bool {
        match self {
            Cutting::Auto => workers >= cores::count(),
            Cutting::Reader => false,
            Cutting::Workers => true,
        }
    }
}

/// What the front end feeds, and how.
pub(super) struct Front<'a> {
    pub inputs: &'a Inputs,
    /// The files, read in this order, and their sources.
    pub files: &'a [PathBuf],
    pub ids: &'a [u32],
    /// How the files' clocks run, and what their lines are.
    pub time: SourceTime,
    pub format: Format,
    pub read: ReadLimits,
    pub rules: &'a Arc<RuleSet>,
    /// Bytes read so far, for the progress bar.
    pub bytes_read: &'a Arc<AtomicU64>,
    /// Who cuts the batches, and for how many workers.
    pub cutting: Cutting,
    pub workers: usize,
    /// Whether a worker still runs.
    pub working: &'a dyn Fn() -> bool,
}

impl Front<'_> {
    /// Cuts `lines` into batches numbered from `seq` and hands them to the workers: this
    /// thread cuts them and queues them, or (by [`Cutting`]) the workers cut them themselves
    /// from a shared [`Feed`] while this thread waits for the last. `None` when the workers
    /// stopped first (the engine failed).
    fn feed(
        &self,
        lines: LineBatcher<Box<dyn io::Read + Send>>,
        seq: u64,
        suspend: bool,
    ) -> Option<FeedEnd> {
        let (end_tx, end_rx) = crossbeam_channel::bounded(1);
        // As many buffers in flight as the reader's queue and the sequence thread's hand-back
        // hold: the workers run ahead of a stuck one by no more than the reader would.
        let buffers = self.inputs.recycle.capacity().unwrap_or(self.workers * 4);
        let feed = Arc::new(Feed::new(
            lines,
            seq,
            self.inputs.recycle.clone(),
            buffers,
            self.format,
            self.rules.clone(),
            suspend,
            // More workers than cores: a spinning worker may hold the core the lock's holder
            // needs to finish.
            if self.workers <= cores::count() {
                feed::SPIN
            } else {
                Duration::ZERO
            },
            end_tx,
        ));
        if !self.cutting.by_workers(self.workers) {
            while let Some(item) = feed.next() {
                self.inputs.items.send(item).ok()?;
            }
            return end_rx.try_recv().ok();
        }
        for _ in 0..self.workers {
            self.inputs.items.send(Item::Pull(feed.clone())).ok()?;
        }
        drop(feed);
        loop {
            match end_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(end) => return Some(end),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) if (self.working)() => {}
                Err(_) => return None,
            }
        }
    }
}

/// How a replay's input begins and ends beyond its files.
pub(super) struct Ends {
    /// States to go on from, before the first batch.
    pub restore: Option<crate::correlate::engine::Snapshot>,
    /// Suspend at the end instead of deciding everything to the end of time.
    pub suspend: bool,
}

/// The front end: every file announced as a source, then its batches in order, then the end
/// of input. An input that cannot be opened or read to its end (a truncated or corrupt
/// compressed file) is reported to the engine as a failed source (an `input_error` dead
/// letter) and returned, and the next input is read. Stops early when the engine is gone (an
/// output error, reported by the engine).
pub(super) fn read_inputs(front: &Front<'_>, ends: Ends) -> Vec<InputError> {
    let inputs = front.inputs;
    let mut seq = 0u64;
    let mut errors = Vec::new();
    let signal = |seq: &mut u64, signal: Signal| {
        *seq += 1;
        inputs
            .items
            .send(Item::Signal {
                seq: *seq - 1,
                signal,
            })
            .is_ok()
    };
    for &source in front.ids {
        let assign = Signal::Assign {
            source,
            time: front.time,
            start: None,
            resume: None,
        };
        if !signal(&mut seq, assign) {
            return errors;
        }
    }
    if let Some(snapshot) = ends.restore
        && !signal(&mut seq, Signal::Restore(Box::new(snapshot)))
    {
        return errors;
    }
    for (path, &id) in front.files.iter().zip(front.ids) {
        let (failure, line) = match input::open(path, front.bytes_read.clone()) {
            Err(e) => (Some(e), 0),
            Ok(reader) => {
                let lines = LineBatcher::new(reader, id, path.clone(), front.read);
                let Some(end) = front.feed(lines, seq, ends.suspend) else {
                    return errors;
                };
                seq = end.seq;
                (end.error, end.last_line)
            }
        };
        if let Some(e) = failure {
            let letter = DeadLetter {
                pos: crate::input::Position {
                    source: id,
                    offset: line + 1,
                },
                kind: "input_error",
                reason: format!("{e}; the rest of this input was not read"),
                raw: Vec::new(),
                bytes: 0,
            };
            if !signal(&mut seq, Signal::SourceFailed { source: id, letter }) {
                return errors;
            }
            errors.push(e);
        }
    }
    // What was read is decided even when an input failed (or written out, suspended).
    let _ = inputs.items.send(Item::Signal {
        seq,
        signal: if ends.suspend {
            Signal::Suspend
        } else {
            Signal::EndOfInput
        },
    });
    errors
}
