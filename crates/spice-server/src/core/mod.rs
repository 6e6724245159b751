//! The core interface: how the server runs on an event loop it does not own.
//!
//! This is the Rust form of `SpiceCoreInterface`. The host provides timers,
//! file-descriptor watches and (optionally) a channel-event sink; the server
//! registers callbacks and never blocks or spawns threads on the main context.
//! [`BuiltinLoop`] is an implementation for hosts that bring no loop.

mod builtin;

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

pub use builtin::{BuiltinLoop, LoopStopper};

/// Identifies a timer created with [`Core::add_timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u64);

/// Identifies a watch created with [`Core::add_watch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchId(pub u64);

/// Readiness of interest for a watch (`SPICE_WATCH_EVENT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interest {
    /// Wake when the descriptor is readable (or closed).
    pub read: bool,
    /// Wake when the descriptor is writable.
    pub write: bool,
}

impl Interest {
    /// Readable only.
    pub const READ: Interest = Interest {
        read: true,
        write: false,
    };
    /// Readable and writable.
    pub const READ_WRITE: Interest = Interest {
        read: true,
        write: true,
    };
}

/// Timer callback.
pub type TimerCallback = Box<dyn FnMut()>;
/// Watch callback; receives the readiness that fired.
pub type WatchCallback = Box<dyn FnMut(Interest)>;

/// Lifecycle of a channel connection (`SPICE_CHANNEL_EVENT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelEvent {
    /// A channel finished linking.
    Connected,
    /// The channel is ready to carry messages.
    Initialized,
    /// The channel connection closed.
    Disconnected,
}

/// Who is on a channel connection (`SpiceChannelEventInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Identifies this connection from its first event to its last, so a host
    /// can keep per-connection data (the C ABI keeps `SpiceChannelEventInfo` alive with it).
    pub link_id: u64,
    /// Session id shared by the client's channels.
    pub connection_id: u32,
    /// `SPICE_CHANNEL_*` type.
    pub channel_type: u8,
    /// Channel instance id.
    pub channel_id: u8,
    /// Our end of the socket.
    pub local: Option<SocketAddr>,
    /// The client's end of the socket.
    pub peer: Option<SocketAddr>,
    /// Whether the connection is over TLS.
    pub tls: bool,
}

/// An event loop the server runs on: timers, fd watches and channel events.
///
/// All methods are called on the loop's own thread, and callbacks must be
/// invoked on that thread too. Implementations must tolerate a callback that
/// removes its own (or another) timer or watch while it runs, and must not
/// invoke callbacks from inside these methods.
///
/// Watches are level-triggered: a callback fires for as long as the descriptor
/// stays ready for an interest it was registered with.
pub trait Core {
    /// Creates a stopped one-shot timer.
    fn add_timer(&self, callback: TimerCallback) -> TimerId;
    /// Arms (or re-arms) a timer to fire once after `after`.
    fn start_timer(&self, timer: TimerId, after: Duration);
    /// Disarms a timer without removing it.
    fn cancel_timer(&self, timer: TimerId);
    /// Removes a timer for good.
    fn remove_timer(&self, timer: TimerId);
    /// Watches a descriptor. The server keeps the descriptor open until it removes the watch.
    fn add_watch(&self, fd: RawFd, interest: Interest, callback: WatchCallback) -> WatchId;
    /// Changes what a watch waits for.
    fn update_watch(&self, watch: WatchId, interest: Interest);
    /// Removes a watch.
    fn remove_watch(&self, watch: WatchId);
    /// Reports channel lifecycle events; ignored by default.
    fn channel_event(&self, _event: ChannelEvent, _info: &ChannelInfo) {}
}
