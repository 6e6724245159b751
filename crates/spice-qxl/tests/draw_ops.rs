//! STROKE, TEXT and COMPOSITE drawables: well-formed ones parse into every
//! field the guest set; malformed ones are refused with an error naming the
//! field, and still released.

use spice_qxl::command::{composite_flags, draw_type, line_flags, path_flags, string_flags};
use spice_qxl::image::{bitmap_format, image_flags};
use spice_qxl::testkit::{self as kit, Arena, BitmapSpec, DrawableSpec, StrokeSpec};
use spice_qxl::{
    parse_command, Brush, Command, CommandExt, Composite, DrawOp, Drawable, Glyph, Guest, Image, LineAttr,
    MemSlot, MemSlotConfig, MemSlotError, MemSlots, ParseError, ParseLimits, Parsed, PathSegment, Point,
    PointFix, ReleaseInfo, Stroke, Text,
};

const BASE: u64 = 0x7f00_0000_0000;
const SIZE: usize = 1 << 16;
/// Just past the only memslot.
const OUTSIDE: u64 = BASE + 2 * SIZE as u64;

/// QEMU geometry, group 0 slot 0 covering only the arena, so pointers can miss it.
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

fn parse_with(a: &Arena, limits: ParseLimits, cmd: u64) -> Parsed {
    let slots = slots();
    let guest = Guest::new(&slots, a.memory()).with_limits(limits);
    parse_command(
        &guest,
        &CommandExt {
            data: cmd,
            cmd_type: 1,
            group_id: 0,
            flags: 0,
        },
    )
}

/// A drawable of `draw_type` over `op` on surface 0.
fn put_draw(a: &mut Arena, draw_type: u8, op: Vec<u8>) -> u64 {
    let mut d = DrawableSpec::qemu_copy(kit::rect(0, 0, 64, 32), op);
    d.draw_type = draw_type;
    d.effect = 0;
    a.put(&kit::drawable(&d))
}

fn accepted(a: &Arena, cmd: u64) -> Drawable {
    let parsed = parse_with(a, ParseLimits::default(), cmd);
    assert_eq!(
        parsed.release,
        Some(ReleaseInfo {
            addr: cmd,
            group_id: 0
        })
    );
    match parsed.command {
        Ok(Command::Draw(d)) => d,
        other => panic!("{other:?}"),
    }
}

/// Rejected, still released, with a lowercase message.
fn rejected_with(a: &Arena, limits: ParseLimits, cmd: u64) -> ParseError {
    let parsed = parse_with(a, limits, cmd);
    assert_eq!(
        parsed.release,
        Some(ReleaseInfo {
            addr: cmd,
            group_id: 0
        })
    );
    let e = parsed.command.expect_err("accepted");
    let msg = e.to_string();
    assert_eq!(msg, msg.to_lowercase());
    e
}

fn rejected(a: &Arena, cmd: u64) -> ParseError {
    rejected_with(a, ParseLimits::default(), cmd)
}

fn pixels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 13 + 5) as u8).collect()
}

// ---------------------------------------------------------------------------
// STROKE
// ---------------------------------------------------------------------------

