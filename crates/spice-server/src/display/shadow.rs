//! What one client's surface holds: the pixels the server has sent it.
//!
//! Damage says where the host drew, not what changed: hosts report whole
//! windows, and merged damage covers rows nobody touched. Comparing the
//! damaged rows with what the client already has lets the channel skip rows
//! that did not change and find rows that only moved
//! ([`super::scroll`]), which then travel as a `COPY_BITS`.
//!
//! One packed copy of the surface per client: bounded by the surface size
//! the host published.
//!
//! Where an image went lossy (JPEG, WAN settings only), the shadow holds the
//! host's exact pixels, not the client's approximation: an identical redraw
//! is skipped and a scroll moves the client's lossy rows, which is what the
//! C server does with lossy areas too (it refreshes them only when a lossless
//! drawing depends on them).

use super::damage::Move;
use super::region::Rect;
use super::scroll::{find_vertical_move, row_hash, VerticalMove};
use super::Surface;

/// Unchanged rows between two changed bands shorter than this are sent
/// anyway: one image instead of two is cheaper than skipping a few rows.
/// Kept small on purpose: bands cut at the blank rows between lines of text
/// are single lines, which the pixmap cache recognises when a line shows
/// up again (a guest console's torn redraws re-show lines the client had);
/// merging them into bigger bands costs twice the bytes on a scrolling
/// Linux console.
const MIN_SKIPPED_ROWS: usize = 4;

/// The client's copy of the surface.
#[derive(Debug, Default)]
pub(crate) struct Shadow {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    /// The step of the moves found so far (the greatest common divisor of
    /// their offsets): content that scrolls tends to scroll by multiples of
    /// the same amount (a terminal by lines).
    last_offset: Option<isize>,
}

/// How to bring a damaged rectangle of the client up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Rows to copy within the client's surface first (a scroll).
    pub(crate) moved: Option<Move>,
    /// Then the bands to send as images, top to bottom.
    pub(crate) bands: Vec<Rect>,
}

impl Shadow {
    /// The client now has the whole of `surface`.
    pub(crate) fn reset(&mut self, surface: &Surface) {
        self.width = surface.width;
        self.height = surface.height;
        self.pixels.clear();
        self.pixels.extend_from_slice(&surface.pixels);
    }

