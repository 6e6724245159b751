//! Drawing that waits until the picture is read.
//!
//! A guest playing video writes frames faster than a stream sends them
//! (a framebuffer player on a Linux guest: about three frames per frame
//! sent), and copying each one from guest memory into the picture was the
//! display thread's largest cost. The C server never draws a frame that a
//! newer one covers before anything reads it; this is the same idea for a
//! device that draws pixels living elsewhere: it hands the display a
//! [`DeferredDraw`] with [`DisplayHandle::draw_later`](super::DisplayHandle::draw_later).
//! The area counts as damage at once, but its pixels are written only when
//! something reads or changes the picture (a client taking a frame, the
//! host reading it back, another drawing). A deferred drawing that a newer
//! one covers whole is dropped unread.
//!
//! At most one drawing waits at a time, so the picture is never more than
//! one drawing behind and the order of drawings is kept: a second one that
//! does not cover the first draws the first before it waits itself.

use std::sync::Arc;

use super::region::Rect;
use super::Surface;

/// Pixels a device draws into the picture only when they are needed.
///
/// Dropped once drawn or superseded (on whichever thread read the picture),
/// so a device that must give the pixels' memory back (a QXL command's
/// release) does it from `Drop`, or hands that work to its own thread.
pub trait DeferredDraw: Send {
    /// Writes row `row` of the drawing's area: `dst.len()` bytes of packed
    /// xRGB, as [`DisplayHandle::draw_with`](super::DisplayHandle::draw_with)'s
    /// `fill`. Returns `false` to stop there (the rest of the area keeps what
    /// the picture had).
    fn fill_row(&mut self, row: u32, dst: &mut [u8]) -> bool;

    /// Appends row `row` (`len` bytes, as [`Self::fill_row`] writes them) to
    /// `out`. The default zeroes the bytes and fills them; a source that can
    /// copy straight into `out`'s spare capacity saves that pass (a video
    /// frame's rows are read this way). On `false`, what `out` holds past
    /// its old length is unspecified: the caller truncates it.
    fn append_row(&mut self, row: u32, len: usize, out: &mut Vec<u8>) -> bool {
        let at = out.len();
        out.resize(at + len, 0);
        self.fill_row(row, &mut out[at..])
    }

    /// The drawing's pixels, for a stream's frame that encodes them after
    /// the display's lock is let go instead of copying them out under it
    /// (a video frame left in guest memory goes straight to the JPEG
    /// encoder, as the C server encodes it). `None`, the default: the
    /// frame is copied with [`Self::append_row`].
    fn share(&self) -> Option<Arc<dyn SharedPixels>> {
        None
    }
}

/// A deferred drawing's pixels shared with a stream's frame
/// ([`DeferredDraw::share`]). It holds whatever keeps them readable (a QXL
/// command's release) and is dropped once the frame is encoded. A small
/// stream's frame is encoded, and dropped, on the display's thread within
/// the round that took it; a large stream's on the stream's encoder
/// thread, while the display and its device go on: a source whose memory
/// can go away (a memslot) must keep it, or refuse the frame, until
/// `encode_jpeg` returns.
pub trait SharedPixels: Send + Sync {
    /// Appends `rect` (in the drawing's own coordinates: `(0, 0)` is its
    /// area's corner) to `out` as a baseline JFIF stream at `quality`
    /// (1..=100, 4:2:0), as the server's MJPEG streams send it. An error
    /// drops the frame (the pixels are no longer readable, say), and the
    /// stream goes on with the next one.
    fn encode_jpeg(
        &self,
        rect: Rect,
        quality: u8,
        out: &mut Vec<u8>,
    ) -> Result<usize, spice_codec::CodecError>;
}

/// A stream frame's pixels left where a deferred drawing has them.
#[derive(Clone)]
pub(crate) struct SharedFrame {
    pub(crate) pixels: Arc<dyn SharedPixels>,
    /// The frame's area in the drawing's coordinates.
    pub(crate) rect: Rect,
}

impl std::fmt::Debug for SharedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedFrame")
            .field("rect", &self.rect)
            .finish_non_exhaustive()
    }
}

/// The drawing waiting for the picture to be read.
pub(crate) struct Deferred {
    /// Where it draws, inside the picture.
    pub(crate) area: Rect,
    source: Box<dyn DeferredDraw>,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("area", &self.area)
            .finish_non_exhaustive()
    }
}

impl Deferred {
    pub(crate) fn new(area: Rect, source: Box<dyn DeferredDraw>) -> Self {
        Self { area, source }
    }

    /// Whether `area` hides every pixel this drawing would write.
    pub(crate) fn covered_by(&self, area: &Rect) -> bool {
        area.contains(&self.area)
    }

