//! Little-endian field access into copies of packed guest structures.
//!
//! Sizes and offsets are those of `spice/qxl_dev.h` (every struct is packed),
//! measured with the installed headers.

use crate::command::{Point, Rect};

/// `sizeof(QXLDataChunk)`: `u32 data_size; QXLPHYSICAL prev_chunk, next_chunk`.
pub(crate) const DATA_CHUNK_SIZE: usize = 20;
/// `sizeof(QXLRect)`.
pub(crate) const RECT_SIZE: usize = 16;

/// Reads fields of a copied structure. Out-of-range offsets read as zero
/// (they cannot happen with the constant offsets used, and must not panic).
#[derive(Clone, Copy)]
pub(crate) struct Fields<'b>(pub(crate) &'b [u8]);

impl Fields<'_> {
    fn array<const N: usize>(&self, off: usize) -> [u8; N] {
        off.checked_add(N)
            .and_then(|end| self.0.get(off..end))
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; N])
    }

    pub(crate) fn u8(&self, off: usize) -> u8 {
        self.0.get(off).copied().unwrap_or(0)
    }

    pub(crate) fn u16(&self, off: usize) -> u16 {
        u16::from_le_bytes(self.array(off))
    }

    pub(crate) fn i16(&self, off: usize) -> i16 {
        i16::from_le_bytes(self.array(off))
    }

    pub(crate) fn u32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.array(off))
    }

    pub(crate) fn i32(&self, off: usize) -> i32 {
        i32::from_le_bytes(self.array(off))
    }

    pub(crate) fn u64(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.array(off))
    }

    /// `QXLRect {i32 top, left, bottom, right}`.
    pub(crate) fn rect(&self, off: usize) -> Rect {
        Rect {
            top: self.i32(off),
            left: self.i32(off + 4),
            bottom: self.i32(off + 8),
            right: self.i32(off + 12),
        }
    }

    /// `QXLPoint {i32 x, y}`.
    pub(crate) fn point(&self, off: usize) -> Point {
        Point {
            x: self.i32(off),
            y: self.i32(off + 4),
        }
    }

    /// The `QXLDataChunk` header at `off`: `(data_size, next_chunk)`.
    pub(crate) fn chunk(&self, off: usize) -> (u32, u64) {
        (self.u32(off), self.u64(off + 12))
    }
}
