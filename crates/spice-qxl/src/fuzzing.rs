//! Fuzz oracle for the guest-facing parsers.
//!
//! [`fuzz_parse`] accepts any byte slice. It must not panic, loop forever or
//! allocate without bound; the only panics allowed are its assertions, each
//! an invariant of this crate.
//!
//! # Input layout
//!
//! The whole input is guest memory mapped at [`FUZZ_BASE`]. Its first bytes
//! also steer the oracle:
//!
//! - bytes 0–1: offset of the command structure in the input (little endian,
//!   modulo the input length);
//! - byte 2: command type (low 3 bits; 6 and 7 are invalid types);
//! - byte 3: bits 0–1 are `QXL_COMMAND_FLAG_*`; bit 2 selects memslot group 1
//!   (see [`fuzz_slots`]) instead of the identity-mapped group 0; bit 3 gives
//!   the command pointer a wrong generation;
//! - bytes 4–15: a primary surface `{u16 width, u16 height, i32 stride,
//!   u8 format index, …}` validated against the same memory.
//!
//! Pointers inside the input are raw addresses (`FUZZ_BASE + offset`) for
//! group 0, and `(1 << 56) | (1 << 48) | offset` for group 1.

use crate::command::{
    composite_flags, line_flags, parse_command, Command, CommandExt, CursorCommand, DrawOp, Parsed,
    QXL_CMD_CURSOR, QXL_CMD_DRAW, QXL_CMD_MESSAGE, QXL_CMD_SURFACE, QXL_CMD_UPDATE, QXL_COMMAND_FLAG_COMPAT,
};
use crate::guest::{Guest, ParseLimits};
use crate::image::Image;
use crate::memory::{FakeMemory, GuestMemory};
use crate::memslot::{MemSlot, MemSlotConfig, MemSlots};
use crate::monitors::read_monitors_config;
use crate::surface::{surface_format, translate_primary, PrimarySurface, MAX_SURFACE_BYTES};

/// Where the fuzz input is mapped.
pub const FUZZ_BASE: u64 = 0x10_0000;
/// Most monitors [`fuzz_parse`] asks for.
const MONITOR_LIMIT: usize = 4;

/// Limits small enough that each fuzz input runs in microseconds.
pub fn fuzz_limits() -> ParseLimits {
    ParseLimits {
        n_surfaces: 16,
        max_chunks: 64,
        max_image_bytes: 1 << 20,
        max_command_bytes: 4 << 20,
        max_clip_rects: 256,
        max_message_len: 4096,
        max_cursor_side: 64,
        max_cursor_bytes: 64 << 10,
        max_path_segments: 64,
        max_path_points: 1024,
        max_glyphs: 64,
    }
}

/// QEMU's memslot geometry with two slots registered: group 0 slot 0 maps
/// everything to itself (QEMU's host group); group 1 slot 1, generation 1,
/// maps guest offsets `0..len` to `FUZZ_BASE..FUZZ_BASE + len`.
pub fn fuzz_slots(len: usize) -> MemSlots {
    let mut slots = crate::testkit::host_slots();
    debug_assert_eq!(slots.config(), MemSlotConfig::QEMU);
    let added = slots.add(
        1,
        1,
        MemSlot {
            generation: 1,
            virt_start: FUZZ_BASE,
            virt_end: FUZZ_BASE + len as u64,
            addr_delta: FUZZ_BASE,
        },
    );
    debug_assert!(added.is_ok());
    slots
}