    /// Appends the pixels it would draw in `rect` (inside its area) to
    /// `out` as packed rows, and keeps waiting: a stream's frame taken from
    /// a drawing that the next one will cover is read once, not drawn and
    /// then read. `false` (with `out` as it was) if the drawing stopped
    /// short.
    pub(crate) fn copy_rect(&mut self, rect: Rect, out: &mut Vec<u8>) -> bool {
        debug_assert!(self.area.contains(&rect));
        let start = out.len();
        let whole_rows = rect.x == self.area.x && rect.width == self.area.width;
        let mut scratch = if whole_rows {
            Vec::new()
        } else {
            vec![0; self.area.width as usize * 4]
        };
        let row_bytes = rect.width as usize * 4;
        let skip = (rect.x - self.area.x) as usize * 4;
        out.reserve(row_bytes * rect.height as usize);
        for y in rect.y..rect.y + rect.height {
            let row = y - self.area.y;
            let ok = if whole_rows {
                self.source.append_row(row, row_bytes, out)
            } else {
                let ok = self.source.fill_row(row, &mut scratch);
                out.extend_from_slice(&scratch[skip..skip + row_bytes]);
                ok
            };
            if !ok {
                out.truncate(start);
                return false;
            }
        }
        true
    }

    /// Writes the drawing into `surface` (its area was clipped to the
    /// picture it was made for; a picture that changed size since is not
    /// drawn into).
    pub(crate) fn draw(mut self, surface: &mut Surface) {
        let area = self.area;
        if area.right() > u64::from(surface.width) || area.bottom() > u64::from(surface.height) {
            return;
        }
        surface.fill_rows(area, |row, dst| self.source.fill_row(row, dst));
    }
}

/// Draws the drawing waiting in `slot`, if any, into `surface`.
pub(crate) fn settle(slot: &mut Option<Deferred>, surface: &mut Surface) {
    if let Some(drawing) = slot.take() {
        drawing.draw(surface);
    }
}

/// The picture as a client's producer reads it: the deferred drawing is
/// drawn only when pixels it would change are read.
pub(crate) struct Picture<'a> {
    surface: &'a mut Surface,
    deferred: &'a mut Option<Deferred>,
}

impl<'a> Picture<'a> {
    pub(crate) fn new(surface: &'a mut Surface, deferred: &'a mut Option<Deferred>) -> Self {
        Self { surface, deferred }
    }

    pub(crate) fn width(&self) -> u32 {
        self.surface.width
    }

    pub(crate) fn height(&self) -> u32 {
        self.surface.height
    }

    /// The whole picture, up to date.
    pub(crate) fn pixels(&mut self) -> &Surface {
        settle(self.deferred, self.surface);
        self.surface
    }

    /// Appends the pixels of `rect` (inside the picture) to `out` as packed
    /// rows, read from the deferred drawing where it covers `rect` whole
    /// (it keeps waiting), else from the picture brought up to date there.
    pub(crate) fn copy_rect(&mut self, rect: Rect, out: &mut Vec<u8>) {
        let covering = self.deferred.as_mut().filter(|d| d.area.contains(&rect));
        if covering.is_some_and(|d| d.copy_rect(rect, out)) {
            return;
        }
        self.pixels_in(&[rect]).copy_rect(rect, out);
    }

    /// `rect`'s pixels shared by the deferred drawing, when it covers
    /// `rect` whole and its source shares ([`DeferredDraw::share`]); it
    /// keeps waiting, as with [`Self::copy_rect`].
    pub(crate) fn share_rect(&self, rect: Rect) -> Option<SharedFrame> {
        let drawing = self.deferred.as_ref().filter(|d| d.area.contains(&rect))?;
        let pixels = drawing.source.share()?;
        let (x, y) = (rect.x - drawing.area.x, rect.y - drawing.area.y);
        Some(SharedFrame {
            pixels,
            rect: Rect::new(x, y, rect.width, rect.height),
        })
    }

