//! `QXL_DRAW_COMPOSITE`: a Render-style composite (what Xorg's qxl driver
//! sends for `XRenderComposite`, glyphs included) done by pixman, as the C
//! canvas does.
//!
//! The operator, filters and repeat modes in the flags are pixman's own
//! values, passed through as spice-common casts them. The source and the
//! optional mask are sampled through their 16.16 transforms from their
//! origins; the destination is the bounding box, cut by the clip.
//!
//! Differences from the C canvas, none of which changes a pixel inside the
//! drawn region:
//! - C composites into a copy of the bounding box and copies it back through
//!   the clip; here pixman composites in place with the clip as its clip
//!   region (each destination pixel depends only on itself and the operands
//!   there, so the results are the same);
//! - operands are copied (pixman wants writable memory): only the area an
//!   untransformed, unrepeated operand can show, otherwise the whole image;
//! - the convolution filters (5, 6) and the undefined 7 are refused: C passes
//!   them to pixman without their parameters, which pixman then reads through
//!   a null pointer. Unknown operators are refused too.

use pixman::{Filter, Fixed, Operation, Repeat, Transform};
use spice_qxl::{Clip, Composite, Image};

use crate::draw::{damage, Cx, Damage};
use crate::error::CanvasError;
use crate::source;
use crate::surface::{Format, Surface, SurfaceRef};

/// Renders `c` into the context's target.
pub(crate) fn draw(cx: &mut Cx<'_, '_>, clip: &Clip, c: &Composite) -> Result<Damage, CanvasError> {
    let op = Operation::try_from(u32::from(c.op())).map_err(|_| CanvasError::Operator(c.op()))?;
    let src_filter = filter(c.src_filter())?;
    let mask_filter = filter(c.mask_filter())?;
    let region = cx.region(clip, None)?;
    if region.is_empty() {
        return Ok(None);
    }
    // The part of the box pixman is asked to draw: the region's extents (the
    // box itself may reach far outside the target), and where that part
    // starts relative to the box.
    let e = region.extents();
    let shift = (
        i64::from(e.x1) - i64::from(cx.bbox.left),
        i64::from(e.y1) - i64::from(cx.bbox.top),
    );
    let size = ((e.x2 - e.x1) as u32, (e.y2 - e.y1) as u32);

    // C honours SOURCE_OPAQUE only for surface sources (it reads them as
    // their format without alpha); DEST_OPAQUE and MASK_OPAQUE change
    // nothing there (it computes an opaque destination format, then creates
    // the destination in the surface's own format).
    let opaque = c.source_opaque() && matches!(c.src, Image::Surface { .. });
    let mut src = Operand::new(
        cx,
        &c.src,
        opaque,
        c.src_transform.as_ref(),
        c.src_repeat(),
        start(c.src_origin, shift)?,
        size,
    )?;
    let mut mask = match &c.mask {
        Some(image) => Some(Operand::new(
            cx,
            image,
            false,
            c.mask_transform.as_ref(),
            c.mask_repeat(),
            start(c.mask_origin, shift)?,
            size,
        )?),
        None => None,
    };

    let src_setup = Setup {
        transform: c.src_transform.as_ref().map(transform),
        filter: src_filter,
        repeat: repeat(c.src_repeat()),
        component_alpha: false,
    };
    let mask_setup = Setup {
        transform: c.mask_transform.as_ref().map(transform),
        filter: mask_filter,
        repeat: repeat(c.mask_repeat()),
        component_alpha: c.component_alpha(),
    };
    let (src_at, mask_at) = (src.origin, mask.as_ref().map_or((0, 0), |m| m.origin));
    let mut src_view = src.pixels.view_mut();
    let mut mask_view = mask.as_mut().map(|m| m.pixels.view_mut());
    src_view
        .with_pixman(|s| -> Result<(), CanvasError> {
            src_setup.apply(s)?;
            let mut run = |m: Option<&pixman::Image<'_, 'static>>| {
                cx.target
                    .with_pixman(|d| {
                        d.set_clip_region32(Some(region.pixman()))
                            .map_err(|_| CanvasError::Pixman("clip region"))?;
                        d.composite32(
                            op,
                            s,
                            m.map(|m| &**m),
                            src_at,
                            mask_at,
                            (e.x1, e.y1),
                            (size.0 as i32, size.1 as i32),
                        );
                        Ok(())
                    })
                    .ok_or(CanvasError::Pixman("destination image"))?
            };
            match mask_view.as_mut() {
                Some(mv) => mv
                    .with_pixman(|m| {
                        mask_setup.apply(m)?;
                        run(Some(m))
                    })
                    .ok_or(CanvasError::Pixman("mask image"))?,
                None => run(None),
            }
        })
        .ok_or(CanvasError::Pixman("source image"))??;
    Ok(damage(&region))
}

