//! Video stream codecs: which one a client gets, and the encoder behind it.
//!
//! MJPEG is the server's own (every client decodes it). VP8, VP9 and H.264
//! go through GStreamer (`spice-gst`, the `gstreamer` feature), as in the C
//! server, for clients that announce them. The server's list orders the
//! codecs; a client's `PREFERRED_VIDEO_CODEC_TYPE` reorders it for that
//! client, as the C server does; the first codec the client decodes and
//! this machine encodes wins, and MJPEG is the fallback.

use std::time::Duration;

use spice_proto::consts::display_cap;
use spice_proto::msg::display::{VIDEO_CODEC_H264, VIDEO_CODEC_MJPEG, VIDEO_CODEC_VP8, VIDEO_CODEC_VP9};
use spice_proto::Caps;

use super::deferred::SharedFrame;
use super::region::Rect;

/// A video stream codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// Motion JPEG, encoded by the server itself; every client decodes it.
    Mjpeg,
    /// VP8 through GStreamer's `vp8enc`.
    Vp8,
    /// H.264 through GStreamer's `x264enc` (or `openh264enc`).
    H264,
    /// VP9 through GStreamer's `vp9enc`.
    Vp9,
}

impl VideoCodec {
    /// Every codec, in the C server's default order.
    pub const ALL: [Self; 4] = [Self::Mjpeg, Self::H264, Self::Vp8, Self::Vp9];

    /// `SPICE_VIDEO_CODEC_TYPE_*`.
    pub fn wire(self) -> u8 {
        match self {
            Self::Mjpeg => VIDEO_CODEC_MJPEG,
            Self::Vp8 => VIDEO_CODEC_VP8,
            Self::H264 => VIDEO_CODEC_H264,
            Self::Vp9 => VIDEO_CODEC_VP9,
        }
    }

    /// The codec of a `SPICE_VIDEO_CODEC_TYPE_*` value, if this server knows it.
    pub fn from_wire(value: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.wire() == value)
    }

    /// The display capability a client announces when it decodes the codec.
    fn client_cap(self) -> u32 {
        match self {
            Self::Mjpeg => display_cap::CODEC_MJPEG,
            Self::Vp8 => display_cap::CODEC_VP8,
            Self::H264 => display_cap::CODEC_H264,
            Self::Vp9 => display_cap::CODEC_VP9,
        }
    }

    /// Whether this build, on this machine, encodes the codec (MJPEG
    /// always; the others with the `gstreamer` feature and the plugin).
    pub fn encodable(self) -> bool {
        match self {
            Self::Mjpeg => true,
            #[cfg(feature = "gstreamer")]
            other => spice_gst::VideoEncoder::available(gst_codec(other)),
            #[cfg(not(feature = "gstreamer"))]
            _ => false,
        }
    }
}

/// The server's video codecs, best first, each at most once
/// (`spice_server_set_video_codecs`; the builder's `video_codecs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoCodecs {
    list: [Option<VideoCodec>; 4],
}

impl Default for VideoCodecs {
    /// The C server's default order: MJPEG (every client decodes it, so
    /// streams are MJPEG unless a client prefers another codec), then
    /// H.264, VP8 and VP9 where GStreamer encodes them.
    fn default() -> Self {
        Self::new(&VideoCodec::ALL)
    }
}

impl VideoCodecs {
    /// The list in this order, repeats dropped; an empty list is the default.
    pub fn new(codecs: &[VideoCodec]) -> Self {
        let mut list = [None; 4];
        let mut n = 0;
        for &codec in codecs {
            if !list.contains(&Some(codec)) {
                list[n] = Some(codec);
                n += 1;
            }
        }
        if n == 0 {
            return Self::default();
        }
        Self { list }
    }

    /// The codecs, best first.
    pub fn iter(&self) -> impl Iterator<Item = VideoCodec> + '_ {
        self.list.iter().flatten().copied()
    }
}

