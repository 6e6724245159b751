//! Choosing and running the image encoder for each image a client is sent.
//!
//! The setting ([`ImageCompression`], the server's or the client's preferred
//! one) says what the user wants; the client's capabilities say what it can
//! decode (spice-html5 reads neither GLZ nor LZ4; GLZ needs a dictionary
//! window from DISPLAY_INIT); the content decides between QUIC (photographic)
//! and the dictionary coders. Anything that does not come out smaller than the
//! raw pixels goes raw, and images too small to gain are never compressed.
//!
//! GLZ is the exception to "raw when it does not shrink": its dictionary
//! mirrors the client's window, so every image it encodes must reach the
//! client, in order. It is used only for images of at least
//! [`MIN_GLZ_PIXELS`] (for which a GLZ stream is always smaller than the raw
//! pixels) that fit the dictionary's window; anything else goes LZ.

use spice_codec::glz::GlzEncoder;
use spice_codec::lz::LzEncoder;
use spice_codec::lz4::Lz4Encoder;
use spice_codec::quic;
use spice_codec::ImageRef;
use spice_proto::msg::display::ImageData;

/// Image compression setting (`SpiceImageCompression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ImageCompression {
    /// Uncompressed bitmaps.
    Off,
    /// QUIC for photographic images, GLZ otherwise (QEMU's default).
    #[default]
    AutoGlz,
    /// QUIC for photographic images, LZ otherwise.
    AutoLz,
    /// Always QUIC.
    Quic,
    /// Always GLZ.
    Glz,
    /// Always LZ.
    Lz,
    /// Always LZ4 (when the client decodes it).
    Lz4,
}

impl ImageCompression {
    /// From the wire/ABI value (`SPICE_IMAGE_COMPRESSION_*`): 1 = off … 7 = LZ4.
    pub fn from_wire(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Off,
            2 => Self::AutoGlz,
            3 => Self::AutoLz,
            4 => Self::Quic,
            5 => Self::Glz,
            6 => Self::Lz,
            7 => Self::Lz4,
            _ => return None,
        })
    }

    /// The wire/ABI value.
    pub fn to_wire(self) -> u8 {
        match self {
            Self::Off => 1,
            Self::AutoGlz => 2,
            Self::AutoLz => 3,
            Self::Quic => 4,
            Self::Glz => 5,
            Self::Lz => 6,
            Self::Lz4 => 7,
        }
    }
}

/// `MIN_SIZE_TO_COMPRESS` of the C server: smaller images go raw.
const MIN_SIZE_TO_COMPRESS: usize = 54;

/// What the client can decode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ClientDecoders {
    /// `SPICE_DISPLAY_CAP_LZ4_COMPRESSION`.
    pub(crate) lz4: bool,
    /// GLZ dictionary window from DISPLAY_INIT, in pixels (0 = no GLZ).
    pub(crate) glz_window: u32,
}

/// The encoding chosen for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Raw,
    Lz,
    Lz4,
    Quic,
    Glz,
}

/// Smallest image sent as GLZ: from here on a GLZ stream (33-byte header,
/// at most 3 bytes per pixel plus a control byte per 32) is always smaller
/// than the raw pixels, so it never needs the raw fallback it cannot have.
const MIN_GLZ_PIXELS: u64 = 64;

/// `MIN_DIMENSION_TO_QUIC` of the C server: narrower images do not use QUIC.
const MIN_QUIC_SIDE: u32 = 3;