    /// The picture with `areas` up to date (the deferred drawing waits on
    /// if it touches none of them): for readers that stay inside `areas`.
    pub(crate) fn pixels_in(&mut self, areas: &[Rect]) -> &Surface {
        let touched = self
            .deferred
            .as_ref()
            .is_some_and(|d| areas.iter().any(|a| a.intersection(&d.area).is_some()));
        if touched {
            self.pixels()
        } else {
            self.surface
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::display::{DisplayHandle, Frame};

    /// What happened to each test drawing, by its fill byte.
    #[derive(Default)]
    struct Log {
        filled: Vec<u8>,
        dropped: Vec<u8>,
    }

    /// A drawing of one byte value that records its fills and its drop.
    struct Solid {
        value: u8,
        log: Arc<Mutex<Log>>,
    }

    impl DeferredDraw for Solid {
        fn fill_row(&mut self, row: u32, dst: &mut [u8]) -> bool {
            if row == 0 {
                self.log.lock().unwrap().filled.push(self.value);
            }
            dst.fill(self.value);
            true
        }
    }

    impl Drop for Solid {
        fn drop(&mut self) {
            self.log.lock().unwrap().dropped.push(self.value);
        }
    }

    fn display(width: u32, height: u32) -> (DisplayHandle, Arc<Mutex<Log>>) {
        let d = DisplayHandle::new();
        let black = vec![0u8; (width * height * 4) as usize];
        d.publish(&Frame {
            width,
            height,
            stride: width as usize * 4,
            data: &black,
        })
        .unwrap();
        d.shared.lock().clients.insert(1, Default::default());
        (d, Arc::default())
    }

    fn solid(value: u8, log: &Arc<Mutex<Log>>) -> Box<dyn DeferredDraw> {
        Box::new(Solid {
            value,
            log: log.clone(),
        })
    }

    fn pixel(d: &DisplayHandle, x: u32, y: u32) -> u8 {
        let (w, _, px) = d.snapshot().unwrap();
        px[((y * w + x) * 4) as usize]
    }

    #[test]
    fn damage_is_reported_at_once_and_pixels_are_written_when_read() {
        let (d, log) = display(8, 4);
        d.draw_later(2, 1, 3, 2, solid(7, &log));
        assert_eq!(
            d.shared.lock().clients[&1].region.rects(),
            &[Rect::new(2, 1, 3, 2)]
        );
        assert!(
            log.lock().unwrap().filled.is_empty(),
            "nothing drawn before a read"
        );
        assert_eq!((pixel(&d, 2, 1), pixel(&d, 4, 2), pixel(&d, 5, 2)), (7, 7, 0));
        let log = log.lock().unwrap();
        assert_eq!((&log.filled[..], &log.dropped[..]), (&[7][..], &[7][..]));
    }

    #[test]
    fn a_covering_drawing_drops_the_older_one_unread() {
        let (d, log) = display(8, 4);
        d.draw_later(2, 1, 3, 2, solid(1, &log));
        d.draw_later(1, 0, 6, 4, solid(2, &log));
        {
            let log = log.lock().unwrap();
            assert!(log.filled.is_empty());
            assert_eq!(log.dropped, [1], "the covered drawing is given back at once");
        }
        assert_eq!((pixel(&d, 2, 1), pixel(&d, 0, 0)), (2, 0));
        assert_eq!(log.lock().unwrap().filled, [2]);
    }

    #[test]
    fn a_partial_overlap_draws_the_older_first_keeping_the_order() {
        let (d, log) = display(8, 4);
        d.draw_later(0, 0, 4, 4, solid(1, &log));
        d.draw_later(2, 0, 4, 4, solid(2, &log));
        assert_eq!(
            log.lock().unwrap().filled,
            [1],
            "the older is drawn before the newer waits"
        );
        assert_eq!((pixel(&d, 1, 0), pixel(&d, 2, 0), pixel(&d, 5, 3)), (1, 2, 2));
    }

    #[test]
    fn drawing_or_reading_the_picture_draws_the_waiting_drawing_first() {
        let (d, log) = display(8, 4);
        d.draw_later(0, 0, 8, 4, solid(5, &log));
        // A later, direct drawing lands on top of the deferred one.
        d.draw_with(0, 0, 1, 1, |_, dst| {
            dst.fill(9);
            true
        });
        assert_eq!(log.lock().unwrap().filled, [5]);
        assert_eq!((pixel(&d, 0, 0), pixel(&d, 1, 0)), (9, 5));
        d.draw_later(0, 0, 8, 4, solid(6, &log));
        let read = d.with_pixels(|words, _, _| words[3] as u8).unwrap();
        assert_eq!(read, 6);
        d.draw_later(0, 0, 8, 4, solid(7, &log));
        d.copy_area(Rect::new(0, 0, 1, 1), 4, 2);
        assert_eq!(pixel(&d, 4, 2), 7);
        assert_eq!(log.lock().unwrap().filled, [5, 6, 7]);
    }

    #[test]
    fn a_new_picture_or_none_drops_the_waiting_drawing_unread() {
        let (d, log) = display(8, 4);
        d.draw_later(0, 0, 8, 4, solid(1, &log));
        d.resize(8, 4).unwrap();
        d.draw_later(0, 0, 8, 4, solid(2, &log));
        d.clear();
        // Without a picture, nothing waits: dropped at once.
        d.draw_later(0, 0, 8, 4, solid(3, &log));
        let log = log.lock().unwrap();
        assert!(log.filled.is_empty());
        assert_eq!(log.dropped, [1, 2, 3]);
        assert!(d.shared.lock().deferred.is_none());
    }

    /// A drawing whose pixel at column `x` of its area holds `x` in every byte.
    struct Columns;

    impl DeferredDraw for Columns {
        fn fill_row(&mut self, _row: u32, dst: &mut [u8]) -> bool {
            for (x, px) in dst.chunks_exact_mut(4).enumerate() {
                px.fill(x as u8 + 1);
            }
            true
        }
    }

    #[test]
    fn a_frame_inside_the_drawing_is_read_from_it_and_it_keeps_waiting() {
        let (d, _) = display(8, 4);
        d.draw_later(2, 0, 6, 4, Box::new(Columns));
        with_picture(&d, |picture| {
            // The whole area, then a part of it off its left edge.
            let mut whole = Vec::new();
            picture.copy_rect(Rect::new(2, 0, 6, 4), &mut whole);
            assert_eq!(whole.len(), 6 * 4 * 4);
            assert_eq!((whole[0], whole[5 * 4], whole[6 * 4]), (1, 6, 1));
            let mut part = vec![0xee];
            picture.copy_rect(Rect::new(4, 1, 2, 2), &mut part);
            assert_eq!(part, [0xee, 3, 3, 3, 3, 4, 4, 4, 4, 3, 3, 3, 3, 4, 4, 4, 4]);
            assert!(deferred_is_waiting(picture), "read, not drawn");
            // A rectangle it does not cover whole comes from the picture, drawn.
            let mut wider = Vec::new();
            picture.copy_rect(Rect::new(1, 0, 2, 1), &mut wider);
            assert_eq!(wider, [0, 0, 0, 0, 1, 1, 1, 1]);
            assert!(!deferred_is_waiting(picture));
        });
    }

    /// [`Columns`] that appends whole rows itself, and fails at row 2 after
    /// appending part of it.
    struct Appending;

    impl DeferredDraw for Appending {
        fn fill_row(&mut self, row: u32, dst: &mut [u8]) -> bool {
            Columns.fill_row(row, dst)
        }

        fn append_row(&mut self, row: u32, len: usize, out: &mut Vec<u8>) -> bool {
            if row == 2 {
                out.push(0xaa);
                return false;
            }
            out.extend((0..len / 4).flat_map(|x| [x as u8 + 1; 4]));
            true
        }
    }

    #[test]
    fn whole_rows_of_a_frame_are_appended_by_the_drawing() {
        let (d, _) = display(8, 4);
        d.draw_later(2, 0, 6, 4, Box::new(Appending));
        with_picture(&d, |picture| {
            let mut rows = vec![0xee];
            picture.copy_rect(Rect::new(2, 0, 6, 2), &mut rows);
            let row: Vec<u8> = (1..=6).flat_map(|x| [x; 4]).collect();
            assert_eq!(rows, [&[0xee][..], &row, &row].concat());
            // A failed row leaves `out` as it was.
            let mut failed = vec![0xee];
            let read = picture
                .deferred
                .as_mut()
                .unwrap()
                .copy_rect(Rect::new(2, 1, 6, 2), &mut failed);
            assert!(!read);
            assert_eq!(failed, [0xee]);
        });
    }

    /// Runs `f` on `d`'s picture, with the drawing waiting in it.
    fn with_picture(d: &DisplayHandle, f: impl FnOnce(&mut Picture<'_>)) {
        let mut state = d.shared.lock();
        let crate::display::DisplayState {
            surface, deferred, ..
        } = &mut *state;
        f(&mut Picture::new(surface.as_mut().unwrap(), deferred));
    }

    fn deferred_is_waiting(picture: &Picture<'_>) -> bool {
        picture.deferred.is_some()
    }

    #[test]
    fn picture_reads_outside_the_drawing_leave_it_waiting() {
        let (d, log) = display(8, 4);
        d.draw_later(4, 0, 4, 4, solid(3, &log));
        with_picture(&d, |picture| {
            assert_eq!(picture.pixels_in(&[Rect::new(0, 0, 4, 4)]).pixels[0], 0);
            assert!(log.lock().unwrap().filled.is_empty());
            let surface = picture.pixels_in(&[Rect::new(3, 3, 2, 1)]);
            assert_eq!(surface.pixels[4 * 4], 3);
            assert_eq!(log.lock().unwrap().filled, [3]);
        });
    }
}
