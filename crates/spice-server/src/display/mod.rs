//! The plain-framebuffer display: the host publishes pixels and damage, the
//! server forwards them to clients at the pace each client can take.
//!
//! The host never waits for a client. [`DisplayHandle::update`] copies the
//! damaged pixels into the server's own surface under a short lock and adds
//! the damage to every connected client's region; a client that is behind
//! simply finds a larger region next time it has room. Memory is one surface
//! plus a bounded rectangle list per client.

pub(crate) mod cache;
pub mod compress;
mod cursor;
pub(crate) mod damage;
pub(crate) mod deferred;
pub(crate) mod encoder_thread;
pub mod heads;
pub mod monitors;
pub mod region;
pub(crate) mod scroll;
pub(crate) mod shadow;
pub mod stream;
mod surface;
pub mod video;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) use cursor::CursorState;
pub use cursor::{CursorImage, MAX_CURSOR_SIDE};
pub use deferred::{DeferredDraw, SharedPixels};
pub use heads::{Head, HeadsError, MAX_HEADS};
pub use monitors::{ClientMonitor, ClientMonitors, ClientMonitorsHandler};
pub use region::Rect;
pub(crate) use surface::{Pixels, Surface};

use crate::waker::Waker;
use crate::worker::WorkerShared;

/// Largest surface side accepted, in pixels.
pub const MAX_SIDE: u32 = 16384;
/// Largest surface accepted, in pixels (256 MiB of xRGB).
pub const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// Errors of the display handle; the published state is unchanged when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisplayError {
    /// Zero or oversized dimensions.
    #[error("frame size {width}x{height} is outside 1..={MAX_SIDE} per side or {MAX_PIXELS} pixels")]
    FrameSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// Stride shorter than a row.
    #[error("stride {stride} is shorter than a row of {width} pixels")]
    Stride {
        /// Given stride.
        stride: usize,
        /// Frame width.
        width: u32,
    },
    /// Buffer shorter than the frame.
    #[error("frame buffer holds {got} bytes, {needed} needed")]
    FrameData {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// Cursor of zero or oversized dimensions.
    #[error("cursor size {width}x{height} is outside 1..={MAX_CURSOR_SIDE}")]
    CursorSize {
        /// Width.
        width: u16,
        /// Height.
        height: u16,
    },
    /// Cursor pixel buffer of the wrong size.
    #[error("cursor needs {expected} bytes of ARGB, got {got}")]
    CursorData {
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// Hotspot outside the cursor.
    #[error("cursor hotspot {hot_x},{hot_y} is outside the image")]
    CursorHotspot {
        /// Column.
        hot_x: u16,
        /// Row.
        hot_y: u16,
    },
}

/// A borrowed 32-bit xRGB framebuffer (little endian: B, G, R, X in memory).
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from one row to the next; at least `width * 4`.
    pub stride: usize,
    /// Pixel rows, top to bottom.
    pub data: &'a [u8],
}

