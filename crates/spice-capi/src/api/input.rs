//! `spice-input.h`.

use std::ffi::c_int;

use super::interface::instance_state;
use crate::ffi::SpiceKbdInstance;
use crate::guard::guard;
use crate::instance::Kind;

#[no_mangle]
pub unsafe extern "C" fn spice_server_kbd_leds(sin: *mut SpiceKbdInstance, leds: c_int) -> c_int {
    guard("spice_server_kbd_leds", -1, || {
        // SAFETY: the host passes its keyboard instance (possibly from a vCPU thread:
        // only the thread-safe handle is used below).
        let Some(state) = (unsafe { instance_state(sin.cast(), Kind::Keyboard) }) else {
            return -1;
        };
        // SAFETY: the server outlives its interfaces.
        let Some(server) = (unsafe { state.server.as_ref() }) else {
            return -1;
        };
        server
            .handle
            .set_keyboard_leds(spice_server::Leds((leds & 0x7) as u8));
        0
    })
}
