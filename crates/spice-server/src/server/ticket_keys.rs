//! RSA-1024 ticket keys generated ahead, on a thread of their own.
//!
//! Each link's reply carries an RSA public key, and the client encrypts its
//! password under it. When a password is asked for, every link gets a fresh
//! key pair, handed out once (as the C server does), so no key ever decrypts
//! more than one ticket. Generating one takes about 5 ms of a core; on the
//! main context — QEMU's main thread under the C ABI, which holds the big
//! QEMU lock — a few clients linking in a loop kept it 98% busy. Keys are
//! made here instead, a few ahead. The main context never waits: when no key
//! is ready, a link waits for its key (bounded by the caps on links in
//! progress and the link timeout) and the thread wakes the loop when the
//! next one is ready.
//!
//! Without ticketing (`disable-ticketing`, the usual set-up of a VMM on
//! loopback), no secret travels under the key: the server checks no
//! password, so the ticket a client sends is only decrypted to see that it is
//! well formed, as the C server does. Then one key serves every link, made
//! once: a session's four to seven links cost one key instead of each its
//! own plus the pool's refills (the C server makes one per link, about 8 ms
//! each with OpenSSL; on an idle desktop that was most of a session's CPU).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use spice_proto::ticket::TicketKey;

use crate::waker::Waker;

/// Keys kept ready once a link has asked for a fresh one. A client links its
/// main channel, then the others (display, cursor, inputs, playback,
/// record...) in a burst some tens of milliseconds later; the pool fills
/// meanwhile and refills as the burst takes keys, so links past the fourth
/// wait a few milliseconds at most. Each key kept costs about 5 ms of a core
/// once per server lifetime, in a session that may never use it: more would
/// buy nothing a client notices.
pub(crate) const POOL_SIZE: usize = 4;

/// Pause after a failed generation (the OS RNG failing), so a lasting
/// failure neither spins nor floods the log.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Which key a link gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyUse {
    /// A password may travel under it: a key no other link has had.
    Fresh,
    /// No password is checked: the server's one shared key.
    Shared,
}

#[derive(Default)]
struct State {
    keys: VecDeque<TicketKey>,
    /// Keys to keep ready: none until a fresh key is asked for.
    ahead: usize,
    /// A link waits for a key: make one even if none is kept ahead, and
    /// wake the loop when it is ready.
    wanted: bool,
    stop: bool,
}

impl State {
    fn needs_key(&self) -> bool {
        self.keys.len() < self.ahead || (self.wanted && self.keys.is_empty())
    }
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
    /// The key every link shares while no password is checked, once made.
    shared_key: Option<Arc<TicketKey>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPool")
            .field("running", &self.thread.is_some())
            .field("shared_key", &self.shared_key.is_some())
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
            shared_key: None,
            thread: None,
        }
    }

    /// A key for a link, if one is ready: for [`KeyUse::Fresh`] one never
    /// handed out before, for [`KeyUse::Shared`] the server's shared key.
    /// `Ok(None)`: none is; the loop is woken when one is.
    pub(crate) fn take(&mut self, use_: KeyUse) -> Result<Option<Arc<TicketKey>>, KeyPoolError> {
        if use_ == KeyUse::Shared {
            if let Some(key) = &self.shared_key {
                return Ok(Some(key.clone()));
            }
        }
        self.start()?;
        let mut state = self.shared.lock();
        if use_ == KeyUse::Fresh {
            state.ahead = POOL_SIZE;
        }
        let key = state.keys.pop_front().map(Arc::new);
        state.wanted = key.is_none();
        drop(state);
        // Room for another (or one wanted): the generator makes it.
        self.shared.room.notify_one();
        if use_ == KeyUse::Shared {
            self.shared_key.clone_from(&key);
        }
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

/// The generator thread: makes the keys kept ahead, and one when a link
/// waits.
fn generate(shared: &Shared) {
    loop {
        {
            let mut state = shared.lock();
            while !state.stop && !state.needs_key() {
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
        let first = pool.take(KeyUse::Fresh).unwrap();
        assert!(first.is_none());
        wait_until(|| waker.is_pending());
        wait_until(|| pool.ready() == POOL_SIZE);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..POOL_SIZE {
            let key = pool.take(KeyUse::Fresh).unwrap().expect("a key ready");
            assert!(seen.insert(*key.public_der()), "each key handed out once");
        }
        // Refilled in the background, with fresh keys.
        wait_until(|| pool.ready() == POOL_SIZE);
        while let Some(key) = pool.take(KeyUse::Fresh).unwrap() {
            assert!(seen.insert(*key.public_der()), "refills are fresh keys");
            if seen.len() == 2 * POOL_SIZE {
                break;
            }
        }
        // Dropping stops and joins the thread.
        drop(pool);
    }

    #[test]
    fn the_shared_key_is_made_once_and_nothing_ahead_until_a_fresh_one_is_asked_for() {
        let (waker, rx) = crate::waker::waker_pair().unwrap();
        let waker = Arc::new(waker);
        let mut pool = KeyPool::new(waker.clone());
        rx.drain(&waker);
        assert!(pool.take(KeyUse::Shared).unwrap().is_none());
        wait_until(|| waker.is_pending());
        let shared = pool
            .take(KeyUse::Shared)
            .unwrap()
            .expect("the key made for the waiting link");
        for _ in 0..10 {
            let again = pool.take(KeyUse::Shared).unwrap().expect("the shared key");
            assert!(Arc::ptr_eq(&shared, &again));
        }
        // Nothing is made ahead for links that share: a key would be ready
        // within a few ms of a core if the generator were at work.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(pool.ready(), 0);
        // A fresh key is never the shared one, and from then on keys are
        // kept ahead.
        let fresh = loop {
            if let Some(key) = pool.take(KeyUse::Fresh).unwrap() {
                break key;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_ne!(fresh.public_der(), shared.public_der());
        wait_until(|| pool.ready() == POOL_SIZE);
        let again = pool.take(KeyUse::Shared).unwrap().expect("the shared key");
        assert!(Arc::ptr_eq(&shared, &again));
        assert_eq!(pool.ready(), POOL_SIZE, "sharing takes nothing from the pool");
    }
}
