//! SPICE GLZ ("global LZ"): LZ whose references may reach into images sent
//! before, `SPICE_IMAGE_TYPE_GLZ_RGB` (102), and the same stream deflated,
//! `SPICE_IMAGE_TYPE_ZLIB_GLZ_RGB` (107).
//!
//! The client keeps a *window* of the GLZ images it decoded (shared by the
//! display channels of a session, cleared when the session connects); a
//! reference names an earlier image by its distance in image ids and a pixel
//! offset into it. The server keeps the mirror of that window, the
//! *dictionary*, in [`GlzEncoder`]: one per client session.
//!
//! # Stream layout
//!
//! A 33-byte header, all words big endian, as spice-gtk's `decode_header`
//! (`decode-glz.c`) reads it:
//!
//! | offset | size | value |
//! |---|---|---|
//! | 0 | 4 | magic [`MAGIC`] (`"  ZL"`, the LZ magic) |
//! | 4 | 4 | version [`VERSION`] (1.1) |
//! | 8 | 1 | image type in the low 4 bits ([`TYPE_RGB32`]), bit 4 set when top-down |
//! | 9 | 4 | width in pixels |
//! | 13 | 4 | height in rows |
//! | 17 | 4 | stride of the uncompressed image, `width * 4` (the client recomputes it) |
//! | 21 | 8 | image id: 0 for the first image after the window was cleared, then +1 per image |
//! | 29 | 4 | window head distance: the client may drop every image older than `id - distance` |
//!
//! then one pass of tokens over the `width * height` pixels in stream order.
//! A control byte `c < 32` is followed by `c + 1` literal pixels of 3 bytes
//! (B, G, R; the client sets the pad byte to 0). Otherwise `c` starts a
//! reference:
//!
//! ```text
//! c = LLL F oooo      length field L (1..7), pixel-offset flag F, offset bits 0-3
//! [L == 7: bytes added to the length until one is not 255]
//! byte                offset bits 4-11
//! F == 0 (offset < 2^12):  byte  = II dddddd        image distance bits 0-5, II more bytes
//!                          II bytes                  image distance bits 6-13, 14-21, 22-29
//! F == 1 (offset < 2^25):  byte  = II G ooooo       offset bits 12-16, G: one more offset byte
//!                          II bytes                  image distance bits 0-7, 8-15, 16-23
//!                          [G: byte]                 offset bits 17-24
//! ```
//!
//! For RGB32 the length is the pixel count (no bias). An image distance of 0
//! is a reference inside the image being decoded, `offset + 1` pixels back
//! (overlapping copies repeat pixels); otherwise the reference is to the
//! image `id - distance`, starting `offset` pixels after its first pixel (in
//! stream order). The pass ends when the last pixel is written; the client
//! reads nothing after it.
//!
//! What the client does *not* check, and our encoder therefore guarantees:
//! a reference into an earlier image stays inside that image (the client
//! only checks that the offset is not past its end), the referenced image is
//! one it still holds (otherwise its decoder waits for it forever), and ids
//! follow one another from 0 without gaps (otherwise it stops freeing old
//! images). [`GlzDecoder`] checks all of it.
//!
//! # zlib-GLZ
//!
//! The `ZLIB_GLZ_RGB` payload is the GLZ stream compressed as a zlib stream
//! (RFC 1950, header and Adler-32 included: the client uses `inflateInit`)
//! preceded, in the image descriptor, by the GLZ stream's size; the client
//! inflates into a buffer of exactly that size. See [`ZlibGlzEncoder`].
//!
//! # Clients
//!
//! spice-gtk decodes both (its DISPLAY_INIT offers a window of 3 to 16
//! million pixels); spice-html5 decodes neither. A server must use GLZ only
//! for clients whose DISPLAY_INIT gave a non-zero `glz_dictionary_window_size`.

mod decode;
mod encode;
mod zlib;

pub use decode::{GlzDecoder, GlzImage};
pub use encode::{GlzEncoder, GlzStats, DEFAULT_MAX_WINDOW_PIXELS, DEFAULT_SEARCH_DEPTH, MAX_SEARCH_DEPTH};
pub use zlib::{decode_zlib_glz, encode_zlib_glz, ZlibGlzEncoder, DEFAULT_ZLIB_LEVEL, MIN_GLZ_SIZE_FOR_ZLIB};

