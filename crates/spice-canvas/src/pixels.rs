//! Pixel access by bits per pixel, over rows of 32-bit words.
//!
//! Within a word the first pixel is the least significant one (the guest's
//! bytes on a little-endian host; A1 is least significant bit first).

use crate::surface::{SurfaceMut, SurfaceRef};

/// Pixel `x` of `row`.
#[inline]
pub(crate) fn get(row: &[u32], bpp: u32, x: usize) -> u32 {
    match bpp {
        32 => row[x],
        16 => row[x / 2] >> (16 * (x % 2)) & 0xffff,
        8 => row[x / 4] >> (8 * (x % 4)) & 0xff,
        _ => row[x / 32] >> (x % 32) & 1,
    }
}

/// Sets pixel `x` of `row` to `value` (bits past the format's width ignored).
#[inline]
pub(crate) fn set(row: &mut [u32], bpp: u32, x: usize, value: u32) {
    match bpp {
        32 => row[x] = value,
        16 => {
            let shift = 16 * (x % 2);
            let w = &mut row[x / 2];
            *w = (*w & !(0xffff << shift)) | (value & 0xffff) << shift;
        }
        8 => {
            let shift = 8 * (x % 4);
            let w = &mut row[x / 4];
            *w = (*w & !(0xff << shift)) | (value & 0xff) << shift;
        }
        _ => {
            let shift = x % 32;
            let w = &mut row[x / 32];
            *w = (*w & !(1 << shift)) | (value & 1) << shift;
        }
    }
}

/// The part of `[x, x + len)` inside `[0, limit)`, as (start, skipped, len).
fn clip_span(x: i32, len: u32, limit: u32) -> Option<(u32, u32, u32)> {
    let start = i64::from(x).max(0);
    let end = (i64::from(x) + i64::from(len)).min(i64::from(limit));
    (start < end).then(|| (start as u32, (start - i64::from(x)) as u32, (end - start) as u32))
}

/// Copies `width × height` pixels from `(sx, sy)` of `src` to `(dx, dy)` of
/// `dst` (same format), clipped to both; the two must not be the same memory.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_pixels(
    src: &SurfaceRef<'_>,
    sx: i32,
    sy: i32,
    dst: &mut SurfaceMut<'_>,
    dx: i32,
    dy: i32,
    width: u32,
    height: u32,
) {
    debug_assert_eq!(src.format, dst.format);
    let bpp = dst.format.bits_per_pixel();
    // Clip in the destination, then again against the source.
    let Some((dx0, skip_x, w)) = clip_span(dx, width, dst.width) else {
        return;
    };
    let Some((dy0, skip_y, h)) = clip_span(dy, height, dst.height) else {
        return;
    };
    let sx = i64::from(sx) + i64::from(skip_x);
    let sy = i64::from(sy) + i64::from(skip_y);
    let (Ok(sx), Ok(sy)) = (i32::try_from(sx), i32::try_from(sy)) else {
        return;
    };
    let Some((sx0, skip_x, w)) = clip_span(sx, w, src.width) else {
        return;
    };
    let Some((sy0, skip_y, h)) = clip_span(sy, h, src.height) else {
        return;
    };
    let (dx0, dy0) = (dx0 + skip_x, dy0 + skip_y);
    for i in 0..h {
        let s = src.row(sy0 + i);
        let start = (dy0 + i) as usize * dst.stride;
        let d = &mut dst.bits[start..start + dst.stride];
        if bpp == 32 {
            d[dx0 as usize..(dx0 + w) as usize].copy_from_slice(&s[sx0 as usize..(sx0 + w) as usize]);
        } else {
            for j in 0..w as usize {
                set(d, bpp, dx0 as usize + j, get(s, bpp, sx0 as usize + j));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::surface::{Format, Surface};

    #[test]
    fn sub_word_pixels_are_addressed_least_significant_first() {
        let mut row = vec![0u32; 2];
        set(&mut row, 16, 1, 0xabcd);
        assert_eq!(row[0], 0xabcd_0000);
        set(&mut row, 8, 5, 0x7f);
        assert_eq!(row[1], 0x7f00);
        set(&mut row, 1, 33, 1);
        assert_eq!(get(&row, 1, 33), 1);
        assert_eq!(get(&row, 8, 4), 2, "bit 33 is bit 1 of byte 4");
        assert_eq!(get(&row, 16, 1), 0xabcd);
    }

    #[test]
    fn copies_clip_to_both_surfaces() {
        let mut src = Surface::new(4, 4, Format::A8).unwrap();
        for y in 0..4 {
            let row = src.row_bytes_mut(y).unwrap();
            for (x, v) in row.iter_mut().take(4).enumerate() {
                *v = (y * 4 + x as u32) as u8;
            }
        }
        let mut dst = Surface::new(3, 3, Format::A8).unwrap();
        copy_pixels(&src.view(), -1, 2, &mut dst.view_mut(), 1, 0, 4, 4);
        assert_eq!(&dst.row_bytes(0).unwrap()[..3], &[0, 0, 8]);
        assert_eq!(&dst.row_bytes(1).unwrap()[..3], &[0, 0, 12]);
        assert_eq!(&dst.row_bytes(2).unwrap()[..3], &[0, 0, 0]);
    }
}