    /// Whether a few pixels of each row, old and `new_row`, leave room for
    /// a vertical move in `rect` (see [`super::scroll::may_find_vertical_move`]).
    fn samples_may_move<'a>(&self, rect: Rect, new_row: impl Fn(u32) -> &'a [u8], changed: &[bool]) -> bool {
        use super::scroll::{may_find_vertical_move, row_sample};
        let old: Vec<u64> = (0..rect.height)
            .map(|i| row_sample(self.row(rect.y + i, rect.x, rect.width)))
            .collect();
        let new: Vec<u64> = (0..rect.height)
            .map(|i| row_sample(new_row(rect.y + i)))
            .collect();
        may_find_vertical_move(&old, &new, changed)
    }

    fn row(&self, y: u32, x: u32, width: u32) -> &[u8] {
        let start = (y as usize * self.width as usize + x as usize) * 4;
        &self.pixels[start..start + width as usize * 4]
    }

    /// The client now has the packed pixels `data` in `rect`.
    pub(crate) fn store(&mut self, rect: Rect, data: &[u8]) {
        if !self.holds(rect) {
            return;
        }
        let row_bytes = rect.width as usize * 4;
        for (i, src) in data
            .chunks_exact(row_bytes)
            .take(rect.height as usize)
            .enumerate()
        {
            let start = ((rect.y as usize + i) * self.width as usize + rect.x as usize) * 4;
            self.pixels[start..start + row_bytes].copy_from_slice(src);
        }
    }

    /// The client shows something unknown in `rect` (lossy video frames):
    /// fills it with a pattern that no row of a real picture is expected to
    /// repeat, so every row there counts as changed and none is used as the
    /// source of a move.
    pub(crate) fn forget(&mut self, rect: Rect) {
        if !self.holds(rect) {
            return;
        }
        for y in rect.y..rect.y + rect.height {
            let start = (y as usize * self.width as usize + rect.x as usize) * 4;
            let row = &mut self.pixels[start..start + rect.width as usize * 4];
            for (i, px) in row.chunks_exact_mut(4).enumerate() {
                let v = 0x9e37_79b9u32.wrapping_mul((i as u32) ^ (y << 16)) | 0x0100_0001;
                px.copy_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// The part of `band` (clipped to `surface`, which has the shadow's
    /// size) whose pixels differ from what the client has: the rows from
    /// the first to the last that differ, and the columns from the first to
    /// the last pixel that does; `None` when nothing differs. Without a
    /// matching shadow the band stays whole.
    pub(crate) fn changed_part(&self, surface: &Surface, band: Rect) -> Option<Rect> {
        if (surface.width, surface.height) != (self.width, self.height) || !self.holds(band) {
            return Some(band);
        }
        let stride = surface.stride();
        let row_bytes = band.width as usize * 4;
        // First and last row, first and last byte of a row, that differ.
        let mut rows: Option<(u32, u32)> = None;
        let mut columns: Option<(usize, usize)> = None;
        for y in band.y..band.y + band.height {
            let start = y as usize * stride + band.x as usize * 4;
            let new = &surface.pixels[start..start + row_bytes];
            let old = self.row(y, band.x, band.width);
            let Some(first) = first_difference(new, old) else {
                continue;
            };
            let last = last_difference(new, old).unwrap_or(first);
            rows = Some(rows.map_or((y, y), |(top, _)| (top, y)));
            columns = Some(columns.map_or((first, last), |(a, b)| (a.min(first), b.max(last))));
        }
        let ((top, bottom), (first, last)) = (rows?, columns?);
        let (left, right) = ((first / 4) as u32, (last / 4) as u32 + 1);
        Some(Rect::new(band.x + left, top, right - left, bottom + 1 - top))
    }

    /// The client made `moved`.
    pub(crate) fn apply(&mut self, moved: Move) {
        if self.holds(moved.dest) && self.holds(moved.src()) {
            moved.apply_to(&mut self.pixels, self.width as usize * 4);
        }
    }

    fn holds(&self, rect: Rect) -> bool {
        !rect.is_empty()
            && rect.right() <= u64::from(self.width)
            && rect.bottom() <= u64::from(self.height)
            && self.pixels.len() == self.width as usize * self.height as usize * 4
    }

    /// The longest run of rows of `rect` whose new content is the client's
    /// content `offset` rows further down, as `(first, len)`.
    fn run_at_offset(&self, surface: &Surface, rect: Rect, offset: isize) -> (usize, usize) {
        let stride = surface.stride();
        let rows = rect.height as isize;
        let (mut best, mut current) = ((0, 0), (0, 0));
        for i in 0..rows {
            let src = i + offset;
            let start = (rect.y as isize + i) as usize * stride + rect.x as usize * 4;
            let new = &surface.pixels[start..start + rect.width as usize * 4];
            let same = (0..rows).contains(&src)
                && new == self.row((rect.y as isize + src) as u32, rect.x, rect.width);
            if same {
                if current.1 == 0 {
                    current.0 = i as usize;
                }
                current.1 += 1;
                if current.1 > best.1 {
                    best = current;
                }
            } else {
                current.1 = 0;
            }
        }
        best
    }

    /// Which rows of `rect` differ from what the client has, and the span of
    /// columns `(first, end)` (relative to `rect.x`) where any of them does.
    fn changes(&self, surface: &Surface, rect: Rect) -> (Vec<bool>, Option<(u32, u32)>) {
        let stride = surface.stride();
        let mut span: Option<(u32, u32)> = None;
        let stale = (0..rect.height)
            .map(|i| {
                let start = (rect.y + i) as usize * stride + rect.x as usize * 4;
                let new = &surface.pixels[start..start + rect.width as usize * 4];
                let old = self.row(rect.y + i, rect.x, rect.width);
                let Some(first) = first_difference(new, old) else {
                    return false;
                };
                // Only a difference past the span found so far can widen
                // it: the row's tail beyond it is all that is searched.
                let from = span.map_or(first, |(_, end)| (end as usize * 4).max(first));
                let last = last_difference(&new[from..], &old[from..]).map_or(first, |at| from + at);
                let (f, e) = ((first / 4) as u32, (last / 4) as u32 + 1);
                span = Some(span.map_or((f, e), |(a, b)| (a.min(f), b.max(e))));
                true
            })
            .collect();
        (stale, span)
    }

    /// How to bring `rect` (clipped to `surface`, which has the shadow's
    /// size) from what the client has to what `surface` shows.
    ///
    /// Only the columns that changed are looked at: damage that hosts report
    /// in tiles or whole windows includes still columns beside the content
    /// that scrolled, which would keep its rows from matching when moved.
    pub(crate) fn plan(&mut self, surface: &Surface, rect: Rect) -> Plan {
        let whole = Plan {
            moved: None,
            bands: vec![rect],
        };
        if (surface.width, surface.height) != (self.width, self.height) || !self.holds(rect) {
            return whole;
        }
        let (mut stale, span) = self.changes(surface, rect);
        let Some((first_col, end_col)) = span else {
            return Plan {
                moved: None,
                bands: Vec::new(),
            };
        };
        let rect = Rect::new(rect.x + first_col, rect.y, end_col - first_col, rect.height);
        let stride = surface.stride();
        let new_row = |y: u32| {
            let start = y as usize * stride + rect.x as usize * 4;
            &surface.pixels[start..start + rect.width as usize * 4]
        };
        let rows = rect.height as usize;
        // The last move's offset first, then its multiples (a terminal
        // scrolls by whole lines, one or several per frame): if one explains
        // most of the rectangle, no row needs hashing. A wrong guess costs
        // little, since rows that do not match differ early.
        if let Some(step) = self.last_offset.filter(|o| *o != 0) {
            let guesses = (1..=MAX_GUESSES)
                .map(|k| step * k)
                .take_while(|o| o.unsigned_abs() < rows);
            for offset in guesses {
                let (first, len) = self.run_at_offset(surface, rect, offset);
                if len >= super::scroll::MIN_MOVED_ROWS && len * 2 >= rows {
                    stale[first..first + len].iter_mut().for_each(|s| *s = false);
                    return Plan {
                        moved: Some(Move {
                            dest: Rect::new(rect.x, rect.y + first as u32, rect.width, len as u32),
                            src_x: rect.x,
                            src_y: (rect.y as isize + first as isize + offset) as u32,
                        }),
                        bands: bands_of(&stale, rect),
                    };
                }
            }
        }
        let mut moved = None;
        if stale.iter().filter(|s| **s).count() >= super::scroll::MIN_MOVED_ROWS
            && rows >= 2 * super::scroll::MIN_MOVED_ROWS
            && varied_rows(rows, new_row, rect.y)
            && self.samples_may_move(rect, new_row, &stale)
        {
            let old: Vec<u64> = (0..rect.height)
                .map(|i| row_hash(self.row(rect.y + i, rect.x, rect.width)))
                .collect();
            let new: Vec<u64> = (0..rect.height).map(|i| row_hash(new_row(rect.y + i))).collect();
            if let Some(VerticalMove { first, len, offset }) = find_vertical_move(&old, &new) {
                let src_first = (first as isize + offset) as usize;
                // Hashes point the way; the pixels decide.
                let exact = (0..len).all(|i| {
                    new_row(rect.y + (first + i) as u32)
                        == self.row(rect.y + (src_first + i) as u32, rect.x, rect.width)
                });
                if exact {
                    // Keep the common step of the moves seen (16 for a
                    // console whose frames scroll by 3 lines, then by 2).
                    self.last_offset = Some(match self.last_offset {
                        Some(step) if step != 0 && step.signum() == offset.signum() => {
                            gcd(step.unsigned_abs(), offset.unsigned_abs()) as isize * offset.signum()
                        }
                        _ => offset,
                    });
                    moved = Some(Move {
                        dest: Rect::new(rect.x, rect.y + first as u32, rect.width, len as u32),
                        src_x: rect.x,
                        src_y: rect.y + src_first as u32,
                    });
                    stale[first..first + len].iter_mut().for_each(|s| *s = false);
                }
            }
        }
        Plan {
            moved,
            bands: bands_of(&stale, rect),
        }
    }
}

/// Whether the `rows` rows from `first` (read by `row`) hold enough
/// different contents for a move to be found: each row voting for an
/// offset matches a different unique row of the old content, so a move
/// needs at least `MIN_MOVED_ROWS / 2` different new rows, hence as many
/// runs of equal consecutive rows. A fill (one colour, or a few bands of
/// colour) has fewer, and then no row is hashed. Differing rows usually
/// differ early, so varied content costs a few short compares.
fn varied_rows<'a>(rows: usize, row: impl Fn(u32) -> &'a [u8], first: u32) -> bool {
    let needed = super::scroll::MIN_MOVED_ROWS / 2;
    let mut runs = 1;
    for i in 1..rows as u32 {
        if row(first + i) != row(first + i - 1) {
            runs += 1;
            if runs >= needed {
                return true;
            }
        }
    }
    false
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Multiples of the last move's offset tried before hashing rows.
const MAX_GUESSES: isize = 8;

/// Bytes compared at a time before looking at single pixels.
const BLOCK: usize = 64;

/// The offset of the first byte where `a` and `b` (of equal length) differ.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at < a.len() {
        let end = (at + BLOCK).min(a.len());
        if a[at..end] != b[at..end] {
            return (at..end).find(|&i| a[i] != b[i]);
        }
        at = end;
    }
    None
}

