//! `spice-migration.h`: client migration (seamless, semi-seamless and
//! switch-host) onto the server's migration state machine
//! (`ServerHandle::migrate_*`).

use std::ffi::{c_char, c_int};

use spice_server::MigrationTarget;

use super::server_ref;
use crate::guard::{c_str, guard};
use crate::server::CServer;

/// The destination as the host gave it; `None` when it names no host or no
/// port, which C refuses too.
///
/// # Safety
/// `dest` and `cert_subject` are NULL or NUL-terminated strings.
unsafe fn target(
    dest: *const c_char,
    port: c_int,
    secure_port: c_int,
    cert_subject: *const c_char,
) -> Option<MigrationTarget> {
    // SAFETY: per this function's contract.
    let host = unsafe { c_str(dest) }?;
    let port = u16::try_from(port).ok();
    let tls_port = u16::try_from(secure_port).ok();
    if port.is_none() && tls_port.is_none() {
        return None;
    }
    Some(MigrationTarget {
        host: host.to_owned(),
        port,
        tls_port,
        // SAFETY: per this function's contract.
        cert_subject: unsafe { c_str(cert_subject) }.map(str::to_owned),
    })
}

/// The server, when the host added a `SpiceMigrateInterface` (C asserts
/// one for `migrate_connect` and `migrate_end`, whose completions it calls).
///
/// # Safety
/// As `server_ref`.
unsafe fn migrating_server<'a>(s: *mut CServer) -> Option<&'a CServer> {
    // SAFETY: per this function's contract.
    let server = unsafe { server_ref(s) }?;
    let added = server
        .migration_interface
        .load(std::sync::atomic::Ordering::Acquire);
    if !added {
        tracing::warn!("migration requested without a migration interface");
    }
    added.then_some(server)
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_migrate_info(
    s: *mut CServer,
    dest: *const c_char,
    port: c_int,
    secure_port: c_int,
    cert_subject: *const c_char,
) -> c_int {
    guard("spice_server_migrate_info", -1, || {
        // SAFETY: `s` comes from spice_server_new.
        let Some(server) = (unsafe { server_ref(s) }) else {
            return -1;
        };
        // SAFETY: the host passes NULL or NUL-terminated strings.
        let Some(target) = (unsafe { target(dest, port, secure_port, cert_subject) }) else {
            return -1;
        };
        server.handle.migrate_info(target);
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_migrate_switch(s: *mut CServer) -> c_int {
    guard("spice_server_migrate_switch", -1, || {
        let _ = s;
        tracing::warn!("spice_server_migrate_switch is not supported; use migrate_connect and migrate_end");
        -1
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_migrate_connect(
    s: *mut CServer,
    dest: *const c_char,
    port: c_int,
    secure_port: c_int,
    cert_subject: *const c_char,
) -> c_int {
    guard("spice_server_migrate_connect", -1, || {
        // SAFETY: `s` comes from spice_server_new.
        let Some(server) = (unsafe { migrating_server(s) }) else {
            return -1;
        };
        // SAFETY: the host passes NULL or NUL-terminated strings.
        let Some(target) = (unsafe { target(dest, port, secure_port, cert_subject) }) else {
            return -1;
        };
        // Clients that can are told MIGRATE_BEGIN; the host's
        // migrate_connect_complete follows on the main context.
        server.handle.migrate_connect(target);
        0
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
        let Some(server) = (unsafe { migrating_server(s) }) else {
            return -1;
        };
        // The host's migrate_end_complete follows on the main context.
        server.handle.migrate_end(completed != 0);
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_seamless_migration(s: *mut CServer, enable: c_int) {
    guard("spice_server_set_seamless_migration", (), || {
        // SAFETY: `s` comes from spice_server_new.
        if let Some(server) = unsafe { server_ref(s) } {
            server.handle.set_seamless_migration(enable != 0);
        }
    })
}
