//! Encoders of QXL guest structures, for tests, fuzz seeds and the tests of
//! crates built on this one.
//!
//! Each function returns the packed little-endian bytes of one structure as
//! `spice/qxl_dev.h` lays it out; [`Arena`] places them in a [`FakeMemory`]
//! and returns their addresses, which are also `QXLPHYSICAL`s in the slot
//! [`host_slots`] sets up (QEMU's host group: identity mapping).

use crate::command::Rect;
use crate::memory::FakeMemory;
use crate::memslot::{MemSlot, MemSlotConfig, MemSlots};
use crate::monitors::Head;

/// A [`FakeMemory`] filled front to back.
#[derive(Debug, Clone)]
pub struct Arena {
    memory: FakeMemory,
    next: u64,
}

impl Arena {
    /// `size` zero bytes at `base`.
    pub fn new(base: u64, size: usize) -> Self {
        Self {
            memory: FakeMemory::new(base, size),
            next: base,
        }
    }

    /// Stores `bytes` at the next 8-byte aligned address and returns it.
    ///
    /// # Panics
    ///
    /// When the arena is full (a bug in the test).
    pub fn put(&mut self, bytes: &[u8]) -> u64 {
        let addr = self.next.next_multiple_of(8);
        self.memory.write(addr, bytes);
        self.next = addr + bytes.len() as u64;
        addr
    }

    /// Reserves `len` zero bytes and returns their address.
    pub fn reserve(&mut self, len: usize) -> u64 {
        self.put(&vec![0; len])
    }

    /// The memory.
    pub fn memory(&self) -> &FakeMemory {
        &self.memory
    }

    /// The memory, mutably (to play a guest that rewrites it).
    pub fn memory_mut(&mut self) -> &mut FakeMemory {
        &mut self.memory
    }
}

/// QEMU's memslot layout with group 0 slot 0 registered as the host slot:
/// generation 0, `virt_start` 0, `virt_end` `u64::MAX`, no delta.
pub fn host_slots() -> MemSlots {
    let mut slots = MemSlots::new(MemSlotConfig::QEMU).expect("QEMU config is valid");
    slots
        .add(
            0,
            0,
            MemSlot {
                generation: 0,
                virt_start: 0,
                virt_end: u64::MAX,
                addr_delta: 0,
            },
        )
        .expect("slot 0 of group 0 exists");
    slots
}

/// Little-endian byte writer.
#[derive(Debug, Default, Clone)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// Appends a `u8`.
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    /// Appends a `u16`.
    pub fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a `u32`.
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends an `i32`.
    pub fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a `u64`.
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a `QXLRect`.
    pub fn rect(self, r: Rect) -> Self {
        self.i32(r.top).i32(r.left).i32(r.bottom).i32(r.right)
    }
    /// Appends raw bytes.
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    /// Pads with zeros to `len` bytes (never truncates).
    pub fn pad_to(mut self, len: usize) -> Self {
        if self.0.len() < len {
            self.0.resize(len, 0);
        }
        self
    }
    /// The bytes.
    pub fn done(self) -> Vec<u8> {
        self.0
    }
}

/// A rectangle from `left, top, right, bottom`.
pub fn rect(left: i32, top: i32, right: i32, bottom: i32) -> Rect {
    Rect {
        top,
        left,
        bottom,
        right,
    }
}

/// A `QXLDataChunk` whose `data_size` is `data.len()`, followed by `data`.
pub fn data_chunk(next: u64, data: &[u8]) -> Vec<u8> {
    data_chunk_sized(data.len() as u32, next, data)
}

/// A `QXLDataChunk` with an arbitrary `data_size`, followed by `data`.
pub fn data_chunk_sized(data_size: u32, next: u64, data: &[u8]) -> Vec<u8> {
    Bytes::default()
        .u32(data_size)
        .u64(0)
        .u64(next)
        .bytes(data)
        .done()
}

/// `QXLBitmap` fields of a [`bitmap_image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitmapSpec {
    /// Descriptor id.
    pub id: u64,
    /// `SPICE_BITMAP_FMT_*`.
    pub format: u8,
    /// `QXL_BITMAP_*` flags.
    pub flags: u8,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Stride.
    pub stride: u32,
    /// `QXLPHYSICAL` of a `QXLPalette`, or 0.
    pub palette: u64,
    /// `QXLPHYSICAL` of the rows (DIRECT) or of the first `QXLDataChunk`.
    pub data: u64,
}