#[test]
fn stroke_with_chunked_path_and_style() {
    let mut a = Arena::new(BASE, SIZE);
    let first = [
        kit::path_seg(path_flags::BEGIN, &[(0, 0), (160, -16)]),
        kit::path_seg(path_flags::BEZIER, &[(1, 2), (3, 4), (5, 6)]),
    ]
    .concat();
    let last = kit::path_seg(path_flags::END | path_flags::CLOSE, &[(-32, 48)]);
    // Split inside a point: segments are found in the gathered data, not per chunk.
    let (last_a, last_b) = last.split_at(12);
    let third = a.put(&kit::data_chunk(0, last_b));
    let second = a.put(&kit::data_chunk(third, last_a));
    let size = (first.len() + last.len()) as u32;
    let path = a.put(&kit::path(size, &first, second));
    let style = a.put(&kit::fixed_array(&[64, -16, 32]));
    let spec = StrokeSpec {
        attr_flags: line_flags::STYLED | line_flags::START_WITH_GAP,
        join_style: 1,
        end_style: 2,
        style_nseg: 3,
        width: 16,
        miter_limit: 160,
        style,
        fore_mode: 1 << 4,
        back_mode: 1 << 6,
        ..StrokeSpec::solid(path, 0x0012_3456)
    };
    let cmd = put_draw(&mut a, draw_type::STROKE, kit::stroke_op(&spec));
    let d = accepted(&a, cmd);
    assert_eq!(
        d.op,
        DrawOp::Stroke(Stroke {
            path: vec![
                PathSegment {
                    flags: path_flags::BEGIN,
                    points: vec![PointFix { x: 0, y: 0 }, PointFix { x: 160, y: -16 }],
                },
                PathSegment {
                    flags: path_flags::BEZIER,
                    points: vec![
                        PointFix { x: 1, y: 2 },
                        PointFix { x: 3, y: 4 },
                        PointFix { x: 5, y: 6 }
                    ],
                },
                PathSegment {
                    flags: path_flags::END | path_flags::CLOSE,
                    points: vec![PointFix { x: -32, y: 48 }],
                },
            ],
            attr: LineAttr {
                flags: line_flags::STYLED | line_flags::START_WITH_GAP,
                join_style: 1,
                end_style: 2,
                width: 16,
                miter_limit: 160,
                style: vec![64, -16, 32],
            },
            brush: Brush::Solid(0x0012_3456),
            fore_mode: 1 << 4,
            back_mode: 1 << 6,
        })
    );
    assert!(d.op.images().is_empty());
    assert!(!d.self_bitmap && d.surfaces_dest == [-1; 3]);
}

#[test]
fn stroke_unstyled_ignores_style_pointer_and_pattern_brush_is_an_image() {
    let mut a = Arena::new(BASE, SIZE);
    let seg = kit::path_seg(path_flags::BEGIN | path_flags::END, &[(0, 0), (16, 16)]);
    let path = a.put(&kit::path(seg.len() as u32, &seg, 0));
    let tile = a.put(&pixels(16));
    let pat = a.put(&kit::bitmap_image(&BitmapSpec::qemu(2, 2, tile)));
    let spec = StrokeSpec {
        style_nseg: 9,
        style: OUTSIDE,
        brush: kit::pattern_brush(pat, 3, -4),
        ..StrokeSpec::solid(path, 0)
    };
    let cmd = put_draw(&mut a, draw_type::STROKE, kit::stroke_op(&spec));
    let d = accepted(&a, cmd);
    let DrawOp::Stroke(s) = &d.op else {
        panic!("{:?}", d.op)
    };
    assert!(s.attr.style.is_empty());
    assert_eq!(s.path.len(), 1);
    assert!(matches!(
        &s.brush,
        Brush::Pattern {
            pos: Point { x: 3, y: -4 },
            ..
        }
    ));
    assert_eq!(d.op.images().len(), 1);
    // The same images, to change: the pattern's bitmap.
    let mut op = d.op.clone();
    let images = op.images_mut();
    assert_eq!(images.len(), 1);
    assert!(matches!(&*images[0], Image::Bitmap(b) if b.width == 2));
}

#[test]
fn stroke_empty_path_and_trailing_bare_header() {
    let mut a = Arena::new(BASE, SIZE);
    let path = a.put(&kit::path(0, &[], 0));
    let cmd = put_draw(
        &mut a,
        draw_type::STROKE,
        kit::stroke_op(&StrokeSpec::solid(path, 1)),
    );
    let DrawOp::Stroke(s) = accepted(&a, cmd).op else {
        panic!()
    };
    assert!(s.path.is_empty());
    // A last header with no room for a point is ignored, as by the C server.
    let data = [kit::path_seg(0, &[(1, 1)]), kit::path_seg(0, &[])].concat();
    let path = a.put(&kit::path(data.len() as u32, &data, 0));
    let cmd = put_draw(
        &mut a,
        draw_type::STROKE,
        kit::stroke_op(&StrokeSpec::solid(path, 1)),
    );
    let DrawOp::Stroke(s) = accepted(&a, cmd).op else {
        panic!()
    };
    assert_eq!(s.path.len(), 1);
}

