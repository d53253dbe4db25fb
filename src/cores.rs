//! Cores: work spread over the machine's cores, results in input order.
//!
//! Loading SigmaHQ's Windows corpus parses 2,407 rule files and builds some 330 automata; one
//! after another they were most of a half-second load. [`map_in_order`] gives each core a
//! thread that takes the next item until none is left (so one slow item does not hold up a
//! fixed share of the others) and puts the results back in the items' order, so what is built
//! does not depend on how many cores there are.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The cores this process may run on (1 when the system cannot say).
pub fn count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` of every item of `items`, in their order, on up to one thread per core; fewer threads
/// when there are fewer than `min_per_thread` items each (a thread costs more than a few small
/// items save).
pub fn map_in_order<T: Sync, R: Send>(
    items: &[T],
    min_per_thread: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = count().min(items.len() / min_per_thread.max(1)).max(1);
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    let work = || {
        let mut mine = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            mine.push((i, f(item)));
        }
        // A poisoned lock only means another thread panicked (the scope then panics too);
        // what the vector holds is whole.
        done.lock().unwrap_or_else(|e| e.into_inner()).extend(mine);
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(work);
        }
        work();
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the thread count and however long each item takes, the results come back in
    /// the items' order, one per item.
    #[test]
    fn results_come_back_in_order() {
        let items: Vec<u64> = (0..500).collect();
        let out = map_in_order(&items, 1, |&i| {
            // Uneven work, so threads finish items out of order.
            std::hint::black_box((0..(i % 7) * 1000).map(|b| b % 3).sum::<u64>());
            i
        });
        assert_eq!(out, items);
        assert!(map_in_order(&[] as &[u64], 4, |&i| i).is_empty());
    }
}
