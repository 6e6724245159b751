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

#[cfg(test)]
mod tests {
    use super::*;

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
