use super::*;
use crate::lz;
use crate::test_images::{self, Image, XorShift};

/// The pixels of `img` as the decoder returns them (pad 0).
fn expected(img: &Image) -> Vec<u8> {
    let mut v = img.packed();
    for p in v.chunks_exact_mut(4) {
        p[3] = 0;
    }
    v
}

/// An encoder and a client-like decoder fed the same sequence. Every other
/// image goes through zlib-GLZ when that pays.
///
/// With `GLZ_DUMP_DIR` set, each session also writes what it sent to a file
/// there, for a check outside the repository against spice-gtk's own
/// `decode-glz.c` and `decode-zlib.c`. Records: kind (1 byte: 0 GLZ, 1
/// zlib-GLZ), GLZ size, payload size (`u32` LE each), the payload, width,
/// height (`u32` LE each), then the expected B, G, R, x pixels; or kind 2
/// alone: the client clears its window (a new session).
struct Session {
    enc: GlzEncoder,
    dec: GlzDecoder,
    zlib: ZlibGlzEncoder,
    glz_bytes: usize,
    lz_bytes: usize,
    raw_bytes: usize,
    zlib_bytes: usize,
    far: usize,
    sent: usize,
    dump: Option<(std::path::PathBuf, Vec<u8>)>,
}

impl Session {
    fn new(window: usize) -> Self {
        let dump = std::env::var_os("GLZ_DUMP_DIR").map(|dir| {
            let name = std::thread::current().name().unwrap_or("glz").replace("::", "-");
            let mut path = std::path::PathBuf::from(dir);
            let mut k = 0;
            while path.join(format!("{name}.{k}.glzseq")).exists() {
                k += 1;
            }
            path.push(format!("{name}.{k}.glzseq"));
            std::fs::write(&path, []).unwrap();
            (path, Vec::new())
        });
        Self {
            enc: GlzEncoder::with_limits(window, DEFAULT_MAX_WINDOW_PIXELS),
            // The client's own window rules only: no extra eviction.
            dec: GlzDecoder::new(DecodeLimits::default(), u64::MAX),
            zlib: ZlibGlzEncoder::new(),
            glz_bytes: 0,
            lz_bytes: 0,
            raw_bytes: 0,
            zlib_bytes: 0,
            far: 0,
            sent: 0,
            dump,
        }
    }

    fn send(&mut self, img: &Image) -> GlzStats {
        let mut out = Vec::new();
        let stats = self.enc.encode_rgb32(&img.as_ref(), &mut out).unwrap();
        assert_eq!(stats.bytes, out.len());
        let mut deflated = Vec::new();
        let wrapped = self.sent % 2 == 1 && self.zlib.wrap(&out, &mut deflated);
        self.sent += 1;
        let stream = if wrapped {
            assert!(deflated.len() < out.len());
            decode_zlib_glz(&deflated, out.len()).unwrap()
        } else {
            out.clone()
        };
        self.zlib_bytes += if wrapped { deflated.len() } else { out.len() };
        if let Some((_, buf)) = &mut self.dump {
            let payload = if wrapped { &deflated } else { &out };
            buf.push(u8::from(wrapped));
            buf.extend_from_slice(&(out.len() as u32).to_le_bytes());
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(payload);
            buf.extend_from_slice(&img.width.to_le_bytes());
            buf.extend_from_slice(&img.height.to_le_bytes());
            buf.extend_from_slice(&expected(img));
        }
        let d = self
            .dec
            .decode(&stream)
            .unwrap_or_else(|e| panic!("{}: {e}", img.name));
        assert_eq!((d.header.width, d.header.height), (img.width, img.height));
        assert!(d.header.top_down);
        assert_eq!(d.header.id, stats.id);
        assert!(d.data == expected(img), "GLZ round trip of {}", img.name);
        let mut lz_out = Vec::new();
        lz::encode_rgb32(&img.as_ref(), &mut lz_out).unwrap();
        self.glz_bytes += out.len();
        self.lz_bytes += lz_out.len();
        self.raw_bytes += img.bytes();
        self.far += stats.far_pixels;
        stats
    }

    /// A new client session: both sides start over.
    fn reset(&mut self) {
        self.enc.reset();
        self.dec.reset();
        if let Some((_, buf)) = &mut self.dump {
            buf.push(2);
        }
    }

