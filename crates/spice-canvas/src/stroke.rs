//! `QXL_DRAW_STROKE`: a path's outline drawn as X11 zero-width lines, as
//! spice-common's canvas draws it (with the X server's line code, `lines.c`).
//!
//! What C does, and so what this does:
//! - the line width, join and end styles are ignored: every stroke is a
//!   cosmetic, zero-width line (Windows' cosmetic pens, what the drivers
//!   send), endpoint-exclusive (`CapNotLast`);
//! - path points are rounded from 28.4 to whole pixels (halves down); a
//!   segment with `BEGIN` starts a new polyline at its first point, `END`
//!   ends it (`CLOSE` first goes back to the polyline's first point);
//!   Béziers are subdivided at their midpoints until they are flat to half
//!   a pixel, from the last point as rounded;
//! - solid lines follow X's Bresenham (the default octant bias), each
//!   segment drawn without its last pixel; a pixel two segments cross is
//!   drawn twice (which an XOR shows);
//! - styled lines use the dash lengths rounded to pixels (as bytes), the
//!   pattern rotated by one when it starts with a gap, and are drawn as X
//!   draws dashed thin lines: as dashed lines one pixel wide, each dash a
//!   parallelogram, joined by X's miter joins where a dash runs on through
//!   a vertex, each pixel once per polyline; gaps are never drawn
//!   (`back_mode` is unused, as in C);
//! - `fore_mode` is the raster operation of the brush onto the target.
//!
//! Differences from C:
//! - dashed lines: horizontal and vertical dashes and their joins are exact
//!   (the differential test against Debian's library draws them); a
//!   diagonal dash's edge pixels, and a join's at other angles, may differ
//!   where an edge passes exactly through a pixel centre (C steps edges in
//!   integers, this computes them in floating point); the dash phase at a
//!   segment's end is found by whole periods where it is out of sight (the
//!   same up to rounding);
//! - inputs on which C has no defined result are refused or bounded: an
//!   empty or all-zero dash pattern (C loops forever), a Bézier without a
//!   current point (C reads before its array: the curve is skipped), a
//!   closed path with no point (skipped), Béziers subdivided more than
//!   [`MAX_DEPTH`] times or paths flattened to more than [`MAX_POINTS`]
//!   points (C recurses without end on a curve whose ends meet);
//! - flatness is computed in 128 bits, where C's 64-bit products overflow on
//!   curves several thousand pixels long.

use spice_qxl::command::{line_flags, path_flags};
use spice_qxl::{Clip, PathSegment, PointFix, Stroke};

use crate::draw::{BrushOperand, Cx, Damage};
use crate::error::CanvasError;
use crate::pixels;
use crate::region::DrawRegion;
use crate::rop::{ropd, Rop};

/// Most points a path may flatten to (the parser's own limit on points).
const MAX_POINTS: usize = 1 << 20;
/// Most halvings of one Bézier curve.
const MAX_DEPTH: u32 = 16;

/// Renders `s` into the context's target.
pub(crate) fn draw(cx: &mut Cx<'_, '_>, clip: &Clip, s: &Stroke) -> Result<Damage, CanvasError> {
    let region = cx.region(clip, None)?;
    if region.is_empty() {
        return Ok(None);
    }
    let dashes = dash_pattern(s)?;
    let polylines = flatten(&s.path)?;
    let rop = Rop::from_descriptor(s.fore_mode, ropd::INVERS_BRUSH, ropd::INVERS_DEST);
    let brush = if rop.ignores_input() {
        BrushOperand::Solid(0)
    } else {
        cx.brush(&s.brush)?
    };
    let mut out = Painter {
        cx,
        region: &region,
        rop,
        brush,
        damage: None,
    };
    let e = region.extents();
    let view = Window {
        x0: e.x1.into(),
        y0: e.y1.into(),
        x1: e.x2.into(),
        y1: e.y2.into(),
    };
    let idempotent = rop.idempotent();
    for line in &polylines {
        match &dashes {
            None => zero_line(line, &view, &mut out),
            Some(d) => dashed_line(line, d, idempotent, &view, &mut out),
        }
    }
    Ok(out.damage.map(|(x0, y0, x1, y1)| spice_qxl::Rect {
        top: y0,
        left: x0,
        bottom: y1,
        right: x1,
    }))
}

/// The visible part of the target, `[x0, x1) × [y0, y1)`.
struct Window {
    x0: i64,
    y0: i64,
    x1: i64,
    y1: i64,
}

