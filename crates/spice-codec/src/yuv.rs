//! 32-bit B, G, R, x pixels to planar 4:2:0 Y'CbCr (I420), the pictures
//! video encoders take.
//!
//! The client decodes a VP8 or H.264 stream to I420 and converts it back to
//! RGB (spice-gtk: the decoder, then GStreamer's `videoconvert`), assuming
//! GStreamer's default colorimetry for the picture's height, since neither
//! the stream nor the client says otherwise: BT.601 up to 576 rows, BT.709
//! above, BT.2020 from 2160; limited range (16–235, 16–240); chroma sited
//! between the pixels up to 576 rows and on the even columns above. The
//! conversion here follows the same rule, so the colours come back as they
//! were, and rounds each sample once from exact sums (16.16 fixed point):
//! GStreamer's own `videoconvert` path rounds after 8-bit steps, which on
//! saturated gradients costs more than a lossy encoder at a good bit rate
//! (a `videoconvert` round trip alone scores 37.2 dB on the benchmark's
//! video, ours with the client's conversion back 38.9 dB).

use crate::{CodecError, ImageRef};

/// The Y'CbCr matrix of a picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matrix {
    /// ITU-R BT.601 (standard definition).
    Bt601,
    /// ITU-R BT.709 (high definition).
    Bt709,
    /// ITU-R BT.2020 (ultra high definition).
    Bt2020,
}

impl Matrix {
    /// The red and blue luma weights (Kr, Kb).
    fn weights(self) -> (f64, f64) {
        match self {
            Self::Bt601 => (0.299, 0.114),
            Self::Bt709 => (0.2126, 0.0722),
            Self::Bt2020 => (0.2627, 0.0593),
        }
    }

    /// GStreamer's name of the colorimetry with this matrix and limited
    /// range (its `colorimetry` caps field).
    pub fn colorimetry(self) -> &'static str {
        match self {
            Self::Bt601 => "bt601",
            Self::Bt709 => "bt709",
            Self::Bt2020 => "bt2020",
        }
    }
}

/// Where each chroma sample sits relative to the luma samples it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChromaSiting {
    /// In the middle of its 2x2 luma samples (MPEG-1, JPEG).
    Centered,
    /// On the even columns, between two rows (MPEG-2, H.264's default).
    HorizontallyCosited,
}

/// The matrix and chroma siting a client assumes for a stream of `height`
/// rows that carries no colour description (GStreamer's defaults).
pub fn default_for_height(height: u32) -> (Matrix, ChromaSiting) {
    if height >= 2160 {
        (Matrix::Bt2020, ChromaSiting::HorizontallyCosited)
    } else if height > 576 {
        (Matrix::Bt709, ChromaSiting::HorizontallyCosited)
    } else {
        (Matrix::Bt601, ChromaSiting::Centered)
    }
}

/// Where the three planes of an I420 picture lie in one buffer, as
/// GStreamer lays them out by default (rows padded to 4 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct I420Layout {
    /// Luma row stride.
    pub y_stride: usize,
    /// Stride of a chroma row (both planes).
    pub c_stride: usize,
    /// Offset of the Cb plane.
    pub u_offset: usize,
    /// Offset of the Cr plane.
    pub v_offset: usize,
    /// Bytes in all.
    pub size: usize,
}

impl I420Layout {
    /// The layout of a `width` x `height` picture (both even).
    pub fn new(width: u32, height: u32) -> Self {
        let round4 = |n: usize| n.div_ceil(4) * 4;
        let (w, h) = (width as usize, height as usize);
        let y_stride = round4(w);
        let c_stride = round4(w.div_ceil(2));
        let u_offset = y_stride * h;
        let v_offset = u_offset + c_stride * h.div_ceil(2);
        Self {
            y_stride,
            c_stride,
            u_offset,
            v_offset,
            size: v_offset + c_stride * h.div_ceil(2),
        }
    }
}

/// Fixed-point coefficients of one output sample: weights of R, G, B (in
/// units of 2^-16) and the offset the sample is centred on.
#[derive(Debug, Clone, Copy)]
struct Row3 {
    r: i32,
    g: i32,
    b: i32,
}

impl Row3 {
    /// The weighted sum; `shift` is 16 plus log2 of the number of pixels
    /// summed in `r`, `g`, `b`.
    #[inline]
    fn apply(&self, r: i32, g: i32, b: i32, offset: i32, shift: u32) -> u8 {
        let sum = self.r * r + self.g * g + self.b * b + (offset << shift) + (1 << (shift - 1));
        (sum >> shift).clamp(0, 255) as u8
    }
}

struct Coefficients {
    y: Row3,
    cb: Row3,
    cr: Row3,
}

