//! SPICE JPEG images (`SPICE_IMAGE_TYPE_JPEG`, 105): one baseline JFIF
//! stream, lossy.
//!
//! spice-gtk hands the bytes to libjpeg and spice-html5 to the browser's
//! image decoder, so any baseline JFIF with 8-bit YCbCr works; the clients
//! take width and height from the stream and spice-gtk drops the image when
//! they differ from the descriptor's. We encode with the pure-Rust
//! `jpeg-encoder` crate: 4:2:0 chroma subsampling below quality 90 (as
//! libjpeg does by default), standard Huffman tables, no restart markers.
//!
//! The fourth byte of each pixel is ignored: JPEG_ALPHA (108), which adds
//! an LZ-coded alpha plane, is not produced here.
//!
//! JPEG is lossy, so an image sent this way must not later be treated as
//! the exact pixels (for instance, cached as lossless): the caller tracks
//! that.

use crate::{CodecError, ImageRef};
use jpeg_encoder::{ColorType, Encoder, ImageBuffer, JpegColorType};

/// The C server's JPEG quality for images on the display channel
/// (`jpeg_quality` of the display channel client's encoders).
pub const DEFAULT_QUALITY: u8 = 85;

/// Largest side JPEG can describe (the frame header counts in 16 bits).
pub const MAX_SIDE: u32 = u16::MAX as u32;

/// Checks that `image` is one a JPEG stream can carry: not empty, its buffer
/// as long as its geometry says, no side over [`MAX_SIDE`]. Every
/// [`EncodeFn`] refuses what this refuses.
pub fn check_image(image: &ImageRef) -> Result<(), CodecError> {
    image.validate()?;
    if image.width > MAX_SIDE || image.height > MAX_SIDE {
        return Err(CodecError::InvalidImage("too large for JPEG"));
    }
    Ok(())
}

/// Appends the JFIF stream of `image` (32-bit B, G, R, x pixels) at
/// `quality` (clamped to 1..=100) to `out`, and returns its length.
///
/// Refuses empty images, images whose buffer is shorter than their
/// geometry, and sides over [`MAX_SIDE`]; `out` is then unchanged.
pub fn encode_rgb32(image: &ImageRef, quality: u8, out: &mut Vec<u8>) -> Result<usize, CodecError> {
    check_image(image)?;
    let start = out.len();
    // A rough guess of the output (about 1 bit per pixel at the default
    // quality) saves most of the regrowth of `out` on large images.
    out.reserve(image.width as usize * image.height as usize / 8 + 1024);
    let encoder = Encoder::new(&mut *out, quality.clamp(1, 100));
    let row = image.width as usize * 4;
    let result = if image.stride == row {
        // Packed rows: the crate's own B, G, R, A reader, which converts
        // with AVX2 where the CPU has it (the fourth byte is not coded).
        let data = &image.data[..row * image.height as usize];
        encoder.encode(data, image.width as u16, image.height as u16, ColorType::Bgra)
    } else {
        encoder.encode_image(Bgrx(image))
    };
    if result.is_err() {
        // Writing to a Vec cannot fail and the geometry was checked above,
        // so this is not expected; the caller falls back to another codec.
        out.truncate(start);
        return Err(CodecError::InvalidImage("refused by the jpeg encoder"));
    }
    Ok(out.len() - start)
}

/// Signature of a JPEG encoder: [`encode_rgb32`]'s contract (append the
/// JFIF stream of 32-bit B, G, R, x `image` at `quality`, return its length,
/// leave `out` unchanged on error; refuse what [`check_image`] refuses).
pub type EncodeFn = fn(&ImageRef, u8, &mut Vec<u8>) -> Result<usize, CodecError>;

/// Which JPEG encoder a server uses for lossy frames: this crate's own
/// (pure Rust, the default), or one a host plugs in, such as the system's
/// libjpeg-turbo under the C ABI, which encodes a frame about twice as fast.
#[derive(Clone, Copy)]
pub struct JpegEncoder {
    name: &'static str,
    encode: EncodeFn,
}