/// Where an operand is sampled for the first pixel drawn.
fn start(origin: (i16, i16), shift: (i64, i64)) -> Result<(i64, i64), CanvasError> {
    let at = (i64::from(origin.0) + shift.0, i64::from(origin.1) + shift.1);
    // C composites the whole box from `origin`; a box so far outside the
    // target that the offset leaves pixman's coordinates cannot be drawn
    // there either (C's copy of the box would not allocate).
    if i32::try_from(at.0).is_err() || i32::try_from(at.1).is_err() {
        return Err(CanvasError::Invalid("composite box (too far outside the target)"));
    }
    Ok(at)
}

/// pixman's filter of a `PIXMAN_FILTER_*` value.
fn filter(value: u8) -> Result<Filter, CanvasError> {
    Ok(match value {
        0 => Filter::Fast,
        1 => Filter::Good,
        2 => Filter::Best,
        3 => Filter::Nearest,
        4 => Filter::Bilinear,
        other => return Err(CanvasError::Filter(other)),
    })
}

/// pixman's repeat of a `PIXMAN_REPEAT_*` value (two bits, all defined).
fn repeat(value: u8) -> Repeat {
    match value & 3 {
        0 => Repeat::None,
        1 => Repeat::Normal,
        2 => Repeat::Pad,
        _ => Repeat::Reflect,
    }
}

/// A `QXLTransform` (`t00 t01 t02 t10 t11 t12`, 16.16) as pixman's matrix.
fn transform(t: &spice_qxl::Transform) -> Transform {
    let f = |v: u32| Fixed::from_raw(v as i32);
    Transform::new([
        [f(t[0]), f(t[1]), f(t[2])],
        [f(t[3]), f(t[4]), f(t[5])],
        [Fixed::from_raw(0), Fixed::from_raw(0), Fixed::from_raw(1 << 16)],
    ])
}

/// How pixman samples an operand.
struct Setup {
    transform: Option<Transform>,
    filter: Filter,
    repeat: Repeat,
    component_alpha: bool,
}

impl Setup {
    fn apply(&self, image: &mut pixman::Image<'_, 'static>) -> Result<(), CanvasError> {
        if let Some(t) = self.transform {
            image
                .set_transform(t)
                .map_err(|_| CanvasError::Pixman("transform"))?;
        }
        image
            .set_filter(self.filter, &[])
            .map_err(|_| CanvasError::Pixman("filter"))?;
        image.set_repeat(self.repeat);
        image.set_component_alpha(self.component_alpha);
        Ok(())
    }
}

/// An operand's pixels, owned so pixman may take them, and the point of
/// them sampled for the first destination pixel.
struct Operand {
    pixels: Surface,
    origin: (i32, i32),
}

impl Operand {
    /// `image` as pixman samples it from `at` over `size` destination pixels.
    fn new(
        cx: &Cx<'_, '_>,
        image: &Image,
        opaque: bool,
        transform: Option<&spice_qxl::Transform>,
        repeat: u8,
        at: (i64, i64),
        size: (u32, u32),
    ) -> Result<Operand, CanvasError> {
        let origin = |x: i64, y: i64| (x as i32, y as i32);
        let mut operand = match image {
            Image::Surface { surface_id } => Self::copied(
                cx.surface(*surface_id)?,
                transform.is_none() && repeat == 0,
                at,
                size,
            )?,
            Image::Bitmap(bitmap) => Operand {
                pixels: source::bitmap_pixels(bitmap)?,
                origin: origin(at.0, at.1),
            },
            Image::Quic { data, .. } => Operand {
                pixels: source::quic_pixels(data)?,
                origin: origin(at.0, at.1),
            },
        };
        if opaque && operand.pixels.format() == Format::Argb32 {
            operand.pixels.relabel(Format::Xrgb32);
        }
        Ok(operand)
    }

    /// A copy of `view`: of the part `size` pixels from `at` when that is
    /// all pixman can read (no transform, no repeat), else of all of it.
    fn copied(
        view: SurfaceRef<'_>,
        plain: bool,
        at: (i64, i64),
        size: (u32, u32),
    ) -> Result<Operand, CanvasError> {
        if !plain {
            return Ok(Operand {
                pixels: view.copy_area(0, 0, view.width(), view.height())?,
                origin: (at.0 as i32, at.1 as i32),
            });
        }
        let x0 = at.0.clamp(0, i64::from(view.width()));
        let y0 = at.1.clamp(0, i64::from(view.height()));
        let x1 = (at.0 + i64::from(size.0)).clamp(0, i64::from(view.width()));
        let y1 = (at.1 + i64::from(size.1)).clamp(0, i64::from(view.height()));
        if x0 >= x1 || y0 >= y1 {
            // Nothing of the image is under the box: pixman reads only
            // transparent pixels outside an unrepeated image. A pixel just
            // beside a 1x1 image stands for them: with coordinates far
            // out of range pixman would skip the whole composite, leaving
            // the destination as it was where C's operator (ATOP, IN, ...)
            // still writes it.
            return Ok(Operand {
                pixels: Surface::new(1, 1, Format::Argb32)?,
                origin: (1, 1),
            });
        }
        let pixels = view.copy_area(x0 as i32, y0 as i32, (x1 - x0) as u32, (y1 - y0) as u32)?;
        Ok(Operand {
            pixels,
            origin: ((at.0 - x0) as i32, (at.1 - y0) as i32),
        })
    }
}