impl Frame<'_> {
    fn validate(&self) -> Result<(), DisplayError> {
        let pixels = u64::from(self.width) * u64::from(self.height);
        if self.width == 0
            || self.height == 0
            || self.width > MAX_SIDE
            || self.height > MAX_SIDE
            || pixels > MAX_PIXELS
        {
            return Err(DisplayError::FrameSize {
                width: self.width,
                height: self.height,
            });
        }
        let row = self.width as usize * 4;
        if self.stride < row {
            return Err(DisplayError::Stride {
                stride: self.stride,
                width: self.width,
            });
        }
        let needed = self.stride * (self.height as usize - 1) + row;
        if self.data.len() < needed {
            return Err(DisplayError::FrameData {
                needed,
                got: self.data.len(),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub(crate) struct DisplayState {
    pub(crate) surface: Option<Surface>,
    /// Bumped on every resize; clients that saw an older one recreate the surface.
    pub(crate) generation: u64,
    /// Pending damage and moves per connected client.
    pub(crate) clients: HashMap<u64, damage::ClientDamage>,
    /// The display capabilities each connected client announced.
    pub(crate) client_caps: HashMap<u64, spice_proto::Caps>,
    pub(crate) cursor: CursorState,
    /// The monitors the picture is cut into.
    pub(crate) heads: heads::Heads,
    /// Where the picture keeps changing (video), from the host's damage.
    pub(crate) detector: stream::Detector,
    /// A drawing whose pixels are not in the picture yet: whatever reads or
    /// changes the pixels calls [`DisplayState::settle`] first.
    pub(crate) deferred: Option<deferred::Deferred>,
}

impl DisplayState {
    /// Draws the deferred drawing, if any, into the picture.
    pub(crate) fn settle(&mut self) {
        match self.surface.as_mut() {
            Some(surface) => deferred::settle(&mut self.deferred, surface),
            None => self.deferred = None,
        }
    }

    /// Starts a new, black picture (a resize): a deferred drawing was for
    /// the old one and is dropped.
    fn new_surface(&mut self, width: u32, height: u32) {
        self.deferred = None;
        self.surface = Some(Surface {
            width,
            height,
            pixels: Pixels::zeroed(width as usize * height as usize * 4),
        });
        self.generation += 1;
        self.detector.reset(width, height);
    }
}

/// Hands `rect` of new damage to every client and to the video detector.
fn report_damage(
    clients: &mut HashMap<u64, damage::ClientDamage>,
    detector: &mut stream::Detector,
    rect: Rect,
    now: std::time::Instant,
) {
    for client in clients.values_mut() {
        client.add(rect);
    }
    detector.observe(&[rect], now);
}

/// The copy of `src` to `(dst_x, dst_y)` cut to the pixels whose source and
/// destination lie inside a `width × height` picture; `None` when nothing
/// moves.
fn clipped_move(src: Rect, dst_x: u32, dst_y: u32, width: u32, height: u32) -> Option<damage::Move> {
    let dx = i64::from(dst_x) - i64::from(src.x);
    let dy = i64::from(dst_y) - i64::from(src.y);
    let src = src.clip(width, height);
    let left = (i64::from(src.x) + dx).max(0);
    let top = (i64::from(src.y) + dy).max(0);
    let right = (src.right() as i64 + dx).min(i64::from(width));
    let bottom = (src.bottom() as i64 + dy).min(i64::from(height));
    if left >= right || top >= bottom || (dx, dy) == (0, 0) {
        return None;
    }
    Some(damage::Move {
        dest: Rect::new(
            left as u32,
            top as u32,
            (right - left) as u32,
            (bottom - top) as u32,
        ),
        src_x: (left - dx) as u32,
        src_y: (top - dy) as u32,
    })
}

/// Per-server settings a display's thread needs for its clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DisplaySettings {
    /// The server's image compression (a client's preference overrides it).
    pub(crate) compression: compress::ImageCompression,
    /// The WAN codecs in force for the session.
    pub(crate) wan: compress::WanCodecs,
    /// When areas that keep changing go as a lossy video stream.
    pub(crate) streaming: stream::StreamingVideo,
    /// The server's stream codecs, best first.
    pub(crate) video_codecs: video::VideoCodecs,
    /// The JPEG encoder of MJPEG stream frames and JPEG images.
    pub(crate) jpeg_encoder: spice_codec::jpeg::JpegEncoder,
}

#[derive(Default)]
pub(crate) struct DisplayShared {
    state: Mutex<DisplayState>,
    /// Where clients' monitor configurations go, if the device takes them.
    monitors: Mutex<Option<Box<dyn ClientMonitorsHandler>>>,
    /// The server's main context, told when the picture changes size (the
    /// tablet's logical size follows display 0).
    main_waker: Mutex<Option<Arc<Waker>>>,
    /// The thread that serves this display's clients.
    worker: Mutex<Option<Arc<WorkerShared>>>,
    settings: Mutex<DisplaySettings>,
    /// Changes whenever a client's display channel starts or ends
    /// ([`DisplayHandle::clients_version`]).
    clients_version: AtomicU64,
}

impl std::fmt::Debug for DisplayShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisplayShared").finish_non_exhaustive()
    }
}

impl DisplayShared {
    /// Whether the display's device takes clients' monitor configurations.
    pub(crate) fn accepts_client_monitors(&self) -> bool {
        let mut handler = self.monitors.lock().unwrap_or_else(|e| e.into_inner());
        handler.as_mut().is_some_and(|h| h.accepts())
    }

    /// Offers a client's monitor configuration to the display's device.
    pub(crate) fn configure_client_monitors(&self, monitors: &ClientMonitors) -> bool {
        let mut handler = self.monitors.lock().unwrap_or_else(|e| e.into_inner());
        handler.as_mut().is_some_and(|h| h.configure(monitors))
    }

    /// A client's display channel started or ended.
    pub(crate) fn clients_changed(&self) {
        self.clients_version.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, DisplayState> {
        // A panic while holding the lock leaves pixels, not broken invariants.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects the display to a server's main context (or with `None` disconnects it).
    pub(crate) fn attach(&self, waker: Option<Arc<Waker>>) {
        *self.main_waker.lock().unwrap_or_else(|e| e.into_inner()) = waker;
    }

    /// Makes `worker` the display's thread; `false` if it already has one.
    pub(crate) fn set_worker(&self, worker: Arc<WorkerShared>) -> bool {
        let mut slot = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return false;
        }
        *slot = Some(worker);
        true
    }

    /// Forgets `worker`, if it is still the display's thread.
    pub(crate) fn clear_worker(&self, worker: &Arc<WorkerShared>) {
        let mut slot = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|w| Arc::ptr_eq(w, worker)) {
            *slot = None;
        }
    }

    /// The display's thread, if it has one.
    pub(crate) fn worker(&self) -> Option<Arc<WorkerShared>> {
        self.worker.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn settings(&self) -> DisplaySettings {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the settings; the display's thread is woken if they changed.
    pub(crate) fn set_settings(&self, settings: DisplaySettings) {
        let changed = {
            let mut current = self.settings.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *current, settings) != settings
        };
        if changed {
            self.wake();
        }
    }

    /// Tells the display's thread there is something new to send.
    fn wake(&self) {
        if let Some(worker) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            worker.wake();
        }
    }

    /// Tells the main context the picture changed size.
    fn wake_main(&self) {
        if let Some(w) = self.main_waker.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            w.wake();
        }
    }
}

