//! SPICE LZ4 images (`SPICE_IMAGE_TYPE_LZ4`, 109): LZ4 blocks in the framing
//! spice-common's `canvas_get_lz4` reads.
//!
//! # Stream layout
//!
//! | bytes | field |
//! |---|---|
//! | 1 | top_down: non-zero when the first row is the top one |
//! | 1 | bitmap format: [`FMT_16BIT`], [`FMT_24BIT`], [`FMT_32BIT`] or [`FMT_RGBA`] |
//! | 4 + n, repeated | a big-endian `u32` n, then an LZ4 *block* (no frame) of n bytes |
//!
//! The blocks decode, one after the other, into one buffer of `height`
//! rows of exactly `width * bytes_per_pixel` bytes (the client then moves the
//! rows to its surface's stride). The client decodes them with
//! `LZ4_decompress_safe_continue` into consecutive memory, so a block may
//! refer to up to 64 KiB of the output of the blocks before it. It needs at
//! least one block, and every block must produce at least one byte. Width
//! and height are not in the stream: they come from the image descriptor.
//!
//! Our encoder writes a single block when the image's rows are contiguous,
//! and otherwise blocks of about [`CHUNK_BYTES`] each compressed with the
//! previous 64 KiB as dictionary (so the ratio is nearly that of one block).
//!
//! # Clients
//!
//! spice-gtk decodes LZ4 when built with it (it then advertises
//! `SPICE_DISPLAY_CAP_LZ4_COMPRESSION`); spice-html5 does not.

use crate::{CodecError, DecodeLimits, ImageRef};
use lz4_flex::block;

/// `SPICE_BITMAP_FMT_16BIT`: x1r5g5b5, 2 bytes per pixel.
pub const FMT_16BIT: u8 = 6;
/// `SPICE_BITMAP_FMT_24BIT`: B, G, R, 3 bytes per pixel.
pub const FMT_24BIT: u8 = 7;
/// `SPICE_BITMAP_FMT_32BIT`: B, G, R, x, 4 bytes per pixel.
pub const FMT_32BIT: u8 = 8;
/// `SPICE_BITMAP_FMT_RGBA`: B, G, R, A, 4 bytes per pixel.
pub const FMT_RGBA: u8 = 9;

/// Uncompressed bytes per block when rows have to be gathered.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Largest image (uncompressed bytes) we encode; the client counts in `int`.
const MAX_IMAGE_BYTES: u64 = 1024 * 1024 * 1024 - 1;
/// LZ4's window.
const WINDOW: usize = 64 * 1024;
const CODEC: &str = "lz4";

fn corrupt(what: &'static str) -> CodecError {
    CodecError::Corrupt { codec: CODEC, what }
}

/// Appends the LZ4 image of `image` as [`FMT_32BIT`], top-down.
/// See [`Lz4Encoder::encode`].
pub fn encode(image: &ImageRef, out: &mut Vec<u8>) -> Result<(), CodecError> {
    Lz4Encoder::new().encode(image, FMT_32BIT, out)
}

/// Reusable LZ4 encoder buffers (the block output and, for images whose
/// stride exceeds their row, the gathered rows).
#[derive(Debug, Default)]
pub struct Lz4Encoder {
    block: Vec<u8>,
    rows: Vec<u8>,
}