/// The oracle: parses a command, a monitors config and a primary surface out of `data`.
pub fn fuzz_parse(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let len = data.len();
    let memory = FakeMemory::from_bytes(FUZZ_BASE, data.to_vec());
    let slots = fuzz_slots(len);
    let guest = Guest::new(&slots, &memory).with_limits(fuzz_limits());
    let offset = u64::from(u16::from_le_bytes([data[0], data[1]])) % len as u64;
    let group = u32::from(data[3] >> 2 & 1);
    let generation = group ^ u32::from(data[3] >> 3 & 1);
    let phys = match group {
        0 => slots.physical(0, generation, FUZZ_BASE + offset),
        _ => slots.physical(1, generation, offset),
    };
    let ext = CommandExt {
        data: phys,
        cmd_type: u32::from(data[2] & 7),
        group_id: group,
        flags: u32::from(data[3] & 3),
    };
    let parsed = parse_command(&guest, &ext);
    // The release info exists exactly when the top-level structure can be read.
    let compat = ext.flags & QXL_COMMAND_FLAG_COMPAT != 0;
    let size = match ext.cmd_type {
        QXL_CMD_DRAW if compat => Some(128),
        QXL_CMD_DRAW => Some(191),
        QXL_CMD_UPDATE => Some(32),
        QXL_CMD_CURSOR => Some(150),
        QXL_CMD_MESSAGE => Some(8),
        QXL_CMD_SURFACE => Some(41),
        _ => None,
    };
    let readable =
        size.is_some_and(|size| slots.translate(phys, group, size).is_ok() && offset + size <= len as u64);
    assert_eq!(parsed.release.is_some(), readable);
    if let Some(release) = parsed.release {
        assert_eq!(release.group_id, group);
        assert_eq!(release.addr, FUZZ_BASE + offset);
    }
    if let Ok(command) = &parsed.command {
        check_command(command, &guest.limits);
    }
    check_rows_in_place(&guest, &memory, &ext, &parsed);

    if let Ok((max_allowed, heads)) = read_monitors_config(&guest, phys, group, MONITOR_LIMIT) {
        assert!(!heads.is_empty() && heads.len() <= MONITOR_LIMIT);
        assert!(usize::from(max_allowed) <= MONITOR_LIMIT && heads.len() <= usize::from(max_allowed));
    }

    if len >= 16 {
        let formats = [
            surface_format::XRGB32,
            surface_format::ARGB32,
            surface_format::RGB555,
            surface_format::RGB565,
            surface_format::A8,
            surface_format::A1,
            0,
            24,
        ];
        let primary = PrimarySurface {
            width: u16::from_le_bytes([data[4], data[5]]).into(),
            height: u16::from_le_bytes([data[6], data[7]]).into(),
            stride: i32::from_le_bytes([data[8], data[9], data[10], data[11]]),
            format: formats[usize::from(data[12] & 7)],
            mouse_mode: 1,
            flags: 0,
            mem: phys,
            group_id: group,
        };
        if let Ok(host) = translate_primary(&slots, &primary) {
            let size = u64::from(primary.height) * u64::from(primary.stride.unsigned_abs());
            assert!(size <= MAX_SURFACE_BYTES);
            assert_eq!(slots.translate(primary.mem, group, size), Ok(host));
        }
    }
}

/// Invariants every accepted command satisfies.
fn check_command(command: &Command, limits: &ParseLimits) {
    match command {
        Command::Draw(d) => {
            assert!(d.surface_id < limits.n_surfaces);
            for s in d.surfaces_dest {
                assert!(s == -1 || (s >= 0 && (s as u32) < limits.n_surfaces));
            }
            if let crate::command::Clip::Rects(r) = &d.clip {
                assert!(r.len() <= limits.max_clip_rects as usize);
            }
            if let DrawOp::Copy(c) = &d.op {
                assert!(!d.self_bitmap);
                if let Image::Bitmap(b) = &c.src {
                    assert!(c.src_area.is_within(b.width, b.height));
                }
            }
            check_new_ops(&d.op, limits);
            for image in d.op.images() {
                check_image(image, limits);
            }
        }
        Command::Cursor(CursorCommand::Set { shape: Some(s), .. }) => {
            assert!(s.width > 0 && s.width <= limits.max_cursor_side);
            assert!(s.height > 0 && s.height <= limits.max_cursor_side);
            if let Some(needed) = s.required_len() {
                assert!(s.data.len() >= needed);
            }
            if let Some(argb) = s.to_argb() {
                assert_eq!(argb.len(), usize::from(s.width) * usize::from(s.height) * 4);
            }
        }
        Command::Message(m) => assert!(m.len() < limits.max_message_len as usize && !m.contains(&0)),
        Command::Update(u) => assert!(u.surface_id < limits.n_surfaces),
        Command::Surface(s) => {
            let id = match s {
                crate::command::SurfaceCommand::Create { surface_id, .. } => surface_id,
                crate::command::SurfaceCommand::Destroy { surface_id } => surface_id,
            };
            assert!(*id < limits.n_surfaces);
        }
        _ => {}
    }
}

