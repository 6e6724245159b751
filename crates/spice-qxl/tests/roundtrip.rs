//! Well-formed commands, as QEMU and guest drivers send them, parse into the expected values.

use spice_qxl::command::{cursor_type, draw_type, QXL_COMMAND_FLAG_COMPAT_16BPP};
use spice_qxl::image::{bitmap_flags, bitmap_format};
use spice_qxl::surface::surface_format;
use spice_qxl::testkit::{self as kit, Arena, BitmapSpec, CursorSpec, DrawableSpec};
use spice_qxl::{
    parse_command, read_monitors_config, validate_primary, Bitmap, Brush, Clip, Command, CommandExt, CopyOp,
    CursorCommand, DrawOp, Guest, Head, Image, MemSlot, Parsed, PrimarySurface, ReleaseInfo, SurfaceCommand,
    UpdateCommand,
};

/// Host pointers in QEMU's host group look like this (48-bit user addresses).
const BASE: u64 = 0x5555_0000_1000;

fn parse(arena: &Arena, cmd_type: u32, data: u64) -> Parsed {
    parse_ext(arena, cmd_type, data, 0, 0)
}

fn parse_ext(arena: &Arena, cmd_type: u32, data: u64, group_id: u32, flags: u32) -> Parsed {
    let slots = kit::host_slots();
    let guest = Guest::new(&slots, arena.memory());
    parse_command(
        &guest,
        &CommandExt {
            data,
            cmd_type,
            group_id,
            flags,
        },
    )
}

fn released(addr: u64) -> Option<ReleaseInfo> {
    Some(ReleaseInfo { addr, group_id: 0 })
}

