//! Drawing the guest's commands: plain copies onto the display's picture
//! (or left in guest memory until read), everything else through the
//! canvas on the primary or an off-screen surface, and the picture rendered
//! back into the primary surface's memory where the host reads it.

use std::sync::Arc;
use std::time::Instant;

use spice_canvas::{Format, SurfaceMut, SurfaceRef};
use spice_qxl::GuestMemory;
use spice_qxl::{validate_primary, Clip, CopyOp, DrawOp, Drawable, Image, PrimarySurface, ReleaseInfo};

use super::Worker;
use crate::qxl::deferred::{GuestCopy, GuestFrame, GuestSource, HeldCommand};
use crate::qxl::memory::HostMemory;
use crate::qxl::surfaces::{Lookup, KEEP_DATA};

/// Smallest copy left waiting in the display (a stream's smallest area):
/// below it, holding the command and drawing it later costs about as much
/// as the copy (a console's glyphs, a host's damage tiles).
const DEFER_MIN_PIXELS: u64 = 96 * 96;

impl Worker {
    /// Draws one drawable where it goes: a plain copy onto the display (or
    /// left in guest memory until read), a move on the primary as the
    /// clients' own copy, anything else through the canvas.
    pub(super) fn draw(&mut self, mut drawable: Drawable, release: &mut Option<ReleaseInfo>) {
        if let DrawOp::Copy(copy) = &drawable.op {
            if drawable.surface_id == 0 && self.is_plain_copy(&drawable, copy) {
                return self.draw_copy_in_place(&drawable, copy, release);
            }
        }
        if let Some((src, x, y)) = primary_move(&drawable) {
            // Clients make the guest's copy themselves (a COPY_BITS), as
            // with the C server, instead of getting the area as an image.
            if self.primary_is_rendered() {
                return self.display.copy_area(src, x, y);
            }
        }
        // The canvas reads whole images: rows the parser left in guest
        // memory are copied into their bitmaps now, before the release.
        for image in drawable.op.images_mut() {
            if let Image::Bitmap(bitmap) = image {
                if let Some(rows) = bitmap.guest_rows.take() {
                    bitmap.data.clear();
                    if let Err(e) = HostMemory.read_append(rows.host, rows.len as usize, &mut bitmap.data) {
                        tracing::warn!(error = %e, "bitmap rows unreadable");
                        return;
                    }
                }
            }
        }
        let result = match drawable.surface_id {
            0 => self.draw_on_primary(&drawable),
            id => self.draw_offscreen(id, &drawable),
        };
        if let Err(e) = result {
            tracing::debug!(surface = drawable.surface_id, error = %e, "draw operation not rendered");
        }
    }

    /// Whether a copy goes straight from guest memory into the picture: a
    /// bitmap left in guest memory, at its own size, put as it is, unmasked
    /// (QEMU's simple display, the Linux console).
    fn is_plain_copy(&self, drawable: &Drawable, copy: &CopyOp) -> bool {
        let rop = spice_canvas::rop::Rop::from_descriptor(
            copy.rop_descriptor,
            spice_canvas::rop::ropd::INVERS_SRC,
            spice_canvas::rop::ropd::INVERS_DEST,
        );
        matches!(&copy.src, Image::Bitmap(b) if b.guest_rows.is_some())
            && rop.is_copy()
            && copy.mask.is_none()
            && copy.src_area.width() == drawable.bbox.width()
            && copy.src_area.height() == drawable.bbox.height()
    }

    /// Whether the primary surface exists and is one the display's picture
    /// holds (32-bit xRGB or ARGB).
    fn primary_is_rendered(&self) -> bool {
        self.primary.is_some_and(|p| p.format == 32 || p.format == 96)
    }