/// Invariants of STROKE, TEXT and COMPOSITE operands.
fn check_new_ops(op: &DrawOp, limits: &ParseLimits) {
    match op {
        DrawOp::Stroke(s) => {
            assert!(s.path.len() <= limits.max_path_segments as usize);
            let points: usize = s.path.iter().map(|seg| seg.points.len()).sum();
            assert!(points <= limits.max_path_points as usize);
            if s.attr.flags & line_flags::STYLED == 0 {
                assert!(s.attr.style.is_empty());
            }
            assert!(s.attr.style.len() <= usize::from(u8::MAX));
        }
        DrawOp::Text(t) => {
            assert!(matches!(t.bpp, 1 | 4 | 8));
            assert!(t.glyphs.len() <= limits.max_glyphs as usize);
            let mut bytes = 0u64;
            for g in &t.glyphs {
                assert_eq!(
                    u64::from(g.stride),
                    (u64::from(g.width) * u64::from(t.bpp)).div_ceil(8)
                );
                assert_eq!(g.data.len() as u64, u64::from(g.stride) * u64::from(g.height));
                bytes += g.data.len() as u64;
            }
            assert!(bytes <= limits.max_image_bytes);
        }
        DrawOp::Composite(c) => {
            assert!(c.mask.is_some() || c.mask_transform.is_none());
            let has = |bit: u32| c.spice_flags() & bit != 0;
            assert_eq!(has(composite_flags::HAS_MASK), c.mask.is_some());
            assert_eq!(has(composite_flags::HAS_SRC_TRANSFORM), c.src_transform.is_some());
            assert_eq!(
                has(composite_flags::HAS_MASK_TRANSFORM),
                c.mask_transform.is_some()
            );
        }
        _ => {}
    }
}

