//! `spice-char.h`: character devices (agent, usbredir, ports).

use std::ffi::c_char;

use crate::ffi::SpiceCharDeviceInstance;
use crate::guard::guard;

/// `NULL`-terminated list returned by `spice_server_char_device_recognized_subtypes`.
struct Subtypes([*const c_char; 3]);

// SAFETY: the pointers refer to immutable static strings.
unsafe impl Sync for Subtypes {}

static SUBTYPES: Subtypes = Subtypes([c"vdagent".as_ptr(), c"usbredir".as_ptr(), std::ptr::null()]);

#[no_mangle]
pub extern "C" fn spice_server_char_device_recognized_subtypes() -> *const *const c_char {
    SUBTYPES.0.as_ptr()
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_char_device_wakeup(sin: *mut SpiceCharDeviceInstance) {
    guard("spice_server_char_device_wakeup", (), || {
        let _ = sin;
        tracing::trace!("char device wakeup (char devices not implemented yet)");
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_port_event(sin: *mut SpiceCharDeviceInstance, event: u8) {
    guard("spice_server_port_event", (), || {
        let _ = sin;
        tracing::debug!(event, "port event (ports not implemented yet)");
    })
}