/// The codecs to try for a client, best first: the server's list, reordered
/// by the client's preference (`SPICE_VIDEO_CODEC_TYPE_*` values, best
/// first; codecs it does not name keep their order after those it does),
/// cut to what the client decodes (a client without `MULTI_CODEC` decodes
/// MJPEG only), then MJPEG as the fallback if the client takes it.
pub(crate) fn for_client(server: &VideoCodecs, caps: &Caps, preferred: &[u8]) -> Vec<VideoCodec> {
    let multi = caps.has(display_cap::MULTI_CODEC);
    let decodes = |codec: VideoCodec| {
        if multi {
            caps.has(codec.client_cap())
        } else {
            codec == VideoCodec::Mjpeg
        }
    };
    let rank = |codec: VideoCodec| {
        preferred
            .iter()
            .position(|&p| p == codec.wire())
            .unwrap_or(preferred.len())
    };
    let mut codecs: Vec<VideoCodec> = server.iter().filter(|&c| decodes(c)).collect();
    codecs.sort_by_key(|&c| rank(c));
    if !codecs.contains(&VideoCodec::Mjpeg) && (!multi || caps.has(display_cap::CODEC_MJPEG)) {
        codecs.push(VideoCodec::Mjpeg);
    }
    codecs
}

/// The frames per second an encoder is told to expect (frames go at most
/// every `MIN_FRAME_INTERVAL`, 33 ms).
#[cfg_attr(not(feature = "gstreamer"), allow(dead_code))]
pub(crate) const STREAM_FPS: u64 = 30;

/// The bit rate of a `quality` (the stream's rate control speaks JPEG
/// qualities, 20 to 80) for an area: a quarter of a bit per pixel per
/// frame at quality 100, so a 640x360 video at quality 70 gets about
/// 1.2 Mbit/s, where its MJPEG frames take several times that.
#[cfg_attr(not(feature = "gstreamer"), allow(dead_code))]
pub(crate) fn bit_rate(area: Rect, quality: u8) -> u64 {
    area.area() * STREAM_FPS * u64::from(quality) / 400
}

/// A live stream's encoder.
pub(crate) enum StreamEncoder {
    /// Every frame a JPEG of the stream's quality, by this encoder.
    Mjpeg(spice_codec::jpeg::JpegEncoder),
    /// A GStreamer pipeline.
    #[cfg(feature = "gstreamer")]
    Gst(Box<spice_gst::VideoEncoder>),
}

impl std::fmt::Debug for StreamEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Mjpeg(_) => "Mjpeg",
            #[cfg(feature = "gstreamer")]
            Self::Gst(_) => "Gst",
        })
    }
}

impl StreamEncoder {
    /// The first of `codecs` that starts for an area, with its encoder
    /// (MJPEG frames by `jpeg`).
    #[cfg_attr(not(feature = "gstreamer"), allow(unused_variables))]
    pub(crate) fn start(
        codecs: &[VideoCodec],
        area: Rect,
        quality: u8,
        jpeg: spice_codec::jpeg::JpegEncoder,
    ) -> Option<(VideoCodec, Self)> {
        codecs.iter().find_map(|&codec| match codec {
            VideoCodec::Mjpeg => Some((codec, Self::Mjpeg(jpeg))),
            #[cfg(feature = "gstreamer")]
            other => {
                match spice_gst::VideoEncoder::new(
                    gst_codec(other),
                    area.width,
                    area.height,
                    bit_rate(area, quality),
                ) {
                    Ok(encoder) => Some((other, Self::Gst(Box::new(encoder)))),
                    Err(e) => {
                        tracing::debug!(?codec, error = %e, "video encoder unavailable; trying the next codec");
                        None
                    }
                }
            }
            #[cfg(not(feature = "gstreamer"))]
            _ => None,
        })
    }

