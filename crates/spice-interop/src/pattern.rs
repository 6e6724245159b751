//! Deterministic pictures for pixel-exact comparisons.

use spice_server::{DisplayHandle, Frame, Rect};

/// A window dragged a few pixels at a time in every direction: each step's
/// copy overlaps its source (for tests of copies within the picture).
pub const DRAG_STEPS: [(i32, i32); 8] = [
    (3, 2),
    (-4, 5),
    (6, -3),
    (-2, -6),
    (0, 7),
    (9, 0),
    (-7, 0),
    (0, -5),
];

/// A host framebuffer the tests paint into and publish.
#[derive(Debug, Clone)]
pub struct Canvas {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row (deliberately padded, as real framebuffers often are).
    pub stride: usize,
    /// xRGB pixels, little endian.
    pub data: Vec<u8>,
    seed: u64,
}

impl Canvas {
    /// A canvas filled with a gradient that differs per `seed`, with padded rows.
    pub fn new(width: u32, height: u32, seed: u64) -> Self {
        let stride = width as usize * 4 + 12;
        let mut c = Self {
            width,
            height,
            stride,
            data: vec![0xEE; stride * height as usize],
            seed,
        };
        for y in 0..height {
            for x in 0..width {
                let v = [
                    (x * 255 / width.max(1)) as u8,
                    (y * 255 / height.max(1)) as u8,
                    seed as u8,
                    0,
                ];
                c.put(x, y, v);
            }
        }
        c
    }

    /// A canvas of horizontal bands in a few colours: the kind of content
    /// (UI, text backgrounds) every dictionary coder shrinks a lot.
    pub fn stripes(width: u32, height: u32, seed: u64) -> Self {
        let mut c = Self::new(width, height, seed);
        for y in 0..height {
            let v = ((y / 8) as u8).wrapping_mul(40).wrapping_add(seed as u8);
            for x in 0..width {
                c.put(x, y, [v, v / 2, 255 - v, 0]);
            }
        }
        c
    }

    fn put(&mut self, x: u32, y: u32, bgrx: [u8; 4]) {
        let i = y as usize * self.stride + x as usize * 4;
        self.data[i..i + 4].copy_from_slice(&bgrx);
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: reproducible noise without a dependency.
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Paints a rectangle of noise at a random place and returns it.
    pub fn scribble(&mut self) -> Rect {
        let w = (self.next() % u64::from(self.width)) as u32 / 2 + 1;
        let h = (self.next() % u64::from(self.height)) as u32 / 2 + 1;
        let x = (self.next() % u64::from(self.width - w + 1)) as u32;
        let y = (self.next() % u64::from(self.height - h + 1)) as u32;
        for yy in y..y + h {
            for xx in x..x + w {
                let n = self.next().to_le_bytes();
                self.put(xx, yy, [n[0], n[1], n[2], 0]);
            }
        }
        Rect::new(x, y, w, h)
    }

    /// Paints `rect` (inside the canvas) with noise and returns it.
    pub fn scribble_at(&mut self, rect: Rect) -> Rect {
        for y in rect.y..rect.y + rect.height {
            for x in rect.x..rect.x + rect.width {
                let n = self.next().to_le_bytes();
                self.put(x, y, [n[0], n[1], n[2], 0]);
            }
        }
        rect
    }

    /// Copies `src` (inside the canvas) so that its corner lands at
    /// `(x, y)` (the destination inside too), as a window move does;
    /// overlapping areas are read before they are written.
    pub fn copy_area(&mut self, src: Rect, x: u32, y: u32) {
        let row_bytes = src.width as usize * 4;
        let rows: Vec<u32> = if src.y < y {
            (0..src.height).rev().collect()
        } else {
            (0..src.height).collect()
        };
        for row in rows {
            let from = (src.y + row) as usize * self.stride + src.x as usize * 4;
            let to = (y + row) as usize * self.stride + x as usize * 4;
            self.data.copy_within(from..from + row_bytes, to);
        }
    }

    /// Scrolls the picture up by `rows` (less than the height) and paints the
    /// rows uncovered at the bottom with a new line of "text" (dark marks on
    /// a light band), like a terminal; returns the whole canvas as damage.
    pub fn scroll_up(&mut self, rows: u32) -> Rect {
        let rows = rows.min(self.height - 1);
        self.data.copy_within(rows as usize * self.stride.., 0);
        for y in self.height - rows..self.height {
            for x in 0..self.width {
                self.put(x, y, [0xf0, 0xf0, 0xf0, 0]);
            }
        }
        let mut x = 2;
        while x + 6 < self.width {
            let glyph = self.next();
            for gy in 0..rows.min(12) {
                for gx in 0..5 {
                    if glyph >> ((gy * 5 + gx) % 64) & 1 == 1 {
                        self.put(x + gx, self.height - rows + gy, [0x20, 0x20, 0x30, 0]);
                    }
                }
            }
            x += 7;
        }
        Rect::new(0, 0, self.width, self.height)
    }

    /// Paints frame `t` of a synthetic video into `area`: smooth colour
    /// waves drifting with `t` plus a little per-pixel grain, so it looks
    /// photographic to an encoder and every frame differs everywhere.
    /// Returns `area`.
    pub fn video_frame(&mut self, area: Rect, t: u32) -> Rect {
        for y in area.y..(area.y + area.height).min(self.height) {
            for x in area.x..(area.x + area.width).min(self.width) {
                let wave = |k: u32, phase: u32| {
                    let v = (x * k + y * (k + 1) + t * phase) % 512;
                    (if v < 256 { v } else { 511 - v }) as u8
                };
                let grain = ((x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503) ^ t) >> 7) as u8 & 7;
                self.put(
                    x,
                    y,
                    [
                        wave(1, 5).saturating_add(grain),
                        wave(2, 3).saturating_add(grain),
                        wave(3, 7).saturating_add(grain),
                        0,
                    ],
                );
            }
        }
        area
    }

