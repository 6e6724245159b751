//! Character device instances: the guest agent port ("vdagent"), and
//! "usbredir" and "port" devices served on spicevmc channels (a port named
//! `org.spice-space.webdav.0` on the webdav channel). Other subtypes are
//! accepted and idle, as the C server's unknown ones.

use std::ffi::c_int;

use spice_server::{CharDevice, ServerHandle, VmcDeviceId, VmcKind};

use crate::server::CServer;

use crate::ffi::{SpiceCharDeviceInstance, SpiceCharDeviceInterface};
use crate::instance::Liveness;

/// A char device instance pointer the server may hold.
struct Ptr(*mut SpiceCharDeviceInstance);

// SAFETY: the host keeps the instance alive until it removes the interface
// (`Liveness` stops calls after that); the server uses it only on the host's
// main thread, where QEMU's chardev code expects to be called.
unsafe impl Send for Ptr {}

/// `SpiceCharDeviceInstance` as a [`CharDevice`].
pub(crate) struct CCharDevice {
    sin: Ptr,
    alive: Liveness,
}

impl CCharDevice {
    pub(crate) fn new(sin: *mut SpiceCharDeviceInstance, alive: Liveness) -> Self {
        Self { sin: Ptr(sin), alive }
    }

    fn iface(&self) -> Option<&SpiceCharDeviceInterface> {
        if !self.alive.is_alive() {
            return None;
        }
        // SAFETY: a live instance whose `sif` is the char device interface it was added with.
        unsafe { ((*self.sin.0).base.sif as *const SpiceCharDeviceInterface).as_ref() }
    }
}

fn clamp_len(len: usize) -> c_int {
    c_int::try_from(len).unwrap_or(c_int::MAX)
}

impl CharDevice for CCharDevice {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let Some(read) = self.iface().and_then(|i| i.read) else {
            return 0;
        };
        // SAFETY: host callback on the main thread; `buf` is valid for `len` bytes.
        let n = unsafe { read(self.sin.0, buf.as_mut_ptr(), clamp_len(buf.len())) };
        usize::try_from(n).unwrap_or(0).min(buf.len())
    }

    fn write(&mut self, data: &[u8]) -> usize {
        let Some(write) = self.iface().and_then(|i| i.write) else {
            return 0;
        };
        // SAFETY: host callback on the main thread; `data` is valid for `len` bytes.
        let n = unsafe { write(self.sin.0, data.as_ptr(), clamp_len(data.len())) };
        usize::try_from(n).unwrap_or(0).min(data.len())
    }

    fn state(&mut self, connected: bool) {
        if let Some(state) = self.iface().and_then(|i| i.state) {
            // SAFETY: host callback on the main thread.
            unsafe { state(self.sin.0, c_int::from(connected)) };
        }
    }

    fn event(&mut self, event: u8) {
        // `event` exists from interface minor version 2, as the C server checks.
        let Some(event_fn) = self
            .iface()
            .filter(|i| i.base.minor_version >= 2)
            .and_then(|i| i.event)
        else {
            return;
        };
        // SAFETY: host callback on the main thread.
        unsafe { event_fn(self.sin.0, event) };
    }
}

/// What the server keeps for an added char device instance.
#[derive(Debug)]
pub(crate) struct CharDeviceState {
    pub(crate) subtype: String,
    /// The spicevmc device it is served as (usbredir and port).
    pub(crate) vmc: Option<VmcDeviceId>,
}

impl CharDeviceState {
    pub(crate) fn is_agent(&self) -> bool {
        self.subtype == "vdagent"
    }
}

/// The spicevmc channel a subtype (and port name) is served on.
pub(crate) fn vmc_kind(subtype: &str, portname: Option<&str>) -> Option<VmcKind> {
    match subtype {
        "usbredir" => Some(VmcKind::UsbRedir),
        "port" => Some(VmcKind::Port(portname.unwrap_or_default().to_owned())),
        _ => None,
    }
}

/// Runs `now` with `arg` on the server when called on its main thread while
/// it is free, so the device is served inside the host's call as QEMU
/// expects; else `queued` on the handle.
pub(crate) fn now_or_queued<T>(
    server: &CServer,
    arg: T,
    now: impl FnOnce(&spice_server::Server, T),
    queued: impl FnOnce(&ServerHandle, T),
) {
    match server.try_main() {
        Some(main) => match &main.server {
            Some(srv) => now(srv, arg),
            None => queued(&server.handle, arg),
        },
        None => queued(&server.handle, arg),
    }
}

/// Reads and drops whatever the device has, up to a bound per call.
///
/// # Safety
/// `sin` is a live char device instance with its interface set.
pub(crate) unsafe fn discard(sin: *mut SpiceCharDeviceInstance) {
    // SAFETY: per the caller's contract.
    let iface = unsafe { ((*sin).base.sif as *const SpiceCharDeviceInterface).as_ref() };
    let Some(read) = iface.and_then(|i| i.read) else {
        return;
    };
    let mut buf = [0u8; 4096];
    let mut total = 0usize;
    for _ in 0..256 {
        // SAFETY: host callback with a buffer of the stated size.
        let n = unsafe { read(sin, buf.as_mut_ptr(), buf.len() as c_int) };
        if n <= 0 {
            break;
        }
        total += n as usize;
    }
    if total > 0 {
        tracing::debug!(bytes = total, "dropped char device data no client can take");
    }
}