/// The host's handle on a display: publish frames and damage, drive the cursor.
///
/// Cheap to clone, `Send + Sync`; call it from any thread.
#[derive(Debug, Clone, Default)]
pub struct DisplayHandle {
    pub(crate) shared: Arc<DisplayShared>,
}

impl DisplayHandle {
    /// A display with no picture yet; clients see it once the first frame is published.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends clients' monitor configurations (a client asking for another
    /// size) to `handler`, on the server's main context; `None` stops it.
    pub fn set_client_monitors_handler(&self, handler: Option<Box<dyn ClientMonitorsHandler>>) {
        *self.shared.monitors.lock().unwrap_or_else(|e| e.into_inner()) = handler;
    }

    /// Publishes the whole frame. A size different from the current one is a resize.
    pub fn publish(&self, frame: &Frame<'_>) -> Result<(), DisplayError> {
        self.update(frame, &[Rect::new(0, 0, frame.width, frame.height)])
    }

    /// Publishes the `damage` rectangles of `frame`; the rest of the picture is unchanged.
    ///
    /// If `frame` has a different size than the current picture, the display is
    /// resized and the whole frame is taken regardless of `damage`. Rectangles
    /// are clipped to the frame.
    pub fn update(&self, frame: &Frame<'_>, damage: &[Rect]) -> Result<(), DisplayError> {
        self.update_at(frame, damage, std::time::Instant::now())
    }

