//! Test signals for audio, and how close a lossy (Opus) copy came back.
//!
//! Samples are S16LE, two interleaved channels, 48 kHz, as SPICE carries them.

/// Frames per second of every signal here.
pub const RATE: f64 = 48_000.0;

/// Frames libopus delays its output by at 48 kHz (`OPUS_APPLICATION_AUDIO`'s
/// 6.5 ms look-ahead), which a decoded copy has to be shifted by.
pub const OPUS_DELAY_FRAMES: usize = 312;

/// A stereo sine, `hz` on the left and `2 * hz` on the right, amplitude
/// 8000, frames `from..from + frames`, as S16LE bytes.
pub fn sine(from: usize, frames: usize, hz: f64) -> Vec<u8> {
    let at = |i: usize, f: f64| (8000.0 * (std::f64::consts::TAU * f * i as f64 / RATE).sin()) as i16;
    (from..from + frames)
        .flat_map(|i| {
            let (l, r) = (at(i, hz), at(i, 2.0 * hz));
            l.to_le_bytes().into_iter().chain(r.to_le_bytes())
        })
        .collect()
}

/// S16LE stereo bytes as frames, as the host's audio handles take them.
pub fn frames(pcm: &[u8]) -> Vec<spice_server::StereoFrame> {
    pcm.chunks_exact(4)
        .map(|b| [i16::from_le_bytes([b[0], b[1]]), i16::from_le_bytes([b[2], b[3]])])
        .collect()
}

/// One channel (0 left, 1 right) of S16LE stereo bytes.
pub fn channel(pcm: &[u8], which: usize) -> Vec<f64> {
    pcm.chunks_exact(4)
        .map(|f| f64::from(i16::from_le_bytes([f[2 * which], f[2 * which + 1]])))
        .collect()
}

/// Root mean square of a signal.
pub fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// The frequency of a (mostly) pure tone, from its rising zero crossings.
pub fn frequency(x: &[f64]) -> f64 {
    let rising: Vec<usize> = (1..x.len()).filter(|&i| x[i - 1] < 0.0 && x[i] >= 0.0).collect();
    match (rising.first(), rising.last()) {
        (Some(a), Some(b)) if b > a => (rising.len() - 1) as f64 * RATE / (b - a) as f64,
        _ => 0.0,
    }
}

/// RMS of the difference between `decoded` (shifted back by the codec's
/// delay) and `sent`, over the frames both cover, relative to `sent`'s RMS:
/// well under 0.1 for Opus at its default bitrate on a sine, about 1.4 for
/// an unrelated signal of the same level.
pub fn relative_error(decoded: &[u8], sent: &[u8], delay_frames: usize) -> f64 {
    let d = decoded.get(delay_frames * 4..).unwrap_or_default();
    let n = d.len().min(sent.len()) / 4 * 4;
    let (d, s) = (&d[..n], &sent[..n]);
    let mut err = Vec::new();
    let mut sig = Vec::new();
    for which in 0..2 {
        let (a, b) = (channel(d, which), channel(s, which));
        err.extend(a.iter().zip(&b).map(|(x, y)| x - y));
        sig.extend(b);
    }
    rms(&err) / rms(&sig).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_has_its_frequency_and_level() {
        let s = sine(0, 48_000, 440.0);
        let left = channel(&s, 0);
        assert!((frequency(&left) - 440.0).abs() < 1.0);
        assert!((frequency(&channel(&s, 1)) - 880.0).abs() < 1.0);
        assert!((rms(&left) - 8000.0 / 2f64.sqrt()).abs() < 10.0);
        assert!(relative_error(&s, &s, 0) < 1e-9);
        assert!(relative_error(&sine(0, 4800, 300.0), &sine(0, 4800, 440.0), 0) > 1.0);
    }
}
