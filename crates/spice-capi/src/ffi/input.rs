//! Keyboard, mouse and tablet interfaces (spice-input.h).

use std::ffi::c_int;

use super::{SpiceBaseInstance, SpiceBaseInterface};

#[repr(C)]
pub struct SpiceKbdInterface {
    pub base: SpiceBaseInterface,
    pub push_scan_freg: Option<unsafe extern "C" fn(sin: *mut SpiceKbdInstance, frag: u8)>,
    pub get_leds: Option<unsafe extern "C" fn(sin: *mut SpiceKbdInstance) -> u8>,
}

#[repr(C)]
pub struct SpiceKbdInstance {
    pub base: SpiceBaseInstance,
    pub st: *mut std::ffi::c_void,
}

#[repr(C)]
pub struct SpiceMouseInterface {
    pub base: SpiceBaseInterface,
    pub motion: Option<
        unsafe extern "C" fn(
            sin: *mut SpiceMouseInstance,
            dx: c_int,
            dy: c_int,
            dz: c_int,
            buttons_state: u32,
        ),
    >,
    pub buttons: Option<unsafe extern "C" fn(sin: *mut SpiceMouseInstance, buttons_state: u32)>,
}

#[repr(C)]
pub struct SpiceMouseInstance {
    pub base: SpiceBaseInstance,
    pub st: *mut std::ffi::c_void,
}

#[repr(C)]
pub struct SpiceTabletInterface {
    pub base: SpiceBaseInterface,
    pub set_logical_size:
        Option<unsafe extern "C" fn(tablet: *mut SpiceTabletInstance, width: c_int, height: c_int)>,
    pub position: Option<
        unsafe extern "C" fn(tablet: *mut SpiceTabletInstance, x: c_int, y: c_int, buttons_state: u32),
    >,
    pub wheel: Option<
        unsafe extern "C" fn(tablet: *mut SpiceTabletInstance, wheel_motion: c_int, buttons_state: u32),
    >,
    pub buttons: Option<unsafe extern "C" fn(tablet: *mut SpiceTabletInstance, buttons_state: u32)>,
}

#[repr(C)]
pub struct SpiceTabletInstance {
    pub base: SpiceBaseInstance,
    pub st: *mut std::ffi::c_void,
}