    /// Renders into the display's picture, in place.
    fn draw_on_primary(&mut self, drawable: &Drawable) -> Result<(), String> {
        if self.primary.is_some() && !self.primary_is_rendered() {
            return Err("primary surfaces other than 32-bit are not rendered".into());
        }
        let lookup = Lookup {
            offscreen: &self.offscreen,
            primary: None,
        };
        let drawn = self.display.paint(|words, width, height| {
            let Some(mut target) = SurfaceMut::new(width, height, Format::Xrgb32, width as usize, words)
            else {
                return (Err("the picture's pixels do not hold it".to_string()), None);
            };
            match spice_canvas::draw(&mut target, 0, drawable, &lookup) {
                Ok(damage) => (Ok(()), damage.map(server_rect)),
                Err(e) => (Err(e.to_string()), None),
            }
        });
        drawn.unwrap_or_else(|| Err("no primary surface".into()))
    }

    /// Renders into an off-screen surface, reading the primary only if the
    /// operation does (it is read under the display's lock).
    fn draw_offscreen(&mut self, id: u32, drawable: &Drawable) -> Result<(), String> {
        let mut target = self
            .offscreen
            .take(id)
            .ok_or_else(|| format!("surface {id} does not exist"))?;
        let reads_primary = drawable
            .op
            .images()
            .iter()
            .any(|i| matches!(i, Image::Surface { surface_id: 0 }));
        let offscreen = &self.offscreen;
        let mut draw = |primary: Option<SurfaceRef<'_>>| {
            let lookup = Lookup { offscreen, primary };
            spice_canvas::draw(&mut target.canvas.view_mut(), id, drawable, &lookup)
        };
        let result = if reads_primary {
            self.display
                .with_pixels(|words, w, h| draw(SurfaceRef::new(w, h, Format::Xrgb32, w as usize, words)))
                .unwrap_or_else(|| draw(None))
        } else {
            draw(None)
        };
        self.offscreen.put_back(id, target);
        result.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Renders `area` of a surface (everything without one) into its guest memory.
    pub(super) fn update_area(&mut self, surface_id: u32, area: Option<crate::ffi::QXLRect>) {
        if surface_id == 0 {
            return self.flush_primary(area);
        }
        let area = area.map(|a| spice_qxl::Rect {
            top: a.top,
            left: a.left,
            bottom: a.bottom,
            right: a.right,
        });
        match self.offscreen.get(surface_id) {
            Some(surface) => surface.write_back(&self.slots, area),
            None => tracing::debug!(surface_id, "update_area of a surface that does not exist"),
        }
    }

