//! Character devices (spice-char.h): agent, usbredir, ports.

use std::ffi::{c_char, c_int};

use super::{SpiceBaseInstance, SpiceBaseInterface};

pub const SPICE_CHAR_DEVICE_NOTIFY_WRITABLE: u32 = 1 << 0;

#[repr(C)]
pub struct SpiceCharDeviceInterface {
    pub base: SpiceBaseInterface,
    pub state: Option<unsafe extern "C" fn(sin: *mut SpiceCharDeviceInstance, connected: c_int)>,
    pub write:
        Option<unsafe extern "C" fn(sin: *mut SpiceCharDeviceInstance, buf: *const u8, len: c_int) -> c_int>,
    pub read:
        Option<unsafe extern "C" fn(sin: *mut SpiceCharDeviceInstance, buf: *mut u8, len: c_int) -> c_int>,
    pub event: Option<unsafe extern "C" fn(sin: *mut SpiceCharDeviceInstance, event: u8)>,
    pub flags: u32,
}

#[repr(C)]
pub struct SpiceCharDeviceInstance {
    pub base: SpiceBaseInstance,
    pub subtype: *const c_char,
    pub st: *mut std::ffi::c_void,
    pub portname: *const c_char,
}
