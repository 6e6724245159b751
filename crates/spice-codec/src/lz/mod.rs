//! SPICE LZ: the per-image dictionary coder behind `SPICE_IMAGE_TYPE_LZ_RGB`
//! (101) and `SPICE_IMAGE_TYPE_LZ_PLT` (100).
//!
//! # Stream layout
//!
//! A stream is a 28-byte header of seven big-endian `u32` words, then one or
//! two passes of tokens:
//!
//! | offset | word | value |
//! |---|---|---|
//! | 0 | magic | [`MAGIC`] `0x20205a4c`, the bytes `"  ZL"` |
//! | 4 | version | [`VERSION`] `0x00010001` |
//! | 8 | type | an [`LzImageType`] |
//! | 12 | width | pixels |
//! | 16 | height | rows |
//! | 20 | stride | bytes per row of the *uncompressed* image: `width * 2/3/4` for RGB16/RGB24/RGB32/RGBA/XXXA, `width` for A8, the packed row length for palette types |
//! | 24 | top_down | non-zero when the first row is the top one |
//!
//! The tokens code a sequence of *units* (a pixel's RGB, or one byte: an
//! alpha value, an A8 value or a byte of packed palette indices). Each token
//! starts with a control byte `c`:
//!
//! - `c < 32`: `c + 1` literal units follow (RGB pixels as 3 bytes B, G, R;
//!   RGB16 pixels as 2 bytes, high byte first; byte units as 1 byte);
//! - `c >= 32`: a back-reference. Its length field is `c >> 5`; when that is
//!   7, bytes follow and are added to it until one is not 255. Then one byte
//!   completes the distance with `(c & 31) << 8`; if that byte is 255 and
//!   `c & 31` is 31, two more bytes hold a big-endian distance minus 8191
//!   (a *far* reference). The unit count is the length field plus 0 (RGB24/32),
//!   1 (RGB16) or 2 (byte units); the reference starts `distance + 1` units
//!   back, and may overlap the output (a distance of 0 repeats the last unit).
//!
//! RGBA streams carry a full RGB pass followed by a full alpha pass, each
//! over all `width * height` units; XXXA carries only the alpha pass.
//! The decoders (spice-common `lz_decompress_tmpl.c`, spice-html5 `lz.js`)
//! stop a pass exactly when its last unit is written and, in spice-common,
//! abort if a token overruns the image or bytes remain after the last pass;
//! our encoder never does either.
//!
//! # Clients
//!
//! spice-gtk decodes every type. spice-html5 decodes only RGB32 and RGBA
//! (and XXXA behind JPEG_ALPHA), never LZ_PLT.

mod decode;
mod encode;
mod palette;

pub use decode::decode;
pub use encode::{encode_rgb32, encode_rgba, LzEncoder, DEFAULT_CHAIN_DEPTH, MAX_CHAIN_DEPTH};
pub use palette::{encode_plt8, palettize, Palettized};

use crate::{CodecError, DecodeLimits};

/// The header's magic word (`"  ZL"` on the wire, big endian).
pub const MAGIC: u32 = 0x2020_5a4c;
/// The only stream version the clients accept (1.1).
pub const VERSION: u32 = 0x0001_0001;
/// Length of the stream header in bytes.
pub const HEADER_LEN: usize = 28;
/// Largest `stride * height` the clients accept (`SPICE_MAX_IMAGE_SIZE`).
pub const MAX_IMAGE_BYTES: u64 = 1024 * 1024 * 1024 - 1;

/// Literal runs hold at most this many units.
pub(crate) const MAX_COPY: usize = 32;
/// Largest distance (in units) of a near reference; farther ones take two
/// more bytes.
pub(crate) const MAX_NEAR_DISTANCE: usize = 8191;
/// Largest distance (in units) any reference can reach: 65535 + 8191 + 1.
pub(crate) const MAX_DISTANCE: usize = 65535 + MAX_NEAR_DISTANCE + 1;

const CODEC: &str = "lz";

