//! `QXLImage`: bitmaps (flat or chunked), QUIC streams and surface references.

use crate::command::QXL_COMMAND_FLAG_COMPAT_16BPP;
use crate::error::ParseError;
use crate::guest::{ChunkRef, Ctx, MAX_DATA_BYTES};
use crate::layout::{Fields, DATA_CHUNK_SIZE};

/// `sizeof(QXLImage)`: descriptor (18 bytes) and the largest variant, `QXLBitmap`.
const IMAGE_SIZE: usize = 48;
/// `sizeof(QXLPalette)` without its entries: `u64 unique; u16 num_ents`.
const PALETTE_HEADER_SIZE: usize = 10;

/// `SPICE_IMAGE_TYPE_*` values accepted from a guest.
pub mod image_type {
    /// `SPICE_IMAGE_TYPE_BITMAP`.
    pub const BITMAP: u8 = 0;
    /// `SPICE_IMAGE_TYPE_QUIC`.
    pub const QUIC: u8 = 1;
    /// `SPICE_IMAGE_TYPE_SURFACE`.
    pub const SURFACE: u8 = 104;
}

/// `SPICE_BITMAP_FMT_*` values.
pub mod bitmap_format {
    /// `SPICE_BITMAP_FMT_1BIT_LE`: palette indices, least significant bit first.
    pub const ONE_BIT_LE: u8 = 1;
    /// `SPICE_BITMAP_FMT_1BIT_BE`: palette indices, most significant bit first.
    pub const ONE_BIT_BE: u8 = 2;
    /// `SPICE_BITMAP_FMT_4BIT_LE`: palette indices, low nibble first.
    pub const FOUR_BIT_LE: u8 = 3;
    /// `SPICE_BITMAP_FMT_4BIT_BE`: palette indices, high nibble first.
    pub const FOUR_BIT_BE: u8 = 4;
    /// `SPICE_BITMAP_FMT_8BIT`: palette indices.
    pub const EIGHT_BIT: u8 = 5;
    /// `SPICE_BITMAP_FMT_16BIT`: x1r5g5b5 little endian.
    pub const SIXTEEN_BIT: u8 = 6;
    /// `SPICE_BITMAP_FMT_24BIT`: B, G, R.
    pub const TWENTY_FOUR_BIT: u8 = 7;
    /// `SPICE_BITMAP_FMT_32BIT`: B, G, R, x.
    pub const THIRTY_TWO_BIT: u8 = 8;
    /// `SPICE_BITMAP_FMT_RGBA`: B, G, R, A.
    pub const RGBA: u8 = 9;
    /// `SPICE_BITMAP_FMT_8BIT_A`: alpha only.
    pub const EIGHT_BIT_A: u8 = 10;

    /// Bits per pixel of a format, `None` for `INVALID` and unknown values.
    pub fn bits_per_pixel(format: u8) -> Option<u32> {
        Some(match format {
            ONE_BIT_LE | ONE_BIT_BE => 1,
            FOUR_BIT_LE | FOUR_BIT_BE => 4,
            EIGHT_BIT | EIGHT_BIT_A => 8,
            SIXTEEN_BIT => 16,
            TWENTY_FOUR_BIT => 24,
            THIRTY_TWO_BIT | RGBA => 32,
            _ => return None,
        })
    }

    /// Whether pixels are palette indices.
    pub fn has_palette(format: u8) -> bool {
        matches!(
            format,
            ONE_BIT_LE | ONE_BIT_BE | FOUR_BIT_LE | FOUR_BIT_BE | EIGHT_BIT
        )
    }
}

/// `QXLImageDescriptor.flags` (`QXLImageFlags`).
pub mod image_flags {
    /// `QXL_IMAGE_CACHE`: the guest asks for the image to be cached by the client.
    pub const CACHE: u8 = 1;
    /// `QXL_IMAGE_HIGH_BITS_SET`: the top byte of 32-bit pixels is set (not just padding).
    pub const HIGH_BITS_SET: u8 = 2;
}

