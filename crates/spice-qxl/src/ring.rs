//! When to look at one of the device's rings (commands or cursor): the
//! notification handshake of the QXL interface, with no I/O and time passed in.
//!
//! A device hands out commands through `get_command` until its ring is empty;
//! then the server calls `req_cmd_notification`, which arms the ring's
//! "notify on produce" mark and returns 1 ("sleep until `spice_qxl_wakeup`")
//! or 0 ("more arrived meanwhile, keep going"). Like the C server, an empty
//! ring is polled once more after [`RETRY`] before notification is asked
//! for: guests tend to produce in bursts, and the handshake costs the guest
//! an interrupt.
//!
//! Unlike the C server, that second look is skipped when the commands just
//! taken ended a sleep of at least [`IDLE_GAP`]: an idle guest (a blinking
//! cursor, a clock) draws one small burst now and then, the second look
//! finds nothing, and it would be the display thread's second wakeup for
//! each burst. Notification is then asked for at once; a guest that does
//! produce again soon costs one notification, as it would after the retry.
//! The same goes for a guest that draws frames at a steady rate of up to 50
//! a second (a video played at 25, an animation): commands that ended a
//! sleep of at least [`PAUSE`] come a frame apart, and the retry [`RETRY`]
//! after each frame finds nothing and only wakes the display thread.
//!
//! There is no retry at all while the guest outpaces the server: a pass that
//! took a whole ring's worth of commands ([`RING_SIZE`]) found the ring full,
//! and a guest whose ring is full stops until the server takes a command.
//! Any wait for a second look holds it up: [`RETRY`] cost most of the
//! interval after every ring, and even a 1 ms look (the shortest `epoll`
//! sleeps) let Xorg fill its ring and wait out the rest, which made x11perf
//! take 8.4 s against the C server's 6.3 s (whose slower drawing keeps its
//! worker taking commands). From then on, until the guest has been idle for
//! [`IDLE_GAP`], an empty ring asks for notification at once: the guest's
//! next command wakes the server, for the price of a wakeup per burst (the C
//! server pays one per command there). While that lasts, a sleeping ring is
//! first looked at again after [`RETRY`] rather than [`RECHECK`] (below): a
//! lost wakeup would otherwise stall a busy guest for a quarter of a second.
//!
//! Unlike the C server, a sleeping ring is also looked at now and then: after
//! [`RECHECK`], then twice as long after each look that finds nothing, up to
//! [`RECHECK_MAX`], and after [`RECHECK`] again once commands come. The
//! handshake needs memory barriers on both sides, and QEMU's TCG with one
//! vCPU emits none, so a guest can fill its ring without the wakeup ever
//! coming; a periodic look turns that lost wakeup from a hung guest into a
//! short delay, and the growing interval keeps an idle guest's cost low.

use std::time::{Duration, Instant};

/// How soon an empty ring is polled again before notification is requested.
pub const RETRY: Duration = Duration::from_millis(10);
/// How soon a ring that waits for a wakeup is first looked at anyway.
pub const RECHECK: Duration = Duration::from_millis(250);
/// The longest interval between such looks, on a guest that stays idle.
pub const RECHECK_MAX: Duration = Duration::from_secs(2);
/// A ring that slept this long before its commands came is an idle guest's:
/// once empty again it asks for notification without the retry.
pub const IDLE_GAP: Duration = Duration::from_millis(100);
/// A ring that slept this long before its commands came, on a guest that
/// does not fill it, is drawing frames at a rate the retry cannot catch:
/// once empty again it asks for notification without the retry (a busy
/// guest keeps its short retries until [`IDLE_GAP`]).
pub const PAUSE: Duration = Duration::from_millis(20);
/// Commands a ring holds (`QXL_COMMAND_RING_SIZE`, `QXL_CURSOR_RING_SIZE`):
/// a pass that took this many found the ring full.
pub const RING_SIZE: u32 = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The VM is stopped: the ring must not be touched.
    Stopped,
    /// Commands may be waiting: poll now.
    Ready,
    /// The ring was empty once; poll again at this time.
    Retry(Instant),
    /// Notification was requested; poll when woken, or at this time anyway.
    Asleep(Instant),
}

