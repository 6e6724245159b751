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
//! `MIN_GLZ_PIXELS` (for which a GLZ stream is always smaller than the raw
//! pixels) that fit the dictionary's window; anything else goes LZ.
//!
//! # WAN codecs
//!
//! Two more codecs trade server CPU (and, for JPEG, exactness) for bytes, as
//! the C server's `jpeg_compression` and `zlib_glz_compression` settings do
//! ([`WanCompression`]; resolved per client into `WanCodecs`):
//!
//! - **JPEG** replaces QUIC: an image the policy would send as QUIC (a
//!   photographic one in the auto modes, any with the `quic` setting) goes as
//!   JPEG when JPEG is on for the client and the caller allows a lossy copy of
//!   that image. Everything else stays lossless.
//! - **zlib-GLZ** deflates the GLZ stream of an image the policy sends as GLZ
//!   (so only for clients with a GLZ window: spice-gtk, not spice-html5,
//!   which decodes neither); when deflate does not shrink the stream, the
//!   plain GLZ stream is sent (the dictionary has the image either way).

use spice_codec::glz::{GlzEncoder, ZlibGlzEncoder};
use spice_codec::jpeg;
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

/// When to use one of the codecs meant for slow links, JPEG or zlib-GLZ
/// (`spice_wan_compression_t`; QEMU's `jpeg-wan-compression` and
/// `zlib-glz-wan-compression`).
///
/// The C server reads the setting once, when a display channel connects;
/// here a change applies from the next image on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WanCompression {
    /// Only for clients on a low-bandwidth link, as measured by the main
    /// channel when the client connects (the default, as in the C server).
    ///
    /// The link is taken as fast until a measurement says otherwise, so a
    /// client whose link was not (or not yet) measured gets neither codec.
    #[default]
    Auto,
    /// For every client that can take it.
    Always,
    /// Never.
    Never,
}

impl WanCompression {
    /// From the ABI value (`SPICE_WAN_COMPRESSION_*`): 1 = auto, 2 = always,
    /// 3 = never; 0 (INVALID) and anything else is `None`.
    pub fn from_wire(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Auto,
            2 => Self::Always,
            3 => Self::Never,
            _ => return None,
        })
    }

    /// The ABI value.
    pub fn to_wire(self) -> u8 {
        match self {
            Self::Auto => 1,
            Self::Always => 2,
            Self::Never => 3,
        }
    }

    /// Whether the codec is on for a client whose link is (`true`) or is not
    /// known to be low-bandwidth.
    pub(crate) fn enabled(self, low_bandwidth: bool) -> bool {
        match self {
            Self::Auto => low_bandwidth,
            Self::Always => true,
            Self::Never => false,
        }
    }
}

/// The WAN codecs on for one client (the C server's `enable_jpeg` and
/// `enable_zlib_glz_wrap`), from the settings and its link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WanCodecs {
    /// JPEG instead of QUIC. A caller that needs an image's exact pixels on
    /// the client (one it will cache as lossless, or the source of a later
    /// operation) clears this for that image: a JPEG image must never be
    /// cached or reused as lossless.
    pub(crate) jpeg: bool,
    /// zlib around GLZ.
    pub(crate) zlib_glz: bool,
}