    fn report(&self, name: &str) -> f64 {
        let r = self.glz_bytes as f64 / self.lz_bytes as f64;
        println!(
            "{name:<28} raw {:>10}  lz {:>9}  glz {:>9}  glz/lz {:.3}  (every other zlib-wrapped: {})",
            self.raw_bytes, self.lz_bytes, self.glz_bytes, r, self.zlib_bytes
        );
        r
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some((path, buf)) = &self.dump {
            std::fs::write(path, buf).unwrap();
        }
    }
}

/// Copies the `w` x `h` rectangle at (`x`, `y`) of `src`.
fn crop(src: &Image, x: u32, y: u32, w: u32, h: u32) -> Image {
    let mut img = Image::new(&format!("{} @{x},{y} {w}x{h}", src.name), w, h, 0);
    for j in 0..h {
        for i in 0..w {
            img.set(i, j, src.get(x + i, y + j));
        }
    }
    img
}

#[test]
fn round_trips_on_varied_content() {
    let mut s = Session::new(1 << 22);
    for img in test_images::all() {
        s.send(&img);
    }
    // Each image once more: now all of it is in the dictionary.
    let first = s.glz_bytes;
    for img in test_images::all() {
        s.send(&img);
    }
    assert!(
        (s.glz_bytes - first) * 20 < first,
        "repeats cost {} vs {first}",
        s.glz_bytes - first
    );
}

#[test]
fn round_trips_on_many_small_random_images() {
    let mut rng = XorShift::new(11);
    let mut s = Session::new(1 << 12);
    for _ in 0..400 {
        let w = 1 + rng.below(40) as u32;
        let h = 1 + rng.below(12) as u32;
        let colors = 1 + rng.below(6) as u32;
        let pad = rng.below(3) as usize * 4;
        let mut img = Image::new("small", w, h, pad);
        for y in 0..h {
            for x in 0..w {
                let c = rng.below(u64::from(colors)) as u32;
                img.set(x, y, c.wrapping_mul(0x3f1d_a4c7) | 0xff00_0000);
            }
        }
        s.send(&img);
    }
    assert!(s.far > 0);
}

#[test]
fn header_layout() {
    let img = test_images::gradient(3, 2);
    let mut enc = GlzEncoder::new(1000);
    let mut out = vec![0xaa]; // appends, keeps what was there
    enc.encode_rgb32(&img.as_ref(), &mut out).unwrap();
    enc.encode_rgb32(&img.as_ref(), &mut out).unwrap();
    assert_eq!(out[0], 0xaa);
    let h = &out[1..1 + HEADER_LEN];
    assert_eq!(&h[0..4], b"  ZL");
    assert_eq!(&h[4..8], &[0, 1, 0, 1]);
    assert_eq!(h[8], 8 | 16); // LZ_IMAGE_TYPE_RGB32, top-down
    assert_eq!(&h[9..13], &[0, 0, 0, 3]);
    assert_eq!(&h[13..17], &[0, 0, 0, 2]);
    assert_eq!(&h[17..21], &[0, 0, 0, 12]); // stride = width * 4
    assert_eq!(&h[21..29], &[0; 8]); // id 0
    assert_eq!(&h[29..33], &[0; 4]); // nothing older to keep
                                     // The first image: six literals (gradient pixels all differ).
    assert_eq!(out[1 + HEADER_LEN], 5);
    let second = &out[1 + HEADER_LEN + 1 + 18..];
    assert_eq!(&second[21..29], &[0, 0, 0, 0, 0, 0, 0, 1]); // id 1
    assert_eq!(&second[29..33], &[0, 0, 0, 1]); // keep image 0
                                                // The whole second image is one reference to image 0, offset 0:
                                                // length 6, short offset, image distance 1.
    assert_eq!(&second[HEADER_LEN..], &[6 << 5, 0, 1]);
}

/// A terminal scrolling text: `frames` views of `w` x `h` of a tall page,
/// each `step` rows further down.
fn scrolling_text(w: u32, h: u32, step: u32, frames: u32) -> Vec<Image> {
    let page = test_images::text(w, h + step * frames, 0);
    (0..frames).map(|f| crop(&page, 0, f * step, w, h)).collect()
}

