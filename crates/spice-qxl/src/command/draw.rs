//! `QXL_CMD_DRAW`: `QXLDrawable` and its draw operations.

use super::composite::{self, Composite};
use super::stroke::{self, Stroke};
use super::text::{self, Text};
use super::{Point, Rect, TopLevel, QXL_COMMAND_FLAG_COMPAT, QXL_COMMAND_FLAG_COMPAT_16BPP};
use crate::error::ParseError;
use crate::guest::{ChunkRef, Ctx};
use crate::image::{color_16_to_32, parse_image, Image};
use crate::layout::{Fields, RECT_SIZE};

/// `sizeof(QXLDrawable)`.
pub(crate) const DRAWABLE_SIZE: usize = 191;
/// `sizeof(QXLCompatDrawable)`.
pub(crate) const COMPAT_DRAWABLE_SIZE: usize = 128;
/// Offset of the draw-type union in `QXLDrawable`.
const U: usize = 123;
/// `sizeof(QXLClipRects)`: `u32 num_rects` then the first `QXLDataChunk`.
const CLIP_RECTS_SIZE: usize = 24;

/// `QXL_DRAW_*` values.
pub mod draw_type {
    /// `QXL_DRAW_NOP`.
    pub const NOP: u8 = 0;
    /// `QXL_DRAW_FILL`.
    pub const FILL: u8 = 1;
    /// `QXL_DRAW_OPAQUE`.
    pub const OPAQUE: u8 = 2;
    /// `QXL_DRAW_COPY`.
    pub const COPY: u8 = 3;
    /// `QXL_COPY_BITS`.
    pub const COPY_BITS: u8 = 4;
    /// `QXL_DRAW_BLEND`.
    pub const BLEND: u8 = 5;
    /// `QXL_DRAW_BLACKNESS`.
    pub const BLACKNESS: u8 = 6;
    /// `QXL_DRAW_WHITENESS`.
    pub const WHITENESS: u8 = 7;
    /// `QXL_DRAW_INVERS`.
    pub const INVERS: u8 = 8;
    /// `QXL_DRAW_ROP3`.
    pub const ROP3: u8 = 9;
    /// `QXL_DRAW_STROKE`.
    pub const STROKE: u8 = 10;
    /// `QXL_DRAW_TEXT`.
    pub const TEXT: u8 = 11;
    /// `QXL_DRAW_TRANSPARENT`.
    pub const TRANSPARENT: u8 = 12;
    /// `QXL_DRAW_ALPHA_BLEND`.
    pub const ALPHA_BLEND: u8 = 13;
    /// `QXL_DRAW_COMPOSITE`.
    pub const COMPOSITE: u8 = 14;
}

/// A parsed `QXLDrawable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drawable {
    /// Target surface, below [`ParseLimits::n_surfaces`](crate::ParseLimits).
    pub surface_id: u32,
    /// `QXL_EFFECT_*` (raw).
    pub effect: u8,
    /// Bounding box on the target surface (not checked against the surface's size here).
    pub bbox: Rect,
    /// Clipping of the operation.
    pub clip: Clip,
    /// Guest multimedia time.
    pub mm_time: u32,
    /// Whether the server must capture `self_bitmap_area` of the target before
    /// drawing (always false for COPY and BLEND, as in the C server).
    pub self_bitmap: bool,
    /// The area captured when `self_bitmap` is set.
    pub self_bitmap_area: Rect,
    /// Surfaces this drawable reads from: `-1` or a valid surface id.
    pub surfaces_dest: [i32; 3],
    /// The areas read from each of `surfaces_dest`.
    pub surfaces_rects: [Rect; 3],
    /// The operation.
    pub op: DrawOp,
}

/// `QXLClip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clip {
    /// `SPICE_CLIP_TYPE_NONE`.
    None,
    /// `SPICE_CLIP_TYPE_RECTS`: draw only inside the union of these.
    Rects(Vec<Rect>),
}

