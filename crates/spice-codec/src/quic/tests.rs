use super::golden::{Golden, FULL, HASHED};
use super::*;

/// xorshift64 step.
pub(super) fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// A deterministic test image: `height` rows of `stride` bytes, pixels of
/// `bpp` bytes. Styles: 0 smooth gradient with small noise (photo-like),
/// 1 two-colour glyph pattern (text-like), 2 uniform noise, 3 solid.
/// Bytes past each row are noise and must not matter.
///
/// The golden vectors were produced from exactly these images: do not change
/// this function.
pub(super) fn test_image(
    bpp: usize,
    width: usize,
    height: usize,
    stride: usize,
    style: u32,
    seed: u64,
) -> Vec<u8> {
    let mut s = seed | 1;
    let mut px = vec![0u8; stride * height];
    for y in 0..height {
        for x in 0..width {
            for c in 0..bpp {
                let v = match style {
                    0 => ((x * 3 + y * 5 + c * 40 + (x * y) / 7) as u64 + xorshift(&mut s) % 5) as u8,
                    1 => {
                        let ink = (x % 7 < 2 && y % 11 < 8) || (y % 11 == 4 && x % 7 < 5);
                        if ink {
                            20 + c as u8
                        } else {
                            235 - 3 * c as u8
                        }
                    }
                    2 => xorshift(&mut s) as u8,
                    _ => 0x5a ^ c as u8,
                };
                px[y * stride + x * bpp + c] = v;
            }
        }
        for b in &mut px[y * stride + width * bpp..(y + 1) * stride] {
            *b = xorshift(&mut s) as u8;
        }
    }
    px
}

/// FNV-1a, 64 bits.
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

const BIG: DecodeLimits = DecodeLimits { max_pixels: 1 << 24 };

fn kind(v: u32) -> QuicImageType {
    QuicImageType::from_u32(v).expect("valid type")
}

/// The coded part of a source pixel: X of RGB32 and the top bit of RGB16
/// are not coded.
fn coded_bits(kind: QuicImageType, px: &[u8]) -> Vec<u8> {
    match kind {
        QuicImageType::Rgb32 => px[..3].to_vec(),
        QuicImageType::Rgb16 => vec![px[0], px[1] & 0x7f],
        _ => px.to_vec(),
    }
}

/// Asserts that `img` holds the samples of the source image.
fn assert_same_pixels(
    kind: QuicImageType,
    width: usize,
    height: usize,
    stride: usize,
    src: &[u8],
    img: &DecodedImage,
) {
    assert_eq!(
        (img.kind, img.width as usize, img.height as usize),
        (kind, width, height)
    );
    let bpp = kind.source_bytes_per_pixel();
    let (dstride, native) = to_source_layout(img);
    for y in 0..height {
        for x in 0..width {
            let s = &src[y * stride + x * bpp..][..bpp];
            let d = &native[y * dstride + x * bpp..][..bpp];
            assert_eq!(
                coded_bits(kind, s),
                coded_bits(kind, d),
                "{kind:?} {width}x{height} pixel {x},{y}"
            );
        }
    }
    if matches!(
        kind,
        QuicImageType::Rgb32 | QuicImageType::Rgb24 | QuicImageType::Rgb16
    ) {
        assert!(img.data.chunks_exact(4).all(|p| p[3] == 0), "X bytes are 0");
    }
}

fn roundtrip(kind: QuicImageType, width: usize, height: usize, stride: usize, px: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode(kind, width as u32, height as u32, stride, px, &mut out).expect("encode");
    assert_eq!(out.len() % 4, 0);
    let img = decode(&out, &BIG).expect("decode");
    assert_same_pixels(kind, width, height, stride, px, &img);
    out
}

fn golden_image(g: &Golden) -> (QuicImageType, Vec<u8>) {
    let k = kind(g.kind);
    let px = test_image(
        k.source_bytes_per_pixel(),
        g.width,
        g.height,
        g.stride,
        g.style,
        g.seed,
    );
    (k, px)
}