    /// Encodes a frame of the stream's area (`pixels`: BGRx rows, packed)
    /// at `quality`, `time` into the stream. The frames to send: one, or
    /// none if the encoder failed or held the frame back.
    pub(crate) fn encode(
        &mut self,
        pixels: &[u8],
        area: Rect,
        quality: u8,
        #[cfg_attr(not(feature = "gstreamer"), allow(unused_variables))] time: Duration,
    ) -> Vec<Vec<u8>> {
        let stride = area.width as usize * 4;
        match self {
            Self::Mjpeg(jpeg) => {
                let image = spice_codec::ImageRef {
                    width: area.width,
                    height: area.height,
                    stride,
                    data: pixels,
                };
                jpeg_frame(|frame| jpeg.encode(&image, quality, frame))
            }
            #[cfg(feature = "gstreamer")]
            Self::Gst(encoder) => {
                let rate = bit_rate(area, quality);
                if rate != encoder.bit_rate() {
                    encoder.set_bit_rate(rate);
                }
                encoder.encode(pixels, stride, time).unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "cannot encode a stream frame");
                    Vec::new()
                })
            }
        }
    }
}

/// The one JPEG frame `encode` writes, or none if it failed.
fn jpeg_frame(encode: impl FnOnce(&mut Vec<u8>) -> Result<usize, spice_codec::CodecError>) -> Vec<Vec<u8>> {
    let mut frame = Vec::new();
    match encode(&mut frame) {
        Ok(_) => vec![frame],
        Err(e) => {
            tracing::debug!(error = %e, "cannot encode a stream frame");
            Vec::new()
        }
    }
}

impl crate::display::encoder_thread::FrameEncoder for StreamEncoder {
    fn encode(&mut self, pixels: &[u8], area: Rect, quality: u8, time: Duration) -> Vec<Vec<u8>> {
        StreamEncoder::encode(self, pixels, area, quality, time)
    }

    fn reads_shared(&self) -> bool {
        matches!(self, Self::Mjpeg(_))
    }

    fn encode_shared(&mut self, frame: &SharedFrame, quality: u8) -> Vec<Vec<u8>> {
        match self {
            Self::Mjpeg(_) => jpeg_frame(|out| frame.pixels.encode_jpeg(frame.rect, quality, out)),
            #[cfg(feature = "gstreamer")]
            Self::Gst(_) => {
                tracing::debug!("a shared frame reached a GStreamer encoder; dropped");
                Vec::new()
            }
        }
    }
}