/// Applies the brush to pixels of the region, keeping the damage.
struct Painter<'p, 'c, 't> {
    cx: &'p mut Cx<'c, 't>,
    region: &'p DrawRegion,
    rop: Rop,
    brush: BrushOperand,
    damage: Option<(i32, i32, i32, i32)>,
}

impl Painter<'_, '_, '_> {
    fn pixel(&mut self, x: i64, y: i64) {
        let (Ok(xi), Ok(yi)) = (i32::try_from(x), i32::try_from(y)) else {
            return;
        };
        if self.region.pixman().contains_point(xi, yi).is_none() {
            return;
        }
        let target = &mut *self.cx.target;
        let bpp = target.format.bits_per_pixel();
        let start = yi as usize * target.stride;
        let row = &mut target.bits[start..start + target.stride];
        let d = pixels::get(row, bpp, xi as usize);
        pixels::set(row, bpp, xi as usize, self.rop.apply(self.brush.at(x, y), d));
        self.damage = Some(match self.damage {
            None => (xi, yi, xi + 1, yi + 1),
            Some((a, b, c, d)) => (a.min(xi), b.min(yi), c.max(xi + 1), d.max(yi + 1)),
        });
    }
}

/// 28.4 to whole pixels as C rounds: halves go down.
fn fix_to_int(v: i32) -> i64 {
    i64::from(v >> 4) + i64::from(v & 0xf > 8)
}

fn point(p: &PointFix) -> (i64, i64) {
    (fix_to_int(p.x), fix_to_int(p.y))
}

/// The path as polylines of whole pixels, as C builds them.
fn flatten(path: &[PathSegment]) -> Result<Vec<Vec<(i64, i64)>>, CanvasError> {
    let mut out = Vec::new();
    let mut line: Vec<(i64, i64)> = Vec::new();
    let mut total = 0usize;
    let push = |total: &mut usize, line: &mut Vec<(i64, i64)>, p: (i64, i64)| -> Result<(), CanvasError> {
        *total += 1;
        if *total > MAX_POINTS {
            return Err(CanvasError::Invalid("path (too many points once flattened)"));
        }
        line.push(p);
        Ok(())
    };
    for seg in path {
        let mut points = &seg.points[..];
        if seg.flags & path_flags::BEGIN != 0 {
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            if let Some((first, rest)) = points.split_first() {
                push(&mut total, &mut line, point(first))?;
                points = rest;
            }
        }
        if seg.flags & path_flags::BEZIER != 0 {
            if points.len() % 3 != 0 {
                // C gives up on the whole stroke here; what it drew stays.
                return Ok(out);
            }
            for curve in points.chunks_exact(3) {
                let Some(&(x, y)) = line.last() else { continue };
                let p0 = (x * 16, y * 16);
                let fix = |p: &PointFix| (i64::from(p.x), i64::from(p.y));
                let mut flat = Vec::new();
                subdivide(
                    [p0, fix(&curve[0]), fix(&curve[1]), fix(&curve[2])],
                    0,
                    &mut flat,
                    MAX_POINTS.saturating_sub(total) + 1,
                )?;
                for p in flat {
                    push(&mut total, &mut line, p)?;
                }
            }
        } else {
            for p in points {
                push(&mut total, &mut line, point(p))?;
            }
        }
        if seg.flags & path_flags::END != 0 {
            if seg.flags & path_flags::CLOSE != 0 {
                if let Some(&first) = line.first() {
                    push(&mut total, &mut line, first)?;
                }
            }
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
        }
    }
    if !line.is_empty() {
        out.push(line);
    }
    Ok(out)
}

