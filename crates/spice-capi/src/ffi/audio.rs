//! Playback and record interfaces (spice-audio.h): no callbacks, only instances.

use super::{SpiceBaseInstance, SpiceBaseInterface};

#[repr(C)]
pub struct SpicePlaybackInterface {
    pub base: SpiceBaseInterface,
}

#[repr(C)]
pub struct SpicePlaybackInstance {
    pub base: SpiceBaseInstance,
    pub st: *mut std::ffi::c_void,
}

#[repr(C)]
pub struct SpiceRecordInterface {
    pub base: SpiceBaseInterface,
}

#[repr(C)]
pub struct SpiceRecordInstance {
    pub base: SpiceBaseInstance,
    pub st: *mut std::ffi::c_void,
}