/// The image types of an LZ stream (`LzImageType` in spice-common).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum LzImageType {
    /// 1 bit palette indices, least significant bit first.
    Plt1Le = 1,
    /// 1 bit palette indices, most significant bit first.
    Plt1Be = 2,
    /// 4 bit palette indices, low nibble first.
    Plt4Le = 3,
    /// 4 bit palette indices, high nibble first.
    Plt4Be = 4,
    /// 8 bit palette indices.
    Plt8 = 5,
    /// 15 bit RGB (x1r5g5b5) pixels.
    Rgb16 = 6,
    /// 24 bit B, G, R pixels.
    Rgb24 = 7,
    /// 32 bit B, G, R, pad pixels; the pad byte is not coded.
    Rgb32 = 8,
    /// 32 bit B, G, R, A pixels: an RGB pass, then an alpha pass.
    Rgba = 9,
    /// The alpha byte of 32 bit pixels alone (used after JPEG for JPEG_ALPHA).
    Xxxa = 10,
    /// 8 bit alpha.
    A8 = 11,
}

impl LzImageType {
    /// The type with wire number `v`, if any.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Plt1Le,
            2 => Self::Plt1Be,
            3 => Self::Plt4Le,
            4 => Self::Plt4Be,
            5 => Self::Plt8,
            6 => Self::Rgb16,
            7 => Self::Rgb24,
            8 => Self::Rgb32,
            9 => Self::Rgba,
            10 => Self::Xxxa,
            11 => Self::A8,
            _ => return None,
        })
    }

    /// Whether the units are packed palette indices.
    pub fn is_palette(self) -> bool {
        matches!(
            self,
            Self::Plt1Le | Self::Plt1Be | Self::Plt4Le | Self::Plt4Be | Self::Plt8
        )
    }

    /// Palette indices per byte (palette types only).
    fn pixels_per_byte(self) -> u32 {
        match self {
            Self::Plt1Le | Self::Plt1Be => 8,
            Self::Plt4Le | Self::Plt4Be => 2,
            _ => 1,
        }
    }

    /// Bytes per pixel of the uncompressed image (RGB and alpha types).
    fn bytes_per_pixel(self) -> u32 {
        match self {
            Self::Rgb16 => 2,
            Self::Rgb24 => 3,
            Self::Rgb32 | Self::Rgba | Self::Xxxa => 4,
            _ => 1,
        }
    }
}

/// The fields of a stream header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the stream codes.
    pub kind: LzImageType,
    /// Width in pixels.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
    /// Bytes per row of the uncompressed image (see the module documentation).
    pub stride: u32,
    /// Whether the first row is the top one.
    pub top_down: bool,
}

impl Header {
    /// Appends the 28 header bytes.
    pub fn write(&self, out: &mut Vec<u8>) {
        for word in [
            MAGIC,
            VERSION,
            self.kind as u32,
            self.width,
            self.height,
            self.stride,
            u32::from(self.top_down),
        ] {
            out.extend_from_slice(&word.to_be_bytes());
        }
    }

    /// Parses and checks a header the way spice-common's `lz_decode_begin`
    /// does (plus: no empty image).
    pub fn parse(stream: &[u8]) -> Result<Self, CodecError> {
        let corrupt = |what| CodecError::Corrupt { codec: CODEC, what };
        let head = stream.get(..HEADER_LEN).ok_or(corrupt("truncated header"))?;
        let word = |i: usize| {
            let b = &head[i * 4..i * 4 + 4];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        };
        if word(0) != MAGIC {
            return Err(corrupt("bad magic"));
        }
        if word(1) != VERSION {
            return Err(corrupt("bad version"));
        }
        let kind = LzImageType::from_u32(word(2)).ok_or(corrupt("bad image type"))?;
        let (width, height, stride) = (word(3), word(4), word(5));
        // spice-common reads these into `int`.
        if width > i32::MAX as u32 || height > i32::MAX as u32 || stride > i32::MAX as u32 {
            return Err(corrupt("negative size"));
        }
        if width == 0 || height == 0 {
            return Err(corrupt("empty image"));
        }
        if kind.is_palette() {
            let ppb = kind.pixels_per_byte();
            let full = width / ppb;
            if stride > full && (width % ppb == 0 || stride - full > 1) {
                return Err(corrupt("palette stride too long"));
            }
            if stride == 0 {
                return Err(corrupt("empty image"));
            }
        } else if u64::from(stride) != u64::from(width) * u64::from(kind.bytes_per_pixel()) {
            return Err(corrupt("stride is not width * bytes per pixel"));
        }
        if u64::from(stride) * u64::from(height) > MAX_IMAGE_BYTES {
            return Err(corrupt("image too large"));
        }
        Ok(Self {
            kind,
            width,
            height,
            stride,
            top_down: word(6) != 0,
        })
    }