impl JpegEncoder {
    /// This crate's encoder ([`encode_rgb32`]).
    pub const BUILTIN: Self = Self {
        name: "jpeg-encoder",
        encode: encode_rgb32,
    };

    /// An encoder `name`d for logs, that must keep [`EncodeFn`]'s contract.
    pub const fn new(name: &'static str, encode: EncodeFn) -> Self {
        Self { name, encode }
    }

    /// The name given to [`Self::new`].
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Encodes `image` as [`encode_rgb32`] does, with this encoder.
    pub fn encode(&self, image: &ImageRef, quality: u8, out: &mut Vec<u8>) -> Result<usize, CodecError> {
        (self.encode)(image, quality, out)
    }
}

impl Default for JpegEncoder {
    fn default() -> Self {
        Self::BUILTIN
    }
}

impl PartialEq for JpegEncoder {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && std::ptr::fn_addr_eq(self.encode, other.encode)
    }
}

impl Eq for JpegEncoder {}

impl std::fmt::Debug for JpegEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Our strided B, G, R, x rows as `jpeg-encoder` input, converted to YCbCr
/// row by row so no packed copy of the image is made.
struct Bgrx<'a, 'b>(&'a ImageRef<'b>);

impl ImageBuffer for Bgrx<'_, '_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        // Checked against MAX_SIDE in `encode_rgb32`.
        self.0.width as u16
    }

    fn height(&self) -> u16 {
        self.0.height as u16
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let [luma, cb, cr, _] = buffers;
        let row = self.0.row(u32::from(y));
        // Grown once per row and written in place: pushing three bytes a
        // pixel was a third of the encoder's time.
        let width = row.len() / 4;
        let starts = [luma.len(), cb.len(), cr.len()];
        luma.resize(starts[0] + width, 0);
        cb.resize(starts[1] + width, 0);
        cr.resize(starts[2] + width, 0);
        let outputs = luma[starts[0]..]
            .iter_mut()
            .zip(&mut cb[starts[1]..])
            .zip(&mut cr[starts[2]..]);
        for (px, ((l, b), r)) in row.chunks_exact(4).zip(outputs) {
            (*l, *b, *r) = jpeg_encoder::rgb_to_ycbcr(px[2], px[1], px[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_images::{self, Image};

    /// Decodes `jpeg` with an independent decoder into B, G, R, 0xff rows.
    fn decode(jpeg: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut d = jpeg_decoder::Decoder::new(jpeg);
        let rgb = d.decode().expect("decodes");
        let info = d.info().expect("has a frame header");
        assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
        let bgrx = rgb
            .chunks_exact(3)
            .flat_map(|p| [p[2], p[1], p[0], 0xff])
            .collect();
        (u32::from(info.width), u32::from(info.height), bgrx)
    }

    /// PSNR in dB over the colour channels of `img` against packed `got`.
    fn psnr(img: &Image, got: &[u8]) -> f64 {
        let want = img.packed();
        let mut se = 0f64;
        let mut n = 0f64;
        for (a, b) in want.chunks_exact(4).zip(got.chunks_exact(4)) {
            for c in 0..3 {
                let d = f64::from(a[c]) - f64::from(b[c]);
                se += d * d;
                n += 1.0;
            }
        }
        let mse = se / n;
        if mse == 0.0 {
            return f64::INFINITY;
        }
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }

    #[test]
    fn round_trips_every_test_image_within_a_psnr_bound() {
        for img in test_images::all() {
            let mut out = vec![0xaa];
            let n = encode_rgb32(&img.as_ref(), DEFAULT_QUALITY, &mut out).unwrap();
            assert_eq!(out[0], 0xaa, "{}: appends", img.name);
            assert_eq!(n, out.len() - 1);
            // SOI then the JFIF APP0 segment.
            assert_eq!(&out[1..5], &[0xff, 0xd8, 0xff, 0xe0], "{}", img.name);
            let (w, h, got) = decode(&out[1..]);
            assert_eq!((w, h), (img.width, img.height), "{}", img.name);
            let p = psnr(&img, &got);
            // Photographic content is what JPEG is chosen for: it must stay
            // close. Noise has nothing to keep, and tiny images with sharp
            // colour steps lose most to 4:2:0 chroma subsampling (a 2x1
            // two-colour image shares one chroma sample).
            let bound = match img.name.split(' ').next() {
                Some("photo") => 38.0,
                Some("solid") => 50.0,
                Some("noise") => 10.0,
                _ => 14.0,
            };
            assert!(p >= bound, "{}: psnr {p:.1} dB < {bound}", img.name);
        }
    }

    #[test]
    fn photographic_content_compresses_well() {
        let img = test_images::photo(211, 97);
        let mut out = Vec::new();
        encode_rgb32(&img.as_ref(), DEFAULT_QUALITY, &mut out).unwrap();
        assert!(out.len() * 4 < img.bytes(), "{} of {}", out.len(), img.bytes());
    }

    #[test]
    fn padded_rows_come_out_as_packed_ones() {
        // Packed rows go through the crate's SIMD reader, padded ones
        // through ours: the pictures must agree (to a level of rounding).
        let packed = test_images::photo(64, 48);
        let mut padded = Image::new("photo padded", 64, 48, 12);
        for y in 0..48 {
            for x in 0..64 {
                padded.set(x, y, packed.get(x, y));
            }
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_rgb32(&packed.as_ref(), DEFAULT_QUALITY, &mut a).unwrap();
        encode_rgb32(&padded.as_ref(), DEFAULT_QUALITY, &mut b).unwrap();
        let (_, _, a) = decode(&a);
        let (_, _, b) = decode(&b);
        let worst = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y)).max();
        assert!(worst <= Some(2), "largest difference {worst:?}");
        assert!(psnr(&packed, &b) > 38.0);
    }

    #[test]
    fn odd_sizes() {
        for (w, h) in [(1, 1), (3, 7), (17, 9), (1, 40), (40, 1)] {
            let img = test_images::photo(w, h);
            let mut out = Vec::new();
            encode_rgb32(&img.as_ref(), DEFAULT_QUALITY, &mut out).unwrap();
            let (dw, dh, got) = decode(&out);
            assert_eq!((dw, dh), (w, h));
            assert!(psnr(&img, &got) > 25.0, "{w}x{h}");
        }
    }

    #[test]
    fn quality_trades_size_for_fidelity() {
        let img = test_images::photo(211, 97);
        let (mut lo, mut hi) = (Vec::new(), Vec::new());
        encode_rgb32(&img.as_ref(), 30, &mut lo).unwrap();
        encode_rgb32(&img.as_ref(), 95, &mut hi).unwrap();
        assert!(lo.len() < hi.len());
        assert!(psnr(&img, &decode(&lo).2) < psnr(&img, &decode(&hi).2));
        // Out-of-range qualities are clamped, not refused.
        encode_rgb32(&img.as_ref(), 0, &mut Vec::new()).unwrap();
        encode_rgb32(&img.as_ref(), 255, &mut Vec::new()).unwrap();
    }

    #[test]
    fn refuses_unusable_images() {
        let data = vec![0u8; 64];
        let mut out = vec![1, 2];
        for (w, h, stride) in [(0, 4, 16), (4, 0, 16), (4, 4, 8), (4, 5, 16)] {
            let img = ImageRef {
                width: w,
                height: h,
                stride,
                data: &data,
            };
            assert!(encode_rgb32(&img, DEFAULT_QUALITY, &mut out).is_err(), "{w}x{h}");
        }
        let wide = ImageRef {
            width: MAX_SIDE + 1,
            height: 1,
            stride: (MAX_SIDE as usize + 1) * 4,
            data: &vec![0u8; (MAX_SIDE as usize + 1) * 4],
        };
        assert!(encode_rgb32(&wide, DEFAULT_QUALITY, &mut out).is_err());
        assert_eq!(out, [1, 2]);
    }
}