/// Whether packed xRGB `pixels` look photographic (many small colour steps
/// between neighbours, few flat runs or hard edges): QUIC's strength, while
/// the dictionary coders win on text and UI. Samples a bounded grid of
/// horizontal neighbour pairs, so the cost does not grow with the image.
pub(crate) fn looks_photographic(pixels: &[u8], width: u32, height: u32) -> bool {
    if width < 2 || height == 0 {
        return false;
    }
    let (w, h) = (width as usize, height as usize);
    let rows = h.min(32);
    let cols = (w - 1).min(64);
    let (mut flat, mut smooth, mut sharp) = (0u32, 0u32, 0u32);
    for r in 0..rows {
        let y = r * h / rows;
        for c in 0..cols {
            let x = c * (w - 1) / cols;
            let i = (y * w + x) * 4;
            let (Some(a), Some(b)) = (pixels.get(i..i + 3), pixels.get(i + 4..i + 7)) else {
                continue;
            };
            let step = a.iter().zip(b).map(|(p, q)| p.abs_diff(*q)).max().unwrap_or(0);
            match step {
                0 => flat += 1,
                1..=24 => smooth += 1,
                _ => sharp += 1,
            }
        }
    }
    let total = flat + smooth + sharp;
    total > 0 && smooth * 2 > total && sharp * 4 < total
}

/// Picks the encoding for a `width × height` image of packed xRGB `pixels` under `setting`.
pub(crate) fn choose(
    setting: ImageCompression,
    client: ClientDecoders,
    width: u32,
    height: u32,
    pixels: &[u8],
) -> Encoding {
    if (width as usize) * (height as usize) * 4 < MIN_SIZE_TO_COMPRESS {
        return Encoding::Raw;
    }
    let quic_fits = width >= MIN_QUIC_SIDE && height >= MIN_QUIC_SIDE;
    match setting {
        ImageCompression::Off => Encoding::Raw,
        ImageCompression::Quic if quic_fits => Encoding::Quic,
        ImageCompression::Quic => Encoding::Raw,
        ImageCompression::Lz4 if client.lz4 => Encoding::Lz4,
        ImageCompression::AutoGlz | ImageCompression::AutoLz
            if quic_fits && looks_photographic(pixels, width, height) =>
        {
            Encoding::Quic
        }
        // GLZ for clients that keep a window (spice-gtk); spice-html5 offers none.
        ImageCompression::Glz | ImageCompression::AutoGlz
            if client.glz_window > 0 && u64::from(width) * u64::from(height) >= MIN_GLZ_PIXELS =>
        {
            Encoding::Glz
        }
        // LZ: the lossless coder every client reads.
        ImageCompression::Lz4
        | ImageCompression::Lz
        | ImageCompression::Glz
        | ImageCompression::AutoGlz
        | ImageCompression::AutoLz => Encoding::Lz,
    }
}

/// One client's encoders and scratch space, reused from image to image.
#[derive(Default)]
pub(crate) struct Encoders {
    lz: Option<LzEncoder>,
    lz4: Option<Lz4Encoder>,
    /// The GLZ dictionary: the mirror of the client's window, created on
    /// first use with the window the client offered.
    glz: Option<GlzEncoder>,
    glz_window: u32,
    out: Vec<u8>,
}

impl std::fmt::Debug for Encoders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoders")
            .field("scratch", &self.out.capacity())
            .finish_non_exhaustive()
    }
}

impl Encoders {
    /// Sets the GLZ window the client offered in DISPLAY_INIT (pixels; 0 =
    /// none) and starts an empty dictionary: the client's window is empty
    /// when its session connects, and image ids start again from 0.
    pub(crate) fn set_glz_window(&mut self, window: u32) {
        self.glz_window = window;
        self.glz = None;
    }

