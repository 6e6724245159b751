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

use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use spice_qxl::{GuestMemory, GuestRows, ReleaseInfo};
use spice_server::{Rect, SharedPixels};

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

/// Counts the worker's changes to what guest memory is mapped: every host
/// request but a wake-up may add or take away a memslot or a surface. A
/// copy's pixels shared with a stream frame are read only if nothing
/// changed since the copy's command was read, and a change waits for a
/// frame being read (a large stream's frames are encoded on their own
/// thread while the worker goes on).
#[derive(Debug, Clone, Default)]
pub(super) struct MemoryEpoch(Arc<RwLock<u64>>);

impl MemoryEpoch {
    pub(super) fn current(&self) -> u64 {
        *self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Guest memory may change: shared pixels read before this are stale.
    /// Waits for any frame being read from them (one frame's encoding).
    pub(super) fn advance(&self) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    /// Keeps memory as it was at `epoch` while the guard lives, or `None`
    /// if it changed since.
    fn hold(&self, epoch: u64) -> Option<RwLockReadGuard<'_, u64>> {
        let guard = self.0.read().unwrap_or_else(|e| e.into_inner());
        (*guard == epoch).then_some(guard)
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

    /// The host addresses of `rect`'s rows (in the area's coordinates), if
    /// they all lie inside the range the parser checked.
    fn rect_rows(&self, rect: Rect) -> Option<Vec<u64>> {
        let skip = u64::from(rect.x).checked_mul(4)?;
        let len = rect.width as usize * 4;
        (rect.y..rect.y.checked_add(rect.height)?)
            .map(|row| self.row_start(row, len + skip as usize)?.checked_add(skip))
            .collect()
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

/// A command whose pixels are still read: released (through [`Returned`])
/// when it is dropped, with the display's copy and any stream frame
/// sharing its pixels.
#[derive(Debug)]
pub(super) struct HeldCommand {
    pub(super) release: ReleaseInfo,
    pub(super) returned: Returned,
}

impl Drop for HeldCommand {
    fn drop(&mut self) {
        self.returned.push(self.release);
    }
}

/// A copy from guest memory waiting in the display, holding its command:
/// its pixels, which stream frames share.
pub(super) struct GuestCopy(pub(super) Arc<GuestFrame>);

impl spice_server::DeferredDraw for GuestCopy {
    fn fill_row(&mut self, row: u32, dst: &mut [u8]) -> bool {
        self.0.source.copy_row(row, dst)
    }

    fn append_row(&mut self, row: u32, len: usize, out: &mut Vec<u8>) -> bool {
        self.0.source.append_row(row, len, out)
    }

    fn share(&self) -> Option<Arc<dyn SharedPixels>> {
        Some(self.0.clone())
    }
}

/// A copy's pixels in guest memory and the command that keeps them there;
/// a stream frame's libjpeg takes the rows where they lie.
pub(super) struct GuestFrame {
    pub(super) source: GuestSource,
    /// Held for its drop, which releases the command.
    pub(super) _command: HeldCommand,
    pub(super) epoch: MemoryEpoch,
    /// [`MemoryEpoch::current`] when the command was read.
    pub(super) read_at: u64,
}

impl SharedPixels for GuestFrame {
    fn encode_jpeg(
        &self,
        rect: Rect,
        quality: u8,
        out: &mut Vec<u8>,
    ) -> Result<usize, spice_codec::CodecError> {
        use spice_codec::CodecError::InvalidImage;
        // Memslots change only on the worker's thread, after advancing the
        // epoch; this frame may be encoded there or on its stream's thread.
        // Holding the epoch as it was keeps the rows mapped until the
        // encoder is done with them.
        let _unchanged = self
            .epoch
            .hold(self.read_at)
            .ok_or(InvalidImage("guest memory changed since the frame was taken"))?;
        let rows = self
            .source
            .rect_rows(rect)
            .ok_or(InvalidImage("frame outside its bitmap"))?;
        HostMemory.encode_jpeg_rows(&rows, rect.width, quality, out)
    }
}

#[cfg(test)]
mod tests {
    use spice_server::DeferredDraw;

    use super::*;

    /// A 64x40 bitmap of photographic-ish B, G, R, x pixels standing in for
    /// guest memory (the accessor reads host addresses, which this is).
    fn bitmap() -> Vec<u8> {
        let (w, h) = (64usize, 40usize);
        let mut px = vec![0u8; w * h * 4];
        for y in 0..h {
            for x in 0..w {
                let v = ((x as f32 * 0.2).sin() * 50.0 + (y as f32 * 0.3).cos() * 50.0 + 128.0) as u8;
                px[(y * w + x) * 4..][..4].copy_from_slice(&[v, v / 2, 255 - v, 0]);
            }
        }
        px
    }

    /// A copy of `bitmap` from its corner (4, 2) on, and what it returned.
    fn copy_of(bitmap: &[u8], epoch: &MemoryEpoch) -> (GuestCopy, Returned) {
        let returned = Returned::default();
        let copy = GuestCopy(Arc::new(GuestFrame {
            source: GuestSource {
                rows: GuestRows {
                    host: bitmap.as_ptr() as u64,
                    len: bitmap.len() as u64,
                },
                stride: 64 * 4,
                x: 4,
                y: 2,
            },
            _command: HeldCommand {
                release: ReleaseInfo {
                    addr: 0x1000,
                    group_id: 1,
                },
                returned: returned.clone(),
            },
            epoch: epoch.clone(),
            read_at: epoch.current(),
        }));
        (copy, returned)
    }

    /// A frame encoded where the copy's pixels lie is byte for byte the
    /// frame encoded from the same pixels copied out first (as without
    /// sharing), for a part of the copy too.
    #[test]
    fn a_shared_frame_encodes_as_the_copied_pixels_do() {
        let bitmap = bitmap();
        let epoch = MemoryEpoch::default();
        let (mut copy, _) = copy_of(&bitmap, &epoch);
        let shared = copy.share().expect("guest copies share their pixels");
        for rect in [Rect::new(0, 0, 40, 24), Rect::new(6, 3, 30, 20)] {
            let mut copied = Vec::new();
            for row in rect.y..rect.y + rect.height {
                let mut line = vec![0u8; (rect.x + rect.width) as usize * 4];
                assert!(copy.fill_row(row, &mut line));
                copied.extend_from_slice(&line[rect.x as usize * 4..]);
            }
            let image = spice_codec::ImageRef {
                width: rect.width,
                height: rect.height,
                stride: rect.width as usize * 4,
                data: &copied,
            };
            let mut expected = Vec::new();
            crate::jpeg::LIBJPEG.encode(&image, 80, &mut expected).unwrap();
            let mut out = vec![9];
            let n = shared.encode_jpeg(rect, 80, &mut out).unwrap();
            assert_eq!((out[0], n + 1), (9, out.len()), "{rect:?}: appended");
            assert!(out[1..] == expected[..], "{rect:?}: same JPEG as from a copy");
        }
    }

    /// Once guest memory may have changed (a host request went through the
    /// worker), a shared frame is refused and nothing is read; a frame
    /// reaching past the bitmap's memory is refused too.
    #[test]
    fn a_shared_frame_is_refused_after_memory_changed_or_outside_its_bitmap() {
        let bitmap = bitmap();
        let epoch = MemoryEpoch::default();
        let (copy, _) = copy_of(&bitmap, &epoch);
        let shared = copy.share().unwrap();
        let mut out = Vec::new();
        assert!(
            shared.encode_jpeg(Rect::new(0, 37, 61, 1), 80, &mut out).is_err(),
            "past the last row's end"
        );
        assert!(
            shared.encode_jpeg(Rect::new(0, 30, 8, 9), 80, &mut out).is_err(),
            "past the last row"
        );
        assert!(out.is_empty());
        assert!(
            shared.encode_jpeg(Rect::new(0, 0, 60, 38), 80, &mut out).is_ok(),
            "the whole copy"
        );
        epoch.advance();
        let mut out = Vec::new();
        assert!(shared.encode_jpeg(Rect::new(0, 0, 8, 8), 80, &mut out).is_err());
        assert!(out.is_empty());
    }

    /// A change to guest memory waits for a frame being read from it (on a
    /// stream's encoder thread) to be done, and the frame is refused after.
    #[test]
    fn a_memory_change_waits_for_a_frame_being_read() {
        let epoch = MemoryEpoch::default();
        let taken = epoch.current();
        let reading = epoch.hold(taken).expect("unchanged");
        let advanced = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                epoch.advance();
                advanced.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert!(
                !advanced.load(std::sync::atomic::Ordering::SeqCst),
                "memory changed under a frame being read"
            );
            drop(reading);
        });
        assert!(advanced.into_inner());
        assert_eq!(epoch.current(), taken + 1);
        assert!(epoch.hold(taken).is_none(), "a frame taken before the change");
    }

    /// The command goes back once, when both the display's copy and the
    /// frame sharing its pixels are gone, whichever goes last.
    #[test]
    fn the_command_is_returned_once_both_are_done() {
        let bitmap = bitmap();
        let epoch = MemoryEpoch::default();
        for copy_first in [true, false] {
            let (copy, returned) = copy_of(&bitmap, &epoch);
            let shared = copy.share().unwrap();
            let (first, second): (Box<dyn std::any::Any>, Box<dyn std::any::Any>) = if copy_first {
                (Box::new(copy), Box::new(shared))
            } else {
                (Box::new(shared), Box::new(copy))
            };
            drop(first);
            assert!(returned.take().is_empty(), "still read by the other");
            drop(second);
            let back = returned.take();
            assert_eq!(back.len(), 1);
            assert_eq!((back[0].addr, back[0].group_id), (0x1000, 1));
        }
    }
}