    /// [`Self::update`] with the damage seen at `now` (by the video
    /// detector): tests pass time in.
    pub(crate) fn update_at(
        &self,
        frame: &Frame<'_>,
        damage: &[Rect],
        now: std::time::Instant,
    ) -> Result<(), DisplayError> {
        frame.validate()?;
        {
            let mut state = self.shared.lock();
            let resized = state
                .surface
                .as_ref()
                .is_none_or(|s| s.width != frame.width || s.height != frame.height);
            if resized {
                state.new_surface(frame.width, frame.height);
                self.shared.wake_main();
            } else {
                state.settle();
            }
            let full = [Rect::new(0, 0, frame.width, frame.height)];
            let damage = if resized { &full[..] } else { damage };
            let DisplayState {
                surface,
                clients,
                detector,
                ..
            } = &mut *state;
            let Some(surface) = surface.as_mut() else {
                return Ok(());
            };
            let stride = surface.stride();
            for rect in damage.iter().map(|r| r.clip(frame.width, frame.height)) {
                if rect.is_empty() {
                    continue;
                }
                let row_bytes = rect.width as usize * 4;
                for row in rect.y..rect.y + rect.height {
                    let src = row as usize * frame.stride + rect.x as usize * 4;
                    let dst = row as usize * stride + rect.x as usize * 4;
                    surface.pixels[dst..dst + row_bytes].copy_from_slice(&frame.data[src..src + row_bytes]);
                }
                if !resized {
                    report_damage(clients, detector, rect, now);
                }
            }
        }
        self.shared.wake();
        Ok(())
    }

    /// Starts a new, black picture of `width × height` (a resize, even to the same size).
    pub fn resize(&self, width: u32, height: u32) -> Result<(), DisplayError> {
        let pixels = u64::from(width) * u64::from(height);
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE || pixels > MAX_PIXELS {
            return Err(DisplayError::FrameSize { width, height });
        }
        {
            self.shared.lock().new_surface(width, height);
        }
        self.shared.wake();
        self.shared.wake_main();
        Ok(())
    }

    /// Removes the picture; clients keep their last one until a new one is published.
    pub fn clear(&self) {
        let mut state = self.shared.lock();
        state.deferred = None;
        state.surface = None;
    }

    /// Copies `image` into the picture with its top-left corner at `(x, y)`,
    /// clipped to the picture, and reports that area as damaged. Does nothing
    /// if there is no picture yet.
    pub fn draw(&self, x: u32, y: u32, image: &Frame<'_>) -> Result<(), DisplayError> {
        image.validate()?;
        {
            let mut state = self.shared.lock();
            state.settle();
            let DisplayState {
                surface,
                clients,
                detector,
                ..
            } = &mut *state;
            let Some(surface) = surface.as_mut() else {
                return Ok(());
            };
            let area = Rect::new(x, y, image.width, image.height).clip(surface.width, surface.height);
            if area.is_empty() {
                return Ok(());
            }
            let stride = surface.stride();
            let row_bytes = area.width as usize * 4;
            for row in 0..area.height as usize {
                let src = row * image.stride;
                let dst = (area.y as usize + row) * stride + area.x as usize * 4;
                surface.pixels[dst..dst + row_bytes].copy_from_slice(&image.data[src..src + row_bytes]);
            }
            report_damage(clients, detector, area, std::time::Instant::now());
        }
        self.shared.wake();
        Ok(())
    }

    /// Fills the `width × height` area at `(x, y)`, clipped to the picture,
    /// row by row: `fill(row, dst)` writes the `dst.len()` bytes of packed
    /// xRGB of the area's row `row` straight into the picture, and returns
    /// `false` to stop there (what it wrote so far stays). The rows it was
    /// called for are reported as damaged. For pixels that live elsewhere (a guest's
    /// memory): one copy, into the picture. Does nothing without a picture.
    pub fn draw_with(
        &self,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        fill: impl FnMut(u32, &mut [u8]) -> bool,
    ) {
        {
            let mut state = self.shared.lock();
            state.settle();
            let DisplayState {
                surface,
                clients,
                detector,
                ..
            } = &mut *state;
            let Some(surface) = surface.as_mut() else { return };
            let area = Rect::new(x, y, width, height).clip(surface.width, surface.height);
            if area.is_empty() {
                return;
            }
            let filled = surface.fill_rows(area, fill);
            let drawn = Rect::new(area.x, area.y, area.width, filled);
            report_damage(clients, detector, drawn, std::time::Instant::now());
        }
        self.shared.wake();
    }