/// Appends the rounded end points of the flat pieces of the cubic Bézier
/// `p` (28.4), halving it at its midpoints while its control points stray
/// more than half a pixel from the chord (C's test, in 128 bits).
fn subdivide(
    p: [(i64, i64); 4],
    depth: u32,
    out: &mut Vec<(i64, i64)>,
    budget: usize,
) -> Result<(), CanvasError> {
    let [p0, p1, p2, p3] = p;
    let dot = |a: (i64, i64), b: (i64, i64)| {
        (i128::from(a.0) * i128::from(b.0) + i128::from(a.1) * i128::from(b.1)) >> 4
    };
    let sub = |a: (i64, i64), b: (i64, i64)| (a.0 - b.0, a.1 - b.1);
    let (a, b, c) = (sub(p1, p0), sub(p3, p0), sub(p2, p3));
    let a2 = dot(a, a);
    let b2 = dot(b, b);
    let c2 = dot(c, c);
    let ab = dot(a, b);
    let cb = dot(c, sub(p0, p3));
    let h1 = (a2 * b2 - ab * ab) >> 3;
    let h2 = (c2 * b2 - cb * cb) >> 3;
    let round = |q: (i64, i64)| (round_fix(q.0), round_fix(q.1));
    if (h1 < b2 && h2 < b2) || depth >= MAX_DEPTH {
        if out.len() >= budget {
            return Err(CanvasError::Invalid("path (too many points once flattened)"));
        }
        out.push(round(p3));
        return Ok(());
    }
    // C halves with truncating integer division.
    let mid = |a: (i64, i64), b: (i64, i64)| ((a.0 + b.0) / 2, (a.1 + b.1) / 2);
    let p01 = mid(p0, p1);
    let p12 = mid(p1, p2);
    let p23 = mid(p2, p3);
    let p012 = mid(p01, p12);
    let p123 = mid(p12, p23);
    let p0123 = mid(p012, p123);
    subdivide([p0, p01, p012, p0123], depth + 1, out, budget)?;
    subdivide([p0123, p123, p23, p3], depth + 1, out, budget)
}

/// [`fix_to_int`] of a 28.4 value held in an `i64`.
fn round_fix(v: i64) -> i64 {
    (v >> 4) + i64::from(v & 0xf > 8)
}

/// The X octant bias (`OCTANT2 | OCTANT3 | OCTANT4 | OCTANT5`): whether a
/// line of this octant (`x decreasing << 2 | y decreasing << 1 | y major`)
/// steps on the minor axis one pixel later on an exact tie.
fn bias(x_decreasing: bool, y_decreasing: bool, y_major: bool) -> i64 {
    let octant = usize::from(x_decreasing) << 2 | usize::from(y_decreasing) << 1 | usize::from(y_major);
    const BIASED: [bool; 8] = [false, false, false, true, true, false, true, true];
    i64::from(BIASED[octant])
}

/// A zero-width solid polyline: each segment by Bresenham without its last
/// pixel, only its pixels inside `view` visited.
fn zero_line(points: &[(i64, i64)], view: &Window, out: &mut Painter<'_, '_, '_>) {
    for pair in points.windows(2) {
        let ((x1, y1), (x2, y2)) = (pair[0], pair[1]);
        let (dx, dy) = (x2 - x1, y2 - y1);
        let (adx, ady) = (dx.abs(), dy.abs());
        let sx = if dx < 0 { -1 } else { 1 };
        let sy = if dy < 0 { -1 } else { 1 };
        if adx > ady {
            // Pixel k: x1 + sx k, y1 + sy ⌊(2 ady k + adx - bias) / 2 adx⌋.
            let fix = bias(dx < 0, dy < 0, false);
            let minor = |k: i64| y1 + sy * (2 * ady * k + adx - fix).div_euclid(2 * adx);
            let ks = visible(x1, sx, adx, view.x0, view.x1, minor, sy, view.y0, view.y1);
            for k in ks {
                out.pixel(x1 + sx * k, minor(k));
            }
        } else if ady > 0 {
            let fix = bias(dx < 0, dy < 0, true);
            let minor = |k: i64| x1 + sx * (2 * adx * k + ady - fix).div_euclid(2 * ady);
            let ks = visible(y1, sy, ady, view.y0, view.y1, minor, sx, view.x0, view.x1);
            for k in ks {
                out.pixel(minor(k), y1 + sy * k);
            }
        }
    }
}

/// The steps `k` in `0..len` whose major coordinate `start + step k` lies in
/// `[lo, hi)` and whose minor coordinate `minor(k)` (monotonic, in the
/// direction `minor_step`) lies in `[mlo, mhi)`.
#[allow(clippy::too_many_arguments)]
fn visible(
    start: i64,
    step: i64,
    len: i64,
    lo: i64,
    hi: i64,
    minor: impl Fn(i64) -> i64,
    minor_step: i64,
    mlo: i64,
    mhi: i64,
) -> std::ops::Range<i64> {
    let (mut k0, mut k1) = if step > 0 {
        (lo - start, hi - start)
    } else {
        (start - hi + 1, start - lo + 1)
    };
    k0 = k0.max(0);
    k1 = k1.min(len);
    if k0 >= k1 {
        return 0..0;
    }
    // The first k at or after which the minor coordinate has reached the
    // window, then the first k at which it has left it.
    let inside_from = |k: i64| {
        let m = minor(k);
        if minor_step > 0 {
            m >= mlo
        } else {
            m < mhi
        }
    };
    let gone_at = |k: i64| {
        let m = minor(k);
        if minor_step > 0 {
            m >= mhi
        } else {
            m < mlo
        }
    };
    let first = |lo: i64, hi: i64, pred: &dyn Fn(i64) -> bool| {
        // Smallest k in [lo, hi) with pred(k) (pred monotone), else hi.
        let (mut a, mut b) = (lo, hi);
        while a < b {
            let m = a + (b - a) / 2;
            if pred(m) {
                b = m;
            } else {
                a = m + 1;
            }
        }
        a
    };
    let a = first(k0, k1, &inside_from);
    let b = first(a, k1, &gone_at);
    a..b
}

