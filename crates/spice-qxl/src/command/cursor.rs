//! `QXL_CMD_CURSOR`: `QXLCursorCmd` and `QXLCursor` shapes.

use super::TopLevel;
use crate::error::ParseError;
use crate::guest::{ChunkRef, Ctx};
use crate::layout::Fields;

/// `sizeof(QXLCursorCmd)`, including its 128 bytes of device data.
const CURSOR_CMD_SIZE: usize = 150;
/// `sizeof(QXLCursor)`: header, `data_size`, and the first `QXLDataChunk`.
const CURSOR_SIZE: usize = 42;

/// `SPICE_CURSOR_TYPE_*` values.
pub mod cursor_type {
    /// `SPICE_CURSOR_TYPE_ALPHA`: `width * height` B, G, R, A pixels.
    pub const ALPHA: u8 = 0;
    /// `SPICE_CURSOR_TYPE_MONO`: AND mask then XOR mask, 1 bit per pixel, rows byte-aligned.
    pub const MONO: u8 = 1;
    /// `SPICE_CURSOR_TYPE_COLOR4`.
    pub const COLOR4: u8 = 2;
    /// `SPICE_CURSOR_TYPE_COLOR8`.
    pub const COLOR8: u8 = 3;
    /// `SPICE_CURSOR_TYPE_COLOR16`.
    pub const COLOR16: u8 = 4;
    /// `SPICE_CURSOR_TYPE_COLOR24`.
    pub const COLOR24: u8 = 5;
    /// `SPICE_CURSOR_TYPE_COLOR32`: xRGB pixels, then a 1-bit mask.
    pub const COLOR32: u8 = 6;
}

/// A parsed `QXLCursorCmd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorCommand {
    /// `QXL_CURSOR_SET`.
    Set {
        /// Pointer column.
        x: i16,
        /// Pointer row.
        y: i16,
        /// Whether the pointer is shown.
        visible: bool,
        /// The new shape; `None` when the guest's shape pointer is 0.
        shape: Option<CursorShape>,
    },
    /// `QXL_CURSOR_MOVE`.
    Move {
        /// Pointer column.
        x: i16,
        /// Pointer row.
        y: i16,
    },
    /// `QXL_CURSOR_HIDE`.
    Hide,
    /// `QXL_CURSOR_TRAIL`.
    Trail {
        /// Trail length.
        length: u16,
        /// Trail frequency.
        frequency: u16,
    },
}

/// A parsed `QXLCursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorShape {
    /// Guest's cache id for the shape.
    pub unique: u64,
    /// `SPICE_CURSOR_TYPE_*`, see [`cursor_type`].
    pub cursor_type: u8,
    /// Width in pixels, `1..=max_cursor_side`.
    pub width: u16,
    /// Height in pixels, `1..=max_cursor_side`.
    pub height: u16,
    /// Hotspot column (as sent; not clamped).
    pub hot_x: u16,
    /// Hotspot row (as sent; not clamped).
    pub hot_y: u16,
    /// The shape's bytes: `min(data_size, bytes in the chunk list)`, at least
    /// [`CursorShape::required_len`] when that is known.
    pub data: Vec<u8>,
}

pub(crate) fn parse(ctx: &Ctx<'_, '_>, phys: u64) -> TopLevel<CursorCommand> {
    let (host, raw) = ctx.read_struct::<CURSOR_CMD_SIZE>("cursor command", phys)?;
    Ok((host, command(ctx, Fields(&raw))))
}

fn command(ctx: &Ctx<'_, '_>, f: Fields<'_>) -> Result<CursorCommand, ParseError> {
    let (x, y) = (f.i16(9), f.i16(11));
    Ok(match f.u8(8) {
        0 => CursorCommand::Set {
            x,
            y,
            visible: f.u8(13) != 0,
            shape: match f.u64(14) {
                0 => None,
                shape => Some(parse_shape(ctx, shape)?),
            },
        },
        1 => CursorCommand::Move { x, y },
        2 => CursorCommand::Hide,
        3 => CursorCommand::Trail {
            length: f.u16(9),
            frequency: f.u16(11),
        },
        other => return Err(ParseError::invalid("cursor command type", other)),
    })
}

