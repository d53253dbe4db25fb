//! Rate-limited logging of repeated errors: a broker outage or a retried message must not
//! flood the log with one line per attempt.

use std::time::{Duration, Instant};

/// How often a repeated error is logged at most.
pub const EVERY: Duration = Duration::from_secs(10);

/// Logs an error the first time, then at most once per [`EVERY`] with how many were seen
/// meanwhile.
#[derive(Debug, Default)]
pub struct ErrorLog {
    next: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    /// `Some(n)`: log now, `n` occurrences having been suppressed since the last line; `None`:
    /// stay quiet (counted).
    pub fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.next.is_some_and(|n| now < n) {
            self.suppressed += 1;
            return None;
        }
        self.next = Some(now + EVERY);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_error_is_logged_and_repeats_are_counted_until_the_interval_passes() {
        let mut log = ErrorLog::default();
        assert_eq!(log.due(), Some(0));
        for _ in 0..500 {
            assert_eq!(log.due(), None);
        }
        log.next = Some(Instant::now());
        assert_eq!(log.due(), Some(500));
    }
}
