//! `SpiceBaseInterface` / `SpiceBaseInstance`: what every interface starts with.

use std::ffi::c_char;

#[repr(C)]
pub struct SpiceBaseInterface {
    pub type_: *const c_char,
    pub description: *const c_char,
    pub major_version: u32,
    pub minor_version: u32,
}

#[repr(C)]
pub struct SpiceBaseInstance {
    pub sif: *const SpiceBaseInterface,
}