fn parse_shape(ctx: &Ctx<'_, '_>, phys: u64) -> Result<CursorShape, ParseError> {
    let what = "cursor shape";
    let (_, raw) = ctx.read_struct::<CURSOR_SIZE>(what, phys)?;
    let f = Fields(&raw);
    let cursor_type = f.u16(8);
    if cursor_type > u16::from(cursor_type::COLOR32) {
        return Err(ParseError::invalid("cursor shape type", cursor_type));
    }
    let (width, height) = (f.u16(10), f.u16(12));
    let side = ctx.limits().max_cursor_side;
    for (name, v) in [("cursor shape width", width), ("cursor shape height", height)] {
        if v == 0 {
            return Err(ParseError::invalid(name, v));
        }
        if v > side {
            return Err(ParseError::too_large(name, v.into(), side.into()));
        }
    }
    let mut data = ctx.gather(
        "cursor shape data",
        ChunkRef::embedded(f, phys, 22),
        ctx.limits().max_cursor_bytes,
    )?;
    data.truncate(f.u32(18) as usize);
    let shape = CursorShape {
        unique: f.u64(0),
        cursor_type: cursor_type as u8,
        width,
        height,
        hot_x: f.u16(14),
        hot_y: f.u16(16),
        data,
    };
    if let Some(needed) = shape.required_len() {
        if shape.data.len() < needed {
            return Err(ParseError::SizeMismatch {
                what: "cursor shape data (shorter than its type needs)",
                expected: needed as u64,
                actual: shape.data.len() as u64,
            });
        }
    }
    Ok(shape)
}

/// spice-gtk's stand-in for "invert the screen" pixels: a dark/grey checker.
fn invert_pixel(i: usize, width: usize) -> [u8; 4] {
    let v: u32 = if ((i % width) ^ (i / width)) & 1 == 1 {
        0xc030_3030
    } else {
        0x3050_5050
    };
    v.to_le_bytes()
}

impl CursorShape {
    /// Bytes the shape's type needs, `None` for COLOR8 and COLOR24 (whose
    /// layouts no client implements).
    pub fn required_len(&self) -> Option<usize> {
        let (w, h) = (usize::from(self.width), usize::from(self.height));
        let pixels = w * h;
        let mask = pixels.div_ceil(8);
        Some(match self.cursor_type {
            cursor_type::ALPHA => pixels * 4,
            cursor_type::MONO => 2 * w.div_ceil(8) * h,
            cursor_type::COLOR4 => w.div_ceil(2) * h + 16 * 4 + mask,
            cursor_type::COLOR16 => pixels * 2 + mask,
            cursor_type::COLOR32 => pixels * 4 + mask,
            _ => return None,
        })
    }