    /// Fills `area` with one `bgrx` colour (cheap to draw and to encode
    /// losslessly, whatever the build). Returns `area`.
    pub fn fill(&mut self, area: Rect, bgrx: [u8; 4]) -> Rect {
        let row = bgrx.repeat(area.width.min(self.width.saturating_sub(area.x)) as usize);
        for y in area.y..(area.y + area.height).min(self.height) {
            let at = y as usize * self.stride + area.x as usize * 4;
            self.data[at..at + row.len()].copy_from_slice(&row);
        }
        area
    }

    /// The frame as the display handle takes it.
    pub fn frame(&self) -> Frame<'_> {
        Frame {
            width: self.width,
            height: self.height,
            stride: self.stride,
            data: &self.data,
        }
    }

    /// Publishes the whole canvas.
    pub fn publish(&self, display: &DisplayHandle) {
        display.publish(&self.frame()).expect("valid frame");
    }

    /// Packed xRGB rows, as a client surface holds them (X bytes zeroed).
    pub fn packed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.width as usize * self.height as usize * 4);
        for y in 0..self.height as usize {
            out.extend_from_slice(&self.data[y * self.stride..y * self.stride + self.width as usize * 4]);
        }
        zero_x(&mut out);
        out
    }
}

/// Zeroes the unused X byte of every pixel so surfaces compare on colour only.
pub fn zero_x(pixels: &mut [u8]) {
    for px in pixels.chunks_exact_mut(4) {
        px[3] = 0;
    }
}

/// Packs rows of `stride` bytes into `width * 4`-byte rows, X zeroed.
pub fn pack(data: &[u8], width: u32, height: u32, stride: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(width as usize * height as usize * 4);
    for y in 0..height as usize {
        out.extend_from_slice(&data[y * stride..y * stride + width as usize * 4]);
    }
    zero_x(&mut out);
    out
}

/// How many pixels differ, for failure messages.
pub fn diff_count(a: &[u8], b: &[u8]) -> usize {
    a.chunks(4).zip(b.chunks(4)).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len()) / 4
}
