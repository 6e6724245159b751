use super::*;
use crate::test_images::{self, Image, XorShift};
use crate::ImageRef;

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

/// The 32-bit pixels of `img` as the decoder returns them for RGB32 (pad 0).
fn expected_rgb32(img: &Image) -> Vec<u8> {
    let mut v = img.packed();
    for p in v.chunks_exact_mut(4) {
        p[3] = 0;
    }
    v
}

fn round_trip(img: &Image) {
    let r = img.as_ref();
    let mut out = Vec::new();
    encode_rgb32(&r, &mut out).unwrap();
    let d = decode(&out, &limits()).unwrap();
    assert_eq!(d.header.kind, LzImageType::Rgb32);
    assert_eq!((d.header.width, d.header.height), (img.width, img.height));
    assert!(d.header.top_down);
    assert_eq!(d.stride, img.width as usize * 4);
    assert!(d.data == expected_rgb32(img), "RGB32 round trip of {}", img.name);

    out.clear();
    encode_rgba(&r, &mut out).unwrap();
    let d = decode(&out, &limits()).unwrap();
    assert_eq!(d.header.kind, LzImageType::Rgba);
    assert!(d.data == img.packed(), "RGBA round trip of {}", img.name);
}

#[test]
fn round_trips_on_varied_content() {
    for img in test_images::all() {
        round_trip(&img);
    }
}

#[test]
fn round_trips_on_many_small_random_images() {
    let mut rng = XorShift::new(7);
    for _ in 0..300 {
        let w = 1 + rng.below(40) as u32;
        let h = 1 + rng.below(12) as u32;
        let colors = 1 + rng.below(6) as u32;
        let pad = rng.below(3) as usize * 4;
        let mut img = Image::new("small", w, h, pad);
        for y in 0..h {
            for x in 0..w {
                let c = rng.below(colors as u64) as u32;
                img.set(x, y, c.wrapping_mul(0x3f1d_a4c7) | 0xff00_0000);
            }
        }
        round_trip(&img);
    }
}

#[test]
fn header_layout() {
    let img = test_images::gradient(3, 2);
    let mut out = vec![0xaa]; // appends, keeps what was there
    encode_rgb32(&img.as_ref(), &mut out).unwrap();
    assert_eq!(out[0], 0xaa);
    let h = &out[1..29];
    assert_eq!(&h[0..4], b"  ZL");
    assert_eq!(&h[4..8], &[0, 1, 0, 1]);
    assert_eq!(&h[8..12], &[0, 0, 0, 8]); // LZ_IMAGE_TYPE_RGB32
    assert_eq!(&h[12..16], &[0, 0, 0, 3]);
    assert_eq!(&h[16..20], &[0, 0, 0, 2]);
    assert_eq!(&h[20..24], &[0, 0, 0, 12]); // stride = width * 4
    assert_eq!(&h[24..28], &[0, 0, 0, 1]); // top-down

    let mut out = Vec::new();
    encode_rgba(&img.as_ref(), &mut out).unwrap();
    assert_eq!(&out[8..12], &[0, 0, 0, 9]); // LZ_IMAGE_TYPE_RGBA
    assert_eq!(&out[20..24], &[0, 0, 0, 12]);
}

#[test]
fn one_pixel_is_one_literal() {
    let mut img = Image::new("1x1", 1, 1, 0);
    img.set(0, 0, 0x7f11_2233);
    let mut out = Vec::new();
    encode_rgb32(&img.as_ref(), &mut out).unwrap();
    // control 0 (one literal), then B, G, R.
    assert_eq!(&out[HEADER_LEN..], &[0, 0x33, 0x22, 0x11]);
    out.clear();
    encode_rgba(&img.as_ref(), &mut out).unwrap();
    assert_eq!(&out[HEADER_LEN..], &[0, 0x33, 0x22, 0x11, 0, 0x7f]);
}

#[test]
fn solid_row_is_a_literal_and_a_run() {
    let mut img = Image::new("solid", 4, 1, 0);
    for x in 0..4 {
        img.set(x, 0, 0xff01_0203);
    }
    let mut out = Vec::new();
    encode_rgba(&img.as_ref(), &mut out).unwrap();
    assert_eq!(
        &out[HEADER_LEN..],
        &[
            0,
            3,
            2,
            1, // one literal pixel B, G, R
            3 << 5,
            0, // 3 pixels from 1 back (length field 3, distance - 1 = 0)
            0,
            0xff, // alpha pass: one literal byte
            1 << 5,
            0, // 3 bytes from 1 back (byte references are field + 2 long)
        ]
    );
}

