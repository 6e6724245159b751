//! The server's copy of a display's picture, which every client of the
//! display is brought up to date from.

use super::region::Rect;

/// The server's copy of the picture: tightly packed xRGB rows.
#[derive(Debug, Clone)]
pub(crate) struct Surface {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) pixels: Pixels,
}

/// Packed xRGB bytes, kept in 32-bit words so that a canvas (pixman) can
/// draw into them in place; read and written as bytes everywhere else.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Pixels(Vec<u32>);

impl Pixels {
    /// `bytes` zero bytes (a multiple of 4: whole pixels).
    pub(crate) fn zeroed(bytes: usize) -> Self {
        Self(vec![0; bytes.div_ceil(4)])
    }

    pub(crate) fn words(&self) -> &[u32] {
        &self.0
    }

    pub(crate) fn words_mut(&mut self) -> &mut [u32] {
        &mut self.0
    }
}

impl From<Vec<u8>> for Pixels {
    fn from(bytes: Vec<u8>) -> Self {
        let mut pixels = Self::zeroed(bytes.len());
        pixels[..bytes.len()].copy_from_slice(&bytes);
        pixels
    }
}

impl std::ops::Deref for Pixels {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

impl std::ops::DerefMut for Pixels {
    fn deref_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.0)
    }
}

impl std::fmt::Debug for Pixels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pixels({} bytes)", self.len())
    }
}

impl PartialEq<Vec<u8>> for Pixels {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == other[..]
    }
}

impl PartialEq<Pixels> for Vec<u8> {
    fn eq(&self, other: &Pixels) -> bool {
        self[..] == **other
    }
}

impl Surface {
    pub(crate) fn stride(&self) -> usize {
        self.width as usize * 4
    }

    /// Copies the pixels of `rect` (already clipped) into a packed buffer.
    pub(crate) fn copy_rect(&self, rect: Rect, out: &mut Vec<u8>) {
        let stride = self.stride();
        let row_bytes = rect.width as usize * 4;
        out.reserve(row_bytes * rect.height as usize);
        for row in rect.y..rect.y + rect.height {
            let start = row as usize * stride + rect.x as usize * 4;
            out.extend_from_slice(&self.pixels[start..start + row_bytes]);
        }
    }

    /// Hands each row of `area` (inside the picture) to `fill`, top to
    /// bottom, until `fill` says it failed; returns how many rows it was
    /// given (a failed row may be written in part, so it counts).
    pub(crate) fn fill_rows(&mut self, area: Rect, mut fill: impl FnMut(u32, &mut [u8]) -> bool) -> u32 {
        let stride = self.stride();
        let row_bytes = area.width as usize * 4;
        for row in 0..area.height {
            let start = (area.y + row) as usize * stride + area.x as usize * 4;
            if !fill(row, &mut self.pixels[start..start + row_bytes]) {
                return row + 1;
            }
        }
        area.height
    }
}
