//! An owned xRGB pixel buffer with clipped drawing primitives.
//!
//! Every primitive clips to the canvas and to the current clip area, so callers
//! may draw at any coordinates (negative, past the edge) without checking: at
//! tiny picture sizes most of the card simply falls outside and is skipped.

use spice_server::{Frame, Rect};

/// A colour as `0x00RRGGBB`.
pub type Color = u32;

/// A rectangle in signed pixel coordinates; it may lie partly or wholly off the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Area {
    /// Left column.
    pub x: i32,
    /// Top row.
    pub y: i32,
    /// Width; never negative.
    pub w: i32,
    /// Height; never negative.
    pub h: i32,
}

impl Area {
    /// An area from position and size; negative sizes become empty.
    pub fn new(x: i32, y: i32, w: i32, h: i32) -> Self {
        Self {
            x,
            y,
            w: w.max(0),
            h: h.max(0),
        }
    }

    /// Whether it covers no pixel.
    pub fn is_empty(self) -> bool {
        self.w == 0 || self.h == 0
    }

    /// One past the last column.
    pub fn right(self) -> i32 {
        self.x.saturating_add(self.w)
    }

    /// One past the last row.
    pub fn bottom(self) -> i32 {
        self.y.saturating_add(self.h)
    }

    /// The pixels both areas cover (possibly empty).
    pub fn intersect(self, other: Area) -> Area {
        let x = self.x.max(other.x);
        let y = self.y.max(other.y);
        Area::new(
            x,
            y,
            self.right().min(other.right()) - x,
            self.bottom().min(other.bottom()) - y,
        )
    }

    /// Whether the two areas share at least one pixel.
    pub fn overlaps(self, other: Area) -> bool {
        !self.intersect(other).is_empty()
    }

    /// The smallest area covering both; an empty side is ignored.
    pub fn bounding(self, other: Area) -> Area {
        if self.is_empty() {
            return other;
        }
        if other.is_empty() {
            return self;
        }
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        Area::new(
            x,
            y,
            self.right().max(other.right()) - x,
            self.bottom().max(other.bottom()) - y,
        )
    }

    /// The same area as a server damage rectangle; callers clip to the canvas first
    /// so the coordinates are non-negative.
    pub fn to_rect(self) -> Rect {
        Rect::new(
            self.x.max(0) as u32,
            self.y.max(0) as u32,
            self.w as u32,
            self.h as u32,
        )
    }
}

/// A `width × height` xRGB framebuffer (bytes B, G, R, X per pixel), tightly packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    clip: Area,
}

impl Canvas {
    /// A black canvas. Sizes are expected to be at most the server's 16384 per side,
    /// which keeps every coordinate well inside `i32`.
    pub fn new(width: u32, height: u32) -> Self {
        let mut canvas = Self {
            width,
            height,
            pixels: vec![0; width as usize * height as usize * 4],
            clip: Area::default(),
        };
        canvas.reset_clip();
        canvas
    }

    /// The whole canvas as an area.
    pub fn bounds(&self) -> Area {
        Area::new(0, 0, self.width as i32, self.height as i32)
    }

    /// Restricts drawing to `area` (within the canvas) until the next clip change.
    pub fn set_clip(&mut self, area: Area) {
        self.clip = area.intersect(self.bounds());
    }

    /// The area drawing is currently restricted to.
    pub fn clip(&self) -> Area {
        self.clip
    }

    /// Allows drawing anywhere on the canvas again.
    pub fn reset_clip(&mut self) {
        self.clip = self.bounds();
    }

    /// The pixel at `(x, y)`, or `None` outside the canvas (for tests).
    #[cfg(test)]
    pub fn pixel(&self, x: i32, y: i32) -> Option<Color> {
        if !(Area::new(x, y, 1, 1)).overlaps(self.bounds()) {
            return None;
        }
        let i = self.offset(x, y);
        let p = &self.pixels[i..i + 4];
        Some(u32::from_le_bytes([p[0], p[1], p[2], 0]))
    }

