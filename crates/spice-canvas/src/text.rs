//! `QXL_DRAW_TEXT`: raster glyphs (1, 4 or 8 bits per pixel) drawn with a
//! brush over an optional background, as spice-common's software canvas
//! (the one spice-gtk and the C server render with) draws them:
//!
//! 1. a non-empty `back_area`, cut to the box and clip, is filled with the
//!    back brush as a plain copy (`back_mode` is not looked at); C then
//!    insists on `fore_mode == OP_PUT` and draws nothing at all otherwise;
//! 2. the glyphs are gathered into one mask over the union of their boxes:
//!    1-bit glyphs OR'ed into an A1 mask (their rows most significant bit
//!    first), 4- and 8-bit ones into an A8 mask by maximum, a 4-bit
//!    coverage `n` counting as `n << 4` (so at most 0xf0, as in C; C's
//!    maximum for a byte's second pixel is taken before truncation, so
//!    where the first nibble is non-zero the second replaces the value
//!    under it, which is kept here too);
//! 3. the fore brush is composited OVER the target through that mask
//!    (`fore_mode` is otherwise ignored: C composites whatever it says). A
//!    pattern brush is aligned on the mask's corner offset by the pattern's
//!    position, as pixman's translate in C has it; a 32-bit pattern
//!    without alpha counts as opaque;
//! 4. on xRGB targets, C's x-byte clearing over the glyphs' union
//!    ([`crate::draw::clear_x_bytes_as_c`]), byte for byte.
//!
//! Glyph rows are read bottom-up whatever `SPICE_STRING_FLAGS_RASTER_TOP_DOWN`
//! says, as C does (its `todo` for that flag): clients draw them so.
//!
//! Differences from C, by design:
//! - the mask covers only the glyphs' union within the box, clip and target
//!   (C allocates the whole union, which a guest makes as large as it likes);
//!   pixels outside are clipped away in C too;
//! - 8-bit glyphs: C's loop is off by one row (it starts one row past the
//!   data and never reads the first); here every row is read.

use pixman::{Color, Operation, Repeat, Solid};
use spice_qxl::{Brush, Clip, Glyph, Image, Text};

use crate::draw::{damage, union, BrushOperand, Cx, Damage};
use crate::error::CanvasError;
use crate::region::DrawRegion;
use crate::rop::{ropd, Rop};
use crate::surface::{Format, Surface};

/// A glyph's box on the target (`i64`: positions and origins add up past `i32`).
#[derive(Debug, Clone, Copy)]
struct GlyphBox {
    left: i64,
    top: i64,
    right: i64,
    bottom: i64,
}

fn glyph_box(g: &Glyph) -> GlyphBox {
    let left = i64::from(g.render_pos.x) + i64::from(g.glyph_origin.x);
    let top = i64::from(g.render_pos.y) + i64::from(g.glyph_origin.y);
    GlyphBox {
        left,
        top,
        right: left + i64::from(g.width),
        bottom: top + i64::from(g.height),
    }
}

/// Renders `t` into the context's target.
pub(crate) fn draw(cx: &mut Cx<'_, '_>, clip: &Clip, t: &Text) -> Result<Damage, CanvasError> {
    let region = cx.region(clip, None)?;
    if region.is_empty() {
        return Ok(None);
    }
    let mut drawn = None;
    let back = &t.back_area;
    if back.top != back.bottom && back.left != back.right {
        if t.fore_mode != ropd::OP_PUT {
            return Err(CanvasError::Invalid(
                "text fore mode (only put goes with a background)",
            ));
        }
        let (w, h) = (cx.target.width, cx.target.height);
        let back_region = DrawRegion::new(w, h, back, &Clip::None).intersect(&region);
        if !back_region.is_empty() {
            cx.paint_brush(&back_region, &t.back_brush, Rop::COPY)?;
            drawn = damage(&back_region);
        }
    }
    let Some(bounds) = union_box(t) else {
        return Ok(drawn);
    };
    if let Some((mask, corner)) = glyph_mask(&region, t, bounds)? {
        let glyph_region = region.intersect(&DrawRegion::from_boxes(&[pixman::Box32 {
            x1: corner.0,
            y1: corner.1,
            x2: corner.0 + mask.width() as i32,
            y2: corner.1 + mask.height() as i32,
        }]));
        if !glyph_region.is_empty() && !matches!(t.fore_brush, Brush::None) {
            fill_through(
                cx,
                &glyph_region,
                &t.fore_brush,
                mask,
                corner,
                (bounds.left, bounds.top),
            )?;
            drawn = union(drawn, damage(&glyph_region));
        }
    }
    // C clears x bytes whether or not a glyph showed.
    Ok(union(drawn, clear_x_bytes(cx, t, bounds)))
}

