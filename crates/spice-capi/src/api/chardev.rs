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
        let Some(device) = state
            .extra
            .as_ref()
            .and_then(|e| e.downcast_ref::<crate::chardev::CharDeviceState>())
        else {
            return;
        };
        // SAFETY: the server outlives its interfaces.
        let server = unsafe { state.server.as_ref() };
        // QEMU expects the device drained inside this call (it reads back what it
        // offered right away); off the main thread, or re-entrantly, it is queued.
        match (server, device.vmc) {
            (Some(server), Some(id)) => crate::chardev::now_or_queued(
                server,
                id,
                |srv, id| srv.vmc_wakeup_now(id),
                |h, id| h.vmc_wakeup(id),
            ),
            (Some(server), None) if device.is_agent() => crate::chardev::now_or_queued(
                server,
                (),
                |srv, ()| srv.agent_wakeup_now(),
                |h, ()| h.agent_wakeup(),
            ),
            _ => {
                // A subtype no channel serves: read and drop what it has, so
                // the host's writer is not left blocked.
                // SAFETY: a live char device instance added by the host.
                unsafe { crate::chardev::discard(sin) };
            }
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_port_event(sin: *mut SpiceCharDeviceInstance, event: u8) {
    guard("spice_server_port_event", (), || {
        // SAFETY: the host passes its own char device instance.
        let Some(state) = (unsafe { instance_state(sin.cast(), Kind::CharDevice) }) else {
            tracing::error!("port event on a char device that was not added");
            return;
        };
        let vmc = state
            .extra
            .as_ref()
            .and_then(|e| e.downcast_ref::<crate::chardev::CharDeviceState>())
            .and_then(|d| d.vmc);
        // SAFETY: the server outlives its interfaces.
        let (Some(id), Some(server)) = (vmc, unsafe { state.server.as_ref() }) else {
            tracing::debug!(event, "port event on a char device no channel serves");
            return;
        };
        // In its place among the data read for the client.
        crate::chardev::now_or_queued(
            server,
            (id, event),
            |srv, (id, event)| srv.port_event_now(id, event),
            |h, (id, event)| h.port_event(id, event),
        );
    })
}
