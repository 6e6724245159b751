//! QUIC: SPICE's lossless image codec for photographic content.
//!
//! QUIC (a variant of SFALIC) predicts every sample from its neighbours and
//! sends the prediction error with adaptively chosen Golomb-Rice codes; runs
//! of equal pixels are run-length coded. The bitstream produced here is the
//! one the C encoder of spice-common produces for the same pixels, bit for
//! bit, so every client decodes it (spice-gtk through spice-common,
//! spice-html5 through its `quic.js` port).
//!
//! # Stream layout
//!
//! A stream is a sequence of little-endian 32-bit words; bits fill each word
//! from its most significant bit. It starts with five words: [`MAGIC`]
//! (`"QUIC"`), [`VERSION`] (0), the [`QuicImageType`], the width and the
//! height. The coded rows follow, top row first; for RGBA each row codes R,
//! G and B (interleaved per pixel), then the row's alpha. The last word is
//! padded with zero bits and one zero word ends the stream, so its length is
//! always a multiple of 4.
//!
//! On the wire (`SpiceImage` with descriptor type `QUIC` = 1) the stream is
//! carried as `u32 data_size` followed by `data_size` bytes; the image
//! descriptor's width and height must equal the stream's, which spice-gtk
//! checks.

mod bits;
mod engine;
mod tables;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests;

use crate::{CodecError, DecodeLimits, ImageRef};
use bits::{BitReader, BitWriter};
use engine::{Alpha, Bgr, Bgrx, Bgrx555, Dec, Enc, Engine, Gray8, Layout, X1r5g5b5};
use tables::{FAMILY_5, FAMILY_8};

/// First word of every stream: `"QUIC"` in ASCII, little endian.
pub const MAGIC: u32 = 0x4349_5551;

/// Second word of every stream: format version 0.0.
pub const VERSION: u32 = 0;

/// Largest image the reference decoder accepts, in pixels.
pub const MAX_PIXELS: u64 = 512 * 1024 * 1024 - 1;

const CODEC: &str = "quic";

const fn corrupt(what: &'static str) -> CodecError {
    CodecError::Corrupt { codec: CODEC, what }
}

/// Pixel layout of a QUIC image (`QuicImageType` in spice-common).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum QuicImageType {
    /// One 8-bit sample per pixel.
    Gray = 1,
    /// 16-bit little-endian x1r5g5b5 pixels: three 5-bit samples.
    Rgb16 = 2,
    /// 24-bit pixels, bytes B, G, R: three 8-bit samples.
    Rgb24 = 3,
    /// 32-bit pixels, bytes B, G, R, X: three 8-bit samples, X not coded.
    Rgb32 = 4,
    /// 32-bit pixels, bytes B, G, R, A: four 8-bit samples.
    Rgba = 5,
}

impl QuicImageType {
    /// The type with wire value `v`, if any.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => QuicImageType::Gray,
            2 => QuicImageType::Rgb16,
            3 => QuicImageType::Rgb24,
            4 => QuicImageType::Rgb32,
            5 => QuicImageType::Rgba,
            _ => return None,
        })
    }

    /// Bytes per pixel of this type's source layout (the input of [`encode`]).
    pub fn source_bytes_per_pixel(self) -> usize {
        match self {
            QuicImageType::Gray => 1,
            QuicImageType::Rgb16 => 2,
            QuicImageType::Rgb24 => 3,
            QuicImageType::Rgb32 | QuicImageType::Rgba => 4,
        }
    }

    /// Bytes per pixel of [`DecodedImage::data`] for this type: 1 for
    /// [`Gray`](QuicImageType::Gray), 4 otherwise.
    pub fn decoded_bytes_per_pixel(self) -> usize {
        match self {
            QuicImageType::Gray => 1,
            _ => 4,
        }
    }

    /// Samples coded per pixel.
    fn channels(self) -> u64 {
        match self {
            QuicImageType::Gray => 1,
            QuicImageType::Rgba => 4,
            _ => 3,
        }
    }
}

/// The five header words of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Pixel layout.
    pub kind: QuicImageType,
    /// Width in pixels, at least 1.
    pub width: u32,
    /// Height in pixels, at least 1.
    pub height: u32,
}

