//! A tiny built-in 5×7 bitmap font for printable ASCII, drawn at integer scales.
//!
//! The glyphs were drawn for this demo; each is seven rows of five bits, the
//! most significant of the five being the leftmost column. Characters sit in
//! 6×8 cells (one column and one row of spacing) before scaling.

use crate::canvas::{Area, Canvas, Color};

/// Glyph width in font pixels.
pub const GLYPH_W: i32 = 5;
/// Glyph height in font pixels.
pub const GLYPH_H: i32 = 7;
/// Horizontal distance from one character to the next, in font pixels.
pub const ADVANCE: i32 = GLYPH_W + 1;

/// The "return" arrow shown for Enter in the typed-text line.
pub const ENTER_SYMBOL: char = '⏎';

/// Glyph drawn for Enter: a hooked arrow pointing left.
const ENTER_GLYPH: [u8; 7] = [0b00001, 0b00001, 0b00101, 0b01001, 0b11111, 0b01000, 0b00100];
/// Glyph drawn for characters the font lacks: an empty box.
const MISSING_GLYPH: [u8; 7] = [0b11111, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11111];

/// Glyphs for ASCII 0x20 (space) through 0x7E (tilde), in order.
#[rustfmt::skip]
const GLYPHS: [[u8; 7]; 95] = [
    [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000], // space
    [0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000, 0b00100], // !
    [0b01010, 0b01010, 0b01010, 0b00000, 0b00000, 0b00000, 0b00000], // "
    [0b01010, 0b01010, 0b11111, 0b01010, 0b11111, 0b01010, 0b01010], // #
    [0b00100, 0b01111, 0b10100, 0b01110, 0b00101, 0b11110, 0b00100], // $
    [0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011], // %
    [0b01100, 0b10010, 0b10100, 0b01000, 0b10101, 0b10010, 0b01101], // &
    [0b00100, 0b00100, 0b01000, 0b00000, 0b00000, 0b00000, 0b00000], // '
    [0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010], // (
    [0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000], // )
    [0b00000, 0b00100, 0b10101, 0b01110, 0b10101, 0b00100, 0b00000], // *
    [0b00000, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0b00000], // +
    [0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b00100, 0b01000], // ,
    [0b00000, 0b00000, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000], // -
    [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100], // .
    [0b00000, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b00000], // /
    [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110], // 0
    [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110], // 1
    [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111], // 2
    [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110], // 3
    [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010], // 4
    [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110], // 5
    [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110], // 6
    [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000], // 7
    [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110], // 8
    [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100], // 9
    [0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000], // :
    [0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b00100, 0b01000], // ;
    [0b00010, 0b00100, 0b01000, 0b10000, 0b01000, 0b00100, 0b00010], // <
    [0b00000, 0b00000, 0b11111, 0b00000, 0b11111, 0b00000, 0b00000], // =
    [0b01000, 0b00100, 0b00010, 0b00001, 0b00010, 0b00100, 0b01000], // >
    [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b00000, 0b00100], // ?
    [0b01110, 0b10001, 0b00001, 0b01101, 0b10101, 0b10101, 0b01110], // @
    [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001], // A
    [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110], // B
    [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110], // C
    [0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100], // D
    [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111], // E
    [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000], // F
    [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111], // G
    [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001], // H
    [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110], // I
    [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100], // J
    [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001], // K
    [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111], // L
    [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001], // M
    [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001], // N
    [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110], // O
    [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000], // P
    [0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101], // Q
    [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001], // R
    [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110], // S
    [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100], // T
    [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110], // U
    [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100], // V
    [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010], // W
    [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001], // X
    [0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100], // Y
    [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111], // Z
    [0b01110, 0b01000, 0b01000, 0b01000, 0b01000, 0b01000, 0b01110], // [
    [0b00000, 0b10000, 0b01000, 0b00100, 0b00010, 0b00001, 0b00000], // \
    [0b01110, 0b00010, 0b00010, 0b00010, 0b00010, 0b00010, 0b01110], // ]
    [0b00100, 0b01010, 0b10001, 0b00000, 0b00000, 0b00000, 0b00000], // ^
    [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b11111], // _
    [0b01000, 0b00100, 0b00010, 0b00000, 0b00000, 0b00000, 0b00000], // `
    [0b00000, 0b00000, 0b01110, 0b00001, 0b01111, 0b10001, 0b01111], // a
    [0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b11110], // b
    [0b00000, 0b00000, 0b01110, 0b10000, 0b10000, 0b10001, 0b01110], // c
    [0b00001, 0b00001, 0b01101, 0b10011, 0b10001, 0b10001, 0b01111], // d
    [0b00000, 0b00000, 0b01110, 0b10001, 0b11111, 0b10000, 0b01110], // e
    [0b00110, 0b01001, 0b01000, 0b11100, 0b01000, 0b01000, 0b01000], // f
    [0b00000, 0b01111, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110], // g
    [0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001], // h
    [0b00100, 0b00000, 0b01100, 0b00100, 0b00100, 0b00100, 0b01110], // i
    [0b00010, 0b00000, 0b00110, 0b00010, 0b00010, 0b10010, 0b01100], // j
    [0b10000, 0b10000, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010], // k
    [0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110], // l
    [0b00000, 0b00000, 0b11010, 0b10101, 0b10101, 0b10001, 0b10001], // m
    [0b00000, 0b00000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001], // n
    [0b00000, 0b00000, 0b01110, 0b10001, 0b10001, 0b10001, 0b01110], // o
    [0b00000, 0b00000, 0b11110, 0b10001, 0b11110, 0b10000, 0b10000], // p
    [0b00000, 0b00000, 0b01101, 0b10011, 0b01111, 0b00001, 0b00001], // q
    [0b00000, 0b00000, 0b10110, 0b11001, 0b10000, 0b10000, 0b10000], // r
    [0b00000, 0b00000, 0b01110, 0b10000, 0b01110, 0b00001, 0b11110], // s
    [0b01000, 0b01000, 0b11100, 0b01000, 0b01000, 0b01001, 0b00110], // t
    [0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b10011, 0b01101], // u
    [0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100], // v
    [0b00000, 0b00000, 0b10001, 0b10001, 0b10101, 0b10101, 0b01010], // w
    [0b00000, 0b00000, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001], // x
    [0b00000, 0b00000, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110], // y
    [0b00000, 0b00000, 0b11111, 0b00010, 0b00100, 0b01000, 0b11111], // z
    [0b00010, 0b00100, 0b00100, 0b01000, 0b00100, 0b00100, 0b00010], // {
    [0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100], // |
    [0b01000, 0b00100, 0b00100, 0b00010, 0b00100, 0b00100, 0b01000], // }
    [0b00000, 0b00000, 0b01000, 0b10101, 0b00010, 0b00000, 0b00000], // ~
];

