//! Character device instances. The guest agent port ("vdagent") is served; the
//! other subtypes are accepted (QEMU validates names against them) and idle.

use std::ffi::c_int;

use spice_server::CharDevice;

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