/// Parsing with the rows of 32-bit bitmaps left in guest memory gives the
/// same outcome, and the range it names holds exactly the rows copied.
fn check_rows_in_place(guest: &Guest<'_>, memory: &FakeMemory, ext: &CommandExt, copied: &Parsed) {
    let in_place = parse_command(&(*guest).with_bitmap_rows_in_place(), ext);
    assert_eq!(in_place.release, copied.release);
    match (&in_place.command, &copied.command) {
        (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
        // Memory that does not read: with the rows in place, whoever copies
        // them finds out then (and must cope).
        (Ok(_), Err(crate::ParseError::Memory { .. })) => return,
        (a, b) => panic!("rows in place: {a:?}; copied: {b:?}"),
    }
    let bitmaps = |p: &Parsed| match &p.command {
        Ok(Command::Draw(d)) => match &d.op {
            DrawOp::Copy(c) => match &c.src {
                Image::Bitmap(b) => Some(b.clone()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    if let (Some(a), Some(b)) = (bitmaps(copied), bitmaps(&in_place)) {
        match b.guest_rows {
            Some(rows) => {
                assert!(b.data.is_empty());
                let mut read = vec![0; rows.len as usize];
                memory
                    .read(rows.host, &mut read)
                    .expect("the named range is readable");
                assert_eq!(read, a.data, "the rows in place are the rows copied");
            }
            None => assert_eq!(a, b),
        }
    }
}

fn check_image(image: &Image, limits: &ParseLimits) {
    match image {
        Image::Bitmap(b) => {
            assert_eq!(b.data.len() as u64, u64::from(b.stride) * u64::from(b.height));
            assert!(b.data.len() as u64 <= limits.max_image_bytes);
            if let Some(px) = b.to_xrgb() {
                assert_eq!(px.len() as u64, u64::from(b.width) * u64::from(b.height) * 4);
                // The rows drawn without conversion are the converted ones.
                if let Some(rows) = b.xrgb_rows() {
                    let row = b.width as usize * 4;
                    for (y, packed) in px.chunks_exact(row).enumerate() {
                        let at = y * b.stride as usize;
                        assert_eq!(&rows[at..at + row], packed);
                    }
                }
            }
        }
        Image::Surface { surface_id } => assert!(*surface_id < limits.n_surfaces),
        Image::Quic { data, .. } => assert!(data.len() as u64 <= limits.max_image_bytes),
    }
}

/// Valid inputs for [`fuzz_parse`], one per command kind and one per draw
/// type with pointers to follow (COPY, STROKE, TEXT, COMPOSITE), to start a
/// corpus from (random mutations of them reach deep into the parsers). New
/// seeds go at the end: the corpus names them by index.
pub fn fuzz_seeds() -> Vec<Vec<u8>> {
    use crate::testkit::{self as kit, Arena, BitmapSpec, CursorSpec, DrawableSpec};
    const SIZE: usize = 1024;
    // `header` is filled in last: offset of the command, type, flags/group byte.
    let finish = |mut arena: Arena, cmd: u64, cmd_type: u8, ctl: u8| {
        let offset = (cmd - FUZZ_BASE) as u16;
        let mem = arena.memory_mut().as_bytes_mut();
        mem[0..2].copy_from_slice(&offset.to_le_bytes());
        mem[2] = cmd_type;
        mem[3] = ctl;
        // A small primary surface over the first bytes: 4x2 xRGB, stride -16.
        mem[4..6].copy_from_slice(&4u16.to_le_bytes());
        mem[6..8].copy_from_slice(&2u16.to_le_bytes());
        mem[8..12].copy_from_slice(&(-16i32).to_le_bytes());
        mem[12] = 0;
        mem.to_vec()
    };
    let new_arena = || {
        let mut a = Arena::new(FUZZ_BASE, SIZE);
        a.reserve(16);
        a
    };
    let mut seeds = Vec::new();

    // QEMU's DRAW_COPY with a flat 32-bit bitmap.
    let mut a = new_arena();
    let pixels = a.put(&[0x11; 4 * 4 * 2]);
    let image = a.put(&kit::bitmap_image(&BitmapSpec::qemu(4, 2, pixels)));
    let op = kit::copy_op(image, kit::rect(0, 0, 4, 2), 8, 0, 0);
    let cmd = a.put(&kit::drawable(&DrawableSpec::qemu_copy(
        kit::rect(0, 0, 4, 2),
        op,
    )));
    seeds.push(finish(a, cmd, 1, 0));

    // DRAW_COPY of a chunked 8-bit palette bitmap, clipped by two rects.
    let mut a = new_arena();
    let second = a.put(&kit::data_chunk(0, &[1, 0, 1, 0]));
    let first = a.put(&kit::data_chunk(second, &[0, 1, 0, 1]));
    let palette = a.put(&kit::palette(9, &[0x00ff_0000, 0x0000_ff00]));
    let spec = BitmapSpec {
        format: crate::image::bitmap_format::EIGHT_BIT,
        flags: 0,
        palette,
        data: first,
        stride: 4,
        ..BitmapSpec::qemu(4, 2, 0)
    };
    let image = a.put(&kit::bitmap_image(&spec));
    let clip = a.put(&kit::clip_rects(
        2,
        &[kit::rect(0, 0, 1, 1), kit::rect(1, 1, 2, 2)],
        0,
    ));
    let op = kit::copy_op(image, kit::rect(0, 0, 4, 2), 8, 0, 0);
    let mut d = DrawableSpec::qemu_copy(kit::rect(0, 0, 4, 2), op);
    d.clip_type = 1;
    d.clip_data = clip;
    let cmd = a.put(&kit::drawable(&d));
    seeds.push(finish(a, cmd, 1, 0));

    // Cursor SET with a 4x4 ALPHA shape.
    let mut a = new_arena();
    let spec = CursorSpec {
        unique: 1,
        cursor_type: 0,
        width: 4,
        height: 4,
        hot_x: 1,
        hot_y: 1,
        data_size: 64,
    };
    let shape = a.put(&kit::cursor_shape(&spec, &[0x80; 64], 0));
    let cmd = a.put(&kit::cursor_set(10, 20, true, shape));
    seeds.push(finish(a, cmd, 3, 0));

    // Surface create, update, message, monitors config (read at the command address).
    let mut a = new_arena();
    let mem = a.reserve(64);
    let cmd = a.put(&kit::surface_create(1, 32, 4, 4, 16, mem));
    seeds.push(finish(a, cmd, 5, 0));
    let mut a = new_arena();
    let cmd = a.put(&kit::update_cmd(kit::rect(0, 0, 4, 4), 7, 0));
    seeds.push(finish(a, cmd, 2, 0));
    let mut a = new_arena();
    let cmd = a.put(&kit::message(b"guest says hello"));
    seeds.push(finish(a, cmd, 4, 0));
    let mut a = new_arena();
    let head = crate::monitors::Head {
        id: 0,
        surface_id: 0,
        width: 4,
        height: 4,
        x: 0,
        y: 0,
        flags: 0,
    };
    let cmd = a.put(&kit::monitors_config(1, 2, &[head]));
    seeds.push(finish(a, cmd, 0, 0));

    // Appended after the original seeds so their names (qxl-<index>) stay stable.
    let draw = |draw_type: u8, op: Vec<u8>| {
        let mut d = DrawableSpec::qemu_copy(kit::rect(0, 0, 8, 8), op);
        d.draw_type = draw_type;
        d.effect = 0;
        kit::drawable(&d)
    };
    use crate::command::{draw_type, path_flags, string_flags};

    // STROKE: a dashed two-segment path split over two chunks, solid brush.
    let mut a = new_arena();
    let tail = kit::path_seg(path_flags::END | path_flags::CLOSE, &[(64, 64)]);
    let head = kit::path_seg(path_flags::BEGIN, &[(0, 0), (128, 0)]);
    let second = a.put(&kit::data_chunk(0, &tail));
    let path = a.put(&kit::path((head.len() + tail.len()) as u32, &head, second));
    let style = a.put(&kit::fixed_array(&[48, 32]));
    let stroke = kit::StrokeSpec {
        attr_flags: line_flags::STYLED,
        style_nseg: 2,
        style,
        ..kit::StrokeSpec::solid(path, 0x00ff_8000)
    };
    let cmd = a.put(&draw(draw_type::STROKE, kit::stroke_op(&stroke)));
    seeds.push(finish(a, cmd, 1, 0));

    // TEXT: three 1-bpp glyphs over two chunks, background filled.
    let mut a = new_arena();
    let glyphs = [
        kit::raster_glyph((0, 6), (0, -6), 5, 6, &[0x70, 0x88, 0xf8, 0x88, 0x88, 0x88]),
        kit::raster_glyph((6, 6), (0, -6), 9, 2, &[0xff, 0x80, 0x80, 0x80]),
    ];
    let more = kit::raster_glyph((16, 6), (0, -1), 1, 1, &[0x80]);
    let first = glyphs.concat();
    let second = a.put(&kit::data_chunk(0, &more));
    let size = (first.len() + more.len()) as u32;
    let flags = string_flags::RASTER_A1 | string_flags::RASTER_TOP_DOWN;
    let string = a.put(&kit::string(size, 3, flags, &first, second));
    let op = kit::text_op(
        string,
        kit::rect(0, 0, 17, 8),
        &kit::solid_brush(0),
        &kit::solid_brush(0x00ff_ffff),
        8,
        8,
    );
    let cmd = a.put(&draw(draw_type::TEXT, op));
    seeds.push(finish(a, cmd, 1, 0));

    // COMPOSITE: OVER of a cached ARGB bitmap through a scaling transform,
    // with an 8-bit alpha mask and its own transform.
    let mut a = new_arena();
    let pixels = a.put(&[0x80; 2 * 2 * 4]);
    let mut spec = BitmapSpec::qemu(2, 2, pixels);
    spec.format = crate::image::bitmap_format::RGBA;
    let src = a.put(&kit::with_image_flags(
        kit::bitmap_image(&spec),
        crate::image::image_flags::CACHE,
    ));
    let alpha = a.put(&[0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00]);
    let mask_spec = BitmapSpec {
        format: crate::image::bitmap_format::EIGHT_BIT_A,
        stride: 4,
        ..BitmapSpec::qemu(2, 2, alpha)
    };
    let mask = a.put(&kit::bitmap_image(&mask_spec));
    let half = a.put(&kit::transform([1 << 15, 0, 0, 0, 1 << 15, 0]));
    let shift = a.put(&kit::transform([1 << 16, 0, 1 << 16, 0, 1 << 16, 0]));
    let flags = 3 | 1 << 8 | 1 << 14 | composite_flags::SOURCE_OPAQUE;
    let op = kit::composite_op(flags, src, half, mask, shift, (1, 2), (-1, 0));
    let cmd = a.put(&draw(draw_type::COMPOSITE, op));
    seeds.push(finish(a, cmd, 1, 0));
    seeds
}
