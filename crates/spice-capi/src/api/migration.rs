//! `spice-migration.h`. Client migration is not supported: `migrate_connect`
//! fails, which makes QEMU skip the client side of migration.

use std::ffi::{c_char, c_int};

use super::server_ref;
use crate::guard::guard;
use crate::server::CServer;

#[no_mangle]
pub unsafe extern "C" fn spice_server_migrate_info(
    s: *mut CServer,
    _dest: *const c_char,
    _port: c_int,
    _secure_port: c_int,
    _cert_subject: *const c_char,
) -> c_int {
    guard("spice_server_migrate_info", -1, || {
        let _ = s;
        tracing::warn!("client migration is not supported");
        -1
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_migrate_switch(s: *mut CServer) -> c_int {
    guard("spice_server_migrate_switch", -1, || {
        let _ = s;
        tracing::warn!("client migration is not supported");
        -1
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_migrate_connect(
    s: *mut CServer,
    _dest: *const c_char,
    _port: c_int,
    _secure_port: c_int,
    _cert_subject: *const c_char,
) -> c_int {
    guard("spice_server_migrate_connect", -1, || {
        let _ = s;
        tracing::warn!("client migration is not supported; clients will reconnect by themselves");
        -1
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_migrate_start(s: *mut CServer) -> c_int {
    guard("spice_server_migrate_start", -1, || {
        // SAFETY: `s` comes from spice_server_new.
        if unsafe { server_ref(s) }.is_none() {
            return -1;
        }
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_migrate_end(s: *mut CServer, completed: c_int) -> c_int {
    guard("spice_server_migrate_end", -1, || {
        // SAFETY: `s` comes from spice_server_new.
        if unsafe { server_ref(s) }.is_none() {
            return -1;
        }
        tracing::debug!(completed, "migration ended");
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_seamless_migration(s: *mut CServer, enable: c_int) {
    guard("spice_server_set_seamless_migration", (), || {
        let _ = s;
        if enable != 0 {
            tracing::debug!("seamless migration requested; not supported");
        }
    })
}
