//! Each draw operation against pixels worked out by hand.

use spice_qxl::image::bitmap_format;
use spice_qxl::{
    AlphaBlend, Bitmap, Brush, Clip, CopyOp, DrawOp, Drawable, Fill, Image, Mask, Opaque, Point, Rect, Rop3,
    Transparent,
};

use crate::rop::ropd;
use crate::{draw, Format, NoSources, Sources, Surface, SurfaceRef};

const RED: u32 = 0x00ff_0000;
const BLUE: u32 = 0x0000_00ff;

pub(crate) fn rect(left: i32, top: i32, right: i32, bottom: i32) -> Rect {
    Rect {
        top,
        left,
        bottom,
        right,
    }
}

pub(crate) fn drawable(bbox: Rect, op: DrawOp) -> Drawable {
    Drawable {
        surface_id: 0,
        effect: 0,
        bbox,
        clip: Clip::None,
        mm_time: 0,
        self_bitmap: false,
        self_bitmap_area: Rect::default(),
        surfaces_dest: [-1; 3],
        surfaces_rects: [Rect::default(); 3],
        op,
    }
}

fn fill(brush: Brush, rop_descriptor: u16, mask: Option<Mask>) -> DrawOp {
    DrawOp::Fill(Fill {
        brush,
        rop_descriptor,
        mask,
    })
}

/// A 32-bit top-down bitmap from pixel values.
pub(crate) fn bitmap(width: u32, height: u32, px: impl Fn(u32, u32) -> u32) -> Image {
    let mut data = Vec::new();
    for y in 0..height {
        for x in 0..width {
            data.extend_from_slice(&px(x, y).to_le_bytes());
        }
    }
    Image::Bitmap(Bitmap {
        id: 0,
        width,
        height,
        format: bitmap_format::THIRTY_TWO_BIT,
        top_down: true,
        stride: width * 4,
        palette: None,
        data,
        guest_rows: None,
        cache_me: false,
        high_bits_set: false,
    })
}

fn copy(src: Image, src_area: Rect, rop_descriptor: u16) -> CopyOp {
    CopyOp {
        src,
        src_area,
        rop_descriptor,
        scale_mode: crate::source::SCALE_NEAREST,
        mask: None,
    }
}

pub(crate) fn px(s: &Surface, x: u32, y: u32) -> u32 {
    crate::source::pixel_at(&s.view(), x.into(), y.into()).unwrap()
}

/// Surface `id` → its pixels, for operations reading other surfaces.
pub(crate) struct Map(pub(crate) Vec<(u32, Surface)>);

impl Sources for Map {
    fn surface(&self, id: u32) -> Option<SurfaceRef<'_>> {
        self.0.iter().find(|(i, _)| *i == id).map(|(_, s)| s.view())
    }
}

fn run(target: &mut Surface, d: &Drawable) -> Option<Rect> {
    draw(&mut target.view_mut(), 0, d, &NoSources).unwrap()
}

/// A surface whose every pixel tells where it is: `y << 8 | x`.
fn numbered(w: u32, h: u32) -> Surface {
    let mut s = Surface::new(w, h, Format::Xrgb32).unwrap();
    let d = drawable(
        rect(0, 0, w as i32, h as i32),
        DrawOp::Copy(copy(
            bitmap(w, h, |x, y| y << 8 | x),
            rect(0, 0, w as i32, h as i32),
            ropd::OP_PUT,
        )),
    );
    run(&mut s, &d);
    s
}

#[test]
fn solid_fill_stays_inside_box_and_clip() {
    let mut s = Surface::new(8, 8, Format::Xrgb32).unwrap();
    let mut d = drawable(rect(1, 1, 7, 7), fill(Brush::Solid(RED), ropd::OP_PUT, None));
    d.clip = Clip::Rects(vec![rect(0, 0, 4, 4), rect(5, 5, 8, 8)]);
    assert_eq!(run(&mut s, &d), Some(rect(1, 1, 7, 7)));
    for y in 0..8 {
        for x in 0..8 {
            let inside =
                (1..7).contains(&x) && (1..7).contains(&y) && ((x < 4 && y < 4) || (x >= 5 && y >= 5));
            assert_eq!(px(&s, x, y), if inside { RED } else { 0 }, "({x}, {y})");
        }
    }
}

