//! Image operands: guest bitmaps, QUIC images and other surfaces resolved
//! into pixels, converted and scaled with pixman where needed.

use pixman::{Filter, Fixed, Operation, Repeat, Transform};
use spice_qxl::image::bitmap_format;
use spice_qxl::{Bitmap, Image, Rect};

use crate::error::CanvasError;
use crate::pixels;
use crate::surface::{Format, Sources, Surface, SurfaceRef};

/// `SPICE_IMAGE_SCALE_MODE_NEAREST` (anything else interpolates).
pub const SCALE_NEAREST: u8 = 1;

/// Most pixels a QUIC image from a guest may decode to (the parser's image limit).
const QUIC_MAX_PIXELS: u64 = 1 << 26;

/// An image's pixels: its own, or a surface's.
pub(crate) enum Picture<'s> {
    /// Decoded or copied pixels; `origin` is the image pixel its `(0, 0)` shows.
    Owned(Surface, (i32, i32)),
    /// Another surface, read in place.
    Borrowed(SurfaceRef<'s>),
}

impl Picture<'_> {
    pub(crate) fn view(&self) -> SurfaceRef<'_> {
        match self {
            Picture::Owned(s, _) => s.view(),
            Picture::Borrowed(s) => *s,
        }
    }

    /// The image pixel the view's `(0, 0)` shows.
    pub(crate) fn origin(&self) -> (i32, i32) {
        match self {
            Picture::Owned(_, origin) => *origin,
            Picture::Borrowed(_) => (0, 0),
        }
    }

    /// A 32-bit picture taken as the 32-bit `format` of the surface it is
    /// drawn on, its fourth byte kept as it is: the C canvas blits and
    /// combines 32-bit bitmaps and surfaces at their own size, and tiles
    /// patterns, as raw words (xRGB onto ARGB keeps the source's fourth byte
    /// as alpha, RGBA onto xRGB keeps it in the X byte), and guests rely on
    /// it (an ARGB pixmap uploaded as a 32-bit bitmap keeps its alpha); only
    /// scaling converts through pixman. Other formats are left alone.
    pub(crate) fn raw_as(self, format: Format) -> Self {
        if format.bits_per_pixel() != 32 || self.view().format.bits_per_pixel() != 32 {
            return self;
        }
        match self {
            Picture::Owned(mut s, origin) => {
                s.relabel(format);
                Picture::Owned(s, origin)
            }
            Picture::Borrowed(mut s) => {
                s.format = format;
                Picture::Borrowed(s)
            }
        }
    }
}

/// The target of the operation, for images that read from it.
#[derive(Clone, Copy)]
pub(crate) struct SelfRef<'t> {
    pub(crate) id: u32,
    pub(crate) surface: SurfaceRef<'t>,
}

/// Resolves `image`; for the target itself, a copy of `area` of it is made
/// (the operation writes where it reads).
pub(crate) fn resolve<'s>(
    image: &'s Image,
    area: &Rect,
    sources: &'s dyn Sources,
    target: SelfRef<'_>,
) -> Result<Picture<'s>, CanvasError> {
    match image {
        Image::Bitmap(bitmap) => Ok(match bitmap_view(bitmap) {
            Some(view) => Picture::Borrowed(view),
            None => Picture::Owned(bitmap_pixels(bitmap)?, (0, 0)),
        }),
        Image::Quic { data, .. } => Ok(Picture::Owned(quic_pixels(data)?, (0, 0))),
        Image::Surface { surface_id } if *surface_id == target.id => {
            // Only the part of the area inside the target exists to be copied.
            let t = target.surface;
            let left = area.left.clamp(0, t.width as i32);
            let top = area.top.clamp(0, t.height as i32);
            let right = area.right.clamp(left, t.width as i32);
            let bottom = area.bottom.clamp(top, t.height as i32);
            if right == left || bottom == top {
                return Ok(Picture::Owned(Surface::new(1, 1, t.format)?, (left, top)));
            }
            let copy = t.copy_area(left, top, (right - left) as u32, (bottom - top) as u32)?;
            Ok(Picture::Owned(copy, (left, top)))
        }
        Image::Surface { surface_id } => sources
            .surface(*surface_id)
            .map(Picture::Borrowed)
            .ok_or(CanvasError::NoSurface(*surface_id)),
    }
}

/// A guest bitmap read in place, when its rows already are what a surface
/// holds: top-down 32-bit pixels in whole words. Most guest bitmaps are (a
/// desktop's uploads), and reading them where they are saves two copies.
fn bitmap_view(bitmap: &Bitmap) -> Option<SurfaceRef<'_>> {
    let rows = bitmap.xrgb_rows()?;
    let stride = bitmap.stride as usize;
    if stride % 4 != 0 {
        return None;
    }
    let words: &[u32] = bytemuck::try_cast_slice(&rows[..rows.len() / 4 * 4]).ok()?;
    let format = if bitmap.format == bitmap_format::RGBA {
        Format::Argb32
    } else {
        Format::Xrgb32
    };
    SurfaceRef::new(bitmap.width, bitmap.height, format, stride / 4, words)
}

