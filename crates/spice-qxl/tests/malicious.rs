//! A malicious guest: every command is rejected with an error naming the
//! problem, without panicking or allocating beyond the limits, and the release
//! information is present exactly when the top-level structure translated.

use spice_qxl::command::{cursor_type, draw_type, QXL_COMMAND_FLAG_COMPAT};
use spice_qxl::image::bitmap_format;
use spice_qxl::surface::surface_format;
use spice_qxl::testkit::{self as kit, Arena, BitmapSpec, CursorSpec, DrawableSpec};
use spice_qxl::{
    parse_command, read_monitors_config, validate_primary, CommandExt, Guest, Head, MemSlot, MemSlotConfig,
    MemSlotError, MemSlots, ParseError, ParseLimits, Parsed, PrimarySurface, ReleaseInfo,
};

const BASE: u64 = 0x7f00_0000_0000;
const SIZE: usize = 1 << 16;

/// QEMU geometry, but group 0 slot 0 covers only the arena, so pointers can miss it.
fn slots() -> MemSlots {
    let mut s = MemSlots::new(MemSlotConfig::QEMU).unwrap();
    s.add(
        0,
        0,
        MemSlot {
            generation: 0,
            virt_start: BASE,
            virt_end: BASE + SIZE as u64,
            addr_delta: 0,
        },
    )
    .unwrap();
    s
}

fn limits() -> ParseLimits {
    ParseLimits {
        n_surfaces: 4,
        ..ParseLimits::default()
    }
}

fn parse_with(arena: &Arena, limits: ParseLimits, ext: CommandExt) -> Parsed {
    let slots = slots();
    let guest = Guest::new(&slots, arena.memory()).with_limits(limits);
    parse_command(&guest, &ext)
}

fn parse(arena: &Arena, cmd_type: u32, data: u64) -> Parsed {
    parse_with(
        arena,
        limits(),
        CommandExt {
            data,
            cmd_type,
            group_id: 0,
            flags: 0,
        },
    )
}

/// The command is rejected but its structure must still be released.
fn rejected(parsed: Parsed, cmd: u64) -> ParseError {
    assert_eq!(
        parsed.release,
        Some(ReleaseInfo {
            addr: cmd,
            group_id: 0
        })
    );
    match parsed.command {
        Ok(c) => panic!("accepted {c:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert_eq!(
                msg,
                msg.to_lowercase()
                    .replace("qxl_command_flag_compat", "QXL_COMMAND_FLAG_COMPAT")
            );
            e
        }
    }
}

/// The command pointer itself is bad: nothing may be released.
fn unreleasable(parsed: Parsed) -> ParseError {
    assert_eq!(parsed.release, None);
    parsed
        .command
        .expect_err("accepted a command that did not translate")
}

/// A QEMU-style DRAW_COPY whose bitmap is `spec`; returns the drawable's address.
fn draw_copy(a: &mut Arena, spec: &BitmapSpec) -> u64 {
    let image = a.put(&kit::bitmap_image(spec));
    draw_copy_of(a, image, kit::rect(0, 0, 1, 1))
}

fn draw_copy_of(a: &mut Arena, image: u64, src_area: spice_qxl::Rect) -> u64 {
    let op = kit::copy_op(image, src_area, 8, 0, 0);
    a.put(&kit::drawable(&DrawableSpec::qemu_copy(
        kit::rect(0, 0, 1, 1),
        op,
    )))
}

#[test]
fn command_pointer_outside_every_memslot() {
    let a = Arena::new(BASE, SIZE);
    for ptr in [0, BASE - 1, BASE + SIZE as u64 - 4, BASE + SIZE as u64, u64::MAX] {
        for t in 1..=5 {
            let e = unreleasable(parse(&a, t, ptr));
            assert!(matches!(e, ParseError::Slot { .. }), "{e}");
        }
    }
    // The message header fits, but not the text's terminator: released, then rejected.
    let mut a = Arena::new(BASE, SIZE);
    a.memory_mut().as_bytes_mut().fill(b'a');
    let cmd = BASE + SIZE as u64 - 8;
    rejected(parse(&a, 4, cmd), cmd);
    // Unknown command types have no known structure to release.
    let e = unreleasable(parse(&a, 6, BASE));
    assert!(matches!(
        e,
        ParseError::Unsupported {
            what: "command type",
            value: 6
        }
    ));
}