#[test]
fn long_and_far_references_are_coded_as_the_decoder_reads_them() {
    // 300 distinct pixels, then the same 300 again 9000 pixels later (far).
    let w = 9300u32;
    let mut img = Image::new("far", w, 1, 0);
    let mut rng = XorShift::new(3);
    for x in 0..w {
        img.set(x, 0, rng.next() as u32);
    }
    for x in 0..300 {
        let p = img.get(x, 0);
        img.set(9000 + x, 0, p);
    }
    let mut out = Vec::new();
    encode_rgb32(&img.as_ref(), &mut out).unwrap();
    let body = &out[HEADER_LEN..];
    // Find the far reference token: length field 7, extension 300-7 = 255 + 38,
    // then 255 (far marker), then distance - 1 - 8191 big endian.
    let far = 9000 - 1 - 8191;
    let token = [(7 << 5) | 31, 255, 38, 255, (far >> 8) as u8, far as u8];
    assert!(
        body.windows(token.len()).any(|t| t == token),
        "far token not found"
    );
    assert_eq!(decode(&out, &limits()).unwrap().data, expected_rgb32(&img));
}

fn stream(kind: LzImageType, width: u32, height: u32, stride: u32, body: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    Header {
        kind,
        width,
        height,
        stride,
        top_down: false,
    }
    .write(&mut s);
    s.extend_from_slice(body);
    s
}

#[test]
fn decodes_hand_made_streams_of_every_family() {
    // RGB24: same coding as RGB32.
    let s = stream(LzImageType::Rgb24, 3, 1, 9, &[0, 1, 2, 3, 2 << 5, 0]);
    let d = decode(&s, &limits()).unwrap();
    assert!(!d.header.top_down);
    assert_eq!(d.data, [1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0]);

    // RGB16: literals are 2 bytes, references 1 longer than their field.
    let s = stream(LzImageType::Rgb16, 3, 1, 6, &[0, 0x7c, 0x00, 1 << 5, 0]);
    let d = decode(&s, &limits()).unwrap();
    assert_eq!(d.data, [0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0]);

    // A8: byte units, references 2 longer than their field.
    let s = stream(LzImageType::A8, 5, 1, 5, &[1, 9, 8, 1 << 5, 1]);
    let d = decode(&s, &limits()).unwrap();
    assert_eq!(d.data, [9, 8, 9, 8, 9]);

    // XXXA: the alpha pass alone.
    let s = stream(LzImageType::Xxxa, 2, 1, 8, &[1, 5, 6]);
    let d = decode(&s, &limits()).unwrap();
    assert_eq!(d.data, [0, 0, 0, 5, 0, 0, 0, 6]);

    // PLT8 and PLT4 (odd width: stride may be one byte longer).
    let s = stream(LzImageType::Plt8, 4, 1, 4, &[3, 0, 1, 2, 1]);
    let d = decode(&s, &limits()).unwrap();
    assert_eq!(d.data, [0, 1, 2, 1]);
    let pal = [0x00_0000, 0x11_2233, 0xaa_bbcc];
    assert_eq!(
        d.palette_to_rgb32(&pal).unwrap(),
        [0, 0, 0, 0, 0x33, 0x22, 0x11, 0, 0xcc, 0xbb, 0xaa, 0, 0x33, 0x22, 0x11, 0]
    );
    let s = stream(LzImageType::Plt4Be, 3, 2, 2, &[3, 0x12, 0x30, 0x12, 0x30]);
    let d = decode(&s, &limits()).unwrap();
    assert_eq!(d.stride, 2);
    let rgb = d.palette_to_rgb32(&[0, 1, 2, 3]).unwrap();
    let idx: Vec<u8> = rgb.chunks(4).map(|p| p[0]).collect();
    assert_eq!(idx, [1, 2, 3, 1, 2, 3]);
    let s = stream(LzImageType::Plt1Le, 10, 1, 2, &[1, 0b1000_0001, 0b10]);
    let d = decode(&s, &limits()).unwrap();
    let rgb = d.palette_to_rgb32(&[0, 0xff]).unwrap();
    let idx: Vec<u8> = rgb.chunks(4).map(|p| p[0]).collect();
    assert_eq!(idx, [0xff, 0, 0, 0, 0, 0, 0, 0xff, 0, 0xff]);
    assert!(decode(&stream(LzImageType::A8, 1, 1, 1, &[0, 0]), &limits())
        .unwrap()
        .palette_to_rgb32(&pal)
        .is_none());
}

