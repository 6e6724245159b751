//! Draw operations (`QXLDrawable`s) rendered into a target surface.
//!
//! Every operation works the same way, as the C canvas defines it: the
//! pixels it may touch are its bounding box within the target, cut by its
//! clip rectangles and (for the operations that have one) its 1-bit mask;
//! each of those pixels becomes a function of the operands there — the
//! source image (scaled to the box), the brush, the destination.

use spice_qxl::{Brush, Clip, DrawOp, Drawable, Image, Mask, Point, Rect};

use crate::error::CanvasError;
use crate::pixels;
use crate::region::DrawRegion;
use crate::rop::{rop3, ropd, Rop};
use crate::source::{self, fit, pixel_at, resolve, Part, Picture, SelfRef};
use crate::surface::{Format, Sources, Surface, SurfaceMut, SurfaceRef};

/// `SPICE_MASK_FLAGS_INVERS`.
const MASK_INVERS: u8 = 1;
/// `SPICE_ALPHA_FLAGS_DEST_HAS_ALPHA`.
const ALPHA_DEST_HAS_ALPHA: u16 = 1;
/// `SPICE_ALPHA_FLAGS_SRC_SURFACE_HAS_ALPHA`.
const ALPHA_SRC_SURFACE_HAS_ALPHA: u16 = 2;

/// Largest pattern brush tile, in pixels (a guest's patterns are small;
/// this bounds the copy a surface used as a pattern costs).
const MAX_TILE_PIXELS: u64 = 1 << 22;

/// What an operation changed.
pub type Damage = Option<Rect>;

/// Renders `drawable` into `target` (surface `target_id`), reading other
/// surfaces from `sources`. Returns the bounding box of what it may have
/// changed, `None` when nothing.
pub fn draw(
    target: &mut SurfaceMut<'_>,
    target_id: u32,
    drawable: &Drawable,
    sources: &dyn Sources,
) -> Result<Damage, CanvasError> {
    let mut cx = Cx {
        target,
        target_id,
        sources,
        bbox: drawable.bbox,
    };
    let clip = &drawable.clip;
    match &drawable.op {
        DrawOp::Nop => Ok(None),
        DrawOp::Fill(fill) => {
            let region = cx.region(clip, fill.mask.as_ref())?;
            let rop = Rop::from_descriptor(fill.rop_descriptor, ropd::INVERS_BRUSH, ropd::INVERS_DEST);
            cx.paint_brush(&region, &fill.brush, rop)?;
            Ok(damage(&region))
        }
        DrawOp::Copy(copy) | DrawOp::Blend(copy) => {
            let region = cx.region(clip, copy.mask.as_ref())?;
            let rop = Rop::from_descriptor(copy.rop_descriptor, ropd::INVERS_SRC, ropd::INVERS_DEST);
            cx.paint_image(&region, &copy.src, &copy.src_area, copy.scale_mode, rop)?;
            Ok(damage(&region))
        }
        DrawOp::Opaque(opaque) => {
            let region = cx.region(clip, opaque.mask.as_ref())?;
            cx.paint_image(
                &region,
                &opaque.src,
                &opaque.src_area,
                opaque.scale_mode,
                Rop::COPY,
            )?;
            // The brush then lands on the source just drawn.
            let rop = Rop::from_descriptor(opaque.rop_descriptor, ropd::INVERS_BRUSH, ropd::INVERS_SRC);
            cx.paint_brush(&region, &opaque.brush, rop)?;
            Ok(damage(&region))
        }
        DrawOp::Blackness { mask } | DrawOp::Whiteness { mask } | DrawOp::Invers { mask } => {
            let region = cx.region(clip, mask.as_ref())?;
            let op = match &drawable.op {
                DrawOp::Blackness { .. } => ropd::OP_BLACKNESS,
                DrawOp::Whiteness { .. } => ropd::OP_WHITENESS,
                _ => ropd::OP_INVERS,
            };
            cx.paint_brush(&region, &Brush::None, Rop::from_descriptor(op, 0, 0))?;
            Ok(damage(&region))
        }
        DrawOp::Rop3(r) => {
            let region = cx.region(clip, r.mask.as_ref())?;
            if region.is_empty() {
                return Ok(None);
            }
            let src = cx.source(
                &region,
                &r.src,
                &r.src_area,
                r.scale_mode,
                cx.target.format,
                false,
            )?;
            let brush = cx.brush(&r.brush)?;
            let (src, code) = (src.operand(), r.rop3);
            for_each_pixel(cx.target, &region, |x, y, d| {
                src.at(x, y).map(|s| rop3(code, brush.at(x, y), s, d))
            });
            Ok(damage(&region))
        }
        DrawOp::Transparent(t) => {
            let region = cx.region(clip, None)?;
            if region.is_empty() {
                return Ok(None);
            }
            let src = cx.source(
                &region,
                &t.src,
                &t.src_area,
                source::SCALE_NEAREST,
                cx.target.format,
                false,
            )?;
            let (key, key_mask) = color_key(cx.target.format, t.true_color);
            let src = src.operand();
            for_each_pixel(cx.target, &region, |x, y, _| {
                src.at(x, y).filter(|s| s & key_mask != key)
            });
            Ok(damage(&region))
        }
        DrawOp::AlphaBlend(a) => {
            let region = cx.region(clip, None)?;
            if a.alpha == 0 || region.is_empty() {
                return Ok(None);
            }
            let cleared = cx.alpha_blend(&region, a)?;
            Ok(union(damage(&region), cleared))
        }
        DrawOp::CopyBits { src_pos } => cx.copy_bits(clip, *src_pos),
        DrawOp::Stroke(stroke) => crate::stroke::draw(&mut cx, clip, stroke),
        DrawOp::Text(text) => crate::text::draw(&mut cx, clip, text),
        DrawOp::Composite(composite) => crate::composite::draw(&mut cx, clip, composite),
        DrawOp::Unsupported { .. } => Err(CanvasError::Unsupported("this draw type")),
    }
}