#[test]
fn stroke_rejections() {
    let mut a = Arena::new(BASE, SIZE);
    let stroke = |a: &mut Arena, spec: StrokeSpec| put_draw(a, draw_type::STROKE, kit::stroke_op(&spec));
    let good = kit::path_seg(0, &[(1, 1), (2, 2)]);

    // Null path, path outside the slot.
    let cmd = stroke(&mut a, StrokeSpec::solid(0, 0));
    assert_eq!(
        rejected(&a, cmd),
        ParseError::Invalid {
            what: "drawable.stroke.path",
            value: 0
        }
    );
    let cmd = stroke(&mut a, StrokeSpec::solid(OUTSIDE, 0));
    assert!(matches!(
        rejected(&a, cmd),
        ParseError::Slot {
            what: "drawable.stroke.path",
            source: MemSlotError::OutOfRange { .. }
        }
    ));

    // A segment count that overruns the path data.
    let mut bad = good.clone();
    bad[4] = 3;
    let path = a.put(&kit::path(bad.len() as u32, &bad, 0));
    let cmd = stroke(&mut a, StrokeSpec::solid(path, 0));
    assert!(matches!(
        rejected(&a, cmd),
        ParseError::SizeMismatch {
            expected: 24,
            actual: 16,
            ..
        }
    ));

    // data_size disagreeing with the chunks, either way.
    for data_size in [good.len() as u32 - 1, good.len() as u32 + 1] {
        let path = a.put(&kit::path(data_size, &good, 0));
        let cmd = stroke(&mut a, StrokeSpec::solid(path, 0));
        let e = rejected(&a, cmd);
        assert!(
            matches!(
                e,
                ParseError::TooLarge {
                    what: "drawable.stroke.path",
                    ..
                } | ParseError::SizeMismatch {
                    what: "drawable.stroke.path",
                    ..
                }
            ),
            "{e}"
        );
    }

    // data_size over max_image_bytes, before anything is gathered.
    let path = a.put(&kit::path(u32::MAX, &good, 0));
    let cmd = stroke(&mut a, StrokeSpec::solid(path, 0));
    assert!(matches!(
        rejected(&a, cmd),
        ParseError::TooLarge {
            what: "drawable.stroke.path",
            value: 0xffff_ffff,
            ..
        }
    ));

    // Too many points, too many segments.
    let path = a.put(&kit::path(good.len() as u32, &good, 0));
    let cmd = stroke(&mut a, StrokeSpec::solid(path, 0));
    let limits = ParseLimits {
        max_path_points: 1,
        ..ParseLimits::default()
    };
    assert!(matches!(
        rejected_with(&a, limits, cmd),
        ParseError::TooLarge {
            what: "drawable.stroke.path points",
            value: 2,
            limit: 1
        }
    ));
    let limits = ParseLimits {
        max_path_segments: 0,
        ..ParseLimits::default()
    };
    assert!(matches!(
        rejected_with(&a, limits, cmd),
        ParseError::TooLarge {
            what: "drawable.stroke.path segments",
            ..
        }
    ));

    // A styled line without a style, with a style outside the slot, and
    // with dash lengths that straddle the slot's end.
    let styled = |style| StrokeSpec {
        attr_flags: line_flags::STYLED,
        style_nseg: 2,
        style,
        ..StrokeSpec::solid(path, 0)
    };
    let cmd = stroke(&mut a, styled(0));
    assert_eq!(
        rejected(&a, cmd),
        ParseError::Invalid {
            what: "drawable.stroke.attr.style",
            value: 0
        }
    );
    let cmd = stroke(&mut a, styled(OUTSIDE));
    assert!(matches!(
        rejected(&a, cmd),
        ParseError::Slot {
            what: "drawable.stroke.attr.style",
            ..
        }
    ));
    let cmd = stroke(&mut a, styled(BASE + SIZE as u64 - 4));
    assert!(matches!(
        rejected(&a, cmd),
        ParseError::Slot {
            what: "drawable.stroke.attr.style",
            source: MemSlotError::OutOfRange { .. }
        }
    ));

    // A brush of unknown type.
    let cmd = stroke(
        &mut a,
        StrokeSpec {
            brush: kit::Bytes::default().u32(7).pad_to(20).done(),
            ..StrokeSpec::solid(path, 0)
        },
    );
    assert_eq!(
        rejected(&a, cmd),
        ParseError::Invalid {
            what: "drawable.stroke.brush",
            value: 7
        }
    );
}

