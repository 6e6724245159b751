//! The display thread's loop: `epoll` through `mio`, edge-triggered.
//!
//! Each client socket is registered once for both readiness kinds. A client
//! is read until the socket would block and written until the socket is full
//! or it has nothing more to send; a client that stops short at its turn's
//! budget is marked busy and the loop comes back to it without sleeping. Every
//! turn polls the device first (it draws the newest commands into the
//! surface) and then lets every client produce, so damage reaches the clients
//! in the turn it was drawn.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::client::Client;
use super::{DisplayDevice, ToWorker, WorkerShared};
use crate::channel::display::FRAME_INTERVAL;
use crate::display::DisplayHandle;

/// The token of the thread's [`crate::waker::PollWaker`].
pub(super) const WAKE_TOKEN: Token = Token(usize::MAX);

pub(super) struct EventLoop {
    poll: Poll,
    shared: Arc<WorkerShared>,
    display: DisplayHandle,
    device: Option<Box<dyn DisplayDevice>>,
    device_deadline: Option<Instant>,
    /// Since when the device has had commands left over from its last poll.
    device_busy_since: Option<Instant>,
    clients: HashMap<u64, Client>,
    read_buf: Vec<u8>,
}

impl EventLoop {
    /// The loop of `poll`, whose registry has the thread's waker.
    pub(super) fn new(
        poll: Poll,
        shared: Arc<WorkerShared>,
        display: DisplayHandle,
        device: Option<Box<dyn DisplayDevice>>,
    ) -> Self {
        Self {
            poll,
            shared,
            display,
            // The device gets a first look at once; without one there is
            // nothing to look at (a deadline left in the past would make
            // every poll return at once: the thread would spin).
            device_deadline: device.as_ref().map(|_| Instant::now()),
            device,
            device_busy_since: None,
            clients: HashMap::new(),
            read_buf: vec![0; 64 * 1024],
        }
    }

    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(64);
        let mut readable = Vec::new();
        loop {
            let now = Instant::now();
            let timeout = if self.clients.values().any(Client::busy) {
                Some(Duration::ZERO)
            } else {
                let frames = self.clients.values().filter_map(|c| c.wake_at);
                let deadline = self.device_deadline.into_iter().chain(frames).min();
                deadline.map(|d| d.saturating_duration_since(now))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "display thread cannot poll; stopping");
                    break;
                }
            }
            readable.clear();
            for event in events.iter() {
                if event.token() == WAKE_TOKEN {
                    self.shared.waker.rearm();
                } else if event.is_readable() || event.is_read_closed() || event.is_error() {
                    readable.push(event.token().0 as u64);
                }
            }
            if self.shared.stopping() {
                break;
            }
            for message in self.shared.take_inbox() {
                self.receive(message);
            }
            if let Some(device) = &mut self.device {
                let now = Instant::now();
                self.device_deadline = device.poll(now);
                let busy = self.device_deadline.is_some_and(|d| d <= Instant::now());
                self.device_busy_since = busy.then(|| self.device_busy_since.unwrap_or(now));
            }
            // A burst of commands is drawn whole before a frame shows it (the
            // client then gets one picture, not a half-drawn one and a second
            // frame an interval later), unless the device stays busy longer
            // than a frame's interval.
            let may_start = self
                .device_busy_since
                .is_none_or(|since| since.elapsed() >= FRAME_INTERVAL);
            self.serve(&readable, may_start);
            if let Some(device) = &mut self.device {
                self.device_deadline = device.after_serve(self.device_deadline);
            }
        }
        self.shut_down();
    }

    fn receive(&mut self, message: ToWorker) {
        match message {
            ToWorker::Attach(handover, stream) => {
                let id = handover.info.link_id;
                let fd = stream.socket().as_raw_fd();
                let client = Client::start(*handover, stream, &self.display.shared);
                if let Err(e) = self.poll.registry().register(
                    &mut SourceFd(&fd),
                    Token(id as usize),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    tracing::warn!(conn = id, error = %e, "cannot watch a display client; closing it");
                    client.close(&self.display.shared, true);
                    return;
                }
                tracing::debug!(conn = id, channel = ?client.info.channel_type, "display thread took a channel");
                self.clients.insert(id, client);
            }
            ToWorker::MigrateOut(id) => {
                if let Some(client) = self.clients.get_mut(&id) {
                    client.migrate_out();
                }
            }
            ToWorker::Close(id) => {
                if let Some(client) = self.clients.remove(&id) {
                    self.forget(&client);
                    client.close(&self.display.shared, false);
                }
            }
        }
    }

    /// Reads the clients whose sockets became readable and lets every client
    /// produce: the device may have drawn, a window may have opened.
    fn serve(&mut self, readable: &[u64], may_start: bool) {
        let ids: Vec<u64> = self.clients.keys().copied().collect();
        for id in ids {
            let Some(client) = self.clients.get_mut(&id) else {
                continue;
            };
            let keep = (!(client.unread || readable.contains(&id)) || client.read(&mut self.read_buf))
                && client.pump(&self.display.shared, may_start);
            if !keep {
                if let Some(client) = self.clients.remove(&id) {
                    self.forget(&client);
                    client.close(&self.display.shared, true);
                }
            }
        }
    }

    fn forget(&self, client: &Client) {
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&client.stream.socket().as_raw_fd()));
    }

    fn shut_down(mut self) {
        for (_, client) in self.clients.drain() {
            client.close(&self.display.shared, true);
        }
        // Dropped here, on its own thread, like every other call into it.
        self.device = None;
        self.display.shared.clear_worker(&self.shared);
    }
}
