//! The pixels an operation may touch: its bounding box, within the target,
//! cut by its clip rectangles and its mask.

use pixman::{Box32, Region32};
use spice_qxl::{Clip, Rect};

use crate::pixels;
use crate::surface::SurfaceRef;

/// A set of pixels of the target, as non-overlapping boxes.
#[derive(Clone)]
pub(crate) struct DrawRegion(Region32);

impl std::fmt::Debug for DrawRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.boxes().iter().map(|b| (b.x1, b.y1, b.x2, b.y2)))
            .finish()
    }
}

/// `rect` clipped to `[0, width) × [0, height)`, as a box (maybe empty).
pub(crate) fn clamp(rect: &Rect, width: u32, height: u32) -> Box32 {
    let c = |v: i32, max: u32| i64::from(v).clamp(0, i64::from(max)) as i32;
    Box32 {
        x1: c(rect.left, width),
        y1: c(rect.top, height),
        x2: c(rect.right, width),
        y2: c(rect.bottom, height),
    }
}

fn is_empty(b: &Box32) -> bool {
    b.x1 >= b.x2 || b.y1 >= b.y2
}

impl DrawRegion {
    /// `bbox ∩ clip`, within a `width × height` target.
    pub(crate) fn new(width: u32, height: u32, bbox: &Rect, clip: &Clip) -> Self {
        let bounds = clamp(bbox, width, height);
        let region = Self::from_boxes(&[bounds]);
        match clip {
            Clip::None => region,
            Clip::Rects(rects) => {
                let boxes: Vec<Box32> = rects.iter().map(|r| clamp(r, width, height)).collect();
                Self(region.0.intersect(&Self::from_boxes(&boxes).0))
            }
        }
    }

    /// The union of `boxes` (empty ones ignored).
    pub(crate) fn from_boxes(boxes: &[Box32]) -> Self {
        let boxes: Vec<Box32> = boxes.iter().filter(|b| !is_empty(b)).copied().collect();
        Self(Region32::init_rects(&boxes))
    }

    pub(crate) fn boxes(&self) -> &[Box32] {
        self.0.rectangles()
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.0.is_non_empty()
    }

    /// The smallest box holding the region (empty region: an empty box).
    pub(crate) fn extents(&self) -> Box32 {
        self.boxes().iter().fold(
            Box32 {
                x1: i32::MAX,
                y1: i32::MAX,
                x2: i32::MIN,
                y2: i32::MIN,
            },
            |e, b| Box32 {
                x1: e.x1.min(b.x1),
                y1: e.y1.min(b.y1),
                x2: e.x2.max(b.x2),
                y2: e.y2.max(b.y2),
            },
        )
    }

    pub(crate) fn intersect(&self, other: &DrawRegion) -> DrawRegion {
        Self(self.0.intersect(&other.0))
    }

    pub(crate) fn pixman(&self) -> &Region32 {
        &self.0
    }

    /// Keeps the pixels where `mask` (an A1 surface placed with its pixel
    /// `(0, 0)` at `origin` of the target) has a set bit, or a clear bit when
    /// `invert`; pixels outside the mask are dropped either way.
    pub(crate) fn intersect_mask(&mut self, mask: &SurfaceRef<'_>, origin: (i64, i64), invert: bool) {
        if self.is_empty() {
            return;
        }
        let e = self.extents();
        // Only the rows and columns of the mask under the region are scanned.
        let x0 = (i64::from(e.x1) - origin.0).clamp(0, i64::from(mask.width)) as u32;
        let x1 = (i64::from(e.x2) - origin.0).clamp(0, i64::from(mask.width)) as u32;
        let y0 = (i64::from(e.y1) - origin.1).clamp(0, i64::from(mask.height)) as u32;
        let y1 = (i64::from(e.y2) - origin.1).clamp(0, i64::from(mask.height)) as u32;
        let mut runs = Vec::new();
        for my in y0..y1 {
            let row = mask.row(my);
            let mut run_start = None;
            for mx in x0..=x1 {
                let on = mx < x1 && (pixels::get(row, 1, mx as usize) == 1) != invert;
                match (on, run_start) {
                    (true, None) => run_start = Some(mx),
                    (false, Some(start)) => {
                        // Within the target's extents, so the sums fit in i32.
                        runs.push(Box32 {
                            x1: (i64::from(start) + origin.0) as i32,
                            y1: (i64::from(my) + origin.1) as i32,
                            x2: (i64::from(mx) + origin.0) as i32,
                            y2: (i64::from(my) + origin.1 + 1) as i32,
                        });
                        run_start = None;
                    }
                    _ => {}
                }
            }
        }
        self.0 = self.0.intersect(&Self::from_boxes(&runs).0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::surface::{Format, Surface};

    fn rect(left: i32, top: i32, right: i32, bottom: i32) -> Rect {
        Rect {
            top,
            left,
            bottom,
            right,
        }
    }

    fn area(r: &DrawRegion) -> i64 {
        r.boxes()
            .iter()
            .map(|b| i64::from(b.x2 - b.x1) * i64::from(b.y2 - b.y1))
            .sum()
    }

    #[test]
    fn bbox_is_clamped_and_clipped() {
        let r = DrawRegion::new(100, 50, &rect(-10, -10, 1000, 1000), &Clip::None);
        assert_eq!(area(&r), 5000);
        let inverted = DrawRegion::new(100, 50, &rect(20, 20, 10, 10), &Clip::None);
        assert!(inverted.is_empty());
        let clip = Clip::Rects(vec![
            rect(0, 0, 10, 10),
            rect(5, 5, 15, 15),
            rect(90, 40, 200, 200),
        ]);
        let r = DrawRegion::new(100, 50, &rect(0, 0, 100, 50), &clip);
        assert_eq!(area(&r), 100 + 100 - 25 + 100);
    }

    #[test]
    fn masks_keep_set_bits_and_drop_what_they_do_not_cover() {
        let mut mask = Surface::new(4, 2, Format::A1).unwrap();
        mask.row_bytes_mut(0).unwrap()[0] = 0b1001;
        mask.row_bytes_mut(1).unwrap()[0] = 0b0110;
        let mut r = DrawRegion::new(100, 100, &rect(10, 10, 20, 20), &Clip::None);
        r.intersect_mask(&mask.view(), (12, 11), false);
        assert_eq!(area(&r), 4);
        assert!(r
            .boxes()
            .iter()
            .any(|b| (b.x1, b.y1, b.x2, b.y2) == (12, 11, 13, 12)));
        let mut inv = DrawRegion::new(100, 100, &rect(10, 10, 20, 20), &Clip::None);
        inv.intersect_mask(&mask.view(), (12, 11), true);
        assert_eq!(area(&inv), 4, "inverted within the mask, nothing outside it");
        assert!(inv
            .boxes()
            .iter()
            .any(|b| (b.x1, b.y1, b.x2, b.y2) == (13, 11, 15, 12)));
    }
}