impl BitmapSpec {
    /// What QEMU's simple display sends: 32BIT, DIRECT | TOP_DOWN, stride `width * 4`.
    pub fn qemu(width: u32, height: u32, data: u64) -> Self {
        Self {
            id: 1 | (7 << 32),
            format: crate::image::bitmap_format::THIRTY_TWO_BIT,
            flags: crate::image::bitmap_flags::DIRECT | crate::image::bitmap_flags::TOP_DOWN,
            width,
            height,
            stride: width * 4,
            palette: 0,
            data,
        }
    }
}

/// A 48-byte `QXLImage` of type BITMAP.
pub fn bitmap_image(b: &BitmapSpec) -> Vec<u8> {
    Bytes::default()
        .u64(b.id)
        .u8(crate::image::image_type::BITMAP)
        .u8(0)
        .u32(b.width)
        .u32(b.height)
        .u8(b.format)
        .u8(b.flags)
        .u32(b.width)
        .u32(b.height)
        .u32(b.stride)
        .u64(b.palette)
        .u64(b.data)
        .done()
}

/// A 48-byte `QXLImage` of type SURFACE.
pub fn surface_image(id: u64, surface_id: u32) -> Vec<u8> {
    Bytes::default()
        .u64(id)
        .u8(crate::image::image_type::SURFACE)
        .u8(0)
        .u32(0)
        .u32(0)
        .u32(surface_id)
        .pad_to(48)
        .done()
}

/// A `QXLImage` of type QUIC whose embedded first chunk holds `first` and links to `next`.
pub fn quic_image(id: u64, width: u32, height: u32, data_size: u32, first: &[u8], next: u64) -> Vec<u8> {
    Bytes::default()
        .u64(id)
        .u8(crate::image::image_type::QUIC)
        .u8(0)
        .u32(width)
        .u32(height)
        .u32(data_size)
        .bytes(&data_chunk(next, first))
        .pad_to(48)
        .done()
}

/// A `QXLPalette`.
pub fn palette(unique: u64, ents: &[u32]) -> Vec<u8> {
    let mut b = Bytes::default().u64(unique).u16(ents.len() as u16);
    for &e in ents {
        b = b.u32(e);
    }
    b.done()
}

/// Fields of a [`drawable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawableSpec {
    /// Target surface.
    pub surface_id: u32,
    /// `QXL_EFFECT_*`.
    pub effect: u8,
    /// `QXL_DRAW_*`.
    pub draw_type: u8,
    /// `self_bitmap`.
    pub self_bitmap: u8,
    /// `self_bitmap_area`.
    pub self_bitmap_area: Rect,
    /// `bbox`.
    pub bbox: Rect,
    /// `clip.type`.
    pub clip_type: u32,
    /// `clip.data`.
    pub clip_data: u64,
    /// `mm_time`.
    pub mm_time: u32,
    /// `surfaces_dest`.
    pub surfaces_dest: [i32; 3],
    /// `surfaces_rects`.
    pub surfaces_rects: [Rect; 3],
    /// The draw-type union, at most 68 bytes (zero-padded).
    pub op: Vec<u8>,
}

impl DrawableSpec {
    /// QEMU's simple display: COPY of `op` into `bbox` of surface 0, effect
    /// OPAQUE, no clip, no dependencies.
    pub fn qemu_copy(bbox: Rect, op: Vec<u8>) -> Self {
        Self {
            surface_id: 0,
            effect: 1,
            draw_type: crate::command::draw_type::COPY,
            self_bitmap: 0,
            self_bitmap_area: Rect::default(),
            bbox,
            clip_type: 0,
            clip_data: 0,
            mm_time: 0,
            surfaces_dest: [-1; 3],
            surfaces_rects: [Rect::default(); 3],
            op,
        }
    }
}

/// A 191-byte `QXLDrawable`.
pub fn drawable(d: &DrawableSpec) -> Vec<u8> {
    let mut b = Bytes::default()
        .u64(0)
        .u32(d.surface_id)
        .u8(d.effect)
        .u8(d.draw_type)
        .u8(d.self_bitmap)
        .rect(d.self_bitmap_area)
        .rect(d.bbox)
        .u32(d.clip_type)
        .u64(d.clip_data)
        .u32(d.mm_time);
    for s in d.surfaces_dest {
        b = b.i32(s);
    }
    for r in d.surfaces_rects {
        b = b.rect(r);
    }
    b.bytes(&d.op).pad_to(191).done()
}