/// A dash pattern as C builds it.
struct Dashes {
    lengths: Vec<u8>,
    /// Sum of `lengths` (at least 1).
    period: i64,
    /// Where the pattern starts, from its beginning.
    offset: i64,
}

fn dash_pattern(s: &Stroke) -> Result<Option<Dashes>, CanvasError> {
    if s.attr.flags & line_flags::STYLED == 0 {
        return Ok(None);
    }
    // Pixels, kept as bytes as C keeps them.
    let mut lengths: Vec<u8> = s.attr.style.iter().map(|&v| fix_to_int(v) as u8).collect();
    let mut offset = 0;
    if s.attr.flags & line_flags::START_WITH_GAP != 0 && !lengths.is_empty() {
        lengths.rotate_left(1);
        offset = i64::from(lengths[0]);
    }
    let period: i64 = lengths.iter().map(|&l| i64::from(l)).sum();
    if period == 0 {
        return Err(CanvasError::Invalid("dash pattern (empty or all zero)"));
    }
    Ok(Some(Dashes {
        lengths,
        period,
        offset,
    }))
}

/// Where a dashed line is in its pattern: dash `index`, `remain` pixels of
/// it left.
#[derive(Clone, Copy)]
struct Phase {
    index: usize,
    remain: f64,
}

/// A dashed polyline, one pixel wide: each "on" dash a parallelogram filled
/// by X's rule (pixel centres inside, left and top edges included), with
/// X's miter joins where a dash goes on through a vertex (and at the
/// start of a closed polyline); every pixel once for the whole polyline.
fn dashed_line(
    points: &[(i64, i64)],
    d: &Dashes,
    idempotent: bool,
    view: &Window,
    out: &mut Painter<'_, '_, '_>,
) {
    let n = d.lengths.len();
    let len = |i: usize| f64::from(d.lengths[i]);
    // The starting phase: `offset` pixels into the pattern.
    let mut at = d.offset % d.period;
    let mut index = 0;
    while at >= i64::from(d.lengths[index]) {
        at -= i64::from(d.lengths[index]);
        index = (index + 1) % n;
    }
    let mut phase = Phase {
        index,
        remain: len(index) - at as f64,
    };
    let mut pixels: Vec<(i64, i64)> = Vec::new();
    // Pieces out of sight are skipped by whole periods, which leave the phase as it was.
    let margin = 2.0;
    let (wx0, wy0, wx1, wy1) = (
        view.x0 as f64 - margin,
        view.y0 as f64 - margin,
        view.x1 as f64 + margin,
        view.y1 as f64 + margin,
    );
    let period = d.period as f64;
    // X's bookkeeping for joins: the last segment's direction and whether
    // it ended inside an "on" dash, and the first segment's.
    let mut prev: Option<((i64, i64), bool)> = None;
    let mut first: Option<((i64, i64), bool)> = None;
    for pair in points.windows(2) {
        let ((x1, y1), (x2, y2)) = (pair[0], pair[1]);
        if (x1, y1) == (x2, y2) {
            continue;
        }
        let dir = (x2 - x1, y2 - y1);
        let start_on = phase.index % 2 == 0;
        if let Some((prev_dir, true)) = prev {
            if start_on {
                miter_join((x1, y1), prev_dir, dir, idempotent, view, &mut pixels);
            }
        }
        if first.is_none() {
            first = Some((dir, start_on));
        }
        let (dx, dy) = ((x2 - x1) as f64, (y2 - y1) as f64);
        let length = if dx == 0.0 {
            dy.abs()
        } else if dy == 0.0 {
            dx.abs()
        } else {
            dx.hypot(dy)
        };
        let (ta, tb) = chord_window(x1 as f64, y1 as f64, dx, dy, length, (wx0, wy0, wx1, wy1));
        let mut left = length;
        while left > phase.remain {
            let pos = length - left;
            let ahead = ta - pos - phase.remain;
            let past = pos - tb;
            let skip = if ahead > 2.0 * period {
                (ahead / period).floor() - 1.0
            } else if past > 0.0 && left - phase.remain > 2.0 * period {
                ((left - phase.remain) / period).floor() - 1.0
            } else {
                0.0
            };
            if skip >= 1.0 {
                left -= skip * period;
                continue;
            }
            if phase.index % 2 == 0 && pos + phase.remain >= ta && pos <= tb {
                piece(
                    (x1, y1),
                    (dx, dy),
                    length,
                    pos,
                    pos + phase.remain,
                    view,
                    &mut pixels,
                );
            }
            left -= phase.remain;
            phase.index = (phase.index + 1) % n;
            phase.remain = len(phase.index);
        }
        if phase.index % 2 == 0 && length - left <= tb {
            piece(
                (x1, y1),
                (dx, dy),
                length,
                length - left,
                length,
                view,
                &mut pixels,
            );
        }
        // C carries the rest of the dash to the next segment in whole pixels.
        let rest = (phase.remain - left).trunc();
        if rest == 0.0 {
            phase.index = (phase.index + 1) % n;
            phase.remain = len(phase.index);
        } else {
            phase.remain = rest;
        }
        // As X reckons it: inside dash `index` when part of it is left, else
        // just past the end of the one before (which wraps to "off" at the
        // pattern's start).
        let end_on = (phase.index % 2 == 1) ^ (rest != 0.0);
        prev = Some((dir, end_on));
    }
    if let (Some((last_dir, true)), Some((first_dir, true))) = (prev, first) {
        if points.len() > 2 && points.first() == points.last() {
            miter_join(points[0], last_dir, first_dir, idempotent, view, &mut pixels);
        }
    }
    pixels.sort_unstable();
    pixels.dedup();
    for (x, y) in pixels {
        out.pixel(x, y);
    }
}