    /// The shape as `width * height` ARGB pixels (B, G, R, A bytes, not premultiplied).
    ///
    /// ALPHA is copied; MONO maps AND/XOR to transparent, black, white, and a
    /// checker for "invert"; COLOR32, COLOR16 and COLOR4 follow spice-gtk (the
    /// mask is one bit per pixel, most significant first, not row-aligned).
    /// `None` for other types or when `data` is too short.
    pub fn to_argb(&self) -> Option<Vec<u8>> {
        let (w, h) = (usize::from(self.width), usize::from(self.height));
        let pixels = w * h;
        if pixels == 0 || self.data.len() < self.required_len()? {
            return None;
        }
        let d = &self.data;
        let bit = |base: usize, i: usize| d[base + i / 8] & (0x80 >> (i % 8)) != 0;
        // A colour pixel with its mask bit, as spice-gtk draws it.
        let masked = |i: usize, rgb: u32, white: bool, mask: bool| -> [u8; 4] {
            if mask && white {
                invert_pixel(i, w)
            } else {
                (rgb & 0x00ff_ffff | if mask { 0 } else { 0xff00_0000 }).to_le_bytes()
            }
        };
        let mut out = Vec::with_capacity(pixels * 4);
        match self.cursor_type {
            cursor_type::ALPHA => out.extend_from_slice(&d[..pixels * 4]),
            cursor_type::MONO => {
                let bpl = w.div_ceil(8);
                for i in 0..pixels {
                    let (x, y) = (i % w, i / w);
                    let and = d[y * bpl + x / 8] & (0x80 >> (x % 8)) != 0;
                    let xor = d[bpl * h + y * bpl + x / 8] & (0x80 >> (x % 8)) != 0;
                    out.extend_from_slice(&match (and, xor) {
                        (true, false) => [0, 0, 0, 0],
                        (false, false) => [0, 0, 0, 0xff],
                        (false, true) => [0xff; 4],
                        (true, true) => invert_pixel(i, w),
                    });
                }
            }
            cursor_type::COLOR32 => {
                for i in 0..pixels {
                    let rgb = u32::from_le_bytes([d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]]);
                    let rgb = rgb & 0x00ff_ffff;
                    out.extend_from_slice(&masked(i, rgb, rgb == 0x00ff_ffff, bit(pixels * 4, i)));
                }
            }
            cursor_type::COLOR16 => {
                for i in 0..pixels {
                    let pix = u32::from(u16::from_le_bytes([d[2 * i], d[2 * i + 1]]));
                    let rgb = ((pix & 0x1f) << 3) | ((pix & 0x3e0) << 6) | ((pix & 0x7c00) << 9);
                    out.extend_from_slice(&masked(i, rgb, pix & 0x7fff == 0x7fff, bit(pixels * 2, i)));
                }
            }
            cursor_type::COLOR4 => {
                let size = w.div_ceil(2) * h;
                let palette = |n: usize| {
                    let o = size + 4 * n;
                    u32::from_le_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]) & 0x00ff_ffff
                };
                for i in 0..pixels {
                    let byte = d[i / 2];
                    let idx = if i % 2 == 1 { byte & 0x0f } else { byte >> 4 };
                    let rgb = palette(idx.into());
                    out.extend_from_slice(&masked(i, rgb, rgb == 0x00ff_ffff, bit(size + 64, i)));
                }
            }
            _ => return None,
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(cursor_type: u8, width: u16, height: u16, data: Vec<u8>) -> CursorShape {
        CursorShape {
            unique: 0,
            cursor_type,
            width,
            height,
            hot_x: 0,
            hot_y: 0,
            data,
        }
    }

    #[test]
    fn mono_maps_and_xor() {
        // 2x2, rows byte-aligned: AND rows 10/01, then XOR rows 00/11.
        let s = shape(
            cursor_type::MONO,
            2,
            2,
            vec![0b1000_0000, 0b0100_0000, 0, 0b1100_0000],
        );
        let argb = s.to_argb().unwrap();
        assert_eq!(&argb[0..4], &[0, 0, 0, 0]); // and=1 xor=0: transparent
        assert_eq!(&argb[4..8], &[0, 0, 0, 0xff]); // and=0 xor=0: black
        assert_eq!(&argb[8..12], &[0xff; 4]); // and=0 xor=1: white
        assert_eq!(&argb[12..16], &invert_pixel(3, 2)); // and=1 xor=1: invert
        assert_eq!(shape(cursor_type::MONO, 2, 2, vec![0; 3]).to_argb(), None);
    }

    #[test]
    fn color32_and_alpha() {
        let mut data = vec![0x10, 0x20, 0x30, 0x00, 0xff, 0xff, 0xff, 0x00];
        data.push(0b0100_0000);
        let s = shape(cursor_type::COLOR32, 2, 1, data);
        let argb = s.to_argb().unwrap();
        assert_eq!(&argb[0..4], &[0x10, 0x20, 0x30, 0xff]);
        assert_eq!(&argb[4..8], &invert_pixel(1, 2));
        let a = shape(cursor_type::ALPHA, 1, 1, vec![1, 2, 3, 4, 5]);
        assert_eq!(a.to_argb().unwrap(), [1, 2, 3, 4]);
        assert_eq!(shape(cursor_type::ALPHA, 1, 1, vec![1, 2, 3]).to_argb(), None);
        assert_eq!(shape(cursor_type::COLOR8, 1, 1, vec![0; 64]).to_argb(), None);
    }
}
