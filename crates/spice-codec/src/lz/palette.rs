//! Palette images for LZ_PLT: reducing an image of at most 256 colours to
//! 8-bit indices, and coding those as an LZ stream of type PLT8.

use super::encode::compress_bytes;
use super::{Header, LzEncoder, LzImageType, MAX_COPY, MAX_IMAGE_BYTES};
use crate::{CodecError, ImageRef};

/// An image of at most 256 colours as a palette and one index per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Palettized {
    /// The colours, `0x00RRGGBB`, in order of first appearance.
    pub palette: Vec<u32>,
    /// `width * height` indices into `palette`, rows top first.
    pub indices: Vec<u8>,
}

/// Slots of the colour table: a power of two, well above 256.
const TABLE: usize = 1024;

/// Reduces `image` (B, G, R, x pixels; x ignored) to a palette, or `None`
/// as soon as it has more than `max_colors` (at most 256) distinct colours.
/// Runs of one colour cost one comparison per pixel.
pub fn palettize(image: &ImageRef, max_colors: usize) -> Option<Palettized> {
    image.validate().ok()?;
    let max_colors = max_colors.min(256);
    // Slot: colour | 1 << 24 (0 = empty), and its index.
    let mut keys = [0u32; TABLE];
    let mut vals = [0u8; TABLE];
    let mut palette = Vec::new();
    let mut indices = Vec::with_capacity(image.width as usize * image.height as usize);
    let (mut last, mut last_index) = (u32::MAX, 0u8);
    for y in 0..image.height {
        for p in image.row(y).chunks_exact(4) {
            let c = u32::from_le_bytes([p[0], p[1], p[2], 0]);
            if c != last {
                let key = c | 1 << 24;
                let mut slot = (c.wrapping_mul(0x9E37_79B1) >> 22) as usize;
                loop {
                    if keys[slot] == key {
                        break;
                    }
                    if keys[slot] == 0 {
                        if palette.len() == max_colors {
                            return None;
                        }
                        keys[slot] = key;
                        vals[slot] = palette.len() as u8;
                        palette.push(c);
                        break;
                    }
                    slot = (slot + 1) % TABLE;
                }
                last = c;
                last_index = vals[slot];
            }
            indices.push(last_index);
        }
    }
    Some(Palettized { palette, indices })
}

/// Appends a complete LZ stream of type PLT8 (top-down, stride `width`)
/// coding `width * height` palette indices. See [`LzEncoder::encode_plt8`].
pub fn encode_plt8(width: u32, height: u32, indices: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    LzEncoder::new().encode_plt8(width, height, indices, out)
}

impl LzEncoder {
    /// Appends a complete LZ stream of type PLT8: the header (stride
    /// `width`, top-down) and one pass over the indices (`width * height`
    /// bytes, rows top first). The client looks each index up in the palette
    /// sent beside the stream (`SpiceLZPLTData`) without a bounds check, so
    /// every index must be below the palette's length.
    pub fn encode_plt8(
        &mut self,
        width: u32,
        height: u32,
        indices: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let n = width as usize * height as usize;
        if width == 0 || height == 0 {
            return Err(CodecError::InvalidImage("empty image"));
        }
        if indices.len() != n {
            return Err(CodecError::InvalidImage("index count is not width * height"));
        }
        if width > i32::MAX as u32 || n as u64 > MAX_IMAGE_BYTES {
            return Err(CodecError::InvalidImage("too large for LZ"));
        }
        Header {
            kind: LzImageType::Plt8,
            width,
            height,
            stride: width,
            top_down: true,
        }
        .write(out);
        out.reserve(n + n.div_ceil(MAX_COPY) + 16);
        compress_bytes(self, indices, width as usize, out);
        Ok(())
    }
}
