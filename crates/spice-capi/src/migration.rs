//! The host's `SpiceMigrateInterface` as the server's [`MigrationHost`].

use spice_server::MigrationHost;

use crate::ffi::{SpiceMigrateInstance, SpiceMigrateInterface};
use crate::input::Ptr;
use crate::instance::Liveness;

/// `SpiceMigrateInstance` as a [`MigrationHost`]; the server calls it on
/// the main context, the host's main thread.
pub(crate) struct CMigrationHost {
    sin: Ptr<SpiceMigrateInstance>,
    alive: Liveness,
}

impl CMigrationHost {
    pub(crate) fn new(sin: *mut SpiceMigrateInstance, alive: Liveness) -> Self {
        Self { sin: Ptr(sin), alive }
    }

    fn iface(&self) -> Option<&SpiceMigrateInterface> {
        if !self.alive.is_alive() {
            return None;
        }
        // SAFETY: live instance (see `Ptr`); its `sif` is the migration interface it was added with.
        unsafe { ((*self.sin.0).base.sif as *const SpiceMigrateInterface).as_ref() }
    }
}

impl MigrationHost for CMigrationHost {
    fn connect_complete(&self) {
        if let Some(f) = self.iface().and_then(|i| i.migrate_connect_complete) {
            // SAFETY: host callback on the main thread with its own instance.
            unsafe { f(self.sin.0) };
        }
    }

    fn end_complete(&self) {
        if let Some(f) = self.iface().and_then(|i| i.migrate_end_complete) {
            // SAFETY: host callback on the main thread with its own instance.
            unsafe { f(self.sin.0) };
        }
    }
}