// ---------------------------------------------------------------------------
// TEXT
// ---------------------------------------------------------------------------

#[test]
fn text_with_glyphs_across_chunks() {
    let mut a = Arena::new(BASE, SIZE);
    // A4: 3 pixels wide -> 2 bytes a row.
    let g0 = kit::raster_glyph((10, 20), (-1, -7), 3, 2, &[0x12, 0x30, 0x45, 0x60]);
    let g1 = kit::raster_glyph((14, 20), (0, -5), 0, 0, &[]);
    let g2 = kit::raster_glyph((15, 20), (0, -1), 1, 3, &[0xf0, 0x80, 0x10]);
    let all = [g0, g1, g2].concat();
    // Split inside the second glyph's header and inside the third's data.
    let (c0, rest) = all.split_at(30);
    let (c1, c2) = rest.split_at(rest.len() - 2);
    let third = a.put(&kit::data_chunk(0, c2));
    let second = a.put(&kit::data_chunk(third, c1));
    let flags = string_flags::RASTER_A4 | string_flags::RASTER_TOP_DOWN;
    let string = a.put(&kit::string(all.len() as u32, 3, flags, c0, second));
    let tile = a.put(&pixels(16));
    let pat = a.put(&kit::bitmap_image(&BitmapSpec::qemu(2, 2, tile)));
    let op = kit::text_op(
        string,
        kit::rect(8, 10, 20, 24),
        &kit::solid_brush(0x00ff_0000),
        &kit::pattern_brush(pat, 1, 1),
        8,
        1 << 5,
    );
    let cmd = put_draw(&mut a, draw_type::TEXT, op);
    let d = accepted(&a, cmd);
    let DrawOp::Text(t) = &d.op else {
        panic!("{:?}", d.op)
    };
    let Brush::Pattern { image, .. } = &t.back_brush else {
        panic!()
    };
    assert_eq!(
        *t,
        Text {
            glyphs: vec![
                Glyph {
                    render_pos: Point { x: 10, y: 20 },
                    glyph_origin: Point { x: -1, y: -7 },
                    width: 3,
                    height: 2,
                    stride: 2,
                    data: vec![0x12, 0x30, 0x45, 0x60],
                },
                Glyph {
                    render_pos: Point { x: 14, y: 20 },
                    glyph_origin: Point { x: 0, y: -5 },
                    width: 0,
                    height: 0,
                    stride: 0,
                    data: vec![],
                },
                Glyph {
                    render_pos: Point { x: 15, y: 20 },
                    glyph_origin: Point { x: 0, y: -1 },
                    width: 1,
                    height: 3,
                    stride: 1,
                    data: vec![0xf0, 0x80, 0x10],
                },
            ],
            bpp: 4,
            string_flags: flags,
            back_area: kit::rect(8, 10, 20, 24),
            fore_brush: Brush::Solid(0x00ff_0000),
            back_brush: Brush::Pattern {
                image: image.clone(),
                pos: Point { x: 1, y: 1 },
            },
            fore_mode: 8,
            back_mode: 1 << 5,
        }
    );
    assert!(matches!(image, Image::Bitmap(b) if b.width == 2 && b.data == pixels(16)));
    assert_eq!(d.op.images().len(), 1);
}