/// A decoded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedImage {
    /// The type the stream declared.
    pub kind: QuicImageType,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Rows top first, `width * kind.decoded_bytes_per_pixel()` bytes each,
    /// no padding: B, G, R, X with X = 0 for RGB32, RGB24 and RGB16 (5-bit
    /// samples widened to 8 bits as `v << 3 | v >> 2`, as spice-common does),
    /// B, G, R, A for RGBA, and one byte per pixel for GRAY.
    pub data: Vec<u8>,
}

impl DecodedImage {
    /// Bytes from one row to the next.
    pub fn stride(&self) -> usize {
        self.width as usize * self.kind.decoded_bytes_per_pixel()
    }
}

/// Encodes a 32-bit xRGB image (bytes B, G, R, X; X ignored) as
/// `QUIC_IMAGE_TYPE_RGB32`, appending the stream to `out`.
pub fn encode_rgb32(image: &ImageRef, out: &mut Vec<u8>) -> Result<(), CodecError> {
    encode(
        QuicImageType::Rgb32,
        image.width,
        image.height,
        image.stride,
        image.data,
        out,
    )
}

/// Encodes a 32-bit ARGB image (bytes B, G, R, A) as `QUIC_IMAGE_TYPE_RGBA`,
/// appending the stream to `out`. The alpha channel is coded losslessly too.
pub fn encode_rgba(image: &ImageRef, out: &mut Vec<u8>) -> Result<(), CodecError> {
    encode(
        QuicImageType::Rgba,
        image.width,
        image.height,
        image.stride,
        image.data,
        out,
    )
}

/// Encodes `height` rows of `width` pixels in `kind`'s source layout (see
/// [`QuicImageType`]), `stride` bytes apart, top row first, appending the
/// stream to `out`.
pub fn encode(
    kind: QuicImageType,
    width: u32,
    height: u32,
    stride: usize,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    if width == 0 || height == 0 {
        return Err(CodecError::InvalidImage("empty image"));
    }
    if width > i32::MAX as u32
        || height > i32::MAX as u32
        || u64::from(width) * u64::from(height) > MAX_PIXELS
    {
        return Err(CodecError::InvalidImage("image too large for QUIC"));
    }
    let w = width as usize;
    let row_bytes = w
        .checked_mul(kind.source_bytes_per_pixel())
        .ok_or(CodecError::InvalidImage("image too large for QUIC"))?;
    if stride < row_bytes {
        return Err(CodecError::InvalidImage("stride shorter than a row"));
    }
    let needed = stride
        .checked_mul(height as usize - 1)
        .and_then(|n| n.checked_add(row_bytes))
        .ok_or(CodecError::InvalidImage("image too large for QUIC"))?;
    if data.len() < needed {
        return Err(CodecError::InvalidImage("buffer shorter than the image"));
    }
    let rows = |y: usize| &data[y * stride..y * stride + row_bytes];

    let start = out.len();
    let mut wr = BitWriter::new(std::mem::take(out));
    // Photographic content usually lands between a quarter and a half of
    // the raw size; reserve for the smaller end.
    wr.reserve(row_bytes.saturating_mul(height as usize) / 4);
    wr.reserve(20);
    for word in [MAGIC, VERSION, kind as u32, width, height] {
        wr.put(word, 32);
    }
    let h = height as usize;
    let mut io = Enc::new(wr);
    match kind {
        QuicImageType::Rgb32 => io = encode_rows::<3, Bgrx>(&FAMILY_8, w, h, rows, io),
        QuicImageType::Rgb24 => io = encode_rows::<3, Bgr>(&FAMILY_8, w, h, rows, io),
        QuicImageType::Rgb16 => io = encode_rows::<3, X1r5g5b5>(&FAMILY_5, w, h, rows, io),
        QuicImageType::Gray => io = encode_rows::<1, Gray8>(&FAMILY_8, w, h, rows, io),
        QuicImageType::Rgba => {
            let mut rgb = Engine::<3>::new(&FAMILY_8, w);
            let mut alpha = Engine::<1>::new(&FAMILY_8, w);
            for y in 0..h {
                io.prev = if y == 0 { &[] } else { rows(y - 1) };
                io.cur = rows(y);
                io.w.reserve(MAX_ROW_BYTES_PER_PIXEL * w + 16);
                let Ok(next) = rgb.code_row::<Bgrx, _>(io);
                let Ok(next) = alpha.code_row::<Alpha, _>(next);
                io = next;
            }
        }
    }
    let (mut done, fitted) = io.w.finish();
    if !fitted {
        // Not expected: no row exceeds MAX_ROW_BYTES_PER_PIXEL.
        done.truncate(start);
        *out = done;
        return Err(CodecError::InvalidImage("QUIC output exceeded its bound"));
    }
    *out = done;
    Ok(())
}

