//! `QXL_DRAW_TEXT`: `QXLText` and its `QXLString` of raster glyphs.
//!
//! Layouts (packed, `spice/qxl_dev.h`): `QXLText { QXLPHYSICAL str; QXLRect
//! back_area; QXLBrush fore_brush, back_brush; u16 fore_mode, back_mode }`
//! (68 bytes, the largest member of the draw-type union); `QXLString { u32
//! data_size; u16 length; u16 flags; QXLDataChunk chunk }`, whose chunks hold
//! `QXLRasterGlyph { QXLPoint render_pos, glyph_origin; u16 width, height;
//! u8 data[] }` back to back, each followed by `height` rows of
//! `ceil(width * bpp / 8)` bytes.

use super::draw::brush;
use super::{Brush, Point, Rect};
use crate::error::ParseError;
use crate::guest::{ChunkRef, Ctx};
use crate::layout::Fields;

/// `sizeof(QXLString)` up to and including its embedded `QXLDataChunk` header.
const STRING_SIZE: usize = 28;
/// `sizeof(QXLRasterGlyph)` without its data.
const GLYPH_HEADER_SIZE: usize = 20;
/// Offsets in `QXLText`.
const BACK_AREA: usize = 8;
const FORE_BRUSH: usize = 24;
const BACK_BRUSH: usize = 44;
const FORE_MODE: usize = 64;
const BACK_MODE: usize = 66;

/// `SPICE_STRING_FLAGS_*`: [`Text::string_flags`].
pub mod string_flags {
    /// `SPICE_STRING_FLAGS_RASTER_A1`: glyphs are 1 bit per pixel.
    pub const RASTER_A1: u16 = 1 << 0;
    /// `SPICE_STRING_FLAGS_RASTER_A4`: glyphs are 4 bits per pixel.
    pub const RASTER_A4: u16 = 1 << 1;
    /// `SPICE_STRING_FLAGS_RASTER_A8`: glyphs are 8 bits per pixel.
    pub const RASTER_A8: u16 = 1 << 2;
    /// `SPICE_STRING_FLAGS_RASTER_TOP_DOWN`: glyph rows run top to bottom.
    pub const RASTER_TOP_DOWN: u16 = 1 << 3;
}

/// One `QXLRasterGlyph`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glyph {
    /// Where the glyph's origin goes on the target surface.
    pub render_pos: Point,
    /// The glyph's origin within its bitmap (its top-left is `render_pos + glyph_origin`).
    pub glyph_origin: Point,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Bytes per row: `ceil(width * bpp / 8)`, rows packed as the guest sends them.
    pub stride: u32,
    /// `height` rows of `stride` bytes of coverage, `bpp` bits per pixel,
    /// exactly as the guest packed them.
    pub data: Vec<u8>,
}

/// `QXLText`: glyphs drawn with a brush over an optional background.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    /// The string's glyphs, in order (`QXLString.length` of them).
    pub glyphs: Vec<Glyph>,
    /// Bits per glyph pixel, 1, 4 or 8, from the string's raster flag (A1 wins
    /// over A4 over A8 when several are set, as in the C server).
    pub bpp: u8,
    /// `QXLString.flags` as the guest set them, see [`string_flags`].
    pub string_flags: u16,
    /// The background rectangle filled with `back_brush` when `back_mode` is
    /// non-zero (not checked against anything, as in the C server).
    pub back_area: Rect,
    /// What the glyphs are drawn with.
    pub fore_brush: Brush,
    /// What `back_area` is filled with.
    pub back_brush: Brush,
    /// `SPICE_ROPD_*` bits for the glyphs.
    pub fore_mode: u16,
    /// `SPICE_ROPD_*` bits for the background (0: no background).
    pub back_mode: u16,
}

/// Parses the `QXLText` of the draw-type union `u`.
pub(super) fn parse(ctx: &Ctx<'_, '_>, u: Fields<'_>) -> Result<Text, ParseError> {
    let (string_flags, bpp, glyphs) = string(ctx, u.u64(0))?;
    Ok(Text {
        glyphs,
        bpp,
        string_flags,
        back_area: u.rect(BACK_AREA),
        fore_brush: brush(ctx, "drawable.text.fore_brush", u, FORE_BRUSH)?,
        back_brush: brush(ctx, "drawable.text.back_brush", u, BACK_BRUSH)?,
        fore_mode: u.u16(FORE_MODE),
        back_mode: u.u16(BACK_MODE),
    })
}

/// The `QXLString` at `phys`: its flags, bits per pixel and glyphs.
fn string(ctx: &Ctx<'_, '_>, phys: u64) -> Result<(u16, u8, Vec<Glyph>), ParseError> {
    let what = "drawable.text.str";
    if phys == 0 {
        return Err(ParseError::invalid(what, 0u64));
    }
    let (_, raw) = ctx.read_struct::<STRING_SIZE>(what, phys)?;
    let f = Fields(&raw);
    let (length, flags) = (f.u16(4), f.u16(6));
    let bpp = bpp(flags)?;
    let limit = ctx.limits().max_glyphs;
    if u32::from(length) > limit {
        return Err(ParseError::too_large(
            "drawable.text.str.length",
            length.into(),
            limit.into(),
        ));
    }
    let data = ctx.gather_exact(what, ChunkRef::embedded(f, phys, 8), f.u32(0))?;
    let glyphs = glyphs(&data, bpp, length)?;
    Ok((flags, bpp, glyphs))
}