    /// A plain copy of a bitmap whose 32-bit top-down rows the parser left in
    /// guest memory (QEMU's simple display; the Linux qxl driver, which clips
    /// its bounding box to the damaged rectangles): each visible row is
    /// copied once, straight into the picture, from within the range the
    /// parser checked. A large copy with one visible rectangle is left waiting in
    /// the display with its command (`release`), drawn only if something
    /// reads the picture before a newer copy covers it: a guest's video
    /// frames, most of which no client would see.
    fn draw_copy_in_place(&mut self, drawable: &Drawable, copy: &CopyOp, release: &mut Option<ReleaseInfo>) {
        let Image::Bitmap(bitmap) = &copy.src else { return };
        let Some(rows) = bitmap.guest_rows else { return };
        let bbox = drawable.bbox;
        let visible: Vec<spice_qxl::Rect> = match &drawable.clip {
            Clip::None => vec![bbox],
            // Overlapping clip rectangles copy the same pixels twice: harmless.
            Clip::Rects(rects) => rects.iter().map(|c| intersect(c, &bbox)).collect(),
        };
        let single = visible.len() == 1;
        for r in visible {
            // Left of or above the picture is not drawn (the picture clips the rest).
            let (x, y) = (r.left.max(0), r.top.max(0));
            if r.right <= x || r.bottom <= y {
                continue;
            }
            let corner = |src: i32, at: i32, origin: i32| {
                u64::try_from(i64::from(src) + i64::from(at) - i64::from(origin)).ok()
            };
            let (Some(sx), Some(sy)) = (
                corner(copy.src_area.left, x, bbox.left),
                corner(copy.src_area.top, y, bbox.top),
            ) else {
                tracing::debug!(?copy.src_area, "copy from outside its bitmap not drawn");
                continue;
            };
            let source = GuestSource {
                rows,
                stride: u64::from(bitmap.stride),
                x: sx,
                y: sy,
            };
            let (w, h) = ((r.right - x) as u32, (r.bottom - y) as u32);
            // (Not for a stopped VM's replayed commands: no release until it runs.)
            if single && self.running() && u64::from(w) * u64::from(h) >= DEFER_MIN_PIXELS {
                if let Some(release) = release.take() {
                    let copy = GuestCopy(Arc::new(GuestFrame {
                        source,
                        _command: HeldCommand {
                            release,
                            returned: self.returned.clone(),
                        },
                        epoch: self.memory_epoch.clone(),
                        read_at: self.memory_epoch.current(),
                    }));
                    self.display.draw_later(x as u32, y as u32, w, h, Box::new(copy));
                    self.waiting = Some((release, Instant::now()));
                    // The copy this one covered (or drew first) came back at
                    // once; so did this one if the display had no picture.
                    self.release_returned();
                    return;
                }
            }
            self.display
                .draw_with(x as u32, y as u32, w, h, |row, dst| source.copy_row(row, dst));
        }
    }

    /// Renders the picture (or `area` of it) into the primary surface's memory,
    /// which the host may read back (QEMU's qxl device does, for its own display).
    pub(super) fn flush_primary(&mut self, area: Option<crate::ffi::QXLRect>) {
        let Some(memory) = self.primary_memory("rendered into") else {
            return;
        };
        let primary = memory.surface;
        let rect = match area {
            Some(a) => {
                let (top, left, bottom, right) = (a.top, a.left, a.bottom, a.right);
                let x = left.max(0) as u32;
                let y = top.max(0) as u32;
                spice_server::Rect::new(
                    x,
                    y,
                    (right.max(0) as u32).saturating_sub(x),
                    (bottom.max(0) as u32).saturating_sub(y),
                )
            }
            None => spice_server::Rect::new(0, 0, primary.width, primary.height),
        };
        // Straight from the picture into guest memory, row by row.
        self.display.with_pixels(|words, width, height| {
            let rect = rect.clip(width, height);
            let (x, w) = (rect.x as usize, rect.width as usize);
            for y in rect.y..rect.y + rect.height {
                let start = y as usize * width as usize + x;
                let row: &[u8] = bytemuck::cast_slice(&words[start..start + w]);
                let addr = memory.row(y) + u64::from(rect.x) * 4;
                if let Err(e) = HostMemory.write(addr, row) {
                    tracing::warn!(error = %e, "writing the primary surface");
                    return;
                }
            }
        });
    }

    /// Where the 32-bit primary's rows lie in guest memory; `None` (logged,
    /// with `what` the picture was to be) for other formats or memory no
    /// longer mapped.
    fn primary_memory(&self, what: &str) -> Option<PrimaryMemory> {
        let primary = self.primary?;
        // SPICE_SURFACE_FMT_32_xRGB and 32_ARGB share the server's pixel layout.
        if primary.format != 32 && primary.format != 96 {
            tracing::debug!(format = primary.format, "primary format not {what} memory");
            return None;
        }
        match spice_qxl::translate_primary(&self.slots, &primary) {
            Ok(base) => Some(PrimaryMemory {
                surface: primary,
                base,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "primary memory not mapped; picture not {what} it");
                None
            }
        }
    }