/// Splits an image into bands of at most `rows` rows, as the server sends
/// big damage.
fn bands(img: &Image, rows: u32) -> Vec<Image> {
    (0..img.height)
        .step_by(rows as usize)
        .map(|y| crop(img, 0, y, img.width, rows.min(img.height - y)))
        .collect()
}

#[test]
fn scrolling_text_is_mostly_copied_from_earlier_frames() {
    let mut s = Session::new(3 << 20);
    for f in scrolling_text(640, 400, 16, 20) {
        s.send(&f);
    }
    let r = s.report("scrolling text, whole frames");
    assert!(r < 0.2, "GLZ/LZ {r}");

    // The same sent in bands, each frame scrolled 3 rows.
    let mut s = Session::new(3 << 20);
    for f in scrolling_text(640, 400, 3, 20) {
        for b in bands(&f, 100) {
            s.send(&b);
        }
    }
    let r = s.report("scrolling text, banded");
    assert!(r < 0.25, "GLZ/LZ {r}");
}

#[test]
fn repainted_ui_is_copied_from_earlier_images() {
    let screen = test_images::ui(800, 600);
    let rects = [
        (0, 0, 800, 600),
        (100, 50, 300, 200),
        (400, 300, 250, 180),
        (10, 500, 780, 40),
    ];
    let mut rng = XorShift::new(5);
    let mut s = Session::new(3 << 20);
    for k in 0..30 {
        let (x, y, w, h) = rects[rng.below(rects.len() as u64) as usize];
        let mut img = crop(&screen, x, y, w, h);
        // A clock or a hover highlight: a few pixels differ each time.
        for _ in 0..k % 5 * 20 {
            let (px, py) = (rng.below(u64::from(w)) as u32, rng.below(u64::from(h)) as u32);
            img.set(px, py, 0xff12_3456 + k);
        }
        s.send(&img);
    }
    let r = s.report("repainted UI");
    assert!(r < 0.3, "GLZ/LZ {r}");
}

#[test]
fn photos_and_single_images_cost_about_what_lz_costs() {
    let album = test_images::photo(1200, 900);
    let mut s = Session::new(3 << 20);
    for k in 0..3 {
        s.send(&crop(&album, k * 300, k * 200, 600, 400));
    }
    let once = s.report("photo slideshow, first pass");
    assert!(once < 1.1, "GLZ/LZ {once}");
    for k in 0..3 {
        s.send(&crop(&album, k * 300, k * 200, 600, 400));
    }
    let again = s.report("photo slideshow, shown twice");
    assert!(again < 0.55, "GLZ/LZ {again}");

    // One of each benchmark image, each in a fresh dictionary: a reference
    // costs GLZ at least 3 bytes where a near one costs LZ 2, which shows
    // on text (many short references); farther ones cost both the same.
    for img in test_images::bench() {
        let mut s = Session::new(3 << 20);
        s.send(&img);
        let r = s.report(&img.name);
        assert!(r < 1.2, "{}: GLZ/LZ {r}", img.name);
    }
}

#[test]
fn tiny_and_odd_sized_images_round_trip() {
    let mut s = Session::new(1 << 20);
    let mut rng = XorShift::new(3);
    let sizes = [
        (1, 1),
        (1, 7),
        (7, 1),
        (2, 2),
        (3, 3),
        (5, 1),
        (33, 17),
        (1, 300),
        (300, 1),
        (4097, 2),
    ];
    for round in 0..4 {
        for &(w, h) in &sizes {
            let img = match (round + w + h) % 4 {
                0 => test_images::solid(w, h),
                1 => test_images::noise(w, h, rng.next()),
                2 => test_images::gradient(w, h),
                _ => test_images::text(w.max(8), h.max(14), 4),
            };
            s.send(&img);
        }
    }
    for img in test_images::small() {
        s.send(&img);
    }
}

