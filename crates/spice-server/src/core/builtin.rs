//! The built-in event loop, for hosts that bring none: one thread, `epoll`
//! through `mio`, timers kept in a sorted map.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Poll, Token, Waker};

use super::{Core, Interest, TimerCallback, TimerId, WatchCallback, WatchId};

const WAKER_TOKEN: Token = Token(usize::MAX);

struct Watch {
    fd: RawFd,
    interest: Interest,
    callback: Option<WatchCallback>,
}

struct Timer {
    deadline: Option<Instant>,
    callback: Option<TimerCallback>,
}

/// Stops a [`BuiltinLoop`] from any thread.
#[derive(Clone)]
pub struct LoopStopper {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl LoopStopper {
    /// Makes `run` return after the current iteration.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            tracing::warn!(error = %e, "cannot wake the event loop");
        }
    }
}

impl std::fmt::Debug for LoopStopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopStopper").finish_non_exhaustive()
    }
}

/// A single-threaded event loop implementing [`Core`].
///
/// `mio` is edge-triggered; level-triggered semantics come from re-arming a
/// watch after each callback, which makes the kernel report it again while it
/// stays ready.
pub struct BuiltinLoop {
    poll: RefCell<Poll>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    next_id: Cell<u64>,
    watches: RefCell<HashMap<u64, Watch>>,
    timers: RefCell<HashMap<u64, Timer>>,
    deadlines: RefCell<BTreeSet<(Instant, u64)>>,
}

impl std::fmt::Debug for BuiltinLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinLoop")
            .field("watches", &self.watches.borrow().len())
            .field("timers", &self.timers.borrow().len())
            .finish()
    }
}

fn mio_interest(interest: Interest) -> Option<mio::Interest> {
    match (interest.read, interest.write) {
        (true, true) => Some(mio::Interest::READABLE | mio::Interest::WRITABLE),
        (true, false) => Some(mio::Interest::READABLE),
        (false, true) => Some(mio::Interest::WRITABLE),
        (false, false) => None,
    }
}

impl BuiltinLoop {
    /// Creates the loop.
    pub fn new() -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN)?);
        Ok(Self {
            poll: RefCell::new(poll),
            waker,
            stop: Arc::new(AtomicBool::new(false)),
            next_id: Cell::new(1),
            watches: RefCell::new(HashMap::new()),
            timers: RefCell::new(HashMap::new()),
            deadlines: RefCell::new(BTreeSet::new()),
        })
    }

    /// A handle that stops [`BuiltinLoop::run`] from another thread.
    pub fn stopper(&self) -> LoopStopper {
        LoopStopper {
            stop: self.stop.clone(),
            waker: self.waker.clone(),
        }
    }

    fn fresh_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Runs until stopped.
    pub fn run(&self) -> io::Result<()> {
        while !self.stop.load(Ordering::SeqCst) {
            self.run_once(None)?;
        }
        Ok(())
    }

    /// Waits for one batch of events (at most `max_wait`) and dispatches them.
    pub fn run_once(&self, max_wait: Option<Duration>) -> io::Result<()> {
        let now = Instant::now();
        let mut timeout = self
            .deadlines
            .borrow()
            .first()
            .map(|(deadline, _)| deadline.saturating_duration_since(now));
        if let Some(cap) = max_wait {
            timeout = Some(timeout.map_or(cap, |t| t.min(cap)));
        }
        let mut events = Events::with_capacity(256);
        match self.poll.borrow_mut().poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if event.token() == WAKER_TOKEN {
                continue;
            }
            let fired = Interest {
                read: event.is_readable() || event.is_read_closed() || event.is_error(),
                write: event.is_writable() || event.is_write_closed(),
            };
            self.dispatch_watch(event.token().0 as u64, fired);
        }
        self.dispatch_timers(Instant::now());
        Ok(())
    }

    fn dispatch_watch(&self, id: u64, fired: Interest) {
        let (callback, wanted) = {
            let mut watches = self.watches.borrow_mut();
            let Some(watch) = watches.get_mut(&id) else { return };
            let wanted = Interest {
                read: fired.read && watch.interest.read,
                write: fired.write && watch.interest.write,
            };
            if !wanted.read && !wanted.write {
                return;
            }
            (watch.callback.take(), wanted)
        };
        let Some(mut callback) = callback else { return };
        callback(wanted);
        let mut watches = self.watches.borrow_mut();
        if let Some(watch) = watches.get_mut(&id) {
            watch.callback = Some(callback);
            // Re-arm so a still-ready descriptor is reported again (level semantics).
            self.reregister(id, watch.fd, watch.interest);
        }
    }

    fn dispatch_timers(&self, now: Instant) {
        loop {
            let due = {
                let mut deadlines = self.deadlines.borrow_mut();
                match deadlines.first().copied() {
                    Some((deadline, id)) if deadline <= now => {
                        deadlines.remove(&(deadline, id));
                        id
                    }
                    _ => return,
                }
            };
            let callback = {
                let mut timers = self.timers.borrow_mut();
                let Some(timer) = timers.get_mut(&due) else {
                    continue;
                };
                timer.deadline = None;
                timer.callback.take()
            };
            let Some(mut callback) = callback else { continue };
            callback();
            if let Some(timer) = self.timers.borrow_mut().get_mut(&due) {
                timer.callback = Some(callback);
            }
        }
    }

    fn reregister(&self, id: u64, fd: RawFd, interest: Interest) {
        let poll = self.poll.borrow();
        let registry = poll.registry();
        let result = match mio_interest(interest) {
            Some(i) => registry.reregister(&mut SourceFd(&fd), Token(id as usize), i),
            None => registry.deregister(&mut SourceFd(&fd)),
        };
        if let Err(e) = result {
            tracing::debug!(fd, error = %e, "re-arming watch failed");
        }
    }
}

