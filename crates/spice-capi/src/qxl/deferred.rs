//! Plain copies from guest memory that the display draws only when its
//! picture is read ([`spice_server::DeferredDraw`]).
//!
//! A guest playing video into its framebuffer sends each frame as a copy of
//! a bitmap left in guest memory, several for every frame a stream sends.
//! The copy's command is kept (not released) while its pixels wait, so the
//! guest cannot reuse their memory; the display drops the drawing once it
//! drew it or a newer copy covered it, and the command comes back to the
//! worker through [`Returned`] to be released on the worker's thread, as
//! the QXL interface requires.

use std::sync::{Arc, Mutex};

use spice_qxl::{GuestMemory, GuestRows, ReleaseInfo};

use super::memory::HostMemory;

/// Commands whose deferred pixels the display is done with, waiting for
/// their release on the worker's thread.
#[derive(Debug, Clone, Default)]
pub(super) struct Returned(Arc<Mutex<Vec<ReleaseInfo>>>);

impl Returned {
    fn push(&self, release: ReleaseInfo) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(release);
    }

    /// Everything returned so far, oldest first.
    pub(super) fn take(&self) -> Vec<ReleaseInfo> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Where a copy's pixels lie in guest memory: a bitmap's rows, from the
/// source corner `(x, y)` on.
#[derive(Debug, Clone, Copy)]
pub(super) struct GuestSource {
    pub(super) rows: GuestRows,
    pub(super) stride: u64,
    pub(super) x: u64,
    pub(super) y: u64,
}

impl GuestSource {
    /// Copies row `row` of the area into `dst` (`dst.len()` bytes); `false`
    /// if that would read outside the range the parser checked.
    pub(super) fn copy_row(&self, row: u32, dst: &mut [u8]) -> bool {
        // The rows stay mapped: the command is not released before the
        // copy is dropped, and the worker settles the display before any
        // memslot goes away.
        self.row_start(row, dst.len())
            .is_some_and(|at| HostMemory.read(at, dst).is_ok())
    }

    /// Appends row `row` of the area (`len` bytes) to `out`, copied straight
    /// into its spare capacity; `false` (with `out` as it was) as `copy_row`.
    pub(super) fn append_row(&self, row: u32, len: usize, out: &mut Vec<u8>) -> bool {
        self.row_start(row, len)
            .is_some_and(|at| HostMemory.read_append(at, len, out).is_ok())
    }

    /// The host address of `len` bytes of row `row`, if they lie inside the
    /// range the parser checked.
    fn row_start(&self, row: u32, len: usize) -> Option<u64> {
        let offset = (self.y + u64::from(row))
            .checked_mul(self.stride)
            .and_then(|o| o.checked_add(self.x.checked_mul(4)?))?;
        let end = offset.checked_add(len as u64)?;
        (end <= self.rows.len).then_some(())?;
        self.rows.host.checked_add(offset)
    }
}

/// A copy from guest memory waiting in the display, holding its command.
pub(super) struct GuestCopy {
    pub(super) source: GuestSource,
    pub(super) release: ReleaseInfo,
    pub(super) returned: Returned,
}

impl spice_server::DeferredDraw for GuestCopy {
    fn fill_row(&mut self, row: u32, dst: &mut [u8]) -> bool {
        self.source.copy_row(row, dst)
    }

    fn append_row(&mut self, row: u32, len: usize, out: &mut Vec<u8>) -> bool {
        self.source.append_row(row, len, out)
    }
}

impl Drop for GuestCopy {
    fn drop(&mut self) {
        self.returned.push(self.release);
    }
}