#[test]
fn far_references_take_every_form() {
    // Images big enough for long offsets, many ids apart, in a big window:
    // each later image copies a piece from far inside an early one.
    let mut s = Session::new(1 << 22);
    let big = test_images::noise(1024, 200, 77); // offsets past 2^17
    s.send(&big);
    for k in 0..300u32 {
        // Filler images push the image distance past 64 and 256.
        s.send(&test_images::noise(16, 4, u64::from(k)));
    }
    for (x, y) in [(0, 0), (5, 3), (100, 100), (1000, 199), (17, 150)] {
        let piece = crop(&big, x, y, 1024 - x, 1);
        let st = s.send(&piece);
        assert!(st.far_pixels >= piece.bytes() / 4 - 1, "piece at {x},{y}: {st:?}");
        assert!(st.bytes < HEADER_LEN + 12, "piece at {x},{y}: {st:?}");
    }
}

#[test]
fn window_evicts_oldest_images_and_tells_the_client() {
    let window = 50_000;
    let mut s = Session::new(window);
    let mut rng = XorShift::new(9);
    let text = test_images::text(400, 300, 0);
    for k in 0..200u64 {
        let (w, h) = (50 + rng.below(150) as u32, 20 + rng.below(100) as u32);
        let (x, y) = (
            rng.below(u64::from(400 - w)) as u32,
            rng.below(u64::from(300 - h)) as u32,
        );
        let st = s.send(&crop(&text, x, y, w, h));
        assert_eq!(st.id, k);
        assert!(s.enc.window_used() <= window);
        // The client holds exactly the images the encoder may refer to.
        assert_eq!(s.dec.images(), s.enc.images());
        assert_eq!(u64::from(st.win_head_dist) + 1, s.enc.images() as u64);
    }
    assert!(s.far > 0);
    // An image larger than the window is refused and changes nothing.
    let mut out = Vec::new();
    let before = (s.enc.next_id(), s.enc.images());
    assert!(!s.enc.fits(300, 200));
    assert!(s
        .enc
        .encode_rgb32(&test_images::solid(300, 200).as_ref(), &mut out)
        .is_err());
    assert!(out.is_empty());
    assert_eq!((s.enc.next_id(), s.enc.images()), before);
    s.send(&test_images::solid(200, 200));
    assert_eq!(s.enc.images(), 1);
}

#[test]
fn ring_wraps_without_splitting_images() {
    // A ring of 2^15 pixels: images land at its start again and again.
    let mut s = Session::new(1 << 15);
    let page = test_images::text(200, 2000, 0);
    for k in 0..60 {
        let h = 30 + (k * 37) % 90;
        s.send(&crop(&page, 0, (k * 29) % 1800, 200, h));
    }
    assert!(s.far > 0);
}

#[test]
fn reset_starts_a_new_session() {
    let mut s = Session::new(1 << 20);
    let img = test_images::ui(100, 80);
    s.send(&img);
    s.send(&img);
    s.reset();
    let st = s.send(&img);
    assert_eq!((st.id, st.win_head_dist, st.far_pixels), (0, 0, 0));
}

#[test]
fn no_window_no_glz() {
    let mut enc = GlzEncoder::new(0);
    let mut out = Vec::new();
    assert!(!enc.fits(1, 1));
    assert!(enc
        .encode_rgb32(&test_images::solid(4, 4).as_ref(), &mut out)
        .is_err());
    // The memory cap bounds the window whatever the client offers.
    let enc = GlzEncoder::with_limits(16 << 20, 1 << 20);
    assert_eq!(enc.window_pixels(), 1 << 20);
    let enc = GlzEncoder::with_limits(3 << 20, 1 << 22);
    assert_eq!(enc.window_pixels(), 3 << 20);
}

/// Appends literal runs coding `pixels`.
fn literal_body(pixels: impl IntoIterator<Item = u32>, body: &mut Vec<u8>) {
    let pixels: Vec<u32> = pixels.into_iter().collect();
    for chunk in pixels.chunks(MAX_COPY) {
        body.push(chunk.len() as u8 - 1);
        for p in chunk {
            body.extend_from_slice(&p.to_le_bytes()[..3]);
        }
    }
}

/// Decodes a stream of `w` x 1 pixels with the given body as image `id`,
/// keeping the whole window.
fn decode_body(dec: &mut GlzDecoder, w: usize, body: &[u8], id: u64) -> Result<Vec<u8>, CodecError> {
    let mut s = Vec::new();
    GlzHeader {
        kind: TYPE_RGB32,
        top_down: true,
        width: w as u32,
        height: 1,
        stride: w as u32 * 4,
        id,
        win_head_dist: id as u32,
    }
    .write(&mut s);
    s.extend_from_slice(body);
    dec.decode(&s).map(|d| d.data)
}

