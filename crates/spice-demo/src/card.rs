//! The test card: a static background, the live parts drawn over it, and the
//! bookkeeping that tells clients only which rectangles changed.
//!
//! Every live part ("widget") owns a fixed area and never paints outside it.
//! When a widget changes, its old and new areas are recomposed from scratch
//! (background, then every widget in z-order, clipped to the area) and become
//! the frame's damage. Recomposing rather than patching keeps overlaps right,
//! e.g. the bouncing square passing under the clock.

use spice_server::{Frame, Leds, Rect};

use crate::canvas::{Area, Canvas, Color};
use crate::devices::TYPED_KEEP;
use crate::font::{draw_text, text_height, text_width, ADVANCE};

/// Scale of the small text.
const SCALE: i32 = 2;
/// Padding inside text panels, in pixels.
const PAD: i32 = 4;
/// Distance between info lines.
const LINE: i32 = 30;
/// Margin at the left of the info area.
const MARGIN: i32 = 16;
/// Width of the label column ("Pointer: "), in characters.
const LABEL_CHARS: usize = 9;
/// Characters the pointer panel has room for.
const POINTER_CHARS: usize = 50;
/// Characters of the clock text, "HH:MM:SS UTC".
const CLOCK_CHARS: usize = 12;
/// Square speed in pixels per frame, horizontally and vertically.
const SPEED: (u64, u64) = (5, 3);

/// Tells a newcomer what to try.
const HINT: &str = "Type, move the pointer, click, toggle Num/Caps/Scroll Lock.";
/// 75% colour bars, left to right.
const BARS: [Color; 7] = [
    0xbfbfbf, 0xbfbf00, 0x00bfbf, 0x00bf00, 0xbf00bf, 0xbf0000, 0x0000bf,
];
const INFO_BG: Color = 0x101830;
const WHITE: Color = 0xffffff;
const BLACK: Color = 0x000000;
const LED_ON: Color = 0x20e020;
const LED_OFF: Color = 0x303030;
const LED_NAMES: [(Leds, &str); 3] = [
    (Leds::NUM_LOCK, "NUM"),
    (Leds::CAPS_LOCK, "CAPS"),
    (Leds::SCROLL_LOCK, "SCROLL"),
];

/// What the live parts show in one frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scene {
    /// Frame number; drives the bouncing square.
    pub tick: u64,
    /// Clock text, see [`clock_text`].
    pub clock: String,
    /// The last characters typed.
    pub typed: String,
    /// The pointer line.
    pub pointer: String,
    /// Keyboard lock LEDs.
    pub leds: Leds,
}

/// `HH:MM:SS UTC` for a time in seconds since the Unix epoch.
pub fn clock_text(unix_secs: u64) -> String {
    let day = unix_secs % 86_400;
    format!("{:02}:{:02}:{:02} UTC", day / 3600, day / 60 % 60, day % 60)
}

/// Where everything goes at a given picture size.
#[derive(Debug, Clone)]
struct Layout {
    /// Colour bars; the square bounces inside.
    bars: Area,
    /// Grey ramp under the bars.
    strip: Area,
    /// Dark area with the text lines.
    info: Area,
    square_side: i32,
    clock_scale: i32,
    clock: Area,
    typed: Area,
    pointer: Area,
    leds: [Area; 3],
}

impl Layout {
    fn new(width: u32, height: u32) -> Self {
        let (w, h) = (width as i32, height as i32);
        let bars = Area::new(0, 0, w, h * 55 / 100);
        let strip = Area::new(0, bars.bottom(), w, h * 62 / 100 - bars.bottom());
        let info = Area::new(0, strip.bottom(), w, h - strip.bottom());

        let clock_scale = if w >= 480 { 4 } else { SCALE };
        let clock_pad = 2 * clock_scale;
        let (cw, ch) = (
            text_width(CLOCK_CHARS, clock_scale) + 2 * clock_pad,
            text_height(clock_scale) + 2 * clock_pad,
        );
        let clock = Area::new((w - cw) / 2, (bars.h - ch) / 2, cw, ch);

        let panel_x = MARGIN + LABEL_CHARS as i32 * ADVANCE * SCALE;
        let panel_h = text_height(SCALE) + 2 * PAD;
        let row = |i: i32| info.y + 10 + LINE * (i + 1);
        let panel =
            |i: i32, chars: usize| Area::new(panel_x, row(i), text_width(chars, SCALE) + 2 * PAD, panel_h);
        let led_w = text_width(6, SCALE) + 4 * PAD;
        let led = |i: i32| Area::new(panel_x + i * (led_w + 12), row(2), led_w, panel_h);
        Self {
            bars,
            strip,
            info,
            square_side: (w.min(bars.h) / 8).max(4),
            clock_scale,
            clock,
            typed: panel(0, TYPED_KEEP),
            pointer: panel(1, POINTER_CHARS),
            leds: [led(0), led(1), led(2)],
        }
    }