#[test]
fn fill_raster_operations() {
    let mut s = Surface::new(4, 1, Format::Xrgb32).unwrap();
    run(
        &mut s,
        &drawable(
            rect(0, 0, 4, 1),
            fill(Brush::Solid(0x00f0_f0f0), ropd::OP_PUT, None),
        ),
    );
    run(
        &mut s,
        &drawable(
            rect(0, 0, 2, 1),
            fill(Brush::Solid(0x00ff_00ff), ropd::OP_XOR, None),
        ),
    );
    assert_eq!(px(&s, 0, 0), 0x000f_f00f);
    assert_eq!(px(&s, 2, 0), 0x00f0_f0f0);
    run(
        &mut s,
        &drawable(
            rect(2, 0, 4, 1),
            fill(Brush::Solid(0x0000_000f), ropd::OP_OR | ropd::INVERS_BRUSH, None),
        ),
    );
    assert_eq!(px(&s, 2, 0), 0xffff_fff0, "not brush, or dest");
    run(
        &mut s,
        &drawable(rect(3, 0, 4, 1), fill(Brush::None, ropd::OP_INVERS, None)),
    );
    assert_eq!(px(&s, 3, 0), 0x0000_000f);
}

#[test]
fn pattern_brushes_tile_from_their_origin() {
    let mut s = Surface::new(6, 3, Format::Xrgb32).unwrap();
    let tile = bitmap(2, 2, |x, y| if (x + y) % 2 == 0 { RED } else { BLUE });
    let brush = Brush::Pattern {
        image: tile,
        pos: Point { x: 1, y: 0 },
    };
    run(
        &mut s,
        &drawable(rect(0, 0, 6, 3), fill(brush, ropd::OP_PUT, None)),
    );
    for y in 0..3 {
        for x in 0..6 {
            // Tile pixel ((x - 1) mod 2, y mod 2).
            let expect = if (x + 1 + y) % 2 == 0 { RED } else { BLUE };
            assert_eq!(px(&s, x, y) & 0xffffff, expect, "({x}, {y})");
        }
    }
}

#[test]
fn masks_limit_fills_and_can_be_inverted() {
    let mask_image = Image::Bitmap(Bitmap {
        id: 0,
        width: 4,
        height: 1,
        format: bitmap_format::ONE_BIT_BE,
        top_down: true,
        stride: 1,
        palette: None,
        data: vec![0b1010_0000],
        guest_rows: None,
        cache_me: false,
        high_bits_set: false,
    });
    for (flags, lit) in [(0u8, [true, false, true, false]), (1, [false, true, false, true])] {
        let mut s = Surface::new(6, 1, Format::Xrgb32).unwrap();
        let mask = Mask {
            flags,
            pos: Point { x: 0, y: 0 },
            image: mask_image.clone(),
        };
        run(
            &mut s,
            &drawable(
                rect(1, 0, 6, 1),
                fill(Brush::Solid(RED), ropd::OP_PUT, Some(mask)),
            ),
        );
        let got: Vec<bool> = (1..5).map(|x| px(&s, x, 0) == RED).collect();
        assert_eq!(got, lit, "mask flags {flags}");
        assert_eq!(px(&s, 5, 0), 0, "outside the mask nothing is drawn");
    }
}