    /// [`draw_with`](Self::draw_with), deferred: the `width × height` area
    /// at `(x, y)`, clipped to the picture, is damaged now, but `source`
    /// writes its pixels only when something reads or changes the picture
    /// (a client taking a frame, [`with_pixels`](Self::with_pixels), another
    /// drawing), and never if a later `draw_later` covers the whole area
    /// first. For a device whose pixels stay valid elsewhere until `source`
    /// is dropped (a guest's video frames, most of which no client would
    /// see). `source` is dropped at once without a picture or an area.
    pub fn draw_later(&self, x: u32, y: u32, width: u32, height: u32, source: Box<dyn DeferredDraw>) {
        let superseded = {
            let mut state = self.shared.lock();
            let Some(surface) = state.surface.as_ref() else {
                return;
            };
            let area = Rect::new(x, y, width, height).clip(surface.width, surface.height);
            if area.is_empty() {
                return;
            }
            let superseded = state.deferred.take_if(|older| older.covered_by(&area));
            state.settle();
            state.deferred = Some(deferred::Deferred::new(area, source));
            let DisplayState {
                clients, detector, ..
            } = &mut *state;
            report_damage(clients, detector, area, std::time::Instant::now());
            superseded
        };
        // Outside the lock: its drop may give the pixels' memory back.
        drop(superseded);
        self.shared.wake();
    }

    /// Draws the drawing [`draw_later`](Self::draw_later) left waiting, if
    /// any, now (before the memory its pixels live in goes away).
    pub fn settle(&self) {
        self.shared.lock().settle();
    }

    /// Copies the `src` area of the picture so that its top-left corner
    /// lands at `(dst_x, dst_y)`, as a window move or a scroll does (source
    /// and destination may overlap). Only pixels whose source and
    /// destination are both inside the picture move. Clients are told to
    /// make the same copy (a `COPY_BITS` of a few bytes) instead of getting
    /// the destination as an image, wherever they have the source's pixels
    /// already. Does nothing without a picture.
    pub fn copy_area(&self, src: Rect, dst_x: u32, dst_y: u32) {
        {
            let mut state = self.shared.lock();
            state.settle();
            let DisplayState { surface, clients, .. } = &mut *state;
            let Some(surface) = surface.as_mut() else { return };
            let Some(mv) = clipped_move(src, dst_x, dst_y, surface.width, surface.height) else {
                return;
            };
            let stride = surface.stride();
            mv.apply_to(&mut surface.pixels, stride);
            // Not shown to the video detector: a copy is not video.
            for client in clients.values_mut() {
                client.record_move(mv);
            }
        }
        self.shared.wake();
    }

    /// Draws into the picture in place: `paint(words, width, height)` gets
    /// its pixels as xRGB words (B, G, R, x bytes; rows `width` words apart)
    /// and returns its result and the area it changed, which becomes damage.
    /// `None` without a picture. For a canvas rendering a guest's drawing
    /// straight into the picture; `paint` runs under the display's lock.
    pub fn paint<T>(&self, paint: impl FnOnce(&mut [u32], u32, u32) -> (T, Option<Rect>)) -> Option<T> {
        let result = {
            let mut state = self.shared.lock();
            state.settle();
            let DisplayState {
                surface,
                clients,
                detector,
                ..
            } = &mut *state;
            let surface = surface.as_mut()?;
            let (width, height) = (surface.width, surface.height);
            let (result, changed) = paint(surface.pixels.words_mut(), width, height);
            match changed.map(|r| r.clip(width, height)) {
                Some(rect) if !rect.is_empty() => {
                    report_damage(clients, detector, rect, std::time::Instant::now())
                }
                _ => return Some(result),
            }
            result
        };
        self.shared.wake();
        Some(result)
    }

    /// Reads the picture in place: `read(words, width, height)` as for
    /// [`paint`](Self::paint), without changing it. `None` without a picture.
    pub fn with_pixels<T>(&self, read: impl FnOnce(&[u32], u32, u32) -> T) -> Option<T> {
        let mut state = self.shared.lock();
        state.settle();
        let surface = state.surface.as_ref()?;
        Some(read(surface.pixels.words(), surface.width, surface.height))
    }