    /// Top-left corner of the text label of info row `i`.
    fn label(&self, i: i32) -> (i32, i32) {
        (MARGIN, self.typed.y + LINE * i + PAD)
    }

    /// The square's area at frame `tick`: it bounces off the edges of the bars.
    fn square(&self, tick: u64) -> Area {
        let side = self.square_side;
        let x = bounce(tick.wrapping_mul(SPEED.0), self.bars.w - side);
        let y = bounce(tick.wrapping_mul(SPEED.1), self.bars.h - side);
        Area::new(self.bars.x + x, self.bars.y + y, side, side)
    }
}

/// Position `distance` along a back-and-forth walk over `0..=span`.
fn bounce(distance: u64, span: i32) -> i32 {
    let Ok(span) = u64::try_from(span) else {
        return 0; // No room to move: stay put.
    };
    if span == 0 {
        return 0;
    }
    let p = distance % (2 * span);
    (if p <= span { p } else { 2 * span - p }) as i32
}

/// Draws the parts that never change.
fn draw_background(c: &mut Canvas, l: &Layout, title: &str) {
    // Colour bars, with a dark grid and a white circle over them like a broadcast test card.
    let w = l.bars.w;
    for (i, color) in BARS.iter().enumerate() {
        let (x0, x1) = (w * i as i32 / 7, w * (i as i32 + 1) / 7);
        c.fill(Area::new(x0, l.bars.y, x1 - x0, l.bars.h), *color);
    }
    let cell = (l.bars.h / 6).max(8);
    for x in (cell / 2..w).step_by(cell as usize) {
        c.fill(Area::new(x, l.bars.y, 1, l.bars.h), 0x202020);
    }
    for y in (cell / 2..l.bars.h).step_by(cell as usize) {
        c.fill(Area::new(0, y, w, 1), 0x202020);
    }
    let (cx, cy) = (w / 2, l.bars.h / 2);
    let r = i64::from(w.min(l.bars.h) * 45 / 100);
    for y in (cy - r as i32).max(0)..(cy + r as i32 + 1).min(l.bars.bottom()) {
        for x in (cx - r as i32).max(0)..(cx + r as i32 + 1).min(w) {
            let d2 = i64::from(x - cx).pow(2) + i64::from(y - cy).pow(2);
            if d2 <= r * r && d2 >= (r - 3) * (r - 3) {
                c.put(x, y, WHITE);
            }
        }
    }

    // Grey ramp: checks the client shows every shade.
    let span = (l.strip.w - 1).max(1);
    for x in 0..l.strip.w {
        let v = (x * 255 / span) as u32;
        c.fill(Area::new(x, l.strip.y, 1, l.strip.h), v * 0x010101);
    }

    c.fill(l.info, INFO_BG);
    draw_text(c, MARGIN, l.info.y + 10, title, SCALE, WHITE);
    for (i, label) in ["Keys:", "Pointer:", "Locks:"].into_iter().enumerate() {
        let (x, y) = l.label(i as i32);
        draw_text(c, x, y, label, SCALE, 0xa0a0a0);
    }
    let (x, y) = l.label(3);
    draw_text(c, x, y + 6, HINT, SCALE, 0x7080a0);
}

/// Runs `draw` with drawing confined to `area` as well as the current clip, so a
/// widget can never paint outside the area its damage covers.
fn within(c: &mut Canvas, area: Area, draw: impl FnOnce(&mut Canvas)) {
    let saved = c.clip();
    if !saved.overlaps(area) {
        return;
    }
    c.set_clip(saved.intersect(area));
    draw(c);
    c.set_clip(saved);
}

/// A text panel: `bg` box with `text` inset by `pad`.
fn panel(c: &mut Canvas, area: Area, text: &str, scale: i32, pad: i32, fg: Color, bg: Color) {
    within(c, area, |c| {
        c.fill(area, bg);
        draw_text(c, area.x + pad, area.y + pad, text, scale, fg);
    });
}

