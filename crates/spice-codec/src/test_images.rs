//! Synthetic test images and a tiny PRNG, shared by the codecs' tests and
//! micro-benchmarks.

use crate::ImageRef;

/// xorshift64*: deterministic, dependency-free randomness for tests.
pub struct XorShift(u64);

impl XorShift {
    /// A generator from a non-zero-ized seed.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An owned 32-bit image (B, G, R, A bytes), possibly with row padding.
pub struct Image {
    /// What it shows, for messages.
    pub name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
    /// Bytes per row.
    pub stride: usize,
    /// The rows.
    pub data: Vec<u8>,
}

impl Image {
    /// A black, transparent image with `pad` extra bytes per row (filled
    /// with garbage that no codec may look at).
    pub fn new(name: &str, width: u32, height: u32, pad: usize) -> Self {
        let stride = width as usize * 4 + pad;
        let mut data = vec![0u8; stride * height as usize];
        for y in 0..height as usize {
            for b in &mut data[y * stride + width as usize * 4..(y + 1) * stride] {
                *b = 0x5a;
            }
        }
        Self {
            name: name.to_string(),
            width,
            height,
            stride,
            data,
        }
    }

    /// Sets pixel (x, y) to `0xAARRGGBB`.
    pub fn set(&mut self, x: u32, y: u32, argb: u32) {
        let i = y as usize * self.stride + x as usize * 4;
        self.data[i..i + 4].copy_from_slice(&argb.to_le_bytes());
    }

    /// Pixel (x, y) as `0xAARRGGBB`.
    pub fn get(&self, x: u32, y: u32) -> u32 {
        let i = y as usize * self.stride + x as usize * 4;
        u32::from_le_bytes(self.data[i..i + 4].try_into().unwrap())
    }

    /// A borrowed view.
    pub fn as_ref(&self) -> ImageRef<'_> {
        ImageRef {
            width: self.width,
            height: self.height,
            stride: self.stride,
            data: &self.data,
        }
    }

    /// The rows without padding.
    pub fn packed(&self) -> Vec<u8> {
        let r = self.as_ref();
        (0..self.height).flat_map(|y| r.row(y).to_vec()).collect()
    }

    /// Uncompressed size of the pixels, in bytes.
    pub fn bytes(&self) -> usize {
        self.width as usize * self.height as usize * 4
    }

    fn fill(name: &str, w: u32, h: u32, pad: usize, f: impl Fn(u32, u32) -> u32) -> Self {
        let mut img = Self::new(name, w, h, pad);
        for y in 0..h {
            for x in 0..w {
                img.set(x, y, f(x, y));
            }
        }
        img
    }
}

/// A two-way colour gradient, opaque.
pub fn gradient(w: u32, h: u32) -> Image {
    Image::fill(&format!("gradient {w}x{h}"), w, h, 0, |x, y| {
        let r = x * 255 / w.max(2);
        let g = y * 255 / h.max(2);
        let b = (x + y) & 0xff;
        0xff00_0000 | r << 16 | g << 8 | b
    })
}

/// A single colour.
pub fn solid(w: u32, h: u32) -> Image {
    Image::fill(&format!("solid {w}x{h}"), w, h, 0, |_, _| 0xff3a_6ea5)
}

/// Random pixels (incompressible RGB, random alpha).
pub fn noise(w: u32, h: u32, seed: u64) -> Image {
    let mut img = Image::new(&format!("noise {w}x{h}"), w, h, 0);
    let mut rng = XorShift::new(seed);
    for y in 0..h {
        for x in 0..w {
            img.set(x, y, rng.next() as u32);
        }
    }
    img
}