impl Lz4Encoder {
    /// An encoder with nothing allocated yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the LZ4 image of `image` (32-bit pixels) with format byte
    /// `format`, [`FMT_32BIT`] or [`FMT_RGBA`] (the pixels are sent as they
    /// are; the format only tells the client whether the 4th byte is alpha).
    /// Always top-down.
    pub fn encode(&mut self, image: &ImageRef, format: u8, out: &mut Vec<u8>) -> Result<(), CodecError> {
        image.validate()?;
        if format != FMT_32BIT && format != FMT_RGBA {
            return Err(CodecError::InvalidImage("LZ4 encodes 32-bit formats only"));
        }
        let row = image.width as usize * 4;
        let total = row * image.height as usize;
        if total as u64 > MAX_IMAGE_BYTES {
            return Err(CodecError::InvalidImage("too large for LZ4"));
        }
        out.extend_from_slice(&[1, format]);
        if image.stride == row {
            self.put_block(&image.data[..total], &[], out);
            return Ok(());
        }
        let rows_per_chunk = (CHUNK_BYTES / row).max(1);
        self.rows.clear();
        let mut y = 0;
        while y < image.height {
            let end = (y + rows_per_chunk as u32).min(image.height);
            // `rows` holds the dictionary (the previous chunk's last 64 KiB).
            let dict_len = self.rows.len();
            for r in y..end {
                self.rows.extend_from_slice(image.row(r));
            }
            let rows = std::mem::take(&mut self.rows);
            let (dict, input) = rows.split_at(dict_len);
            self.put_block(input, dict, out);
            self.rows = rows;
            let keep = self.rows.len().min(WINDOW);
            self.rows.drain(..self.rows.len() - keep);
            y = end;
        }
        Ok(())
    }

    /// Appends one length-prefixed block coding `input` (not empty), which
    /// follows `dict` (at most 64 KiB used) in the decoder's output.
    fn put_block(&mut self, input: &[u8], dict: &[u8], out: &mut Vec<u8>) {
        let bound = block::get_maximum_output_size(input.len());
        if self.block.len() < bound {
            self.block.resize(bound, 0);
        }
        let n = if dict.is_empty() {
            block::compress_into(input, &mut self.block)
        } else {
            block::compress_into_with_dict(input, &mut self.block, dict)
        }
        .expect("output buffer sized by get_maximum_output_size");
        out.extend_from_slice(&(n as u32).to_be_bytes());
        out.extend_from_slice(&self.block[..n]);
    }
}

/// A decoded LZ4 image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lz4Image {
    /// Whether the first row is the top one.
    pub top_down: bool,
    /// The bitmap format byte.
    pub format: u8,
    /// Bytes per row: `width * bytes_per_pixel`.
    pub stride: usize,
    /// The rows, in stream order.
    pub data: Vec<u8>,
}

/// Decodes an LZ4 image of `width` x `height` pixels the way
/// `canvas_get_lz4` does, but strictly: the blocks must fill the image
/// exactly. Rejects images of more than `limits.max_pixels` pixels and
/// streams too short to code their image (LZ4 expands at most 255 times)
/// before allocating.
pub fn decode(data: &[u8], width: u32, height: u32, limits: &DecodeLimits) -> Result<Lz4Image, CodecError> {
    let [top_down, format, ref blocks @ ..] = *data else {
        return Err(corrupt("missing header"));
    };
    let bpp: u64 = match format {
        FMT_16BIT => 2,
        FMT_24BIT => 3,
        FMT_32BIT | FMT_RGBA => 4,
        _ => return Err(corrupt("unsupported bitmap format")),
    };
    let pixels = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 {
        return Err(corrupt("empty image"));
    }
    if pixels > limits.max_pixels {
        return Err(CodecError::TooLarge {
            codec: CODEC,
            width,
            height,
        });
    }
    let total = pixels * bpp;
    if total > (blocks.len() as u64).saturating_mul(255) {
        return Err(corrupt("stream too short for the image"));
    }
    let total = usize::try_from(total).map_err(|_| corrupt("image too large"))?;
    let mut out = vec![0u8; total];
    let mut pos = 0;
    let mut rest = blocks;
    loop {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(corrupt("truncated block length"));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > tail.len() {
            return Err(corrupt("truncated block"));
        }
        let (blk, tail) = tail.split_at(len);
        let (done, free) = out.split_at_mut(pos);
        let dict = &done[pos.saturating_sub(WINDOW)..];
        let n = block::decompress_into_with_dict(blk, free, dict).map_err(|_| corrupt("bad LZ4 block"))?;
        if n == 0 {
            return Err(corrupt("empty LZ4 block"));
        }
        pos += n;
        rest = tail;
        if rest.is_empty() {
            break;
        }
    }
    if pos != total {
        return Err(corrupt("blocks do not fill the image"));
    }
    Ok(Lz4Image {
        top_down: top_down != 0,
        format,
        stride: (u64::from(width) * bpp) as usize,
        data: out,
    })
}