/// Recomposes `area` of `frame`: background, then every widget in z-order.
fn compose(frame: &mut Canvas, background: &Canvas, l: &Layout, scene: &Scene, square: Area, area: Area) {
    frame.set_clip(area);
    frame.copy_from(background, area);
    within(frame, square, |c| {
        let inset = |a: Area, by: i32| Area::new(a.x + by, a.y + by, a.w - 2 * by, a.h - 2 * by);
        c.fill(square, BLACK);
        c.fill(inset(square, 2), 0xff8000);
        c.fill(inset(square, square.w / 4), WHITE);
    });
    let cs = l.clock_scale;
    panel(frame, l.clock, &scene.clock, cs, 2 * cs, WHITE, BLACK);
    panel(frame, l.typed, &scene.typed, SCALE, PAD, 0x80ff80, BLACK);
    panel(frame, l.pointer, &scene.pointer, SCALE, PAD, 0xffff80, BLACK);
    for (led_area, (led, name)) in l.leds.iter().zip(LED_NAMES) {
        let (fg, bg) = if scene.leds.contains(led) {
            (BLACK, LED_ON)
        } else {
            (0x808080, LED_OFF)
        };
        // Centre the name in the box.
        let pad_x = (led_area.w - text_width(name.len(), SCALE)) / 2;
        within(frame, *led_area, |c| {
            c.fill(*led_area, bg);
            draw_text(c, led_area.x + pad_x, led_area.y + PAD, name, SCALE, fg);
        });
    }
    frame.reset_clip();
}

/// The card: background, current frame, and what the frame currently shows.
#[derive(Debug, Clone)]
pub struct Card {
    layout: Layout,
    background: Canvas,
    frame: Canvas,
    /// The scene and square position in `frame`; `None` before the first render.
    shown: Option<(Scene, Area)>,
}

impl Card {
    /// A card of `width × height` (each 1..=16384) with `title` on its info line.
    pub fn new(width: u32, height: u32, title: &str) -> Self {
        let layout = Layout::new(width, height);
        let mut background = Canvas::new(width, height);
        draw_background(&mut background, &layout, title);
        Self {
            layout,
            frame: background.clone(),
            background,
            shown: None,
        }
    }

    /// Brings the frame up to `scene` and returns the rectangles that changed:
    /// the whole card the first time, then the old and new places of whatever moved.
    pub fn render(&mut self, scene: &Scene) -> Vec<Rect> {
        let bounds = self.frame.bounds();
        let square = self.layout.square(scene.tick);
        let l = &self.layout;
        let mut dirty = Vec::new();
        match &self.shown {
            None => dirty.push(bounds),
            Some((old, old_square)) => {
                if *old_square != square {
                    // A small step: one box around both places beats two overlapping ones.
                    if old_square.overlaps(square) {
                        dirty.push(old_square.bounding(square));
                    } else {
                        dirty.extend([*old_square, square]);
                    }
                }
                for (changed, area) in [
                    (old.clock != scene.clock, l.clock),
                    (old.typed != scene.typed, l.typed),
                    (old.pointer != scene.pointer, l.pointer),
                ] {
                    if changed {
                        dirty.push(area);
                    }
                }
                for (area, (led, _)) in l.leds.iter().zip(LED_NAMES) {
                    if old.leds.contains(led) != scene.leds.contains(led) {
                        dirty.push(*area);
                    }
                }
            }
        }
        let mut damage = Vec::with_capacity(dirty.len());
        for area in dirty {
            let area = area.intersect(bounds);
            if area.is_empty() {
                continue; // Off-screen at this size.
            }
            compose(&mut self.frame, &self.background, l, scene, square, area);
            damage.push(area.to_rect());
        }
        self.shown = Some((scene.clone(), square));
        damage
    }

    /// The current picture.
    pub fn frame(&self) -> Frame<'_> {
        self.frame.frame()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(tick: u64) -> Scene {
        Scene {
            tick,
            clock: clock_text(tick),
            typed: "Hello".into(),
            pointer: "  10,20   client mode  buttons L-- wheel 0".into(),
            leds: Leds::NUM_LOCK,
        }
    }

    fn changed(tick: u64) -> Scene {
        Scene {
            tick,
            clock: clock_text(tick.wrapping_add(3661)),
            typed: "Hello, world!⏎ and more".into(),
            pointer: " 999,700  server mode  buttons -MR wheel -3".into(),
            leds: Leds::CAPS_LOCK | Leds::SCROLL_LOCK,
        }
    }