/// Dark glyphs from a small font on a light background, in lines, with
/// anti-aliased edges: what a terminal or a document looks like.
pub fn text(w: u32, h: u32, pad: usize) -> Image {
    let mut rng = XorShift::new(42);
    // 60 glyphs of 7x13, each a few strokes with grey edges.
    let glyphs: Vec<Vec<u8>> = (0..60)
        .map(|_| {
            let mut g = vec![0u8; 7 * 13];
            for _ in 0..3 {
                let vertical = rng.below(2) == 0;
                let (x0, y0) = (rng.below(6) as usize, 2 + rng.below(9) as usize);
                let len = 2 + rng.below(6) as usize;
                for k in 0..len {
                    let (x, y) = if vertical { (x0, y0 + k) } else { (x0 + k, y0) };
                    if x < 7 && y < 13 {
                        g[y * 7 + x] = 255;
                        if x + 1 < 7 && g[y * 7 + x + 1] == 0 {
                            g[y * 7 + x + 1] = 96;
                        }
                    }
                }
            }
            g
        })
        .collect();
    let mut img = Image::new(&format!("text {w}x{h}+{pad}"), w, h, pad);
    let (bg, fg) = (0xfff0_f0f0u32, 0xff20_2020u32);
    for y in 0..h {
        for x in 0..w {
            img.set(x, y, bg);
        }
    }
    let mut cy = 2;
    while cy + 13 <= h {
        let line_len = rng.below(u64::from(w / 7).max(1)) as u32;
        let mut cx = 4;
        for _ in 0..line_len {
            if cx + 7 > w {
                break;
            }
            if rng.below(6) != 0 {
                let g = &glyphs[rng.below(60) as usize];
                for gy in 0..13 {
                    for gx in 0..7 {
                        let a = u32::from(g[gy * 7 + gx]);
                        if a > 0 {
                            let mix = |s: u32| {
                                let (b, f) = ((bg >> s) & 0xff, (fg >> s) & 0xff);
                                (b * (255 - a) + f * a) / 255
                            };
                            let c = 0xff00_0000 | mix(16) << 16 | mix(8) << 8 | mix(0);
                            img.set(cx + gx as u32, cy + gy as u32, c);
                        }
                    }
                }
            }
            cx += 7;
        }
        cy += 16;
    }
    img
}

/// Window-like content: a desktop gradient, panels with borders, a title bar
/// gradient, buttons and a few icons.
pub fn ui(w: u32, h: u32) -> Image {
    let mut img = Image::fill(&format!("ui {w}x{h}"), w, h, 0, |x, y| {
        0xff00_0000 | (20 + y * 60 / h.max(1)) << 16 | (40 + x * 40 / w.max(1)) << 8 | 120
    });
    let mut rng = XorShift::new(9);
    for _ in 0..6 {
        let (x0, y0) = (rng.below(u64::from(w)) as u32, rng.below(u64::from(h)) as u32);
        let (ww, hh) = (
            rng.below(u64::from(w / 2 + 1)) as u32 + 8,
            rng.below(u64::from(h / 2 + 1)) as u32 + 8,
        );
        for y in y0..(y0 + hh).min(h) {
            for x in x0..(x0 + ww).min(w) {
                let border = x == x0 || y == y0 || x + 1 == (x0 + ww).min(w) || y + 1 == (y0 + hh).min(h);
                let c = if border {
                    0xff80_8080
                } else if y < y0 + 20 {
                    0xff00_0000 | (30 + (x - x0) * 100 / ww) << 16 | 0x50 << 8 | 0xc0
                } else {
                    0xffee_eeee
                };
                img.set(x, y, c);
            }
        }
        // A couple of "icons": small noisy squares, repeated.
        let icon: Vec<u32> = (0..256).map(|_| rng.next() as u32 | 0xff00_0000).collect();
        for k in 0..3u32 {
            let (ix, iy) = (x0 + 10 + k * 24, y0 + 30);
            for j in 0..16 {
                for i in 0..16 {
                    if ix + i < w && iy + j < h {
                        img.set(ix + i, iy + j, icon[(j * 16 + i) as usize]);
                    }
                }
            }
        }
    }
    img
}