/// The part `[ta, tb]` (distances from the start) of the segment from
/// `(x, y)` along `(dx, dy)` (of `length`) inside the window, or an empty
/// interval.
fn chord_window(x: f64, y: f64, dx: f64, dy: f64, length: f64, w: (f64, f64, f64, f64)) -> (f64, f64) {
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, d, lo, hi) in [(x, dx, w.0, w.2), (y, dy, w.1, w.3)] {
        if d == 0.0 {
            if p < lo || p > hi {
                return (1.0, 0.0);
            }
        } else {
            let (a, b) = ((lo - p) / d, (hi - p) / d);
            t0 = t0.max(a.min(b));
            t1 = t1.min(a.max(b));
        }
    }
    if t0 > t1 {
        return (1.0, 0.0);
    }
    (t0 * length, t1 * length)
}

/// Adds the pixels of the dash from `from` to `to` (distances along the
/// segment) of the one-pixel-wide segment at `start` along `(dx, dy)`.
fn piece(
    start: (i64, i64),
    (dx, dy): (f64, f64),
    length: f64,
    from: f64,
    to: f64,
    view: &Window,
    pixels: &mut Vec<(i64, i64)>,
) {
    let (ux, uy) = (dx / length, dy / length);
    let (nx, ny) = (uy * 0.5, -ux * 0.5);
    let at = |t: f64| (start.0 as f64 + ux * t, start.1 as f64 + uy * t);
    let (a, b) = (at(from), at(to));
    let quad = [
        (a.0 + nx, a.1 + ny),
        (b.0 + nx, b.1 + ny),
        (b.0 - nx, b.1 - ny),
        (a.0 - nx, a.1 - ny),
    ];
    fill_convex(&quad, view, pixels);
}

/// Adds the pixels of the convex polygon `poly` by X's rule: pixel centres
/// inside, left and top edges included.
fn fill_convex(poly: &[(f64, f64)], view: &Window, pixels: &mut Vec<(i64, i64)>) {
    let n = poly.len();
    let ymin = poly.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let ymax = poly.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let row0 = (ymin.ceil() as i64).max(view.y0);
    let row1 = (ymax.ceil() as i64).min(view.y1);
    for y in row0..row1 {
        let yf = y as f64;
        let (mut xl, mut xr) = (f64::INFINITY, f64::NEG_INFINITY);
        for i in 0..n {
            let (p, q) = (poly[i], poly[(i + 1) % n]);
            if (p.1 <= yf && yf <= q.1) || (q.1 <= yf && yf <= p.1) {
                let x = if p.1 == q.1 {
                    xl = xl.min(p.0.min(q.0));
                    p.0.max(q.0)
                } else {
                    p.0 + (yf - p.1) * (q.0 - p.0) / (q.1 - p.1)
                };
                xl = xl.min(x);
                xr = xr.max(x);
            }
        }
        if xl > xr {
            continue;
        }
        let c0 = (xl.ceil() as i64).max(view.x0);
        let c1 = (xr.ceil() as i64).min(view.x1);
        pixels.extend((c0..c1).map(|x| (x, y)));
    }
}

