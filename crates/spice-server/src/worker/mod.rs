//! Display threads: each display's clients are served on a thread of its own,
//! never on the main context.
//!
//! Encoding a display's damage is the server's heaviest work. Under the C ABI
//! the main context is QEMU's main loop, which runs with the big QEMU lock
//! held, so the C server's layout is kept: one "SPICE Worker" thread per
//! display. The main context links a display or cursor channel and hands its
//! socket over ([`Handover`]); from then on the display thread reads the
//! client's messages, produces the surface, damage and cursor updates and
//! writes them. When a channel closes there, the main context is told, and
//! reports the disconnection to the host.
//!
//! A display may also have a [`DisplayDevice`]: the host's device behind it
//! (under the C ABI, the QXL instance whose command rings feed the picture),
//! polled on the same thread, so every device callback comes from one thread
//! as the QXL interface requires, and drawing never crosses threads.

mod client;
mod event_loop;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{JoinHandle, ThreadId};
use std::time::Instant;

use spice_proto::{Caps, Deframer};

use crate::channel::ChannelBase;
use crate::core::ChannelInfo;
use crate::display::DisplayHandle;
use crate::error::ServerError;
use crate::handle::ServerHandle;
use crate::waker::PollWaker;

/// The device behind a display, run on the display's thread.
///
/// The thread calls [`DisplayDevice::poll`] on every turn of its loop: after
/// it was woken through the [`WorkerWaker`], after client traffic, and at the
/// time the last call asked for. Whatever the device draws into its
/// [`DisplayHandle`] there reaches the clients in the same turn.
pub trait DisplayDevice: Send {
    /// Does the device's pending work: requests from the host, commands from
    /// the guest. Returns when it wants to be called again even if nothing
    /// happens (`None`: only when woken). Keep each call short; the clients
    /// of the display are served between calls.
    fn poll(&mut self, now: Instant) -> Option<Instant>;

    /// Called after the display's clients were served in a turn of the
    /// loop, with what the last [`poll`](Self::poll) returned. Serving may
    /// have read the picture and so drawn and dropped a drawing the device
    /// left with [`DisplayHandle::draw_later`](crate::DisplayHandle::draw_later):
    /// a device waiting for that can act now instead of in another turn.
    /// Returns when to be polled next (by default, unchanged).
    fn after_serve(&mut self, deadline: Option<Instant>) -> Option<Instant> {
        deadline
    }
}

/// Which channel a [`Handover`] carries.
#[derive(Debug)]
pub(crate) enum HandoverKind {
    /// A display channel, with the client's display capabilities.
    Display {
        caps: Caps,
        /// The client came by seamless migration (see
        /// `DisplayChannel::migrated_in`).
        migrated_in: bool,
    },
    Cursor,
}

/// A display or cursor channel the main context linked, on its way to the
/// display's thread.
#[derive(Debug)]
pub(crate) struct Handover {
    /// The channel's link, session id included.
    pub(crate) info: ChannelInfo,
    pub(crate) kind: HandoverKind,
    /// Channel state, with the link result still queued in its output.
    pub(crate) base: ChannelBase,
    /// Holds any bytes the client sent right after its ticket.
    pub(crate) deframer: Deframer,
    /// Told when the channel closes on the display thread.
    pub(crate) server: ServerHandle,
}

/// Work for a display thread from other threads.
#[derive(Debug)]
pub(crate) enum ToWorker {
    /// Serve this channel from now on.
    Attach(Box<Handover>, crate::socket::Stream),
    /// Close the channel with this link id (the main context already
    /// considers it gone).
    Close(u64),
    /// Seamless migration: the channel with this link id moves to the
    /// destination (MIGRATE and its data, then nothing more).
    MigrateOut(u64),
}

/// What a display thread shares with the rest of the server.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    inbox: Mutex<VecDeque<ToWorker>>,
    waker: PollWaker,
    stop: AtomicBool,
    thread: OnceLock<ThreadId>,
}

impl WorkerShared {
    /// Queues work for the thread and wakes it.
    pub(crate) fn send(&self, message: ToWorker) {
        self.inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(message);
        self.waker.wake();
    }

    /// Wakes the thread, unless this is the thread itself: it looks at
    /// everything again before it sleeps.
    pub(crate) fn wake(&self) {
        if self.thread.get() != Some(&std::thread::current().id()) {
            self.waker.wake();
        }
    }