#[test]
fn copies_a_sub_area_of_a_bitmap() {
    let mut s = Surface::new(4, 4, Format::Xrgb32).unwrap();
    let src = bitmap(3, 3, |x, y| 0x10 * (y * 3 + x) + 1);
    assert_eq!(
        run(
            &mut s,
            &drawable(
                rect(2, 1, 4, 3),
                DrawOp::Copy(copy(src, rect(1, 1, 3, 3), ropd::OP_PUT))
            )
        ),
        Some(rect(2, 1, 4, 3))
    );
    assert_eq!(
        [px(&s, 2, 1), px(&s, 3, 1), px(&s, 2, 2), px(&s, 3, 2)],
        [0x41, 0x51, 0x71, 0x81]
    );
    assert_eq!(px(&s, 1, 1), 0);
}

#[test]
fn scaled_copies_use_nearest_pixels() {
    let mut s = Surface::new(4, 2, Format::Xrgb32).unwrap();
    let src = bitmap(2, 1, |x, _| if x == 0 { RED } else { BLUE });
    run(
        &mut s,
        &drawable(
            rect(0, 0, 4, 2),
            DrawOp::Copy(copy(src, rect(0, 0, 2, 1), ropd::OP_PUT)),
        ),
    );
    let row: Vec<u32> = (0..4).map(|x| px(&s, x, 1) & 0xffffff).collect();
    assert_eq!(row, [RED, RED, BLUE, BLUE]);
}

#[test]
fn copies_from_other_surfaces_and_from_the_target_itself() {
    let other = numbered(4, 4);
    let mut s = Surface::new(4, 4, Format::Xrgb32).unwrap();
    let from_other = drawable(
        rect(0, 0, 2, 2),
        DrawOp::Copy(copy(
            Image::Surface { surface_id: 7 },
            rect(2, 2, 4, 4),
            ropd::OP_PUT,
        )),
    );
    draw(&mut s.view_mut(), 0, &from_other, &Map(vec![(7, other)])).unwrap();
    assert_eq!([px(&s, 0, 0), px(&s, 1, 1)], [0x202, 0x303]);
    let missing = draw(&mut s.view_mut(), 0, &from_other, &NoSources);
    assert!(matches!(missing, Err(crate::CanvasError::NoSurface(7))));
    // From itself, overlapping: the source is read before it is overwritten.
    let mut s = numbered(4, 1);
    let from_self = drawable(
        rect(1, 0, 4, 1),
        DrawOp::Copy(copy(
            Image::Surface { surface_id: 0 },
            rect(0, 0, 3, 1),
            ropd::OP_PUT,
        )),
    );
    run(&mut s, &from_self);
    assert_eq!((0..4).map(|x| px(&s, x, 0)).collect::<Vec<_>>(), [0, 0, 1, 2]);
}

#[test]
fn copy_with_a_raster_operation() {
    let mut s = Surface::new(2, 1, Format::Xrgb32).unwrap();
    run(
        &mut s,
        &drawable(rect(0, 0, 2, 1), fill(Brush::Solid(0x0f0f), ropd::OP_PUT, None)),
    );
    let src = bitmap(2, 1, |_, _| 0x00ff);
    run(
        &mut s,
        &drawable(
            rect(0, 0, 1, 1),
            DrawOp::Copy(copy(src.clone(), rect(0, 0, 1, 1), ropd::OP_AND)),
        ),
    );
    run(
        &mut s,
        &drawable(
            rect(1, 0, 2, 1),
            DrawOp::Blend(copy(src, rect(1, 0, 2, 1), ropd::OP_XOR | ropd::INVERS_RES)),
        ),
    );
    assert_eq!(px(&s, 0, 0), 0x000f);
    assert_eq!(px(&s, 1, 0), !(0x0f0f ^ 0x00ff));
}