pub(crate) fn damage(region: &DrawRegion) -> Damage {
    if region.is_empty() {
        return None;
    }
    let e = region.extents();
    Some(Rect {
        top: e.y1,
        left: e.x1,
        bottom: e.y2,
        right: e.x2,
    })
}

/// What the C canvas's `clear_dest_alpha` does after compositing OVER onto
/// an xRGB surface: when the pixel at the rectangle's top-left (cut to the
/// surface) came out with 0xff in its x byte, the x bytes of the whole
/// rectangle, cut to the surface but not to the clip, are cleared. Kept
/// byte for byte: a guest may later read the surface as ARGB (an alpha
/// blend from it with `SRC_SURFACE_HAS_ALPHA`), and then C's bytes show.
/// Returns the rectangle cleared (it may reach outside the clip).
pub(crate) fn clear_x_bytes_as_c(
    target: &mut SurfaceMut<'_>,
    left: i64,
    top: i64,
    width: i64,
    height: i64,
) -> Damage {
    let (w, h) = (i64::from(target.width), i64::from(target.height));
    if target.format != Format::Xrgb32 || width <= 0 || height <= 0 {
        return None;
    }
    let (x0, x1) = (left.max(0), (left.saturating_add(width)).min(w));
    let (y0, y1) = (top.max(0), (top.saturating_add(height)).min(h));
    if x0 >= x1 || y0 >= y1 {
        return None;
    }
    let stride = target.stride;
    let at = |x: i64, y: i64| y as usize * stride + x as usize;
    if target.bits[at(x0, y0)] >> 24 != 0xff {
        return None;
    }
    for y in y0..y1 {
        for word in &mut target.bits[at(x0, y)..at(x1, y)] {
            *word &= 0x00ff_ffff;
        }
    }
    // Within the target, whose sides fit in i32.
    Some(Rect {
        top: y0 as i32,
        left: x0 as i32,
        bottom: y1 as i32,
        right: x1 as i32,
    })
}