/// A 44-byte `QXLCopy` (`mask_bitmap` 0: no mask).
pub fn copy_op(
    src_bitmap: u64,
    src_area: Rect,
    rop_descriptor: u16,
    scale_mode: u8,
    mask_bitmap: u64,
) -> Vec<u8> {
    Bytes::default()
        .u64(src_bitmap)
        .rect(src_area)
        .u16(rop_descriptor)
        .u8(scale_mode)
        .u8(0)
        .i32(0)
        .i32(0)
        .u64(mask_bitmap)
        .done()
}

/// A `QXLClipRects` holding all of `rects` in its embedded chunk, linking to `next`.
pub fn clip_rects(num_rects: u32, rects: &[Rect], next: u64) -> Vec<u8> {
    let data = rects.iter().fold(Bytes::default(), |b, &r| b.rect(r)).done();
    Bytes::default()
        .u32(num_rects)
        .bytes(&data_chunk(next, &data))
        .done()
}

/// Sets `QXLImageDescriptor.flags` (`QXL_IMAGE_*`) of an encoded `QXLImage`.
pub fn with_image_flags(mut image: Vec<u8>, flags: u8) -> Vec<u8> {
    if let Some(f) = image.get_mut(9) {
        *f = flags;
    }
    image
}

/// A 20-byte `QXLBrush` of type SOLID.
pub fn solid_brush(color: u32) -> Vec<u8> {
    Bytes::default().u32(1).u32(color).pad_to(20).done()
}

/// A 20-byte `QXLBrush` of type PATTERN.
pub fn pattern_brush(pat: u64, x: i32, y: i32) -> Vec<u8> {
    Bytes::default().u32(2).u64(pat).i32(x).i32(y).done()
}

/// A 20-byte `QXLBrush` of type NONE.
pub fn no_brush() -> Vec<u8> {
    vec![0; 20]
}

/// A `QXLPathSeg`: `flags`, the number of points, then the 28.4 points.
pub fn path_seg(flags: u32, points: &[(i32, i32)]) -> Vec<u8> {
    points
        .iter()
        .fold(
            Bytes::default().u32(flags).u32(points.len() as u32),
            |b, &(x, y)| b.i32(x).i32(y),
        )
        .done()
}

/// A `QXLPath` whose embedded chunk holds `first` and links to `next`.
pub fn path(data_size: u32, first: &[u8], next: u64) -> Vec<u8> {
    Bytes::default()
        .u32(data_size)
        .bytes(&data_chunk(next, first))
        .done()
}

/// Fields of a [`stroke_op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrokeSpec {
    /// `QXLPHYSICAL` of the `QXLPath`.
    pub path: u64,
    /// `attr.flags` (`SPICE_LINE_FLAGS_*`).
    pub attr_flags: u8,
    /// `attr.join_style`.
    pub join_style: u8,
    /// `attr.end_style`.
    pub end_style: u8,
    /// `attr.style_nseg`.
    pub style_nseg: u8,
    /// `attr.width` (28.4).
    pub width: i32,
    /// `attr.miter_limit` (28.4).
    pub miter_limit: i32,
    /// `attr.style`: `QXLPHYSICAL` of `style_nseg` `QXLFIXED`s, or 0.
    pub style: u64,
    /// The 20-byte `QXLBrush` ([`solid_brush`], [`pattern_brush`], [`no_brush`]).
    pub brush: Vec<u8>,
    /// `fore_mode`.
    pub fore_mode: u16,
    /// `back_mode`.
    pub back_mode: u16,
}

impl StrokeSpec {
    /// An unstyled one-pixel line along `path` with a solid brush, ROPD_OP_PUT.
    pub fn solid(path: u64, color: u32) -> Self {
        Self {
            path,
            attr_flags: 0,
            join_style: 0,
            end_style: 0,
            style_nseg: 0,
            width: 0,
            miter_limit: 0,
            style: 0,
            brush: solid_brush(color),
            fore_mode: 8,
            back_mode: 8,
        }
    }
}

/// A 52-byte `QXLStroke`.
pub fn stroke_op(s: &StrokeSpec) -> Vec<u8> {
    Bytes::default()
        .u64(s.path)
        .u8(s.attr_flags)
        .u8(s.join_style)
        .u8(s.end_style)
        .u8(s.style_nseg)
        .i32(s.width)
        .i32(s.miter_limit)
        .u64(s.style)
        .bytes(&s.brush)
        .pad_to(48)
        .u16(s.fore_mode)
        .u16(s.back_mode)
        .done()
}

