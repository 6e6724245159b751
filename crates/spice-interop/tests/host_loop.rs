//! The server on a loop the host owns, through the `Core` trait.
//!
//! The host loop here is deliberately unlike the built-in one: it has no poller
//! at all and simply offers every watch a chance to run on each tick, the way a
//! game or emulator main loop might. The server must cope with such spurious
//! readiness and must only ever be called on this thread. Display channels
//! are not the loop's business: they run on the display's own thread.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;
use spice_interop::devices::{recording, DeviceEvent};
use spice_interop::gtk::SpiceGtk;
use spice_interop::pattern::Canvas;
use spice_server::core::{TimerCallback, WatchCallback};
use spice_server::{
    ChannelEvent, ChannelInfo, Core, DisplayHandle, Interest, ServerBuilder, TimerId, WatchId,
};

type Watch = (RawFd, Interest, Option<WatchCallback>);
type Timer = (Option<Instant>, Option<TimerCallback>);

#[derive(Default)]
struct TickLoop {
    next: Cell<u64>,
    watches: RefCell<BTreeMap<u64, Watch>>,
    timers: RefCell<BTreeMap<u64, Timer>>,
    events: RefCell<Vec<(ChannelEvent, ChannelInfo)>>,
    thread: Cell<Option<std::thread::ThreadId>>,
}

impl TickLoop {
    fn id(&self) -> u64 {
        self.check_thread();
        self.next.set(self.next.get() + 1);
        self.next.get()
    }

    fn check_thread(&self) {
        let me = std::thread::current().id();
        match self.thread.get() {
            None => self.thread.set(Some(me)),
            Some(t) => assert_eq!(t, me, "core called from a foreign thread"),
        }
    }

    /// Offers every watch its interest, then fires due timers.
    fn tick(&self) {
        let ids: Vec<u64> = self.watches.borrow().keys().copied().collect();
        for id in ids {
            let taken = self
                .watches
                .borrow_mut()
                .get_mut(&id)
                .and_then(|w| Some((w.1, w.2.take()?)));
            let Some((interest, mut cb)) = taken else { continue };
            cb(interest);
            if let Some(w) = self.watches.borrow_mut().get_mut(&id) {
                w.2 = Some(cb);
            }
        }
        let now = Instant::now();
        let due: Vec<u64> = self
            .timers
            .borrow()
            .iter()
            .filter(|(_, t)| t.0.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let taken = self.timers.borrow_mut().get_mut(&id).and_then(|t| {
                t.0 = None;
                t.1.take()
            });
            let Some(mut cb) = taken else { continue };
            cb();
            if let Some(t) = self.timers.borrow_mut().get_mut(&id) {
                t.1 = Some(cb);
            }
        }
    }
}

impl Core for TickLoop {
    fn add_timer(&self, callback: TimerCallback) -> TimerId {
        let id = self.id();
        self.timers.borrow_mut().insert(id, (None, Some(callback)));
        TimerId(id)
    }
    fn start_timer(&self, timer: TimerId, after: Duration) {
        if let Some(t) = self.timers.borrow_mut().get_mut(&timer.0) {
            t.0 = Some(Instant::now() + after);
        }
    }
    fn cancel_timer(&self, timer: TimerId) {
        if let Some(t) = self.timers.borrow_mut().get_mut(&timer.0) {
            t.0 = None;
        }
    }
    fn remove_timer(&self, timer: TimerId) {
        self.timers.borrow_mut().remove(&timer.0);
    }
    fn add_watch(&self, fd: RawFd, interest: Interest, callback: WatchCallback) -> WatchId {
        let id = self.id();
        self.watches
            .borrow_mut()
            .insert(id, (fd, interest, Some(callback)));
        WatchId(id)
    }
    fn update_watch(&self, watch: WatchId, interest: Interest) {
        self.check_thread();
        if let Some(w) = self.watches.borrow_mut().get_mut(&watch.0) {
            w.1 = interest;
        }
    }
    fn remove_watch(&self, watch: WatchId) {
        self.check_thread();
        self.watches.borrow_mut().remove(&watch.0);
    }
    fn channel_event(&self, event: ChannelEvent, info: &ChannelInfo) {
        self.check_thread();
        self.events.borrow_mut().push((event, info.clone()));
    }
}