/// The smallest rectangle holding both.
pub(crate) fn union(a: Damage, b: Damage) -> Damage {
    match (a, b) {
        (Some(a), Some(b)) => Some(Rect {
            top: a.top.min(b.top),
            left: a.left.min(b.left),
            bottom: a.bottom.max(b.bottom),
            right: a.right.max(b.right),
        }),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The transparent colour in the target's format, and the bits compared.
fn color_key(format: Format, xrgb: u32) -> (u32, u32) {
    let (r, g, b) = (xrgb >> 16 & 0xff, xrgb >> 8 & 0xff, xrgb & 0xff);
    match format {
        Format::Xrgb32 | Format::Argb32 => (xrgb & 0x00ff_ffff, 0x00ff_ffff),
        Format::Rgb555 => ((r >> 3) << 10 | (g >> 3) << 5 | b >> 3, 0x7fff),
        Format::Rgb565 => ((r >> 3) << 11 | (g >> 2) << 5 | b >> 3, 0xffff),
        Format::A8 | Format::A1 => (0, format.pixel_mask()),
    }
}

/// Calls `f(x, y, dest)` for every pixel of `region`; a `Some` result is
/// written there.
pub(crate) fn for_each_pixel(
    target: &mut SurfaceMut<'_>,
    region: &DrawRegion,
    mut f: impl FnMut(i64, i64, u32) -> Option<u32>,
) {
    let bpp = target.format.bits_per_pixel();
    for b in region.boxes() {
        for y in b.y1..b.y2 {
            let start = y as usize * target.stride;
            let row = &mut target.bits[start..start + target.stride];
            for x in b.x1..b.x2 {
                let d = pixels::get(row, bpp, x as usize);
                if let Some(v) = f(i64::from(x), i64::from(y), d) {
                    pixels::set(row, bpp, x as usize, v);
                }
            }
        }
    }
}

/// Pixels of a view placed on the target: target `(x, y)` shows view pixel
/// `(x - dx, y - dy)`.
#[derive(Clone, Copy)]
struct Operand<'a> {
    view: SurfaceRef<'a>,
    dx: i64,
    dy: i64,
}

impl Operand<'_> {
    #[inline]
    fn at(&self, x: i64, y: i64) -> Option<u32> {
        pixel_at(&self.view, x - self.dx, y - self.dy)
    }
}

/// A source image ready to be read in the target's space.
enum Src<'s> {
    /// Same size and format as drawn: read in place.
    Direct(Picture<'s>, i64, i64),
    /// Converted or scaled to the bounding box.
    Fitted(Surface, i64, i64),
}

impl Src<'_> {
    fn operand(&self) -> Operand<'_> {
        match self {
            Src::Direct(p, dx, dy) => Operand {
                view: p.view(),
                dx: *dx,
                dy: *dy,
            },
            Src::Fitted(s, dx, dy) => Operand {
                view: s.view(),
                dx: *dx,
                dy: *dy,
            },
        }
    }
}

/// A brush ready to be read in the target's space.
pub(crate) enum BrushOperand {
    Solid(u32),
    Tile { tile: Surface, origin: Point },
}

impl BrushOperand {
    #[inline]
    pub(crate) fn at(&self, x: i64, y: i64) -> u32 {
        match self {
            BrushOperand::Solid(v) => *v,
            BrushOperand::Tile { tile, origin } => {
                let tx = (x - i64::from(origin.x)).rem_euclid(i64::from(tile.width()));
                let ty = (y - i64::from(origin.y)).rem_euclid(i64::from(tile.height()));
                pixel_at(&tile.view(), tx, ty).unwrap_or(0)
            }
        }
    }
}

/// One operation's context.
pub(crate) struct Cx<'c, 't> {
    pub(crate) target: &'c mut SurfaceMut<'t>,
    pub(crate) target_id: u32,
    pub(crate) sources: &'c dyn Sources,
    pub(crate) bbox: Rect,
}

