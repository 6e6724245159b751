//! The device's off-screen surfaces: the canvas's copy of each, and where
//! it lives in guest memory, for `update_area` and `vm_stop` to write back.

use std::collections::HashMap;

use spice_canvas::{Format, Sources, Surface, SurfaceRef};
use spice_qxl::{GuestMemory, MemSlots, Rect};

use super::memory::HostMemory;

/// Host memory all off-screen surfaces of one device may take together. A
/// guest can declare surfaces over the same guest pages again and again; this
/// keeps the host's copies bounded (QEMU's default surface bar is 64 MiB).
const MAX_TOTAL_BYTES: u64 = 512 << 20;

/// `QXL_SURF_FLAG_KEEP_DATA`: the surface memory already holds its picture.
pub(super) const KEEP_DATA: u32 = 1;

/// An off-screen surface.
pub(super) struct GuestSurface {
    pub(super) canvas: Surface,
    /// `QXLPHYSICAL` of its lowest byte, and its memslot group.
    mem: u64,
    group: u32,
    /// Bytes between rows in guest memory; negative for bottom-up.
    stride: i32,
}

impl GuestSurface {
    fn bytes(&self) -> u64 {
        u64::from(self.stride.unsigned_abs()) * u64::from(self.canvas.height())
    }

    /// Host address of row `y`'s first byte, with the whole surface checked
    /// against the memslots again (a slot may have gone since creation).
    fn row_addr(&self, slots: &MemSlots, y: u32) -> Option<u64> {
        let base = slots.translate(self.mem, self.group, self.bytes()).ok()?;
        let line = if self.stride < 0 {
            self.canvas.height() - 1 - y
        } else {
            y
        };
        Some(base + u64::from(line) * u64::from(self.stride.unsigned_abs()))
    }

    /// Bytes of a row's pixels `[x0, x1)` (whole bytes for sub-byte formats).
    fn byte_span(&self, x0: u32, x1: u32) -> (usize, usize) {
        let bpp = self.canvas.format().bits_per_pixel() as usize;
        ((x0 as usize * bpp) / 8, (x1 as usize * bpp).div_ceil(8))
    }

    /// Writes `area` (clipped; `None`: everything) into guest memory.
    pub(super) fn write_back(&self, slots: &MemSlots, area: Option<Rect>) {
        let (w, h) = (self.canvas.width(), self.canvas.height());
        let clamp = |v: i32, max: u32| v.clamp(0, max as i32) as u32;
        let (x0, y0, x1, y1) = match area {
            Some(a) => (
                clamp(a.left, w),
                clamp(a.top, h),
                clamp(a.right, w),
                clamp(a.bottom, h),
            ),
            None => (0, 0, w, h),
        };
        let (b0, b1) = self.byte_span(x0, x1);
        for y in y0..y1 {
            let (Some(addr), Some(row)) = (self.row_addr(slots, y), self.canvas.row_bytes(y)) else {
                tracing::warn!("off-screen surface memory no longer mapped; not written back");
                return;
            };
            if let Err(e) = HostMemory.write(addr + b0 as u64, &row[b0..b1]) {
                tracing::warn!(error = %e, "writing an off-screen surface back");
                return;
            }
        }
    }

    /// Clears the surface's guest memory, rows' padding included, as the C
    /// server does for a surface whose data is not kept.
    fn clear_memory(&self, slots: &MemSlots) {
        let zeros = vec![0u8; self.stride.unsigned_abs() as usize];
        for y in 0..self.canvas.height() {
            let Some(addr) = self.row_addr(slots, y) else {
                tracing::warn!("off-screen surface memory not mapped; not cleared");
                return;
            };
            if let Err(e) = HostMemory.write(addr, &zeros) {
                tracing::warn!(error = %e, "clearing an off-screen surface");
                return;
            }
        }
    }

    /// Reads the picture from guest memory (a surface created with its data kept).
    fn read_in(&mut self, slots: &MemSlots) {
        let (_, len) = self.byte_span(0, self.canvas.width());
        for y in 0..self.canvas.height() {
            let Some(addr) = self.row_addr(slots, y) else {
                return;
            };
            let Some(row) = self.canvas.row_bytes_mut(y) else {
                return;
            };
            if HostMemory.read(addr, &mut row[..len]).is_err() {
                return;
            }
        }
    }
}

/// The off-screen surfaces of one device, by id (never 0: the primary).
#[derive(Default)]
pub(super) struct Offscreen {
    surfaces: HashMap<u32, GuestSurface>,
    bytes: u64,
}

/// What `QXL_SURFACE_CMD_CREATE` asks for.
pub(super) struct Create {
    pub(super) surface_id: u32,
    pub(super) format: u32,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) stride: i32,
    pub(super) data: u64,
    pub(super) group: u32,
    pub(super) flags: u32,
}

impl Offscreen {
    /// Creates a surface (replacing one of the same id). Its picture is what
    /// guest memory holds when the guest asks to keep it (or `loadvm`), else
    /// clear — and then its guest memory is cleared too, as the C server does.
    pub(super) fn create(&mut self, slots: &MemSlots, c: Create, loadvm: bool) -> Result<(), String> {
        if c.surface_id == 0 {
            return Err("surface 0 is the primary".into());
        }
        self.destroy(c.surface_id);
        let format = Format::from_spice(c.format).ok_or_else(|| format!("surface format {}", c.format))?;
        let canvas = Surface::new(c.width, c.height, format).map_err(|e| e.to_string())?;
        let mut surface = GuestSurface {
            canvas,
            mem: c.data,
            group: c.group,
            stride: c.stride,
        };
        let bytes = surface.bytes();
        if self.bytes + bytes > MAX_TOTAL_BYTES {
            return Err(format!(
                "off-screen surfaces would take {} MiB of host memory (limit {} MiB)",
                (self.bytes + bytes) >> 20,
                MAX_TOTAL_BYTES >> 20
            ));
        }
        if loadvm || c.flags & KEEP_DATA != 0 {
            surface.read_in(slots);
        } else {
            surface.clear_memory(slots);
        }
        self.bytes += bytes;
        self.surfaces.insert(c.surface_id, surface);
        Ok(())
    }

    pub(super) fn destroy(&mut self, surface_id: u32) {
        if let Some(s) = self.surfaces.remove(&surface_id) {
            self.bytes -= s.bytes();
        }
    }

    pub(super) fn clear(&mut self) {
        self.surfaces.clear();
        self.bytes = 0;
    }

    pub(super) fn get(&self, surface_id: u32) -> Option<&GuestSurface> {
        self.surfaces.get(&surface_id)
    }

    /// Takes a surface out to draw into it while the others are read.
    pub(super) fn take(&mut self, surface_id: u32) -> Option<GuestSurface> {
        self.surfaces.remove(&surface_id)
    }

    pub(super) fn put_back(&mut self, surface_id: u32, surface: GuestSurface) {
        self.surfaces.insert(surface_id, surface);
    }

    /// Writes every surface back into guest memory.
    pub(super) fn write_back_all(&self, slots: &MemSlots) {
        for s in self.surfaces.values() {
            s.write_back(slots, None);
        }
    }
}

/// The surfaces an operation may read: the off-screen ones, and the primary
/// when it is not the target.
pub(super) struct Lookup<'a> {
    pub(super) offscreen: &'a Offscreen,
    pub(super) primary: Option<SurfaceRef<'a>>,
}

impl Sources for Lookup<'_> {
    fn surface(&self, id: u32) -> Option<SurfaceRef<'_>> {
        if id == 0 {
            return self.primary;
        }
        self.offscreen.get(id).map(|s| s.canvas.view())
    }
}