/// Runs the host loop until `done` holds for the next driver event or the time is up.
fn run_until(
    core: &TickLoop,
    gtk: &mut SpiceGtk,
    timeout: Duration,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        core.tick();
        while let Some(v) = gtk.poll() {
            if done(&v) {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

#[test]
fn server_runs_on_a_host_provided_loop() {
    spice_interop::init_logging();
    let core = Rc::new(TickLoop::default());
    let canvas = Canvas::new(120, 90, 11);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let (devices, events) = recording();
    let server = ServerBuilder::new()
        .port(0)
        .display(display.clone())
        .keyboard(devices.clone())
        .tablet(devices)
        .start_on(core.clone())
        .expect("server starts on the host loop");

    let mut gtk = SpiceGtk::start();
    gtk.connect(server.local_addr(), None);
    assert!(
        run_until(&core, &mut gtk, Duration::from_secs(20), |v| v["event"] == "mark"),
        "no MARK: {:#?}",
        gtk.seen
    );
    let (w, h, pixels) = gtk.surface().expect("client surface");
    assert_eq!((w, h), (120, 90));
    assert_eq!(spice_interop::pattern::diff_count(&pixels, &canvas.packed()), 0);

    let inputs_open = |v: &serde_json::Value| v["event"] == "channel-event" && v["type"] == "InputsChannel";
    assert!(
        gtk.seen.iter().any(inputs_open) || run_until(&core, &mut gtk, Duration::from_secs(20), inputs_open)
    );
    gtk.send(json!({"cmd": "key_press", "code": 0x1e}));
    let mut codes = Vec::new();
    tick_until(&core, Duration::from_secs(10), || {
        codes.extend(events.drain().into_iter().filter_map(|e| match e {
            DeviceEvent::Scancode(c) => Some(c),
            _ => None,
        }));
        !codes.is_empty()
    });
    assert_eq!(codes, [0x1e], "key reached the keyboard through the host loop");

    // The display is served on its own thread, not on the host's loop: with
    // the loop not running at all, the host's drawing still reaches the client.
    let mut canvas = canvas;
    for _ in 0..5 {
        let damage = canvas.scribble();
        display.update(&canvas.frame(), &[damage]).unwrap();
    }
    let diff = gtk.wait_surface(120, 90, &canvas.packed(), Duration::from_secs(20));
    assert_eq!(diff, 0, "updates reach the client while the host loop is idle");

    {
        let events = core.events.borrow();
        let connected: Vec<u8> = events
            .iter()
            .filter(|(e, _)| *e == ChannelEvent::Connected)
            .map(|(_, i)| i.channel_type)
            .collect();
        for channel in [1u8, 2, 3, 4] {
            assert!(
                connected.contains(&channel),
                "CONNECTED event for channel type {channel}: {connected:?}"
            );
        }
        assert!(
            events.iter().all(|(_, i)| i.peer.is_some() && i.local.is_some()),
            "events carry addresses"
        );
    }
    gtk.quit();
    let disconnected = || {
        core.events
            .borrow()
            .iter()
            .any(|(e, _)| *e == ChannelEvent::Disconnected)
    };
    assert!(
        tick_until(&core, Duration::from_secs(10), disconnected),
        "DISCONNECTED event"
    );
    drop(server);
    assert!(
        core.watches.borrow().is_empty(),
        "dropping the server removes its watches"
    );
    assert!(
        core.timers.borrow().values().all(|t| t.0.is_none()),
        "no armed timers left"
    );
}

/// Runs the host loop until `done` holds or the time is up.
fn tick_until(core: &TickLoop, timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        core.tick();
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}