#[test]
fn text_rejections() {
    let mut a = Arena::new(BASE, SIZE);
    let text = |a: &mut Arena, string: u64| {
        let op = kit::text_op(
            string,
            kit::rect(0, 0, 1, 1),
            &kit::solid_brush(0),
            &kit::no_brush(),
            8,
            0,
        );
        put_draw(a, draw_type::TEXT, op)
    };
    let a1 = string_flags::RASTER_A1;
    // 8x2 at 1 bpp: 2 bytes.
    let glyph = kit::raster_glyph((0, 0), (0, 0), 8, 2, &[0xff, 0x81]);

    let cmd = text(&mut a, 0);
    assert_eq!(
        rejected(&a, cmd),
        ParseError::Invalid {
            what: "drawable.text.str",
            value: 0
        }
    );
    let cmd = text(&mut a, OUTSIDE);
    assert!(matches!(
        rejected(&a, cmd),
        ParseError::Slot {
            what: "drawable.text.str",
            ..
        }
    ));

    // No raster format.
    let s = a.put(&kit::string(
        glyph.len() as u32,
        1,
        string_flags::RASTER_TOP_DOWN,
        &glyph,
        0,
    ));
    let cmd = text(&mut a, s);
    assert!(matches!(rejected(&a, cmd), ParseError::Invalid { value: 8, .. }));

    // Glyph data overrunning the string: the same bytes read as 8 bpp need 16.
    let s = a.put(&kit::string(
        glyph.len() as u32,
        1,
        string_flags::RASTER_A8,
        &glyph,
        0,
    ));
    let cmd = text(&mut a, s);
    assert_eq!(
        rejected(&a, cmd),
        ParseError::SizeMismatch {
            what: "drawable.text.str glyph data (overruns the string)",
            expected: 16,
            actual: 2
        }
    );

    // A glyph header cut short.
    let cut = &glyph[..glyph.len() - 10];
    let s = a.put(&kit::string(cut.len() as u32, 1, a1, cut, 0));
    let cmd = text(&mut a, s);
    assert!(matches!(
        rejected(&a, cmd),
        ParseError::SizeMismatch {
            what: "drawable.text.str glyph header (overruns the string)",
            ..
        }
    ));

    // length disagreeing with the glyphs in the data, both ways.
    let two = [glyph.clone(), glyph.clone()].concat();
    for length in [1, 3] {
        let s = a.put(&kit::string(two.len() as u32, length, a1, &two, 0));
        let cmd = text(&mut a, s);
        assert!(matches!(rejected(&a, cmd), ParseError::SizeMismatch { .. }));
    }

    // data_size disagreeing with the chunks; data_size over the image limit.
    let s = a.put(&kit::string(glyph.len() as u32 + 4, 1, a1, &glyph, 0));
    let cmd = text(&mut a, s);
    assert!(matches!(
        rejected(&a, cmd),
        ParseError::SizeMismatch {
            what: "drawable.text.str",
            ..
        }
    ));
    let s = a.put(&kit::string(u32::MAX, 1, a1, &glyph, 0));
    let cmd = text(&mut a, s);
    assert!(matches!(
        rejected(&a, cmd),
        ParseError::TooLarge {
            what: "drawable.text.str",
            ..
        }
    ));

    // More glyphs than max_glyphs, refused before the data is read.
    let s = a.put(&kit::string(two.len() as u32, 2, a1, &two, OUTSIDE));
    let cmd = text(&mut a, s);
    let limits = ParseLimits {
        max_glyphs: 1,
        ..ParseLimits::default()
    };
    assert_eq!(
        rejected_with(&a, limits, cmd),
        ParseError::TooLarge {
            what: "drawable.text.str.length",
            value: 2,
            limit: 1
        }
    );

    // A chunk outside the slot; a bad back brush.
    let s = a.put(&kit::string(two.len() as u32, 2, a1, &glyph, OUTSIDE));
    let cmd = text(&mut a, s);
    assert!(matches!(
        rejected(&a, cmd),
        ParseError::Slot {
            what: "drawable.text.str",
            ..
        }
    ));
    let s = a.put(&kit::string(glyph.len() as u32, 1, a1, &glyph, 0));
    let op = kit::text_op(
        s,
        kit::rect(0, 0, 1, 1),
        &kit::solid_brush(0),
        &kit::pattern_brush(0, 0, 0),
        8,
        8,
    );
    let cmd = put_draw(&mut a, draw_type::TEXT, op);
    assert_eq!(
        rejected(&a, cmd),
        ParseError::Invalid {
            what: "drawable.text.back_brush",
            value: 0
        }
    );
}

// ---------------------------------------------------------------------------
// COMPOSITE
// ---------------------------------------------------------------------------