use crate::{CodecError, DecodeLimits};

/// The header's magic word, the LZ one (`"  ZL"` on the wire).
pub const MAGIC: u32 = 0x2020_5a4c;
/// The stream version the client accepts (1.1).
pub const VERSION: u32 = 0x0001_0001;
/// `LZ_IMAGE_TYPE_RGB32`: 32-bit pixels, the pad byte not coded.
pub const TYPE_RGB32: u8 = 8;
/// Length of the stream header in bytes.
pub const HEADER_LEN: usize = 33;
/// Largest window the format can address (`LZ_MAX_WINDOW_SIZE`, pixels):
/// pixel offsets have 25 bits.
pub const MAX_WINDOW_PIXELS: usize = 1 << 25;
/// Largest image distance a reference with a long pixel offset can code.
pub(crate) const MAX_IMAGE_DIST: u64 = (1 << 24) - 1;

/// Literal runs hold at most this many pixels.
pub(crate) const MAX_COPY: usize = 32;
/// Pixel offsets below this take the short form.
pub(crate) const SHORT_OFFSET: usize = 1 << 12;
/// Pixel offsets from here on take one more byte.
pub(crate) const LONG_OFFSET: usize = 1 << 17;

const CODEC: &str = "glz";

/// The fields of a GLZ stream header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlzHeader {
    /// LZ image type (only [`TYPE_RGB32`] is encoded and decoded here).
    pub kind: u8,
    /// Whether the first row is the top one.
    pub top_down: bool,
    /// Width in pixels.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
    /// Bytes per row of the uncompressed image.
    pub stride: u32,
    /// The image's id in the client's window.
    pub id: u64,
    /// How many ids back the client must keep images for this and later streams.
    pub win_head_dist: u32,
}

impl GlzHeader {
    /// Appends the 33 header bytes.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.push((self.kind & 0x0f) | (u8::from(self.top_down) << 4));
        out.extend_from_slice(&self.width.to_be_bytes());
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.stride.to_be_bytes());
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.win_head_dist.to_be_bytes());
    }

    /// Parses a header; checks the magic, the version, the type (RGB32
    /// only), a non-empty size that the client's `int`s hold, and
    /// `stride == width * 4`.
    pub fn parse(stream: &[u8]) -> Result<Self, CodecError> {
        let corrupt = |what| CodecError::Corrupt { codec: CODEC, what };
        let h = stream.get(..HEADER_LEN).ok_or(corrupt("truncated header"))?;
        let u32_at = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        if u32_at(0) != MAGIC {
            return Err(corrupt("bad magic"));
        }
        if u32_at(4) != VERSION {
            return Err(corrupt("bad version"));
        }
        let kind = h[8] & 0x0f;
        if kind != TYPE_RGB32 {
            return Err(corrupt("unsupported image type"));
        }
        if h[8] >> 5 != 0 {
            return Err(corrupt("bad type byte"));
        }
        let header = Self {
            kind,
            top_down: h[8] & 0x10 != 0,
            width: u32_at(9),
            height: u32_at(13),
            stride: u32_at(17),
            id: u64::from_be_bytes(h[21..29].try_into().expect("8 bytes")),
            win_head_dist: u32_at(29),
        };
        if header.width == 0 || header.height == 0 {
            return Err(corrupt("empty image"));
        }
        if u64::from(header.width) * u64::from(header.height) > i32::MAX as u64 {
            return Err(corrupt("image too large"));
        }
        if u64::from(header.stride) != u64::from(header.width) * 4 {
            return Err(corrupt("stride is not width * 4"));
        }
        Ok(header)
    }

    /// Pixels the stream codes.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Where a reference's pixels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// In the image being coded, `distance` (>= 1) pixels back.
    Near(usize),
    /// In the image `image_dist` (>= 1) ids back, `offset` pixels after its start.
    Far {
        /// Id distance.
        image_dist: u64,
        /// Pixel offset in that image.
        offset: usize,
    },
}

impl Source {
    /// The coded pixel offset field and image distance.
    #[inline]
    fn fields(self) -> (usize, u64) {
        match self {
            Self::Near(d) => (d - 1, 0),
            Self::Far { image_dist, offset } => (offset, image_dist),
        }
    }
}