/// `QXLFIXED` dash lengths, for [`StrokeSpec::style`].
pub fn fixed_array(values: &[i32]) -> Vec<u8> {
    values.iter().fold(Bytes::default(), |b, &v| b.i32(v)).done()
}

/// A `QXLRasterGlyph`: its header then `data` (which should be `height` rows
/// of `ceil(width * bpp / 8)` bytes).
pub fn raster_glyph(
    render_pos: (i32, i32),
    glyph_origin: (i32, i32),
    width: u16,
    height: u16,
    data: &[u8],
) -> Vec<u8> {
    Bytes::default()
        .i32(render_pos.0)
        .i32(render_pos.1)
        .i32(glyph_origin.0)
        .i32(glyph_origin.1)
        .u16(width)
        .u16(height)
        .bytes(data)
        .done()
}

/// A `QXLString` whose embedded chunk holds `first` and links to `next`.
pub fn string(data_size: u32, length: u16, flags: u16, first: &[u8], next: u64) -> Vec<u8> {
    Bytes::default()
        .u32(data_size)
        .u16(length)
        .u16(flags)
        .bytes(&data_chunk(next, first))
        .done()
}

/// A 68-byte `QXLText`; the brushes are 20-byte `QXLBrush`es.
pub fn text_op(
    str_: u64,
    back_area: Rect,
    fore_brush: &[u8],
    back_brush: &[u8],
    fore_mode: u16,
    back_mode: u16,
) -> Vec<u8> {
    Bytes::default()
        .u64(str_)
        .rect(back_area)
        .bytes(fore_brush)
        .pad_to(44)
        .bytes(back_brush)
        .pad_to(64)
        .u16(fore_mode)
        .u16(back_mode)
        .done()
}

/// A 24-byte `QXLTransform`.
pub fn transform(t: [u32; 6]) -> Vec<u8> {
    t.iter().fold(Bytes::default(), |b, &v| b.u32(v)).done()
}

/// A 44-byte `QXLComposite`; pointers may be 0.
pub fn composite_op(
    flags: u32,
    src: u64,
    src_transform: u64,
    mask: u64,
    mask_transform: u64,
    src_origin: (i16, i16),
    mask_origin: (i16, i16),
) -> Vec<u8> {
    Bytes::default()
        .u32(flags)
        .u64(src)
        .u64(src_transform)
        .u64(mask)
        .u64(mask_transform)
        .u16(src_origin.0 as u16)
        .u16(src_origin.1 as u16)
        .u16(mask_origin.0 as u16)
        .u16(mask_origin.1 as u16)
        .done()
}

fn cursor_cmd(cmd_type: u8, body: Bytes) -> Vec<u8> {
    Bytes::default()
        .u64(0)
        .u8(cmd_type)
        .bytes(&body.done())
        .pad_to(150)
        .done()
}

/// A `QXLCursorCmd` SET.
pub fn cursor_set(x: i16, y: i16, visible: bool, shape: u64) -> Vec<u8> {
    cursor_cmd(
        0,
        Bytes::default()
            .u16(x as u16)
            .u16(y as u16)
            .u8(visible.into())
            .u64(shape),
    )
}

/// A `QXLCursorCmd` MOVE.
pub fn cursor_move(x: i16, y: i16) -> Vec<u8> {
    cursor_cmd(1, Bytes::default().u16(x as u16).u16(y as u16))
}

/// A `QXLCursorCmd` HIDE.
pub fn cursor_hide() -> Vec<u8> {
    cursor_cmd(2, Bytes::default())
}

/// A `QXLCursorCmd` TRAIL.
pub fn cursor_trail(length: u16, frequency: u16) -> Vec<u8> {
    cursor_cmd(3, Bytes::default().u16(length).u16(frequency))
}

/// Header fields of a [`cursor_shape`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorSpec {
    /// `unique`.
    pub unique: u64,
    /// `SPICE_CURSOR_TYPE_*`.
    pub cursor_type: u16,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Hotspot column.
    pub hot_x: u16,
    /// Hotspot row.
    pub hot_y: u16,
    /// `data_size`.
    pub data_size: u32,
}

