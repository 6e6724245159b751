//! `QXL_DRAW_STROKE`: `QXLStroke`, its `QXLPath` and `QXLLineAttr`.
//!
//! Layouts (packed, `spice/qxl_dev.h`): `QXLStroke { QXLPHYSICAL path;
//! QXLLineAttr attr; QXLBrush brush; u16 fore_mode, back_mode }` (52 bytes);
//! `QXLLineAttr { u8 flags, join_style, end_style, style_nseg; QXLFIXED width,
//! miter_limit; QXLPHYSICAL style }` (20 bytes); `QXLPath { u32 data_size;
//! QXLDataChunk chunk }`, whose chunks hold `QXLPathSeg { u32 flags; u32 count;
//! QXLPointFix points[count] }` back to back.

use super::draw::brush;
use super::Brush;
use crate::error::ParseError;
use crate::guest::{ChunkRef, Ctx, ParseLimits};
use crate::layout::Fields;

/// `sizeof(QXLPath)` up to and including its embedded `QXLDataChunk` header.
const PATH_SIZE: usize = 24;
/// `sizeof(QXLPathSeg)` without its points.
const SEG_HEADER_SIZE: usize = 8;
/// `sizeof(QXLPointFix)`.
const POINT_FIX_SIZE: usize = 8;
/// Offsets in `QXLStroke`.
const ATTR: usize = 8;
const BRUSH: usize = 28;
const FORE_MODE: usize = 48;
const BACK_MODE: usize = 50;

/// `SPICE_PATH_*`: flags of a [`PathSegment`].
pub mod path_flags {
    /// `SPICE_PATH_BEGIN`: the segment starts a new subpath.
    pub const BEGIN: u32 = 1 << 0;
    /// `SPICE_PATH_END`: the segment ends its subpath.
    pub const END: u32 = 1 << 1;
    /// `SPICE_PATH_CLOSE`: the subpath is closed back to its first point.
    pub const CLOSE: u32 = 1 << 3;
    /// `SPICE_PATH_BEZIER`: the points are cubic Bézier control points, three per curve.
    pub const BEZIER: u32 = 1 << 4;
}

/// `SPICE_LINE_FLAGS_*`: [`LineAttr::flags`].
pub mod line_flags {
    /// `SPICE_LINE_FLAGS_START_WITH_GAP`: the dash pattern starts with a gap.
    pub const START_WITH_GAP: u8 = 1 << 2;
    /// `SPICE_LINE_FLAGS_STYLED`: the line is dashed by [`LineAttr::style`](super::LineAttr::style).
    pub const STYLED: u8 = 1 << 3;
}

/// `QXLPointFix`: a point in 28.4 fixed point (divide by 16 for pixels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PointFix {
    /// Column, 28.4 fixed point.
    pub x: i32,
    /// Row, 28.4 fixed point.
    pub y: i32,
}

/// One `QXLPathSeg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSegment {
    /// `SPICE_PATH_*` bits, see [`path_flags`] (raw, as the C server passes them on).
    pub flags: u32,
    /// The segment's points.
    pub points: Vec<PointFix>,
}

/// `QXLLineAttr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineAttr {
    /// `SPICE_LINE_FLAGS_*`, see [`line_flags`].
    pub flags: u8,
    /// `join_style` as the guest set it (the SPICE protocol does not carry it).
    pub join_style: u8,
    /// `end_style` as the guest set it (the SPICE protocol does not carry it).
    pub end_style: u8,
    /// Line width, 28.4 fixed point (the SPICE protocol does not carry it: lines are one pixel wide).
    pub width: i32,
    /// Miter limit, 28.4 fixed point (not carried by the SPICE protocol either).
    pub miter_limit: i32,
    /// Dash lengths in 28.4 fixed point (`style_nseg` of them, at most 255),
    /// when [`line_flags::STYLED`] is set; empty otherwise.
    pub style: Vec<i32>,
}

/// `QXLStroke`: draw the outline of a path with a brush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stroke {
    /// The path's segments, in order.
    pub path: Vec<PathSegment>,
    /// Line attributes.
    pub attr: LineAttr,
    /// What the line is drawn with.
    pub brush: Brush,
    /// `SPICE_ROPD_*` bits for the line's pixels.
    pub fore_mode: u16,
    /// `SPICE_ROPD_*` bits for the gaps of a styled line.
    pub back_mode: u16,
}

/// Parses the `QXLStroke` of the draw-type union `u`.
pub(super) fn parse(ctx: &Ctx<'_, '_>, u: Fields<'_>) -> Result<Stroke, ParseError> {
    let path = path(ctx, u.u64(0))?;
    let attr = line_attr(ctx, u)?;
    Ok(Stroke {
        path,
        attr,
        brush: brush(ctx, "drawable.stroke.brush", u, BRUSH)?,
        fore_mode: u.u16(FORE_MODE),
        back_mode: u.u16(BACK_MODE),
    })
}

fn path(ctx: &Ctx<'_, '_>, phys: u64) -> Result<Vec<PathSegment>, ParseError> {
    let what = "drawable.stroke.path";
    // The C server would dereference a null path; there is nothing to draw without one.
    if phys == 0 {
        return Err(ParseError::invalid(what, 0u64));
    }
    let (_, raw) = ctx.read_struct::<PATH_SIZE>(what, phys)?;
    let f = Fields(&raw);
    // Stricter than the C server, which ignores `data_size`: the drivers keep
    // it equal to the chunks' total, and a mismatch means a corrupt path.
    let data = ctx.gather_exact(what, ChunkRef::embedded(f, phys, 4), f.u32(0))?;
    segments(ctx.limits(), &data)
}