/// Fuzz oracle: the first two bytes pick a size (1 to 64 pixels each way),
/// the rest is decoded as an LZ4 image of that size; when it decodes as a
/// 32-bit format, re-encoding it must give a stream that decodes to the same
/// bytes. Panics only if that invariant breaks.
pub fn fuzz_decode(data: &[u8]) {
    let [a, b, ref stream @ ..] = *data else {
        return;
    };
    let (width, height) = (u32::from(a % 64) + 1, u32::from(b % 64) + 1);
    let limits = DecodeLimits { max_pixels: 4096 };
    let Ok(img) = decode(stream, width, height, &limits) else {
        return;
    };
    assert_eq!(img.data.len(), img.stride * height as usize);
    if img.format != FMT_32BIT && img.format != FMT_RGBA {
        return;
    }
    let image = ImageRef {
        width,
        height,
        stride: img.stride,
        data: &img.data,
    };
    let mut out = Vec::new();
    Lz4Encoder::new()
        .encode(&image, img.format, &mut out)
        .expect("re-encode");
    let again = decode(&out, width, height, &limits).expect("re-decode");
    assert_eq!(again.data, img.data, "round trip changed the pixels");
    assert_eq!(again.format, img.format);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_images::{self, Image, XorShift};

    fn lz4_compress(input: &[u8]) -> Vec<u8> {
        let mut v = vec![0; block::get_maximum_output_size(input.len())];
        let n = block::compress_into(input, &mut v).unwrap();
        v.truncate(n);
        v
    }

    fn lz4_decompress(input: &[u8], size: usize) -> Option<Vec<u8>> {
        let mut v = vec![0; size];
        let n = block::decompress_into(input, &mut v).ok()?;
        v.truncate(n);
        Some(v)
    }

    fn round_trip(img: &Image, format: u8) -> Vec<u8> {
        let mut out = Vec::new();
        Lz4Encoder::new().encode(&img.as_ref(), format, &mut out).unwrap();
        let d = decode(&out, img.width, img.height, &DecodeLimits::default()).unwrap();
        assert!(d.top_down);
        assert_eq!(d.format, format);
        assert_eq!(d.stride, img.width as usize * 4);
        assert!(d.data == img.packed(), "LZ4 round trip of {}", img.name);
        out
    }

    #[test]
    fn round_trips_on_varied_content() {
        for img in test_images::all() {
            round_trip(&img, FMT_32BIT);
            round_trip(&img, FMT_RGBA);
        }
    }

    /// Blocks as the encoder framed them: (compressed length, bytes decoded).
    fn blocks(stream: &[u8]) -> Vec<usize> {
        let mut rest = &stream[2..];
        let mut v = Vec::new();
        while !rest.is_empty() {
            let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            v.push(n);
            rest = &rest[4 + n..];
        }
        v
    }

    #[test]
    fn framing_of_a_contiguous_image_is_one_block() {
        let img = test_images::gradient(7, 3);
        let out = round_trip(&img, FMT_32BIT);
        assert_eq!(&out[..2], &[1, FMT_32BIT]);
        assert_eq!(blocks(&out), [out.len() - 6]);
        // The block is plain LZ4: it decodes alone to the whole image.
        let whole = lz4_decompress(&out[6..], img.bytes()).unwrap();
        assert_eq!(whole, img.packed());
    }

    #[test]
    fn padded_rows_are_gathered_into_chained_blocks() {
        // 2.4 MiB of pixels with padded rows: three blocks, the later ones
        // referring into the earlier ones' output.
        let img = test_images::text(1024, 600, 8);
        let out = round_trip(&img, FMT_32BIT);
        let b = blocks(&out);
        assert_eq!(b.len(), img.bytes().div_ceil(CHUNK_BYTES));
        // Chaining pays: the second block alone does not decode.
        let second = &out[2 + 4 + b[0] + 4..][..b[1]];
        assert!(lz4_decompress(second, CHUNK_BYTES).is_none());
        // And the stream is smaller than independent blocks would be.
        let independent: usize = img
            .packed()
            .chunks(CHUNK_BYTES)
            .map(|c| lz4_compress(c).len() + 4)
            .sum();
        assert!(out.len() - 2 < independent);
    }

    #[test]
    fn rejects_malformed_streams() {
        let img = test_images::gradient(5, 4);
        let out = round_trip(&img, FMT_32BIT);
        let limits = DecodeLimits::default();
        let bad = |s: &[u8], w, h| decode(s, w, h, &limits).unwrap_err();
        assert!(matches!(bad(&out[..1], 5, 4), CodecError::Corrupt { .. }));
        assert!(matches!(bad(&out[..2], 5, 4), CodecError::Corrupt { .. }));
        assert!(matches!(bad(&out[..5], 5, 4), CodecError::Corrupt { .. }));
        assert!(matches!(
            bad(&out[..out.len() - 1], 5, 4),
            CodecError::Corrupt { .. }
        ));
        let mut s = out.clone();
        s[1] = 5;
        assert!(matches!(bad(&s, 5, 4), CodecError::Corrupt { .. }));
        // Wrong size: blocks too short or too long for the image.
        assert!(matches!(bad(&out, 5, 5), CodecError::Corrupt { .. }));
        assert!(matches!(bad(&out, 5, 3), CodecError::Corrupt { .. }));
        assert!(matches!(bad(&out, 0, 3), CodecError::Corrupt { .. }));
        // An empty block (decodes to nothing) is refused, as by the client.
        let mut s = out[..2].to_vec();
        s.extend_from_slice(&[0, 0, 0, 1, 0]);
        s.extend_from_slice(&out[2..]);
        assert!(matches!(bad(&s, 5, 4), CodecError::Corrupt { .. }));
        // 16-bit and 24-bit streams decode (at their own sizes).
        let mut s = vec![0, FMT_24BIT];
        let raw: Vec<u8> = (0..5 * 4 * 3).map(|i| i as u8).collect();
        let blk = lz4_compress(&raw);
        s.extend_from_slice(&(blk.len() as u32).to_be_bytes());
        s.extend_from_slice(&blk);
        let d = decode(&s, 5, 4, &limits).unwrap();
        assert_eq!((d.top_down, d.stride, d.data), (false, 15, raw));
        // Limits before allocation.
        assert!(matches!(
            decode(&out, 20000, 20000, &limits),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(matches!(
            decode(&out, 4000, 4000, &limits),
            Err(CodecError::Corrupt {
                what: "stream too short for the image",
                ..
            })
        ));
    }

    #[test]
    fn encoder_rejects_bad_input() {
        let img = test_images::gradient(5, 4);
        let mut out = Vec::new();
        let mut enc = Lz4Encoder::new();
        assert!(enc.encode(&img.as_ref(), FMT_24BIT, &mut out).is_err());
        let mut r = img.as_ref();
        r.data = &r.data[..10];
        assert!(enc.encode(&r, FMT_32BIT, &mut out).is_err());
        assert!(encode(&img.as_ref(), &mut out).is_ok());
    }

    #[test]
    fn fuzz_oracle_survives_random_and_mutated_inputs() {
        let mut rng = XorShift::new(0x124);
        let mut seeds = Vec::new();
        for img in test_images::small() {
            let mut s = vec![(img.width - 1) as u8, (img.height - 1) as u8];
            encode(&img.as_ref(), &mut s).unwrap();
            seeds.push(s);
        }
        for seed in &seeds {
            fuzz_decode(seed);
        }
        for i in 0..20_000 {
            let mut input = if i % 4 == 0 {
                let n = rng.below(120) as usize;
                let mut s: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                if s.len() > 4 && i % 8 == 0 {
                    s[2] = 1;
                    s[3] = FMT_32BIT;
                }
                s
            } else {
                seeds[rng.below(seeds.len() as u64) as usize].clone()
            };
            test_images::mutate(&mut input, &mut rng);
            fuzz_decode(&input);
        }
    }
}
