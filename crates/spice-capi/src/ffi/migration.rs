//! The migration interface (spice-migration.h).

use super::{SpiceBaseInstance, SpiceBaseInterface};

#[repr(C)]
pub struct SpiceMigrateInterface {
    pub base: SpiceBaseInterface,
    pub migrate_connect_complete: Option<unsafe extern "C" fn(sin: *mut SpiceMigrateInstance)>,
    pub migrate_end_complete: Option<unsafe extern "C" fn(sin: *mut SpiceMigrateInstance)>,
}

#[repr(C)]
pub struct SpiceMigrateInstance {
    pub base: SpiceBaseInstance,
    pub st: *mut std::ffi::c_void,
}