#[test]
fn composite_with_transforms_and_mask() {
    let mut a = Arena::new(BASE, SIZE);
    let rows = a.put(&pixels(4 * 4 * 3));
    let mut src_spec = BitmapSpec::qemu(4, 3, rows);
    src_spec.format = bitmap_format::RGBA;
    let src = a.put(&kit::with_image_flags(
        kit::bitmap_image(&src_spec),
        image_flags::CACHE | image_flags::HIGH_BITS_SET,
    ));
    let alpha = a.put(&pixels(8));
    let mask_spec = BitmapSpec {
        format: bitmap_format::EIGHT_BIT_A,
        stride: 4,
        ..BitmapSpec::qemu(4, 2, alpha)
    };
    let mask = a.put(&kit::bitmap_image(&mask_spec));
    let src_t = [1 << 16, 0, 5 << 16, 0, 1 << 16, (-3i32 << 16) as u32];
    let mask_t = [2 << 16, 1, 2, 3, 2 << 16, 4];
    let src_transform = a.put(&kit::transform(src_t));
    let mask_transform = a.put(&kit::transform(mask_t));
    // OVER (3), bilinear source, nearest mask, NORMAL source repeat, PAD mask repeat.
    let flags = 3 | 1 << 8 | 1 << 14 | 2 << 16 | composite_flags::MASK_OPAQUE;
    let op = kit::composite_op(flags, src, src_transform, mask, mask_transform, (-2, 7), (3, -4));
    let cmd = put_draw(&mut a, draw_type::COMPOSITE, op);
    let d = accepted(&a, cmd);
    let DrawOp::Composite(c) = &d.op else {
        panic!("{:?}", d.op)
    };
    let (Image::Bitmap(sb), Some(Image::Bitmap(mb))) = (&c.src, &c.mask) else {
        panic!("{c:?}")
    };
    assert_eq!(
        (sb.width, sb.height, sb.format, sb.cache_me, sb.high_bits_set),
        (4, 3, bitmap_format::RGBA, true, true)
    );
    assert_eq!(sb.data, pixels(48));
    assert!(c.src.cache_me());
    assert_eq!(
        (mb.format, mb.stride, mb.cache_me, mb.high_bits_set, &mb.data),
        (bitmap_format::EIGHT_BIT_A, 4, false, false, &pixels(8))
    );
    assert_eq!(
        *c,
        Composite {
            flags,
            src: c.src.clone(),
            src_transform: Some(src_t),
            mask: c.mask.clone(),
            mask_transform: Some(mask_t),
            src_origin: (-2, 7),
            mask_origin: (3, -4),
        }
    );
    assert_eq!(
        (
            c.op(),
            c.src_filter(),
            c.mask_filter(),
            c.src_repeat(),
            c.mask_repeat()
        ),
        (3, 1, 0, 1, 2)
    );
    assert!(c.mask_opaque() && !c.source_opaque() && !c.dest_opaque() && !c.component_alpha());
    assert_eq!(
        c.spice_flags(),
        flags
            | composite_flags::HAS_MASK
            | composite_flags::HAS_SRC_TRANSFORM
            | composite_flags::HAS_MASK_TRANSFORM
    );
    assert_eq!(d.op.images(), vec![&c.src, c.mask.as_ref().unwrap()]);
}

#[test]
fn composite_without_mask_or_transforms() {
    let mut a = Arena::new(BASE, SIZE);
    let src = a.put(&kit::surface_image(9, 2));
    // No mask: its transform pointer is not even looked at (as in the C server).
    let op = kit::composite_op(1, src, 0, 0, OUTSIDE, (0, 0), (0, 0));
    let cmd = put_draw(&mut a, draw_type::COMPOSITE, op);
    let d = accepted(&a, cmd);
    let DrawOp::Composite(c) = &d.op else { panic!() };
    assert_eq!(c.src, Image::Surface { surface_id: 2 });
    assert_eq!((c.src_transform, &c.mask, c.mask_transform), (None, &None, None));
    assert_eq!(c.spice_flags(), 1);
    assert!(!c.src.cache_me());
    assert_eq!(d.op.images(), vec![&c.src]);
}

