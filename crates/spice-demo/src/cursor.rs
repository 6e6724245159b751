//! The pointer image: a classic arrow, white with a black outline, drawn from a polygon.

use spice_server::{CursorImage, DisplayError};

/// Cursor width in pixels.
pub const WIDTH: u16 = 16;
/// Cursor height in pixels.
pub const HEIGHT: u16 = 24;

/// The arrow's outline, tip at the top-left; the fill is what lies inside.
/// The tip sits one column in so the black outline lands on the hotspot pixel (0, 0).
const ARROW: [(f32, f32); 7] = [
    (1.0, 0.0),
    (1.0, 17.0),
    (5.0, 13.0),
    (8.0, 20.5),
    (10.5, 19.5),
    (7.5, 12.5),
    (12.5, 12.5),
];

const OPAQUE_BLACK: [u8; 4] = [0x00, 0x00, 0x00, 0xff];
const OPAQUE_WHITE: [u8; 4] = [0xff, 0xff, 0xff, 0xff];

/// Even-odd test of a point against [`ARROW`].
fn inside(px: f32, py: f32) -> bool {
    let mut inside = false;
    for (i, &(x1, y1)) in ARROW.iter().enumerate() {
        let (x2, y2) = ARROW[(i + 1) % ARROW.len()];
        if (y1 > py) != (y2 > py) && px < x1 + (py - y1) * (x2 - x1) / (y2 - y1) {
            inside = !inside;
        }
    }
    inside
}

/// The arrow as `WIDTH × HEIGHT` ARGB pixels (bytes B, G, R, A).
///
/// Pixels whose centre is inside the polygon are white; pixels touching those
/// (8-neighbourhood) are the black outline, so it stays visible on any background.
pub fn arrow_pixels() -> Vec<u8> {
    let (w, h) = (i32::from(WIDTH), i32::from(HEIGHT));
    let fill =
        |x: i32, y: i32| (0..w).contains(&x) && (0..h).contains(&y) && inside(x as f32 + 0.5, y as f32 + 0.5);
    let mut argb = Vec::with_capacity(usize::from(WIDTH) * usize::from(HEIGHT) * 4);
    for y in 0..h {
        for x in 0..w {
            let px = if fill(x, y) {
                OPAQUE_WHITE
            } else if (-1..=1).any(|dy| (-1..=1).any(|dx| fill(x + dx, y + dy))) {
                OPAQUE_BLACK
            } else {
                [0; 4]
            };
            argb.extend_from_slice(&px);
        }
    }
    argb
}

/// The arrow cursor with its hotspot at the tip, (0, 0).
pub fn arrow() -> Result<CursorImage, DisplayError> {
    CursorImage::new(WIDTH, HEIGHT, 0, 0, arrow_pixels())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(argb: &[u8], x: usize, y: usize) -> [u8; 4] {
        let i = (y * usize::from(WIDTH) + x) * 4;
        argb[i..i + 4].try_into().unwrap()
    }

    #[test]
    fn arrow_has_outlined_tip_white_body_and_clear_corners() {
        let argb = arrow_pixels();
        assert_eq!(at(&argb, 0, 0), OPAQUE_BLACK, "hotspot is on the outline");
        assert_eq!(at(&argb, 2, 6), OPAQUE_WHITE);
        assert_eq!(at(&argb, 0, 6), OPAQUE_BLACK);
        assert_eq!(at(&argb, 15, 0), [0; 4]);
        assert_eq!(at(&argb, 0, 23), [0; 4]);
        assert!(argb
            .chunks_exact(4)
            .all(|p| p == OPAQUE_BLACK || p == OPAQUE_WHITE || p == [0; 4]));
        let white = argb.chunks_exact(4).filter(|p| *p == OPAQUE_WHITE).count();
        assert!(white > 60, "{white} white pixels");
    }

    #[test]
    fn arrow_is_a_valid_cursor() {
        let cursor = arrow().unwrap();
        assert_eq!((cursor.width(), cursor.height()), (WIDTH, HEIGHT));
    }
}