#[cfg(test)]
mod tests {
    use spice_qxl::command::composite_flags as cf;
    use spice_qxl::{Composite, DrawOp, Image};

    use crate::tests::{bitmap, drawable, px, rect, Map};
    use crate::{draw, CanvasError, Format, Surface};

    const OVER: u32 = 3;
    const SRC: u32 = 1;
    const ADD: u32 = 12;

    fn composite(flags: u32, src: Image, mask: Option<Image>) -> DrawOp {
        DrawOp::Composite(Composite {
            flags,
            src,
            src_transform: None,
            mask,
            mask_transform: None,
            src_origin: (0, 0),
            mask_origin: (0, 0),
        })
    }

    fn filled(w: u32, h: u32, format: Format, v: u32) -> Surface {
        let mut s = Surface::new(w, h, format).unwrap();
        let bytes = (format.bits_per_pixel() / 8) as usize;
        for y in 0..h {
            let row = s.row_bytes_mut(y).unwrap();
            for x in 0..w as usize {
                row[x * bytes..(x + 1) * bytes].copy_from_slice(&v.to_le_bytes()[..bytes]);
            }
        }
        s
    }

    fn run(
        target: &mut Surface,
        sources: &Map,
        d: &spice_qxl::Drawable,
    ) -> Result<Option<spice_qxl::Rect>, CanvasError> {
        draw(&mut target.view_mut(), 0, d, sources)
    }

    #[test]
    fn over_blends_a_half_transparent_argb_surface() {
        // Premultiplied 50% red over opaque blue: red 0x80, blue 0xff * (1 - 0x80/0xff).
        let src = filled(2, 2, Format::Argb32, 0x8080_0000);
        let mut t = filled(4, 4, Format::Xrgb32, 0x0000_00ff);
        let sources = Map(vec![(5, src)]);
        let d = drawable(
            rect(1, 1, 3, 3),
            composite(OVER, Image::Surface { surface_id: 5 }, None),
        );
        assert_eq!(run(&mut t, &sources, &d).unwrap(), Some(rect(1, 1, 3, 3)));
        // 0xff * 0x7f / 0xff = 0x7f.
        assert_eq!(px(&t, 1, 1) & 0xffffff, 0x0080_007f);
        assert_eq!(px(&t, 2, 2) & 0xffffff, 0x0080_007f);
        assert_eq!(px(&t, 0, 0), 0xff);
        assert_eq!(px(&t, 3, 1), 0xff);

        // SOURCE_OPAQUE on a surface reads it without alpha: plain red.
        let mut t = filled(4, 4, Format::Xrgb32, 0x0000_00ff);
        let d = drawable(
            rect(0, 0, 2, 2),
            composite(OVER | cf::SOURCE_OPAQUE, Image::Surface { surface_id: 5 }, None),
        );
        run(&mut t, &sources, &d).unwrap();
        assert_eq!(px(&t, 0, 0) & 0xffffff, 0x0080_0000);
    }

    #[test]
    fn an_a8_mask_scales_a_solid_source_like_glyphs() {
        // Xorg's glyphs: a 1x1 repeating source through an A8 glyph surface.
        let src = filled(1, 1, Format::Argb32, 0xffff_ffff);
        let mut mask = Surface::new(3, 1, Format::A8).unwrap();
        mask.row_bytes_mut(0).unwrap()[..3].copy_from_slice(&[0xff, 0x80, 0x00]);
        let sources = Map(vec![(1, src), (2, mask)]);
        let mut t = Surface::new(3, 1, Format::Argb32).unwrap();
        let flags = OVER | u32::from(cf::REPEAT_NORMAL) << cf::SRC_REPEAT_SHIFT;
        let d = drawable(
            rect(0, 0, 3, 1),
            composite(
                flags,
                Image::Surface { surface_id: 1 },
                Some(Image::Surface { surface_id: 2 }),
            ),
        );
        run(&mut t, &sources, &d).unwrap();
        assert_eq!(px(&t, 0, 0), 0xffff_ffff);
        assert_eq!(px(&t, 1, 0), 0x8080_8080);
        assert_eq!(px(&t, 2, 0), 0);
    }

