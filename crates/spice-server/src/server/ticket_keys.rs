//! RSA-1024 ticket keys generated ahead, on a thread of their own.
//!
//! Each link needs a fresh key pair (its public half goes in the link reply,
//! and the client encrypts its password under it). Generating one takes
//! about 5 ms of a core; on the main context — QEMU's main thread under the C
//! ABI, which holds the big QEMU lock — a few clients linking in a loop kept
//! it 98% busy. Keys are made here instead, a few ahead, and each is handed
//! out once. The main context never waits: when the pool is empty, a link
//! waits for its key (bounded by the caps on links in progress and the link
//! timeout) and the thread wakes the loop when the next one is ready.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use spice_proto::ticket::TicketKey;

use crate::waker::Waker;

/// Keys kept ready. A client links its main channel, then the others
/// (display, cursor, inputs, playback, record...) in a burst some tens of
/// milliseconds later; the pool fills meanwhile and refills as the burst
/// takes keys, so links past the fourth wait a few milliseconds at most. Each
/// key kept costs about 5 ms of a core once per server lifetime, in a
/// session that may never use it: more would buy nothing a client notices.
pub(crate) const POOL_SIZE: usize = 4;

/// Pause after a failed generation (the OS RNG failing), so a lasting
/// failure neither spins nor floods the log.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    keys: VecDeque<TicketKey>,
    /// A link waits for a key: wake the loop when one is ready.
    wanted: bool,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signals the generator that the pool has room or that it must stop.
    room: Condvar,
    waker: Arc<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing holding the lock can panic and leave the state half done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The pool, owned by the main context; its thread starts with the first
/// key asked for (a server no client reaches costs nothing) and stops when
/// the pool is dropped.
pub(crate) struct KeyPool {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPool")
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

/// Why no key could be handed out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyPoolError {
    /// The generator thread could not be started.
    #[error("cannot start the ticket key thread: {0}")]
    Spawn(#[source] std::io::Error),
}

impl KeyPool {
    /// A pool that wakes the main context through `waker` when a key a link
    /// waits for is ready.
    pub(crate) fn new(waker: Arc<Waker>) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                room: Condvar::new(),
                waker,
            }),
            thread: None,
        }
    }

    /// A fresh key, never handed out before, if one is ready. `Ok(None)`:
    /// none is; the loop is woken when one is.
    pub(crate) fn take(&mut self) -> Result<Option<TicketKey>, KeyPoolError> {
        self.start()?;
        let mut state = self.shared.lock();
        let key = state.keys.pop_front();
        state.wanted = key.is_none();
        drop(state);
        // Room for another: the generator refills.
        self.shared.room.notify_one();
        Ok(key)
    }

    /// Keys ready now.
    #[cfg(test)]
    pub(crate) fn ready(&self) -> usize {
        self.shared.lock().keys.len()
    }

    fn start(&mut self) -> Result<(), KeyPoolError> {
        if self.thread.is_some() {
            return Ok(());
        }
        let shared = self.shared.clone();
        let thread = std::thread::Builder::new()
            .name("spice-keys".into())
            .spawn(move || generate(&shared))
            .map_err(KeyPoolError::Spawn)?;
        self.thread = Some(thread);
        Ok(())
    }
}

impl Drop for KeyPool {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.room.notify_one();
        if let Some(thread) = self.thread.take() {
            // At most one key generation (a few ms) to finish.
            let _ = thread.join();
        }
    }
}

/// The generator thread: keeps [`POOL_SIZE`] keys ready.
fn generate(shared: &Shared) {
    loop {
        {
            let mut state = shared.lock();
            while !state.stop && state.keys.len() >= POOL_SIZE {
                state = shared.room.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            if state.stop {
                return;
            }
        }
        // Without the lock: the main context takes keys meanwhile.
        match TicketKey::generate(&mut getrandom::SysRng) {
            Ok(key) => {
                let mut state = shared.lock();
                state.keys.push_back(key);
                if std::mem::take(&mut state.wanted) {
                    drop(state);
                    shared.waker.wake();
                }
            }
            Err(e) => {
                // Links waiting for a key run into their link timeout.
                tracing::error!(error = %e, "cannot generate a ticket key");
                let state = shared.lock();
                if state.stop {
                    return;
                }
                let _ = shared.room.wait_timeout(state, RETRY_AFTER_FAILURE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait_until(mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn keys_are_made_ahead_handed_out_once_and_refilled() {
        let (waker, rx) = crate::waker::waker_pair().unwrap();
        let waker = Arc::new(waker);
        let mut pool = KeyPool::new(waker.clone());
        assert!(pool.thread.is_none(), "no thread before a key is asked for");
        rx.drain(&waker);
        assert!(!waker.is_pending());
        // The first ask starts the thread; nothing is ready yet, so the loop
        // is woken when something is.
        let first = pool.take().unwrap();
        assert!(first.is_none());
        wait_until(|| waker.is_pending());
        wait_until(|| pool.ready() == POOL_SIZE);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..POOL_SIZE {
            let key = pool.take().unwrap().expect("a key ready");
            assert!(seen.insert(*key.public_der()), "each key handed out once");
        }
        // Refilled in the background, with fresh keys.
        wait_until(|| pool.ready() == POOL_SIZE);
        while let Some(key) = pool.take().unwrap() {
            assert!(seen.insert(*key.public_der()), "refills are fresh keys");
            if seen.len() == 2 * POOL_SIZE {
                break;
            }
        }
        // Dropping stops and joins the thread.
        drop(pool);
    }
}