#[test]
fn golden_streams_match_the_reference_encoder() {
    for (g, stream) in FULL {
        let (k, px) = golden_image(g);
        let mut out = Vec::new();
        encode(k, g.width as u32, g.height as u32, g.stride, &px, &mut out).unwrap();
        assert_eq!(
            &out[..],
            *stream,
            "{k:?} {}x{} style {}",
            g.width,
            g.height,
            g.style
        );
        let img = decode(stream, &BIG).unwrap();
        assert_same_pixels(k, g.width, g.height, g.stride, &px, &img);
    }
    for (g, len, hash) in HASHED {
        let (k, px) = golden_image(g);
        let mut out = Vec::new();
        encode(k, g.width as u32, g.height as u32, g.stride, &px, &mut out).unwrap();
        assert_eq!(
            (out.len(), fnv1a(&out)),
            (*len, *hash),
            "{k:?} {}x{} style {}",
            g.width,
            g.height,
            g.style
        );
        let img = decode(&out, &BIG).unwrap();
        assert_same_pixels(k, g.width, g.height, g.stride, &px, &img);
    }
}

/// The 1x1 golden stream, traced by hand. After the five header words the
/// pixel's R, G and B (41, 65, 65) are coded with code 7, the initial best
/// code of 8-bit models: values below 128 as a one bit and 7 value bits,
/// others as a zero bit and 7 bits of `value - 128`. Row 0's first pixel
/// is not predicted, so the coded values are the samples mapped with
/// `to_coded` (0, -1, 1, -2, ... to 0, 1, 2, 3, ...: 41 -> 82, 65 -> 130):
/// `1 1010010`, `0 0000010`, `0 0000010`, then zero bits to the end of
/// the word: 0xd2020200, little endian 00 02 02 d2. A zero word ends the
/// stream.
#[test]
fn hand_traced_1x1() {
    let px = [65u8, 65, 41, 0xee];
    let img = ImageRef {
        width: 1,
        height: 1,
        stride: 4,
        data: &px,
    };
    let mut out = Vec::new();
    encode_rgb32(&img, &mut out).unwrap();
    assert_eq!(
        out,
        [
            b'Q', b'U', b'I', b'C', 0, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0x00, 0x02, 0x02, 0xd2,
            0, 0, 0, 0
        ]
    );
    assert_eq!(out, FULL[0].1);
    let d = decode(&out, &BIG).unwrap();
    assert_eq!(d.data, [65, 65, 41, 0]);
}

#[test]
fn header_is_readable() {
    let (g, stream) = &FULL[3];
    assert_eq!(
        read_header(stream).unwrap(),
        Header {
            kind: QuicImageType::Rgba,
            width: g.width as u32,
            height: g.height as u32
        }
    );
}

#[test]
fn roundtrip_varied_content_all_types() {
    let sizes = [
        (1, 1),
        (1, 7),
        (7, 1),
        (2, 2),
        (3, 3),
        (5, 9),
        (17, 13),
        (64, 3),
        (129, 31),
        (2047, 2),
        (2048, 2),
        (2049, 3),
        (4100, 2),
        (33, 700),
    ];
    let mut seed = 1;
    for k in [
        QuicImageType::Rgb32,
        QuicImageType::Rgba,
        QuicImageType::Rgb24,
        QuicImageType::Rgb16,
        QuicImageType::Gray,
    ] {
        let bpp = k.source_bytes_per_pixel();
        for &(w, h) in &sizes {
            for style in 0..4 {
                for extra in [0, 3] {
                    seed += 1;
                    let stride = w * bpp + extra;
                    let px = test_image(bpp, w, h, stride, style, seed);
                    roundtrip(k, w, h, stride, &px);
                }
            }
        }
    }
}

/// The images every codec of the crate is tested on, as RGB32 and RGBA.
#[test]
fn roundtrip_shared_test_images() {
    for img in crate::test_images::all() {
        let (w, h) = (img.width as usize, img.height as usize);
        roundtrip(QuicImageType::Rgb32, w, h, img.stride, &img.data);
        roundtrip(QuicImageType::Rgba, w, h, img.stride, &img.data);
    }
}

/// Photo-like content: smooth 2-D gradients plus sensor noise, as RGB32 with
/// a stride beyond the row, and RGBA with a varying alpha.
#[test]
fn roundtrip_photo_like() {
    let (w, h) = (257usize, 97usize);
    let stride = w * 4 + 36;
    let mut s = 7;
    let mut px = vec![0u8; stride * h];
    for y in 0..h {
        for x in 0..w {
            let n = (xorshift(&mut s) % 9) as i32 - 4;
            let v = |a: i32, b: i32| ((x as i32 * a + y as i32 * b) / 8 + 60 + n).clamp(0, 255) as u8;
            px[y * stride + x * 4..][..4].copy_from_slice(&[v(3, 5), v(7, 2), v(1, 9), v(2, 2)]);
        }
    }
    let rgb = roundtrip(QuicImageType::Rgb32, w, h, stride, &px);
    let rgba = roundtrip(QuicImageType::Rgba, w, h, stride, &px);
    assert!(
        rgb.len() < w * h * 4 / 2,
        "photo-like content compresses: {}",
        rgb.len()
    );
    assert!(rgba.len() > rgb.len());
}