    fn pixel<'a>(frame: &Frame<'a>, x: u32, y: u32) -> &'a [u8] {
        let i = y as usize * frame.stride + x as usize * 4;
        &frame.data[i..i + 4]
    }

    /// Asserts every pixel that differs between `before` and the card's frame lies in `damage`.
    fn assert_damage_covers_changes(before: &[u8], card: &Card, damage: &[Rect]) {
        let f = card.frame();
        let mut changed = 0;
        for y in 0..f.height {
            for x in 0..f.width {
                let i = y as usize * f.stride + x as usize * 4;
                if before[i..i + 4] != *pixel(&f, x, y) {
                    changed += 1;
                    let covered = damage.iter().any(|r| {
                        x >= r.x && y >= r.y && u64::from(x) < r.right() && u64::from(y) < r.bottom()
                    });
                    assert!(covered, "pixel {x},{y} changed outside damage {damage:?}");
                }
            }
        }
        assert!(changed > 0 || damage.is_empty() || f.width * f.height < 64);
    }

    #[test]
    fn clock_formats_utc_time_of_day() {
        assert_eq!(clock_text(0), "00:00:00 UTC");
        assert_eq!(clock_text(86_399), "23:59:59 UTC");
        assert_eq!(clock_text(5 * 86_400 + 3661), "01:01:01 UTC");
        assert_eq!(clock_text(1_700_000_000), "22:13:20 UTC");
    }

    #[test]
    fn bounce_walks_back_and_forth() {
        let walk: Vec<i32> = (0..9).map(|d| bounce(d, 3)).collect();
        assert_eq!(walk, [0, 1, 2, 3, 2, 1, 0, 1, 2]);
        assert_eq!(bounce(17, 0), 0);
        assert_eq!(bounce(17, -5), 0);
        assert!(bounce(u64::MAX, 1000) <= 1000);
    }

    #[test]
    fn first_render_is_full_and_unchanged_scene_is_free() {
        let mut card = Card::new(320, 200, "t");
        assert_eq!(card.render(&scene(0)), [Rect::new(0, 0, 320, 200)]);
        assert_eq!(card.render(&scene(0)), []);
    }

    #[test]
    fn damage_covers_every_changed_pixel() {
        for (w, h) in [(1024, 768), (320, 200), (97, 61)] {
            let mut card = Card::new(w, h, "damage test");
            card.render(&scene(0));
            // Square moves only; then everything changes; then the square jumps far.
            for next in [scene(1), changed(2), changed(500), scene(501)] {
                let before = card.frame().data.to_vec();
                let damage = card.render(&next);
                assert!(!damage.is_empty());
                assert_damage_covers_changes(&before, &card, &damage);
            }
        }
    }

    #[test]
    fn incremental_frames_match_a_fresh_render() {
        let mut card = Card::new(640, 480, "same");
        for tick in 0..40 {
            card.render(&if tick % 7 == 3 { changed(tick) } else { scene(tick) });
        }
        let last = scene(40);
        card.render(&last);
        let mut fresh = Card::new(640, 480, "same");
        fresh.render(&last);
        assert!(
            card.frame().data == fresh.frame().data,
            "stale pixels left behind"
        );
    }

    #[test]
    fn moving_square_damages_only_a_small_area() {
        let mut card = Card::new(1024, 768, "t");
        card.render(&scene(0));
        // Same clock and inputs; only the square moves.
        let damage = card.render(&Scene { tick: 1, ..scene(0) });
        assert_eq!(damage.len(), 1, "{damage:?}");
        let area: u64 = damage.iter().map(Rect::area).sum();
        assert!(area < 1024 * 768 / 50, "{damage:?}");
    }

    #[test]
    fn odd_and_tiny_sizes_render_without_panicking() {
        let display = spice_server::DisplayHandle::new();
        for (w, h) in [
            (320, 200),
            (1, 1),
            (2, 3),
            (1, 40),
            (40, 1),
            (7, 5),
            (33, 17),
            (100, 30),
            (479, 1000),
        ] {
            let mut card = Card::new(w, h, "a title longer than the picture is wide");
            for tick in [0, 1, 2, 1000, 1001, u64::MAX] {
                let s = if tick % 2 == 0 { scene(tick) } else { changed(tick) };
                for r in card.render(&s) {
                    assert!(
                        r.right() <= u64::from(w) && r.bottom() <= u64::from(h),
                        "{r:?} in {w}x{h}"
                    );
                    assert!(!r.is_empty());
                }
                display.publish(&card.frame()).unwrap();
            }
        }
    }

    #[test]
    fn live_parts_show_up() {
        let mut card = Card::new(1024, 768, "t");
        let mut s = scene(0);
        s.leds = Leds::CAPS_LOCK;
        card.render(&s);
        let l = card.layout.clone();
        let f = card.frame();
        let centre = |a: Area| (a.x as u32 + 2, a.y as u32 + 2);
        let (x, y) = centre(l.leds[1]);
        assert_eq!(pixel(&f, x, y), &LED_ON.to_le_bytes(), "caps LED lit");
        let (x, y) = centre(l.leds[0]);
        assert_eq!(pixel(&f, x, y), &LED_OFF.to_le_bytes(), "num LED dark");
        // Some text ink inside the typed panel.
        let ink = (l.typed.x..l.typed.right())
            .flat_map(|x| (l.typed.y..l.typed.bottom()).map(move |y| (x as u32, y as u32)))
            .filter(|&(x, y)| pixel(&f, x, y) == 0x80ff80u32.to_le_bytes())
            .count();
        assert!(ink > 50, "{ink}");
    }
}