/// `QXLBitmap` flags.
pub mod bitmap_flags {
    /// `QXL_BITMAP_DIRECT`: `data` points at the rows, not at a chunk list.
    pub const DIRECT: u8 = 1;
    /// `QXL_BITMAP_UNSTABLE`: the guest may change the data.
    pub const UNSTABLE: u8 = 2;
    /// `QXL_BITMAP_TOP_DOWN`: the first row in memory is the top one.
    pub const TOP_DOWN: u8 = 4;
}

/// A parsed `QXLImage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// `SPICE_IMAGE_TYPE_BITMAP`.
    Bitmap(Bitmap),
    /// `SPICE_IMAGE_TYPE_SURFACE`: the contents of another surface.
    Surface {
        /// Below [`ParseLimits::n_surfaces`](crate::ParseLimits).
        surface_id: u32,
    },
    /// `SPICE_IMAGE_TYPE_QUIC`: a compressed stream, not decoded here.
    Quic {
        /// Descriptor id (for caching).
        id: u64,
        /// Descriptor width.
        width: u32,
        /// Descriptor height.
        height: u32,
        /// The QUIC stream, `data_size` bytes gathered from its chunks.
        data: Vec<u8>,
        /// The guest set `QXL_IMAGE_CACHE` (see [`image_flags`]).
        cache_me: bool,
    },
}

/// A parsed `QXLBitmap` with its rows copied out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    /// Descriptor id (`(unique << 32) | group`).
    pub id: u64,
    /// Width in pixels (`QXLBitmap.x`), non-zero.
    pub width: u32,
    /// Height in pixels (`QXLBitmap.y`), non-zero.
    pub height: u32,
    /// `SPICE_BITMAP_FMT_*`, see [`bitmap_format`].
    pub format: u8,
    /// Whether the first row of `data` is the top row.
    pub top_down: bool,
    /// Bytes from one row to the next; at least one row of pixels.
    pub stride: u32,
    /// Palette entries (xRGB), if the guest supplied a palette.
    pub palette: Option<Vec<u32>>,
    /// Rows exactly as in the guest: `stride * height` bytes, gathered from
    /// flat or chunked data. Empty when the rows were left in guest memory
    /// ([`Bitmap::guest_rows`]).
    pub data: Vec<u8>,
    /// Where the rows are, when the parser left them in guest memory
    /// ([`crate::Guest::with_bitmap_rows_in_place`]).
    pub guest_rows: Option<GuestRows>,
    /// The guest set `QXL_IMAGE_CACHE` in the descriptor (see [`image_flags`]).
    pub cache_me: bool,
    /// The guest set `QXL_IMAGE_HIGH_BITS_SET`: the fourth byte of 32-bit
    /// pixels carries data.
    pub high_bits_set: bool,
}

impl Image {
    /// Whether the guest asked for the image to be cached (`QXL_IMAGE_CACHE`);
    /// always false for surface images (they name a surface, not pixels to keep).
    pub fn cache_me(&self) -> bool {
        match self {
            Image::Bitmap(b) => b.cache_me,
            Image::Quic { cache_me, .. } => *cache_me,
            Image::Surface { .. } => false,
        }
    }
}

/// The `stride * height` bytes of a bitmap's rows in host memory: one range,
/// translated and checked against its memslot, for the caller to copy once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRows {
    /// Host address of the first row.
    pub host: u64,
    /// Bytes from there: `stride * height`.
    pub len: u64,
}

/// Converts a 16-bit 555 colour to xRGB, replicating high bits into the low ones.
pub fn color_16_to_32(color: u32) -> u32 {
    let c = color & 0x7fff;
    let expand = |v: u32| (v << 3) | (v >> 2);
    (expand(c >> 10 & 0x1f) << 16) | (expand(c >> 5 & 0x1f) << 8) | expand(c & 0x1f)
}