#[test]
fn every_reference_form_decodes_to_its_fields() {
    let n = 1usize << 18;
    let pixel = |k: usize| (k as u32).wrapping_mul(0x9E37_79B1) & 0x00ff_ffff;
    let bytes = |r: std::ops::Range<usize>| -> Vec<u8> { r.flat_map(|k| pixel(k).to_le_bytes()).collect() };
    // Image 0: n distinct pixels. Then, for each class of image distance,
    // filler images up to that distance and one image made of references
    // into image 0 of every offset class and length class.
    for dist in [1u64, 63, 64, 255, 256, 16_383, 16_384, 65_535, 65_536, 70_000] {
        let mut dec = GlzDecoder::new(DecodeLimits::default(), u64::MAX);
        let mut body = Vec::new();
        literal_body((0..n).map(pixel), &mut body);
        decode_body(&mut dec, n, &body, 0).unwrap();
        for id in 1..dist {
            decode_body(&mut dec, 1, &[0, 1, 2, 3], id).unwrap();
        }
        let mut body = Vec::new();
        let mut want = Vec::new();
        for offset in [0usize, 1, 15, 16, 4095, 4096, 4097, 131_071, 131_072, n - 300] {
            for len in [2usize, 6, 7, 8, 261, 262, 263, 300] {
                let src = Source::Far {
                    image_dist: dist,
                    offset,
                };
                let before = body.len();
                put_reference(len, src, &mut body);
                assert_eq!(body.len() - before, reference_cost(len, src));
                want.extend(bytes(offset..offset + len));
            }
        }
        let data = decode_body(&mut dec, want.len() / 4, &body, dist).unwrap();
        assert!(data == want, "image distance {dist}");
    }
    // References inside the image, overlapping ones included.
    let mut dec = GlzDecoder::new(DecodeLimits::default(), u64::MAX);
    for (id, d) in [1usize, 2, 4096, 4097, 131_072, 131_073, 200_000]
        .into_iter()
        .enumerate()
    {
        let len = 300;
        let mut body = Vec::new();
        literal_body((0..d).map(pixel), &mut body);
        put_reference(len, Source::Near(d), &mut body);
        assert_eq!(
            body.len() - (d * 3 + d.div_ceil(MAX_COPY)),
            reference_cost(len, Source::Near(d))
        );
        let data = decode_body(&mut dec, d + len, &body, id as u64).unwrap();
        let want: Vec<u8> = (0..d + len).flat_map(|k| pixel(k % d).to_le_bytes()).collect();
        assert!(data == want, "near {d}");
    }
}

/// A valid two-image sequence and a decoder that took the first image.
fn two_images() -> (GlzDecoder, Vec<u8>) {
    let img = test_images::ui(40, 30);
    let mut enc = GlzEncoder::new(10_000);
    let mut first = Vec::new();
    enc.encode_rgb32(&img.as_ref(), &mut first).unwrap();
    let mut second = Vec::new();
    enc.encode_rgb32(&img.as_ref(), &mut second).unwrap();
    let mut dec = GlzDecoder::new(DecodeLimits::default(), 1 << 20);
    dec.decode(&first).unwrap();
    (dec, second)
}

