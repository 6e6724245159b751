//! What the server hangs on an interface instance's `st` pointer.
//!
//! `spice_server_remove_interface(sin)` and calls like `spice_server_kbd_leds(sin)`
//! get no server argument: they find it through `sin->st`, as in the C server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::server::CServer;

/// Which interface an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Keyboard,
    Mouse,
    Tablet,
    Qxl,
    Playback,
    Record,
    CharDevice,
    Migration,
}

/// Shared between an instance's `st` and the adapter the Rust server calls:
/// cleared on removal so a late call never reaches an instance the host dropped.
#[derive(Debug, Clone, Default)]
pub(crate) struct Liveness(Arc<AtomicBool>);

impl Liveness {
    pub(crate) fn new() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn kill(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Boxed behind `sin->st`.
pub(crate) struct InstanceState {
    pub(crate) server: *const CServer,
    pub(crate) kind: Kind,
    pub(crate) alive: Liveness,
    /// Extra per-kind state (QXL worker, audio stream, char device).
    pub(crate) extra: Option<Box<dyn std::any::Any + Send + Sync>>,
}
