//! Damage accumulated while a client is behind: a short list of rectangles.
//!
//! The list stays small however much damage arrives, so memory is bounded:
//! rectangles that touch merge when that costs little extra area, and past
//! [`MAX_RECTS`] everything collapses into the bounding box.

/// Most rectangles kept before collapsing into one.
pub const MAX_RECTS: usize = 32;

/// A rectangle in surface pixels: `[x, x + width) × [y, y + height)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Rect {
    /// A rectangle from position and size.
    pub const fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        Self { x, y, width, height }
    }

    /// Whether it covers no pixel.
    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// One past the last column.
    pub fn right(&self) -> u64 {
        u64::from(self.x) + u64::from(self.width)
    }

    /// One past the last row.
    pub fn bottom(&self) -> u64 {
        u64::from(self.y) + u64::from(self.height)
    }

    /// Pixel count.
    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The part inside a `width × height` surface.
    pub fn clip(&self, width: u32, height: u32) -> Rect {
        let x = self.x.min(width);
        let y = self.y.min(height);
        let right = self.right().min(u64::from(width)) as u32;
        let bottom = self.bottom().min(u64::from(height)) as u32;
        Rect::new(x, y, right - x, bottom - y)
    }

    /// The wire `Rect` (top, left, bottom, right) of a rectangle within a
    /// surface (sides at most [`super::MAX_SIDE`], so every edge fits `i32`).
    pub(crate) fn to_wire(self) -> spice_proto::msg::Rect {
        spice_proto::msg::Rect::from_xywh(
            self.x as i32,
            self.y as i32,
            self.width as i32,
            self.height as i32,
        )
    }

    /// Smallest rectangle covering both.
    pub fn union(&self, other: &Rect) -> Rect {
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        let right = self.right().max(other.right());
        let bottom = self.bottom().max(other.bottom());
        Rect::new(
            x,
            y,
            (right - u64::from(x)) as u32,
            (bottom - u64::from(y)) as u32,
        )
    }

    /// Whether `other` lies entirely inside.
    pub fn contains(&self, other: &Rect) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.right() <= self.right()
            && other.bottom() <= self.bottom()
    }

    /// The pixels both cover, if any.
    pub fn intersection(&self, other: &Rect) -> Option<Rect> {
        let x = self.x.max(other.x);
        let y = self.y.max(other.y);
        let right = self.right().min(other.right());
        let bottom = self.bottom().min(other.bottom());
        (u64::from(x) < right && u64::from(y) < bottom).then(|| {
            Rect::new(
                x,
                y,
                (right - u64::from(x)) as u32,
                (bottom - u64::from(y)) as u32,
            )
        })
    }

    /// The parts of `self` outside `hole`: at most four rectangles (the
    /// bands above and below it, then the pieces left and right of it).
    pub(crate) fn minus(&self, hole: &Rect) -> Vec<Rect> {
        let Some(cut) = self.intersection(hole) else {
            return vec![*self];
        };
        let mut parts = Vec::with_capacity(4);
        let (top, bottom) = (self.y, cut.y + cut.height);
        parts.push(Rect::new(self.x, top, self.width, cut.y - top));
        parts.push(Rect::new(
            self.x,
            bottom,
            self.width,
            (self.bottom() - u64::from(bottom)) as u32,
        ));
        parts.push(Rect::new(self.x, cut.y, cut.x - self.x, cut.height));
        let right = cut.x + cut.width;
        parts.push(Rect::new(
            right,
            cut.y,
            (self.right() - u64::from(right)) as u32,
            cut.height,
        ));
        parts.retain(|r| !r.is_empty());
        parts
    }

    /// Whether the two overlap or share an edge.
    pub fn touches(&self, other: &Rect) -> bool {
        u64::from(self.x) <= other.right()
            && u64::from(other.x) <= self.right()
            && u64::from(self.y) <= other.bottom()
            && u64::from(other.y) <= self.bottom()
    }
}

/// Accumulated damage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Region {
    rects: Vec<Rect>,
    /// Merge only rectangles whose union covers little that neither did.
    tight: bool,
}

impl Region {
    /// No damage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing is damaged.
    pub fn is_empty(&self) -> bool {
        self.rects.is_empty()
    }

    /// The damaged rectangles (they may overlap).
    pub fn rects(&self) -> &[Rect] {
        &self.rects
    }

    /// Merge only rectangles whose union adds at most an eighth to their
    /// areas (instead of doubling them), for a client whose images may go
    /// JPEG: a merged rectangle is coded whole, and JPEG would blur the
    /// untouched pixels the merge took in.
    pub(crate) fn set_tight(&mut self, tight: bool) {
        self.tight = tight;
    }

    /// Adds a damaged rectangle.
    pub fn add(&mut self, rect: Rect) {
        if rect.is_empty() || self.rects.iter().any(|r| r.contains(&rect)) {
            return;
        }
        let mut merged = rect;
        // Absorb neighbours while the union wastes less than half of its
        // area (an eighth when tight).
        let (num, den) = if self.tight { (9, 8) } else { (2, 1) };
        loop {
            let candidate = self.rects.iter().position(|r| {
                r.touches(&merged) && {
                    let u = r.union(&merged);
                    (r.area() + merged.area()) * num >= u.area() * den
                }
            });
            match candidate {
                Some(i) => {
                    let r = self.rects.swap_remove(i);
                    merged = merged.union(&r);
                }
                None => break,
            }
        }
        self.rects.retain(|r| !merged.contains(r));
        self.rects.push(merged);
        if self.rects.len() > MAX_RECTS {
            let all = self.rects.iter().fold(self.rects[0], |acc, r| acc.union(r));
            self.rects.clear();
            self.rects.push(all);
        }
    }