#[test]
fn copy_bits_scroll_both_ways() {
    let mut s = numbered(3, 4);
    // Scroll up one row: row y takes row y + 1.
    let up = drawable(
        rect(0, 0, 3, 3),
        DrawOp::CopyBits {
            src_pos: Point { x: 0, y: 1 },
        },
    );
    assert_eq!(run(&mut s, &up), Some(rect(0, 0, 3, 3)));
    assert_eq!(
        (0..4).map(|y| px(&s, 1, y)).collect::<Vec<_>>(),
        [0x101, 0x201, 0x301, 0x301]
    );
    // Scroll down and right, overlapping the other way.
    let mut s = numbered(3, 4);
    let down = drawable(
        rect(1, 1, 3, 4),
        DrawOp::CopyBits {
            src_pos: Point { x: 0, y: 0 },
        },
    );
    run(&mut s, &down);
    assert_eq!([px(&s, 1, 1), px(&s, 2, 3), px(&s, 0, 3)], [0x000, 0x201, 0x300]);
    // A source outside the surface moves nothing there.
    let mut s = numbered(3, 4);
    let outside = drawable(
        rect(0, 0, 3, 4),
        DrawOp::CopyBits {
            src_pos: Point { x: 0, y: 2 },
        },
    );
    assert_eq!(run(&mut s, &outside), Some(rect(0, 0, 3, 2)));
    assert_eq!(px(&s, 0, 3), 0x300);
}

#[test]
fn blackness_whiteness_invers_on_sub_word_formats() {
    let mut s = Surface::new(5, 1, Format::Rgb565).unwrap();
    run(
        &mut s,
        &drawable(rect(0, 0, 3, 1), DrawOp::Whiteness { mask: None }),
    );
    run(
        &mut s,
        &drawable(rect(1, 0, 2, 1), DrawOp::Blackness { mask: None }),
    );
    run(&mut s, &drawable(rect(2, 0, 4, 1), DrawOp::Invers { mask: None }));
    assert_eq!(
        (0..5).map(|x| px(&s, x, 0)).collect::<Vec<_>>(),
        [0xffff, 0, 0, 0xffff, 0]
    );
    let mut a8 = Surface::new(3, 1, Format::A8).unwrap();
    run(
        &mut a8,
        &drawable(
            rect(1, 0, 3, 1),
            fill(Brush::Solid(0x1234_5680), ropd::OP_PUT, None),
        ),
    );
    assert_eq!(
        a8.row_bytes(0).unwrap()[..3],
        [0, 0x80, 0x80],
        "raw pixel values, cut to the format"
    );
}

#[test]
fn opaque_puts_the_source_then_the_brush_on_it() {
    let mut s = Surface::new(2, 1, Format::Xrgb32).unwrap();
    let op = DrawOp::Opaque(Opaque {
        src: bitmap(2, 1, |_, _| 0x0ff0),
        src_area: rect(0, 0, 2, 1),
        brush: Brush::Solid(0x00ff),
        rop_descriptor: ropd::OP_AND,
        scale_mode: crate::source::SCALE_NEAREST,
        mask: None,
    });
    run(&mut s, &drawable(rect(0, 0, 2, 1), op));
    assert_eq!(px(&s, 1, 0), 0x00f0);
}

#[test]
fn rop3_combines_pattern_source_and_destination() {
    let mut s = Surface::new(2, 1, Format::Xrgb32).unwrap();
    run(
        &mut s,
        &drawable(rect(0, 0, 2, 1), fill(Brush::Solid(0xaaaa), ropd::OP_PUT, None)),
    );
    let rop3 = |code| {
        DrawOp::Rop3(Rop3 {
            src: bitmap(2, 1, |_, _| 0xcccc),
            src_area: rect(0, 0, 2, 1),
            brush: Brush::Solid(0xf0f0),
            rop3: code,
            scale_mode: crate::source::SCALE_NEAREST,
            mask: None,
        })
    };
    run(&mut s, &drawable(rect(0, 0, 1, 1), rop3(0x5a)));
    run(&mut s, &drawable(rect(1, 0, 2, 1), rop3(0xb8)));
    assert_eq!(px(&s, 0, 0), 0xf0f0 ^ 0xaaaa);
    assert_eq!(px(&s, 1, 0), (0xf0f0 & !0xcccc) | (0xaaaa & 0xcccc));
}