/// C's x-byte clearing after the glyphs are composited onto an xRGB target
/// ([`crate::draw::clear_x_bytes_as_c`] over the glyphs' whole union; C
/// composites whenever there is a fore brush, even where no glyph shows).
fn clear_x_bytes(cx: &mut Cx<'_, '_>, t: &Text, b: GlyphBox) -> Damage {
    if matches!(t.fore_brush, Brush::None) {
        return None;
    }
    crate::draw::clear_x_bytes_as_c(cx.target, b.left, b.top, b.right - b.left, b.bottom - b.top)
}

/// The union of the glyphs' boxes; `None` without glyphs.
fn union_box(t: &Text) -> Option<GlyphBox> {
    let first = glyph_box(t.glyphs.first()?);
    Some(t.glyphs.iter().map(glyph_box).fold(first, |u, b| GlyphBox {
        left: u.left.min(b.left),
        top: u.top.min(b.top),
        right: u.right.max(b.right),
        bottom: u.bottom.max(b.bottom),
    }))
}

/// A glyph mask and where its top-left lands on the target.
type PlacedMask = (Surface, (i32, i32));

/// The glyphs' coverage over the part of their union (`bounds`) inside the
/// region's extents, and where that part's top-left lands on the target.
/// `None` when no glyph pixel can show.
fn glyph_mask(region: &DrawRegion, t: &Text, bounds: GlyphBox) -> Result<Option<PlacedMask>, CanvasError> {
    let e = region.extents();
    let x0 = bounds.left.max(e.x1.into());
    let y0 = bounds.top.max(e.y1.into());
    let x1 = bounds.right.min(e.x2.into());
    let y1 = bounds.bottom.min(e.y2.into());
    if x0 >= x1 || y0 >= y1 {
        return Ok(None);
    }
    // Within the region's extents, so within the target: the mask is at
    // most the target's size.
    let format = if t.bpp == 1 { Format::A1 } else { Format::A8 };
    let mut mask = Surface::new((x1 - x0) as u32, (y1 - y0) as u32, format)?;
    for g in &t.glyphs {
        put_glyph(&mut mask, (x0, y0), g, t.bpp);
    }
    Ok(Some((mask, (x0 as i32, y0 as i32))))
}

/// Adds glyph `g` to `mask`, whose pixel `(0, 0)` is at `corner`.
fn put_glyph(mask: &mut Surface, corner: (i64, i64), g: &Glyph, bpp: u8) {
    let b = glyph_box(g);
    let (mw, mh) = (i64::from(mask.width()), i64::from(mask.height()));
    // The glyph's rows and columns that fall inside the mask.
    let cols = (corner.0 - b.left).max(0)..(corner.0 + mw - b.left).min(i64::from(g.width));
    let rows = (corner.1 - b.top).max(0)..(corner.1 + mh - b.top).min(i64::from(g.height));
    if cols.is_empty() || rows.is_empty() {
        return;
    }
    let stride = g.stride as usize;
    for r in rows {
        // Rows are stored bottom-up (see the module's comment).
        let src_row = (i64::from(g.height) - 1 - r) as usize;
        let Some(src) = g.data.get(src_row * stride..(src_row + 1) * stride) else {
            continue;
        };
        let Some(dst) = mask.row_bytes_mut((b.top + r - corner.1) as u32) else {
            continue;
        };
        for c in cols.clone() {
            let c = c as usize;
            let x = (b.left + c as i64 - corner.0) as usize;
            match bpp {
                1 => {
                    if src[c / 8] & (0x80 >> (c % 8)) != 0 {
                        dst[x / 8] |= 1 << (x % 8);
                    }
                }
                4 => {
                    let byte = src[c / 2];
                    dst[x] = if c % 2 == 0 {
                        dst[x].max(byte & 0xf0)
                    } else {
                        // C takes the maximum of the byte shifted as an
                        // int, then stores its low byte: with a non-zero
                        // high nibble the odd pixel's value replaces what
                        // was there instead of keeping the larger one.
                        (u16::from(dst[x]).max(u16::from(byte) << 4) & 0xff) as u8
                    };
                }
                _ => dst[x] = dst[x].max(src[c]),
            }
        }
    }
}