    /// Takes everything, leaving no damage.
    pub fn take(&mut self) -> Vec<Rect> {
        std::mem::take(&mut self.rects)
    }

    /// Removes `hole` from the damage, when that takes at most
    /// [`MAX_RECTS`] rectangles; otherwise the damage stays as it was (more
    /// damage than needed is never wrong).
    pub(crate) fn subtract(&mut self, hole: &Rect) {
        if !self.rects.iter().any(|r| r.intersection(hole).is_some()) {
            return;
        }
        // Not through `add`: it would merge the pieces back around the hole.
        let parts: Vec<Rect> = self.rects.iter().flat_map(|r| r.minus(hole)).collect();
        if parts.len() <= MAX_RECTS {
            self.rects = parts;
        }
    }

    /// The damaged parts of `area` (they may overlap).
    pub(crate) fn within(&self, area: &Rect) -> Vec<Rect> {
        self.rects.iter().filter_map(|r| r.intersection(area)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rectangles meeting at a corner merge into their bounding box,
    /// unless the region is tight; side by side, they merge either way.
    #[test]
    fn a_tight_region_keeps_shapes_the_merge_would_pad() {
        let (a, b) = (Rect::new(0, 0, 100, 100), Rect::new(60, 60, 100, 100));
        let mut loose = Region::new();
        loose.add(a);
        loose.add(b);
        assert_eq!(loose.rects(), &[Rect::new(0, 0, 160, 160)]);
        let mut tight = Region::new();
        tight.set_tight(true);
        tight.add(a);
        tight.add(b);
        assert_eq!(tight.rects(), &[a, b]);
        tight.add(Rect::new(100, 0, 60, 50));
        tight.add(Rect::new(100, 0, 60, 60));
        assert!(
            tight.rects().contains(&Rect::new(100, 0, 60, 60)),
            "{:?}",
            tight.rects()
        );
        tight.add(Rect::new(0, 100, 60, 60));
        assert!(
            tight.rects().contains(&Rect::new(0, 100, 60, 60)),
            "{:?}",
            tight.rects()
        );
        tight.add(Rect::new(0, 160, 60, 20));
        assert!(
            tight.rects().contains(&Rect::new(0, 100, 60, 80)),
            "a rectangle adjoining a whole side merges: {:?}",
            tight.rects()
        );
    }

    #[test]
    fn intersection_and_difference() {
        let a = Rect::new(10, 10, 100, 50);
        let hole = Rect::new(30, 20, 20, 10);
        assert_eq!(a.intersection(&hole), Some(hole));
        assert_eq!(a.intersection(&Rect::new(110, 10, 5, 5)), None, "edges only");
        let parts = a.minus(&hole);
        assert_eq!(parts.iter().map(Rect::area).sum::<u64>(), a.area() - hole.area());
        assert!(parts
            .iter()
            .all(|p| a.contains(p) && p.intersection(&hole).is_none()));
        assert_eq!(a.minus(&Rect::new(0, 0, 500, 500)), vec![]);
        assert_eq!(a.minus(&Rect::new(200, 200, 5, 5)), vec![a]);
    }

    #[test]
    fn adjacent_rects_merge_and_contained_ones_vanish() {
        let mut r = Region::new();
        r.add(Rect::new(0, 0, 10, 10));
        r.add(Rect::new(10, 0, 10, 10));
        assert_eq!(r.rects(), &[Rect::new(0, 0, 20, 10)]);
        r.add(Rect::new(5, 5, 2, 2));
        assert_eq!(r.rects().len(), 1);
    }

    #[test]
    fn distant_rects_stay_apart() {
        let mut r = Region::new();
        r.add(Rect::new(0, 0, 4, 4));
        r.add(Rect::new(100, 100, 4, 4));
        assert_eq!(r.rects().len(), 2);
    }

    #[test]
    fn many_rects_collapse_to_bounded_count() {
        let mut r = Region::new();
        for i in 0..1000 {
            r.add(Rect::new(i * 7 % 500, i * 13 % 400, 1, 1));
            assert!(r.rects().len() <= MAX_RECTS);
        }
        let all = r.rects().iter().fold(r.rects()[0], |a, b| a.union(b));
        for i in 0..1000 {
            assert!(all.contains(&Rect::new(i * 7 % 500, i * 13 % 400, 1, 1)));
        }
    }

    #[test]
    fn clip_handles_overflowing_coordinates() {
        assert_eq!(
            Rect::new(u32::MAX, 5, u32::MAX, 10).clip(100, 100),
            Rect::new(100, 5, 0, 10)
        );
        assert_eq!(
            Rect::new(90, 90, 20, 20).clip(100, 100),
            Rect::new(90, 90, 10, 10)
        );
    }
}