/// What to do after `get_command` found the ring empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Empty {
    /// Come back at [`RingPoller::deadline`]; do not ask for notification yet.
    RetryLater,
    /// Call `req_cmd_notification` (or its cursor twin) and report its answer
    /// with [`RingPoller::notification`].
    RequestNotification,
}

/// The polling state of one ring.
#[derive(Debug, Clone)]
pub struct RingPoller {
    state: State,
    /// The interval of the next look at a sleeping ring.
    recheck: Duration,
    /// When the ring last went to sleep (notification asked for after it
    /// was found empty; later looks at the sleeping ring do not move it).
    slept_at: Option<Instant>,
    /// Commands taken since the ring was last found empty.
    taken: u32,
    /// The guest filled its ring since it was last idle: no retries.
    busy: bool,
}

impl Default for RingPoller {
    fn default() -> Self {
        Self::new()
    }
}

impl RingPoller {
    /// A ring of a stopped VM.
    pub fn new() -> Self {
        Self {
            state: State::Stopped,
            recheck: RECHECK,
            slept_at: None,
            taken: 0,
            busy: false,
        }
    }

    /// The VM runs: the ring may hold commands.
    pub fn start(&mut self) {
        self.state = State::Ready;
    }

    /// The VM stopped: the ring is left alone until [`Self::start`].
    pub fn stop(&mut self) {
        self.state = State::Stopped;
    }

    /// Whether the VM runs, as far as this ring knows.
    pub fn is_running(&self) -> bool {
        self.state != State::Stopped
    }

    /// The device said commands are waiting (`spice_qxl_wakeup`).
    pub fn wakeup(&mut self) {
        if self.state != State::Stopped {
            self.state = State::Ready;
        }
    }

    /// Whether `get_command` should be called now.
    pub fn due(&self, now: Instant) -> bool {
        match self.state {
            State::Stopped => false,
            State::Ready => true,
            State::Retry(at) | State::Asleep(at) => now >= at,
        }
    }