#[test]
fn nested_pointer_outside_every_memslot() {
    let mut a = Arena::new(BASE, SIZE);
    let outside = BASE + 2 * SIZE as u64;
    let cmd = draw_copy(&mut a, &BitmapSpec::qemu(1, 1, outside));
    let e = rejected(parse(&a, 1, cmd), cmd);
    assert!(
        matches!(
            e,
            ParseError::Slot {
                source: MemSlotError::OutOfRange { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().starts_with("drawable.copy: address range"), "{e}");

    let cmd = draw_copy_of(&mut a, outside, kit::rect(0, 0, 1, 1));
    rejected(parse(&a, 1, cmd), cmd);
    let cmd = draw_copy_of(&mut a, 0, kit::rect(0, 0, 1, 1));
    rejected(parse(&a, 1, cmd), cmd);

    let shape = kit::cursor_set(0, 0, true, outside);
    let cmd = a.put(&shape);
    rejected(parse(&a, 3, cmd), cmd);
    let cmd = a.put(&kit::surface_create(1, surface_format::XRGB32, 4, 4, 16, outside));
    rejected(parse(&a, 5, cmd), cmd);
}

#[test]
fn wrong_generation() {
    let mut a = Arena::new(BASE, SIZE);
    let slots = slots();
    let rows = a.put(&[0; 4]);
    let cmd = draw_copy(&mut a, &BitmapSpec::qemu(1, 1, slots.physical(0, 1, rows)));
    let e = rejected(parse(&a, 1, cmd), cmd);
    assert!(matches!(
        e,
        ParseError::Slot {
            source: MemSlotError::WrongGeneration {
                expected: 0,
                found: 1,
                ..
            },
            ..
        }
    ));
    let e = unreleasable(parse(&a, 1, slots.physical(0, 2, cmd)));
    assert!(matches!(
        e,
        ParseError::Slot {
            source: MemSlotError::WrongGeneration { .. },
            ..
        }
    ));
}

#[test]
fn group_and_slot_index_equal_to_count() {
    let mut a = Arena::new(BASE, SIZE);
    let cmd = a.put(&kit::cursor_hide());
    let ext = CommandExt {
        data: cmd,
        cmd_type: 3,
        group_id: 2,
        flags: 0,
    };
    let e = unreleasable(parse_with(&a, limits(), ext));
    assert!(matches!(
        e,
        ParseError::Slot {
            source: MemSlotError::GroupOutOfRange {
                group: 2,
                num_groups: 2
            },
            ..
        }
    ));
    let slots = slots();
    let e = unreleasable(parse(&a, 3, slots.physical(8, 0, cmd)));
    assert!(matches!(
        e,
        ParseError::Slot {
            source: MemSlotError::SlotOutOfRange {
                slot: 8,
                num_slots: 8
            },
            ..
        }
    ));
    let e = unreleasable(parse(&a, 3, slots.physical(7, 0, cmd)));
    assert!(matches!(
        e,
        ParseError::Slot {
            source: MemSlotError::SlotNotActive { group: 0, slot: 7 },
            ..
        }
    ));
    let mut g = slots.clone();
    assert!(g.add(2, 0, *slots.get(0, 0).unwrap()).is_err());
    assert!(g.add(0, 8, *slots.get(0, 0).unwrap()).is_err());
    assert!(g.remove(2, 0).is_err());
}

#[test]
fn chunk_list_that_loops() {
    let mut a = Arena::new(BASE, SIZE);
    // Chunk A -> B -> A, each 2 bytes, for a 1x2 8-bit-alpha bitmap that needs 2 bytes:
    // the loop is caught as soon as it revisits a chunk (or exceeds the size).
    let a_addr = a.reserve(24);
    let b_addr = a.put(&kit::data_chunk(a_addr, &[0, 0]));
    a.memory_mut().write(a_addr, &kit::data_chunk(b_addr, &[]));
    let spec = BitmapSpec {
        format: bitmap_format::EIGHT_BIT_A,
        flags: 0,
        width: 1,
        height: 64,
        stride: 1,
        data: a_addr,
        ..BitmapSpec::qemu(1, 1, 0)
    };
    let cmd = draw_copy(&mut a, &spec);
    let e = rejected(parse(&a, 1, cmd), cmd);
    assert!(matches!(e, ParseError::ChunkLoop { .. }), "{e}");

    // A chunk pointing at itself with no data.
    let selfish = a.reserve(20);
    a.memory_mut().write(selfish, &kit::data_chunk(selfish, &[]));
    let cmd = draw_copy(
        &mut a,
        &BitmapSpec {
            data: selfish,
            ..spec
        },
    );
    assert!(matches!(
        rejected(parse(&a, 1, cmd), cmd),
        ParseError::ChunkLoop { .. }
    ));

    // A looping clip-rect list.
    let clip = a.reserve(40);
    a.memory_mut().write(clip, &kit::clip_rects(1, &[], clip + 4));
    let mut d = DrawableSpec::qemu_copy(kit::rect(0, 0, 1, 1), vec![]);
    d.draw_type = draw_type::NOP;
    d.clip_type = 1;
    d.clip_data = clip;
    let cmd = a.put(&kit::drawable(&d));
    assert!(matches!(
        rejected(parse(&a, 1, cmd), cmd),
        ParseError::ChunkLoop { .. }
    ));
}

#[test]
fn oversized_chunk_lists_and_sizes() {
    let mut a = Arena::new(BASE, SIZE);
    // Ten one-byte chunks for a 10-byte bitmap, with a limit of 4 chunks.
    let mut next = 0;
    for _ in 0..10 {
        next = a.put(&kit::data_chunk(next, &[1]));
    }
    let spec = BitmapSpec {
        format: bitmap_format::EIGHT_BIT_A,
        flags: 0,
        width: 1,
        height: 10,
        stride: 1,
        data: next,
        ..BitmapSpec::qemu(1, 1, 0)
    };
    let cmd = draw_copy(&mut a, &spec);
    assert!(parse(&a, 1, cmd).command.is_ok());
    let few = ParseLimits {
        max_chunks: 4,
        ..limits()
    };
    let ext = CommandExt {
        data: cmd,
        cmd_type: 1,
        group_id: 0,
        flags: 0,
    };
    let e = rejected(parse_with(&a, few, ext), cmd);
    assert!(
        matches!(
            e,
            ParseError::TooLarge {
                value: 5,
                limit: 4,
                ..
            }
        ),
        "{e}"
    );

    // A chunk claiming 4 GiB.
    let huge = a.put(&kit::data_chunk_sized(u32::MAX, 0, &[1]));
    let cmd = draw_copy(&mut a, &BitmapSpec { data: huge, ..spec });
    assert!(matches!(
        rejected(parse(&a, 1, cmd), cmd),
        ParseError::TooLarge { .. }
    ));
    // More chunk data than the bitmap needs.
    let long = a.put(&kit::data_chunk(0, &[0; 11]));
    let cmd = draw_copy(&mut a, &BitmapSpec { data: long, ..spec });
    assert!(matches!(
        rejected(parse(&a, 1, cmd), cmd),
        ParseError::TooLarge {
            value: 11,
            limit: 10,
            ..
        }
    ));
    // A chunk whose data runs off the end of the slot.
    let end = BASE + SIZE as u64 - 24;
    a.memory_mut().write(end, &kit::data_chunk_sized(10, 0, &[]));
    let cmd = draw_copy(&mut a, &BitmapSpec { data: end, ..spec });
    assert!(matches!(
        rejected(parse(&a, 1, cmd), cmd),
        ParseError::Slot { .. }
    ));

    // A QUIC stream larger than the image limit.
    let quic = a.put(&kit::quic_image(0, 8, 8, u32::MAX, b"", 0));
    let cmd = draw_copy_of(&mut a, quic, kit::rect(0, 0, 1, 1));
    assert!(matches!(
        rejected(parse(&a, 1, cmd), cmd),
        ParseError::TooLarge { .. }
    ));

    // The per-command budget covers everything a command copies.
    let rows = a.put(&[0; 400]);
    let cmd = draw_copy(&mut a, &BitmapSpec::qemu(10, 10, rows));
    let small = ParseLimits {
        max_command_bytes: 399,
        ..limits()
    };
    let e = rejected(parse_with(&a, small, CommandExt { data: cmd, ..ext }), cmd);
    assert!(
        matches!(
            e,
            ParseError::CommandBudget {
                needed: 400,
                remaining: 399
            }
        ),
        "{e}"
    );
}

#[test]
fn bitmap_larger_than_its_data() {
    let mut a = Arena::new(BASE, SIZE);
    // Flat: the rows would run past the end of the slot.
    let near_end = BASE + SIZE as u64 - 100;
    let cmd = draw_copy(&mut a, &BitmapSpec::qemu(5, 6, near_end));
    assert!(matches!(
        rejected(parse(&a, 1, cmd), cmd),
        ParseError::Slot { .. }
    ));
    // Chunked: the chunks hold less than stride * height.
    let short = a.put(&kit::data_chunk(0, &[0; 12]));
    let spec = BitmapSpec {
        flags: 0,
        data: short,
        ..BitmapSpec::qemu(2, 2, 0)
    };
    let cmd = draw_copy(&mut a, &spec);
    let e = rejected(parse(&a, 1, cmd), cmd);
    assert!(
        matches!(
            e,
            ParseError::SizeMismatch {
                expected: 16,
                actual: 12,
                ..
            }
        ),
        "{e}"
    );
    // A source area outside the bitmap.
    let rows = a.put(&[0; 16]);
    let image = a.put(&kit::bitmap_image(&BitmapSpec::qemu(2, 2, rows)));
    for area in [
        kit::rect(0, 0, 3, 2),
        kit::rect(0, 0, 2, 3),
        kit::rect(-1, 0, 1, 1),
        kit::rect(2, 0, 1, 1),
    ] {
        let cmd = draw_copy_of(&mut a, image, area);
        let e = rejected(parse(&a, 1, cmd), cmd);
        assert!(matches!(e, ParseError::InvalidRect { .. }), "{e}");
    }
}

#[test]
fn stride_smaller_than_a_row_and_bad_bitmap_headers() {
    let mut a = Arena::new(BASE, SIZE);
    let rows = a.put(&[0; 64]);
    let spec = BitmapSpec::qemu(4, 4, rows);
    let cmd = draw_copy(&mut a, &BitmapSpec { stride: 15, ..spec });
    let e = rejected(parse(&a, 1, cmd), cmd);
    assert!(
        matches!(
            e,
            ParseError::SizeMismatch {
                expected: 16,
                actual: 15,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("bitmap stride"));
    let mono = BitmapSpec {
        format: bitmap_format::ONE_BIT_BE,
        width: 9,
        stride: 1,
        ..spec
    };
    let cmd = draw_copy(&mut a, &mono);
    assert!(matches!(
        rejected(parse(&a, 1, cmd), cmd),
        ParseError::SizeMismatch { .. }
    ));

    for bad in [
        BitmapSpec { format: 0, ..spec },
        BitmapSpec { format: 11, ..spec },
        BitmapSpec { width: 0, ..spec },
        BitmapSpec { height: 0, ..spec },
        // A palette format without a palette.
        BitmapSpec {
            format: bitmap_format::EIGHT_BIT,
            stride: 4,
            ..spec
        },
    ] {
        let cmd = draw_copy(&mut a, &bad);
        assert!(matches!(
            rejected(parse(&a, 1, cmd), cmd),
            ParseError::Invalid { .. }
        ));
    }
    let quic = a.put(&kit::quic_image(0, 0, 8, 0, b"", 0));
    let cmd = draw_copy_of(&mut a, quic, kit::rect(0, 0, 0, 0));
    assert!(matches!(
        rejected(parse(&a, 1, cmd), cmd),
        ParseError::Invalid { .. }
    ));
}

#[test]
fn huge_width_times_height() {
    let mut a = Arena::new(BASE, SIZE);
    let rows = a.put(&[0; 64]);
    for (w, h, stride) in [
        (u32::MAX, u32::MAX, u32::MAX),
        (1 << 16, 1 << 16, 1 << 18),
        (1, u32::MAX, 4),
    ] {
        let cmd = draw_copy(
            &mut a,
            &BitmapSpec {
                width: w,
                height: h,
                stride,
                ..BitmapSpec::qemu(1, 1, rows)
            },
        );
        let e = rejected(parse(&a, 1, cmd), cmd);
        assert!(matches!(e, ParseError::TooLarge { .. }), "{e}");
    }
    // Within the pixel limit, but stride * height over the byte limit.
    let cmd = draw_copy(
        &mut a,
        &BitmapSpec {
            width: 1,
            height: 1 << 16,
            stride: 1 << 16,
            ..BitmapSpec::qemu(1, 1, rows)
        },
    );
    let e = rejected(parse(&a, 1, cmd), cmd);
    assert!(
        matches!(
            e,
            ParseError::TooLarge {
                what: "bitmap stride*height",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn bad_surface_ids() {
    let mut a = Arena::new(BASE, SIZE);
    let rows = a.put(&[0; 4]);
    let image = a.put(&kit::bitmap_image(&BitmapSpec::qemu(1, 1, rows)));
    let op = kit::copy_op(image, kit::rect(0, 0, 1, 1), 8, 0, 0);
    let base = DrawableSpec::qemu_copy(kit::rect(0, 0, 1, 1), op.clone());
    let ok = a.put(&kit::drawable(&base));
    assert!(parse(&a, 1, ok).command.is_ok());
    for d in [
        DrawableSpec {
            surface_id: 4,
            ..base.clone()
        },
        DrawableSpec {
            surface_id: u32::MAX,
            ..base.clone()
        },
        DrawableSpec {
            surfaces_dest: [-1, 4, -1],
            ..base.clone()
        },
        DrawableSpec {
            surfaces_dest: [-2, -1, -1],
            ..base.clone()
        },
        DrawableSpec {
            surfaces_dest: [-1, -1, i32::MIN],
            ..base.clone()
        },
    ] {
        let cmd = a.put(&kit::drawable(&d));
        let e = rejected(parse(&a, 1, cmd), cmd);
        assert!(matches!(e, ParseError::SurfaceId { limit: 4, .. }), "{e}");
    }
    let surface = a.put(&kit::surface_image(0, 4));
    let cmd = draw_copy_of(&mut a, surface, kit::rect(0, 0, 1, 1));
    assert!(matches!(
        rejected(parse(&a, 1, cmd), cmd),
        ParseError::SurfaceId { id: 4, .. }
    ));

    let mem = a.reserve(64);
    for (t, bytes) in [
        (5, kit::surface_create(4, surface_format::XRGB32, 4, 4, 16, mem)),
        (5, kit::surface_destroy(4)),
        (5, kit::surface_destroy(u32::MAX)),
        (2, kit::update_cmd(kit::rect(0, 0, 1, 1), 0, 4)),
    ] {
        let cmd = a.put(&bytes);
        let e = rejected(parse(&a, t, cmd), cmd);
        assert!(matches!(e, ParseError::SurfaceId { .. }), "{e}");
    }
}

#[test]
fn bad_surface_commands() {
    let mut a = Arena::new(BASE, SIZE);
    let mem = a.reserve(64);
    for bytes in [
        kit::surface_create(1, 24, 4, 4, 16, mem),
        kit::surface_create(1, surface_format::XRGB32, 4, 4, 15, mem),
        kit::surface_create(1, surface_format::XRGB32, 4, 4, i32::MIN, mem),
        kit::surface_create(1, surface_format::XRGB32, 0, 4, 16, mem),
        kit::surface_create(1, surface_format::XRGB32, 1 << 20, 1 << 12, 1 << 22, mem),
        // 64 bytes reserved, but 4 * 32 needed: runs into other structures, then out of the slot.
        kit::surface_create(1, surface_format::XRGB32, 4, 1 << 20, -16, mem),
    ] {
        let cmd = a.put(&bytes);
        rejected(parse(&a, 5, cmd), cmd);
    }
    let mut bad_type = kit::surface_destroy(1);
    bad_type[12] = 2;
    let cmd = a.put(&bad_type);
    assert!(matches!(
        rejected(parse(&a, 5, cmd), cmd),
        ParseError::Invalid {
            what: "surface command type",
            ..
        }
    ));
}

#[test]
fn compat_drawables_are_rejected_but_released() {
    let mut a = Arena::new(BASE, SIZE);
    let cmd = a.reserve(128);
    let ext = CommandExt {
        data: cmd,
        cmd_type: 1,
        group_id: 0,
        flags: QXL_COMMAND_FLAG_COMPAT,
    };
    let e = rejected(parse_with(&a, limits(), ext), cmd);
    assert_eq!(e, ParseError::CompatDrawable);
}

#[test]
fn bad_drawable_fields() {
    let mut a = Arena::new(BASE, SIZE);
    let base = DrawableSpec::qemu_copy(kit::rect(0, 0, 1, 1), vec![]);
    for d in [
        DrawableSpec {
            draw_type: 15,
            ..base.clone()
        },
        DrawableSpec {
            draw_type: draw_type::NOP,
            clip_type: 2,
            ..base.clone()
        },
        // FILL with an unknown brush type.
        DrawableSpec {
            draw_type: draw_type::FILL,
            op: kit::Bytes::default().u32(3).done(),
            ..base.clone()
        },
        // A pattern brush without an image.
        DrawableSpec {
            draw_type: draw_type::FILL,
            op: kit::Bytes::default().u32(2).done(),
            ..base.clone()
        },
    ] {
        let cmd = a.put(&kit::drawable(&d));
        assert!(matches!(
            rejected(parse(&a, 1, cmd), cmd),
            ParseError::Invalid { .. }
        ));
    }
    // Clip rects: too many, or a count that disagrees with the chunk data.
    let many = a.put(&kit::clip_rects(1 << 20, &[], 0));
    let wrong = a.put(&kit::clip_rects(2, &[kit::rect(0, 0, 1, 1)], 0));
    for (clip, expect_too_large) in [(many, true), (wrong, false)] {
        let d = DrawableSpec {
            draw_type: draw_type::NOP,
            clip_type: 1,
            clip_data: clip,
            ..base.clone()
        };
        let cmd = a.put(&kit::drawable(&d));
        let e = rejected(parse(&a, 1, cmd), cmd);
        assert_eq!(matches!(e, ParseError::TooLarge { .. }), expect_too_large, "{e}");
        assert!(
            matches!(e, ParseError::TooLarge { .. } | ParseError::SizeMismatch { .. }),
            "{e}"
        );
    }
}

#[test]
fn bad_cursors() {
    let mut a = Arena::new(BASE, SIZE);
    let spec = CursorSpec {
        unique: 0,
        cursor_type: cursor_type::ALPHA.into(),
        width: 2,
        height: 2,
        hot_x: 0,
        hot_y: 0,
        data_size: 16,
    };
    for (c, data) in [
        (
            CursorSpec {
                cursor_type: 7,
                ..spec
            },
            vec![0; 16],
        ),
        (CursorSpec { width: 0, ..spec }, vec![0; 16]),
        (CursorSpec { width: 513, ..spec }, vec![0; 16]),
        (
            CursorSpec {
                height: u16::MAX,
                ..spec
            },
            vec![0; 16],
        ),
        // Data shorter than the type needs, by chunk or by data_size.
        (spec, vec![0; 15]),
        (
            CursorSpec {
                data_size: 15,
                ..spec
            },
            vec![0; 16],
        ),
        (
            CursorSpec {
                cursor_type: cursor_type::MONO.into(),
                ..spec
            },
            vec![0; 3],
        ),
    ] {
        let shape = a.put(&kit::cursor_shape(&c, &data, 0));
        let cmd = a.put(&kit::cursor_set(0, 0, true, shape));
        let e = rejected(parse(&a, 3, cmd), cmd);
        assert!(
            matches!(
                e,
                ParseError::Invalid { .. } | ParseError::TooLarge { .. } | ParseError::SizeMismatch { .. }
            ),
            "{e}"
        );
    }
    let mut bad = kit::cursor_hide();
    bad[8] = 4;
    let cmd = a.put(&bad);
    assert!(matches!(
        rejected(parse(&a, 3, cmd), cmd),
        ParseError::Invalid {
            what: "cursor command type",
            ..
        }
    ));
}

#[test]
fn message_without_terminator() {
    let mut a = Arena::new(BASE, SIZE);
    let cmd = a.put(&[b'x'; 200]);
    // No NUL before the end of the slot.
    a.memory_mut().as_bytes_mut()[(cmd - BASE) as usize..].fill(b'x');
    let e = rejected(parse(&a, 4, cmd), cmd);
    assert!(matches!(e, ParseError::Invalid { .. }), "{e}");
    // A NUL exists, but beyond the scan limit.
    let mut a = Arena::new(BASE, SIZE);
    a.memory_mut().as_bytes_mut()[..1000].fill(b'y');
    let short = ParseLimits {
        max_message_len: 100,
        ..limits()
    };
    let ext = CommandExt {
        data: BASE,
        cmd_type: 4,
        group_id: 0,
        flags: 0,
    };
    let e = rejected(parse_with(&a, short, ext), BASE);
    assert!(matches!(e, ParseError::Invalid { value: 100, .. }), "{e}");
}

#[test]
fn monitors_config_count_checks() {
    let mut a = Arena::new(BASE, SIZE);
    let head = Head {
        id: 0,
        surface_id: 0,
        width: 1,
        height: 1,
        x: 0,
        y: 0,
        flags: 0,
    };
    let slots = slots();
    let over = a.put(&kit::monitors_config(2, 1, &[head, head]));
    let zero = a.put(&kit::monitors_config(0, 4, &[]));
    let unlimited = a.put(&kit::monitors_config(1, 0, &[head]));
    let guest = Guest::new(&slots, a.memory());
    let e = read_monitors_config(&guest, over, 0, 16).unwrap_err();
    assert!(
        matches!(
            e,
            ParseError::TooLarge {
                value: 2,
                limit: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = read_monitors_config(&guest, zero, 0, 16).unwrap_err();
    assert!(
        matches!(
            e,
            ParseError::Invalid {
                what: "monitors config count",
                value: 0
            }
        ),
        "{e}"
    );
    assert!(read_monitors_config(&guest, unlimited, 0, 16).is_err());
    // Heads past the end of the slot.
    let end = BASE + SIZE as u64 - 4 - 28;
    let mut a2 = a.clone();
    a2.memory_mut().write(end, &kit::monitors_config(2, 2, &[head]));
    assert!(read_monitors_config(&guest_of(&slots, &a2), end, 0, 1).is_err());
    a2.memory_mut().write(end, &kit::monitors_config(1, 2, &[head]));
    assert_eq!(
        read_monitors_config(&guest_of(&slots, &a2), end, 0, 1),
        Ok((1, vec![head]))
    );
    // Outside every slot, and a bad group.
    let guest = guest_of(&slots, &a2);
    assert!(read_monitors_config(&guest, BASE - 4, 0, 1).is_err());
    assert!(read_monitors_config(&guest, over, 2, 1).is_err());
}

fn guest_of<'a>(slots: &'a MemSlots, a: &'a Arena) -> Guest<'a> {
    Guest::new(slots, a.memory())
}

#[test]
fn primary_surface_exceeding_its_slot() {
    let slots = slots();
    let ok = PrimarySurface {
        width: 64,
        height: 64,
        stride: -256,
        format: surface_format::XRGB32,
        mouse_mode: 1,
        flags: 0,
        mem: BASE,
        group_id: 0,
    };
    assert_eq!(validate_primary(&slots, &ok), Ok(()));
    for bad in [
        PrimarySurface {
            mem: BASE + SIZE as u64 - 256 * 64 + 1,
            ..ok
        },
        PrimarySurface { mem: BASE - 1, ..ok },
        PrimarySurface { height: 257, ..ok },
        PrimarySurface { stride: 255, ..ok },
        PrimarySurface {
            stride: i32::MIN,
            ..ok
        },
        PrimarySurface { width: 0, ..ok },
        PrimarySurface { format: 0, ..ok },
        PrimarySurface { group_id: 2, ..ok },
        PrimarySurface {
            mem: slots.physical(8, 0, BASE),
            ..ok
        },
        PrimarySurface {
            height: u32::MAX,
            stride: i32::MAX,
            ..ok
        },
    ] {
        let e = validate_primary(&slots, &bad).unwrap_err();
        assert_eq!(e.to_string(), e.to_string().to_lowercase(), "{e}");
    }
}