/// A guest bitmap as a surface: 32-bit formats as xRGB (ARGB for RGBA),
/// 8-bit alpha as A8, the rest converted to xRGB through the palette.
pub(crate) fn bitmap_pixels(bitmap: &Bitmap) -> Result<Surface, CanvasError> {
    if bitmap.guest_rows.is_some() && bitmap.data.is_empty() {
        return Err(CanvasError::RowsNotCopied);
    }
    if bitmap.format == bitmap_format::EIGHT_BIT_A {
        let mut out = Surface::new(bitmap.width, bitmap.height, Format::A8)?;
        let (w, stride) = (bitmap.width as usize, bitmap.stride as usize);
        for y in 0..bitmap.height {
            let src_y = if bitmap.top_down { y } else { bitmap.height - 1 - y } as usize;
            let row = bitmap
                .data
                .get(src_y * stride..src_y * stride + w)
                .ok_or(CanvasError::BitmapFormat(bitmap.format))?;
            if let Some(dst) = out.row_bytes_mut(y) {
                dst[..w].copy_from_slice(row);
            }
        }
        return Ok(out);
    }
    let xrgb = bitmap.to_xrgb().ok_or(CanvasError::BitmapFormat(bitmap.format))?;
    let format = if bitmap.format == bitmap_format::RGBA {
        Format::Argb32
    } else {
        Format::Xrgb32
    };
    packed_32(bitmap.width, bitmap.height, format, &xrgb)
}

/// A 1-bit guest bitmap as an A1 mask (its palette ignored, as the C canvas
/// does: set bits draw).
pub(crate) fn bitmap_mask(bitmap: &Bitmap) -> Result<Surface, CanvasError> {
    let big_endian = match bitmap.format {
        bitmap_format::ONE_BIT_LE => false,
        bitmap_format::ONE_BIT_BE => true,
        _ => return Err(CanvasError::MaskFormat),
    };
    let mut out = Surface::new(bitmap.width, bitmap.height, Format::A1)?;
    let (row_bytes, stride) = (bitmap.width.div_ceil(8) as usize, bitmap.stride as usize);
    for y in 0..bitmap.height {
        let src_y = if bitmap.top_down { y } else { bitmap.height - 1 - y } as usize;
        let row = bitmap
            .data
            .get(src_y * stride..src_y * stride + row_bytes)
            .ok_or(CanvasError::MaskFormat)?;
        if let Some(dst) = out.row_bytes_mut(y) {
            for (d, s) in dst.iter_mut().zip(row) {
                *d = if big_endian { s.reverse_bits() } else { *s };
            }
        }
    }
    Ok(out)
}

pub(crate) fn quic_pixels(data: &[u8]) -> Result<Surface, CanvasError> {
    let limits = spice_codec::DecodeLimits {
        max_pixels: QUIC_MAX_PIXELS,
    };
    let image = spice_codec::quic::decode(data, &limits)?;
    match image.kind {
        spice_codec::quic::QuicImageType::Gray => {
            let mut out = Surface::new(image.width, image.height, Format::A8)?;
            let w = image.width as usize;
            for (y, row) in image.data.chunks_exact(w).enumerate() {
                if let Some(dst) = out.row_bytes_mut(y as u32) {
                    dst[..w].copy_from_slice(row);
                }
            }
            Ok(out)
        }
        spice_codec::quic::QuicImageType::Rgba => {
            packed_32(image.width, image.height, Format::Argb32, &image.data)
        }
        _ => packed_32(image.width, image.height, Format::Xrgb32, &image.data),
    }
}

/// A surface from packed 32-bit rows.
fn packed_32(width: u32, height: u32, format: Format, data: &[u8]) -> Result<Surface, CanvasError> {
    let mut out = Surface::new(width, height, format)?;
    let row = width as usize * 4;
    for (y, src) in data.chunks_exact(row).take(height as usize).enumerate() {
        if let Some(dst) = out.row_bytes_mut(y as u32) {
            dst[..row].copy_from_slice(src);
        }
    }
    Ok(out)
}

/// A part of an operation's bounding box, in the box's coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) x: u32,
    pub(crate) y: u32,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

impl Part {
    pub(crate) fn whole(width: u32, height: u32) -> Self {
        Self {
            x: 0,
            y: 0,
            width,
            height,
        }
    }
}

