//! Feed: one input cut into numbered batches, by the replay's thread or, when the workers have
//! every core, by whichever worker is free.
//!
//! A replay's reader thread is free parallelism while a core is idle (1 worker on 2 cores): it
//! reads the next batches while the worker decodes. Once there are as many workers as cores,
//! the reader only takes turns with them: every batch costs a wake-up of the reader, a hop
//! through the item queue and the kernel's copy into a buffer the worker then reads again from
//! a cache it no longer owns; and a reader descheduled for a moment leaves the workers idle
//! with an empty queue.
//!
//! A [`Feed`] holds the input's [`LineBatcher`] behind a lock, and its [`Pull::next`] cuts,
//! numbers and wraps one batch. The reader thread calls it in a loop and queues the items;
//! with the workers cutting, the front end instead hands each worker an [`Item::Pull`], and a
//! worker that takes it cuts the next batch itself, in the lock, then decodes it while another
//! worker cuts the one after. Either way the batches, their numbers and their order through
//! the sequence thread are the same, so the output is too.
//!
//! A worker that finds the lock taken spins for it a while before it parks (when there are no
//! more workers than cores): a parked worker leaves its core idle, and waking it again costs
//! more than the read it waited for (on this project's 2-core virtual machine, a tenth of
//! 2 + 2's time went idle that way).
//!
//! How far ahead the cutting may run is bounded: a batch is cut into a buffer the sequence
//! thread handed back, and at most `buffers` of them exist ([`Feed::new`]), so a worker stuck
//! on one batch lets the others run ahead by that many and no more.
//! When the input ends (or fails), the feed tells the front end where its numbering stands,
//! and the front end goes on from there.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::{Format, Item, Pull};
use crate::input::{Batch, InputError, LineBatcher};
use crate::matcher::RuleSet;

/// How long a worker spins for the cut lock before it parks, when there are no more workers
/// than cores: a cut holds the lock for one read, tens of microseconds.
pub const SPIN: Duration = Duration::from_micros(200);

/// Where an input's feed stopped: the front end's next number, the input's last line, and the
/// read error that ended it early, if one did.
pub struct FeedEnd {
    pub seq: u64,
    pub last_line: u64,
    pub error: Option<InputError>,
}

/// One input, cut into batches by the workers; see the module doc.
pub struct Feed {
    cut: Mutex<Cut>,
    recycle: Receiver<Batch>,
    format: Format,
    rules: Arc<RuleSet>,
    /// A suspended replay's input has not ended: its last batch does not end its source.
    suspend: bool,
    buffers: usize,
    /// How long a worker spins for the lock before it parks.
    spin: Duration,
    end: Sender<FeedEnd>,
}

/// The state behind the lock.
struct Cut {
    lines: LineBatcher<Box<dyn Read + Send>>,
    seq: u64,
    last_line: u64,
    /// Buffers this feed allocated (the rest came back through the recycle channel).
    allocated: usize,
    finished: bool,
    early: Option<InputError>,
}

impl Feed {
    /// A feed of `lines` numbering its batches from `seq`; `end` hears once where it stopped.
    /// At most `buffers` batch buffers are in flight at once (at least one per worker and
    /// one more is sensible); a worker spins up to `spin` for the lock before it parks.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        lines: LineBatcher<Box<dyn Read + Send>>,
        seq: u64,
        recycle: Receiver<Batch>,
        buffers: usize,
        format: Format,
        rules: Arc<RuleSet>,
        suspend: bool,
        spin: Duration,
        end: Sender<FeedEnd>,
    ) -> Feed {
        Feed {
            cut: Mutex::new(Cut {
                lines,
                seq,
                last_line: 0,
                allocated: 0,
                finished: false,
                early: None,
            }),
            recycle,
            format,
            rules,
            suspend,
            buffers: buffers.max(1),
            spin,
            end,
        }
    }

    /// A buffer handed back, or a new one while fewer than [`Feed::buffers`] exist, or the
    /// next one handed back. The engine gone (its sequence thread stopped), a new one: the
    /// worker's send fails next and it stops.
    fn buffer(&self, cut: &mut Cut) -> Batch {
        if let Ok(b) = self.recycle.try_recv() {
            return b;
        }
        if cut.allocated < self.buffers {
            cut.allocated += 1;
            return Batch::default();
        }
        self.recycle.recv().unwrap_or_default()
    }

    /// The cut state, waited for by spinning first: a cut holds the lock for one read (tens of
    /// microseconds), and a worker that parks instead leaves its core idle, so its next cut
    /// waits for the core to wake as well (on a virtual machine, tens of microseconds more).
    fn lock(&self) -> std::sync::MutexGuard<'_, Cut> {
        let started = Instant::now();
        let mut spins = 0u32;
        loop {
            match self.cut.try_lock() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(e)) => return e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
            std::hint::spin_loop();
            spins += 1;
            if spins % 64 == 0 && started.elapsed() > self.spin {
                return self.cut.lock().unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    fn finish(&self, cut: &mut Cut) {
        cut.finished = true;
        let error = cut.early.take().or_else(|| cut.lines.take_error());
        let _ = self.end.try_send(FeedEnd {
            seq: cut.seq,
            last_line: cut.last_line,
            error,
        });
    }
}

impl Pull for Feed {
    /// Cuts the next batch, numbered; `None` once the input has ended (the front end has
    /// been told).
    fn next(&self) -> Option<Item> {
        // A poisoned lock means a worker panicked mid-cut; the engine reports that thread,
        // and what the batcher holds is still a whole state to end from.
        let mut cut = self.lock();
        if cut.finished {
            return None;
        }
        let mut batch = self.buffer(&mut cut);
        let got = match cut.lines.next_batch(&mut batch) {
            Ok(got) => got,
            Err(e) => {
                cut.early = Some(e);
                false
            }
        };
        if !got {
            self.finish(&mut cut);
            return None;
        }
        cut.last_line = batch.lines.last().map_or(cut.last_line, |l| l.offset);
        let seq = cut.seq;
        cut.seq += 1;
        batch.seq = seq;
        let done = batch.source_done;
        batch.source_done &= !self.suspend;
        if done {
            self.finish(&mut cut);
        }
        Some(Item::Batch {
            seq,
            batch,
            format: self.format,
            rules: self.rules.clone(),
            arrived: Instant::now(),
        })
    }
}