#[test]
fn transparent_skips_the_key_colour() {
    let mut s = Surface::new(3, 1, Format::Xrgb32).unwrap();
    run(
        &mut s,
        &drawable(rect(0, 0, 3, 1), fill(Brush::Solid(BLUE), ropd::OP_PUT, None)),
    );
    let op = DrawOp::Transparent(Transparent {
        src: bitmap(3, 1, |x, _| if x == 1 { 0xff00_ff00 } else { RED }),
        src_area: rect(0, 0, 3, 1),
        src_color: 0,
        true_color: 0x0000_ff00,
    });
    run(&mut s, &drawable(rect(0, 0, 3, 1), op));
    assert_eq!(
        (0..3).map(|x| px(&s, x, 0) & 0xffffff).collect::<Vec<_>>(),
        [RED, BLUE, RED]
    );
}

#[test]
fn alpha_blend_mixes_by_the_global_alpha() {
    let mut s = Surface::new(2, 1, Format::Xrgb32).unwrap();
    let op = |alpha| {
        DrawOp::AlphaBlend(AlphaBlend {
            alpha_flags: 0,
            alpha,
            src: bitmap(2, 1, |_, _| 0x00ff_ffff),
            src_area: rect(0, 0, 2, 1),
        })
    };
    run(&mut s, &drawable(rect(0, 0, 1, 1), op(128)));
    assert_eq!(run(&mut s, &drawable(rect(1, 0, 2, 1), op(0))), None);
    let v = px(&s, 0, 0) & 0xffffff;
    for shift in [0, 8, 16] {
        let c = v >> shift & 0xff;
        assert!((0x7f..=0x81).contains(&c), "channel {c:#x} of {v:#x}");
    }
    assert_eq!(px(&s, 1, 0), 0);
}

#[test]
fn operations_outside_the_target_draw_nothing() {
    let mut s = Surface::new(4, 4, Format::Xrgb32).unwrap();
    let far = rect(i32::MAX - 2, i32::MIN, i32::MAX, i32::MIN + 5);
    assert_eq!(
        run(
            &mut s,
            &drawable(far, fill(Brush::Solid(RED), ropd::OP_PUT, None))
        ),
        None
    );
    let bits = drawable(
        rect(0, 0, 4, 4),
        DrawOp::CopyBits {
            src_pos: Point {
                x: i32::MIN,
                y: i32::MAX,
            },
        },
    );
    assert_eq!(run(&mut s, &bits), None);
    assert!((0..4).all(|y| (0..4).all(|x| px(&s, x, y) == 0)));
}

#[test]
fn huge_boxes_cost_only_the_visible_part() {
    // A 1x1 source stretched over a box of 30000 x 30000 pixels: only the
    // target's 4x4 is produced (not a 3.6 GB buffer). Beyond ±32767 pixman's
    // 16.16 coordinates give out, for the C canvas as for this one.
    let mut s = Surface::new(4, 4, Format::Xrgb32).unwrap();
    let src = bitmap(1, 1, |_, _| RED);
    let huge = rect(-15000, -15000, 15000, 15000);
    let d = drawable(huge, DrawOp::Copy(copy(src, rect(0, 0, 1, 1), ropd::OP_PUT)));
    assert_eq!(run(&mut s, &d), Some(rect(0, 0, 4, 4)));
    assert!((0..4).all(|y| (0..4).all(|x| px(&s, x, y) & 0xffffff == RED)));
    // A copy from far outside the target itself reads nothing that is not there.
    let mut s = numbered(4, 4);
    let outside = rect(1 << 28, 1 << 28, (1 << 28) + 4, (1 << 28) + 4);
    let d = drawable(
        rect(0, 0, 4, 4),
        DrawOp::Copy(copy(Image::Surface { surface_id: 0 }, outside, ropd::OP_PUT)),
    );
    draw(&mut s.view_mut(), 0, &d, &NoSources).unwrap();
}