/// `area` of `picture` (in image coordinates) stretched over a
/// `box_w × box_h` bounding box, of which only `part` is produced, in
/// `format`: converted, and scaled when the sizes differ (nearest or
/// interpolated, as the C canvas does). Only the visible part is ever
/// allocated, and only the part of `area` that lies inside the picture is
/// copied (pixels outside it come out 0): a guest's absurd sizes cost nothing.
pub(crate) fn fit(
    picture: &Picture<'_>,
    area: &Rect,
    box_w: u32,
    box_h: u32,
    part: Part,
    format: Format,
    scale_mode: u8,
) -> Result<Surface, CanvasError> {
    let view = picture.view();
    let origin = picture.origin();
    let mut out = Surface::new(part.width, part.height, format)?;
    let (aw, ah) = (area.width(), area.height());
    // The area's pixels that exist, in image coordinates.
    let vis = Rect {
        top: area.top.max(origin.1),
        left: area.left.max(origin.0),
        bottom: i64::from(area.bottom).min(i64::from(origin.1) + i64::from(view.height())) as i32,
        right: i64::from(area.right).min(i64::from(origin.0) + i64::from(view.width())) as i32,
    };
    if aw == 0 || ah == 0 || box_w == 0 || box_h == 0 || vis.width() == 0 || vis.height() == 0 {
        return Ok(out);
    }
    // Copied so pixman may take it (it wants writable memory).
    let mut src = view.copy_area(vis.left - origin.0, vis.top - origin.1, vis.width(), vis.height())?;
    // Where the visible pixels start within the area.
    let (ox, oy) = (
        i64::from(vis.left) - i64::from(area.left),
        i64::from(vis.top) - i64::from(area.top),
    );
    let scaled = aw != box_w || ah != box_h;
    let fixed = |v: i64| Fixed::from_raw(v.clamp(i32::MIN.into(), i32::MAX.into()) as i32);
    // Box point p samples area point scale·p, that is image pixel scale·p − offset.
    let transform = Transform::new([
        [
            fixed((i64::from(aw) << 16) / i64::from(box_w)),
            fixed(0),
            fixed(-ox << 16),
        ],
        [
            fixed(0),
            fixed((i64::from(ah) << 16) / i64::from(box_h)),
            fixed(-oy << 16),
        ],
        [fixed(0), fixed(0), fixed(1 << 16)],
    ]);
    let filter = if scale_mode == SCALE_NEAREST {
        Filter::Nearest
    } else {
        Filter::Good
    };
    let (src_x, src_y) = if scaled {
        (i64::from(part.x), i64::from(part.y))
    } else {
        (i64::from(part.x) - ox, i64::from(part.y) - oy)
    };
    let (Ok(src_x), Ok(src_y)) = (i32::try_from(src_x), i32::try_from(src_y)) else {
        return Ok(out);
    };
    let size = (part.width as i32, part.height as i32);
    let mut src_view = src.view_mut();
    let mut out_view = out.view_mut();
    src_view
        .with_pixman(|s| -> Result<(), CanvasError> {
            if scaled {
                s.set_transform(transform)
                    .map_err(|_| CanvasError::Pixman("scale transform"))?;
                s.set_filter(filter, &[])
                    .map_err(|_| CanvasError::Pixman("filter"))?;
            }
            s.set_repeat(Repeat::None);
            out_view
                .with_pixman(|d| d.composite32(Operation::Src, s, None, (src_x, src_y), (0, 0), (0, 0), size))
                .ok_or(CanvasError::Pixman("destination image"))
        })
        .ok_or(CanvasError::Pixman("source image"))??;
    Ok(out)
}