#[test]
fn composite_rejections() {
    let mut a = Arena::new(BASE, SIZE);
    let rows = a.put(&pixels(16));
    let src = a.put(&kit::bitmap_image(&BitmapSpec::qemu(2, 2, rows)));
    let t = a.put(&kit::transform([1 << 16, 0, 0, 0, 1 << 16, 0]));
    let comp = |a: &mut Arena, src, st, mask, mt| {
        put_draw(
            a,
            draw_type::COMPOSITE,
            kit::composite_op(3, src, st, mask, mt, (0, 0), (0, 0)),
        )
    };

    let cmd = comp(&mut a, 0, 0, 0, 0);
    assert_eq!(
        rejected(&a, cmd),
        ParseError::Invalid {
            what: "drawable.composite.src",
            value: 0
        }
    );
    let cmd = comp(&mut a, OUTSIDE, 0, 0, 0);
    assert!(matches!(
        rejected(&a, cmd),
        ParseError::Slot {
            what: "drawable.composite.src",
            ..
        }
    ));
    // Transforms outside the slot, or straddling its end.
    for bad in [OUTSIDE, BASE + SIZE as u64 - 8] {
        let cmd = comp(&mut a, src, bad, 0, 0);
        assert!(matches!(
            rejected(&a, cmd),
            ParseError::Slot {
                what: "drawable.composite.src_transform",
                source: MemSlotError::OutOfRange { .. }
            }
        ));
        let cmd = comp(&mut a, src, t, src, bad);
        assert!(matches!(
            rejected(&a, cmd),
            ParseError::Slot {
                what: "drawable.composite.mask_transform",
                ..
            }
        ));
    }
    let cmd = comp(&mut a, src, t, OUTSIDE, t);
    assert!(matches!(
        rejected(&a, cmd),
        ParseError::Slot {
            what: "drawable.composite.mask",
            ..
        }
    ));
    // A palette mask without its palette: composite masks are full images.
    let idx = a.put(&[0; 4]);
    let pal_mask = a.put(&kit::bitmap_image(&BitmapSpec {
        format: bitmap_format::EIGHT_BIT,
        stride: 2,
        ..BitmapSpec::qemu(2, 2, idx)
    }));
    let cmd = comp(&mut a, src, 0, pal_mask, 0);
    assert!(matches!(rejected(&a, cmd), ParseError::Invalid { .. }));
    // Source and mask share the command's budget.
    let cmd = comp(&mut a, src, 0, src, 0);
    let limits = ParseLimits {
        max_command_bytes: 16 + 8,
        ..ParseLimits::default()
    };
    assert!(matches!(
        rejected_with(&a, limits, cmd),
        ParseError::CommandBudget {
            needed: 16,
            remaining: 8
        }
    ));
}

#[test]
fn image_descriptor_flags_on_quic_and_bitmap() {
    let mut a = Arena::new(BASE, SIZE);
    let quic = a.put(&kit::with_image_flags(
        kit::quic_image(4, 8, 8, 4, b"QUIC", 0),
        image_flags::CACHE,
    ));
    let cmd = put_draw(
        &mut a,
        draw_type::COPY,
        kit::copy_op(quic, kit::rect(0, 0, 8, 8), 8, 0, 0),
    );
    let DrawOp::Copy(c) = accepted(&a, cmd).op else {
        panic!()
    };
    assert!(matches!(c.src, Image::Quic { cache_me: true, .. }));
    let rows = a.put(&pixels(16));
    let bitmap = a.put(&kit::with_image_flags(
        kit::bitmap_image(&BitmapSpec::qemu(2, 2, rows)),
        image_flags::HIGH_BITS_SET,
    ));
    let cmd = put_draw(
        &mut a,
        draw_type::COPY,
        kit::copy_op(bitmap, kit::rect(0, 0, 2, 2), 8, 0, 0),
    );
    let DrawOp::Copy(c) = accepted(&a, cmd).op else {
        panic!()
    };
    let Image::Bitmap(b) = &c.src else { panic!() };
    assert!(!b.cache_me && b.high_bits_set);
}
