//! `spice-replay.h`: replaying recorded QXL command streams is not supported.

use std::ffi::{c_int, c_void};

use crate::ffi::{QXLCommandExt, QXLInstance};
use crate::guard::guard;

#[no_mangle]
pub unsafe extern "C" fn spice_replay_new(file: *mut c_void, nsurfaces: c_int) -> *mut c_void {
    guard("spice_replay_new", std::ptr::null_mut(), || {
        let _ = (file, nsurfaces);
        tracing::warn!("QXL command replay is not supported");
        std::ptr::null_mut()
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_replay_free(replay: *mut c_void) {
    guard("spice_replay_free", (), || {
        let _ = replay;
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_replay_next_cmd(
    replay: *mut c_void,
    instance: *mut QXLInstance,
) -> *mut QXLCommandExt {
    guard("spice_replay_next_cmd", std::ptr::null_mut(), || {
        let _ = (replay, instance);
        std::ptr::null_mut()
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_replay_free_cmd(replay: *mut c_void, cmd: *mut QXLCommandExt) {
    guard("spice_replay_free_cmd", (), || {
        let _ = (replay, cmd);
    })
}