/// Splits the gathered path data into segments.
///
/// As in the C server, a segment starts only where more than its 8-byte
/// header remains: a trailing bare header (no room for a point) or fewer
/// stray bytes are ignored, but a `count` whose points overrun the data is
/// refused.
fn segments(limits: &ParseLimits, data: &[u8]) -> Result<Vec<PathSegment>, ParseError> {
    let mut out = Vec::new();
    let mut total_points = 0u64;
    let mut rest = data;
    while rest.len() > SEG_HEADER_SIZE {
        if out.len() as u64 >= u64::from(limits.max_path_segments) {
            return Err(ParseError::too_large(
                "drawable.stroke.path segments",
                out.len() as u64 + 1,
                limits.max_path_segments.into(),
            ));
        }
        let (header, body) = rest.split_at(SEG_HEADER_SIZE);
        let h = Fields(header);
        let count = u64::from(h.u32(4));
        let bytes = count * POINT_FIX_SIZE as u64;
        if bytes > body.len() as u64 {
            return Err(ParseError::SizeMismatch {
                what: "drawable.stroke.path segment points (count overruns the path data)",
                expected: bytes,
                actual: body.len() as u64,
            });
        }
        total_points += count;
        if total_points > u64::from(limits.max_path_points) {
            return Err(ParseError::too_large(
                "drawable.stroke.path points",
                total_points,
                limits.max_path_points.into(),
            ));
        }
        // `bytes <= body.len()`, so it fits a usize.
        let (points, next) = body.split_at(bytes as usize);
        out.push(PathSegment {
            flags: h.u32(0),
            points: points
                .chunks_exact(POINT_FIX_SIZE)
                .map(|p| {
                    let p = Fields(p);
                    PointFix {
                        x: p.i32(0),
                        y: p.i32(4),
                    }
                })
                .collect(),
        });
        rest = next;
    }
    Ok(out)
}

fn line_attr(ctx: &Ctx<'_, '_>, u: Fields<'_>) -> Result<LineAttr, ParseError> {
    let flags = u.u8(ATTR);
    // Only a styled line has dash lengths; the C server ignores the pointer otherwise.
    let style = if flags & line_flags::STYLED != 0 {
        let what = "drawable.stroke.attr.style";
        let phys = u.u64(ATTR + 12);
        if phys == 0 {
            return Err(ParseError::invalid(what, 0u64));
        }
        let nseg = u64::from(u.u8(ATTR + 3));
        let bytes = ctx.read_vec_at(what, phys, 0, nseg * 4)?;
        bytes.chunks_exact(4).map(|d| Fields(d).i32(0)).collect()
    } else {
        Vec::new()
    };
    Ok(LineAttr {
        flags,
        join_style: u.u8(ATTR + 1),
        end_style: u.u8(ATTR + 2),
        width: u.i32(ATTR + 4),
        miter_limit: u.i32(ATTR + 8),
        style,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u32, points: &[(i32, i32)]) -> Vec<u8> {
        let mut out = flags.to_le_bytes().to_vec();
        out.extend_from_slice(&(points.len() as u32).to_le_bytes());
        for &(x, y) in points {
            out.extend_from_slice(&x.to_le_bytes());
            out.extend_from_slice(&y.to_le_bytes());
        }
        out
    }

    #[test]
    fn splits_segments_and_ignores_a_trailing_bare_header() {
        let mut data = seg(path_flags::BEGIN, &[(16, 32), (48, 64)]);
        data.extend(seg(path_flags::END | path_flags::CLOSE, &[(-16, 0)]));
        data.extend(seg(0, &[]));
        let segs = segments(&ParseLimits::default(), &data).unwrap();
        assert_eq!(
            segs,
            [
                PathSegment {
                    flags: path_flags::BEGIN,
                    points: vec![PointFix { x: 16, y: 32 }, PointFix { x: 48, y: 64 }],
                },
                PathSegment {
                    flags: path_flags::END | path_flags::CLOSE,
                    points: vec![PointFix { x: -16, y: 0 }],
                },
            ]
        );
        assert_eq!(segments(&ParseLimits::default(), &[]).unwrap(), []);
        assert_eq!(segments(&ParseLimits::default(), &[1, 2, 3]).unwrap(), []);
    }

    #[test]
    fn refuses_overrunning_counts_and_limits() {
        let mut data = seg(0, &[(1, 1)]);
        data[4] = 2;
        assert!(matches!(
            segments(&ParseLimits::default(), &data),
            Err(ParseError::SizeMismatch {
                expected: 16,
                actual: 8,
                ..
            })
        ));
        // A count whose byte size overflows 32 bits.
        let mut huge = seg(0, &[(1, 1)]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            segments(&ParseLimits::default(), &huge),
            Err(ParseError::SizeMismatch { .. })
        ));
        let data = [seg(0, &[(1, 1), (2, 2)]), seg(0, &[(3, 3)])].concat();
        let few_points = ParseLimits {
            max_path_points: 2,
            ..ParseLimits::default()
        };
        assert_eq!(
            segments(&few_points, &data),
            Err(ParseError::too_large("drawable.stroke.path points", 3, 2))
        );
        let one_segment = ParseLimits {
            max_path_segments: 1,
            ..ParseLimits::default()
        };
        assert_eq!(
            segments(&one_segment, &data),
            Err(ParseError::too_large("drawable.stroke.path segments", 2, 1))
        );
    }
}