    /// When the ring next wants a look, if it is not due now.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Stopped | State::Ready => None,
            State::Retry(at) | State::Asleep(at) => Some(at),
        }
    }

    /// `get_command` returned a command.
    pub fn got_command(&mut self) {
        if self.state != State::Stopped {
            self.state = State::Ready;
            self.recheck = RECHECK;
            self.taken = self.taken.saturating_add(1);
        }
    }

    /// `get_command` found the ring empty at `now`.
    pub fn empty(&mut self, now: Instant) -> Empty {
        let filled = std::mem::take(&mut self.taken) >= RING_SIZE;
        match self.state {
            State::Ready => {
                // A full ring starts a busy spell, an idle one ends it.
                self.busy = filled || (self.busy && !self.woke_from_idle(now));
                // Busy, the guest may be waiting for room: its next command
                // wakes us. After a pause (an idle one too) a retry finds nothing.
                if self.busy || self.slept_for(now) >= Some(PAUSE) {
                    Empty::RequestNotification
                } else {
                    self.state = State::Retry(now + RETRY);
                    Empty::RetryLater
                }
            }
            State::Retry(_) | State::Asleep(_) => Empty::RequestNotification,
            State::Stopped => Empty::RetryLater,
        }
    }

    /// Whether the ring had slept at least [`IDLE_GAP`] before the commands
    /// taken since.
    fn woke_from_idle(&self, now: Instant) -> bool {
        self.slept_for(now) >= Some(IDLE_GAP)
    }

    /// How long before `now` the ring last went to sleep.
    fn slept_for(&self, now: Instant) -> Option<Duration> {
        self.slept_at.map(|at| now.saturating_duration_since(at))
    }

    /// The answer of `req_cmd_notification` at `now`: `wait` (it returned
    /// non-zero) puts the ring to sleep; otherwise commands arrived meanwhile.
    pub fn notification(&mut self, wait: bool, now: Instant) {
        if self.state == State::Stopped {
            return;
        }
        self.state = if wait {
            let interval = if matches!(self.state, State::Asleep(_)) {
                // A look at a sleeping ring that found nothing: look less often.
                let interval = self.recheck;
                self.recheck = (interval * 2).min(RECHECK_MAX);
                interval
            } else {
                self.slept_at = Some(now);
                if self.busy {
                    self.recheck = RETRY;
                }
                self.recheck
            };
            State::Asleep(now + interval)
        } else {
            State::Ready
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A running ring that was found empty twice from `t` on and asked for
    /// notification: asleep since `t + RETRY`.
    fn asleep(t: Instant) -> RingPoller {
        let mut r = RingPoller::new();
        r.start();
        r.empty(t);
        assert_eq!(r.empty(t + RETRY), Empty::RequestNotification);
        r.notification(true, t + RETRY);
        r
    }

    #[test]
    fn a_stopped_ring_is_never_due_and_ignores_wakeups() {
        let t = Instant::now();
        let mut r = RingPoller::new();
        r.wakeup();
        r.got_command();
        r.notification(false, t);
        assert!(!r.due(t + Duration::from_secs(3600)));
        assert_eq!(r.deadline(), None);
        r.start();
        assert!(r.due(t));
        r.stop();
        assert!(!r.due(t));
    }

    #[test]
    fn an_empty_ring_is_retried_once_before_notification_is_requested() {
        let t = Instant::now();
        let mut r = RingPoller::new();
        r.start();
        assert_eq!(r.empty(t), Empty::RetryLater);
        assert!(!r.due(t + RETRY / 2));
        assert_eq!(r.deadline(), Some(t + RETRY));
        assert!(r.due(t + RETRY));
        assert_eq!(r.empty(t + RETRY), Empty::RequestNotification);
        r.notification(true, t + RETRY);
        assert!(!r.due(t + RETRY + RECHECK / 2));
    }

    #[test]
    fn a_command_in_between_restarts_the_count() {
        let t = Instant::now();
        let mut r = RingPoller::new();
        r.start();
        r.empty(t);
        r.got_command();
        assert!(r.due(t));
        assert_eq!(r.empty(t), Empty::RetryLater, "first empty again after work");
    }

    #[test]
    fn notification_that_finds_commands_keeps_polling() {
        let t = Instant::now();
        let mut r = RingPoller::new();
        r.start();
        r.empty(t);
        r.empty(t + RETRY);
        r.notification(false, t + RETRY);
        assert!(r.due(t + RETRY));
    }

    #[test]
    fn looks_at_an_idle_ring_grow_rarer_and_come_back_with_commands() {
        let t = Instant::now();
        let mut r = asleep(t);
        let mut now = t + RETRY;
        let mut intervals = Vec::new();
        for _ in 0..6 {
            let at = r.deadline().unwrap();
            intervals.push(at - now);
            now = at;
            assert_eq!(r.empty(now), Empty::RequestNotification);
            r.notification(true, now);
        }
        assert_eq!(
            intervals,
            [
                RECHECK,
                RECHECK,
                RECHECK * 2,
                RECHECK * 4,
                RECHECK_MAX,
                RECHECK_MAX
            ]
        );
        // Commands found at a look: back to the short interval.
        r.got_command();
        r.empty(now);
        r.empty(now + RETRY);
        r.notification(true, now + RETRY);
        assert_eq!(r.deadline(), Some(now + RETRY + RECHECK));
    }

    #[test]
    fn commands_after_a_long_sleep_ask_for_notification_without_the_retry() {
        let t = Instant::now();
        let mut r = asleep(t);
        let blink = t + RETRY + IDLE_GAP;
        r.wakeup();
        r.got_command();
        assert_eq!(
            r.empty(blink),
            Empty::RequestNotification,
            "an idle guest's burst: no second look"
        );
        r.notification(true, blink);
        assert_eq!(r.deadline(), Some(blink + RECHECK));
        // A burst right after that sleep is a busy guest's: retried first.
        let soon = blink + PAUSE / 2;
        r.wakeup();
        r.got_command();
        assert_eq!(r.empty(soon), Empty::RetryLater);
        assert_eq!(r.deadline(), Some(soon + RETRY));
    }

    /// A guest drawing 25 frames a second: after each frame the ring asks
    /// for notification at once (the retry would find nothing); one drawing
    /// 60 a second keeps the retry, which catches its next frame's start.
    #[test]
    fn a_guest_drawing_frames_a_pause_apart_asks_for_notification_at_once() {
        let t = Instant::now();
        let mut r = asleep(t);
        let mut now = t + RETRY;
        for frame in 0..5 {
            now += Duration::from_millis(40);
            take(&mut r, 4);
            assert_eq!(r.empty(now), Empty::RequestNotification, "frame {frame}");
            r.notification(true, now);
        }
        // Asleep since its retry, RETRY after a frame at `t`; the next
        // frame comes 16 ms after that one.
        let mut r = asleep(t);
        let now = t + Duration::from_millis(16);
        take(&mut r, 4);
        assert_eq!(r.empty(now), Empty::RetryLater, "a frame 16 ms after the last");
        assert!(PAUSE < IDLE_GAP && PAUSE >= RETRY * 2);
    }

    /// `n` commands taken from a woken ring.
    fn take(r: &mut RingPoller, n: u32) {
        r.wakeup();
        (0..n).for_each(|_| r.got_command());
    }

    #[test]
    fn a_guest_that_fills_its_ring_is_never_kept_waiting_for_a_retry() {
        let t = Instant::now();
        let mut r = RingPoller::new();
        r.start();
        take(&mut r, RING_SIZE - 1);
        assert_eq!(r.empty(t), Empty::RetryLater, "a ring that was never full");
        take(&mut r, RING_SIZE);
        let mut now = t + RETRY;
        assert_eq!(
            r.empty(now),
            Empty::RequestNotification,
            "the guest may wait for room: its next command wakes the server"
        );
        r.notification(false, now);
        assert!(r.due(now), "commands came meanwhile: taken at once");
        take(&mut r, 5);
        assert_eq!(
            r.empty(now),
            Empty::RequestNotification,
            "busy: no retry, though this pass was short"
        );
        r.notification(true, now);
        assert_eq!(
            r.deadline(),
            Some(now + RETRY),
            "a lost wakeup costs a busy guest little"
        );
        // Short bursts after that: still no retry while the guest keeps drawing.
        for _ in 0..5 {
            now += IDLE_GAP / 4;
            take(&mut r, 3);
            assert_eq!(r.empty(now), Empty::RequestNotification);
            r.notification(true, now);
            assert_eq!(r.deadline(), Some(now + RETRY));
        }
        // Idle for a while: the next burst is an idle guest's, then retries resume.
        now += IDLE_GAP;
        take(&mut r, 3);
        assert_eq!(r.empty(now), Empty::RequestNotification);
        r.notification(true, now);
        assert_eq!(r.deadline(), Some(now + RECHECK));
        now += PAUSE / 2;
        take(&mut r, 3);
        assert_eq!(r.empty(now), Empty::RetryLater);
    }

    #[test]
    fn idleness_counts_from_when_the_ring_went_to_sleep_not_from_the_last_look() {
        let t = Instant::now();
        let mut r = asleep(t);
        let look = t + RETRY + RECHECK;
        assert_eq!(r.empty(look), Empty::RequestNotification);
        r.notification(true, look);
        take(&mut r, 2);
        assert_eq!(
            r.empty(look + IDLE_GAP / 10),
            Empty::RequestNotification,
            "asleep for longer than IDLE_GAP, though looked at just before"
        );
    }

    #[test]
    fn a_sleeping_ring_is_looked_at_again_even_without_a_wakeup() {
        let t = Instant::now();
        let mut r = asleep(t);
        let recheck = t + RETRY + RECHECK;
        assert_eq!(r.deadline(), Some(recheck));
        assert!(r.due(recheck), "a lost wakeup costs at most RECHECK");
        // Still empty at the recheck: ask again at once and sleep again.
        assert_eq!(r.empty(recheck), Empty::RequestNotification);
        r.notification(true, recheck);
        assert_eq!(r.deadline(), Some(recheck + RECHECK));
        // A wakeup makes it due at once.
        r.wakeup();
        assert!(r.due(recheck));
    }
}