impl<'c> Cx<'c, '_> {
    pub(crate) fn this(&self) -> SelfRef<'_> {
        SelfRef {
            id: self.target_id,
            surface: self.target.as_ref(),
        }
    }

    /// Surface `id` as drawing reads it: the target itself, or one of the
    /// other surfaces.
    pub(crate) fn surface(&self, id: u32) -> Result<SurfaceRef<'_>, CanvasError> {
        if id == self.target_id {
            return Ok(self.target.as_ref());
        }
        self.sources.surface(id).ok_or(CanvasError::NoSurface(id))
    }

    /// The bounding box within the target, clipped, and masked.
    pub(crate) fn region(&self, clip: &Clip, mask: Option<&Mask>) -> Result<DrawRegion, CanvasError> {
        let mut region = DrawRegion::new(self.target.width, self.target.height, &self.bbox, clip);
        let Some(mask) = mask else { return Ok(region) };
        let origin = (
            i64::from(self.bbox.left) - i64::from(mask.pos.x),
            i64::from(self.bbox.top) - i64::from(mask.pos.y),
        );
        let invert = mask.flags & MASK_INVERS != 0;
        match &mask.image {
            Image::Bitmap(bitmap) => {
                let bits = source::bitmap_mask(bitmap)?;
                region.intersect_mask(&bits.view(), origin, invert);
            }
            Image::Surface { surface_id } => {
                let surface = self
                    .sources
                    .surface(*surface_id)
                    .ok_or(CanvasError::NoSurface(*surface_id))?;
                if surface.format != Format::A1 {
                    return Err(CanvasError::MaskFormat);
                }
                region.intersect_mask(&surface, origin, invert);
            }
            Image::Quic { .. } => return Err(CanvasError::MaskFormat),
        }
        Ok(region)
    }

    /// `area` of `image` as it lands on the bounding box, in `format`; only
    /// the part under `region` is produced when it must be converted or scaled.
    /// 32-bit pictures are taken as raw words (as the C canvas blits them),
    /// except when `convert_scaled` and scaled: the C canvas scales a plain
    /// copy straight onto the target through pixman, which converts.
    fn source<'a>(
        &self,
        region: &DrawRegion,
        image: &'a Image,
        area: &Rect,
        scale_mode: u8,
        format: Format,
        convert_scaled: bool,
    ) -> Result<Src<'a>, CanvasError>
    where
        'c: 'a,
    {
        let picture = resolve(image, area, self.sources, self.this())?;
        let (bw, bh) = (self.bbox.width(), self.bbox.height());
        let same_size = area.width() == bw && area.height() == bh;
        let picture = if same_size || !convert_scaled {
            picture.raw_as(format)
        } else {
            picture
        };
        if same_size && picture.view().format == format {
            let origin = picture.origin();
            let dx = i64::from(self.bbox.left) - i64::from(area.left) + i64::from(origin.0);
            let dy = i64::from(self.bbox.top) - i64::from(area.top) + i64::from(origin.1);
            return Ok(Src::Direct(picture, dx, dy));
        }
        let part = self.part(region);
        let fitted = fit(&picture, area, bw, bh, part, format, scale_mode)?;
        Ok(Src::Fitted(
            fitted,
            i64::from(self.bbox.left) + i64::from(part.x),
            i64::from(self.bbox.top) + i64::from(part.y),
        ))
    }

    /// The part of the bounding box `region` covers (the region lies within
    /// both the box and the target).
    fn part(&self, region: &DrawRegion) -> Part {
        if region.is_empty() {
            return Part::whole(0, 0);
        }
        let e = region.extents();
        Part {
            x: (i64::from(e.x1) - i64::from(self.bbox.left)).max(0) as u32,
            y: (i64::from(e.y1) - i64::from(self.bbox.top)).max(0) as u32,
            width: (e.x2 - e.x1) as u32,
            height: (e.y2 - e.y1) as u32,
        }
    }

    pub(crate) fn brush(&self, brush: &Brush) -> Result<BrushOperand, CanvasError> {
        let mask = self.target.format.pixel_mask();
        Ok(match brush {
            Brush::None => BrushOperand::Solid(0),
            Brush::Solid(color) => BrushOperand::Solid(color & mask),
            Brush::Pattern { image, pos } => {
                let whole = match image {
                    Image::Bitmap(b) => (b.width, b.height),
                    Image::Quic { width, height, .. } => (*width, *height),
                    Image::Surface { surface_id } => {
                        let s = self.surface(*surface_id)?;
                        (s.width, s.height)
                    }
                };
                let area = Rect {
                    top: 0,
                    left: 0,
                    bottom: whole.1 as i32,
                    right: whole.0 as i32,
                };
                if u64::from(whole.0) * u64::from(whole.1) > MAX_TILE_PIXELS {
                    return Err(CanvasError::Unsupported("a pattern of more than 4 Mpixels"));
                }
                let picture = resolve(image, &area, self.sources, self.this())?.raw_as(self.target.format);
                let tile = fit(
                    &picture,
                    &area,
                    whole.0,
                    whole.1,
                    Part::whole(whole.0, whole.1),
                    self.target.format,
                    source::SCALE_NEAREST,
                )?;
                BrushOperand::Tile { tile, origin: *pos }
            }
        })
    }

    pub(crate) fn paint_brush(
        &mut self,
        region: &DrawRegion,
        brush: &Brush,
        rop: Rop,
    ) -> Result<(), CanvasError> {
        if region.is_empty() {
            return Ok(());
        }
        let brush = if rop.ignores_input() {
            BrushOperand::Solid(0)
        } else {
            self.brush(brush)?
        };
        match brush {
            BrushOperand::Solid(v) if rop.is_copy() && self.target.format.bits_per_pixel() == 32 => {
                for b in region.boxes() {
                    for y in b.y1..b.y2 {
                        let start = y as usize * self.target.stride;
                        self.target.bits[start + b.x1 as usize..start + b.x2 as usize].fill(v);
                    }
                }
            }
            brush => for_each_pixel(self.target, region, |x, y, d| Some(rop.apply(brush.at(x, y), d))),
        }
        Ok(())
    }

    fn paint_image(
        &mut self,
        region: &DrawRegion,
        image: &Image,
        area: &Rect,
        scale_mode: u8,
        rop: Rop,
    ) -> Result<(), CanvasError> {
        if region.is_empty() {
            return Ok(());
        }
        let src = self.source(region, image, area, scale_mode, self.target.format, rop.is_copy())?;
        let src = src.operand();
        if rop.is_copy() {
            for b in region.boxes() {
                let (w, h) = ((b.x2 - b.x1) as u32, (b.y2 - b.y1) as u32);
                let (sx, sy) = (i64::from(b.x1) - src.dx, i64::from(b.y1) - src.dy);
                let (Ok(sx), Ok(sy)) = (i32::try_from(sx), i32::try_from(sy)) else {
                    continue;
                };
                pixels::copy_pixels(&src.view, sx, sy, self.target, b.x1, b.y1, w, h);
            }
        } else {
            for_each_pixel(self.target, region, |x, y, d| {
                src.at(x, y).map(|s| rop.apply(s, d))
            });
        }
        Ok(())
    }

    /// Returns the rectangle whose x bytes C's clearing took (see
    /// [`clear_x_bytes_as_c`]).
    fn alpha_blend(&mut self, region: &DrawRegion, a: &spice_qxl::AlphaBlend) -> Result<Damage, CanvasError> {
        let picture = resolve(&a.src, &a.src_area, self.sources, self.this())?;
        // A surface source has alpha only when the flags say so; a bitmap's
        // format tells.
        let mut format = picture.view().format;
        if matches!(a.src, Image::Surface { .. })
            && format == Format::Xrgb32
            && a.alpha_flags & ALPHA_SRC_SURFACE_HAS_ALPHA != 0
        {
            format = Format::Argb32;
        }
        let (bw, bh) = (self.bbox.width(), self.bbox.height());
        let part = self.part(region);
        let mut src = fit(
            &picture,
            &a.src_area,
            bw,
            bh,
            part,
            picture.view().format,
            source::SCALE_NEAREST,
        )?;
        src.relabel(format);
        let dest_format = self.target.format;
        if dest_format == Format::Xrgb32 && a.alpha_flags & ALPHA_DEST_HAS_ALPHA != 0 {
            self.target.format = Format::Argb32;
        }
        let alpha = u16::from(a.alpha) * 0x101;
        let at = (
            (i64::from(self.bbox.left) + i64::from(part.x)) as i32,
            (i64::from(self.bbox.top) + i64::from(part.y)) as i32,
        );
        let mut src_view = src.view_mut();
        let result = src_view
            .with_pixman(|s| {
                let mask = pixman::Solid::new(pixman::Color::new(0, 0, 0, alpha)).ok();
                self.target.with_pixman(|d| {
                    d.set_clip_region32(Some(region.pixman())).ok()?;
                    let mask = if a.alpha == 255 { None } else { mask.as_deref() };
                    d.composite32(
                        pixman::Operation::Over,
                        s,
                        mask,
                        (0, 0),
                        (0, 0),
                        at,
                        (part.width as i32, part.height as i32),
                    );
                    Some(())
                })
            })
            .flatten()
            .flatten();
        self.target.format = dest_format;
        result.ok_or(CanvasError::Pixman("alpha blend"))?;
        if a.alpha_flags & ALPHA_DEST_HAS_ALPHA != 0 {
            return Ok(None);
        }
        Ok(clear_x_bytes_as_c(
            self.target,
            self.bbox.left.into(),
            self.bbox.top.into(),
            bw.into(),
            bh.into(),
        ))
    }

    /// Moves the area at `src_pos` to the bounding box, within the target.
    fn copy_bits(&mut self, clip: &Clip, src_pos: Point) -> Result<Damage, CanvasError> {
        let dx = i64::from(self.bbox.left) - i64::from(src_pos.x);
        let dy = i64::from(self.bbox.top) - i64::from(src_pos.y);
        if dx == 0 && dy == 0 {
            return Ok(None);
        }
        let (w, h) = (self.target.width, self.target.height);
        // Only pixels whose source is inside the target move.
        let shifted = Rect {
            top: dy.clamp(i32::MIN.into(), i32::MAX.into()) as i32,
            left: dx.clamp(i32::MIN.into(), i32::MAX.into()) as i32,
            bottom: (dy + i64::from(h)).clamp(i32::MIN.into(), i32::MAX.into()) as i32,
            right: (dx + i64::from(w)).clamp(i32::MIN.into(), i32::MAX.into()) as i32,
        };
        let region =
            DrawRegion::new(w, h, &self.bbox, clip).intersect(&DrawRegion::new(w, h, &shifted, &Clip::None));
        if region.is_empty() {
            return Ok(None);
        }
        // Source and destination overlap when scrolling: read first, then write.
        let e = region.extents();
        let (ew, eh) = ((e.x2 - e.x1) as u32, (e.y2 - e.y1) as u32);
        let moved = self.target.as_ref().copy_area(
            (i64::from(e.x1) - dx) as i32,
            (i64::from(e.y1) - dy) as i32,
            ew,
            eh,
        )?;
        for b in region.boxes() {
            pixels::copy_pixels(
                &moved.view(),
                b.x1 - e.x1,
                b.y1 - e.y1,
                self.target,
                b.x1,
                b.y1,
                (b.x2 - b.x1) as u32,
                (b.y2 - b.y1) as u32,
            );
        }
        Ok(damage(&region))
    }
}
