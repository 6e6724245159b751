//! Wakes the main context from other threads: a socket pair the loop watches.

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

    /// Called by the receiver before it looks at the work it was woken for.
    fn rearm(&self) {
        self.pending.store(false, Ordering::Release);
    }
}

impl WakeReceiver {
    pub(crate) fn fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    /// Clears the wake-up so the next `wake` is seen again.
    pub(crate) fn drain(&self, waker: &Waker) {
        waker.rearm();
        let mut buf = [0u8; 64];
        while matches!((&self.rx).read(&mut buf), Ok(n) if n > 0) {}
    }
}