fn bpp(flags: u16) -> Result<u8, ParseError> {
    use self::string_flags as s;
    if flags & s::RASTER_A1 != 0 {
        Ok(1)
    } else if flags & s::RASTER_A4 != 0 {
        Ok(4)
    } else if flags & s::RASTER_A8 != 0 {
        Ok(8)
    } else {
        Err(ParseError::invalid(
            "drawable.text.str.flags (no raster format)",
            flags,
        ))
    }
}

/// Splits the string's data into exactly `length` glyphs that fill it.
fn glyphs(data: &[u8], bpp: u8, length: u16) -> Result<Vec<Glyph>, ParseError> {
    // Reserve no more than the data can hold, whatever `length` claims.
    let mut out = Vec::with_capacity(usize::from(length).min(data.len() / GLYPH_HEADER_SIZE));
    let mut rest = data;
    while !rest.is_empty() {
        // `length` is within `max_glyphs`, so this bounds the glyphs kept too.
        if out.len() >= usize::from(length) {
            return Err(ParseError::SizeMismatch {
                what: "drawable.text.str glyphs (more in the data than its length)",
                expected: length.into(),
                actual: out.len() as u64 + 1,
            });
        }
        if rest.len() < GLYPH_HEADER_SIZE {
            return Err(ParseError::SizeMismatch {
                what: "drawable.text.str glyph header (overruns the string)",
                expected: GLYPH_HEADER_SIZE as u64,
                actual: rest.len() as u64,
            });
        }
        let (header, body) = rest.split_at(GLYPH_HEADER_SIZE);
        let h = Fields(header);
        let (width, height) = (h.u16(16), h.u16(18));
        let stride = (u32::from(width) * u32::from(bpp)).div_ceil(8);
        let size = u64::from(stride) * u64::from(height);
        if size > body.len() as u64 {
            return Err(ParseError::SizeMismatch {
                what: "drawable.text.str glyph data (overruns the string)",
                expected: size,
                actual: body.len() as u64,
            });
        }
        // `size <= body.len()`, so it fits a usize.
        let (pixels, next) = body.split_at(size as usize);
        out.push(Glyph {
            render_pos: h.point(0),
            glyph_origin: h.point(8),
            width,
            height,
            stride,
            data: pixels.to_vec(),
        });
        rest = next;
    }
    if out.len() != usize::from(length) {
        return Err(ParseError::SizeMismatch {
            what: "drawable.text.str.length (glyphs in the data)",
            expected: length.into(),
            actual: out.len() as u64,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glyph(x: i32, width: u16, height: u16, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [x, 10, 0, -8] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&width.to_le_bytes());
        out.extend_from_slice(&height.to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn raster_flag_precedence() {
        assert_eq!(bpp(string_flags::RASTER_A8 | string_flags::RASTER_A1), Ok(1));
        assert_eq!(bpp(string_flags::RASTER_A8 | string_flags::RASTER_A4), Ok(4));
        assert_eq!(bpp(string_flags::RASTER_A8), Ok(8));
        assert!(bpp(string_flags::RASTER_TOP_DOWN).is_err());
    }

    #[test]
    fn splits_glyphs_by_bpp() {
        // 9 pixels wide at 1 bpp: 2 bytes a row; at 4 bpp: 5 bytes a row.
        let data = [glyph(0, 9, 2, &[1, 2, 3, 4]), glyph(8, 0, 5, &[])].concat();
        let g = glyphs(&data, 1, 2).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].stride, &g[0].data[..]), (2, &[1, 2, 3, 4][..]));
        assert_eq!(g[0].render_pos, Point { x: 0, y: 10 });
        assert_eq!(g[0].glyph_origin, Point { x: 0, y: -8 });
        assert_eq!((g[1].width, g[1].height, g[1].stride), (0, 5, 0));
        assert!(g[1].data.is_empty());
        let four = glyph(0, 9, 1, &[0x12, 0x34, 0x56, 0x78, 0x90]);
        assert_eq!(glyphs(&four, 4, 1).unwrap()[0].stride, 5);
    }

    #[test]
    fn refuses_overruns_and_wrong_lengths() {
        let data = glyph(0, 8, 2, &[1, 2]);
        assert!(matches!(
            glyphs(&data, 8, 1),
            Err(ParseError::SizeMismatch {
                expected: 16,
                actual: 2,
                ..
            })
        ));
        assert!(matches!(
            glyphs(&data[..12], 1, 1),
            Err(ParseError::SizeMismatch {
                expected: 20,
                actual: 12,
                ..
            })
        ));
        assert!(matches!(
            glyphs(&data, 1, 2),
            Err(ParseError::SizeMismatch {
                expected: 2,
                actual: 1,
                ..
            })
        ));
        assert!(matches!(
            glyphs(&data, 1, 0),
            Err(ParseError::SizeMismatch {
                expected: 0,
                actual: 1,
                ..
            })
        ));
        let widest = glyph(0, u16::MAX, u16::MAX, &[]);
        assert!(matches!(
            glyphs(&widest, 8, 1),
            Err(ParseError::SizeMismatch { .. })
        ));
    }
}