/// A `QXLCursor` whose embedded chunk holds `first` and links to `next`.
pub fn cursor_shape(c: &CursorSpec, first: &[u8], next: u64) -> Vec<u8> {
    Bytes::default()
        .u64(c.unique)
        .u16(c.cursor_type)
        .u16(c.width)
        .u16(c.height)
        .u16(c.hot_x)
        .u16(c.hot_y)
        .u32(c.data_size)
        .bytes(&data_chunk(next, first))
        .done()
}

/// A 32-byte `QXLUpdateCmd`.
pub fn update_cmd(area: Rect, update_id: u32, surface_id: u32) -> Vec<u8> {
    Bytes::default()
        .u64(0)
        .rect(area)
        .u32(update_id)
        .u32(surface_id)
        .done()
}

/// A 41-byte `QXLSurfaceCmd` CREATE.
pub fn surface_create(
    surface_id: u32,
    format: u32,
    width: u32,
    height: u32,
    stride: i32,
    data: u64,
) -> Vec<u8> {
    Bytes::default()
        .u64(0)
        .u32(surface_id)
        .u8(0)
        .u32(0)
        .u32(format)
        .u32(width)
        .u32(height)
        .i32(stride)
        .u64(data)
        .done()
}

/// A 41-byte `QXLSurfaceCmd` DESTROY.
pub fn surface_destroy(surface_id: u32) -> Vec<u8> {
    Bytes::default().u64(0).u32(surface_id).u8(1).pad_to(41).done()
}

/// A `QXLMessage` with `text` and a terminating NUL.
pub fn message(text: &[u8]) -> Vec<u8> {
    Bytes::default().u64(0).bytes(text).u8(0).done()
}

/// A `QXLMonitorsConfig`.
pub fn monitors_config(count: u16, max_allowed: u16, heads: &[Head]) -> Vec<u8> {
    heads
        .iter()
        .fold(Bytes::default().u16(count).u16(max_allowed), |b, h| {
            b.u32(h.id)
                .u32(h.surface_id)
                .u32(h.width)
                .u32(h.height)
                .u32(h.x)
                .u32(h.y)
                .u32(h.flags)
        })
        .done()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_c_headers() {
        assert_eq!(bitmap_image(&BitmapSpec::qemu(1, 1, 0)).len(), 48);
        assert_eq!(surface_image(0, 0).len(), 48);
        assert_eq!(
            drawable(&DrawableSpec::qemu_copy(Rect::default(), vec![])).len(),
            191
        );
        assert_eq!(copy_op(0, Rect::default(), 0, 0, 0).len(), 44);
        assert_eq!(cursor_set(0, 0, true, 0).len(), 150);
        assert_eq!(
            cursor_shape(
                &CursorSpec {
                    unique: 0,
                    cursor_type: 0,
                    width: 0,
                    height: 0,
                    hot_x: 0,
                    hot_y: 0,
                    data_size: 0
                },
                &[],
                0
            )
            .len(),
            42
        );
        assert_eq!(update_cmd(Rect::default(), 0, 0).len(), 32);
        assert_eq!(surface_create(0, 0, 0, 0, 0, 0).len(), 41);
        assert_eq!(surface_destroy(0).len(), 41);
        assert_eq!(clip_rects(0, &[], 0).len(), 24);
        assert_eq!(stroke_op(&StrokeSpec::solid(0, 0)).len(), 52);
        assert_eq!(pattern_brush(0, 0, 0).len(), 20);
        assert_eq!(solid_brush(0).len(), 20);
        assert_eq!(path(0, &[], 0).len(), 24);
        assert_eq!(string(0, 0, 0, &[], 0).len(), 28);
        assert_eq!(raster_glyph((0, 0), (0, 0), 0, 0, &[]).len(), 20);
        assert_eq!(
            text_op(0, Rect::default(), &no_brush(), &no_brush(), 0, 0).len(),
            68
        );
        assert_eq!(composite_op(0, 0, 0, 0, 0, (0, 0), (0, 0)).len(), 44);
        assert_eq!(transform([0; 6]).len(), 24);
        assert_eq!(palette(0, &[]).len(), 10);
        assert_eq!(
            monitors_config(
                0,
                0,
                &[Head {
                    id: 0,
                    surface_id: 0,
                    width: 0,
                    height: 0,
                    x: 0,
                    y: 0,
                    flags: 0
                }]
            )
            .len(),
            32
        );
    }
}