/// Bytes a reference of `len` pixels from `src` takes on the wire.
#[inline]
pub(crate) fn reference_cost(len: usize, src: Source) -> usize {
    let ext = if len >= 7 { 1 + (len - 7) / 255 } else { 0 };
    let (pix, dist) = src.fields();
    let tail = if pix < SHORT_OFFSET {
        match dist {
            0..64 => 0,
            64..16_384 => 1,
            16_384..4_194_304 => 2,
            _ => 3,
        }
    } else {
        let d = match dist {
            0 => 0,
            1..256 => 1,
            256..65_536 => 2,
            _ => 3,
        };
        d + usize::from(pix >= LONG_OFFSET)
    };
    3 + ext + tail
}

/// Appends a reference token of `len` (>= 1) pixels from `src`.
pub(crate) fn put_reference(len: usize, src: Source, out: &mut Vec<u8>) {
    let (pix, dist) = src.fields();
    debug_assert!(len >= 1 && pix < MAX_WINDOW_PIXELS && dist <= MAX_IMAGE_DIST);
    let short = pix < SHORT_OFFSET;
    let head = len.min(7) as u8;
    out.push((head << 5) | if short { 0 } else { 16 } | (pix & 15) as u8);
    if len >= 7 {
        let mut rest = len - 7;
        while rest >= 255 {
            out.push(255);
            rest -= 255;
        }
        out.push(rest as u8);
    }
    out.push((pix >> 4) as u8);
    if short {
        let (flag, extra) = match dist {
            0..64 => (0u8, 0),
            64..16_384 => (1, 1),
            16_384..4_194_304 => (2, 2),
            _ => (3, 3),
        };
        out.push((flag << 6) | (dist & 63) as u8);
        for k in 0..extra {
            out.push((dist >> (6 + 8 * k)) as u8);
        }
    } else {
        let long = pix >= LONG_OFFSET;
        let (flag, extra) = match dist {
            0 => (0u8, 0),
            1..256 => (1, 1),
            256..65_536 => (2, 2),
            _ => (3, 3),
        };
        out.push((flag << 6) | if long { 32 } else { 0 } | ((pix >> 12) & 31) as u8);
        for k in 0..extra {
            out.push((dist >> (8 * k)) as u8);
        }
        if long {
            out.push((pix >> 17) as u8);
        }
    }
}

/// Fuzz oracle. The input is a sequence of streams, each preceded by its
/// length (2 bytes, big endian), decoded in order by one [`GlzDecoder`]
/// under small limits (so later streams may refer to earlier ones). Every
/// image that decodes is re-encoded by one [`GlzEncoder`] (whose dictionary
/// thus sees the same sequence) and the result decoded by a second decoder:
/// the pixels must come back. The same holds through zlib-GLZ. Panics only
/// if that invariant breaks.
pub fn fuzz_decode(data: &[u8]) {
    let limits = DecodeLimits { max_pixels: 1 << 16 };
    let mut decoder = GlzDecoder::new(limits, 1 << 18);
    let mut encoder = GlzEncoder::with_limits(1 << 17, 1 << 17);
    let mut check = GlzDecoder::new(limits, 1 << 18);
    let mut zlib = ZlibGlzEncoder::new();
    let mut rest = data;
    while let [a, b, ref tail @ ..] = *rest {
        let n = usize::from(u16::from_be_bytes([a, b])).min(tail.len());
        let (stream, next) = tail.split_at(n);
        rest = next;
        let Ok(img) = decoder.decode(stream) else {
            continue;
        };
        let h = img.header;
        assert_eq!(img.data.len() as u64, h.pixels() * 4);
        let image = crate::ImageRef {
            width: h.width,
            height: h.height,
            stride: h.width as usize * 4,
            data: &img.data,
        };
        let mut out = Vec::new();
        if encoder.encode_rgb32(&image, &mut out).is_err() {
            // Only an image larger than the encoder's window is refused.
            assert!(h.pixels() > encoder.window_pixels() as u64);
            continue;
        }
        let mut deflated = Vec::new();
        let again = if zlib.wrap(&out, &mut deflated) {
            let inflated = decode_zlib_glz(&deflated, out.len()).expect("inflate");
            assert_eq!(inflated, out);
            check.decode(&inflated)
        } else {
            check.decode(&out)
        }
        .expect("re-decode");
        assert!(again.data == img.data, "round trip changed the pixels");
    }
}

#[cfg(test)]
mod tests;