pub(crate) fn parse_image(
    ctx: &Ctx<'_, '_>,
    what: &'static str,
    phys: u64,
    is_mask: bool,
) -> Result<Image, ParseError> {
    let (_, raw) = ctx.read_struct::<IMAGE_SIZE>(what, phys)?;
    let f = Fields(&raw);
    let id = f.u64(0);
    let cache_me = f.u8(9) & image_flags::CACHE != 0;
    match f.u8(8) {
        image_type::BITMAP => bitmap(ctx, what, f, id, is_mask).map(Image::Bitmap),
        image_type::SURFACE => Ok(Image::Surface {
            surface_id: ctx.surface_id(what, f.u32(18))?,
        }),
        image_type::QUIC => {
            let (width, height) = (f.u32(10), f.u32(14));
            check_dimensions(ctx, "quic image", width, height)?;
            let data_size = u64::from(f.u32(18));
            let limit = ctx.limits().max_image_bytes;
            if data_size > limit {
                return Err(ParseError::too_large("quic image data_size", data_size, limit));
            }
            let data = ctx.gather(what, ChunkRef::embedded(f, phys, 22), data_size)?;
            if data.len() as u64 != data_size {
                return Err(ParseError::SizeMismatch {
                    what: "quic image data",
                    expected: data_size,
                    actual: data.len() as u64,
                });
            }
            Ok(Image::Quic {
                id,
                width,
                height,
                data,
                cache_me,
            })
        }
        other => Err(ParseError::unsupported("image type", other)),
    }
}

/// Non-zero, and at most `max_image_bytes / 4` pixels.
fn check_dimensions(
    ctx: &Ctx<'_, '_>,
    what: &'static str,
    width: u32,
    height: u32,
) -> Result<(), ParseError> {
    if width == 0 || height == 0 {
        return Err(ParseError::invalid(
            what,
            u64::from(width) << 32 | u64::from(height),
        ));
    }
    let pixels = u64::from(width) * u64::from(height);
    let limit = ctx.limits().max_image_bytes / 4;
    if pixels > limit {
        return Err(ParseError::too_large("image width*height", pixels, limit));
    }
    Ok(())
}

fn bitmap(
    ctx: &Ctx<'_, '_>,
    what: &'static str,
    f: Fields<'_>,
    id: u64,
    is_mask: bool,
) -> Result<Bitmap, ParseError> {
    let format = f.u8(18);
    let flags = f.u8(19);
    let (width, height, stride) = (f.u32(20), f.u32(24), f.u32(28));
    let (palette_phys, data_phys) = (f.u64(32), f.u64(40));
    let bpp = bitmap_format::bits_per_pixel(format).ok_or(ParseError::invalid("bitmap format", format))?;
    check_dimensions(ctx, "bitmap width/height", width, height)?;
    let row = (u64::from(width) * u64::from(bpp)).div_ceil(8);
    if u64::from(stride) < row {
        return Err(ParseError::SizeMismatch {
            what: "bitmap stride (smaller than a row)",
            expected: row,
            actual: stride.into(),
        });
    }
    if bitmap_format::has_palette(format) && palette_phys == 0 && !is_mask {
        return Err(ParseError::invalid("bitmap palette (missing)", 0u64));
    }
    let size = u64::from(height) * u64::from(stride);
    let limit = ctx.limits().max_image_bytes;
    if size > limit {
        return Err(ParseError::too_large("bitmap stride*height", size, limit));
    }
    let palette = match palette_phys {
        0 => None,
        p => Some(palette(ctx, p)?),
    };
    let in_place = ctx.guest.bitmap_rows_in_place
        && flags & bitmap_flags::TOP_DOWN != 0
        && matches!(format, bitmap_format::THIRTY_TWO_BIT | bitmap_format::RGBA);
    let leave = |phys: u64, offset: u64| -> Result<Option<GuestRows>, ParseError> {
        let host = ctx.translate_at(what, phys, offset, size)?;
        ctx.charge(size)?;
        Ok(Some(GuestRows { host, len: size }))
    };
    let (data, guest_rows) = if flags & bitmap_flags::DIRECT != 0 {
        if in_place {
            (Vec::new(), leave(data_phys, 0)?)
        } else {
            (ctx.read_vec_at(what, data_phys, 0, size)?, None)
        }
    } else {
        let (_, header) = ctx.read_struct::<DATA_CHUNK_SIZE>(what, data_phys)?;
        let head = ChunkRef::embedded(Fields(&header), data_phys, 0);
        if in_place && head.next == 0 && u64::from(head.size) == size {
            (Vec::new(), leave(data_phys, head.data_offset)?)
        } else {
            let data = ctx.gather(what, head, size)?;
            if data.len() as u64 != size {
                return Err(ParseError::SizeMismatch {
                    what: "bitmap chunk data",
                    expected: size,
                    actual: data.len() as u64,
                });
            }
            (data, None)
        }
    };
    Ok(Bitmap {
        id,
        width,
        height,
        format,
        top_down: flags & bitmap_flags::TOP_DOWN != 0,
        stride,
        palette,
        data,
        guest_rows,
        cache_me: f.u8(9) & image_flags::CACHE != 0,
        high_bits_set: f.u8(9) & image_flags::HIGH_BITS_SET != 0,
    })
}