    /// Units each pass of the stream codes: `width * height` for RGB and
    /// alpha types, `stride * height` bytes for palette types.
    pub fn units(&self) -> u64 {
        if self.kind.is_palette() {
            u64::from(self.stride) * u64::from(self.height)
        } else {
            u64::from(self.width) * u64::from(self.height)
        }
    }
}

/// A decoded LZ image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedImage {
    /// The stream's header.
    pub header: Header,
    /// Bytes from one row of `data` to the next.
    pub stride: usize,
    /// The rows in stream order (the top one first when `header.top_down`):
    ///
    /// - RGB16, RGB24, RGB32: 32-bit pixels B, G, R, 0 (RGB16 widened the way
    ///   spice-common widens it);
    /// - RGBA: B, G, R, A; XXXA: 0, 0, 0, A;
    /// - A8: one byte per pixel;
    /// - palette types: the packed index bytes, `header.stride` per row (see
    ///   [`DecodedImage::palette_to_rgb32`]).
    pub data: Vec<u8>,
}

impl DecodedImage {
    /// Expands a palette image to 32-bit B, G, R, 0 pixels (`width * 4` bytes
    /// per row), looking each index up in `palette` (`0x00RRGGBB` entries);
    /// an index past the palette's end yields black. `None` for other types.
    pub fn palette_to_rgb32(&self, palette: &[u32]) -> Option<Vec<u8>> {
        let kind = self.header.kind;
        if !kind.is_palette() {
            return None;
        }
        let (w, h) = (self.header.width as usize, self.header.height as usize);
        let mut out = Vec::with_capacity(w * h * 4);
        for row in self.data.chunks_exact(self.stride).take(h) {
            for x in 0..w {
                let index = match kind {
                    LzImageType::Plt8 => row.get(x).copied(),
                    LzImageType::Plt4Be => row.get(x / 2).map(|b| b >> (4 * (1 - x % 2)) & 15),
                    LzImageType::Plt4Le => row.get(x / 2).map(|b| b >> (4 * (x % 2)) & 15),
                    LzImageType::Plt1Be => row.get(x / 8).map(|b| b >> (7 - x % 8) & 1),
                    _ => row.get(x / 8).map(|b| b >> (x % 8) & 1),
                };
                let rgb = index
                    .and_then(|i| palette.get(usize::from(i)))
                    .copied()
                    .unwrap_or(0);
                out.extend_from_slice(&[rgb as u8, (rgb >> 8) as u8, (rgb >> 16) as u8, 0]);
            }
        }
        Some(out)
    }
}

/// Fuzz oracle: decodes arbitrary bytes under small limits; when they decode
/// as RGB32 or RGBA, re-encodes the image and checks that the result decodes
/// to the same pixels. Panics only if that invariant breaks.
pub fn fuzz_decode(data: &[u8]) {
    let limits = DecodeLimits { max_pixels: 1 << 20 };
    let Ok(img) = decode(data, &limits) else {
        return;
    };
    let h = img.header;
    assert_eq!(img.data.len(), img.stride * h.height as usize);
    let image = crate::ImageRef {
        width: h.width,
        height: h.height,
        stride: img.stride,
        data: &img.data,
    };
    let mut out = Vec::new();
    match h.kind {
        LzImageType::Rgb32 => encode_rgb32(&image, &mut out).expect("re-encode"),
        LzImageType::Rgba => encode_rgba(&image, &mut out).expect("re-encode"),
        _ => return,
    }
    let again = decode(&out, &limits).expect("re-decode");
    assert_eq!(again.data, img.data, "round trip changed the pixels");
    assert_eq!(again.header.kind, h.kind);
}

#[cfg(test)]
mod tests;