#[test]
fn solid_and_text_compress_well() {
    let (w, h) = (640, 480);
    let solid = test_image(4, w, h, w * 4, 3, 1);
    let out = roundtrip(QuicImageType::Rgb32, w, h, w * 4, &solid);
    assert!(out.len() < 4096, "solid 640x480 in {} bytes", out.len());
    let text = test_image(4, w, h, w * 4, 1, 1);
    let out = roundtrip(QuicImageType::Rgb32, w, h, w * 4, &text);
    assert!(out.len() < w * h * 4 / 4, "text 640x480 in {} bytes", out.len());
}

#[test]
fn encode_appends_and_x_is_ignored() {
    let mut px = test_image(4, 9, 4, 36, 0, 3);
    let mut a = vec![0xaa, 0xbb];
    encode_rgb32(
        &ImageRef {
            width: 9,
            height: 4,
            stride: 36,
            data: &px,
        },
        &mut a,
    )
    .unwrap();
    assert_eq!(a[..2], [0xaa, 0xbb]);
    for p in px.chunks_exact_mut(4) {
        p[3] ^= 0x5c;
    }
    let mut b = Vec::new();
    encode_rgb32(
        &ImageRef {
            width: 9,
            height: 4,
            stride: 36,
            data: &px,
        },
        &mut b,
    )
    .unwrap();
    assert_eq!(a[2..], b[..]);
}

#[test]
fn encode_rejects_bad_images() {
    let px = [0u8; 64];
    let mut out = vec![1];
    let bad = [
        (0, 1, 4, 64),
        (1, 0, 4, 64),
        (4, 4, 15, 64),
        (4, 5, 16, 64),
        (u32::MAX, 1, usize::MAX, 64),
        (1 << 16, 1 << 16, 1 << 18, 64),
    ];
    for (w, h, stride, len) in bad {
        let r = encode(QuicImageType::Rgb32, w, h, stride, &px[..len], &mut out);
        assert!(
            matches!(r, Err(CodecError::InvalidImage(_))),
            "{w}x{h} stride {stride}: {r:?}"
        );
    }
    assert_eq!(out, [1], "nothing appended on error");
}