impl Core for BuiltinLoop {
    fn add_timer(&self, callback: TimerCallback) -> TimerId {
        let id = self.fresh_id();
        self.timers.borrow_mut().insert(
            id,
            Timer {
                deadline: None,
                callback: Some(callback),
            },
        );
        TimerId(id)
    }

    fn start_timer(&self, timer: TimerId, after: Duration) {
        self.cancel_timer(timer);
        let deadline = Instant::now() + after;
        if let Some(t) = self.timers.borrow_mut().get_mut(&timer.0) {
            t.deadline = Some(deadline);
            self.deadlines.borrow_mut().insert((deadline, timer.0));
        }
    }

    fn cancel_timer(&self, timer: TimerId) {
        if let Some(t) = self.timers.borrow_mut().get_mut(&timer.0) {
            if let Some(deadline) = t.deadline.take() {
                self.deadlines.borrow_mut().remove(&(deadline, timer.0));
            }
        }
    }

    fn remove_timer(&self, timer: TimerId) {
        self.cancel_timer(timer);
        self.timers.borrow_mut().remove(&timer.0);
    }

    fn add_watch(&self, fd: RawFd, interest: Interest, callback: WatchCallback) -> WatchId {
        let id = self.fresh_id();
        if let Some(i) = mio_interest(interest) {
            let poll = self.poll.borrow();
            if let Err(e) = poll
                .registry()
                .register(&mut SourceFd(&fd), Token(id as usize), i)
            {
                tracing::warn!(fd, error = %e, "cannot watch descriptor");
            }
        }
        self.watches.borrow_mut().insert(
            id,
            Watch {
                fd,
                interest,
                callback: Some(callback),
            },
        );
        WatchId(id)
    }

    fn update_watch(&self, watch: WatchId, interest: Interest) {
        let mut watches = self.watches.borrow_mut();
        let Some(w) = watches.get_mut(&watch.0) else {
            return;
        };
        let was_registered = mio_interest(w.interest).is_some();
        w.interest = interest;
        let poll = self.poll.borrow();
        let registry = poll.registry();
        let token = Token(watch.0 as usize);
        let result = match (was_registered, mio_interest(interest)) {
            (true, Some(i)) => registry.reregister(&mut SourceFd(&w.fd), token, i),
            (false, Some(i)) => registry.register(&mut SourceFd(&w.fd), token, i),
            (true, None) => registry.deregister(&mut SourceFd(&w.fd)),
            (false, None) => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!(fd = w.fd, error = %e, "updating watch failed");
        }
    }

    fn remove_watch(&self, watch: WatchId) {
        if let Some(w) = self.watches.borrow_mut().remove(&watch.0) {
            if mio_interest(w.interest).is_some() {
                let poll = self.poll.borrow();
                // The descriptor may already be closed, which also removes it from epoll.
                let _ = poll.registry().deregister(&mut SourceFd(&w.fd));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::rc::Rc;

    #[test]
    fn timers_fire_once_in_deadline_order() {
        let l = BuiltinLoop::new().unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let (a, b) = (log.clone(), log.clone());
        let ta = l.add_timer(Box::new(move || a.borrow_mut().push("a")));
        let tb = l.add_timer(Box::new(move || b.borrow_mut().push("b")));
        l.start_timer(ta, Duration::from_millis(20));
        l.start_timer(tb, Duration::from_millis(5));
        for _ in 0..10 {
            l.run_once(Some(Duration::from_millis(10))).unwrap();
        }
        assert_eq!(*log.borrow(), ["b", "a"]);
    }

    #[test]
    fn watches_are_level_triggered_and_removable_from_their_callback() {
        let l = Rc::new(BuiltinLoop::new().unwrap());
        let (mut tx, rx) = UnixStream::pair().unwrap();
        tx.write_all(b"x").unwrap();
        let hits = Rc::new(Cell::new(0));
        let id = Rc::new(Cell::new(WatchId(0)));
        let (h, i, lc) = (hits.clone(), id.clone(), Rc::downgrade(&l));
        id.set(l.add_watch(
            rx.as_raw_fd(),
            Interest::READ,
            Box::new(move |_| {
                // Never reads: level semantics must report it again.
                h.set(h.get() + 1);
                if h.get() == 3 {
                    if let Some(l) = lc.upgrade() {
                        l.remove_watch(i.get());
                    }
                }
            }),
        ));
        for _ in 0..6 {
            l.run_once(Some(Duration::from_millis(5))).unwrap();
        }
        assert_eq!(hits.get(), 3);
    }
}