#[test]
fn decoder_rejects_malformed_streams() {
    let (mut dec, good) = two_images();
    let mut bad = |s: &[u8]| match dec.decode(s) {
        Err(CodecError::Corrupt { what, .. }) => what,
        other => panic!("{other:?}"),
    };
    assert_eq!(bad(&good[..HEADER_LEN - 1]), "truncated header");
    assert_eq!(bad(&good[..good.len() - 1]), "truncated stream");
    let mut s = good.clone();
    s.push(0);
    assert_eq!(bad(&s), "bytes after the image");
    let set = |at: usize, v: &[u8]| {
        let mut s = good.clone();
        s[at..at + v.len()].copy_from_slice(v);
        s
    };
    assert_eq!(bad(&set(0, b"ZL  ")), "bad magic");
    assert_eq!(bad(&set(4, &[0, 1, 0, 2])), "bad version");
    assert_eq!(bad(&set(8, &[9 | 16])), "unsupported image type");
    assert_eq!(bad(&set(8, &[8 | 32])), "bad type byte");
    assert_eq!(bad(&set(9, &[0, 0, 0, 0])), "empty image");
    assert_eq!(bad(&set(17, &[0, 0, 0, 4])), "stride is not width * 4");
    assert_eq!(
        bad(&set(21, &[0, 0, 0, 0, 0, 0, 0, 2])),
        "image id out of sequence"
    );
    assert_eq!(bad(&set(29, &[0, 0, 0, 2])), "window head before the first image");
    // The second image is one reference to the whole of image 0: point it
    // elsewhere.
    let one = |len, src| {
        let mut s = good[..HEADER_LEN].to_vec();
        put_reference(len, src, &mut s);
        s
    };
    let far = |image_dist, offset| Source::Far { image_dist, offset };
    assert_eq!(one(1200, far(1, 0)), good);
    assert_eq!(bad(&one(1200, far(2, 0))), "reference before the first image");
    assert_eq!(bad(&one(1200, far(1, 1))), "reference past the end of its image");
    assert_eq!(bad(&one(1201, far(1, 0))), "reference past the image");
    assert_eq!(bad(&one(1200, Source::Near(1))), "reference before the image");
    let mut s = good[..HEADER_LEN].to_vec();
    s.push(31);
    assert_eq!(bad(&s), "stream too short for the image");
    // A valid stream still decodes after all that (the window is unchanged).
    assert!(dec.decode(&good).is_ok());
    // An image the decoder no longer holds.
    let (mut dec, good) = two_images();
    dec.reset();
    assert!(dec.decode(&good).is_err());
    // Limits before allocation.
    let mut dec = GlzDecoder::new(DecodeLimits { max_pixels: 100 }, 1 << 20);
    let mut s = Vec::new();
    GlzEncoder::new(1000)
        .encode_rgb32(&test_images::solid(11, 10).as_ref(), &mut s)
        .unwrap();
    assert!(matches!(dec.decode(&s), Err(CodecError::TooLarge { .. })));
}

#[test]
fn the_decoder_frees_what_the_header_allows() {
    let mut enc = GlzEncoder::new(5000);
    let mut dec = GlzDecoder::new(DecodeLimits::default(), u64::MAX);
    let img = test_images::gradient(40, 40); // 1600 pixels: three fit
    for k in 0..10 {
        let mut s = Vec::new();
        let st = enc.encode_rgb32(&img.as_ref(), &mut s).unwrap();
        assert_eq!(st.win_head_dist, k.min(2));
        assert_eq!(enc.images(), (k as usize + 1).min(3));
        assert!(dec.decode(&s).unwrap().data == expected(&img));
        assert_eq!(dec.images(), enc.images());
        if k > 0 {
            // Everything but the header is a reference to the previous image.
            assert_eq!(st.far_pixels, 1600);
        }
    }
}

#[test]
fn zlib_glz_wraps_when_it_pays() {
    let mut enc = GlzEncoder::new(1 << 20);
    let mut z = ZlibGlzEncoder::new();
    // Gradients leave GLZ with literals that deflate shrinks.
    let mut glz = Vec::new();
    enc.encode_rgb32(&test_images::gradient(200, 100).as_ref(), &mut glz)
        .unwrap();
    let mut out = vec![7];
    assert!(z.wrap(&glz, &mut out));
    assert_eq!(out[0], 7);
    assert!(out.len() - 1 < glz.len());
    // A zlib stream (RFC 1950): CMF 0x78, header check.
    assert_eq!(out[1], 0x78);
    assert_eq!((u16::from(out[1]) << 8 | u16::from(out[2])) % 31, 0);
    assert_eq!(decode_zlib_glz(&out[1..], glz.len()).unwrap(), glz);
    assert!(decode_zlib_glz(&out[1..], glz.len() - 1).is_err());
    assert!(decode_zlib_glz(&out[1..], glz.len() + 1).is_err());
    assert!(decode_zlib_glz(&out[1..out.len() - 1], glz.len()).is_err());
    let mut longer = out[1..].to_vec();
    longer.push(0);
    assert!(decode_zlib_glz(&longer, glz.len()).is_err());
    assert!(decode_zlib_glz(&[1, 2, 3], 1 << 30).is_err());
    // Noise does not deflate: nothing is appended.
    let mut glz = Vec::new();
    enc.encode_rgb32(&test_images::noise(100, 100, 4).as_ref(), &mut glz)
        .unwrap();
    let mut out = vec![7];
    assert!(!z.wrap(&glz, &mut out));
    assert_eq!(out, [7]);
    // Nor does a stream under 100 bytes, whatever it holds.
    let mut glz = Vec::new();
    enc.encode_rgb32(&test_images::solid(30, 30).as_ref(), &mut glz)
        .unwrap();
    assert!(glz.len() < MIN_GLZ_SIZE_FOR_ZLIB);
    assert!(!z.wrap(&glz, &mut out));
    // wrap_always and encode_zlib_glz wrap anyway.
    let mut out = Vec::new();
    encode_zlib_glz(&glz, &mut out);
    assert_eq!(decode_zlib_glz(&out, glz.len()).unwrap(), glz);
}