/// Output bytes one pixel can take in one row, all channels included: a
/// sample's codeword is at most 26 bits, and a run codes each pixel in at
/// most one bit plus at most 16 bits per run (at most one run per pixel and
/// channel group). RGBA, the worst case: 4 * 26 + 2 * 17 = 138 bits.
const MAX_ROW_BYTES_PER_PIXEL: usize = 18;

/// Codes every row with one engine.
fn encode_rows<'a, const N: usize, L: Layout<N>>(
    fam: &'static tables::Family,
    width: usize,
    height: usize,
    rows: impl Fn(usize) -> &'a [u8],
    mut io: Enc<'a>,
) -> Enc<'a> {
    let mut eng = Engine::<N>::new(fam, width);
    for y in 0..height {
        io.prev = if y == 0 { &[] } else { rows(y - 1) };
        io.cur = rows(y);
        io.w.reserve(MAX_ROW_BYTES_PER_PIXEL * width + 16);
        let Ok(next) = eng.code_row::<L, _>(io);
        io = next;
    }
    io
}

fn read_word(rd: &mut BitReader) -> u32 {
    let w = rd.window();
    rd.skip(32);
    w
}

fn parse_header(rd: &mut BitReader) -> Result<Header, CodecError> {
    if rd.words() == 0 {
        return Err(corrupt("empty stream"));
    }
    let [magic, version, kind, width, height] = std::array::from_fn(|_| read_word(rd));
    if rd.overrun() {
        return Err(corrupt("truncated header"));
    }
    if magic != MAGIC {
        return Err(corrupt("bad magic"));
    }
    if version != VERSION {
        return Err(corrupt("unknown version"));
    }
    let kind = QuicImageType::from_u32(kind).ok_or(corrupt("unknown image type"))?;
    if width == 0 || height == 0 || width > i32::MAX as u32 || height > i32::MAX as u32 {
        return Err(corrupt("invalid size"));
    }
    Ok(Header { kind, width, height })
}

/// Reads the header of a stream without decoding it.
pub fn read_header(stream: &[u8]) -> Result<Header, CodecError> {
    parse_header(&mut BitReader::new(stream))
}