/// The draw-type union of `QXLDrawable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrawOp {
    /// `QXL_DRAW_NOP`.
    Nop,
    /// `QXL_DRAW_FILL`.
    Fill(Fill),
    /// `QXL_DRAW_OPAQUE`.
    Opaque(Opaque),
    /// `QXL_DRAW_COPY`: what QEMU's simple display sends.
    Copy(CopyOp),
    /// `QXL_COPY_BITS`: copy `bbox` of the target from `src_pos`.
    CopyBits {
        /// Top-left of the source area on the target surface.
        src_pos: Point,
    },
    /// `QXL_DRAW_BLEND` (same layout as COPY).
    Blend(Blend),
    /// `QXL_DRAW_BLACKNESS`.
    Blackness {
        /// Optional mask.
        mask: Option<Mask>,
    },
    /// `QXL_DRAW_WHITENESS`.
    Whiteness {
        /// Optional mask.
        mask: Option<Mask>,
    },
    /// `QXL_DRAW_INVERS`.
    Invers {
        /// Optional mask.
        mask: Option<Mask>,
    },
    /// `QXL_DRAW_ROP3`.
    Rop3(Rop3),
    /// `QXL_DRAW_TRANSPARENT`.
    Transparent(Transparent),
    /// `QXL_DRAW_ALPHA_BLEND`.
    AlphaBlend(AlphaBlend),
    /// `QXL_DRAW_STROKE`.
    Stroke(Stroke),
    /// `QXL_DRAW_TEXT`.
    Text(Text),
    /// `QXL_DRAW_COMPOSITE`.
    Composite(Composite),
    /// A valid draw type whose operands are not parsed. The parser no longer
    /// produces it (every `QXL_DRAW_*` is parsed); it stays so that matches
    /// written against it keep compiling.
    Unsupported {
        /// The `QXL_DRAW_*` value.
        draw_type: u8,
    },
}

/// `QXLCopy` (and `QXLBlend`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOp {
    /// Source image.
    pub src: Image,
    /// Area of the source drawn into `bbox`; ordered, non-negative, and inside
    /// the bitmap for bitmap sources.
    pub src_area: Rect,
    /// `SPICE_ROPD_*` bits (QEMU: `OP_PUT`).
    pub rop_descriptor: u16,
    /// `SPICE_IMAGE_SCALE_MODE_*`.
    pub scale_mode: u8,
    /// Optional mask.
    pub mask: Option<Mask>,
}

/// `QXLBlend`: the same fields as [`CopyOp`].
pub type Blend = CopyOp;

/// `QXLQMask` with a non-null bitmap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    /// `SPICE_MASK_FLAGS_*`.
    pub flags: u8,
    /// Offset of the mask.
    pub pos: Point,
    /// The mask image (palette optional).
    pub image: Image,
}

/// `QXLBrush`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Brush {
    /// `SPICE_BRUSH_TYPE_NONE`.
    None,
    /// `SPICE_BRUSH_TYPE_SOLID`: xRGB colour (converted from 555 under `COMPAT_16BPP`).
    Solid(u32),
    /// `SPICE_BRUSH_TYPE_PATTERN`.
    Pattern {
        /// The tile.
        image: Image,
        /// Pattern origin.
        pos: Point,
    },
}

/// `QXLFill`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    /// What to fill with.
    pub brush: Brush,
    /// `SPICE_ROPD_*` bits.
    pub rop_descriptor: u16,
    /// Optional mask.
    pub mask: Option<Mask>,
}

/// `QXLOpaque`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opaque {
    /// Source image.
    pub src: Image,
    /// Area of the source (checked like [`CopyOp::src_area`]).
    pub src_area: Rect,
    /// Brush combined with the source.
    pub brush: Brush,
    /// `SPICE_ROPD_*` bits.
    pub rop_descriptor: u16,
    /// `SPICE_IMAGE_SCALE_MODE_*`.
    pub scale_mode: u8,
    /// Optional mask.
    pub mask: Option<Mask>,
}

/// `QXLRop3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rop3 {
    /// Source image.
    pub src: Image,
    /// Area of the source (checked like [`CopyOp::src_area`]).
    pub src_area: Rect,
    /// Brush operand.
    pub brush: Brush,
    /// Ternary raster operation code.
    pub rop3: u8,
    /// `SPICE_IMAGE_SCALE_MODE_*`.
    pub scale_mode: u8,
    /// Optional mask.
    pub mask: Option<Mask>,
}

/// `QXLTransparent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transparent {
    /// Source image.
    pub src: Image,
    /// Area of the source (checked like [`CopyOp::src_area`]).
    pub src_area: Rect,
    /// Source colour treated as transparent.
    pub src_color: u32,
    /// `src_color` as xRGB.
    pub true_color: u32,
}

/// `QXLAlphaBlend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlphaBlend {
    /// `SPICE_ALPHA_FLAGS_*`.
    pub alpha_flags: u16,
    /// Global alpha.
    pub alpha: u8,
    /// Source image.
    pub src: Image,
    /// Area of the source (checked like [`CopyOp::src_area`]).
    pub src_area: Rect,
}