/// `QXLPalette {u64 unique; u16 num_ents; u32 ents[num_ents]}`; at most 64 Ki entries by its type.
fn palette(ctx: &Ctx<'_, '_>, phys: u64) -> Result<Vec<u32>, ParseError> {
    let what = "bitmap palette";
    let (_, header) = ctx.read_struct::<PALETTE_HEADER_SIZE>(what, phys)?;
    let num_ents = Fields(&header).u16(8);
    let bytes = ctx.read_vec_at(what, phys, PALETTE_HEADER_SIZE as u64, u64::from(num_ents) * 4)?;
    let compat16 = ctx.flags & QXL_COMMAND_FLAG_COMPAT_16BPP != 0;
    Ok(bytes
        .chunks_exact(4)
        .map(|e| {
            let v = Fields(e).u32(0);
            if compat16 {
                color_16_to_32(v)
            } else {
                v
            }
        })
        .collect())
}

impl Bitmap {
    /// The rows as they are, when they already are top-down 32-bit pixels
    /// in the server's layout (xRGB or ARGB, B G R X bytes): `stride` bytes
    /// apart, `height` rows, the last one at least `width * 4` bytes long.
    pub fn xrgb_rows(&self) -> Option<&[u8]> {
        use bitmap_format as fmt;
        if !self.top_down || !matches!(self.format, fmt::THIRTY_TWO_BIT | fmt::RGBA) {
            return None;
        }
        let row_bytes = self.width as usize * 4;
        let stride = self.stride as usize;
        let needed = stride
            .checked_mul((self.height as usize).checked_sub(1)?)?
            .checked_add(row_bytes)?;
        (stride >= row_bytes && self.data.len() >= needed).then_some(&self.data[..])
    }

