//! Wakes a loop from other threads.
//!
//! The main context runs on the host's loop, which may poll level-triggered
//! (QEMU's does): its [`Waker`] is a socket pair whose byte the loop reads
//! back. A display thread's own `mio` loop polls edge-triggered: its
//! [`PollWaker`] is `mio`'s eventfd, which fires on every write and is
//! never read, so a wake-up costs the display thread no system call beyond
//! the poll that returns.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

/// The sending half; cheap to call often, since wakes coalesce until the loop runs.
#[derive(Debug)]
pub(crate) struct Waker {
    tx: UnixStream,
    pending: AtomicBool,
}

/// The receiving half, owned by the main context.
#[derive(Debug)]
pub(crate) struct WakeReceiver {
    rx: UnixStream,
}

pub(crate) fn waker_pair() -> std::io::Result<(Waker, WakeReceiver)> {
    let (tx, rx) = UnixStream::pair()?;
    tx.set_nonblocking(true)?;
    rx.set_nonblocking(true)?;
    Ok((
        Waker {
            tx,
            pending: AtomicBool::new(false),
        },
        WakeReceiver { rx },
    ))
}

impl Waker {
    /// Makes the receiver readable, unless a wake is already pending.
    pub(crate) fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            // A full socket buffer means the loop is already due to wake.
            let _ = (&self.tx).write(&[1]);
        }
    }

    /// Whether a wake is pending (not yet drained).
    #[cfg(test)]
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Called by the receiver before it looks at the work it was woken for.
    fn rearm(&self) {
        self.pending.store(false, Ordering::Release);
    }
}

impl WakeReceiver {
    pub(crate) fn fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    /// Clears the wake-up so the next `wake` is seen again. Call it before
    /// looking at the work: bytes are drained first and the flag cleared after,
    /// so a `wake` racing with this either finds the flag still set (and its
    /// work is seen by the caller's look that follows) or writes a fresh byte
    /// that is not drained here.
    pub(crate) fn drain(&self, waker: &Waker) {
        let mut buf = [0u8; 64];
        // A wake writes one byte and no other until the flag is cleared
        // below, so one read empties the socket (a display worker saves a
        // second, empty read per wake-up); a full buffer reads on.
        while matches!((&self.rx).read(&mut buf), Ok(n) if n == buf.len()) {}
        waker.rearm();
    }
}

/// Wakes a `mio` loop (a display thread's): wakes coalesce until the loop
/// [`rearm`](Self::rearm)s, as with [`Waker`], but nothing is read back.
#[derive(Debug)]
pub(crate) struct PollWaker {
    waker: mio::Waker,
    pending: AtomicBool,
}

impl PollWaker {
    /// A waker whose wake-ups `registry`'s poll reports under `token`.
    pub(crate) fn new(registry: &mio::Registry, token: mio::Token) -> std::io::Result<Self> {
        Ok(Self {
            waker: mio::Waker::new(registry, token)?,
            pending: AtomicBool::new(false),
        })
    }

    /// Makes the loop's poll return, unless a wake is already pending.
    pub(crate) fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                // Only a closed descriptor fails (`mio` resets a full counter).
                tracing::warn!(error = %e, "cannot wake a display thread");
            }
        }
    }

    /// Called by the loop when its poll reported the wake-up, before it looks
    /// at the work: a `wake` racing with this either finds the flag still set
    /// (its work is seen by the look that follows) or writes again, which
    /// the next poll reports.
    pub(crate) fn rearm(&self) {
        self.pending.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// One drain empties the socket, even of bytes that more than one wake
    /// left there (a wake racing with an earlier drain), and re-arms the waker.
    #[test]
    fn drain_empties_the_socket_and_rearms() {
        let (waker, rx) = waker_pair().unwrap();
        waker.wake();
        let _ = (&waker.tx).write(&[1; 100]);
        assert!(waker.is_pending());
        rx.drain(&waker);
        let mut buf = [0u8; 1];
        assert!((&rx.rx).read(&mut buf).is_err(), "nothing left to read");
        assert!(!waker.is_pending());
        waker.wake();
        assert!(matches!((&rx.rx).read(&mut buf), Ok(1)));
    }

    /// Every wake that comes after a drain leaves the receiver readable, however
    /// the two threads interleave: a lost wake-up would leave work unseen.
    #[test]
    fn no_wake_is_lost_between_drain_and_work() {
        let (waker, rx) = waker_pair().unwrap();
        let waker = Arc::new(waker);
        for _ in 0..2000 {
            rx.drain(&waker);
            let w = waker.clone();
            let t = std::thread::spawn(move || w.wake());
            rx.drain(&waker);
            t.join().unwrap();
            // Either the racing wake was drained before the flag cleared (then a
            // later wake writes again), or its byte is still there.
            waker.wake();
            let mut buf = [0u8; 1];
            let readable = matches!((&rx.rx).read(&mut buf), Ok(1));
            assert!(readable, "a wake after drain must reach the receiver");
        }
    }

    /// The poll reports a wake, and after `rearm` the next one too, though
    /// nothing was read back; a wake before `rearm` coalesces into the first.
    #[test]
    fn a_poll_waker_needs_no_reading() {
        let mut poll = mio::Poll::new().unwrap();
        let token = mio::Token(7);
        let waker = Arc::new(PollWaker::new(poll.registry(), token).unwrap());
        let mut events = mio::Events::with_capacity(4);
        let woken = |poll: &mut mio::Poll, events: &mut mio::Events| {
            poll.poll(events, Some(std::time::Duration::from_millis(200)))
                .unwrap();
            events.iter().any(|e| e.token() == token)
        };
        assert!(!woken(&mut poll, &mut events), "no wake yet");
        for round in 0..1000 {
            let w = waker.clone();
            std::thread::spawn(move || {
                w.wake();
                w.wake();
            })
            .join()
            .unwrap();
            assert!(
                woken(&mut poll, &mut events),
                "round {round}: the wake was reported"
            );
            waker.rearm();
            if round % 100 == 0 {
                assert!(
                    !woken(&mut poll, &mut events),
                    "round {round}: two wakes, one event"
                );
            }
        }
    }
}