    /// Copies the part of the picture inside `rect` as packed xRGB rows;
    /// returns the clipped rectangle and its pixels, or `None` without a picture.
    pub fn read_rect(&self, rect: Rect) -> Option<(Rect, Vec<u8>)> {
        let mut state = self.shared.lock();
        state.settle();
        let surface = state.surface.as_ref()?;
        let rect = rect.clip(surface.width, surface.height);
        let mut pixels = Vec::new();
        if !rect.is_empty() {
            surface.copy_rect(rect, &mut pixels);
        }
        Some((rect, pixels))
    }

    /// Which of the display capabilities `caps` (`SPICE_DISPLAY_CAP_*`)
    /// every connected client has; `None` without clients. A device that
    /// draws natively learns from it what its guest may send (the C server
    /// tells QXL devices this way).
    pub fn clients_common_caps(&self, caps: &[u32]) -> Option<Vec<u32>> {
        let state = self.shared.lock();
        if state.clients.is_empty() {
            return None;
        }
        Some(
            caps.iter()
                .copied()
                .filter(|&cap| state.client_caps.values().all(|c| c.has(cap)))
                .collect(),
        )
    }

    /// A number that changes whenever a client's display channel starts or
    /// ends, read without the display's lock: a device that passes
    /// [`Self::clients_common_caps`] on at every turn of its loop (QEMU's
    /// qxl takes them through `set_client_capabilities`) asks again only
    /// when it changed.
    pub fn clients_version(&self) -> u64 {
        self.shared.clients_version.load(Ordering::Acquire)
    }

    /// How many clients' display channels show this display.
    pub fn client_count(&self) -> usize {
        self.shared.lock().clients.len()
    }

    /// The current picture size, if a frame was published.
    pub fn size(&self) -> Option<(u32, u32)> {
        self.shared.lock().surface.as_ref().map(|s| (s.width, s.height))
    }

    /// Cuts the picture into monitors (`heads`, each a rectangle of the
    /// picture; none: the whole picture is one monitor) for a device that
    /// supports up to `max_allowed`. Clients open a window per head; a
    /// connected client is told at once. A refused configuration leaves the
    /// current one.
    pub fn set_heads(&self, heads: &[Head], max_allowed: u32) -> Result<(), HeadsError> {
        self.shared.lock().heads.set(heads, max_allowed)?;
        self.shared.wake();
        Ok(())
    }

    /// Shows `image` as the pointer.
    pub fn set_cursor(&self, image: CursorImage) {
        self.shared.lock().cursor.set_shape(image);
        self.shared.wake();
    }

    /// Moves the pointer (server mouse mode; in client mode the client draws it).
    pub fn move_cursor(&self, x: i32, y: i32) {
        self.shared.lock().cursor.move_to(x, y);
        self.shared.wake();
    }

    /// Hides the pointer until the next [`DisplayHandle::set_cursor`].
    pub fn hide_cursor(&self) {
        self.shared.lock().cursor.hide();
        self.shared.wake();
    }