pub(crate) fn parse(ctx: &Ctx<'_, '_>, phys: u64) -> TopLevel<Drawable> {
    if ctx.flags & QXL_COMMAND_FLAG_COMPAT != 0 {
        let (host, _) = ctx.read_struct::<COMPAT_DRAWABLE_SIZE>("compat drawable", phys)?;
        return Ok((host, Err(ParseError::CompatDrawable)));
    }
    let (host, raw) = ctx.read_struct::<DRAWABLE_SIZE>("drawable", phys)?;
    Ok((host, drawable(ctx, Fields(&raw))))
}

fn drawable(ctx: &Ctx<'_, '_>, f: Fields<'_>) -> Result<Drawable, ParseError> {
    let surface_id = ctx.surface_id("drawable.surface_id", f.u32(8))?;
    let mut surfaces_dest = [0i32; 3];
    let mut surfaces_rects = [Rect::default(); 3];
    for i in 0..3 {
        let dest = f.i32(63 + 4 * i);
        if dest != -1 {
            let id = u32::try_from(dest).map_err(|_| ParseError::SurfaceId {
                what: "drawable.surfaces_dest",
                id: dest.into(),
                limit: ctx.limits().n_surfaces,
            })?;
            ctx.surface_id("drawable.surfaces_dest", id)?;
        }
        surfaces_dest[i] = dest;
        surfaces_rects[i] = f.rect(75 + RECT_SIZE * i);
    }
    let op = draw_op(ctx, f.u8(13), Fields(f.0.get(U..).unwrap_or_default()))?;
    let self_bitmap = f.u8(14) != 0 && !matches!(op, DrawOp::Copy(_) | DrawOp::Blend(_));
    Ok(Drawable {
        surface_id,
        effect: f.u8(12),
        bbox: f.rect(31),
        clip: clip(ctx, f.u32(47), f.u64(51))?,
        mm_time: f.u32(59),
        self_bitmap,
        self_bitmap_area: f.rect(15),
        surfaces_dest,
        surfaces_rects,
        op,
    })
}

fn clip(ctx: &Ctx<'_, '_>, clip_type: u32, data: u64) -> Result<Clip, ParseError> {
    match clip_type {
        0 => Ok(Clip::None),
        1 => clip_rects(ctx, data).map(Clip::Rects),
        other => Err(ParseError::invalid("drawable.clip.type", other)),
    }
}

fn clip_rects(ctx: &Ctx<'_, '_>, phys: u64) -> Result<Vec<Rect>, ParseError> {
    let what = "drawable.clip.rects";
    let (_, raw) = ctx.read_struct::<CLIP_RECTS_SIZE>(what, phys)?;
    let f = Fields(&raw);
    let num_rects = f.u32(0);
    let limit = ctx.limits().max_clip_rects;
    if num_rects > limit {
        return Err(ParseError::too_large(
            "drawable.clip.num_rects",
            num_rects.into(),
            limit.into(),
        ));
    }
    let size = u64::from(num_rects) * RECT_SIZE as u64;
    let data = ctx.gather(what, ChunkRef::embedded(f, phys, 4), size)?;
    if data.len() as u64 != size {
        return Err(ParseError::SizeMismatch {
            what,
            expected: size,
            actual: data.len() as u64,
        });
    }
    Ok(data.chunks_exact(RECT_SIZE).map(|r| Fields(r).rect(0)).collect())
}