    /// Converts to packed 32-bit xRGB rows (B, G, R, x bytes), top row first.
    ///
    /// Handles 32BIT and RGBA (the fourth byte copied from the guest), 24BIT,
    /// 16BIT (555), and 8BIT/4BIT/1BIT through the palette (indices past its
    /// end are black; a 1BIT bitmap without palette is black and white); the
    /// fourth byte is 0xff for those. Returns `None` for 8BIT_A and unknown
    /// formats, for palette formats other than 1BIT without a palette, when
    /// `data` is shorter than the geometry needs, or when the result would
    /// exceed 256 MiB.
    pub fn to_xrgb(&self) -> Option<Vec<u8>> {
        use bitmap_format as fmt;
        let bpp = fmt::bits_per_pixel(self.format)?;
        let (w, h) = (self.width as usize, self.height as usize);
        let out_len = w.checked_mul(h)?.checked_mul(4)?;
        if out_len as u64 > MAX_DATA_BYTES || w == 0 || h == 0 {
            return None;
        }
        let stride = self.stride as usize;
        let row_bytes = (w * bpp as usize).div_ceil(8);
        if stride < row_bytes || self.data.len() < stride.checked_mul(h - 1)?.checked_add(row_bytes)? {
            return None;
        }
        let default_mono = [0, 0x00ff_ffff];
        let palette: &[u32] = match (&self.palette, self.format) {
            (Some(p), _) => p,
            (None, fmt::ONE_BIT_LE | fmt::ONE_BIT_BE) => &default_mono,
            (None, f) if fmt::has_palette(f) => return None,
            (None, _) => &[],
        };
        let lookup = |i: usize| {
            let c = palette.get(i).copied().unwrap_or(0);
            [c as u8, (c >> 8) as u8, (c >> 16) as u8, 0xff]
        };
        let mut out = Vec::with_capacity(out_len);
        for y in 0..h {
            let src_y = if self.top_down { y } else { h - 1 - y };
            let row = &self.data[src_y * stride..src_y * stride + row_bytes];
            match self.format {
                fmt::THIRTY_TWO_BIT | fmt::RGBA => out.extend_from_slice(row),
                fmt::TWENTY_FOUR_BIT => {
                    for p in row.chunks_exact(3) {
                        out.extend_from_slice(&[p[0], p[1], p[2], 0xff]);
                    }
                }
                fmt::SIXTEEN_BIT => {
                    for p in row.chunks_exact(2) {
                        let c = color_16_to_32(u16::from_le_bytes([p[0], p[1]]).into());
                        out.extend_from_slice(&[c as u8, (c >> 8) as u8, (c >> 16) as u8, 0xff]);
                    }
                }
                fmt::EIGHT_BIT => row.iter().for_each(|&i| out.extend_from_slice(&lookup(i.into()))),
                fmt::FOUR_BIT_LE | fmt::FOUR_BIT_BE => {
                    for x in 0..w {
                        let byte = row[x / 2];
                        let high_first = self.format == fmt::FOUR_BIT_BE;
                        let nibble = if (x % 2 == 0) == high_first {
                            byte >> 4
                        } else {
                            byte & 0xf
                        };
                        out.extend_from_slice(&lookup(nibble.into()));
                    }
                }
                fmt::ONE_BIT_LE | fmt::ONE_BIT_BE => {
                    for x in 0..w {
                        let byte = row[x / 8];
                        let bit = if self.format == fmt::ONE_BIT_BE {
                            byte >> (7 - x % 8)
                        } else {
                            byte >> (x % 8)
                        };
                        out.extend_from_slice(&lookup((bit & 1).into()));
                    }
                }
                _ => return None,
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitmap(format: u8, width: u32, height: u32, stride: u32, data: Vec<u8>) -> Bitmap {
        Bitmap {
            id: 0,
            width,
            height,
            format,
            top_down: true,
            stride,
            palette: None,
            data,
            guest_rows: None,
            cache_me: false,
            high_bits_set: false,
        }
    }

    #[test]
    fn thirty_two_bit_top_down_rows_are_used_as_they_are() {
        let data: Vec<u8> = (0..2 * 12).map(|i| i as u8).collect();
        let b = bitmap(bitmap_format::THIRTY_TWO_BIT, 2, 2, 12, data.clone());
        assert_eq!(b.xrgb_rows(), Some(&data[..]));
        let packed = b.to_xrgb().unwrap();
        assert_eq!(&packed[..8], &data[..8]);
        assert_eq!(&packed[8..], &data[12..20]);
        let bottom_up = Bitmap {
            top_down: false,
            ..b.clone()
        };
        assert_eq!(bottom_up.xrgb_rows(), None, "bottom-up rows are converted");
        let short = bitmap(bitmap_format::THIRTY_TWO_BIT, 2, 2, 12, vec![0; 19]);
        assert_eq!(short.xrgb_rows(), None);
        let rgb = bitmap(bitmap_format::TWENTY_FOUR_BIT, 2, 2, 6, vec![0; 12]);
        assert_eq!(rgb.xrgb_rows(), None);
    }

    #[test]
    fn converts_555() {
        assert_eq!(color_16_to_32(0x7fff), 0x00ff_ffff);
        assert_eq!(color_16_to_32(0x001f), 0x0000_00ff);
        assert_eq!(color_16_to_32(0x0010), 0x0000_0084);
        let b = bitmap(bitmap_format::SIXTEEN_BIT, 2, 1, 4, vec![0x00, 0x7c, 0xe0, 0x03]);
        assert_eq!(b.to_xrgb().unwrap(), [0, 0, 0xff, 0xff, 0, 0xff, 0, 0xff]);
    }

    #[test]
    fn converts_bottom_up_24bit_with_padding() {
        let mut b = bitmap(
            bitmap_format::TWENTY_FOUR_BIT,
            1,
            2,
            4,
            vec![1, 2, 3, 9, 4, 5, 6, 9],
        );
        b.top_down = false;
        assert_eq!(b.to_xrgb().unwrap(), [4, 5, 6, 0xff, 1, 2, 3, 0xff]);
    }

    #[test]
    fn converts_palette_formats() {
        let pal = Some(vec![0x0011_2233, 0x0044_5566, 0x0077_8899]);
        let mut b = bitmap(bitmap_format::FOUR_BIT_BE, 3, 1, 2, vec![0x10, 0x2f]);
        b.palette = pal.clone();
        let px = |c: u32| [c as u8, (c >> 8) as u8, (c >> 16) as u8, 0xff];
        let expect: Vec<u8> = [0x0044_5566, 0x0011_2233, 0x0077_8899]
            .into_iter()
            .flat_map(px)
            .collect();
        assert_eq!(b.to_xrgb().unwrap(), expect);
        b.format = bitmap_format::FOUR_BIT_LE;
        let expect: Vec<u8> = [0x0011_2233, 0x0044_5566, 0].into_iter().flat_map(px).collect();
        assert_eq!(b.to_xrgb().unwrap(), expect);
        let mono = bitmap(bitmap_format::ONE_BIT_BE, 3, 1, 1, vec![0b1010_0000]);
        let expect: Vec<u8> = [0x00ff_ffff, 0, 0x00ff_ffff].into_iter().flat_map(px).collect();
        assert_eq!(mono.to_xrgb().unwrap(), expect);
        let mut eight = bitmap(bitmap_format::EIGHT_BIT, 2, 1, 2, vec![2, 200]);
        assert_eq!(eight.to_xrgb(), None);
        eight.palette = pal;
        let expect: Vec<u8> = [0x0077_8899, 0].into_iter().flat_map(px).collect();
        assert_eq!(eight.to_xrgb().unwrap(), expect);
    }

    #[test]
    fn refuses_inconsistent_geometry() {
        assert_eq!(
            bitmap(bitmap_format::THIRTY_TWO_BIT, 2, 2, 8, vec![0; 15]).to_xrgb(),
            None
        );
        assert_eq!(
            bitmap(bitmap_format::THIRTY_TWO_BIT, 2, 2, 7, vec![0; 16]).to_xrgb(),
            None
        );
        assert_eq!(
            bitmap(bitmap_format::EIGHT_BIT_A, 1, 1, 1, vec![0]).to_xrgb(),
            None
        );
        assert_eq!(bitmap(0, 1, 1, 1, vec![0]).to_xrgb(), None);
        assert_eq!(
            bitmap(bitmap_format::ONE_BIT_BE, u32::MAX, u32::MAX, u32::MAX, vec![]).to_xrgb(),
            None
        );
        // The last row need not be padded to the stride.
        let b = bitmap(
            bitmap_format::THIRTY_TWO_BIT,
            1,
            2,
            8,
            vec![1, 2, 3, 4, 0, 0, 0, 0, 5, 6, 7, 8],
        );
        assert_eq!(b.to_xrgb().unwrap(), [1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