    pub(super) fn create_primary(&mut self, surface_id: u32, s: crate::ffi::QXLDevSurfaceCreate) {
        let primary = PrimarySurface {
            width: s.width,
            height: s.height,
            stride: s.stride,
            format: s.format,
            mouse_mode: s.mouse_mode,
            flags: s.flags,
            mem: s.mem,
            group_id: s.group_id,
        };
        if surface_id != 0 {
            tracing::error!(surface_id, "primary surface id must be 0");
            return;
        }
        if let Err(e) = validate_primary(&self.slots, &primary) {
            tracing::error!(error = %e, "primary surface rejected");
            return;
        }
        if let Err(e) = self.display.resize(primary.width, primary.height) {
            tracing::error!(error = %e, "primary surface too large");
            return;
        }
        tracing::debug!(
            width = primary.width,
            height = primary.height,
            keep_data = primary.flags & KEEP_DATA != 0,
            "primary surface created"
        );
        self.primary = Some(primary);
        if primary.flags & KEEP_DATA != 0 {
            self.load_primary();
        }
    }

    /// The primary's memory already holds its picture (QEMU creates it so
    /// after loading a migrated VM, whose source drew everything into it
    /// at `vm_stop`): it becomes the display's picture.
    fn load_primary(&mut self) {
        let Some(memory) = self.primary_memory("read from") else {
            return;
        };
        let (width, height) = (memory.surface.width, memory.surface.height);
        self.display.draw_with(0, 0, width, height, |row, dst| {
            HostMemory.read(memory.row(row), dst).is_ok()
        });
    }
}

/// A `COPY_BITS` on the primary surface without a clip, as the area it
/// copies and where that lands (what the canvas would move: the pixels
/// whose source and destination are both inside the picture, which
/// `DisplayHandle::copy_area` cuts out the same way). `None` for other
/// operations, and for corners left of or above the picture (the canvas
/// draws those).
fn primary_move(drawable: &Drawable) -> Option<(spice_server::Rect, u32, u32)> {
    let DrawOp::CopyBits { src_pos } = drawable.op else {
        return None;
    };
    if drawable.surface_id != 0 || drawable.clip != spice_qxl::Clip::None {
        return None;
    }
    let b = &drawable.bbox;
    let (width, height) = (b.right.checked_sub(b.left)?, b.bottom.checked_sub(b.top)?);
    let corner = |v: i32| u32::try_from(v).ok();
    let src = spice_server::Rect::new(
        corner(src_pos.x)?,
        corner(src_pos.y)?,
        corner(width)?,
        corner(height)?,
    );
    Some((src, corner(b.left)?, corner(b.top)?))
}

/// The primary surface's picture in guest memory.
#[derive(Clone, Copy)]
struct PrimaryMemory {
    surface: PrimarySurface,
    /// Host address of its lowest byte.
    base: u64,
}

impl PrimaryMemory {
    /// Host address of row `y` of the picture: a negative stride stores it
    /// bottom-up from the lowest address.
    fn row(&self, y: u32) -> u64 {
        let s = &self.surface;
        let line = if s.stride < 0 { s.height - 1 - y } else { y };
        self.base + u64::from(line) * u64::from(s.stride.unsigned_abs())
    }
}

/// A canvas rectangle (clipped to the picture, so never negative) as the server's.
fn server_rect(r: spice_qxl::Rect) -> spice_server::Rect {
    let (x, y) = (r.left.max(0) as u32, r.top.max(0) as u32);
    spice_server::Rect::new(
        x,
        y,
        (r.right.max(0) as u32).saturating_sub(x),
        (r.bottom.max(0) as u32).saturating_sub(y),
    )
}

/// `a ∩ b` (empty rectangles come out with `right <= left` or `bottom <= top`).
fn intersect(a: &spice_qxl::Rect, b: &spice_qxl::Rect) -> spice_qxl::Rect {
    spice_qxl::Rect {
        top: a.top.max(b.top),
        left: a.left.max(b.left),
        bottom: a.bottom.min(b.bottom),
        right: a.right.min(b.right),
    }
}