/// Pixel `(x, y)` of a view, `None` outside it.
#[inline]
pub(crate) fn pixel_at(view: &SurfaceRef<'_>, x: i64, y: i64) -> Option<u32> {
    if x < 0 || y < 0 || x >= i64::from(view.width()) || y >= i64::from(view.height()) {
        return None;
    }
    Some(pixels::get(
        view.row(y as u32),
        view.format().bits_per_pixel(),
        x as usize,
    ))
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
    fn masks_follow_the_bit_order() {
        let le = bitmap_mask(&bitmap(bitmap_format::ONE_BIT_LE, 3, 1, 1, vec![0b001])).unwrap();
        let be = bitmap_mask(&bitmap(bitmap_format::ONE_BIT_BE, 3, 1, 1, vec![0b1000_0000])).unwrap();
        assert_eq!(le, be);
        assert_eq!(pixel_at(&le.view(), 0, 0), Some(1));
        assert_eq!(pixel_at(&le.view(), 1, 0), Some(0));
        assert!(bitmap_mask(&bitmap(bitmap_format::EIGHT_BIT_A, 1, 1, 1, vec![1])).is_err());
    }

    #[test]
    fn top_down_32_bit_bitmaps_are_read_in_place_with_the_copy_s_pixels() {
        let data: Vec<u8> = (0..3 * 16).map(|i| (i * 7) as u8).collect();
        for format in [bitmap_format::THIRTY_TWO_BIT, bitmap_format::RGBA] {
            let b = bitmap(format, 3, 3, 16, data.clone());
            let view = bitmap_view(&b).expect("whole words, top-down: read in place");
            let copy = bitmap_pixels(&b).unwrap();
            assert_eq!(view.format, copy.format());
            for (x, y) in (0..3).flat_map(|y| (0..3).map(move |x| (x, y))) {
                assert_eq!(pixel_at(&view, x, y), pixel_at(&copy.view(), x, y), "at {x},{y}");
            }
            assert_eq!(view.bits.as_ptr().cast::<u8>(), b.data.as_ptr(), "no copy");
        }
        let mut bottom_up = bitmap(bitmap_format::THIRTY_TWO_BIT, 3, 3, 16, data.clone());
        bottom_up.top_down = false;
        assert!(bitmap_view(&bottom_up).is_none(), "rows reversed by the copy");
        let odd_stride = bitmap(bitmap_format::THIRTY_TWO_BIT, 3, 2, 13, data.clone());
        assert!(bitmap_view(&odd_stride).is_none(), "rows not on word boundaries");
        assert!(bitmap_pixels(&odd_stride).is_ok());
        let unpadded_last_row = bitmap(bitmap_format::THIRTY_TWO_BIT, 3, 3, 16, data[..44].to_vec());
        assert!(
            bitmap_view(&unpadded_last_row).is_none(),
            "a view holds whole strides"
        );
        assert!(bitmap_pixels(&unpadded_last_row).is_ok());
        let short = bitmap(bitmap_format::THIRTY_TWO_BIT, 3, 4, 16, data);
        assert!(bitmap_view(&short).is_none() && bitmap_pixels(&short).is_err());
    }

    #[test]
    fn rows_left_in_guest_memory_are_refused() {
        let mut b = bitmap(bitmap_format::THIRTY_TWO_BIT, 1, 1, 4, vec![]);
        b.guest_rows = Some(spice_qxl::GuestRows { host: 0x1000, len: 4 });
        assert!(matches!(bitmap_pixels(&b), Err(CanvasError::RowsNotCopied)));
    }

    #[test]
    fn fit_scales_nearest_and_converts() {
        // 2x1 red, blue -> 4x2 nearest: each pixel doubled.
        let b = bitmap(
            bitmap_format::THIRTY_TWO_BIT,
            2,
            1,
            8,
            vec![0, 0, 0xff, 0, 0xff, 0, 0, 0],
        );
        let picture = Picture::Owned(bitmap_pixels(&b).unwrap(), (0, 0));
        let area = Rect {
            top: 0,
            left: 0,
            bottom: 1,
            right: 2,
        };
        let out = fit(
            &picture,
            &area,
            4,
            2,
            Part::whole(4, 2),
            Format::Xrgb32,
            SCALE_NEAREST,
        )
        .unwrap();
        let px = |x, y| pixel_at(&out.view(), x, y).unwrap() & 0xffffff;
        assert_eq!(
            [px(0, 0), px(1, 1), px(2, 0), px(3, 1)],
            [0xff0000, 0xff0000, 0xff, 0xff]
        );
        let small = fit(
            &picture,
            &area,
            2,
            1,
            Part::whole(2, 1),
            Format::Rgb565,
            SCALE_NEAREST,
        )
        .unwrap();
        // Part of a scaled box: its right half, rows of blue.
        let half = Part {
            x: 2,
            y: 1,
            width: 2,
            height: 1,
        };
        let right = fit(&picture, &area, 4, 2, half, Format::Xrgb32, SCALE_NEAREST).unwrap();
        assert_eq!((right.width(), right.height()), (2, 1));
        assert_eq!(pixel_at(&right.view(), 0, 0).map(|p| p & 0xffffff), Some(0xff));
        // An area mostly outside the picture: only what exists is read.
        let huge = Rect {
            top: -1_000_000,
            left: 1,
            bottom: 1_000_000,
            right: 1_000_001,
        };
        let sparse = fit(
            &picture,
            &huge,
            1,
            1,
            Part::whole(1, 1),
            Format::Xrgb32,
            SCALE_NEAREST,
        )
        .unwrap();
        assert_eq!(pixel_at(&sparse.view(), 0, 0), Some(0));
        assert_eq!(pixel_at(&small.view(), 0, 0), Some(0xf800));
        assert_eq!(pixel_at(&small.view(), 1, 0), Some(0x001f));
    }
}