impl WanCodecs {
    /// Resolves the settings for a client; `low_bandwidth` is what the main
    /// channel measured (false when unknown).
    pub(crate) fn resolve(jpeg: WanCompression, zlib_glz: WanCompression, low_bandwidth: bool) -> Self {
        Self {
            jpeg: jpeg.enabled(low_bandwidth),
            zlib_glz: zlib_glz.enabled(low_bandwidth),
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
    /// Lossy: see [`WanCodecs::jpeg`].
    Jpeg,
    /// GLZ, deflated when that shrinks it.
    ZlibGlz,
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

/// Images from this size on that the sample of [`looks_photographic`] calls
/// non-photographic get a second opinion from [`quic_wins_trial`]: a whole
/// desktop mixes UI and wallpaper, and sending it with the wrong coder costs
/// a quarter more bytes on the first picture of every connection.
const TRIAL_MIN_PIXELS: u64 = 256 * 1024;

/// Rows of each band [`quic_wins_trial`] encodes, and how many bands.
const TRIAL_BAND_ROWS: usize = 16;
const TRIAL_BANDS: usize = 3;

/// Whether QUIC codes a few bands spread over the image clearly smaller than
/// LZ does (GLZ, on a single image, codes about as LZ). Costs encoding
/// `TRIAL_BANDS * TRIAL_BAND_ROWS` rows twice.
fn quic_wins_trial(pixels: &[u8], width: u32, height: u32) -> bool {
    let (w, h) = (width as usize, height as usize);
    if h < TRIAL_BAND_ROWS * TRIAL_BANDS || pixels.len() < w * h * 4 {
        return false;
    }
    let mut lz = LzEncoder::new();
    let mut out = Vec::new();
    let (mut quic_bytes, mut lz_bytes) = (0usize, 0usize);
    for band in 0..TRIAL_BANDS {
        // Band centres at 1/6, 3/6 and 5/6 of the height.
        let centre = h * (2 * band + 1) / (2 * TRIAL_BANDS);
        let top = centre
            .saturating_sub(TRIAL_BAND_ROWS / 2)
            .min(h - TRIAL_BAND_ROWS);
        let rows = &pixels[top * w * 4..(top + TRIAL_BAND_ROWS) * w * 4];
        let image = ImageRef {
            width,
            height: TRIAL_BAND_ROWS as u32,
            stride: w * 4,
            data: rows,
        };
        out.clear();
        if quic::encode_rgb32(&image, &mut out).is_err() {
            return false;
        }
        quic_bytes += out.len();
        out.clear();
        if lz.encode_rgb32(&image, &mut out).is_err() {
            return false;
        }
        lz_bytes += out.len();
    }
    quic_bytes * 10 < lz_bytes * 9
}

/// Picks a lossless encoding for a `width × height` image of packed xRGB
/// `pixels` under `setting`: [`choose_wan`] with no WAN codec.
#[cfg(test)]
pub(crate) fn choose(
    setting: ImageCompression,
    client: ClientDecoders,
    width: u32,
    height: u32,
    pixels: &[u8],
) -> Encoding {
    choose_wan(setting, client, WanCodecs::default(), width, height, pixels)
}

/// Picks the encoding for a `width × height` image of packed xRGB `pixels`
/// under `setting`, with the WAN codecs `wan` on for this client and image:
/// JPEG where QUIC would go, zlib-GLZ where GLZ would go.
pub(crate) fn choose_wan(
    setting: ImageCompression,
    client: ClientDecoders,
    wan: WanCodecs,
    width: u32,
    height: u32,
    pixels: &[u8],
) -> Encoding {
    match choose_lossless(setting, client, width, height, pixels) {
        Encoding::Quic if wan.jpeg => Encoding::Jpeg,
        Encoding::Glz if wan.zlib_glz => Encoding::ZlibGlz,
        other => other,
    }
}

fn choose_lossless(
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
            if quic_fits
                && (looks_photographic(pixels, width, height)
                    || (u64::from(width) * u64::from(height) >= TRIAL_MIN_PIXELS
                        && quic_wins_trial(pixels, width, height))) =>
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
    /// The id of the dictionary's first image.
    glz_first_id: u64,
    zlib: Option<ZlibGlzEncoder>,
    /// The JPEG encoder the server is configured with
    /// ([`crate::Config::jpeg_encoder`]), for images and stream frames.
    pub(crate) jpeg: jpeg::JpegEncoder,
    out: Vec<u8>,
    /// The deflated GLZ stream, while `out` holds the GLZ stream.
    zlib_out: Vec<u8>,
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
        self.glz_first_id = 0;
    }

    /// As [`Self::set_glz_window`] for a client that came by seamless
    /// migration: its window holds the source's images up to
    /// `last_image_id`, so this dictionary numbers its own after them.
    pub(crate) fn continue_glz(&mut self, window: u32, last_image_id: u64) {
        self.set_glz_window(window);
        self.glz_first_id = last_image_id.saturating_add(1);
    }

    /// The GLZ window in force (pixels; 0 = none), and the id of the last
    /// GLZ image sent (0 before the first): what a migration destination
    /// needs to go on numbering after it.
    pub(crate) fn glz_state(&self) -> (u32, u64) {
        let next = self.glz.as_ref().map_or(self.glz_first_id, GlzEncoder::next_id);
        let last = next.saturating_sub(1);
        (self.glz_window, last)
    }

    /// Encodes packed xRGB `pixels` (`width * 4` bytes per row) as `encoding`,
    /// falling back to raw when that fails or does not shrink the image
    /// (JPEG included, as in the C server), and from GLZ to LZ for images
    /// the window cannot hold. zlib-GLZ sends the plain GLZ stream when
    /// deflate does not shrink it.
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
        if matches!(encoding, Encoding::Glz | Encoding::ZlibGlz) {
            let (window, first) = (self.glz_window, self.glz_first_id);
            let glz = self
                .glz
                .get_or_insert_with(|| GlzEncoder::new(window).starting_at(first));
            if glz.fits(width, height) {
                match glz.encode_rgb32(&image, &mut self.out) {
                    // Sent whatever its size (see the module documentation).
                    Ok(_) if encoding == Encoding::ZlibGlz => return self.wrap_glz(),
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
            Encoding::Jpeg => self
                .jpeg
                .encode(&image, jpeg::DEFAULT_QUALITY, &mut self.out)
                .map(drop),
            Encoding::Glz | Encoding::ZlibGlz => unreachable!("GLZ is handled above"),
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
            Encoding::Jpeg => ImageData::Jpeg(&self.out),
            Encoding::Raw | Encoding::Glz | Encoding::ZlibGlz => raw,
        }
    }

    /// The GLZ stream in `out` as ZLIB_GLZ_RGB when deflate shrinks it,
    /// else as GLZ_RGB.
    fn wrap_glz(&mut self) -> ImageData<'_> {
        self.zlib_out.clear();
        let zlib = self.zlib.get_or_insert_with(ZlibGlzEncoder::new);
        match u32::try_from(self.out.len()) {
            Ok(glz_size) if zlib.wrap(&self.out, &mut self.zlib_out) => ImageData::ZlibGlzRgb {
                glz_size,
                data: &self.zlib_out,
            },
            _ => {
                tracing::debug!(
                    glz = self.out.len(),
                    "deflate does not shrink the GLZ stream; sending GLZ"
                );
                ImageData::GlzRgb(&self.out)
            }
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

    /// `len` bytes of xorshift32 noise from `seed`: incompressible.
    fn noise(len: usize, mut seed: u32) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect()
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

    /// A desktop: a flat panel over the left half and a noisy photo-like
    /// wallpaper on the right. Half the sampled neighbour pairs are flat, so
    /// the sample alone calls it non-photographic; QUIC codes it far smaller.
    fn desktop(w: u32, h: u32) -> Vec<u8> {
        let wallpaper = photo(w, h);
        let mut out = wallpaper.clone();
        for y in 0..h as usize {
            for x in 0..w as usize / 2 {
                out[(y * w as usize + x) * 4..][..4].copy_from_slice(&[200, 190, 180, 0]);
            }
        }
        out
    }

    #[test]
    fn large_images_the_sample_calls_ui_get_a_trial_encoding() {
        let any = ClientDecoders::default();
        let (w, h) = (640, 480);
        let d = desktop(w, h);
        assert!(!looks_photographic(&d, w, h));
        assert!(quic_wins_trial(&d, w, h));
        assert_eq!(choose(ImageCompression::AutoLz, any, w, h, &d), Encoding::Quic);
        // The trial is what decides: the same content below the size goes LZ.
        let small = desktop(320, 240);
        assert_eq!(
            choose(ImageCompression::AutoLz, any, 320, 240, &small),
            Encoding::Lz
        );
        // Text stays with the dictionary coders, trial or not.
        let t = text(w, h);
        assert!(!quic_wins_trial(&t, w, h));
        assert_eq!(choose(ImageCompression::AutoLz, any, w, h, &t), Encoding::Lz);
        // Non-auto settings never run it.
        assert_eq!(choose(ImageCompression::Lz, any, w, h, &d), Encoding::Lz);
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
        let noise = noise(64 * 64 * 4, 7);
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

    /// A client with every decoder and the WAN codecs in `wan`.
    fn gtk() -> ClientDecoders {
        ClientDecoders {
            lz4: true,
            glz_window: 3 << 20,
        }
    }

    const BOTH: WanCodecs = WanCodecs {
        jpeg: true,
        zlib_glz: true,
    };

    #[test]
    fn wan_settings_resolve_like_the_c_server() {
        use WanCompression::*;
        for low in [false, true] {
            let r = |j, z| WanCodecs::resolve(j, z, low);
            assert_eq!(
                r(Always, Never),
                WanCodecs {
                    jpeg: true,
                    zlib_glz: false
                }
            );
            assert_eq!(
                r(Never, Always),
                WanCodecs {
                    jpeg: false,
                    zlib_glz: true
                }
            );
            assert_eq!(r(Never, Never), WanCodecs::default());
            // Auto follows the link; an unmeasured link counts as fast.
            assert_eq!(
                r(Auto, Auto),
                WanCodecs {
                    jpeg: low,
                    zlib_glz: low
                }
            );
        }
        assert_eq!(WanCompression::default(), Auto);
        for v in 1..=3 {
            assert_eq!(WanCompression::from_wire(v).map(WanCompression::to_wire), Some(v));
        }
        assert_eq!(WanCompression::from_wire(0), None);
        assert_eq!(WanCompression::from_wire(4), None);
    }

    #[test]
    fn jpeg_replaces_quic_only_for_photographic_images_when_enabled() {
        let p = photo(120, 80);
        let t = text(120, 80);
        let jpeg_only = WanCodecs {
            jpeg: true,
            zlib_glz: false,
        };
        for client in [ClientDecoders::default(), gtk()] {
            for setting in [
                ImageCompression::AutoGlz,
                ImageCompression::AutoLz,
                ImageCompression::Quic,
            ] {
                assert_eq!(
                    choose_wan(setting, client, jpeg_only, 120, 80, &p),
                    Encoding::Jpeg
                );
                // Off: QUIC stays QUIC.
                assert_eq!(
                    choose_wan(setting, client, WanCodecs::default(), 120, 80, &p),
                    Encoding::Quic
                );
                assert_eq!(choose(setting, client, 120, 80, &p), Encoding::Quic);
            }
            // Text and UI stay on the lossless dictionary coders.
            let lossless = choose_wan(ImageCompression::AutoLz, client, jpeg_only, 120, 80, &t);
            assert_eq!(lossless, Encoding::Lz);
            // Settings that never pick QUIC never pick JPEG.
            for setting in [
                ImageCompression::Off,
                ImageCompression::Lz,
                ImageCompression::Lz4,
                ImageCompression::Glz,
            ] {
                assert_ne!(choose_wan(setting, client, BOTH, 120, 80, &p), Encoding::Jpeg);
            }
        }
        // Too small for QUIC is too small for JPEG.
        assert_eq!(
            choose_wan(ImageCompression::Quic, gtk(), BOTH, 2, 80, &photo(2, 80)),
            Encoding::Raw
        );
        assert_eq!(
            choose_wan(ImageCompression::AutoGlz, gtk(), BOTH, 3, 4, &p),
            Encoding::Raw
        );
    }

    #[test]
    fn never_means_no_jpeg_and_no_zlib_even_on_a_slow_link() {
        let wan = WanCodecs::resolve(WanCompression::Never, WanCompression::Never, true);
        let p = photo(120, 80);
        let t = text(64, 64);
        assert_eq!(
            choose_wan(ImageCompression::AutoGlz, gtk(), wan, 120, 80, &p),
            Encoding::Quic
        );
        assert_eq!(
            choose_wan(ImageCompression::AutoGlz, gtk(), wan, 64, 64, &t),
            Encoding::Glz
        );
    }

    #[test]
    fn zlib_glz_only_with_a_glz_window_and_when_enabled() {
        let t = text(64, 64);
        let zlib_only = WanCodecs {
            jpeg: false,
            zlib_glz: true,
        };
        for setting in [ImageCompression::AutoGlz, ImageCompression::Glz] {
            assert_eq!(
                choose_wan(setting, gtk(), zlib_only, 64, 64, &t),
                Encoding::ZlibGlz
            );
            assert_eq!(
                choose_wan(setting, gtk(), WanCodecs::default(), 64, 64, &t),
                Encoding::Glz
            );
            // spice-html5 (no window) gets LZ, with or without zlib-GLZ.
            assert_eq!(
                choose_wan(setting, ClientDecoders::default(), zlib_only, 64, 64, &t),
                Encoding::Lz
            );
        }
        assert_eq!(
            choose_wan(ImageCompression::AutoLz, gtk(), BOTH, 64, 64, &t),
            Encoding::Lz
        );
        assert_eq!(
            choose_wan(ImageCompression::Lz4, gtk(), BOTH, 64, 64, &t),
            Encoding::Lz4
        );
    }

    #[test]
    fn jpeg_images_decode_close_to_the_original_and_fall_back_to_raw() {
        let mut enc = Encoders::default();
        let p = photo(120, 80);
        match enc.encode(Encoding::Jpeg, 120, 80, &p) {
            ImageData::Jpeg(data) => {
                assert!(data.len() < p.len() / 4, "{} bytes", data.len());
                assert_eq!(&data[..2], &[0xff, 0xd8]);
            }
            other => panic!("expected JPEG, got {other:?}"),
        }
        // Noise does not shrink under JPEG either at this size: raw, as in C.
        let noise = noise(8 * 8 * 4, 3);
        assert!(matches!(
            enc.encode(Encoding::Jpeg, 8, 8, &noise),
            ImageData::Bitmap { .. }
        ));
    }

    #[test]
    fn jpeg_images_come_from_the_configured_encoder_at_the_c_servers_quality() {
        fn marker(_: &ImageRef, quality: u8, out: &mut Vec<u8>) -> Result<usize, spice_codec::CodecError> {
            out.extend_from_slice(&[0xff, 0xd8, quality]);
            Ok(3)
        }
        let mut enc = Encoders {
            jpeg: jpeg::JpegEncoder::new("marker", marker),
            ..Encoders::default()
        };
        let p = photo(120, 80);
        match enc.encode(Encoding::Jpeg, 120, 80, &p) {
            ImageData::Jpeg(data) => assert_eq!(data, [0xff, 0xd8, jpeg::DEFAULT_QUALITY]),
            other => panic!("expected JPEG, got {other:?}"),
        }
    }

    #[test]
    fn zlib_glz_deflates_when_it_pays_and_falls_back_to_glz_when_not() {
        use spice_codec::glz::{decode_zlib_glz, GlzDecoder};
        use spice_codec::DecodeLimits;
        let mut enc = Encoders::default();
        enc.set_glz_window(1 << 20);
        let mut client = GlzDecoder::new(DecodeLimits::default(), u64::MAX);
        // Text: GLZ leaves the stroke runs as literals and codes, deflate shrinks them.
        let t = text(64, 64);
        match enc.encode(Encoding::ZlibGlz, 64, 64, &t) {
            ImageData::ZlibGlzRgb { glz_size, data } => {
                assert!((data.len() as u32) < glz_size);
                let glz = decode_zlib_glz(data, glz_size as usize).unwrap();
                assert!(client.decode(&glz).unwrap().data == t);
            }
            other => panic!("expected zlib-GLZ, got {other:?}"),
        }
        // The same image again is one short reference: too short to deflate,
        // sent as plain GLZ, and the dictionary stays in step.
        match enc.encode(Encoding::ZlibGlz, 64, 64, &t) {
            ImageData::GlzRgb(data) => {
                assert!(data.len() < spice_codec::glz::MIN_GLZ_SIZE_FOR_ZLIB);
                assert!(client.decode(data).unwrap().data == t);
            }
            other => panic!("expected GLZ, got {other:?}"),
        }
        // Noise: GLZ cannot shrink it much, deflate even less: plain GLZ.
        let mut noise = noise(64 * 64 * 4, 11);
        // GLZ_RGB carries no fourth byte.
        noise.iter_mut().skip(3).step_by(4).for_each(|x| *x = 0);
        match enc.encode(Encoding::ZlibGlz, 64, 64, &noise) {
            ImageData::GlzRgb(data) => assert!(client.decode(data).unwrap().data[..] == noise[..]),
            other => panic!("expected GLZ, got {other:?}"),
        }
        // Too big for the window: LZ, as for plain GLZ.
        enc.set_glz_window(64 * 64);
        assert!(matches!(
            enc.encode(Encoding::ZlibGlz, 128, 128, &text(128, 128)),
            ImageData::LzRgb(_)
        ));
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