    /// Fills `area` (clipped) with `color`.
    pub fn fill(&mut self, area: Area, color: Color) {
        let area = area.intersect(self.clip);
        if area.is_empty() {
            return;
        }
        // Little endian 0x00RRGGBB is exactly the B, G, R, X byte order of the surface.
        let px = color.to_le_bytes();
        for y in area.y..area.bottom() {
            let start = self.offset(area.x, y);
            let row = &mut self.pixels[start..start + area.w as usize * 4];
            for chunk in row.chunks_exact_mut(4) {
                chunk.copy_from_slice(&px);
            }
        }
    }

    /// Sets one pixel if it lies inside the clip.
    pub fn put(&mut self, x: i32, y: i32, color: Color) {
        self.fill(Area::new(x, y, 1, 1), color);
    }

    /// Copies `area` (clipped) from `src`, a canvas of the same size.
    pub fn copy_from(&mut self, src: &Canvas, area: Area) {
        debug_assert_eq!((src.width, src.height), (self.width, self.height));
        let area = area.intersect(self.clip).intersect(src.bounds());
        if area.is_empty() {
            return;
        }
        for y in area.y..area.bottom() {
            let start = self.offset(area.x, y);
            let end = start + area.w as usize * 4;
            self.pixels[start..end].copy_from_slice(&src.pixels[start..end]);
        }
    }

    /// The pixels as a frame for [`spice_server::DisplayHandle`].
    pub fn frame(&self) -> Frame<'_> {
        Frame {
            width: self.width,
            height: self.height,
            stride: self.width as usize * 4,
            data: &self.pixels,
        }
    }

    /// Byte offset of an in-bounds pixel.
    fn offset(&self, x: i32, y: i32) -> usize {
        (y as usize * self.width as usize + x as usize) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_clips_to_canvas_and_clip_area() {
        let mut c = Canvas::new(4, 3);
        c.fill(Area::new(-5, -5, 7, 7), 0x123456);
        assert_eq!(c.pixel(0, 0), Some(0x123456));
        assert_eq!(c.pixel(1, 1), Some(0x123456));
        assert_eq!(c.pixel(2, 2), Some(0));
        c.set_clip(Area::new(3, 0, 10, 1));
        c.fill(c.bounds(), 0xffffff);
        assert_eq!(c.pixel(3, 0), Some(0xffffff));
        assert_eq!(c.pixel(1, 0), Some(0x123456));
        assert_eq!(c.pixel(2, 0), Some(0));
        assert_eq!(c.pixel(3, 1), Some(0));
        assert_eq!(c.pixel(4, 0), None);
        assert_eq!(c.pixel(-1, 0), None);
    }

    #[test]
    fn bytes_are_bgrx() {
        let mut c = Canvas::new(1, 1);
        c.put(0, 0, 0x00aabbcc);
        assert_eq!(c.frame().data, &[0xcc, 0xbb, 0xaa, 0x00]);
    }

    #[test]
    fn copy_from_takes_only_the_area() {
        let mut src = Canvas::new(3, 3);
        src.fill(src.bounds(), 7);
        let mut dst = Canvas::new(3, 3);
        dst.copy_from(&src, Area::new(1, 1, 5, 1));
        assert_eq!(dst.pixel(1, 1), Some(7));
        assert_eq!(dst.pixel(2, 1), Some(7));
        assert_eq!(dst.pixel(0, 1), Some(0));
        assert_eq!(dst.pixel(1, 2), Some(0));
    }

    #[test]
    fn area_set_operations() {
        let a = Area::new(0, 0, 4, 4);
        let b = Area::new(2, 3, 4, 4);
        assert_eq!(a.intersect(b), Area::new(2, 3, 2, 1));
        assert_eq!(a.bounding(b), Area::new(0, 0, 6, 7));
        assert!(!a.overlaps(Area::new(4, 0, 1, 1)));
        assert_eq!(Area::new(0, 0, -3, 2), Area::new(0, 0, 0, 2));
        assert_eq!(Area::default().bounding(b), b);
    }
}