/// Composites `brush` OVER the target through `mask` (placed at `corner`)
/// within `region`; a pattern is aligned on `origin` plus its position.
fn fill_through(
    cx: &mut Cx<'_, '_>,
    region: &DrawRegion,
    brush: &Brush,
    mut mask: Surface,
    corner: (i32, i32),
    origin: (i64, i64),
) -> Result<(), CanvasError> {
    let (mw, mh) = (mask.width() as i32, mask.height() as i32);
    let format = cx.target.format;
    let mut tile = None;
    let mut src_at = (0, 0);
    let solid = match brush {
        Brush::Solid(color) => Some(solid_color(format, *color)),
        Brush::None => return Ok(()),
        Brush::Pattern { pos, image } => {
            let BrushOperand::Tile { tile: mut t, .. } = cx.brush(brush)? else {
                return Err(CanvasError::Invalid("pattern brush"));
            };
            // C composites the pattern as its image comes: a 32-bit picture
            // without alpha as xRGB (its fourth byte not read), an RGBA
            // bitmap or an ARGB surface as ARGB.
            if format.bits_per_pixel() == 32 {
                t.relabel(if pattern_has_alpha(cx, image) {
                    Format::Argb32
                } else {
                    Format::Xrgb32
                });
            }
            // Repeating, so only the offset modulo the tile matters.
            let ox = i64::from(corner.0) - origin.0 - i64::from(pos.x);
            let oy = i64::from(corner.1) - origin.1 - i64::from(pos.y);
            src_at = (
                ox.rem_euclid(i64::from(t.width())) as i32,
                oy.rem_euclid(i64::from(t.height())) as i32,
            );
            tile = Some(t);
            None
        }
    };
    let mut mask_view = mask.view_mut();
    let target = &mut *cx.target;
    let mut composite = |src: &pixman::ImageRef| -> Result<(), CanvasError> {
        mask_view
            .with_pixman(|m| {
                target
                    .with_pixman(|d| {
                        d.set_clip_region32(Some(region.pixman()))
                            .map_err(|_| CanvasError::Pixman("clip region"))?;
                        d.composite32(Operation::Over, src, Some(m), src_at, (0, 0), corner, (mw, mh));
                        Ok(())
                    })
                    .ok_or(CanvasError::Pixman("destination image"))?
            })
            .ok_or(CanvasError::Pixman("mask image"))?
    };
    match (solid, tile.as_mut()) {
        (Some(color), _) => {
            let s = Solid::new(color).map_err(|_| CanvasError::Pixman("solid brush"))?;
            composite(&s)?;
        }
        (None, Some(tile)) => {
            let mut view = tile.view_mut();
            view.with_pixman(|s| {
                s.set_repeat(Repeat::Normal);
                composite(s)
            })
            .ok_or(CanvasError::Pixman("pattern image"))??;
        }
        (None, None) => return Ok(()),
    }
    Ok(())
}

/// Whether a pattern's picture carries alpha: an RGBA bitmap, or a surface
/// of ARGB format.
fn pattern_has_alpha(cx: &Cx<'_, '_>, image: &Image) -> bool {
    match image {
        Image::Bitmap(b) => b.format == spice_qxl::image::bitmap_format::RGBA,
        Image::Surface { surface_id } => cx
            .surface(*surface_id)
            .is_ok_and(|s| s.format() == Format::Argb32),
        Image::Quic { .. } => false,
    }
}

