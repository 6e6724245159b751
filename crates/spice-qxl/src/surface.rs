//! The primary surface (`QXLDevSurfaceCreate`) and the surface geometry check
//! shared with `QXL_SURFACE_CMD_CREATE` (CVE-2016-2150).

use crate::error::ParseError;
use crate::memslot::MemSlots;

/// Most bytes one surface may span (`height * |stride|`), as in the C server.
pub const MAX_SURFACE_BYTES: u64 = 0x7fff_ffff;

/// `SPICE_SURFACE_FMT_*` values.
pub mod surface_format {
    /// `SPICE_SURFACE_FMT_1_A`.
    pub const A1: u32 = 1;
    /// `SPICE_SURFACE_FMT_8_A`.
    pub const A8: u32 = 8;
    /// `SPICE_SURFACE_FMT_16_555`.
    pub const RGB555: u32 = 16;
    /// `SPICE_SURFACE_FMT_32_xRGB`.
    pub const XRGB32: u32 = 32;
    /// `SPICE_SURFACE_FMT_16_565`.
    pub const RGB565: u32 = 80;
    /// `SPICE_SURFACE_FMT_32_ARGB`.
    pub const ARGB32: u32 = 96;

    /// Bits per pixel, `None` for formats a surface may not have.
    pub fn bits_per_pixel(format: u32) -> Option<u32> {
        Some(match format {
            A1 => 1,
            A8 => 8,
            RGB555 | RGB565 => 16,
            XRGB32 | ARGB32 => 32,
            _ => return None,
        })
    }
}

/// A primary surface as the host describes it (`QXLDevSurfaceCreate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimarySurface {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes between rows; negative for bottom-up (QEMU: `-width * 4`).
    pub stride: i32,
    /// `SPICE_SURFACE_FMT_*`.
    pub format: u32,
    /// `SPICE_MOUSE_MODE_*` the host supports.
    pub mouse_mode: u32,
    /// `QXL_SURF_FLAG_*`.
    pub flags: u32,
    /// `QXLPHYSICAL` of the lowest byte of the surface memory.
    pub mem: u64,
    /// Memslot group of `mem`.
    pub group_id: u32,
}

/// Checks a surface's geometry and returns the bytes it spans, `height * |stride|`.
///
/// Width and height must be non-zero, the format one of 32_xRGB, 32_ARGB,
/// 16_555, 16_565, 8_A, 1_A, `|stride|` at least one row, and the span at most
/// [`MAX_SURFACE_BYTES`].
pub fn surface_size(width: u32, height: u32, stride: i32, format: u32) -> Result<u64, ParseError> {
    let bpp = surface_format::bits_per_pixel(format).ok_or(ParseError::invalid("surface format", format))?;
    if width == 0 {
        return Err(ParseError::invalid("surface width", width));
    }
    if height == 0 {
        return Err(ParseError::invalid("surface height", height));
    }
    let row = (u64::from(width) * u64::from(bpp)).div_ceil(8);
    let abs_stride = u64::from(stride.unsigned_abs());
    if abs_stride < row {
        return Err(ParseError::SizeMismatch {
            what: "surface stride (smaller than a row)",
            expected: row,
            actual: abs_stride,
        });
    }
    let size = u64::from(height) * abs_stride;
    if size > MAX_SURFACE_BYTES {
        return Err(ParseError::too_large(
            "surface height*|stride|",
            size,
            MAX_SURFACE_BYTES,
        ));
    }
    Ok(size)
}

/// Validates dimensions, format, `|stride|` against the row size, and that the
/// whole memory range `[mem, mem + height * |stride|)` translates (the stride
/// may be negative: bottom-up). CVE-2016-2150.
pub fn validate_primary(slots: &MemSlots, s: &PrimarySurface) -> Result<(), ParseError> {
    translate_primary(slots, s).map(|_| ())
}

/// [`validate_primary`], returning the host address of the lowest byte of the surface memory.
pub fn translate_primary(slots: &MemSlots, s: &PrimarySurface) -> Result<u64, ParseError> {
    let size = surface_size(s.width, s.height, s.stride, s.format)?;
    slots
        .translate(s.mem, s.group_id, size)
        .map_err(|source| ParseError::Slot {
            what: "primary surface mem",
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry() {
        assert_eq!(
            surface_size(640, 480, -2560, surface_format::XRGB32),
            Ok(480 * 2560)
        );
        assert_eq!(surface_size(9, 1, 2, surface_format::A1), Ok(2));
        assert!(surface_size(9, 1, 1, surface_format::A1).is_err());
        assert!(surface_size(640, 480, -2556, surface_format::XRGB32).is_err());
        assert!(surface_size(640, 480, i32::MIN, surface_format::XRGB32).is_err());
        assert!(surface_size(0, 480, 2560, surface_format::XRGB32).is_err());
        assert!(surface_size(640, 0, 2560, surface_format::XRGB32).is_err());
        assert!(surface_size(640, 480, 2560, 24).is_err());
        assert!(surface_size(u32::MAX, 1, i32::MAX, surface_format::A8).is_err());
        assert!(surface_size(1, u32::MAX, 4, surface_format::XRGB32).is_err());
    }
}
