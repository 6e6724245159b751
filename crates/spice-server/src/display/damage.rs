//! What one client is missing of the picture: damaged areas, and the moves
//! (areas copied within the picture) it can make itself.
//!
//! A host that knows it copied an area — a QXL guest's `COPY_BITS` when a
//! window moves or a terminal scrolls, a Rust host's
//! [`DisplayHandle::copy_area`](super::DisplayHandle::copy_area) — lets the
//! client copy it too: a `COPY_BITS` of a few bytes instead of encoding,
//! sending and decoding the area again. The C server forwards a guest's
//! copies the same way.
//!
//! The invariant: outside `region`, the client's picture after it makes
//! the pending `moves` in order equals the host's picture. A move keeps it:
//! its destination then shows what the client had at the source, so the
//! destination is up to date except where the source was not, and those
//! parts travel with the move. Sans-IO; the display channel sends the
//! moves before any image of the frame.

use super::region::{Rect, Region};

/// Moves kept per client between two frames; past it a copy is sent as
/// damage (bounded memory whatever a guest issues).
pub(crate) const MAX_MOVES: usize = 256;

/// `dest` is filled from the same-sized area whose top-left is `(src_x, src_y)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Move {
    pub(crate) dest: Rect,
    pub(crate) src_x: u32,
    pub(crate) src_y: u32,
}

impl Move {
    /// The source area.
    pub(crate) fn src(&self) -> Rect {
        Rect::new(self.src_x, self.src_y, self.dest.width, self.dest.height)
    }

    /// Makes the move in packed 32-bit pixels `stride` bytes a row apart
    /// (both areas inside them).
    pub(crate) fn apply_to(&self, pixels: &mut [u8], stride: usize) {
        let row_bytes = self.dest.width as usize * 4;
        let copy = |pixels: &mut [u8], i: u32| {
            let from = (self.src_y + i) as usize * stride + self.src_x as usize * 4;
            let to = (self.dest.y + i) as usize * stride + self.dest.x as usize * 4;
            pixels.copy_within(from..from + row_bytes, to);
        };
        // Read every source row before it is overwritten.
        if self.src_y > self.dest.y {
            (0..self.dest.height).for_each(|i| copy(pixels, i));
        } else {
            (0..self.dest.height).rev().for_each(|i| copy(pixels, i));
        }
    }

    /// Where an area of the source lands.
    fn carry(&self, r: Rect) -> Rect {
        Rect::new(
            r.x - self.src_x + self.dest.x,
            r.y - self.src_y + self.dest.y,
            r.width,
            r.height,
        )
    }
}

/// A client's pending damage and moves.
#[derive(Debug, Default)]
pub(crate) struct ClientDamage {
    /// Areas the client must get as images.
    pub(crate) region: Region,
    /// Copies the client makes first, oldest first.
    moves: Vec<Move>,
}

impl ClientDamage {
    /// The host drew `rect`.
    pub(crate) fn add(&mut self, rect: Rect) {
        self.region.add(rect);
    }

    /// The client shows lossy pixels in `area` (a stream's) that must go
    /// again: moves that touch it are dropped, and it becomes damage.
    pub(crate) fn add_lossy(&mut self, area: Rect) {
        for dest in self.drop_moves_touching(&area) {
            self.region.add(dest);
        }
        self.region.add(area);
    }

    /// The host copied `mv.src()` to `mv.dest` (both inside the picture).
    pub(crate) fn record_move(&mut self, mv: Move) {
        if self.moves.len() >= MAX_MOVES {
            self.region.add(mv.dest);
            return;
        }
        let stale: Vec<Rect> = self
            .region
            .within(&mv.src())
            .into_iter()
            .map(|r| mv.carry(r))
            .collect();
        self.region.subtract(&mv.dest);
        for r in stale {
            self.region.add(r);
        }
        self.moves.push(mv);
    }

    /// Whether there is nothing to send.
    pub(crate) fn is_empty(&self) -> bool {
        self.region.is_empty() && self.moves.is_empty()
    }

    /// Takes the pending moves, oldest first.
    pub(crate) fn take_moves(&mut self) -> Vec<Move> {
        std::mem::take(&mut self.moves)
    }

    /// The client will not make `dropped` (a tail of the moves taken): the
    /// areas they would have written become damage.
    #[cfg(test)]
    pub(crate) fn drop_moves(&mut self, dropped: &[Move]) {
        for mv in dropped {
            self.region.add(mv.dest);
        }
    }