/// The miter limit of X's joins: 1 / sin²(11° / 2).
const SQSECANT: f64 = 108.856_472_512_142;

/// X's line face: a segment's end at a vertex, `(dx, dy)` pointing along
/// the segment away from the vertex, `(xa, ya)` its half-width offset.
#[derive(Clone, Copy)]
struct Face {
    dx: f64,
    dy: f64,
    xa: f64,
    ya: f64,
}

impl Face {
    /// The face at the start of a segment going `(dx, dy)`.
    fn leaving(dx: i64, dy: i64) -> Face {
        let r = 0.5 / (dx as f64).hypot(dy as f64);
        let (rdx, rdy) = (r * dx as f64, r * dy as f64);
        Face {
            dx: dx as f64,
            dy: dy as f64,
            xa: rdy,
            ya: -rdx,
        }
    }

    fn flipped(self) -> Face {
        Face {
            dx: -self.dx,
            dy: -self.dy,
            xa: -self.xa,
            ya: -self.ya,
        }
    }
}

/// The miter join X draws at `vertex` between a dash arriving along `prev`
/// and one leaving along `next` (`miLineJoin` for one-pixel-wide lines):
/// the polygon between the two outer corners and their miter point, or a
/// bevel past the miter limit. `idempotent` rops draw no join where one of
/// the lines already covers the vertex pixel, as in X.
fn miter_join(
    vertex: (i64, i64),
    prev: (i64, i64),
    next: (i64, i64),
    idempotent: bool,
    view: &Window,
    pixels: &mut Vec<(i64, i64)>,
) {
    let mut left = Face::leaving(next.0, next.1);
    // The face at the end of the segment that arrived: its start face,
    // turned round.
    let mut right = Face::leaving(prev.0, prev.1).flipped();
    let covered = |f: &Face| f.dx > 0.0 || (f.dx == 0.0 && f.dy > 0.0);
    if idempotent && (covered(&left) || covered(&right)) {
        return;
    }
    let denom = -left.dx * right.dy + right.dx * left.dy;
    if denom == 0.0 {
        return;
    }
    if denom > 0.0 {
        left = left.flipped();
    } else {
        right = right.flipped();
    }
    let my = (left.dy * (right.xa * right.dy - right.ya * right.dx)
        - right.dy * (left.xa * left.dy - left.ya * left.dx))
        / denom;
    let mx = if left.dy != 0.0 {
        left.xa + (my - left.ya) * left.dx / left.dy
    } else {
        right.xa + (my - right.ya) * right.dx / right.dy
    };
    let (vx, vy) = (vertex.0 as f64, vertex.1 as f64);
    let mut poly = vec![
        (vx + right.xa, vy + right.ya),
        (vx, vy),
        (vx + left.xa, vy + left.ya),
    ];
    if (mx * mx + my * my) * 4.0 <= SQSECANT {
        poly.push((vx + mx, vy + my));
    }
    fill_convex(&poly, view, pixels);
}

#[cfg(test)]
mod tests {
    use spice_qxl::command::{line_flags, path_flags};
    use spice_qxl::{Brush, DrawOp, LineAttr, PathSegment, PointFix, Stroke};

    use crate::rop::ropd;
    use crate::tests::{drawable, px, rect, Map};
    use crate::{draw, CanvasError, Format, Surface};

    const RED: u32 = 0x00ff_0000;

    fn p(x: i32, y: i32) -> PointFix {
        PointFix { x: x * 16, y: y * 16 }
    }

    fn stroke(path: Vec<PathSegment>, style: Option<(u8, Vec<i32>)>, fore_mode: u16) -> DrawOp {
        let (flags, style) = match style {
            Some((extra, s)) => (line_flags::STYLED | extra, s),
            None => (0, Vec::new()),
        };
        DrawOp::Stroke(Stroke {
            path,
            attr: LineAttr {
                flags,
                join_style: 0,
                end_style: 0,
                width: 0,
                miter_limit: 0,
                style,
            },
            brush: Brush::Solid(RED),
            fore_mode,
            back_mode: ropd::OP_PUT,
        })
    }