fn draw_op(ctx: &Ctx<'_, '_>, kind: u8, u: Fields<'_>) -> Result<DrawOp, ParseError> {
    use self::draw_type as t;
    Ok(match kind {
        t::NOP => DrawOp::Nop,
        t::FILL => DrawOp::Fill(Fill {
            brush: brush(ctx, "drawable.fill.brush", u, 0)?,
            rop_descriptor: u.u16(20),
            mask: mask(ctx, "drawable.fill.mask", u, 22)?,
        }),
        t::OPAQUE => DrawOp::Opaque(Opaque {
            src: src_image(ctx, "drawable.opaque.src_bitmap", u.u64(0))?,
            src_area: u.rect(8),
            brush: brush(ctx, "drawable.opaque.brush", u, 24)?,
            rop_descriptor: u.u16(44),
            scale_mode: u.u8(46),
            mask: mask(ctx, "drawable.opaque.mask", u, 47)?,
        })
        .checked_src()?,
        t::COPY => DrawOp::Copy(copy(ctx, "drawable.copy", u)?),
        t::BLEND => DrawOp::Blend(copy(ctx, "drawable.blend", u)?),
        t::COPY_BITS => DrawOp::CopyBits { src_pos: u.point(0) },
        t::BLACKNESS => DrawOp::Blackness {
            mask: mask(ctx, "drawable.blackness.mask", u, 0)?,
        },
        t::WHITENESS => DrawOp::Whiteness {
            mask: mask(ctx, "drawable.whiteness.mask", u, 0)?,
        },
        t::INVERS => DrawOp::Invers {
            mask: mask(ctx, "drawable.invers.mask", u, 0)?,
        },
        t::ROP3 => DrawOp::Rop3(Rop3 {
            src: src_image(ctx, "drawable.rop3.src_bitmap", u.u64(0))?,
            src_area: u.rect(8),
            brush: brush(ctx, "drawable.rop3.brush", u, 24)?,
            rop3: u.u8(44),
            scale_mode: u.u8(45),
            mask: mask(ctx, "drawable.rop3.mask", u, 46)?,
        })
        .checked_src()?,
        t::TRANSPARENT => DrawOp::Transparent(Transparent {
            src: src_image(ctx, "drawable.transparent.src_bitmap", u.u64(0))?,
            src_area: u.rect(8),
            src_color: u.u32(24),
            true_color: u.u32(28),
        })
        .checked_src()?,
        t::ALPHA_BLEND => DrawOp::AlphaBlend(AlphaBlend {
            alpha_flags: u.u16(0),
            alpha: u.u8(2),
            src: src_image(ctx, "drawable.alpha_blend.src_bitmap", u.u64(3))?,
            src_area: u.rect(11),
        })
        .checked_src()?,
        t::STROKE => DrawOp::Stroke(stroke::parse(ctx, u)?),
        t::TEXT => DrawOp::Text(text::parse(ctx, u)?),
        t::COMPOSITE => DrawOp::Composite(composite::parse(ctx, u)?),
        other => return Err(ParseError::invalid("drawable.type", other)),
    })
}

fn copy(ctx: &Ctx<'_, '_>, what: &'static str, u: Fields<'_>) -> Result<CopyOp, ParseError> {
    let src = src_image(ctx, what, u.u64(0))?;
    let src_area = u.rect(8);
    check_src_area(&src, src_area)?;
    Ok(CopyOp {
        src,
        src_area,
        rop_descriptor: u.u16(24),
        scale_mode: u.u8(26),
        mask: mask(ctx, what, u, 27)?,
    })
}

/// The source area must be ordered, non-negative, and inside a bitmap source.
fn check_src_area(src: &Image, area: Rect) -> Result<(), ParseError> {
    let ok = match src {
        Image::Bitmap(b) => area.is_within(b.width, b.height),
        _ => area.is_ordered() && area.left >= 0 && area.top >= 0,
    };
    if !ok {
        return Err(ParseError::InvalidRect {
            what: "drawable src_area (outside the source or inverted)",
            top: area.top,
            left: area.left,
            bottom: area.bottom,
            right: area.right,
        });
    }
    Ok(())
}

impl DrawOp {
    /// Every image the operation references: sources, pattern brushes and masks
    /// (for COMPOSITE, its source and mask images).
    pub fn images(&self) -> Vec<&Image> {
        let mut out = Vec::new();
        let (src, brush, mask) = match self {
            DrawOp::Stroke(s) => (None, Some(&s.brush), &None),
            DrawOp::Text(t) => {
                // Two brushes, where the other ops have at most one.
                for brush in [&t.fore_brush, &t.back_brush] {
                    if let Brush::Pattern { image, .. } = brush {
                        out.push(image);
                    }
                }
                (None, None, &None)
            }
            DrawOp::Composite(c) => {
                out.push(&c.src);
                out.extend(&c.mask);
                (None, None, &None)
            }
            DrawOp::Fill(f) => (None, Some(&f.brush), &f.mask),
            DrawOp::Opaque(o) => (Some(&o.src), Some(&o.brush), &o.mask),
            DrawOp::Copy(c) | DrawOp::Blend(c) => (Some(&c.src), None, &c.mask),
            DrawOp::Blackness { mask } | DrawOp::Whiteness { mask } | DrawOp::Invers { mask } => {
                (None, None, mask)
            }
            DrawOp::Rop3(r) => (Some(&r.src), Some(&r.brush), &r.mask),
            DrawOp::Transparent(t) => (Some(&t.src), None, &None),
            DrawOp::AlphaBlend(a) => (Some(&a.src), None, &None),
            DrawOp::Nop | DrawOp::CopyBits { .. } | DrawOp::Unsupported { .. } => (None, None, &None),
        };
        out.extend(src);
        if let Some(Brush::Pattern { image, .. }) = brush {
            out.push(image);
        }
        if let Some(m) = mask {
            out.push(&m.image);
        }
        out
    }