/// A solid brush's colour as C hands it to pixman: channels of 5 bits on
/// 16-bit targets (565 included, as C has it), else 8, always opaque.
fn solid_color(format: Format, color: u32) -> Color {
    let (shift, mask) = if format.bits_per_pixel() == 16 {
        (5, 0x1f)
    } else {
        (8, 0xff)
    };
    let channel = |i: u32| (((color >> (shift * i)) & mask) * 0xffff / mask) as u16;
    Color::new(channel(2), channel(1), channel(0), 0xffff)
}

#[cfg(test)]
mod tests {
    use spice_qxl::command::string_flags;
    use spice_qxl::{Brush, DrawOp, Glyph, Point, Text};

    use crate::rop::ropd;
    use crate::tests::{bitmap, drawable, px, rect, Map};
    use crate::{draw, CanvasError, Format, Surface};

    const WHITE: u32 = 0x00ff_ffff;
    const GREY: u32 = 0x0080_8080;

    fn glyph(x: i32, y: i32, width: u16, height: u16, bpp: u32, rows_bottom_up: &[&[u8]]) -> Glyph {
        let stride = (u32::from(width) * bpp).div_ceil(8);
        Glyph {
            render_pos: Point { x, y },
            glyph_origin: Point {
                x: 0,
                y: -(i32::from(height)),
            },
            width,
            height,
            stride,
            data: rows_bottom_up.concat(),
        }
    }

    fn text(glyphs: Vec<Glyph>, bpp: u8, back_area: spice_qxl::Rect, back_mode: u16) -> DrawOp {
        let flags = match bpp {
            1 => string_flags::RASTER_A1,
            4 => string_flags::RASTER_A4,
            _ => string_flags::RASTER_A8,
        };
        DrawOp::Text(Text {
            glyphs,
            bpp,
            string_flags: flags,
            back_area,
            fore_brush: Brush::Solid(WHITE),
            back_brush: Brush::Solid(GREY),
            fore_mode: ropd::OP_PUT,
            back_mode,
        })
    }

    fn run(t: &mut Surface, d: &spice_qxl::Drawable) -> Result<Option<spice_qxl::Rect>, CanvasError> {
        draw(&mut t.view_mut(), 0, d, &Map(vec![]))
    }