    fn polyline(points: Vec<PointFix>, flags: u32) -> Vec<PathSegment> {
        vec![PathSegment {
            flags: path_flags::BEGIN | path_flags::END | flags,
            points,
        }]
    }

    fn run(s: &mut Surface, op: DrawOp) -> Result<Option<spice_qxl::Rect>, CanvasError> {
        let (w, h) = (s.width() as i32, s.height() as i32);
        draw(
            &mut s.view_mut(),
            0,
            &drawable(rect(0, 0, w, h), op),
            &Map(vec![]),
        )
    }

    fn picture(s: &Surface) -> Vec<String> {
        (0..s.height())
            .map(|y| {
                (0..s.width())
                    .map(|x| match px(s, x, y) {
                        0 => '.',
                        RED => '#',
                        _ => '?',
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn horizontal_and_vertical_lines_leave_out_their_last_pixel() {
        let mut s = Surface::new(6, 5, Format::Xrgb32).unwrap();
        run(
            &mut s,
            stroke(polyline(vec![p(1, 1), p(5, 1)], 0), None, ropd::OP_PUT),
        )
        .unwrap();
        let d = run(
            &mut s,
            stroke(polyline(vec![p(0, 4), p(0, 1)], 0), None, ropd::OP_PUT),
        )
        .unwrap();
        assert_eq!(d, Some(rect(0, 2, 1, 5)));
        assert_eq!(picture(&s), ["......", ".####.", "#.....", "#.....", "#....."]);
    }

    #[test]
    fn diagonal_lines_follow_x_bresenham_with_its_bias() {
        // (0,0)→(4,2): x major, ticks at the exact half steps go up later
        // in octant 8 (no bias): y = ⌊(4k + 4) / 8⌋ = 0, 1, 1, 2.
        let mut s = Surface::new(5, 3, Format::Xrgb32).unwrap();
        run(
            &mut s,
            stroke(polyline(vec![p(0, 0), p(4, 2)], 0), None, ropd::OP_PUT),
        )
        .unwrap();
        assert_eq!(picture(&s), ["#....", ".##..", "...#."]);
        // The same line backwards is in octant 4 (biased): y from 2 down by
        // ⌊(4k + 3) / 8⌋ = 0, 0, 1, 1: x = 4, 3, 2, 1.
        let mut s = Surface::new(5, 3, Format::Xrgb32).unwrap();
        run(
            &mut s,
            stroke(polyline(vec![p(4, 2), p(0, 0)], 0), None, ropd::OP_PUT),
        )
        .unwrap();
        assert_eq!(picture(&s), [".....", ".##..", "...##"]);
        // 45°: one pixel per row.
        let mut s = Surface::new(4, 4, Format::Xrgb32).unwrap();
        run(
            &mut s,
            stroke(polyline(vec![p(0, 0), p(3, 3)], 0), None, ropd::OP_PUT),
        )
        .unwrap();
        assert_eq!(picture(&s), ["#...", ".#..", "..#.", "...."]);
    }

    #[test]
    fn a_closed_path_draws_every_corner_once() {
        // A square outline with XOR: a corner drawn twice would vanish.
        let mut s = Surface::new(5, 5, Format::Xrgb32).unwrap();
        let path = polyline(vec![p(1, 1), p(3, 1), p(3, 3), p(1, 3)], path_flags::CLOSE);
        run(&mut s, stroke(path, None, ropd::OP_XOR)).unwrap();
        assert_eq!(picture(&s), [".....", ".###.", ".#.#.", ".###.", "....."]);
    }

    #[test]
    fn dashed_lines_alternate_from_the_pattern() {
        // 2 on, 1 off, carried across the corner.
        let mut s = Surface::new(8, 4, Format::Xrgb32).unwrap();
        let path = polyline(vec![p(0, 0), p(7, 0), p(7, 4)], 0);
        run(&mut s, stroke(path, Some((0, vec![32, 16])), ropd::OP_PUT)).unwrap();
        // Row 0: x 0,1 on, 2 off, 3,4 on, 5 off, 6 on (the segment ends at 7,
        // one pixel into the dash); the vertical goes on with the dash's
        // other pixel (its first row, the corner), then one off, two on.
        assert_eq!(picture(&s), ["##.##.##", "........", ".......#", ".......#"]);
        // Starting with a gap: style[0] is the gap (2), then 1 on.
        let mut s = Surface::new(6, 1, Format::Xrgb32).unwrap();
        let path = polyline(vec![p(0, 0), p(6, 0)], 0);
        run(
            &mut s,
            stroke(
                path,
                Some((line_flags::START_WITH_GAP, vec![32, 16])),
                ropd::OP_PUT,
            ),
        )
        .unwrap();
        assert_eq!(picture(&s), ["..#..#"]);
    }

    #[test]
    fn beziers_flatten_to_their_ends_and_degenerate_input_is_bounded() {
        let mut s = Surface::new(8, 2, Format::Xrgb32).unwrap();
        // A straight "curve" is one line.
        let path = vec![PathSegment {
            flags: path_flags::BEGIN | path_flags::END | path_flags::BEZIER,
            points: vec![p(0, 0), p(2, 0), p(4, 0), p(6, 0)],
        }];
        run(&mut s, stroke(path, None, ropd::OP_PUT)).unwrap();
        assert_eq!(picture(&s), ["######..", "........"]);
        // A curve whose ends meet: C never stops halving it.
        let path = vec![PathSegment {
            flags: path_flags::BEGIN | path_flags::BEZIER,
            points: vec![p(1, 1), p(1, 1), p(1, 1), p(1, 1)],
        }];
        run(&mut s, stroke(path, None, ropd::OP_PUT)).unwrap();
        // Zero dashes: refused.
        let path = polyline(vec![p(0, 0), p(6, 0)], 0);
        assert!(run(&mut s, stroke(path, Some((0, vec![0, 4])), ropd::OP_PUT)).is_err());
        // Lines from far outside cost only their visible pixels.
        let far = polyline(
            vec![
                PointFix {
                    x: i32::MIN,
                    y: i32::MIN,
                },
                PointFix {
                    x: i32::MAX,
                    y: i32::MAX,
                },
            ],
            0,
        );
        run(&mut s, stroke(far.clone(), None, ropd::OP_PUT)).unwrap();
        run(&mut s, stroke(far, Some((0, vec![16, 16])), ropd::OP_PUT)).unwrap();
    }

    /// X's zero-width line loop as lines.c runs it on an unclipped segment
    /// (error terms stepped one pixel at a time), to check the closed form.
    fn stepped(x1: i64, y1: i64, x2: i64, y2: i64) -> Vec<(i64, i64)> {
        let (adx, ady) = ((x2 - x1).abs(), (y2 - y1).abs());
        let (sx, sy) = (if x2 < x1 { -1 } else { 1 }, if y2 < y1 { -1 } else { 1 });
        let y_major = adx <= ady;
        let fix = super::bias(x2 < x1, y2 < y1, y_major);
        let (major, minor) = if y_major { (ady, adx) } else { (adx, ady) };
        let (e1, e2) = (minor << 1, (minor << 1) - (major << 1));
        let mut e = e1 - major - fix - e1;
        let e3 = e2 - e1;
        let (mut x, mut y) = (x1, y1);
        let mut out = Vec::new();
        for _ in 0..major {
            out.push((x, y));
            e += e1;
            if y_major {
                if e >= 0 {
                    x += sx;
                    e += e3;
                }
                y += sy;
            } else {
                if e >= 0 {
                    y += sy;
                    e += e3;
                }
                x += sx;
            }
        }
        out
    }

    #[test]
    fn the_closed_form_and_window_match_the_stepped_loop() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: i64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % (2 * m as u64 + 1)) as i64 - m
        };
        for _ in 0..400 {
            let (x1, y1, x2, y2) = (next(20) + 8, next(20) + 6, next(20) + 8, next(20) + 6);
            let mut s = Surface::new(16, 12, Format::Xrgb32).unwrap();
            let path = polyline(vec![p(x1 as i32, y1 as i32), p(x2 as i32, y2 as i32)], 0);
            run(&mut s, stroke(path, None, ropd::OP_PUT)).unwrap();
            let mut expect = Surface::new(16, 12, Format::Xrgb32).unwrap();
            for (x, y) in stepped(x1, y1, x2, y2) {
                if (0..16).contains(&x) && (0..12).contains(&y) {
                    expect.row_bytes_mut(y as u32).unwrap()[x as usize * 4 + 2] = 0xff;
                }
            }
            assert_eq!(picture(&s), picture(&expect), "({x1},{y1}) to ({x2},{y2})");
        }
    }
}
