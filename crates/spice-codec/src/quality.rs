//! Picture quality: how close a lossy picture is to its source.

/// Peak signal-to-noise ratio of `shown` against `source`, in dB, over the
/// colour bytes of 4-byte pixels (B, G, R and an ignored fourth byte, as
/// surfaces hold them); 100 dB when they are equal. Pixels past the shorter
/// buffer are not compared.
pub fn psnr_rgb32(source: &[u8], shown: &[u8]) -> f64 {
    let (mut sum, mut n) = (0u64, 0u64);
    for (a, b) in source.chunks_exact(4).zip(shown.chunks_exact(4)) {
        for c in 0..3 {
            let d = i64::from(a[c]) - i64::from(b[c]);
            sum += (d * d) as u64;
            n += 1;
        }
    }
    if sum == 0 || n == 0 {
        return 100.0;
    }
    10.0 * (255.0 * 255.0 * n as f64 / sum as f64).log10()
}

/// Structural similarity (SSIM) of `shown` against `source`, both
/// `width` x `height` pictures of packed 4-byte pixels as in
/// [`psnr_rgb32`]: the mean over 8x8 windows (stepping by 4) of the luma's
/// SSIM, with the usual constants for 8-bit samples. 1.0 when equal; lower
/// as structure is lost (blocking, blur), which PSNR weighs poorly.
/// Pictures smaller than a window, or buffers too short, give `None`.
pub fn ssim_rgb32(source: &[u8], shown: &[u8], width: usize, height: usize) -> Option<f64> {
    const WINDOW: usize = 8;
    const STEP: usize = 4;
    let len = width.checked_mul(height)?.checked_mul(4)?;
    if width < WINDOW || height < WINDOW || source.len() < len || shown.len() < len {
        return None;
    }
    // BT.601 luma, as encoders see the picture.
    let luma = |p: &[u8]| -> Vec<f64> {
        p[..len]
            .chunks_exact(4)
            .map(|px| 0.114 * f64::from(px[0]) + 0.587 * f64::from(px[1]) + 0.299 * f64::from(px[2]))
            .collect()
    };
    let (a, b) = (luma(source), luma(shown));
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let n = (WINDOW * WINDOW) as f64;
    let (mut total, mut windows) = (0.0, 0usize);
    for y0 in (0..=height - WINDOW).step_by(STEP) {
        for x0 in (0..=width - WINDOW).step_by(STEP) {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for y in y0..y0 + WINDOW {
                for x in x0..x0 + WINDOW {
                    let (va, vb) = (a[y * width + x], b[y * width + x]);
                    sa += va;
                    sb += vb;
                    saa += va * va;
                    sbb += vb * vb;
                    sab += va * vb;
                }
            }
            let (ma, mb) = (sa / n, sb / n);
            let (var_a, var_b) = (saa / n - ma * ma, sbb / n - mb * mb);
            let cov = sab / n - ma * mb;
            total +=
                ((2.0 * ma * mb + c1) * (2.0 * cov + c2)) / ((ma * ma + mb * mb + c1) * (var_a + var_b + c2));
            windows += 1;
        }
    }
    Some(total / windows as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w` x `h` picture with structure (a gradient and a checker).
    fn textured(w: usize, h: usize) -> Vec<u8> {
        let mut p = Vec::with_capacity(w * h * 4);
        for y in 0..h {
            for x in 0..w {
                let v = ((x * 7 + y * 3) % 200) as u8 + if (x / 2 + y / 2) % 2 == 0 { 40 } else { 0 };
                p.extend_from_slice(&[v, v, v, 0]);
            }
        }
        p
    }

    #[test]
    fn ssim_is_one_for_equal_pictures_and_drops_with_lost_structure() {
        let (w, h) = (32, 24);
        let a = textured(w, h);
        let same = ssim_rgb32(&a, &a, w, h).unwrap();
        assert!((same - 1.0).abs() < 1e-9, "{same}");
        // A flat picture of the same mean keeps the brightness, loses the texture.
        let mean = a.chunks_exact(4).map(|p| u64::from(p[0])).sum::<u64>() / (w * h) as u64;
        let flat: Vec<u8> = a
            .chunks_exact(4)
            .flat_map(|_| [mean as u8, mean as u8, mean as u8, 0])
            .collect();
        let flat_ssim = ssim_rgb32(&a, &flat, w, h).unwrap();
        assert!(flat_ssim < 0.5, "{flat_ssim}");
        // A small brightness shift keeps the structure.
        let shifted: Vec<u8> = a.iter().map(|v| v.saturating_add(3)).collect();
        let shifted_ssim = ssim_rgb32(&a, &shifted, w, h).unwrap();
        assert!(shifted_ssim > 0.95 && shifted_ssim > flat_ssim, "{shifted_ssim}");
        assert_eq!(ssim_rgb32(&a, &a[..8], w, h), None, "too short");
        assert_eq!(ssim_rgb32(&a, &a, 4, 4), None, "smaller than a window");
    }

    #[test]
    fn equal_pictures_are_100_db_and_noise_lowers_it() {
        let a = vec![100u8; 64 * 4];
        assert_eq!(psnr_rgb32(&a, &a), 100.0);
        // Every colour byte off by 1: MSE 1, 48.13 dB; the fourth byte is ignored.
        let b: Vec<u8> = a
            .iter()
            .enumerate()
            .map(|(i, v)| if i % 4 == 3 { 0 } else { v + 1 })
            .collect();
        assert!((psnr_rgb32(&a, &b) - 48.13).abs() < 0.01);
        let c: Vec<u8> = a.iter().map(|v| v + 16).collect();
        assert!(psnr_rgb32(&a, &c) < psnr_rgb32(&a, &b));
    }
}