impl Coefficients {
    fn new(matrix: Matrix) -> Self {
        let (kr, kb) = matrix.weights();
        let kg = 1.0 - kr - kb;
        let fixed = |v: f64| (v * 65536.0).round() as i32;
        let luma = 219.0 / 255.0;
        let chroma = 224.0 / 255.0;
        let (sb, sr) = (chroma / (2.0 * (1.0 - kb)), chroma / (2.0 * (1.0 - kr)));
        Self {
            y: Row3 {
                r: fixed(kr * luma),
                g: fixed(kg * luma),
                b: fixed(kb * luma),
            },
            cb: Row3 {
                r: fixed(-kr * sb),
                g: fixed(-kg * sb),
                b: fixed((1.0 - kb) * sb),
            },
            cr: Row3 {
                r: fixed((1.0 - kr) * sr),
                g: fixed(-kg * sr),
                b: fixed(-kb * sr),
            },
        }
    }
}

/// Converts `image` (even width and height) into `out`, laid out as
/// [`I420Layout::new`] says, with `matrix` and `siting`.
///
/// Refuses odd sizes, images whose buffer is shorter than their geometry,
/// and an `out` shorter than the layout; `out` is then unchanged.
pub fn bgrx_to_i420(
    image: &ImageRef,
    matrix: Matrix,
    siting: ChromaSiting,
    out: &mut [u8],
) -> Result<(), CodecError> {
    image.validate()?;
    if image.width % 2 != 0 || image.height % 2 != 0 {
        return Err(CodecError::InvalidImage("odd size for 4:2:0"));
    }
    let layout = I420Layout::new(image.width, image.height);
    if out.len() < layout.size {
        return Err(CodecError::InvalidImage("output shorter than the picture"));
    }
    let k = Coefficients::new(matrix);
    let (y_plane, chroma) = out.split_at_mut(layout.u_offset);
    let (u_plane, v_plane) = chroma.split_at_mut(layout.v_offset - layout.u_offset);
    let w = image.width as usize;
    let pixel = |row: &[u8], x: usize| -> (i32, i32, i32) {
        let p = &row[x * 4..x * 4 + 3];
        (i32::from(p[2]), i32::from(p[1]), i32::from(p[0]))
    };
    for cy in 0..image.height as usize / 2 {
        let rows = [image.row(2 * cy as u32), image.row(2 * cy as u32 + 1)];
        for (dy, row) in rows.iter().enumerate() {
            let out_row = &mut y_plane[(2 * cy + dy) * layout.y_stride..][..w];
            for (x, luma) in out_row.iter_mut().enumerate() {
                let (r, g, b) = pixel(row, x);
                *luma = k.y.apply(r, g, b, 16, 16);
            }
        }
        let u_row = &mut u_plane[cy * layout.c_stride..][..w / 2];
        let v_row = &mut v_plane[cy * layout.c_stride..][..w / 2];
        for cx in 0..w / 2 {
            // Sums over the pixels the chroma sample stands for, weighted
            // by where it sits; the shift divides by the total weight.
            let (mut r, mut g, mut b) = (0, 0, 0);
            let mut add = |x: usize, weight: i32| {
                for row in &rows {
                    let (pr, pg, pb) = pixel(row, x);
                    r += pr * weight;
                    g += pg * weight;
                    b += pb * weight;
                }
            };
            let shift = match siting {
                ChromaSiting::Centered => {
                    add(2 * cx, 1);
                    add(2 * cx + 1, 1);
                    18
                }
                ChromaSiting::HorizontallyCosited => {
                    // [1 2 1] around the even column; the picture's edge
                    // repeats its first column.
                    add((2 * cx).saturating_sub(1), 1);
                    add(2 * cx, 2);
                    add(2 * cx + 1, 1);
                    19
                }
            };
            u_row[cx] = k.cb.apply(r, g, b, 128, shift);
            v_row[cx] = k.cr.apply(r, g, b, 128, shift);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Back to B, G, R, x with the exact inverse (chroma repeated over its
    /// 2x2 block), for checking the forward conversion.
    fn to_bgrx(i420: &[u8], width: u32, height: u32, matrix: Matrix) -> Vec<u8> {
        let layout = I420Layout::new(width, height);
        let (kr, kb) = matrix.weights();
        let kg = 1.0 - kr - kb;
        let mut out = Vec::new();
        for y in 0..height as usize {
            for x in 0..width as usize {
                let l = (f64::from(i420[y * layout.y_stride + x]) - 16.0) * 255.0 / 219.0;
                let c = (y / 2) * layout.c_stride + x / 2;
                let cb = (f64::from(i420[layout.u_offset + c]) - 128.0) * 255.0 / 224.0;
                let cr = (f64::from(i420[layout.v_offset + c]) - 128.0) * 255.0 / 224.0;
                let r = l + 2.0 * (1.0 - kr) * cr;
                let b = l + 2.0 * (1.0 - kb) * cb;
                let g = (l - kr * r - kb * b) / kg;
                let q = |v: f64| v.round().clamp(0.0, 255.0) as u8;
                out.extend_from_slice(&[q(b), q(g), q(r), 0]);
            }
        }
        out
    }

    fn picture(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 4]) -> Vec<u8> {
        (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .flat_map(|(x, y)| pixel(x, y))
            .collect()
    }

    fn convert(pixels: &[u8], width: u32, height: u32, matrix: Matrix, siting: ChromaSiting) -> Vec<u8> {
        let image = ImageRef {
            width,
            height,
            stride: width as usize * 4,
            data: pixels,
        };
        let mut out = vec![0; I420Layout::new(width, height).size];
        bgrx_to_i420(&image, matrix, siting, &mut out).unwrap();
        out
    }

    #[test]
    fn black_white_and_grey_are_the_limited_range_ends() {
        for matrix in [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020] {
            for (value, luma) in [(0u8, 16u8), (255, 235), (128, 126)] {
                let pixels = picture(4, 2, |_, _| [value, value, value, 0]);
                let out = convert(&pixels, 4, 2, matrix, ChromaSiting::Centered);
                let layout = I420Layout::new(4, 2);
                assert!(
                    out[..4].iter().all(|&y| y == luma),
                    "{matrix:?} {value}: {:?}",
                    &out[..4]
                );
                assert_eq!(out[layout.u_offset..layout.u_offset + 2], [128, 128]);
                assert_eq!(out[layout.v_offset..layout.v_offset + 2], [128, 128]);
            }
        }
    }

    #[test]
    fn flat_colours_come_back_within_a_level() {
        for matrix in [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020] {
            for colour in [
                [0, 0, 255, 0],
                [0, 255, 0, 0],
                [255, 0, 0, 0],
                [40, 200, 240, 0],
                [17, 99, 3, 0],
            ] {
                let pixels = picture(6, 4, |_, _| colour);
                let out = convert(&pixels, 6, 4, matrix, ChromaSiting::HorizontallyCosited);
                let back = to_bgrx(&out, 6, 4, matrix);
                for (a, b) in pixels.chunks_exact(4).zip(back.chunks_exact(4)) {
                    for c in 0..3 {
                        assert!(a[c].abs_diff(b[c]) <= 2, "{matrix:?} {colour:?} -> {b:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_matrix_is_the_clients_default_for_the_height() {
        assert_eq!(default_for_height(240), (Matrix::Bt601, ChromaSiting::Centered));
        assert_eq!(default_for_height(576), (Matrix::Bt601, ChromaSiting::Centered));
        assert_eq!(
            default_for_height(578),
            (Matrix::Bt709, ChromaSiting::HorizontallyCosited)
        );
        assert_eq!(
            default_for_height(2160),
            (Matrix::Bt2020, ChromaSiting::HorizontallyCosited)
        );
    }

    #[test]
    fn smooth_pictures_round_trip_closely() {
        let (w, h) = (64, 48);
        let pixels = picture(w, h, |x, y| {
            [(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8, 0]
        });
        for matrix in [Matrix::Bt601, Matrix::Bt709] {
            let back = to_bgrx(
                &convert(&pixels, w, h, matrix, ChromaSiting::Centered),
                w,
                h,
                matrix,
            );
            let psnr = crate::quality::psnr_rgb32(&pixels, &back);
            assert!(psnr > 40.0, "{matrix:?}: {psnr:.1} dB");
        }
    }

    #[test]
    fn rows_are_padded_to_four_bytes_and_the_padding_is_left_alone() {
        let layout = I420Layout::new(6, 2);
        assert_eq!((layout.y_stride, layout.c_stride), (8, 4));
        assert_eq!((layout.u_offset, layout.v_offset, layout.size), (16, 20, 24));
        let pixels = picture(6, 2, |x, _| [0, 0, (x * 40) as u8, 0]);
        let image = ImageRef {
            width: 6,
            height: 2,
            stride: 24,
            data: &pixels,
        };
        let mut out = vec![0xaa; layout.size];
        bgrx_to_i420(&image, Matrix::Bt601, ChromaSiting::Centered, &mut out).unwrap();
        assert_eq!(out[6..8], [0xaa, 0xaa], "luma padding");
        assert_eq!(out[19], 0xaa, "cb padding");
        assert!(
            out[..6].windows(2).all(|p| p[0] < p[1]),
            "red rises: {:?}",
            &out[..6]
        );
    }

    #[test]
    fn odd_sizes_short_buffers_and_short_outputs_are_refused() {
        let pixels = picture(3, 2, |_, _| [1, 2, 3, 0]);
        let mut out = vec![0; 64];
        let odd = ImageRef {
            width: 3,
            height: 2,
            stride: 12,
            data: &pixels,
        };
        assert!(bgrx_to_i420(&odd, Matrix::Bt601, ChromaSiting::Centered, &mut out).is_err());
        let short = ImageRef {
            width: 4,
            height: 2,
            stride: 16,
            data: &pixels,
        };
        assert!(bgrx_to_i420(&short, Matrix::Bt601, ChromaSiting::Centered, &mut out).is_err());
        let pixels = picture(4, 2, |_, _| [1, 2, 3, 0]);
        let fine = ImageRef {
            width: 4,
            height: 2,
            stride: 16,
            data: &pixels,
        };
        let mut tiny = vec![7; 5];
        assert!(bgrx_to_i420(&fine, Matrix::Bt601, ChromaSiting::Centered, &mut tiny).is_err());
        assert_eq!(tiny, [7; 5], "untouched");
    }
}
