//! MJPEG stream frames and JPEG images through the system's libjpeg-turbo,
//! as the C server encodes them: about 2.4 times as fast as `spice-codec`'s pure-Rust
//! encoder on a 1024x160 frame (0.5 against 1.2 ms; BENCHMARKS.md), for the
//! same bytes. libjpeg is called from a small C shim (`csrc/jpeg.c`), which
//! keeps libjpeg's struct layout and its `longjmp` error exits on the C side.

use std::os::raw::{c_int, c_uchar, c_uint, c_ulong};

use spice_codec::jpeg::JpegEncoder;
use spice_codec::{CodecError, ImageRef};

extern "C" {
    fn spice_capi_jpeg_encode_bgrx(
        pixels: *const c_uchar,
        width: c_uint,
        height: c_uint,
        stride: usize,
        quality: c_int,
        out: *mut *mut c_uchar,
        out_len: *mut c_ulong,
    ) -> c_int;
    fn spice_capi_jpeg_free(buf: *mut c_uchar);
}

/// The system libjpeg as the server's JPEG encoder.
pub(crate) const LIBJPEG: JpegEncoder = JpegEncoder::new("libjpeg", encode_rgb32);

/// [`spice_codec::jpeg::EncodeFn`] through libjpeg: appends the JFIF stream
/// of `image` at `quality` to `out`.
fn encode_rgb32(image: &ImageRef, quality: u8, out: &mut Vec<u8>) -> Result<usize, CodecError> {
    spice_codec::jpeg::check_image(image)?;
    let mut buf: *mut c_uchar = std::ptr::null_mut();
    let mut len: c_ulong = 0;
    // SAFETY: `check_image` checked `width * 4 <= stride` and that `image.data`
    // holds `height - 1` rows of `stride` bytes and a last one of `width * 4`:
    // all the shim reads (libjpeg takes `width * 4` bytes from each row
    // start). `buf` and `len` are valid for writes for the call.
    let status = unsafe {
        spice_capi_jpeg_encode_bgrx(
            image.data.as_ptr(),
            image.width,
            image.height,
            image.stride,
            c_int::from(quality),
            &mut buf,
            &mut len,
        )
    };
    if status != 0 || buf.is_null() {
        return Err(CodecError::InvalidImage("refused by libjpeg"));
    }
    // SAFETY: on success the shim returns a malloc'd buffer of `len` bytes
    // that nothing else references; it is copied out and freed once.
    let jpeg = unsafe { std::slice::from_raw_parts(buf, len as usize) };
    out.extend_from_slice(jpeg);
    // SAFETY: `buf` came from the shim's successful call and is freed once;
    // `jpeg` is not used after this.
    unsafe { spice_capi_jpeg_free(buf) };
    Ok(len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A photographic-ish B, G, R, x picture.
    fn picture(width: usize, height: usize, stride: usize) -> Vec<u8> {
        let mut data = vec![0u8; stride * height];
        for y in 0..height {
            for x in 0..width {
                let i = y * stride + x * 4;
                let v = ((x as f32 * 0.05).sin() + (y as f32 * 0.07).sin()) * 60.0 + 128.0;
                data[i..i + 4].copy_from_slice(&[v as u8, (255.0 - v) as u8, (v * 0.5) as u8, 0]);
            }
        }
        data
    }

    /// libjpeg's frame decodes (with an independent decoder) to the
    /// picture's size and close to its pixels, from strided rows too, and
    /// is appended to what `out` held.
    #[test]
    fn libjpeg_frames_decode_close_to_the_picture() {
        for stride in [200 * 4, 203 * 4] {
            let data = picture(200, 120, stride);
            let image = ImageRef {
                width: 200,
                height: 120,
                stride,
                data: &data,
            };
            let mut out = vec![7];
            let n = LIBJPEG.encode(&image, 85, &mut out).unwrap();
            assert_eq!((out[0], n + 1), (7, out.len()));
            let mut decoder = jpeg_decoder::Decoder::new(&out[1..]);
            let rgb = decoder.decode().expect("decodes");
            let info = decoder.info().unwrap();
            assert_eq!((info.width, info.height), (200, 120));
            let mut worst = 0u8;
            for y in 0..120 {
                for x in 0..200 {
                    let (p, q) = (&data[y * stride + x * 4..], &rgb[(y * 200 + x) * 3..]);
                    // Decoded R, G, B against our B, G, R.
                    for (a, b) in [(p[2], q[0]), (p[1], q[1]), (p[0], q[2])] {
                        worst = worst.max(a.abs_diff(b));
                    }
                }
            }
            assert!(worst < 40, "stride {stride}: a pixel off by {worst}");
        }
    }

    /// Bad geometry is refused before libjpeg sees it, and `out` is unchanged.
    #[test]
    fn libjpeg_refuses_bad_images() {
        let data = vec![0u8; 16];
        let mut out = vec![1, 2];
        for (width, height, stride) in [(0, 1, 16), (4, 2, 16), (5, 1, 16)] {
            let image = ImageRef {
                width,
                height,
                stride,
                data: &data,
            };
            assert!(LIBJPEG.encode(&image, 85, &mut out).is_err(), "{width}x{height}");
            assert_eq!(out, vec![1, 2]);
        }
    }
}
