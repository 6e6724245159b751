//! The exported `extern "C"` functions, grouped as in `spice.h`.
//!
//! Every function catches panics ([`crate::guard::guard`]), checks its pointers,
//! and either does what `spice.h` documents or fails with the documented
//! return value and a log line.

pub mod audio;
pub mod chardev;
pub mod input;
pub mod interface;
pub mod migration;
pub mod qxl;
pub mod replay;
pub mod server;

use crate::server::CServer;

/// Borrows the server behind a C `SpiceServer*`.
///
/// # Safety
/// `s` is NULL or a pointer returned by `spice_server_new` and not yet destroyed.
pub(crate) unsafe fn server_ref<'a>(s: *mut CServer) -> Option<&'a CServer> {
    // SAFETY: NULL or a live Box<CServer> per the caller's contract.
    let server = unsafe { s.as_ref() };
    if server.is_none() {
        tracing::error!("NULL SpiceServer");
    }
    server
}