#[cfg(feature = "gstreamer")]
fn gst_codec(codec: VideoCodec) -> spice_gst::VideoCodec {
    match codec {
        VideoCodec::Vp8 | VideoCodec::Mjpeg => spice_gst::VideoCodec::Vp8,
        VideoCodec::H264 => spice_gst::VideoCodec::H264,
        VideoCodec::Vp9 => spice_gst::VideoCodec::Vp9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(bits: &[u32]) -> Caps {
        Caps::with(bits)
    }

    /// spice-gtk with GStreamer's VP8 and H.264 decoders.
    fn mjpeg_vp8_h264() -> Caps {
        caps(&[
            display_cap::MULTI_CODEC,
            display_cap::CODEC_MJPEG,
            display_cap::CODEC_VP8,
            display_cap::CODEC_H264,
        ])
    }

    #[test]
    fn a_client_gets_the_servers_order_cut_to_what_it_decodes() {
        let server = VideoCodecs::new(&[VideoCodec::Vp8, VideoCodec::H264, VideoCodec::Mjpeg]);
        let all = mjpeg_vp8_h264();
        assert_eq!(
            for_client(&server, &all, &[]),
            [VideoCodec::Vp8, VideoCodec::H264, VideoCodec::Mjpeg]
        );
        // No VP8 decoder on the client.
        let no_vp8 = caps(&[
            display_cap::MULTI_CODEC,
            display_cap::CODEC_MJPEG,
            display_cap::CODEC_H264,
        ]);
        assert_eq!(
            for_client(&server, &no_vp8, &[]),
            [VideoCodec::H264, VideoCodec::Mjpeg]
        );
        // An old client: MJPEG only, even if the server does not list it.
        let old = caps(&[]);
        assert_eq!(
            for_client(&VideoCodecs::new(&[VideoCodec::Vp8]), &old, &[]),
            [VideoCodec::Mjpeg]
        );
        // A client that decodes neither the list nor MJPEG gets nothing.
        let vp9_only = caps(&[display_cap::MULTI_CODEC, display_cap::CODEC_VP9]);
        assert!(for_client(&server, &vp9_only, &[]).is_empty());
    }

    #[test]
    fn the_clients_preference_reorders_the_list() {
        let server = VideoCodecs::new(&[VideoCodec::Mjpeg, VideoCodec::Vp8, VideoCodec::H264]);
        let all = mjpeg_vp8_h264();
        // H.264 first, then the rest in the server's order; unknown values ignored.
        assert_eq!(
            for_client(&server, &all, &[VIDEO_CODEC_H264, 99]),
            [VideoCodec::H264, VideoCodec::Mjpeg, VideoCodec::Vp8]
        );
    }

    #[test]
    fn lists_drop_repeats_and_never_end_empty() {
        let list = VideoCodecs::new(&[VideoCodec::Vp8, VideoCodec::Vp8, VideoCodec::Mjpeg]);
        assert_eq!(
            list.iter().collect::<Vec<_>>(),
            [VideoCodec::Vp8, VideoCodec::Mjpeg]
        );
        assert_eq!(VideoCodecs::new(&[]), VideoCodecs::default());
        for codec in VideoCodec::ALL {
            assert_eq!(VideoCodec::from_wire(codec.wire()), Some(codec));
        }
        assert_eq!(VideoCodec::from_wire(5), None);
    }

    #[test]
    fn the_bit_rate_follows_area_and_quality() {
        let area = Rect::new(0, 0, 640, 360);
        assert_eq!(bit_rate(area, 70), 1_209_600);
        assert!(bit_rate(area, 20) < bit_rate(area, 85));
    }

    #[test]
    fn mjpeg_is_always_encodable_and_starts() {
        assert!(VideoCodec::Mjpeg.encodable());
        let area = Rect::new(0, 0, 64, 64);
        let (codec, mut encoder) = StreamEncoder::start(
            &[VideoCodec::Mjpeg],
            area,
            70,
            spice_codec::jpeg::JpegEncoder::default(),
        )
        .unwrap();
        assert_eq!(codec, VideoCodec::Mjpeg);
        let frames = encoder.encode(&vec![128; 64 * 64 * 4], area, 70, Duration::ZERO);
        assert_eq!(frames.len(), 1);
        assert!(frames[0].starts_with(&[0xff, 0xd8]), "a JPEG");
    }

    /// MJPEG frames come from the encoder the server was configured with
    /// (under the C ABI, the system's libjpeg-turbo).
    #[test]
    fn mjpeg_frames_come_from_the_configured_jpeg_encoder() {
        fn marker(
            _: &spice_codec::ImageRef,
            quality: u8,
            out: &mut Vec<u8>,
        ) -> Result<usize, spice_codec::CodecError> {
            out.extend_from_slice(&[0xff, 0xd8, quality]);
            Ok(3)
        }
        let jpeg = spice_codec::jpeg::JpegEncoder::new("marker", marker);
        let area = Rect::new(0, 0, 64, 64);
        let (_, mut encoder) = StreamEncoder::start(&[VideoCodec::Mjpeg], area, 70, jpeg).unwrap();
        let frames = encoder.encode(&vec![128; 64 * 64 * 4], area, 42, Duration::ZERO);
        assert_eq!(frames, vec![vec![0xff, 0xd8, 42]]);
    }

    #[cfg(feature = "gstreamer")]
    #[test]
    fn gstreamer_codecs_start_when_their_plugins_are_installed() {
        let area = Rect::new(0, 0, 320, 240);
        for codec in [VideoCodec::Vp8, VideoCodec::H264] {
            assert!(codec.encodable(), "{codec:?}: the test machine has the plugins");
            let (started, mut encoder) = StreamEncoder::start(
                &[codec, VideoCodec::Mjpeg],
                area,
                70,
                spice_codec::jpeg::JpegEncoder::default(),
            )
            .unwrap();
            assert_eq!(started, codec);
            let frames = encoder.encode(&vec![90; 320 * 240 * 4], area, 70, Duration::ZERO);
            assert_eq!(frames.len(), 1, "{codec:?}");
        }
    }
}