fn header(kind: u32, w: u32, h: u32) -> Vec<u8> {
    [MAGIC, VERSION, kind, w, h]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

#[test]
fn decode_rejects_bad_headers() {
    let good = FULL[1].1;
    assert!(decode(good, &BIG).is_ok());
    let corrupt = |s: &[u8]| matches!(decode(s, &BIG), Err(CodecError::Corrupt { codec: "quic", .. }));
    assert!(corrupt(&[]));
    assert!(corrupt(&good[..3]));
    assert!(corrupt(&good[..20]), "header without data");
    let mut s = good.to_vec();
    s[0] = b'q';
    assert!(corrupt(&s), "magic");
    let mut s = good.to_vec();
    s[5] = 1;
    assert!(corrupt(&s), "version");
    for (k, w, h) in [
        (0, 5, 3),
        (6, 5, 3),
        (4, 0, 3),
        (4, 5, 0),
        (4, 1 << 31, 1),
        (4, 1, u32::MAX),
    ] {
        let mut s = header(k, w, h);
        s.extend_from_slice(&good[20..]);
        assert!(corrupt(&s), "type {k} {w}x{h}");
    }
}

#[test]
fn decode_checks_limits_before_allocating() {
    let limits = DecodeLimits { max_pixels: 1000 };
    for (w, h) in [(1001, 1), (1, 1001), (50, 21), (0x7fff_ffff, 0x7fff_ffff)] {
        let mut s = header(4, w, h);
        s.resize(1 << 12, 0xa5);
        assert_eq!(
            decode(&s, &limits),
            Err(CodecError::TooLarge {
                codec: "quic",
                width: w,
                height: h
            })
        );
    }
    // Within the limits but far more pixels than a 64-byte stream can hold.
    let mut s = header(4, 100, 10);
    s.resize(64, 0xff);
    assert!(matches!(decode(&s, &limits), Err(CodecError::Corrupt { .. })));
}

#[test]
fn decode_rejects_truncation_like_the_reference() {
    // The reference decoder needs every word its 32-bit look-ahead touches,
    // so even dropping the final zero word is an error; a partial trailing
    // word is ignored.
    for (g, stream) in FULL {
        assert!(
            decode(&stream[..stream.len() - 4], &BIG).is_err(),
            "{}x{}",
            g.width,
            g.height
        );
        assert!(
            decode(&stream[..stream.len() - 1], &BIG).is_err(),
            "{}x{}",
            g.width,
            g.height
        );
        let mut longer = stream.to_vec();
        longer.extend_from_slice(&[1, 2, 3]);
        assert!(decode(&longer, &BIG).is_ok(), "partial word ignored");
    }
}

#[test]
fn decodes_every_type_to_the_documented_layout() {
    // RGB16 widens 5-bit samples like spice-common: v << 3 | v >> 2.
    let px: Vec<u8> = [0x7fffu16, 0x0000, 0x4210, 0x03e0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut out = Vec::new();
    encode(QuicImageType::Rgb16, 2, 2, 4, &px, &mut out).unwrap();
    let img = decode(&out, &BIG).unwrap();
    assert_eq!(
        img.data,
        [0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0x84, 0x84, 0x84, 0, 0x00, 0xff, 0x00, 0]
    );
    let mut out = Vec::new();
    encode(QuicImageType::Gray, 3, 1, 3, &[1, 2, 3], &mut out).unwrap();
    assert_eq!(decode(&out, &BIG).unwrap().data, [1, 2, 3]);
    let mut out = Vec::new();
    encode(QuicImageType::Rgb24, 1, 2, 3, &[1, 2, 3, 4, 5, 6], &mut out).unwrap();
    assert_eq!(decode(&out, &BIG).unwrap().data, [1, 2, 3, 0, 4, 5, 6, 0]);
}

/// The fuzz oracle on ~20,000 inputs: xorshift-random bytes, random bodies
/// behind valid headers, and mutations (bit flips, byte overwrites,
/// truncations, header edits) of valid streams of every type.
#[test]
fn fuzz_decode_random_and_mutated() {
    let mut s = 0x1234_5678_9abc_def1u64;
    let mut seeds: Vec<Vec<u8>> = FULL.iter().map(|(_, st)| st.to_vec()).collect();
    for (i, k) in [1u32, 2, 3, 4, 5].into_iter().enumerate() {
        let k = kind(k);
        let bpp = k.source_bytes_per_pixel();
        for style in 0..3 {
            let (w, h) = (13 + i * 7, 9 + style as usize * 5);
            let px = test_image(bpp, w, h, w * bpp, style, 40 + i as u64);
            let mut out = Vec::new();
            encode(k, w as u32, h as u32, w * bpp, &px, &mut out).unwrap();
            seeds.push(out);
        }
    }
    let mut buf = Vec::new();
    for n in 0..20_000u32 {
        buf.clear();
        match n % 4 {
            0 => {
                let len = (xorshift(&mut s) % 300) as usize;
                buf.extend((0..len).map(|_| xorshift(&mut s) as u8));
            }
            1 => {
                let k = 1 + (xorshift(&mut s) % 5) as u32;
                let w = 1 + (xorshift(&mut s) % 40) as u32;
                let h = 1 + (xorshift(&mut s) % 40) as u32;
                buf.extend(header(k, w, h));
                let len = (xorshift(&mut s) % 800) as usize;
                let dense = xorshift(&mut s) % 3;
                buf.extend((0..len).map(|_| {
                    let v = xorshift(&mut s);
                    match dense {
                        0 => v as u8,
                        1 => (v & (v >> 8)) as u8,
                        _ => (v | (v >> 8)) as u8,
                    }
                }));
            }
            _ => {
                let base = &seeds[(xorshift(&mut s) % seeds.len() as u64) as usize];
                buf.extend_from_slice(base);
                for _ in 0..1 + xorshift(&mut s) % 4 {
                    let r = xorshift(&mut s);
                    let at = (r >> 8) as usize % buf.len().max(1);
                    match r % 5 {
                        0 if !buf.is_empty() => buf[at] ^= 1 << ((r >> 40) % 8),
                        1 if !buf.is_empty() => buf[at] = (r >> 32) as u8,
                        2 => buf.truncate(at),
                        3 if buf.len() >= 20 => {
                            let f = 8 + 4 * ((r >> 16) % 3) as usize;
                            buf[f..f + 4].copy_from_slice(&(((r >> 32) % 70) as u32).to_le_bytes());
                        }
                        _ => buf.extend_from_slice(&(r as u32).to_le_bytes()),
                    }
                }
            }
        }
        fuzz_decode(&buf);
    }
}

#[test]
fn bucket_ranges_hold_exactly_the_contexts_of_their_bucket() {
    for fam in [&FAMILY_8, &FAMILY_5] {
        let mut next = 0u16;
        for b in 0..fam.n_buckets {
            let (start, end) = fam.bucket_range[b];
            assert_eq!(start, next, "buckets are consecutive");
            assert!(end > start);
            for v in start..end {
                assert_eq!(usize::from(fam.bucket_of[usize::from(v)]), b);
            }
            next = end;
        }
        assert_eq!(u32::from(next), fam.mask + 1, "the last bucket reaches the top");
    }
}

/// `first_run_candidate` agrees with the definition (two equal upper
/// neighbours, two equal left neighbours) on rows with many repeats.
#[test]
fn run_candidates_are_found_as_defined() {
    fn check<const N: usize, L: Layout<N>>(seed: u64) {
        let mut s = seed;
        let width = 40;
        // Few distinct pixels, so that neighbours are often equal.
        let mut row = || -> Vec<u8> {
            (0..width * L::BYTES)
                .map(|_| (xorshift(&mut s) % 2) as u8 * 0x11)
                .collect()
        };
        let (prev, cur) = (row(), row());
        for from in 2..width {
            for end in from..=width {
                let want = (from..end)
                    .find(|&p| L::same(&prev, p - 1, p) && L::same(&cur, p - 1, p - 2))
                    .unwrap_or(end);
                assert_eq!(L::first_run_candidate(&prev, &cur, from, end), want);
            }
        }
    }
    for seed in 1..20 {
        check::<3, Bgrx>(seed);
        check::<3, Bgr>(seed);
        check::<3, X1r5g5b5>(seed);
        check::<1, Gray8>(seed);
        check::<1, Alpha>(seed);
    }
}

/// Micro-benchmark on the images the other codecs are measured on. Run with
/// `cargo test --release -p spice-codec -- --ignored --nocapture bench`.
#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_quic() {
    use std::time::{Duration, Instant};
    fn time(budget: Duration, mut f: impl FnMut()) -> Duration {
        let start = Instant::now();
        let mut best = Duration::MAX;
        let mut runs = 0;
        while runs < 3 || start.elapsed() < budget {
            let t = Instant::now();
            f();
            best = best.min(t.elapsed());
            runs += 1;
        }
        best
    }
    let budget = Duration::from_millis(300);
    let limits = DecodeLimits::default();
    for img in crate::test_images::bench() {
        let r = img.as_ref();
        for (codec, rgba) in [("quic rgb32", false), ("quic rgba", true)] {
            let mut out = Vec::new();
            let t_enc = time(budget, || {
                out.clear();
                if rgba {
                    encode_rgba(&r, &mut out).unwrap();
                } else {
                    encode_rgb32(&r, &mut out).unwrap();
                }
            });
            let t_dec = time(budget, || {
                decode(&out, &limits).unwrap();
            });
            let raw = img.bytes();
            let mbs = |d: Duration| raw as f64 / d.as_secs_f64() / 1e6;
            println!(
                "{codec:<10} {:<22} ratio {:>7.2}  encode {:>8.1} MB/s  decode {:>8.1} MB/s  ({raw} -> {} bytes)",
                img.name,
                raw as f64 / out.len() as f64,
                mbs(t_enc),
                mbs(t_dec),
                out.len(),
            );
        }
    }
}

/// What cutting an image into bands of whole rows costs: each band starts
/// with a cold model, updated at every sample for its first 2048 pixels
/// (the display channel's `MAX_DRAW_BYTES` follows from this). Run with
/// `cargo test --release -p spice-codec -- --ignored --nocapture bench_quic_bands`.
#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_quic_bands() {
    use std::time::{Duration, Instant};
    for img in crate::test_images::bench() {
        let r = img.as_ref();
        for rows in [768u32, 256, 128, 64, 32] {
            let mut best = Duration::MAX;
            let mut total = 0;
            for _ in 0..5 {
                let t = Instant::now();
                total = 0;
                let mut y = 0;
                while y < r.height {
                    let h = rows.min(r.height - y);
                    let sub = ImageRef {
                        width: r.width,
                        height: h,
                        stride: r.stride,
                        data: &r.data[y as usize * r.stride..],
                    };
                    let mut out = Vec::new();
                    encode_rgb32(&sub, &mut out).unwrap();
                    total += out.len();
                    y += h;
                }
                best = best.min(t.elapsed());
            }
            println!(
                "{:<22} rows {rows:>4}: {:>8} bytes {:>7.2} ms",
                img.name,
                total,
                best.as_secs_f64() * 1e3
            );
        }
    }
}