    /// The target's pixels, `W` for white, `g` for the background, `.` for
    /// untouched (zero).
    fn picture(s: &Surface) -> Vec<String> {
        (0..s.height())
            .map(|y| {
                (0..s.width())
                    .map(|x| match px(s, x, y) & 0xffffff {
                        WHITE => 'W',
                        GREY => 'g',
                        0 => '.',
                        _ => '?',
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn one_bit_glyphs_over_a_background() {
        // Two glyphs on baseline y = 4 (their boxes: rows 1..4), rows stored
        // bottom-up, most significant bit leftmost.
        let a = glyph(1, 4, 3, 3, 1, &[&[0b1010_0000], &[0b0100_0000], &[0b1110_0000]]);
        let b = glyph(5, 4, 2, 3, 1, &[&[0b1100_0000], &[0b1000_0000], &[0b0100_0000]]);
        let mut s = Surface::new(8, 6, Format::Xrgb32).unwrap();
        let d = drawable(
            rect(0, 0, 8, 5),
            text(vec![a, b], 1, rect(0, 0, 8, 5), ropd::OP_PUT),
        );
        assert_eq!(run(&mut s, &d).unwrap(), Some(rect(0, 0, 8, 5)));
        assert_eq!(
            picture(&s),
            [
                "gggggggg", //
                "gWWWggWg", // top row: the last one stored
                "ggWggWgg", "gWgWgWWg", "gggggggg", "........", // outside the box
            ]
        );
        // x bytes stay clear on xRGB targets.
        assert_eq!(px(&s, 1, 1), WHITE);
    }

    #[test]
    fn the_clip_cuts_glyphs_and_background() {
        let a = glyph(0, 2, 4, 2, 1, &[&[0xf0], &[0xf0]]);
        let mut s = Surface::new(4, 2, Format::Xrgb32).unwrap();
        let mut d = drawable(rect(0, 0, 4, 2), text(vec![a], 1, rect(0, 0, 4, 2), ropd::OP_PUT));
        d.clip = spice_qxl::Clip::Rects(vec![rect(1, 0, 3, 1)]);
        run(&mut s, &d).unwrap();
        assert_eq!(picture(&s), [".WW.", "...."]);
    }

    #[test]
    fn eight_bit_glyphs_blend_by_coverage() {
        let a = glyph(0, 1, 3, 1, 8, &[&[0xff, 0x80, 0x00]]);
        let mut s = Surface::new(3, 1, Format::Xrgb32).unwrap();
        let d = drawable(rect(0, 0, 3, 1), text(vec![a], 8, rect(0, 0, 0, 0), 0));
        run(&mut s, &d).unwrap();
        // White OVER black at coverage 0x80: 0xff * 0x80 / 0xff = 0x80.
        assert_eq!(px(&s, 0, 0), WHITE);
        assert_eq!(px(&s, 1, 0), GREY);
        assert_eq!(px(&s, 2, 0), 0);
    }

    #[test]
    fn four_bit_glyphs_count_nibbles_as_their_high_half() {
        // Coverage 0xf → 0xf0 (as C: not 0xff); 0x8 → 0x80.
        let a = glyph(0, 1, 3, 1, 4, &[&[0xf8, 0x00]]);
        let mut s = Surface::new(3, 1, Format::Argb32).unwrap();
        let d = drawable(rect(0, 0, 3, 1), text(vec![a], 4, rect(0, 0, 0, 0), 0));
        run(&mut s, &d).unwrap();
        assert_eq!(px(&s, 0, 0), 0xf0f0_f0f0);
        assert_eq!(px(&s, 1, 0), 0x8080_8080);
        assert_eq!(px(&s, 2, 0), 0);
    }

    #[test]
    fn a_background_needs_fore_mode_put_and_glyphs_far_away_cost_nothing() {
        let mut s = Surface::new(2, 2, Format::Xrgb32).unwrap();
        let mut op = text(vec![glyph(0, 1, 1, 1, 1, &[&[0x80]])], 1, rect(0, 0, 2, 2), 0);
        if let DrawOp::Text(t) = &mut op {
            t.fore_mode = ropd::OP_XOR;
        }
        assert!(run(&mut s, &drawable(rect(0, 0, 2, 2), op)).is_err());
        assert_eq!(picture(&s), ["..", ".."], "nothing drawn, as in C");
        // A union of glyph boxes spanning the whole coordinate space.
        let far = vec![
            glyph(i32::MIN, i32::MIN + 1, 1, 1, 1, &[&[0x80]]),
            glyph(0, 1, 1, 1, 1, &[&[0x80]]),
            glyph(i32::MAX - 1, i32::MAX, 1, 1, 1, &[&[0x80]]),
        ];
        let d = drawable(rect(0, 0, 2, 2), text(far, 1, rect(0, 0, 0, 0), 0));
        assert_eq!(
            run(&mut s, &d).unwrap(),
            Some(rect(0, 0, 2, 2)),
            "the mask's part in the box"
        );
        assert_eq!(picture(&s), ["W.", ".."]);
    }

    #[test]
    fn pattern_brushes_align_on_the_glyphs_corner() {
        let tile = bitmap(2, 1, |x, _| if x == 0 { WHITE } else { GREY });
        let a = glyph(1, 1, 3, 1, 1, &[&[0xe0]]);
        let mut op = text(vec![a], 1, rect(0, 0, 0, 0), 0);
        if let DrawOp::Text(t) = &mut op {
            t.fore_brush = Brush::Pattern {
                image: tile,
                pos: Point { x: 0, y: 0 },
            };
        }
        let mut s = Surface::new(4, 1, Format::Xrgb32).unwrap();
        run(&mut s, &drawable(rect(0, 0, 4, 1), op)).unwrap();
        // Tile column (x - 1) mod 2: the glyph's corner is at x = 1.
        assert_eq!(picture(&s), [".WgW"]);
    }
}