/// The rows of the glyph for `c`; characters outside the font get a box.
pub fn glyph(c: char) -> &'static [u8; 7] {
    match c {
        ' '..='~' => &GLYPHS[c as usize - 0x20],
        ENTER_SYMBOL => &ENTER_GLYPH,
        _ => &MISSING_GLYPH,
    }
}

/// Width in pixels of `chars` characters at `scale`, without trailing spacing.
pub fn text_width(chars: usize, scale: i32) -> i32 {
    let chars = i32::try_from(chars).unwrap_or(i32::MAX);
    (chars.saturating_mul(ADVANCE) - 1).max(0).saturating_mul(scale)
}

/// Height in pixels of a line of text at `scale`.
pub fn text_height(scale: i32) -> i32 {
    GLYPH_H * scale
}

/// Draws `text` with its top-left corner at `(x, y)`, each font pixel a
/// `scale × scale` block of `color`. Only ink is drawn; the background shows through.
pub fn draw_text(canvas: &mut Canvas, x: i32, y: i32, text: &str, scale: i32, color: Color) {
    let visible = canvas.bounds();
    for (i, c) in text.chars().enumerate() {
        let cx = x.saturating_add((i as i32).saturating_mul(ADVANCE * scale));
        if cx >= visible.right() {
            break; // Everything further right is off the canvas too.
        }
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..GLYPH_W {
                if bits & (0b10000 >> col) != 0 {
                    let px = Area::new(
                        cx.saturating_add(col * scale),
                        y.saturating_add(row as i32 * scale),
                        scale,
                        scale,
                    );
                    canvas.fill(px, color);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_fit_five_columns_and_are_distinct() {
        for (i, g) in GLYPHS.iter().enumerate() {
            assert!(g.iter().all(|row| *row < 32), "glyph {i:#x} is wider than 5");
            if i > 0 {
                assert!(g.iter().any(|row| *row != 0), "glyph {:#x} is blank", i + 0x20);
            }
        }
        for (a, ga) in GLYPHS.iter().enumerate() {
            for (b, gb) in GLYPHS.iter().enumerate().skip(a + 1) {
                assert_ne!(ga, gb, "{:#x} and {:#x} look alike", a + 0x20, b + 0x20);
            }
        }
    }

    #[test]
    fn lookup_covers_ascii_enter_and_unknown() {
        assert_eq!(glyph(' '), &[0; 7]);
        assert_eq!(glyph('A'), &GLYPHS[0x21]);
        assert_eq!(glyph('~'), &GLYPHS[94]);
        assert_eq!(glyph(ENTER_SYMBOL), &ENTER_GLYPH);
        assert_eq!(glyph('é'), &MISSING_GLYPH);
        assert_eq!(glyph('\n'), &MISSING_GLYPH);
    }

    #[test]
    fn text_puts_scaled_pixels_where_the_glyph_bits_are() {
        const INK: Color = 0xffffff;
        let (x0, y0, scale) = (3, 2, 2);
        let mut c = Canvas::new(40, 20);
        draw_text(&mut c, x0, y0, "AB", scale, INK);
        for (n, ch) in ['A', 'B'].into_iter().enumerate() {
            let gx = x0 + n as i32 * ADVANCE * scale;
            for row in 0..GLYPH_H {
                for col in 0..GLYPH_W {
                    let lit = glyph(ch)[row as usize] & (0b10000 >> col) != 0;
                    let want = if lit { INK } else { 0 };
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let (px, py) = (gx + col * scale + dx, y0 + row * scale + dy);
                        assert_eq!(c.pixel(px, py), Some(want), "{ch} at {px},{py}");
                    }
                }
            }
            // The spacing column after each glyph stays empty.
            for y in 0..20 {
                assert_eq!(c.pixel(gx + GLYPH_W * scale, y), Some(0));
            }
        }
        // Nothing above, left of or below the text.
        for x in 0..40 {
            assert_eq!(c.pixel(x, y0 - 1), Some(0));
            assert_eq!(c.pixel(x, y0 + GLYPH_H * scale), Some(0));
        }
        assert_eq!(c.pixel(x0 - 1, y0), Some(0));
    }

    #[test]
    fn text_off_the_edges_is_clipped() {
        let mut c = Canvas::new(8, 8);
        draw_text(&mut c, -7, -3, "Hello, world", 3, 0xff);
        draw_text(&mut c, i32::MAX - 2, i32::MAX - 2, "x", 2, 0xff);
        draw_text(&mut c, i32::MIN, 0, "clipped", 1, 0xff);
        draw_text(&mut c, 0, i32::MAX - 1, "low", 4, 0xff);
        let mut tiny = Canvas::new(1, 1);
        draw_text(&mut tiny, 0, 0, "M", 1, 0xff);
        assert_eq!(tiny.pixel(0, 0), Some(0xff));
    }

    #[test]
    fn widths() {
        assert_eq!(text_width(0, 2), 0);
        assert_eq!(text_width(1, 2), 10);
        assert_eq!(text_width(3, 1), 17);
        assert_eq!(text_height(2), 14);
    }
}