    fn take_inbox(&self) -> VecDeque<ToWorker> {
        std::mem::take(&mut *self.inbox.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// Wakes a display thread so that its [`DisplayDevice`] is polled; cheap to
/// clone and to call often (wakes coalesce until the thread runs).
#[derive(Debug, Clone)]
pub struct WorkerWaker {
    shared: Arc<WorkerShared>,
}

impl WorkerWaker {
    /// Makes the thread run a turn of its loop soon.
    pub fn wake(&self) {
        self.shared.wake();
    }
}

/// A display's thread. Dropping it (or [`DisplayWorker::stop`]) closes the
/// display's channels, drops the device on its thread and joins it.
#[derive(Debug)]
pub struct DisplayWorker {
    shared: Arc<WorkerShared>,
    display: DisplayHandle,
    thread: Option<JoinHandle<()>>,
}

impl DisplayWorker {
    /// Starts the thread that serves `display`'s clients (named "SPICE
    /// Worker", like the C server's), running `device` too if given. A display
    /// has at most one thread: starting a second one fails.
    pub fn start(
        display: &DisplayHandle,
        device: Option<Box<dyn DisplayDevice>>,
    ) -> Result<Self, ServerError> {
        let poll = mio::Poll::new().map_err(|source| ServerError::Io {
            what: "display thread poll",
            source,
        })?;
        let waker =
            PollWaker::new(poll.registry(), event_loop::WAKE_TOKEN).map_err(|source| ServerError::Io {
                what: "display thread wake-up",
                source,
            })?;
        let shared = Arc::new(WorkerShared {
            inbox: Mutex::new(VecDeque::new()),
            waker,
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
        });
        if !display.shared.set_worker(shared.clone()) {
            return Err(ServerError::Io {
                what: "display thread",
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the display is already served by a thread",
                ),
            });
        }
        let thread = std::thread::Builder::new().name("SPICE Worker".into()).spawn({
            let shared = shared.clone();
            let display = display.clone();
            move || {
                let _ = shared.thread.set(std::thread::current().id());
                event_loop::EventLoop::new(poll, shared, display, device).run();
            }
        });
        match thread {
            Ok(thread) => Ok(Self {
                shared,
                display: display.clone(),
                thread: Some(thread),
            }),
            Err(source) => {
                display.shared.clear_worker(&shared);
                Err(ServerError::Io {
                    what: "display thread",
                    source,
                })
            }
        }
    }

    /// A handle that wakes the thread (for the device's requests).
    pub fn waker(&self) -> WorkerWaker {
        WorkerWaker {
            shared: self.shared.clone(),
        }
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.shared.stop.store(true, Ordering::Release);
        self.shared.waker.wake();
        if thread.thread().id() == std::thread::current().id() {
            // Stopped from its own device: the loop ends after this turn.
            return;
        }
        if thread.join().is_err() {
            tracing::error!("display thread panicked");
        }
        self.display.shared.clear_worker(&self.shared);
    }
}

impl Drop for DisplayWorker {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// Asks to be polled in an hour, then after serving moves that to 20 ms:
    /// the loop must follow the later answer.
    struct Device {
        polls: mpsc::Sender<Instant>,
        served: mpsc::Sender<Option<Instant>>,
    }

    impl DisplayDevice for Device {
        fn poll(&mut self, now: Instant) -> Option<Instant> {
            let _ = self.polls.send(now);
            Some(now + Duration::from_secs(3600))
        }

        fn after_serve(&mut self, deadline: Option<Instant>) -> Option<Instant> {
            let _ = self.served.send(deadline);
            Some(Instant::now() + Duration::from_millis(20))
        }
    }

    #[test]
    fn the_device_is_told_after_serving_and_its_new_deadline_is_kept() {
        let (polls, polled) = mpsc::channel();
        let (served, after) = mpsc::channel();
        let display = DisplayHandle::new();
        let worker = DisplayWorker::start(&display, Some(Box::new(Device { polls, served }))).unwrap();
        let first = polled
            .recv_timeout(Duration::from_secs(5))
            .expect("polled at once");
        let deadline = after
            .recv_timeout(Duration::from_secs(5))
            .expect("told after serving");
        assert_eq!(
            deadline,
            Some(first + Duration::from_secs(3600)),
            "with the poll's answer"
        );
        let second = polled
            .recv_timeout(Duration::from_secs(5))
            .expect("polled again at the deadline after_serve gave, not the poll's");
        assert!(second >= first + Duration::from_millis(20));
        worker.stop();
    }
}