    /// Encodes packed xRGB `pixels` (`width * 4` bytes per row) as `encoding`,
    /// falling back to raw when that fails or does not shrink the image.
    pub(crate) fn encode<'a>(
        &'a mut self,
        encoding: Encoding,
        width: u32,
        height: u32,
        pixels: &'a [u8],
    ) -> ImageData<'a> {
        let raw = ImageData::Bitmap {
            stride: width * 4,
            data: pixels,
        };
        let image = ImageRef {
            width,
            height,
            stride: width as usize * 4,
            data: pixels,
        };
        self.out.clear();
        let mut encoding = encoding;
        if encoding == Encoding::Glz {
            let window = self.glz_window;
            let glz = self.glz.get_or_insert_with(|| GlzEncoder::new(window));
            if glz.fits(width, height) {
                match glz.encode_rgb32(&image, &mut self.out) {
                    // Sent whatever its size (see the module documentation).
                    Ok(_) => return ImageData::GlzRgb(&self.out),
                    Err(e) => tracing::debug!(error = %e, "GLZ failed; sending LZ"),
                }
                self.out.clear();
            }
            encoding = Encoding::Lz;
        }
        let result = match encoding {
            Encoding::Raw => return raw,
            Encoding::Lz => self
                .lz
                .get_or_insert_with(LzEncoder::new)
                .encode_rgb32(&image, &mut self.out),
            Encoding::Lz4 => self.lz4.get_or_insert_with(Lz4Encoder::new).encode(
                &image,
                spice_codec::lz4::FMT_32BIT,
                &mut self.out,
            ),
            Encoding::Quic => quic::encode_rgb32(&image, &mut self.out),
            Encoding::Glz => unreachable!("GLZ is handled above"),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, ?encoding, "encoder failed; sending raw");
            return raw;
        }
        if self.out.len() >= pixels.len() {
            return raw;
        }
        match encoding {
            Encoding::Lz => ImageData::LzRgb(&self.out),
            Encoding::Lz4 => ImageData::Lz4(&self.out),
            Encoding::Quic => ImageData::Quic(&self.out),
            Encoding::Raw | Encoding::Glz => raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth gradient with a little noise: photo-like.
    fn photo(w: u32, h: u32) -> Vec<u8> {
        let mut seed = 1u32;
        let mut out = Vec::new();
        for y in 0..h {
            for x in 0..w {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                let n = (seed >> 29) as u8;
                out.extend([
                    ((x * 2) as u8).wrapping_add(n),
                    ((y * 3) as u8).wrapping_add(n),
                    (x + y) as u8,
                    0,
                ]);
            }
        }
        out
    }

    /// Black "text" strokes on white: flat runs and hard edges.
    fn text(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let ink = (x % 7 < 2 && y % 11 < 8) || (y % 11 == 3 && x % 13 < 9);
                out.extend(if ink { [0, 0, 0, 0] } else { [255, 255, 255, 0] });
            }
        }
        out
    }

    #[test]
    fn tiny_images_and_off_go_raw() {
        let any = ClientDecoders::default();
        let p = photo(100, 100);
        assert_eq!(choose(ImageCompression::AutoGlz, any, 3, 4, &p), Encoding::Raw);
        assert_eq!(choose(ImageCompression::Off, any, 100, 100, &p), Encoding::Raw);
    }

    #[test]
    fn auto_uses_quic_for_photos_and_lz_for_text() {
        let any = ClientDecoders::default();
        assert!(looks_photographic(&photo(120, 80), 120, 80));
        assert!(!looks_photographic(&text(120, 80), 120, 80));
        assert!(!looks_photographic(&vec![9; 120 * 80 * 4], 120, 80));
        assert_eq!(
            choose(ImageCompression::AutoGlz, any, 120, 80, &photo(120, 80)),
            Encoding::Quic
        );
        assert_eq!(
            choose(ImageCompression::AutoLz, any, 120, 80, &text(120, 80)),
            Encoding::Lz
        );
        assert_eq!(
            choose(ImageCompression::Quic, any, 2, 80, &photo(2, 80)),
            Encoding::Raw
        );
    }

    #[test]
    fn lz4_only_for_clients_that_decode_it() {
        let html5 = ClientDecoders::default();
        let gtk = ClientDecoders {
            lz4: true,
            glz_window: 1 << 20,
        };
        let t = text(64, 64);
        assert_eq!(choose(ImageCompression::Lz4, html5, 64, 64, &t), Encoding::Lz);
        assert_eq!(choose(ImageCompression::Lz4, gtk, 64, 64, &t), Encoding::Lz4);
    }

    #[test]
    fn incompressible_content_goes_raw_and_compressible_shrinks() {
        let mut enc = Encoders::default();
        let mut seed = 7u32;
        let noise: Vec<u8> = (0..64 * 64 * 4)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        // LZ4 keeps all four bytes, so noise grows: it goes raw.
        assert!(matches!(
            enc.encode(Encoding::Lz4, 64, 64, &noise),
            ImageData::Bitmap { .. }
        ));
        let flat = vec![0x40u8; 64 * 64 * 4];
        match enc.encode(Encoding::Lz, 64, 64, &flat) {
            ImageData::LzRgb(data) => assert!(data.len() < flat.len() / 10),
            other => panic!("expected LZ, got {other:?}"),
        }
    }

    #[test]
    fn glz_only_for_clients_with_a_window_and_images_big_enough() {
        let html5 = ClientDecoders::default();
        let gtk = ClientDecoders {
            lz4: true,
            glz_window: 3 << 20,
        };
        let t = text(64, 64);
        for setting in [ImageCompression::AutoGlz, ImageCompression::Glz] {
            assert_eq!(choose(setting, gtk, 64, 64, &t), Encoding::Glz);
            assert_eq!(choose(setting, html5, 64, 64, &t), Encoding::Lz);
            assert_eq!(choose(setting, gtk, 9, 7, &t), Encoding::Lz);
        }
        assert_eq!(choose(ImageCompression::AutoLz, gtk, 64, 64, &t), Encoding::Lz);
        // Photographic content still goes QUIC in auto mode, not with `glz`.
        let p = photo(120, 80);
        assert_eq!(
            choose(ImageCompression::AutoGlz, gtk, 120, 80, &p),
            Encoding::Quic
        );
        assert_eq!(choose(ImageCompression::Glz, gtk, 120, 80, &p), Encoding::Glz);
    }

    #[test]
    fn glz_images_refer_to_earlier_ones_and_fall_back_to_lz_when_too_big() {
        use spice_codec::glz::GlzDecoder;
        use spice_codec::DecodeLimits;
        let mut enc = Encoders::default();
        enc.set_glz_window(64 * 64 * 3);
        let mut client = GlzDecoder::new(DecodeLimits::default(), u64::MAX);
        let t = text(64, 64);
        let mut sizes = Vec::new();
        for _ in 0..3 {
            match enc.encode(Encoding::Glz, 64, 64, &t) {
                ImageData::GlzRgb(data) => {
                    sizes.push(data.len());
                    let img = client.decode(data).unwrap();
                    assert!(img.data == t);
                }
                other => panic!("expected GLZ, got {other:?}"),
            }
        }
        // The repeats are one reference each (33 header bytes, 20 for the
        // reference, most of them the length of 4096).
        assert!(sizes[1] < 60 && sizes[2] < 60, "{sizes:?}");
        // Larger than the window: LZ, and the dictionary carries on.
        let big = text(128, 128);
        assert!(matches!(
            enc.encode(Encoding::Glz, 128, 128, &big),
            ImageData::LzRgb(_)
        ));
        match enc.encode(Encoding::Glz, 64, 64, &t) {
            ImageData::GlzRgb(data) => assert!(client.decode(data).unwrap().data == t),
            other => panic!("expected GLZ, got {other:?}"),
        }
        // A new DISPLAY_INIT starts a new dictionary (ids from 0).
        enc.set_glz_window(1 << 20);
        let mut client = GlzDecoder::new(DecodeLimits::default(), u64::MAX);
        match enc.encode(Encoding::Glz, 64, 64, &t) {
            ImageData::GlzRgb(data) => assert!(client.decode(data).unwrap().data == t),
            other => panic!("expected GLZ, got {other:?}"),
        }
    }

    #[test]
    fn wire_values_round_trip() {
        for v in 1..=7 {
            assert_eq!(
                ImageCompression::from_wire(v).map(ImageCompression::to_wire),
                Some(v)
            );
        }
        assert_eq!(ImageCompression::from_wire(0), None);
        assert_eq!(ImageCompression::from_wire(8), None);
    }
}