    /// [`images`](Self::images), to change them (to copy rows the parser
    /// left in guest memory into their bitmaps, say).
    pub fn images_mut(&mut self) -> Vec<&mut Image> {
        fn pattern(brush: &mut Brush) -> Option<&mut Image> {
            match brush {
                Brush::Pattern { image, .. } => Some(image),
                _ => None,
            }
        }
        let mut out = Vec::new();
        match self {
            DrawOp::Stroke(s) => out.extend(pattern(&mut s.brush)),
            DrawOp::Text(t) => {
                out.extend(pattern(&mut t.fore_brush));
                out.extend(pattern(&mut t.back_brush));
            }
            DrawOp::Composite(c) => {
                out.push(&mut c.src);
                out.extend(c.mask.as_mut());
            }
            DrawOp::Fill(f) => {
                out.extend(pattern(&mut f.brush));
                out.extend(f.mask.as_mut().map(|m| &mut m.image));
            }
            DrawOp::Opaque(o) => {
                out.push(&mut o.src);
                out.extend(pattern(&mut o.brush));
                out.extend(o.mask.as_mut().map(|m| &mut m.image));
            }
            DrawOp::Copy(c) | DrawOp::Blend(c) => {
                out.push(&mut c.src);
                out.extend(c.mask.as_mut().map(|m| &mut m.image));
            }
            DrawOp::Blackness { mask } | DrawOp::Whiteness { mask } | DrawOp::Invers { mask } => {
                out.extend(mask.as_mut().map(|m| &mut m.image));
            }
            DrawOp::Rop3(r) => {
                out.push(&mut r.src);
                out.extend(pattern(&mut r.brush));
                out.extend(r.mask.as_mut().map(|m| &mut m.image));
            }
            DrawOp::Transparent(t) => out.push(&mut t.src),
            DrawOp::AlphaBlend(a) => out.push(&mut a.src),
            DrawOp::Nop | DrawOp::CopyBits { .. } | DrawOp::Unsupported { .. } => {}
        }
        out
    }

    /// Applies [`check_src_area`] to ops with a source image.
    fn checked_src(self) -> Result<Self, ParseError> {
        match &self {
            DrawOp::Opaque(o) => check_src_area(&o.src, o.src_area)?,
            DrawOp::Rop3(o) => check_src_area(&o.src, o.src_area)?,
            DrawOp::Transparent(o) => check_src_area(&o.src, o.src_area)?,
            DrawOp::AlphaBlend(o) => check_src_area(&o.src, o.src_area)?,
            _ => {}
        }
        Ok(self)
    }
}

/// A source image: a null pointer is refused.
pub(super) fn src_image(ctx: &Ctx<'_, '_>, what: &'static str, phys: u64) -> Result<Image, ParseError> {
    if phys == 0 {
        return Err(ParseError::invalid(what, 0u64));
    }
    parse_image(ctx, what, phys, false)
}

/// The `QXLQMask` at `off`: `None` when its bitmap pointer is 0.
fn mask(
    ctx: &Ctx<'_, '_>,
    what: &'static str,
    u: Fields<'_>,
    off: usize,
) -> Result<Option<Mask>, ParseError> {
    let bitmap = u.u64(off + 9);
    if bitmap == 0 {
        return Ok(None);
    }
    Ok(Some(Mask {
        flags: u.u8(off),
        pos: u.point(off + 1),
        image: parse_image(ctx, what, bitmap, true)?,
    }))
}

/// The `QXLBrush` at `off`.
pub(super) fn brush(
    ctx: &Ctx<'_, '_>,
    what: &'static str,
    u: Fields<'_>,
    off: usize,
) -> Result<Brush, ParseError> {
    match u.u32(off) {
        0 => Ok(Brush::None),
        1 => {
            let color = u.u32(off + 4);
            Ok(Brush::Solid(if ctx.flags & QXL_COMMAND_FLAG_COMPAT_16BPP != 0 {
                color_16_to_32(color)
            } else {
                color
            }))
        }
        2 => Ok(Brush::Pattern {
            image: src_image(ctx, what, u.u64(off + 4))?,
            pos: u.point(off + 12),
        }),
        other => Err(ParseError::invalid(what, other)),
    }
}