#[test]
fn stats_add_up() {
    let mut enc = GlzEncoder::new(1 << 20);
    for img in test_images::all() {
        let mut out = Vec::new();
        let st = enc.encode_rgb32(&img.as_ref(), &mut out).unwrap();
        assert_eq!(
            st.literal_pixels + st.near_pixels + st.far_pixels,
            img.bytes() / 4
        );
        assert_eq!(st.bytes, out.len());
    }
    assert!(enc.memory_bytes() > 0);
    assert!(format!("{enc:?}").contains("GlzEncoder"));
}

#[test]
fn fuzz_oracle_survives_random_and_mutated_inputs() {
    let mut rng = XorShift::new(0x61a);
    // Seeds: sequences our encoder produced, length-prefixed.
    let mut seeds = Vec::new();
    for set in [test_images::small(), scrolling_text(40, 30, 3, 4)] {
        let mut enc = GlzEncoder::new(1 << 16);
        let mut seq = Vec::new();
        for img in set {
            let mut s = Vec::new();
            enc.encode_rgb32(&img.as_ref(), &mut s).unwrap();
            seq.extend_from_slice(&(s.len() as u16).to_be_bytes());
            seq.extend_from_slice(&s);
        }
        seeds.push(seq);
    }
    for seed in &seeds {
        fuzz_decode(seed);
    }
    for i in 0..3000 {
        let mut input = if i % 8 == 0 {
            let n = rng.below(200) as usize;
            let mut s: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            if s.len() > 40 {
                s[0] = 0;
                s[1] = 38;
                s[2..10].copy_from_slice(&[0x20, 0x20, 0x5a, 0x4c, 0, 1, 0, 1]);
                s[10] = 8 | 16;
            }
            s
        } else {
            seeds[rng.below(seeds.len() as u64) as usize].clone()
        };
        test_images::mutate(&mut input, &mut rng);
        fuzz_decode(&input);
    }
}