#[test]
fn rejects_malformed_streams() {
    let ok = stream(LzImageType::Rgb32, 2, 1, 8, &[1, 1, 2, 3, 4, 5, 6]);
    assert!(decode(&ok, &limits()).is_ok());
    let bad = |s: &[u8]| decode(s, &limits()).unwrap_err();

    let mut s = ok.clone();
    s[0] = b'x';
    assert!(matches!(
        bad(&s),
        CodecError::Corrupt {
            what: "bad magic",
            ..
        }
    ));
    let mut s = ok.clone();
    s[7] = 2;
    assert!(matches!(
        bad(&s),
        CodecError::Corrupt {
            what: "bad version",
            ..
        }
    ));
    let mut s = ok.clone();
    s[11] = 12;
    assert!(matches!(
        bad(&s),
        CodecError::Corrupt {
            what: "bad image type",
            ..
        }
    ));
    let s = stream(LzImageType::Rgb32, 2, 1, 12, &[1, 1, 2, 3, 4, 5, 6]);
    assert!(matches!(bad(&s), CodecError::Corrupt { .. }));
    let s = stream(LzImageType::Plt8, 4, 1, 5, &[3, 0, 1, 2, 1]);
    assert!(matches!(bad(&s), CodecError::Corrupt { .. }));
    let s = stream(LzImageType::Rgb32, 0, 1, 0, &[]);
    assert!(matches!(bad(&s), CodecError::Corrupt { .. }));
    assert!(matches!(bad(&ok[..20]), CodecError::Corrupt { .. }));
    // Truncated body, trailing byte.
    assert!(matches!(bad(&ok[..ok.len() - 1]), CodecError::Corrupt { .. }));
    let mut s = ok.clone();
    s.push(0);
    assert!(matches!(
        bad(&s),
        CodecError::Corrupt {
            what: "bytes after the image",
            ..
        }
    ));
    // Reference before the start, past the end; literals past the end.
    let s = stream(LzImageType::Rgb32, 2, 1, 8, &[1 << 5, 0, 0, 1, 2, 3]);
    assert!(matches!(bad(&s), CodecError::Corrupt { .. }));
    let s = stream(LzImageType::Rgb32, 2, 1, 8, &[0, 1, 2, 3, 2 << 5, 0]);
    assert!(matches!(bad(&s), CodecError::Corrupt { .. }));
    let s = stream(LzImageType::Rgb32, 2, 1, 8, &[2, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert!(matches!(bad(&s), CodecError::Corrupt { .. }));
    // RGBA needs its alpha pass.
    let s = stream(LzImageType::Rgba, 2, 1, 8, &[1, 1, 2, 3, 4, 5, 6]);
    assert!(matches!(bad(&s), CodecError::Corrupt { .. }));
}

#[test]
fn limits_are_checked_before_allocating() {
    // 16000 x 16000 claimed by a tiny stream.
    let s = stream(LzImageType::Rgb32, 16000, 16000, 64000, &[0; 8]);
    assert!(matches!(
        decode(&s, &limits()),
        Err(CodecError::TooLarge {
            width: 16000,
            height: 16000,
            ..
        })
    ));
    let small = DecodeLimits { max_pixels: 100 };
    let s = stream(LzImageType::Rgb32, 11, 10, 44, &[0; 8]);
    assert!(matches!(decode(&s, &small), Err(CodecError::TooLarge { .. })));
    // Within the limit but far too short to code it.
    let s = stream(LzImageType::Rgb32, 4000, 4000, 16000, &[0; 8]);
    assert!(matches!(
        decode(&s, &limits()),
        Err(CodecError::Corrupt {
            what: "stream too short for the image",
            ..
        })
    ));
    // The clients' 1 GiB cap.
    let s = stream(LzImageType::Rgb32, 20000, 20000, 80000, &[0; 8]);
    assert!(matches!(decode(&s, &limits()), Err(CodecError::Corrupt { .. })));
}

#[test]
fn encoder_rejects_bad_images() {
    let data = [0u8; 16];
    let mut out = Vec::new();
    let img = ImageRef {
        width: 2,
        height: 2,
        stride: 8,
        data: &data[..15],
    };
    assert!(encode_rgb32(&img, &mut out).is_err());
    let img = ImageRef {
        width: 0,
        height: 2,
        stride: 8,
        data: &data,
    };
    assert!(encode_rgba(&img, &mut out).is_err());
}

#[test]
fn reused_encoder_gives_the_same_streams() {
    let mut enc = LzEncoder::new();
    for img in test_images::all() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        enc.encode_rgba(&img.as_ref(), &mut a).unwrap();
        encode_rgba(&img.as_ref(), &mut b).unwrap();
        assert!(a == b, "{}", img.name);
    }
}

#[test]
fn fuzz_oracle_survives_random_and_mutated_inputs() {
    let mut rng = XorShift::new(0x5eed);
    let mut seeds = Vec::new();
    for img in test_images::small() {
        let mut out = Vec::new();
        encode_rgb32(&img.as_ref(), &mut out).unwrap();
        seeds.push(out.clone());
        out.clear();
        encode_rgba(&img.as_ref(), &mut out).unwrap();
        seeds.push(out);
    }
    for kind in 1..=11u32 {
        let k = LzImageType::from_u32(kind).unwrap();
        let w = 7u32;
        let stride = if k.is_palette() {
            w.div_ceil(k.pixels_per_byte())
        } else {
            w * k.bytes_per_pixel()
        };
        let body: Vec<u8> = (0..64).map(|_| rng.next() as u8).collect();
        seeds.push(stream(k, w, 3, stride, &body));
    }
    for seed in &seeds {
        fuzz_decode(seed);
    }
    for i in 0..20_000 {
        let mut input = if i % 4 == 0 {
            // Random bytes behind a valid header, or none at all.
            let mut s = if i % 8 == 0 {
                Vec::new()
            } else {
                seeds[rng.below(seeds.len() as u64) as usize][..HEADER_LEN].to_vec()
            };
            let n = rng.below(200) as usize;
            s.extend((0..n).map(|_| rng.next() as u8));
            s
        } else {
            seeds[rng.below(seeds.len() as u64) as usize].clone()
        };
        test_images::mutate(&mut input, &mut rng);
        fuzz_decode(&input);
    }
}

#[test]
fn palette_images_round_trip() {
    for img in test_images::all() {
        let r = img.as_ref();
        let Some(p) = palettize(&r, 256) else {
            continue;
        };
        assert!(p.palette.len() <= 256);
        let mut out = Vec::new();
        encode_plt8(img.width, img.height, &p.indices, &mut out).unwrap();
        assert_eq!(&out[8..12], &[0, 0, 0, 5]); // LZ_IMAGE_TYPE_PLT8
        assert_eq!(&out[20..24], &img.width.to_be_bytes()); // stride = width
        let d = decode(&out, &limits()).unwrap();
        assert_eq!(d.data, p.indices);
        assert!(
            d.palette_to_rgb32(&p.palette).unwrap() == expected_rgb32(&img),
            "{}",
            img.name
        );
    }
}

#[test]
fn palettize_counts_colours() {
    let mut img = Image::new("two", 3, 2, 4);
    for (x, y, c) in [
        (0, 0, 1),
        (1, 0, 2),
        (2, 0, 1),
        (0, 1, 2),
        (1, 1, 2),
        (2, 1, 0x1ff_ffff),
    ] {
        img.set(x, y, c);
    }
    // The pad byte is ignored: 0x01ffffff is white.
    let p = palettize(&img.as_ref(), 256).unwrap();
    assert_eq!(p.palette, [1, 2, 0xff_ffff]);
    assert_eq!(p.indices, [0, 1, 0, 1, 1, 2]);
    assert!(palettize(&img.as_ref(), 2).is_none());
    assert!(palettize(&test_images::noise(20, 20, 1).as_ref(), 256).is_none());
    let mut out = Vec::new();
    assert!(encode_plt8(3, 2, &p.indices[..5], &mut out).is_err());
}