/// A smooth photo-like field with fine noise.
pub fn photo(w: u32, h: u32) -> Image {
    Image::fill(&format!("photo {w}x{h}"), w, h, 0, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let r = 128.0 + 60.0 * (fx * 0.031).sin() + 40.0 * (fy * 0.017 + fx * 0.005).cos();
        let g = 110.0 + 70.0 * (fy * 0.023).sin() * (fx * 0.011).cos();
        let b = 90.0 + 50.0 * ((fx + fy) * 0.013).sin();
        let n = |v: f32| (v as i32 + (rng_hash(x, y) % 7) as i32 - 3).clamp(0, 255) as u32;
        0xff00_0000 | n(r) << 16 | n(g) << 8 | n(b)
    })
}

fn rng_hash(x: u32, y: u32) -> u32 {
    let mut v = x.wrapping_mul(0x9E37_79B9) ^ y.wrapping_mul(0x85EB_CA6B);
    v ^= v >> 15;
    v = v.wrapping_mul(0x2C1B_3C6D);
    v ^ (v >> 12)
}

/// A cursor-like image: a transparent field, an opaque shape with
/// anti-aliased (partly transparent) edges.
pub fn cursor(w: u32, h: u32) -> Image {
    let (cx, cy, rad) = (w as f32 / 2.0, h as f32 / 2.0, w.min(h) as f32 / 2.5);
    Image::fill(&format!("cursor {w}x{h}"), w, h, 4, |x, y| {
        let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
        let a = ((rad - d + 0.5).clamp(0.0, 1.0) * 255.0) as u32;
        if a == 0 {
            0
        } else {
            a << 24 | 0x00ff_ffff & (0x10_2030 + x * 3)
        }
    })
}

/// Small images of every kind, odd sizes and padded rows included.
pub fn small() -> Vec<Image> {
    let mut v = vec![
        solid(1, 1),
        noise(1, 1, 1),
        gradient(2, 1),
        gradient(1, 9),
        solid(5, 3),
        noise(3, 5, 2),
        gradient(13, 7),
        text(33, 17, 4),
        ui(31, 23),
        cursor(16, 16),
        photo(17, 11),
    ];
    let mut padded = gradient(9, 4);
    padded.name = "gradient 9x4 padded".into();
    let stride = 9 * 4 + 12;
    let mut data = vec![0xeeu8; stride * 4];
    for y in 0..4 {
        data[y * stride..y * stride + 36].copy_from_slice(padded.as_ref().row(y as u32));
    }
    padded.data = data;
    padded.stride = stride;
    v.push(padded);
    v
}

/// Every test image: the small ones and larger ones of each kind.
pub fn all() -> Vec<Image> {
    let mut v = small();
    v.extend([
        solid(640, 480),
        gradient(255, 129),
        noise(97, 61, 3),
        text(300, 200, 0),
        text(301, 150, 12),
        ui(400, 300),
        photo(211, 97),
        cursor(64, 64),
        // Wider than the near-reference distance: rows refer far back.
        text(9001, 20, 0),
    ]);
    v
}

/// Bigger images for the micro-benchmarks.
pub fn bench() -> Vec<Image> {
    vec![
        text(1024, 768, 0),
        ui(1024, 768),
        photo(1024, 768),
        gradient(1024, 768),
        solid(1024, 768),
        noise(512, 384, 5),
    ]
}

/// Applies one to four random mutations: bit flips, byte overwrites,
/// insertions, deletions, truncation, duplicated slices.
pub fn mutate(input: &mut Vec<u8>, rng: &mut XorShift) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len() as u64;
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len) as usize;
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len) as usize;
                input[i] = [0, 1, 31, 32, 0x7f, 0xe0, 0xff][rng.below(7) as usize];
            }
            2 => {
                let i = rng.below(len + 1) as usize;
                input.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len) as usize;
                input.remove(i);
            }
            4 => {
                let n = rng.below(len + 1) as usize;
                input.truncate(n);
            }
            5 if len > 1 => {
                let a = rng.below(len) as usize;
                let b = (a + 1 + rng.below(16) as usize).min(input.len());
                let chunk = input[a..b].to_vec();
                let at = rng.below(input.len() as u64 + 1) as usize;
                input.splice(at..at, chunk);
            }
            _ => {
                let n = rng.below(5) as usize;
                input.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
}