/// Encoder speed and ratio against LZ, single images and sequences. Run with
/// `cargo test --release -p spice-codec -- --ignored --nocapture bench_glz`.
#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_glz() {
    use std::time::Instant;
    let time = |f: &mut dyn FnMut()| {
        let mut best = f64::MAX;
        let start = Instant::now();
        let mut runs = 0;
        while runs < 3 || start.elapsed().as_millis() < 400 {
            let t = Instant::now();
            f();
            best = best.min(t.elapsed().as_secs_f64());
            runs += 1;
        }
        best
    };
    let mut sequences: Vec<(String, Vec<Image>)> = test_images::bench()
        .into_iter()
        .map(|img| (img.name.clone(), vec![img]))
        .collect();
    sequences.push((
        "scrolling text 1024x768 x20".into(),
        scrolling_text(1024, 768, 16, 20),
    ));
    let screen = test_images::ui(1024, 768);
    let rects = [
        (0, 0, 1024, 768),
        (100, 50, 300, 200),
        (400, 300, 250, 180),
        (10, 700, 1000, 40),
    ];
    sequences.push((
        "ui repaints x20".into(),
        (0..20)
            .map(|k| {
                let (x, y, w, h) = rects[k % rects.len()];
                crop(&screen, x, y, w, h)
            })
            .collect(),
    ));
    for (name, images) in &sequences {
        let raw: usize = images.iter().map(Image::bytes).sum();
        // One encoder, as a client has: reset (tables cleared) per run.
        let mut enc = GlzEncoder::new(3 << 20);
        let mut glz_bytes = 0;
        let t_glz = time(&mut || {
            enc.reset();
            glz_bytes = 0;
            let mut out = Vec::new();
            for img in images {
                out.clear();
                enc.encode_rgb32(&img.as_ref(), &mut out).unwrap();
                glz_bytes += out.len();
            }
        });
        let mut lz_bytes = 0;
        let mut lz_enc = lz::LzEncoder::new();
        let t_lz = time(&mut || {
            lz_bytes = 0;
            let mut out = Vec::new();
            for img in images {
                out.clear();
                lz_enc.encode_rgb32(&img.as_ref(), &mut out).unwrap();
                lz_bytes += out.len();
            }
        });
        let mut zlib_bytes = 0;
        let mut z = ZlibGlzEncoder::new();
        let t_zlib = time(&mut || {
            enc.reset();
            zlib_bytes = 0;
            let (mut out, mut wrapped) = (Vec::new(), Vec::new());
            for img in images {
                out.clear();
                wrapped.clear();
                enc.encode_rgb32(&img.as_ref(), &mut out).unwrap();
                zlib_bytes += if z.wrap(&out, &mut wrapped) {
                    wrapped.len()
                } else {
                    out.len()
                };
            }
        });
        let mbs = |t: f64| raw as f64 / t / 1e6;
        println!(
            "{name:<28} lz {lz_bytes:>9} B {:>7.1} MB/s | glz {glz_bytes:>9} B {:>7.1} MB/s ({:.3} of lz) | zlib-glz {zlib_bytes:>9} B {:>7.1} MB/s ({:.3} of lz)",
            mbs(t_lz),
            mbs(t_glz),
            glz_bytes as f64 / lz_bytes as f64,
            mbs(t_zlib),
            zlib_bytes as f64 / lz_bytes as f64,
        );
    }
}

/// Decodes every `.glzseq` file (see [`Session`]) in `GLZ_DECODE_DIR` with
/// [`GlzDecoder`]: used outside the repository on streams of the C server's
/// encoder, to check the decoder against it.
#[test]
#[ignore = "needs GLZ_DECODE_DIR"]
fn decodes_dumped_streams() {
    let dir = std::env::var_os("GLZ_DECODE_DIR").expect("GLZ_DECODE_DIR");
    let mut images = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let mut dec = GlzDecoder::new(DecodeLimits::default(), u64::MAX);
        let mut rest = &data[..];
        let u32_at = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
        while let [kind, ref tail @ ..] = *rest {
            if kind == 2 {
                dec.reset();
                rest = tail;
                continue;
            }
            let (glz_size, len) = (u32_at(tail), u32_at(&tail[4..]));
            let payload = &tail[8..8 + len];
            let (w, h) = (u32_at(&tail[8 + len..]), u32_at(&tail[12 + len..]));
            let pixels = &tail[16 + len..16 + len + w * h * 4];
            rest = &tail[16 + len + w * h * 4..];
            let stream = if kind == 1 {
                decode_zlib_glz(payload, glz_size).unwrap()
            } else {
                payload.to_vec()
            };
            let img = dec
                .decode(&stream)
                .unwrap_or_else(|e| panic!("{}: image {images}: {e}", path.display()));
            assert!(img.data == pixels, "{}: image {images}", path.display());
            images += 1;
        }
    }
    println!("{images} images decoded");
}

#[test]
fn a_dictionary_can_number_its_images_after_another_ones() {
    // A migration destination goes on after the source's last image: its
    // first image carries the next id and refers to nothing before it.
    let mut enc = GlzEncoder::new(1 << 20).starting_at(42);
    let mut out = Vec::new();
    let stats = enc
        .encode_rgb32(&test_images::solid(64, 32).as_ref(), &mut out)
        .expect("encodes");
    assert_eq!(stats.id, 42);
    assert_eq!(stats.win_head_dist, 0);
    assert_eq!(GlzHeader::parse(&out).expect("parses").id, 42);
    assert_eq!(enc.next_id(), 43);
}