    #[test]
    fn repeat_normal_tiles_the_source_from_its_origin() {
        let tile = bitmap(2, 1, |x, _| if x == 0 { 0x0011_1111 } else { 0x0022_2222 });
        let mut t = Surface::new(5, 1, Format::Xrgb32).unwrap();
        let flags = SRC | u32::from(cf::REPEAT_NORMAL) << cf::SRC_REPEAT_SHIFT;
        let mut op = composite(flags, tile, None);
        if let DrawOp::Composite(c) = &mut op {
            c.src_origin = (1, 0);
        }
        run(&mut t, &Map(vec![]), &drawable(rect(0, 0, 5, 1), op)).unwrap();
        let row: Vec<u32> = (0..5).map(|x| px(&t, x, 0) & 0xffffff).collect();
        assert_eq!(row, [0x222222, 0x111111, 0x222222, 0x111111, 0x222222]);
    }

    #[test]
    fn a_scale_transform_samples_the_nearest_pixel() {
        // Destination-to-source x2 scale down: each destination pixel reads
        // source pixel (2x, 2y) (sampled at its centre 2x + 1: nearest).
        let numbered = bitmap(4, 4, |x, y| y << 8 | x);
        let mut t = Surface::new(2, 2, Format::Xrgb32).unwrap();
        let two = 2 << 16;
        let op = DrawOp::Composite(Composite {
            flags: SRC | u32::from(3u8) << cf::SRC_FILTER_SHIFT,
            src: numbered,
            src_transform: Some([two, 0, 0, 0, two, 0]),
            mask: None,
            mask_transform: None,
            src_origin: (0, 0),
            mask_origin: (0, 0),
        });
        run(&mut t, &Map(vec![]), &drawable(rect(0, 0, 2, 2), op)).unwrap();
        // The centre of destination pixel x, x + 1/2, maps to 2x + 1: the
        // border of source pixels 2x and 2x + 1, which pixman's nearest
        // filter resolves downwards (it floors x - 1/65536).
        assert_eq!(px(&t, 0, 0) & 0xffff, 0x0000);
        assert_eq!(px(&t, 1, 0) & 0xffff, 0x0002);
        assert_eq!(px(&t, 0, 1) & 0xffff, 0x0200);
        assert_eq!(px(&t, 1, 1) & 0xffff, 0x0202);
    }

    #[test]
    fn add_onto_a8_clips_and_saturates() {
        let mut t = filled(4, 1, Format::A8, 0xf0);
        let src = filled(4, 1, Format::A8, 0x20);
        let sources = Map(vec![(3, src)]);
        let mut d = drawable(
            rect(0, 0, 4, 1),
            composite(ADD, Image::Surface { surface_id: 3 }, None),
        );
        d.clip = spice_qxl::Clip::Rects(vec![rect(1, 0, 3, 1)]);
        assert_eq!(run(&mut t, &sources, &d).unwrap(), Some(rect(1, 0, 3, 1)));
        assert_eq!(&t.row_bytes(0).unwrap()[..4], &[0xf0, 0xff, 0xff, 0xf0]);
    }

    #[test]
    fn unknown_operators_and_filters_are_refused() {
        let mut t = Surface::new(2, 2, Format::Xrgb32).unwrap();
        let src = || bitmap(1, 1, |_, _| 0);
        let d = drawable(rect(0, 0, 2, 2), composite(0x0e, src(), None));
        assert!(matches!(
            run(&mut t, &Map(vec![]), &d),
            Err(CanvasError::Operator(0x0e))
        ));
        let d = drawable(
            rect(0, 0, 2, 2),
            composite(OVER | 5 << cf::SRC_FILTER_SHIFT, src(), None),
        );
        assert!(matches!(
            run(&mut t, &Map(vec![]), &d),
            Err(CanvasError::Filter(5))
        ));
    }

    #[test]
    fn composites_may_read_the_target_itself() {
        let mut t = Surface::new(4, 1, Format::Xrgb32).unwrap();
        for x in 0..4u32 {
            t.row_bytes_mut(0).unwrap()[x as usize * 4] = x as u8 + 1;
        }
        let mut op = composite(SRC, Image::Surface { surface_id: 0 }, None);
        if let DrawOp::Composite(c) = &mut op {
            c.src_origin = (0, 0);
        }
        run(&mut t, &Map(vec![]), &drawable(rect(1, 0, 4, 1), op)).unwrap();
        let row: Vec<u32> = (0..4).map(|x| px(&t, x, 0) & 0xff).collect();
        assert_eq!(row, [1, 1, 2, 3]);
    }
}
