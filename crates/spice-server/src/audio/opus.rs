//! Opus (`SPICE_AUDIO_DATA_MODE_OPUS`) through Debian's libopus: one encoder
//! per playback client, one decoder per record client that asks for it.
//!
//! The parameters are spice-common's (`snd_codec.c`), so any SPICE peer
//! decodes what we send: 48 kHz, two channels, `OPUS_APPLICATION_AUDIO`,
//! libopus' default bitrate, one Opus packet per playback packet of
//! [`FRAMES_PER_PACKET`] frames (10 ms).

use super::{extend_le, frames_from_le, StereoFrame, CHANNELS, FRAMES_PER_PACKET, PLAYBACK_RATE};

/// Largest encoded packet, as the C server's `SND_CODEC_MAX_COMPRESSED_BYTES`.
pub(crate) const MAX_ENCODED_BYTES: usize = 480;
/// Most frames one Opus packet decodes to: 120 ms, the longest Opus packet.
pub(crate) const MAX_DECODED_FRAMES: usize = 5760;

/// What went wrong in libopus.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpusError {
    /// libopus refused to make a coder, or to code one packet.
    #[error("opus {what} failed: {source}")]
    Codec {
        /// The operation: encoder, decoder, encode, decode.
        what: &'static str,
        /// libopus' error.
        source: opus::Error,
    },
    /// An encoder was handed other than one packet's worth of PCM.
    #[error("opus encoder takes {FRAMES_PER_PACKET} frames, got {0}")]
    FrameSize(usize),
}

fn codec_error(what: &'static str) -> impl FnOnce(opus::Error) -> OpusError {
    move |source| OpusError::Codec { what, source }
}

fn channels() -> opus::Channels {
    debug_assert_eq!(CHANNELS, 2);
    opus::Channels::Stereo
}

/// Encodes playback packets for one client.
pub(crate) struct OpusEncoder {
    inner: opus::Encoder,
    pcm: Vec<i16>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusEncoder")
    }
}

impl OpusEncoder {
    pub(crate) fn new() -> Result<Self, OpusError> {
        let inner = opus::Encoder::new(PLAYBACK_RATE, channels(), opus::Application::Audio)
            .map_err(codec_error("encoder"))?;
        Ok(Self {
            inner,
            pcm: Vec::with_capacity(FRAMES_PER_PACKET * 2),
        })
    }

    /// One packet of [`FRAMES_PER_PACKET`] S16LE stereo frames, encoded.
    pub(crate) fn encode(&mut self, pcm: &[u8]) -> Result<Vec<u8>, OpusError> {
        if pcm.len() != FRAMES_PER_PACKET * 4 {
            return Err(OpusError::FrameSize(pcm.len() / 4));
        }
        self.pcm.clear();
        self.pcm.extend(frames_from_le(pcm).flatten());
        let mut out = vec![0; MAX_ENCODED_BYTES];
        let n = self
            .inner
            .encode(&self.pcm, &mut out)
            .map_err(codec_error("encode"))?;
        out.truncate(n);
        Ok(out)
    }
}

/// Decodes a record client's packets.
pub(crate) struct OpusDecoder {
    inner: opus::Decoder,
    pcm: Vec<i16>,
    /// The last packet decoded, as S16LE stereo bytes.
    out: Vec<u8>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusDecoder")
    }
}

impl OpusDecoder {
    pub(crate) fn new() -> Result<Self, OpusError> {
        let inner = opus::Decoder::new(PLAYBACK_RATE, channels()).map_err(codec_error("decoder"))?;
        Ok(Self {
            inner,
            pcm: vec![0; MAX_DECODED_FRAMES * 2],
            out: Vec::new(),
        })
    }

    /// Decodes one packet into S16LE stereo bytes (at most
    /// [`MAX_DECODED_FRAMES`] frames). An empty packet decodes to nothing:
    /// libopus would conceal a lost packet with up to 120 ms of made-up audio.
    pub(crate) fn decode(&mut self, packet: &[u8]) -> Result<&[u8], OpusError> {
        self.out.clear();
        if packet.is_empty() {
            return Ok(&self.out);
        }
        let frames = self
            .inner
            .decode(packet, &mut self.pcm, false)
            .map_err(codec_error("decode"))?;
        let frames: Vec<StereoFrame> = self.pcm[..frames * 2]
            .chunks_exact(2)
            .map(|s| [s[0], s[1]])
            .collect();
        extend_le(&mut self.out, &frames);
        Ok(&self.out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stereo sine, `hz` on the left and `2 * hz` on the right, as S16LE.
    pub(crate) fn sine(frames: std::ops::Range<usize>, hz: f64) -> Vec<u8> {
        let mut out = Vec::new();
        let at = |i: usize, f: f64| {
            let t = i as f64 / f64::from(PLAYBACK_RATE);
            (8000.0 * (2.0 * std::f64::consts::PI * f * t).sin()) as i16
        };
        let frames: Vec<StereoFrame> = frames.map(|i| [at(i, hz), at(i, 2.0 * hz)]).collect();
        extend_le(&mut out, &frames);
        out
    }

    /// Root mean square of `a - b` over S16LE samples, and of `b`.
    pub(crate) fn rms_error(a: &[u8], b: &[u8]) -> (f64, f64) {
        let s = |x: &[u8]| -> Vec<f64> {
            x.chunks_exact(2)
                .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])))
                .collect()
        };
        let (a, b) = (s(a), s(b));
        let n = a.len().min(b.len()) as f64;
        let err = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / n;
        let sig = b.iter().map(|y| y * y).sum::<f64>() / n;
        (err.sqrt(), sig.sqrt())
    }

    #[test]
    fn a_sine_survives_encode_and_decode() {
        let mut enc = OpusEncoder::new().unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let mut sent = Vec::new();
        let mut got = Vec::new();
        for k in 0..50 {
            let pcm = sine(k * FRAMES_PER_PACKET..(k + 1) * FRAMES_PER_PACKET, 440.0);
            let packet = enc.encode(&pcm).unwrap();
            assert!(!packet.is_empty() && packet.len() <= MAX_ENCODED_BYTES);
            assert!(packet.len() < pcm.len() / 4, "{} bytes", packet.len());
            got.extend_from_slice(dec.decode(&packet).unwrap());
            sent.extend_from_slice(&pcm);
        }
        assert_eq!(got.len(), sent.len());
        // The codec delays by its look-ahead (6.5 ms at 48 kHz: 312 frames).
        let delay = 312 * 4;
        let (err, sig) = rms_error(&got[delay..], &sent[..sent.len() - delay]);
        assert!(sig > 5000.0, "{sig}");
        assert!(err < sig / 10.0, "error {err} against signal {sig}");
    }

    #[test]
    fn wrong_sizes_and_garbage_are_errors_not_panics() {
        let mut enc = OpusEncoder::new().unwrap();
        assert!(matches!(enc.encode(&[0; 100]), Err(OpusError::FrameSize(25))));
        let mut dec = OpusDecoder::new().unwrap();
        assert!(dec.decode(&[]).unwrap().is_empty());
        // A CELT 20 ms stereo frame of no bytes is valid: 960 frames of
        // concealment (a fuzz seed relies on it).
        assert_eq!(dec.decode(&[0xfc]).unwrap().len(), 960 * 4);
        // A code-3 packet claiming 63 frames of 120 ms is invalid.
        assert!(dec.decode(&[0xff, 0x3f]).is_err());
    }
}