    /// Drops the moves from the first one that reads or writes `area` on
    /// (the client shows lossy pixels there, which must neither spread nor
    /// be overwritten by a copy the stream does not know of); returns the
    /// areas they would have written, which the caller makes damage.
    pub(crate) fn drop_moves_touching(&mut self, area: &Rect) -> Vec<Rect> {
        let touches =
            |mv: &Move| mv.dest.intersection(area).is_some() || mv.src().intersection(area).is_some();
        let Some(first) = self.moves.iter().position(touches) else {
            return Vec::new();
        };
        self.moves.drain(first..).map(|mv| mv.dest).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny picture as one value per pixel, to check the invariant.
    #[derive(Clone, PartialEq, Eq, Debug)]
    struct Picture(Vec<Vec<u32>>);

    impl Picture {
        fn new(w: usize, h: usize) -> Self {
            Self(
                (0..h)
                    .map(|y| (0..w).map(|x| (y * w + x) as u32).collect())
                    .collect(),
            )
        }
        fn copy(&mut self, mv: &Move) {
            let before = self.0.clone();
            for y in 0..mv.dest.height {
                for x in 0..mv.dest.width {
                    self.0[(mv.dest.y + y) as usize][(mv.dest.x + x) as usize] =
                        before[(mv.src_y + y) as usize][(mv.src_x + x) as usize];
                }
            }
        }
        fn fill(&mut self, r: Rect, v: u32) {
            for y in r.y..r.y + r.height {
                for x in r.x..r.x + r.width {
                    self.0[y as usize][x as usize] = v;
                }
            }
        }
        fn inside(region: &Region, x: u32, y: u32) -> bool {
            region.rects().iter().any(|r| r.contains(&Rect::new(x, y, 1, 1)))
        }
    }

    fn mv(src_x: u32, src_y: u32, x: u32, y: u32, w: u32, h: u32) -> Move {
        Move {
            dest: Rect::new(x, y, w, h),
            src_x,
            src_y,
        }
    }

    /// Host and client start equal; the host draws and copies; the client
    /// makes the moves: outside the damage, the two agree.
    fn check(steps: &[Result<Move, (Rect, u32)>], dropped_from: Option<usize>) {
        let (w, h) = (40, 30);
        let mut host = Picture::new(w, h);
        let mut client = host.clone();
        let mut damage = ClientDamage::default();
        for step in steps {
            match step {
                Ok(m) => {
                    host.copy(m);
                    damage.record_move(*m);
                }
                Err((r, v)) => {
                    host.fill(*r, *v);
                    damage.add(*r);
                }
            }
        }
        let moves = damage.take_moves();
        let keep = dropped_from.unwrap_or(moves.len()).min(moves.len());
        for m in &moves[..keep] {
            client.copy(m);
        }
        damage.drop_moves(&moves[keep..]);
        for y in 0..h as u32 {
            for x in 0..w as u32 {
                if !Picture::inside(&damage.region, x, y) {
                    assert_eq!(
                        host.0[y as usize][x as usize], client.0[y as usize][x as usize],
                        "pixel ({x}, {y}) outside the damage differs; damage {:?}, moves {moves:?}",
                        damage.region
                    );
                }
            }
        }
    }

    #[test]
    fn a_move_of_clean_pixels_leaves_no_damage() {
        let mut damage = ClientDamage::default();
        damage.record_move(mv(0, 10, 0, 0, 40, 20));
        assert!(damage.region.is_empty());
        assert_eq!(damage.take_moves().len(), 1);
        assert!(damage.is_empty());
    }

    #[test]
    fn a_scrolling_terminal_keeps_its_new_line_as_damage_moving_with_the_text() {
        // Scroll up a line, draw the new bottom line; three times a frame.
        let line = |v| Err((Rect::new(0, 24, 40, 6), v));
        let scroll = Ok(mv(0, 6, 0, 0, 40, 24));
        let steps = [scroll, line(1000), scroll, line(1001), scroll, line(1002)];
        check(&steps, None);
        let mut damage = ClientDamage::default();
        for step in &steps {
            match step {
                Ok(m) => damage.record_move(*m),
                Err((r, _)) => damage.add(*r),
            }
        }
        // The new lines, carried up by the later scrolls; never the whole screen.
        let covered: u64 = damage.region.rects().iter().map(Rect::area).sum();
        assert!(covered <= 40 * 18, "{:?}", damage.region);
        assert_eq!(damage.take_moves().len(), 3);
    }

    #[test]
    fn moves_of_stale_or_overlapping_areas_and_dropped_tails_keep_the_invariant() {
        let cases: Vec<Vec<Result<Move, (Rect, u32)>>> = vec![
            // Draw, then move the drawing elsewhere (a window dragged).
            vec![Err((Rect::new(2, 2, 10, 10), 7)), Ok(mv(2, 2, 20, 15, 10, 10))],
            // Overlapping moves in every direction.
            vec![
                Ok(mv(5, 5, 8, 3, 20, 15)),
                Ok(mv(8, 3, 2, 9, 20, 15)),
                Err((Rect::new(0, 0, 5, 5), 9)),
                Ok(mv(0, 0, 30, 20, 10, 10)),
            ],
            // A move whose source the previous drawing half covers.
            vec![Err((Rect::new(10, 10, 10, 4), 3)), Ok(mv(5, 8, 15, 20, 12, 8))],
        ];
        for case in &cases {
            for dropped in [None, Some(0), Some(1), Some(2)] {
                check(case, dropped);
            }
        }
    }

    #[test]
    fn moves_touching_a_lossy_area_are_dropped_from_the_first_on() {
        let mut damage = ClientDamage::default();
        damage.record_move(mv(0, 0, 30, 0, 10, 10));
        damage.record_move(mv(20, 20, 0, 20, 10, 10)); // reads the lossy area
        damage.record_move(mv(0, 0, 0, 10, 5, 5)); // after it: dropped too
        let lossy = Rect::new(15, 15, 10, 10);
        damage.add_lossy(lossy);
        assert_eq!(damage.take_moves(), vec![mv(0, 0, 30, 0, 10, 10)]);
        for area in [lossy, Rect::new(0, 20, 10, 10), Rect::new(0, 10, 5, 5)] {
            assert!(
                damage.region.rects().iter().any(|r| r.contains(&area)),
                "{area:?} is damage"
            );
        }
    }

    #[test]
    fn past_the_cap_copies_become_damage() {
        let mut damage = ClientDamage::default();
        for i in 0..MAX_MOVES + 10 {
            damage.record_move(mv(0, 1, (i % 3) as u32, 0, 4, 4));
        }
        assert_eq!(damage.take_moves().len(), MAX_MOVES);
        assert!(!damage.region.is_empty(), "the copies past the cap are damage");
    }
}
