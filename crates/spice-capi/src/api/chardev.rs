//! `spice-char.h`: character devices (agent, usbredir, ports).

use std::ffi::c_char;

use super::interface::instance_state;
use crate::ffi::SpiceCharDeviceInstance;
use crate::guard::guard;
use crate::instance::Kind;

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
        // SAFETY: the host passes its own char device instance.
        let Some(state) = (unsafe { instance_state(sin.cast(), Kind::CharDevice) }) else {
            tracing::error!("wakeup of a char device that was not added");
            return;
        };
        let is_agent = state
            .extra
            .as_ref()
            .and_then(|e| e.downcast_ref::<String>())
            .is_some_and(|s| s == "vdagent");
        if !is_agent {
            // No client can take this device's data yet: read and drop it, so the
            // host's writer is not left blocked (the C server drops it too while
            // no client is attached).
            // SAFETY: a live char device instance added by the host.
            unsafe { crate::chardev::discard(sin) };
            return;
        }
        // SAFETY: the server outlives its interfaces.
        let Some(server) = (unsafe { state.server.as_ref() }) else {
            return;
        };
        // QEMU expects the device drained inside this call (it reads back what it
        // offered right away); off the main thread, or re-entrantly, it is queued.
        match server.try_main() {
            Some(main) => match &main.server {
                Some(srv) => srv.agent_wakeup_now(),
                None => server.handle.agent_wakeup(),
            },
            None => server.handle.agent_wakeup(),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_port_event(sin: *mut SpiceCharDeviceInstance, event: u8) {
    guard("spice_server_port_event", (), || {
        let _ = sin;
        tracing::debug!(event, "port event (ports not implemented yet)");
    })
}