/// The offset of the last byte where `a` and `b` (of equal length) differ.
fn last_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    let mut end = a.len();
    while end > 0 {
        let at = end.saturating_sub(BLOCK);
        if a[at..end] != b[at..end] {
            return (at..end).rev().find(|&i| a[i] != b[i]);
        }
        end = at;
    }
    None
}

/// The stale rows of `rect` as rectangles to send.
fn bands_of(stale: &[bool], rect: Rect) -> Vec<Rect> {
    stale_bands(stale, rect.height as usize)
        .into_iter()
        .map(|(start, end)| Rect::new(rect.x, rect.y + start as u32, rect.width, (end - start) as u32))
        .collect()
}

/// Runs of stale rows as `(start, end)`, joined across short gaps.
fn stale_bands(stale: &[bool], rows: usize) -> Vec<(usize, usize)> {
    let mut bands: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < rows {
        if !stale[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < rows && stale[i] {
            i += 1;
        }
        match bands.last_mut() {
            Some(last) if start - last.1 < MIN_SKIPPED_ROWS => last.1 = i,
            _ => bands.push((start, i)),
        }
    }
    bands
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A surface whose row `y` shows "line" `content(y)`.
    fn surface(width: u32, height: u32, content: impl Fn(u32) -> u32) -> Surface {
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 4);
        for y in 0..height {
            let line = content(y);
            for x in 0..width {
                let v = line.wrapping_mul(2_654_435_761).wrapping_add(x * 7);
                pixels.extend_from_slice(&v.to_le_bytes());
            }
        }
        Surface {
            width,
            height,
            pixels: pixels.into(),
        }
    }

    /// Does what the channel does with `plan`: the move, then the bands of `after`.
    fn carry_out(shadow: &mut Shadow, plan: &Plan, after: &Surface) {
        if let Some(moved) = plan.moved {
            shadow.apply(moved);
        }
        for band in &plan.bands {
            let mut data = Vec::new();
            after.copy_rect(*band, &mut data);
            shadow.store(*band, &data);
        }
    }

    #[test]
    fn a_scrolled_window_is_a_move_and_the_new_lines() {
        // A 40-row header, then "text" lines scrolling up by 12 rows.
        let before = surface(64, 200, |y| if y < 40 { y } else { 1000 + y });
        let after = surface(64, 200, |y| {
            if y < 40 {
                y
            } else if y < 188 {
                1012 + y
            } else {
                5000 + y
            }
        });
        let mut shadow = Shadow::default();
        shadow.reset(&before);
        let plan = shadow.plan(&after, Rect::new(0, 0, 64, 200));
        let moved = plan.moved.expect("a move");
        assert_eq!(
            moved,
            Move {
                dest: Rect::new(0, 40, 64, 148),
                src_x: 0,
                src_y: 52
            }
        );
        assert_eq!(plan.bands, vec![Rect::new(0, 188, 64, 12)]);
        // Carried out, the plan gives the client the new picture.
        carry_out(&mut shadow, &plan, &after);
        assert_eq!(shadow.pixels, after.pixels);
    }

    #[test]
    fn scrolls_by_multiples_of_the_last_step_are_found_alike() {
        // A terminal scrolling by 16-row lines, one or several per frame.
        let screen = |scrolled: u32| surface(64, 160, move |y| 100 + y + 16 * scrolled);
        let mut shadow = Shadow::default();
        shadow.reset(&screen(0));
        let lines = [0, 2, 3, 6];
        for step in 1..=3 {
            let after = screen(lines[step as usize]);
            let rect = Rect::new(0, 0, 64, 160);
            // What the full search finds, from a shadow that has no history.
            let mut fresh = Shadow::default();
            fresh.reset(&Surface {
                width: 64,
                height: 160,
                pixels: shadow.pixels.clone().into(),
            });
            let expected = fresh.plan(&after, rect);
            let plan = shadow.plan(&after, rect);
            assert_eq!(plan, expected, "step {step}");
            let rows = 16 * (lines[step as usize] - lines[step as usize - 1]);
            assert_eq!(plan.moved.map(|m| m.src_y), Some(rows), "step {step}");
            assert_eq!(
                plan.bands,
                vec![Rect::new(0, 160 - rows, 64, rows)],
                "step {step}"
            );
            carry_out(&mut shadow, &plan, &after);
            assert_eq!(shadow.pixels, after.pixels, "step {step}");
        }
        // A different move afterwards is still found (by the full search).
        let before = Surface {
            width: 64,
            height: 160,
            pixels: shadow.pixels.clone().into(),
        };
        let after = surface(64, 160, |y| if y >= 150 { 9000 + y } else { 100 + y + 96 + 10 });
        let plan = shadow.plan(&after, Rect::new(0, 0, 64, 160));
        assert_eq!(plan.moved.map(|m| (m.dest.y, m.src_y)), Some((0, 10)));
        carry_out(&mut shadow, &plan, &after);
        assert_eq!(shadow.pixels, after.pixels);
        assert_ne!(before.pixels, after.pixels);
    }

    #[test]
    fn still_columns_beside_the_scrolled_text_do_not_hide_the_move() {
        // A desktop (columns 0..16 and 48..64 never change) with a text
        // window in columns 16..48 that scrolls up by 6 rows; the damage is
        // the whole width, as tile-based hosts report it.
        let pixel = |x: u32, line: u32| {
            if (16..48).contains(&x) {
                line.wrapping_mul(2_654_435_761).wrapping_add(x * 7)
            } else {
                0x0020_4060
            }
        };
        let picture = |lines: &dyn Fn(u32) -> u32| {
            let mut pixels = Vec::new();
            for y in 0..96 {
                for x in 0..64 {
                    pixels.extend_from_slice(&pixel(x, lines(y)).to_le_bytes());
                }
            }
            Surface {
                width: 64,
                height: 96,
                pixels: pixels.into(),
            }
        };
        let before = picture(&|y| 100 + y);
        let after = picture(&|y| if y < 90 { 106 + y } else { 7000 + y });
        let mut shadow = Shadow::default();
        shadow.reset(&before);
        let plan = shadow.plan(&after, Rect::new(0, 0, 64, 96));
        assert_eq!(
            plan.moved,
            Some(Move {
                dest: Rect::new(16, 0, 32, 90),
                src_x: 16,
                src_y: 6
            })
        );
        assert_eq!(
            plan.bands,
            vec![Rect::new(16, 90, 32, 6)],
            "only the new rows, only the window's columns"
        );
        carry_out(&mut shadow, &plan, &after);
        assert_eq!(shadow.pixels, after.pixels);
        // Nothing changed: nothing to do.
        assert_eq!(shadow.plan(&after, Rect::new(0, 0, 64, 96)).bands, vec![]);
    }

    #[test]
    fn fills_are_not_searched_for_moves() {
        let rows: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i / 14; 64]).collect();
        let row = |y: u32| rows[y as usize].as_slice();
        // Three bands of colour: fewer runs than a move needs.
        assert!(!varied_rows(40, row, 0));
        assert!(!varied_rows(12, row, 0), "one colour");
        let text: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i % 7; 64]).collect();
        assert!(varied_rows(40, |y| text[y as usize].as_slice(), 0));
        // And the plan agrees: a fill over moved-looking content has no move.
        let before = surface(16, 64, |y| y);
        let after = surface(16, 64, |y| if (8..56).contains(&y) { 7777 } else { y });
        let mut shadow = Shadow::default();
        shadow.reset(&before);
        let plan = shadow.plan(&after, Rect::new(0, 0, 16, 64));
        assert_eq!(plan.moved, None);
        assert_eq!(plan.bands, vec![Rect::new(0, 8, 16, 48)]);
    }

    #[test]
    fn moving_down_copies_from_the_bottom_up() {
        let before = surface(16, 64, |y| y);
        let after = surface(16, 64, |y| if y < 10 { 900 + y } else { y - 10 });
        let mut shadow = Shadow::default();
        shadow.reset(&before);
        let plan = shadow.plan(&after, Rect::new(0, 0, 16, 64));
        let moved = plan.moved.expect("a move");
        assert_eq!(
            moved,
            Move {
                dest: Rect::new(0, 10, 16, 54),
                src_x: 0,
                src_y: 0
            }
        );
        carry_out(&mut shadow, &plan, &after);
        assert_eq!(shadow.pixels, after.pixels);
    }

    /// A band shrinks to the rows and columns whose pixels changed, and
    /// to nothing when none did.
    #[test]
    fn the_changed_part_of_a_band_is_its_changed_pixels() {
        let before = surface(64, 40, |y| y);
        let mut after = before.clone();
        let stride = after.stride();
        for (x, y) in [(10usize, 12usize), (30, 20), (21, 15)] {
            after.pixels[y * stride + x * 4] ^= 0xff;
        }
        let mut shadow = Shadow::default();
        shadow.reset(&before);
        let band = Rect::new(4, 8, 50, 20);
        assert_eq!(shadow.changed_part(&after, band), Some(Rect::new(10, 12, 21, 9)));
        assert_eq!(shadow.changed_part(&before, band), None, "nothing changed");
        let elsewhere = Rect::new(40, 0, 24, 10);
        assert_eq!(shadow.changed_part(&after, elsewhere), None);
        let other_size = surface(32, 40, |y| y);
        assert_eq!(
            shadow.changed_part(&other_size, Rect::new(0, 0, 8, 8)),
            Some(Rect::new(0, 0, 8, 8)),
            "without a matching shadow the band stays whole"
        );
    }

    #[test]
    fn unchanged_rows_are_skipped_and_short_gaps_joined() {
        let before = surface(32, 100, |y| y);
        let after = surface(32, 100, |y| match y {
            10..=14 | 17..=19 | 60 => 7000 + y,
            _ => y,
        });
        let mut shadow = Shadow::default();
        shadow.reset(&before);
        let plan = shadow.plan(&after, Rect::new(0, 0, 32, 100));
        assert_eq!(plan.moved, None);
        assert_eq!(
            plan.bands,
            vec![Rect::new(0, 10, 32, 10), Rect::new(0, 60, 32, 1)]
        );
        let same = shadow.plan(&before, Rect::new(4, 4, 20, 50));
        assert_eq!(same.bands, vec![], "nothing changed");
    }

    #[test]
    fn without_a_matching_shadow_the_whole_rect_is_sent() {
        let after = surface(32, 40, |y| y);
        let rect = Rect::new(0, 0, 32, 40);
        let mut empty = Shadow::default();
        assert_eq!(empty.plan(&after, rect).bands, vec![rect]);
        let mut other = Shadow::default();
        other.reset(&surface(32, 20, |y| y));
        assert_eq!(other.plan(&after, rect).bands, vec![rect]);
    }
}
