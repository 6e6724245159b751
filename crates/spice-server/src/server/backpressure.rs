//! How much output a connection may have queued before its requests stop
//! being read, and when a client that does not read is given up on. No I/O:
//! the driver reports what it queued and wrote, with the time.

use std::time::Instant;

use crate::limits::Limits;

/// What the driver does with a connection after writing to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputVerdict {
    /// Read and serve requests.
    Serve,
    /// Too much is queued: stop reading requests (each may add a reply)
    /// until the client takes some.
    Pause,
    /// More than [`Limits::output_max_bytes`] is queued.
    Overflow,
    /// Paused, and the client has taken nothing for
    /// [`Limits::stalled_client_timeout`].
    Stalled,
}

/// Tracks one connection's queued output over time.
#[derive(Debug, Clone)]
pub(crate) struct OutputWatch {
    /// When the client last took a byte, or had nothing waiting.
    last_progress: Instant,
    paused: bool,
}

impl OutputWatch {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            last_progress: now,
            paused: false,
        }
    }

    /// Whether requests are not being read.
    pub(crate) fn paused(&self) -> bool {
        self.paused
    }

    /// Whether reading may go on with `queued` bytes waiting (checked
    /// before each read, so one read's replies are the most it can add).
    pub(crate) fn may_read(&self, queued: usize, limits: &Limits) -> bool {
        queued < limits.output_pause_bytes
    }

    /// After a write attempt: `written` bytes went out, `queued` remain.
    pub(crate) fn after_write(
        &mut self,
        queued: usize,
        written: usize,
        now: Instant,
        limits: &Limits,
    ) -> OutputVerdict {
        if written > 0 || queued == 0 {
            self.last_progress = now;
        }
        self.verdict(queued, now, limits)
    }

    /// The verdict at `now` with `queued` bytes waiting (also for a periodic
    /// check of paused connections, which get no events of their own).
    pub(crate) fn verdict(&mut self, queued: usize, now: Instant, limits: &Limits) -> OutputVerdict {
        if queued > limits.output_max_bytes {
            return OutputVerdict::Overflow;
        }
        if queued < limits.output_pause_bytes {
            self.paused = false;
            return OutputVerdict::Serve;
        }
        if !self.paused {
            // The stall clock starts when reading stops, not at the last
            // write before that, so a client is always given the full timeout.
            self.paused = true;
            self.last_progress = self.last_progress.max(now);
        }
        if now.saturating_duration_since(self.last_progress) >= limits.stalled_client_timeout {
            OutputVerdict::Stalled
        } else {
            OutputVerdict::Pause
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> Limits {
        Limits {
            output_pause_bytes: 1000,
            output_max_bytes: 10_000,
            stalled_client_timeout: Duration::from_secs(5),
            ..Limits::default()
        }
    }

    #[test]
    fn a_small_queue_is_served() {
        let t0 = Instant::now();
        let mut w = OutputWatch::new(t0);
        assert!(w.may_read(999, &limits()));
        assert_eq!(w.after_write(999, 0, t0, &limits()), OutputVerdict::Serve);
        assert!(!w.paused());
    }

    #[test]
    fn a_client_that_does_not_read_is_paused_then_dropped_after_the_timeout() {
        let l = limits();
        let t0 = Instant::now();
        let mut w = OutputWatch::new(t0);
        assert!(!w.may_read(1000, &l));
        // Paused late: the timeout counts from then.
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(w.after_write(1000, 0, t1, &l), OutputVerdict::Pause);
        assert!(w.paused());
        assert_eq!(
            w.verdict(1000, t1 + Duration::from_millis(4999), &l),
            OutputVerdict::Pause
        );
        assert_eq!(
            w.verdict(1000, t1 + Duration::from_secs(5), &l),
            OutputVerdict::Stalled
        );
    }

    #[test]
    fn a_slow_client_that_takes_bytes_is_kept() {
        let l = limits();
        let t0 = Instant::now();
        let mut w = OutputWatch::new(t0);
        let mut t = t0;
        for _ in 0..100 {
            t += Duration::from_secs(4);
            assert_eq!(w.after_write(5000, 10, t, &l), OutputVerdict::Pause);
        }
        // It caught up: requests are read again.
        assert_eq!(w.after_write(10, 4990, t, &l), OutputVerdict::Serve);
        assert!(!w.paused());
    }

    #[test]
    fn overflow_is_immediate() {
        let l = limits();
        let t0 = Instant::now();
        let mut w = OutputWatch::new(t0);
        assert_eq!(w.after_write(10_001, 100, t0, &l), OutputVerdict::Overflow);
    }
}
