//! `SpiceCoreInterface` (spice-core.h).

use std::ffi::{c_int, c_void};

use super::SpiceBaseInterface;

pub const SPICE_WATCH_EVENT_READ: c_int = 1 << 0;
pub const SPICE_WATCH_EVENT_WRITE: c_int = 1 << 1;
pub const SPICE_CHANNEL_EVENT_CONNECTED: c_int = 1;
pub const SPICE_CHANNEL_EVENT_INITIALIZED: c_int = 2;
pub const SPICE_CHANNEL_EVENT_DISCONNECTED: c_int = 3;
pub const SPICE_CHANNEL_EVENT_FLAG_TLS: c_int = 1 << 0;
pub const SPICE_CHANNEL_EVENT_FLAG_ADDR_EXT: c_int = 1 << 1;

/// Opaque timer of the host.
#[repr(C)]
pub struct SpiceTimer {
    _private: [u8; 0],
}

/// Opaque watch of the host.
#[repr(C)]
pub struct SpiceWatch {
    _private: [u8; 0],
}

pub type SpiceTimerFunc = unsafe extern "C" fn(opaque: *mut c_void);
pub type SpiceWatchFunc = unsafe extern "C" fn(fd: c_int, event: c_int, opaque: *mut c_void);

#[repr(C)]
pub struct SpiceChannelEventInfo {
    pub connection_id: c_int,
    pub type_: c_int,
    pub id: c_int,
    pub flags: c_int,
    pub laddr: libc::sockaddr,
    pub paddr: libc::sockaddr,
    pub llen: libc::socklen_t,
    pub plen: libc::socklen_t,
    pub laddr_ext: libc::sockaddr_storage,
    pub paddr_ext: libc::sockaddr_storage,
    pub llen_ext: libc::socklen_t,
    pub plen_ext: libc::socklen_t,
}

#[repr(C)]
pub struct SpiceCoreInterface {
    pub base: SpiceBaseInterface,
    pub timer_add: Option<unsafe extern "C" fn(func: SpiceTimerFunc, opaque: *mut c_void) -> *mut SpiceTimer>,
    pub timer_start: Option<unsafe extern "C" fn(timer: *mut SpiceTimer, ms: u32)>,
    pub timer_cancel: Option<unsafe extern "C" fn(timer: *mut SpiceTimer)>,
    pub timer_remove: Option<unsafe extern "C" fn(timer: *mut SpiceTimer)>,
    pub watch_add: Option<
        unsafe extern "C" fn(
            fd: c_int,
            event_mask: c_int,
            func: SpiceWatchFunc,
            opaque: *mut c_void,
        ) -> *mut SpiceWatch,
    >,
    pub watch_update_mask: Option<unsafe extern "C" fn(watch: *mut SpiceWatch, event_mask: c_int)>,
    pub watch_remove: Option<unsafe extern "C" fn(watch: *mut SpiceWatch)>,
    pub channel_event: Option<unsafe extern "C" fn(event: c_int, info: *mut SpiceChannelEventInfo)>,
}