    /// A copy of the current picture as packed xRGB rows, if any (for tests and tools).
    pub fn snapshot(&self) -> Option<(u32, u32, Vec<u8>)> {
        let mut state = self.shared.lock();
        state.settle();
        state
            .surface
            .as_ref()
            .map(|s| (s.width, s.height, s.pixels.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(width: u32, height: u32, fill: u8) -> Vec<u8> {
        vec![fill; (width * height * 4) as usize]
    }

    #[test]
    fn update_copies_only_damage_and_feeds_client_regions() {
        let d = DisplayHandle::new();
        let a = frame(8, 4, 1);
        d.publish(&Frame {
            width: 8,
            height: 4,
            stride: 32,
            data: &a,
        })
        .unwrap();
        d.shared.lock().clients.insert(1, Default::default());
        let b = frame(8, 4, 2);
        d.update(
            &Frame {
                width: 8,
                height: 4,
                stride: 32,
                data: &b,
            },
            &[Rect::new(2, 1, 3, 2)],
        )
        .unwrap();
        let (_, _, px) = d.snapshot().unwrap();
        let at = |x: usize, y: usize| px[(y * 8 + x) * 4];
        assert_eq!(
            (at(0, 0), at(2, 1), at(4, 2), at(5, 2), at(2, 3)),
            (1, 2, 2, 1, 1)
        );
        assert_eq!(
            d.shared.lock().clients[&1].region.rects(),
            &[Rect::new(2, 1, 3, 2)]
        );
    }

    #[test]
    fn copy_area_moves_pixels_clipped_and_hands_clients_the_move() {
        let d = DisplayHandle::new();
        // Pixel (x, y) holds the byte 10 * y + x.
        let (w, h) = (8u32, 6u32);
        let px: Vec<u8> = (0..w * h)
            .flat_map(|i| [(10 * (i / w) + i % w) as u8; 4])
            .collect();
        d.publish(&Frame {
            width: w,
            height: h,
            stride: w as usize * 4,
            data: &px,
        })
        .unwrap();
        d.shared.lock().clients.insert(1, Default::default());
        let at = |x: u32, y: u32| d.snapshot().unwrap().2[((y * w + x) * 4) as usize];
        // A scroll up by two rows over the whole picture (overlapping).
        d.copy_area(Rect::new(0, 2, w, 4), 0, 0);
        assert_eq!((at(3, 0), at(3, 3), at(3, 4), at(3, 5)), (23, 53, 43, 53));
        {
            let mut state = d.shared.lock();
            let client = state.clients.get_mut(&1).unwrap();
            assert!(client.region.is_empty(), "nothing to send but the move");
            let moves = client.take_moves();
            assert_eq!(
                moves,
                vec![damage::Move {
                    dest: Rect::new(0, 0, w, 4),
                    src_x: 0,
                    src_y: 2
                }]
            );
        }
        // Partly off the picture on both sides: only what stays inside moves.
        d.copy_area(Rect::new(6, 0, 4, 2), 1, 4);
        assert_eq!((at(1, 4), at(2, 4), at(3, 4)), (26, 27, 43));
        let moves = d.shared.lock().clients.get_mut(&1).unwrap().take_moves();
        assert_eq!(
            moves,
            vec![damage::Move {
                dest: Rect::new(1, 4, 2, 2),
                src_x: 6,
                src_y: 0
            }]
        );
        // Nothing inside, or no displacement: no move.
        d.copy_area(Rect::new(20, 20, 4, 4), 0, 0);
        d.copy_area(Rect::new(1, 1, 3, 3), 1, 1);
        d.copy_area(Rect::new(0, 0, 4, 4), 8, 0);
        assert!(d.shared.lock().clients[&1].is_empty());
    }

    #[test]
    fn resize_bumps_generation_and_honours_stride() {
        let d = DisplayHandle::new();
        let mut buf = vec![0u8; 3 * 40];
        buf[40..44].copy_from_slice(&[9, 9, 9, 9]);
        d.publish(&Frame {
            width: 2,
            height: 3,
            stride: 40,
            data: &buf,
        })
        .unwrap();
        let g1 = d.shared.lock().generation;
        assert_eq!(d.snapshot().unwrap().2[8..12], [9, 9, 9, 9]);
        d.publish(&Frame {
            width: 1,
            height: 1,
            stride: 4,
            data: &[0; 4],
        })
        .unwrap();
        assert_eq!(d.shared.lock().generation, g1 + 1);
        assert_eq!(d.size(), Some((1, 1)));
    }

    #[test]
    fn draw_blits_at_a_position_and_clips() {
        let d = DisplayHandle::new();
        d.resize(4, 3).unwrap();
        d.shared.lock().clients.insert(7, Default::default());
        let img = frame(3, 2, 5);
        d.draw(
            2,
            2,
            &Frame {
                width: 3,
                height: 2,
                stride: 12,
                data: &img,
            },
        )
        .unwrap();
        let (_, _, px) = d.snapshot().unwrap();
        let at = |x: usize, y: usize| px[(y * 4 + x) * 4];
        assert_eq!((at(1, 2), at(2, 2), at(3, 2), at(2, 1)), (0, 5, 5, 0));
        assert_eq!(
            d.shared.lock().clients[&7].region.rects(),
            &[Rect::new(2, 2, 2, 1)]
        );
        d.clear();
        assert_eq!(d.size(), None);
        d.draw(
            0,
            0,
            &Frame {
                width: 3,
                height: 2,
                stride: 12,
                data: &img,
            },
        )
        .unwrap();
    }

    #[test]
    fn draw_with_fills_rows_in_place_clips_and_stops() {
        let d = DisplayHandle::new();
        d.resize(4, 3).unwrap();
        d.shared.lock().clients.insert(1, Default::default());
        // A 3x2 area at (2, 1): clipped to 2 columns; row r is filled with r + 1.
        d.draw_with(2, 1, 3, 2, |row, dst| {
            assert_eq!(dst.len(), 8);
            dst.fill(row as u8 + 1);
            true
        });
        let (_, _, px) = d.snapshot().unwrap();
        let at = |x: usize, y: usize| px[(y * 4 + x) * 4];
        assert_eq!(
            (at(1, 1), at(2, 1), at(3, 1), at(2, 2), at(2, 0)),
            (0, 1, 1, 2, 0)
        );
        assert_eq!(
            d.shared.lock().clients[&1].region.rects(),
            &[Rect::new(2, 1, 2, 2)]
        );
        // A fill that stops after one row damages that row only.
        d.shared.lock().clients.insert(2, Default::default());
        d.draw_with(0, 0, 4, 3, |row, dst| {
            dst.fill(9);
            row == 0
        });
        assert_eq!(
            d.shared.lock().clients[&2].region.rects(),
            &[Rect::new(0, 0, 4, 2)]
        );
    }

    #[test]
    fn paint_draws_in_place_and_damages_what_it_reports() {
        let d = DisplayHandle::new();
        assert_eq!(d.paint(|_, _, _| ((), None)), None, "no picture yet");
        d.resize(3, 2).unwrap();
        d.shared.lock().clients.insert(1, Default::default());
        let seen = d.paint(|words, w, h| {
            words[w as usize + 2] = 0x00ab_cdef;
            ((w, h, words.len()), Some(Rect::new(2, 1, 5, 5)))
        });
        assert_eq!(seen, Some((3, 2, 6)));
        let (_, _, px) = d.snapshot().unwrap();
        assert_eq!(
            &px[20..24],
            &[0xef, 0xcd, 0xab, 0],
            "word (2, 1) as B, G, R, x bytes"
        );
        assert_eq!(
            d.shared.lock().clients[&1].region.rects(),
            &[Rect::new(2, 1, 1, 1)],
            "clipped damage"
        );
        d.shared.lock().clients.insert(2, Default::default());
        d.paint(|_, _, _| ((), None));
        assert!(
            d.shared.lock().clients[&2].region.rects().is_empty(),
            "nothing reported, nothing damaged"
        );
        assert_eq!(d.with_pixels(|words, _, _| words[5]), Some(0x00ab_cdef));
    }

    #[test]
    fn common_caps_are_those_every_client_has() {
        let d = DisplayHandle::new();
        assert_eq!(d.clients_common_caps(&[2, 3]), None, "no clients");
        let mut state = d.shared.lock();
        for (key, caps) in [(1, &[0, 2, 3][..]), (2, &[2, 5][..])] {
            state.clients.insert(key, Default::default());
            state.client_caps.insert(key, spice_proto::Caps::with(caps));
        }
        drop(state);
        assert_eq!(d.clients_common_caps(&[0, 2, 3]), Some(vec![2]));
    }

    #[test]
    fn bad_frames_are_rejected_without_change() {
        let d = DisplayHandle::new();
        assert!(matches!(
            d.publish(&Frame {
                width: 0,
                height: 1,
                stride: 0,
                data: &[]
            }),
            Err(DisplayError::FrameSize { .. })
        ));
        assert!(matches!(
            d.publish(&Frame {
                width: 2,
                height: 2,
                stride: 4,
                data: &[0; 16]
            }),
            Err(DisplayError::Stride { .. })
        ));
        assert!(matches!(
            d.publish(&Frame {
                width: 2,
                height: 2,
                stride: 8,
                data: &[0; 15]
            }),
            Err(DisplayError::FrameData { .. })
        ));
        assert_eq!(d.size(), None);
    }
}