/// Decodes a stream, refusing images of more than `limits.max_pixels`
/// pixels before allocating for them.
///
/// Any input yields an image or an error, never a panic; work and memory are
/// bounded by the limits and the input length. Streams the spice-common
/// decoder rejects are rejected (a truncated stream, a run past the end of a
/// row, a bad header); like it, only whole 32-bit words of `stream` are
/// read, and bytes after the coded image are ignored.
pub fn decode(stream: &[u8], limits: &DecodeLimits) -> Result<DecodedImage, CodecError> {
    let mut rd = BitReader::new(stream);
    let Header { kind, width, height } = parse_header(&mut rd)?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels || pixels > MAX_PIXELS {
        return Err(CodecError::TooLarge {
            codec: CODEC,
            width,
            height,
        });
    }
    // Every sample of row 0 and the first pixel of each later row take at
    // least one bit, and the decoder's look-ahead must stay inside the
    // stream: reject streams too short for the size they claim before
    // allocating for it.
    let min_bits = 160 + (u64::from(width) + u64::from(height) - 1) * kind.channels() + 32;
    if min_bits > rd.words() * 32 {
        return Err(corrupt("stream too short for the image size"));
    }

    let w = width as usize;
    let row_bytes = w * kind.decoded_bytes_per_pixel();
    let mut data = vec![0u8; row_bytes * height as usize];
    match kind {
        QuicImageType::Rgb32 | QuicImageType::Rgb24 => {
            decode_rows::<3, Bgrx>(&FAMILY_8, w, row_bytes, &mut data, rd)?;
        }
        QuicImageType::Rgb16 => decode_rows::<3, Bgrx555>(&FAMILY_5, w, row_bytes, &mut data, rd)?,
        QuicImageType::Gray => decode_rows::<1, Gray8>(&FAMILY_8, w, row_bytes, &mut data, rd)?,
        QuicImageType::Rgba => {
            let mut rgb = Engine::<3>::new(&FAMILY_8, w);
            let mut alpha = Engine::<1>::new(&FAMILY_8, w);
            for y in 0..height as usize {
                let (prev, cur) = rows_mut(&mut data, row_bytes, y);
                let io = rgb.code_row::<Bgrx, _>(Dec { r: rd, prev, cur })?;
                rd = alpha.code_row::<Alpha, _>(io)?.r;
                if rd.overrun() {
                    return Err(corrupt("truncated stream"));
                }
            }
        }
    }
    Ok(DecodedImage {
        kind,
        width,
        height,
        data,
    })
}

/// Row `y - 1` (empty for row 0) and row `y` of `data`.
fn rows_mut(data: &mut [u8], row_bytes: usize, y: usize) -> (&[u8], &mut [u8]) {
    let (before, rest) = data.split_at_mut(y * row_bytes);
    let prev = &before[before.len().saturating_sub(row_bytes)..];
    (prev, &mut rest[..row_bytes])
}

/// Decodes every row with one engine, straight into `data`.
fn decode_rows<const N: usize, L: Layout<N>>(
    fam: &'static tables::Family,
    width: usize,
    row_bytes: usize,
    data: &mut [u8],
    mut rd: BitReader,
) -> Result<(), CodecError> {
    let mut eng = Engine::<N>::new(fam, width);
    for y in 0..data.len() / row_bytes {
        let (prev, cur) = rows_mut(data, row_bytes, y);
        rd = eng.code_row::<L, _>(Dec { r: rd, prev, cur })?.r;
        if rd.overrun() {
            return Err(corrupt("truncated stream"));
        }
    }
    Ok(())
}

/// Fuzz oracle for [`decode`]: must not panic, loop or allocate without bound
/// on any input. A stream that decodes is re-encoded from the decoded pixels
/// and must decode to the same pixels again.
pub fn fuzz_decode(data: &[u8]) {
    let limits = DecodeLimits { max_pixels: 1 << 16 };
    let Ok(img) = decode(data, &limits) else {
        return;
    };
    assert_eq!(img.data.len(), img.stride() * img.height as usize);
    let (stride, native) = to_source_layout(&img);
    let mut again = Vec::new();
    encode(img.kind, img.width, img.height, stride, &native, &mut again).expect("decoded image encodes");
    let back = decode(&again, &limits).expect("re-encoded stream decodes");
    assert_eq!(back, img, "re-encoded stream decodes to the same pixels");
}

/// The pixels of a decoded image in its type's source layout, with the
/// stride: what [`encode`] takes to reproduce the same samples.
pub fn to_source_layout(img: &DecodedImage) -> (usize, Vec<u8>) {
    let bpp = img.kind.source_bytes_per_pixel();
    let mut out = Vec::with_capacity(img.data.len() / img.kind.decoded_bytes_per_pixel() * bpp);
    match img.kind {
        QuicImageType::Gray | QuicImageType::Rgb32 | QuicImageType::Rgba => out.extend_from_slice(&img.data),
        QuicImageType::Rgb24 => {
            for p in img.data.chunks_exact(4) {
                out.extend_from_slice(&p[..3]);
            }
        }
        QuicImageType::Rgb16 => {
            for p in img.data.chunks_exact(4) {
                let v = (u16::from(p[2] >> 3) << 10) | (u16::from(p[1] >> 3) << 5) | u16::from(p[0] >> 3);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    (img.width as usize * bpp, out)
}
