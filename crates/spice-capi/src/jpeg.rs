//! MJPEG stream frames and JPEG images through the system's libjpeg-turbo,
//! as the C server encodes them: about 2.4 times as fast as `spice-codec`'s pure-Rust
//! encoder on a 1024x160 frame (0.5 against 1.2 ms; BENCHMARKS.md), for the
//! same bytes. libjpeg is called from a small C shim (`csrc/jpeg.c`), which
//! keeps libjpeg's struct layout and its `longjmp` error exits on the C side.

use std::os::raw::{c_int, c_uchar, c_uint, c_ulong};

use spice_codec::jpeg::JpegEncoder;
use spice_codec::{CodecError, ImageRef};

extern "C" {
    fn spice_capi_jpeg_encode_rows(
        rows: *const *const c_uchar,
        width: c_uint,
        height: c_uint,
        quality: c_int,
        buf: *mut c_uchar,
        cap: c_ulong,
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
    let rows: Vec<*const u8> = (0..image.height as usize)
        .map(|y| image.data[y * image.stride..].as_ptr())
        .collect();
    // SAFETY: `check_image` checked `width * 4 <= stride` and that `image.data`
    // holds `height - 1` rows of `stride` bytes and a last one of `width * 4`,
    // so each row start has `width * 4` bytes after it in `image.data`, which
    // is borrowed for the call.
    unsafe { encode_rows(&rows, image.width, quality, out) }
}

/// Appends the JFIF stream of `rows.len()` rows of `width` B, G, R, x
/// pixels at `quality` to `out`. libjpeg reads each row where it lies, as
/// it encodes it, and writes straight into `out`'s spare capacity (a frame
/// that outgrows it is copied over once).
///
/// # Safety
/// Each of `rows` must be readable for `width * 4` bytes for the whole call.
pub(crate) unsafe fn encode_rows(
    rows: &[*const u8],
    width: u32,
    quality: u8,
    out: &mut Vec<u8>,
) -> Result<usize, CodecError> {
    let Ok(height) = c_uint::try_from(rows.len()) else {
        return Err(CodecError::InvalidImage("too many rows"));
    };
    // Photographic frames take well under a byte a pixel at the qualities
    // streams use; a larger one costs one copy, not a failure.
    let guess = (width as usize * rows.len() / 2).clamp(4096, 8 << 20);
    out.reserve(guess);
    let at = out.len();
    let spare = out.capacity() - at;
    // SAFETY: `at <= capacity`, so the pointer stays inside (or one past)
    // `out`'s allocation.
    let buf = unsafe { out.as_mut_ptr().add(at) };
    let mut jpeg: *mut c_uchar = std::ptr::null_mut();
    let mut len: c_ulong = 0;
    // SAFETY: the caller vouches for the rows; `buf` is valid for writes of
    // `spare` bytes (the shim writes no more than `cap`); `jpeg` and `len`
    // are valid for writes for the call.
    let status = unsafe {
        spice_capi_jpeg_encode_rows(
            rows.as_ptr(),
            width,
            height,
            c_int::from(quality),
            buf,
            spare as c_ulong,
            &mut jpeg,
            &mut len,
        )
    };
    if status != 0 || jpeg.is_null() {
        return Err(CodecError::InvalidImage("refused by libjpeg"));
    }
    let len = len as usize;
    if jpeg == buf {
        // SAFETY: the shim wrote `len <= spare` bytes at `buf`, initialising
        // `out` up to `at + len`.
        unsafe { out.set_len(at + len) };
    } else {
        // SAFETY: on success with its own buffer, the shim returns `len`
        // bytes from malloc that nothing else references; they are copied
        // out and freed once, and not used after.
        unsafe {
            out.extend_from_slice(std::slice::from_raw_parts(jpeg, len));
            spice_capi_jpeg_free(jpeg);
        }
    }
    Ok(len)
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

    /// A frame larger than the room made for it in `out` (grey noise at
    /// quality 100 takes bytes a pixel) moves to the shim's own buffer and
    /// still comes out whole, after what `out` held.
    #[test]
    fn libjpeg_frames_outgrowing_their_room_come_out_whole() {
        let (w, h) = (96usize, 64usize);
        let mut seed = 1u32;
        // Grey noise: chroma subsampling leaves it alone.
        let data: Vec<u8> = (0..w * h)
            .flat_map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let v = (seed >> 24) as u8;
                [v, v, v, 0]
            })
            .collect();
        let image = ImageRef {
            width: w as u32,
            height: h as u32,
            stride: w * 4,
            data: &data,
        };
        let mut out = vec![5, 6];
        let n = LIBJPEG.encode(&image, 100, &mut out).unwrap();
        assert!(n > w * h / 2 + 4096, "{n} bytes: larger than the room made");
        assert_eq!((&out[..2], n + 2), (&[5u8, 6][..], out.len()));
        let mut decoder = jpeg_decoder::Decoder::new(&out[2..]);
        let rgb = decoder.decode().expect("decodes");
        assert_eq!(rgb.len(), w * h * 3);
        let off = data
            .chunks(4)
            .zip(rgb.chunks(3))
            .map(|(p, q)| {
                p[2].abs_diff(q[0])
                    .max(p[1].abs_diff(q[1]))
                    .max(p[0].abs_diff(q[2]))
            })
            .max()
            .unwrap();
        assert!(off < 16, "a pixel off by {off}");
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