fn pixels(width: u32, height: u32) -> Vec<u8> {
    (0..width * height * 4).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn qemu_draw_copy_with_flat_bitmap() {
    let mut a = Arena::new(BASE, 4096);
    let data = pixels(32, 8);
    let rows = a.put(&data);
    let image = a.put(&kit::bitmap_image(&BitmapSpec::qemu(32, 8, rows)));
    let op = kit::copy_op(image, kit::rect(0, 0, 32, 8), 1 << 3, 0, 0);
    let bbox = kit::rect(64, 16, 96, 24);
    let cmd = a.put(&kit::drawable(&DrawableSpec::qemu_copy(bbox, op)));

    let parsed = parse(&a, 1, cmd);
    assert_eq!(parsed.release, released(cmd));
    let Ok(Command::Draw(d)) = parsed.command else {
        panic!("{:?}", parsed.command)
    };
    assert_eq!(d.surface_id, 0);
    assert_eq!(d.effect, 1);
    assert_eq!(d.bbox, bbox);
    assert_eq!(d.clip, Clip::None);
    assert_eq!(d.surfaces_dest, [-1; 3]);
    assert!(!d.self_bitmap);
    let DrawOp::Copy(CopyOp {
        src: Image::Bitmap(b),
        src_area,
        rop_descriptor,
        scale_mode,
        mask,
    }) = &d.op
    else {
        panic!("{:?}", d.op)
    };
    assert_eq!(*src_area, kit::rect(0, 0, 32, 8));
    assert_eq!((*rop_descriptor, *scale_mode, mask), (8, 0, &None));
    assert_eq!(
        *b,
        Bitmap {
            id: 1 | (7 << 32),
            width: 32,
            height: 8,
            format: bitmap_format::THIRTY_TWO_BIT,
            top_down: true,
            stride: 128,
            palette: None,
            data: data.clone(),
            guest_rows: None,
            cache_me: false,
            high_bits_set: false,
        }
    );
    assert_eq!(b.to_xrgb().unwrap(), data);
}

#[test]
fn draw_copy_with_chunked_bottom_up_bitmap() {
    let mut a = Arena::new(BASE, 4096);
    let data = pixels(4, 3);
    // Row 0 in one chunk, an empty chunk, then rows 1 and 2.
    let last = a.put(&kit::data_chunk(0, &data[16..]));
    let empty = a.put(&kit::data_chunk(last, &[]));
    let first = a.put(&kit::data_chunk(empty, &data[..16]));
    let spec = BitmapSpec {
        flags: 0,
        data: first,
        ..BitmapSpec::qemu(4, 3, 0)
    };
    let image = a.put(&kit::bitmap_image(&spec));
    let op = kit::copy_op(image, kit::rect(1, 1, 3, 3), 8, 0, 0);
    let cmd = a.put(&kit::drawable(&DrawableSpec::qemu_copy(
        kit::rect(0, 0, 2, 2),
        op,
    )));

    let parsed = parse(&a, 1, cmd);
    assert_eq!(parsed.release, released(cmd));
    let Ok(Command::Draw(d)) = parsed.command else {
        panic!("{:?}", parsed.command)
    };
    let DrawOp::Copy(c) = &d.op else { panic!() };
    let Image::Bitmap(b) = &c.src else { panic!() };
    assert_eq!(b.data, data);
    assert!(!b.top_down);
    let mut expect = data[32..48].to_vec();
    expect.extend_from_slice(&data[16..32]);
    expect.extend_from_slice(&data[..16]);
    assert_eq!(b.to_xrgb().unwrap(), expect);
}

#[test]
fn palette_bitmap_clip_rects_and_mask() {
    let mut a = Arena::new(BASE, 4096);
    let palette = a.put(&kit::palette(5, &[0x7c00, 0x03e0]));
    let rows = a.put(&[0, 1, 1, 0]);
    let spec = BitmapSpec {
        format: bitmap_format::EIGHT_BIT,
        flags: bitmap_flags::DIRECT | bitmap_flags::TOP_DOWN,
        stride: 2,
        palette,
        data: rows,
        ..BitmapSpec::qemu(2, 2, 0)
    };
    let image = a.put(&kit::bitmap_image(&spec));
    let mask_rows = a.put(&[0x80, 0x40]);
    let mask = a.put(&kit::bitmap_image(&BitmapSpec {
        format: bitmap_format::ONE_BIT_BE,
        stride: 1,
        data: mask_rows,
        ..BitmapSpec::qemu(2, 2, 0)
    }));
    let rects = [
        kit::rect(0, 0, 1, 1),
        kit::rect(1, 1, 2, 2),
        kit::rect(0, 1, 2, 2),
    ];
    let more = a.put(&kit::data_chunk(0, &kit::clip_rects(0, &rects[2..], 0)[24..]));
    let clip = a.put(&kit::clip_rects(3, &rects[..2], more));
    let mut d = DrawableSpec::qemu_copy(
        kit::rect(0, 0, 2, 2),
        kit::copy_op(image, kit::rect(0, 0, 2, 2), 8, 1, mask),
    );
    d.clip_type = 1;
    d.clip_data = clip;
    let cmd = a.put(&kit::drawable(&d));

    let parsed = parse_ext(&a, 1, cmd, 0, QXL_COMMAND_FLAG_COMPAT_16BPP);
    let Ok(Command::Draw(d)) = parsed.command else {
        panic!("{:?}", parsed.command)
    };
    assert_eq!(d.clip, Clip::Rects(rects.to_vec()));
    let DrawOp::Copy(c) = &d.op else { panic!() };
    let Image::Bitmap(b) = &c.src else { panic!() };
    assert_eq!(b.palette, Some(vec![0x00ff_0000, 0x0000_ff00]));
    assert_eq!(
        b.to_xrgb().unwrap(),
        [0, 0, 0xff, 0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0, 0, 0xff, 0xff]
    );
    let m = c.mask.as_ref().unwrap();
    let Image::Bitmap(mb) = &m.image else { panic!() };
    assert_eq!(
        (mb.palette.as_ref(), mb.data.as_slice()),
        (None, &[0x80, 0x40][..])
    );
    assert_eq!(d.op.images().len(), 2);
}

#[test]
fn surface_and_quic_sources_and_other_draw_types() {
    let mut a = Arena::new(BASE, 4096);
    let surface = a.put(&kit::surface_image(3, 2));
    let tail = a.put(&kit::data_chunk(0, b"ic-stream"));
    let quic = a.put(&kit::quic_image(4, 8, 8, 13, b"QUIC", tail));
    let mut parse_op = |draw_type: u8, op: Vec<u8>| {
        let mut d = DrawableSpec::qemu_copy(kit::rect(0, 0, 8, 8), op);
        d.draw_type = draw_type;
        d.self_bitmap = 1;
        d.surfaces_dest = [2, -1, -1];
        let cmd = a.put(&kit::drawable(&d));
        match parse(&a, 1, cmd).command {
            Ok(Command::Draw(d)) => d,
            other => panic!("{other:?}"),
        }
    };
    let d = parse_op(
        draw_type::COPY,
        kit::copy_op(surface, kit::rect(0, 0, 8, 8), 8, 0, 0),
    );
    assert!(!d.self_bitmap, "COPY never keeps self_bitmap");
    assert_eq!(d.surfaces_dest, [2, -1, -1]);
    assert!(matches!(&d.op, DrawOp::Copy(c) if c.src == Image::Surface { surface_id: 2 }));

    let d = parse_op(
        draw_type::BLEND,
        kit::copy_op(quic, kit::rect(0, 0, 8, 8), 8, 0, 0),
    );
    let DrawOp::Blend(c) = &d.op else { panic!() };
    assert_eq!(
        c.src,
        Image::Quic {
            id: 4,
            width: 8,
            height: 8,
            data: b"QUICic-stream".to_vec(),
            cache_me: false,
        }
    );

    // FILL: solid brush, rop, no mask.
    let fill = kit::Bytes::default()
        .u32(1)
        .u32(0x00ab_cdef)
        .pad_to(20)
        .u16(8)
        .pad_to(39)
        .done();
    let d = parse_op(draw_type::FILL, fill);
    assert!(d.self_bitmap);
    assert!(
        matches!(&d.op, DrawOp::Fill(f) if f.brush == Brush::Solid(0x00ab_cdef) && f.rop_descriptor == 8)
    );

    let d = parse_op(draw_type::COPY_BITS, kit::Bytes::default().i32(5).i32(6).done());
    assert!(matches!(d.op, DrawOp::CopyBits { src_pos } if (src_pos.x, src_pos.y) == (5, 6)));
    let d = parse_op(draw_type::BLACKNESS, vec![]);
    assert!(matches!(d.op, DrawOp::Blackness { mask: None }));
    let d = parse_op(draw_type::NOP, vec![]);
    assert_eq!(d.op, DrawOp::Nop);
}

#[test]
fn cursor_set_move_hide_trail() {
    let mut a = Arena::new(BASE, 4096);
    let argb: Vec<u8> = (0..16 * 16 * 4).map(|i| i as u8).collect();
    let spec = CursorSpec {
        unique: 42,
        cursor_type: cursor_type::ALPHA.into(),
        width: 16,
        height: 16,
        hot_x: 3,
        hot_y: 4,
        data_size: argb.len() as u32,
    };
    let shape = a.put(&kit::cursor_shape(&spec, &argb, 0));
    let set = a.put(&kit::cursor_set(100, -5, true, shape));
    let parsed = parse(&a, 3, set);
    assert_eq!(parsed.release, released(set));
    let Ok(Command::Cursor(CursorCommand::Set {
        x: 100,
        y: -5,
        visible: true,
        shape: Some(s),
    })) = parsed.command
    else {
        panic!("{:?}", parsed.command)
    };
    assert_eq!(
        (s.unique, s.cursor_type, s.width, s.height, s.hot_x, s.hot_y),
        (42, 0, 16, 16, 3, 4)
    );
    assert_eq!(s.to_argb().unwrap(), argb);

    // A shape split over two chunks, with trailing bytes past data_size.
    let tail = a.put(&kit::data_chunk(0, &[argb[..4].to_vec(), vec![0xee; 8]].concat()));
    let split = a.put(&kit::cursor_shape(
        &CursorSpec {
            width: 1,
            height: 2,
            data_size: 8,
            ..spec
        },
        &argb[4..8],
        tail,
    ));
    let cmd = a.put(&kit::cursor_set(0, 0, false, split));
    let Ok(Command::Cursor(CursorCommand::Set {
        shape: Some(s),
        visible: false,
        ..
    })) = parse(&a, 3, cmd).command
    else {
        panic!()
    };
    assert_eq!(s.data, [&argb[4..8], &argb[..4]].concat());

    let cmd = a.put(&kit::cursor_set(1, 2, true, 0));
    assert!(matches!(
        parse(&a, 3, cmd).command,
        Ok(Command::Cursor(CursorCommand::Set { shape: None, .. }))
    ));
    let cmd = a.put(&kit::cursor_move(-1, 700));
    assert_eq!(
        parse(&a, 3, cmd).command,
        Ok(Command::Cursor(CursorCommand::Move { x: -1, y: 700 }))
    );
    let cmd = a.put(&kit::cursor_hide());
    let parsed = parse(&a, 3, cmd);
    assert_eq!(
        (parsed.command, parsed.release),
        (Ok(Command::Cursor(CursorCommand::Hide)), released(cmd))
    );
    let cmd = a.put(&kit::cursor_trail(3, 9));
    assert_eq!(
        parse(&a, 3, cmd).command,
        Ok(Command::Cursor(CursorCommand::Trail {
            length: 3,
            frequency: 9
        }))
    );
}

#[test]
fn surface_create_destroy_update_message_nop() {
    let mut a = Arena::new(BASE, 8192);
    let mem = a.reserve(64 * 16);
    let cmd = a.put(&kit::surface_create(5, surface_format::XRGB32, 16, 16, -64, mem));
    let parsed = parse(&a, 5, cmd);
    assert_eq!(parsed.release, released(cmd));
    assert_eq!(
        parsed.command,
        Ok(Command::Surface(SurfaceCommand::Create {
            surface_id: 5,
            format: 32,
            width: 16,
            height: 16,
            stride: -64,
            data: mem,
            flags: 0
        }))
    );
    let cmd = a.put(&kit::surface_destroy(5));
    assert_eq!(
        parse(&a, 5, cmd).command,
        Ok(Command::Surface(SurfaceCommand::Destroy { surface_id: 5 }))
    );

    let cmd = a.put(&kit::update_cmd(kit::rect(1, 2, 3, 4), 77, 0));
    let parsed = parse(&a, 2, cmd);
    assert_eq!(parsed.release, released(cmd));
    assert_eq!(
        parsed.command,
        Ok(Command::Update(UpdateCommand {
            area: kit::rect(1, 2, 3, 4),
            update_id: 77,
            surface_id: 0
        }))
    );

    let text = vec![b'x'; 1000];
    let cmd = a.put(&kit::message(&text));
    let parsed = parse(&a, 4, cmd);
    assert_eq!(
        (parsed.command, parsed.release),
        (Ok(Command::Message(text)), released(cmd))
    );
    let cmd = a.put(&kit::message(b""));
    assert_eq!(parse(&a, 4, cmd).command, Ok(Command::Message(vec![])));
    // The terminator is the very last mapped byte.
    let end = a.memory().end();
    let cmd = end - 8 - 3;
    let mut memory = a.clone();
    memory.memory_mut().write(cmd, &kit::message(b"hi!")[..11]);
    memory.memory_mut().write(end - 1, &[0]);
    assert_eq!(
        parse(&memory, 4, cmd).command,
        Ok(Command::Message(b"hi!"[..2].to_vec()))
    );

    let parsed = parse(&a, 0, 0xdead_beef);
    assert_eq!((parsed.command, parsed.release), (Ok(Command::Nop), None));
}

#[test]
fn guest_group_with_generation_and_delta() {
    // QXL native: group 1 slot 1 maps guest physical 0x1000_0000.. to the arena.
    let mut a = Arena::new(BASE, 4096);
    let mut slots = kit::host_slots();
    let guest_phys = 0x1000_0000;
    slots
        .add(
            1,
            1,
            MemSlot {
                generation: 5,
                virt_start: BASE,
                virt_end: BASE + 4096,
                addr_delta: BASE - guest_phys,
            },
        )
        .unwrap();
    let to_phys = |host: u64| slots.physical(1, 5, host - BASE + guest_phys);
    let rows = a.put(&pixels(2, 2));
    let image = a.put(&kit::bitmap_image(&BitmapSpec::qemu(2, 2, to_phys(rows))));
    let op = kit::copy_op(to_phys(image), kit::rect(0, 0, 2, 2), 8, 0, 0);
    let cmd = a.put(&kit::drawable(&DrawableSpec::qemu_copy(
        kit::rect(0, 0, 2, 2),
        op,
    )));
    let guest = Guest::new(&slots, a.memory());
    let ext = CommandExt {
        data: to_phys(cmd),
        cmd_type: 1,
        group_id: 1,
        flags: 0,
    };
    let parsed = parse_command(&guest, &ext);
    assert_eq!(
        parsed.release,
        Some(ReleaseInfo {
            addr: cmd,
            group_id: 1
        })
    );
    assert!(
        matches!(parsed.command, Ok(Command::Draw(_))),
        "{:?}",
        parsed.command
    );
    // The same pointers are meaningless in the host group.
    let parsed = parse_command(&guest, &CommandExt { group_id: 0, ..ext });
    assert_eq!(parsed.release, None);
}

#[test]
fn monitors_config_and_primary_surface() {
    let mut a = Arena::new(BASE, 4096);
    let heads: Vec<Head> = (0..3)
        .map(|i| Head {
            id: i,
            surface_id: 0,
            width: 1024,
            height: 768,
            x: 1024 * i,
            y: 0,
            flags: 0,
        })
        .collect();
    let cfg = a.put(&kit::monitors_config(3, 4, &heads));
    let slots = kit::host_slots();
    let guest = Guest::new(&slots, a.memory());
    assert_eq!(read_monitors_config(&guest, cfg, 0, 16), Ok((4, heads.clone())));
    assert_eq!(
        read_monitors_config(&guest, cfg, 0, 2),
        Ok((2, heads[..2].to_vec()))
    );

    let mem = a.reserve(64 * 48);
    let primary = PrimarySurface {
        width: 64,
        height: 12,
        stride: -256,
        format: surface_format::XRGB32,
        mouse_mode: 1,
        flags: 0,
        mem,
        group_id: 0,
    };
    assert_eq!(validate_primary(&slots, &primary), Ok(()));
    assert_eq!(spice_qxl::translate_primary(&slots, &primary), Ok(mem));
}

/// Memory whose pages past `guard` are unmapped, like the host's address space
/// after QEMU's message buffer; counts reads that touch them.
struct Guarded<'a> {
    inner: &'a spice_qxl::FakeMemory,
    guard: u64,
    faults: std::cell::Cell<u32>,
}

impl spice_qxl::GuestMemory for Guarded<'_> {
    fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), spice_qxl::MemoryError> {
        if addr + out.len() as u64 > self.guard {
            self.faults.set(self.faults.get() + 1);
            return Err(spice_qxl::MemoryError::Unmapped {
                addr,
                len: out.len() as u64,
            });
        }
        self.inner.read(addr, out)
    }
}

#[test]
fn message_scan_never_reads_past_the_terminators_page() {
    // BASE is page-aligned; the text ends with its NUL on the last byte of the second page.
    let mut a = Arena::new(BASE, 3 * 4096);
    let text = vec![b'm'; 5000];
    let cmd = BASE + 2 * 4096 - 8 - text.len() as u64 - 1;
    a.memory_mut().write(cmd, &kit::message(&text));
    let slots = kit::host_slots();
    let memory = Guarded {
        inner: a.memory(),
        guard: BASE + 2 * 4096,
        faults: std::cell::Cell::new(0),
    };
    let guest = Guest::new(&slots, &memory);
    let ext = CommandExt {
        data: cmd,
        cmd_type: 4,
        group_id: 0,
        flags: 0,
    };
    assert_eq!(parse_command(&guest, &ext).command, Ok(Command::Message(text)));
    assert_eq!(memory.faults.get(), 0);
}
