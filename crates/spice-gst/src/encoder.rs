//! One stream's encoder: a GStreamer pipeline fed a frame at a time.

use std::sync::OnceLock;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use spice_codec::yuv::{self, ChromaSiting, I420Layout, Matrix};

/// A codec GStreamer encodes for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// VP8 (`SPICE_VIDEO_CODEC_TYPE_VP8`).
    Vp8,
    /// VP9 (`SPICE_VIDEO_CODEC_TYPE_VP9`).
    Vp9,
    /// H.264, Annex B byte stream (`SPICE_VIDEO_CODEC_TYPE_H264`).
    H264,
}

/// Why a stream's encoder could not be made or could not encode a frame.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// GStreamer itself did not start.
    #[error("gstreamer cannot start: {0}")]
    Init(String),
    /// This machine has no GStreamer element for the codec.
    #[error("no gstreamer encoder for {0:?} (install gstreamer1.0-plugins-good for vp8/vp9, -ugly or -bad for h264)")]
    Unavailable(VideoCodec),
    /// The pipeline could not be built or started.
    #[error("gstreamer pipeline for {codec:?}: {reason}")]
    Pipeline {
        /// The codec of the pipeline.
        codec: VideoCodec,
        /// What went wrong.
        reason: String,
    },
    /// The frame's size or buffer does not match the stream.
    #[error("frame of {got} bytes for a {width}x{height} stream")]
    BadFrame {
        /// The stream's width.
        width: u32,
        /// The stream's height.
        height: u32,
        /// The bytes given.
        got: usize,
    },
    /// The pipeline refused the frame or failed while encoding it.
    #[error("gstreamer encoding failed: {0}")]
    Encode(String),
}

/// How the bit rate is set on an element: the property, and whether it
/// counts kbit/s.
struct BitRateProperty {
    name: &'static str,
    kbit: bool,
}

/// One GStreamer encoder the server can use for a codec: the element, its
/// options (the C server's, for the same reasons: constant bit rate, no
/// frame of latency, real-time speed), and its bit-rate property.
struct Element {
    factory: &'static str,
    options: &'static str,
    bit_rate: BitRateProperty,
}

/// The elements to try, per codec, best first.
fn elements(codec: VideoCodec) -> &'static [Element] {
    // VP8/VP9: constant bit rate, a floor on the quantizer (no needless
    // bits), error resilience, and "realtime" (no lag, deadline 1, cpu-used 4).
    const VPX_OPTIONS: &str =
        "end-usage=cbr min-quantizer=10 error-resilient=default lag-in-frames=0 deadline=1 cpu-used=4";
    const VP8: &[Element] = &[Element {
        factory: "vp8enc",
        options: VPX_OPTIONS,
        bit_rate: BitRateProperty {
            name: "target-bitrate",
            kbit: false,
        },
    }];
    const VP9: &[Element] = &[Element {
        factory: "vp9enc",
        options: VPX_OPTIONS,
        bit_rate: BitRateProperty {
            name: "target-bitrate",
            kbit: false,
        },
    }];
    // x264: byte stream with access-unit delimiters, quantizer kept between
    // 15 and 35, zero latency, sliced threads, fastest preset, intra refresh
    // (even frame sizes). openh264 where x264 is not installed.
    const H264: &[Element] = &[
        Element {
            factory: "x264enc",
            options: "byte-stream=true aud=true qp-min=15 qp-max=35 tune=zerolatency sliced-threads=true \
                      speed-preset=ultrafast intra-refresh=true",
            bit_rate: BitRateProperty {
                name: "bitrate",
                kbit: true,
            },
        },
        Element {
            factory: "openh264enc",
            options: "rate-control=bitrate complexity=low",
            bit_rate: BitRateProperty {
                name: "bitrate",
                kbit: false,
            },
        },
    ];
    match codec {
        VideoCodec::Vp8 => VP8,
        VideoCodec::Vp9 => VP9,
        VideoCodec::H264 => H264,
    }
}

/// Starts GStreamer once per process; the error, if it cannot.
fn init() -> Result<(), EncodeError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| gst::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(EncodeError::Init)
}

/// The first element for `codec` that this machine has.
fn installed(codec: VideoCodec) -> Option<&'static Element> {
    elements(codec)
        .iter()
        .find(|e| gst::ElementFactory::find(e.factory).is_some())
}

/// How long a frame may take to come out of the encoder before it counts
/// as lost (the first frame of a pipeline includes its start).
const ENCODE_TIMEOUT: Duration = Duration::from_secs(1);

/// A stream's encoder: frames of one size in, encoded frames out.
pub struct VideoEncoder {
    codec: VideoCodec,
    width: u32,
    height: u32,
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    sink: gst_app::AppSink,
    encoder: gst::Element,
    bit_rate_property: &'static BitRateProperty,
    bit_rate: u64,
    matrix: Matrix,
    siting: ChromaSiting,
    layout: I420Layout,
}

impl std::fmt::Debug for VideoEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoEncoder")
            .field("codec", &self.codec)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bit_rate", &self.bit_rate)
            .finish_non_exhaustive()
    }
}

impl VideoEncoder {
    /// Whether this machine can encode `codec` (GStreamer starts and has an
    /// element for it).
    pub fn available(codec: VideoCodec) -> bool {
        init().is_ok() && installed(codec).is_some()
    }

    /// An encoder for `width` x `height` BGRx frames (both even: the
    /// encoders work in 4:2:0) at about `bit_rate` bits per second.
    pub fn new(codec: VideoCodec, width: u32, height: u32, bit_rate: u64) -> Result<Self, EncodeError> {
        init()?;
        let element = installed(codec).ok_or(EncodeError::Unavailable(codec))?;
        let pipeline_error = |reason: String| EncodeError::Pipeline { codec, reason };
        if width == 0 || height == 0 || width % 2 != 0 || height % 2 != 0 || width > 8192 || height > 8192 {
            return Err(pipeline_error(format!("unsupported frame size {width}x{height}")));
        }
        // Frames go in as I420 converted here, not through `videoconvert`:
        // see `spice_codec::yuv` (the colours come back closer).
        let description = format!(
            "appsrc name=src is-live=true format=time ! {} name=encoder {} ! appsink name=sink sync=false",
            element.factory, element.options
        );
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| pipeline_error(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| pipeline_error("not a pipeline".into()))?;
        let by_name = |name: &str| {
            pipeline
                .by_name(name)
                .ok_or_else(|| pipeline_error(format!("no element {name}")))
        };
        let src = by_name("src")?
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| pipeline_error("src is not an appsrc".into()))?;
        let sink = by_name("sink")?
            .downcast::<gst_app::AppSink>()
            .map_err(|_| pipeline_error("sink is not an appsink".into()))?;
        let encoder = by_name("encoder")?;
        // What the client assumes for a stream of this height, spelt out
        // (x264 then describes it in the stream).
        let (matrix, siting) = yuv::default_for_height(height);
        src.set_caps(Some(
            &gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("colorimetry", matrix.colorimetry())
                .field(
                    "chroma-site",
                    match siting {
                        ChromaSiting::Centered => "jpeg",
                        ChromaSiting::HorizontallyCosited => "mpeg2",
                    },
                )
                .field("width", width as i32)
                .field("height", height as i32)
                // A frame rate, not 0/1 (variable): with none, x264 holds
                // each frame until the next one comes.
                .field("framerate", gst::Fraction::new(30, 1))
                .build(),
        ));
        let mut this = Self {
            codec,
            width,
            height,
            pipeline,
            src,
            sink,
            encoder,
            bit_rate_property: &element.bit_rate,
            bit_rate,
            matrix,
            siting,
            layout: I420Layout::new(width, height),
        };
        this.set_bit_rate(bit_rate);
        this.pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| pipeline_error(e.to_string()))?;
        tracing::debug!(
            ?codec,
            element = element.factory,
            width,
            height,
            bit_rate,
            "video encoder ready"
        );
        Ok(this)
    }

    /// The stream's codec.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// The bit rate asked for, in bits per second.
    pub fn bit_rate(&self) -> u64 {
        self.bit_rate
    }

    /// Asks the encoder for about `bit_rate` bits per second from the next
    /// frame on (clamped to what the element takes).
    pub fn set_bit_rate(&mut self, bit_rate: u64) {
        self.bit_rate = bit_rate;
        let property = self.bit_rate_property;
        let value = if property.kbit { bit_rate / 1000 } else { bit_rate };
        let Some(spec) = self.encoder.find_property(property.name) else {
            tracing::debug!(property = property.name, "the encoder has no bit-rate property");
            return;
        };
        // A GObject property takes exactly its own type; anything else would
        // abort, so the value is made to measure.
        let value = if let Some(s) = spec.downcast_ref::<gst::glib::ParamSpecInt>() {
            (value.clamp(s.minimum().max(0) as u64, s.maximum().max(0) as u64) as i32).to_value()
        } else if let Some(s) = spec.downcast_ref::<gst::glib::ParamSpecUInt>() {
            (value.clamp(u64::from(s.minimum()), u64::from(s.maximum())) as u32).to_value()
        } else if let Some(s) = spec.downcast_ref::<gst::glib::ParamSpecInt64>() {
            (value.clamp(s.minimum().max(0) as u64, s.maximum().max(0) as u64) as i64).to_value()
        } else if let Some(s) = spec.downcast_ref::<gst::glib::ParamSpecUInt64>() {
            value.clamp(s.minimum(), s.maximum()).to_value()
        } else {
            tracing::debug!(property = property.name, "unexpected bit-rate property type");
            return;
        };
        self.encoder.set_property_from_value(property.name, &value);
    }

    /// Encodes one frame: `pixels` holds `height` rows of `stride` bytes,
    /// each starting with `width` BGRx pixels; `time` is the frame's time in
    /// the stream (the encoder's rate control counts bits per second of it).
    /// Returns the encoded frames that came out (normally exactly one; none
    /// if the encoder dropped or held the frame).
    pub fn encode(
        &mut self,
        pixels: &[u8],
        stride: usize,
        time: Duration,
    ) -> Result<Vec<Vec<u8>>, EncodeError> {
        let image = spice_codec::ImageRef {
            width: self.width,
            height: self.height,
            stride,
            data: pixels,
        };
        if image.validate().is_err() {
            return Err(EncodeError::BadFrame {
                width: self.width,
                height: self.height,
                got: pixels.len(),
            });
        }
        let mut buffer =
            gst::Buffer::with_size(self.layout.size).map_err(|e| EncodeError::Encode(e.to_string()))?;
        {
            let buffer = buffer
                .get_mut()
                .ok_or_else(|| EncodeError::Encode("buffer not writable".into()))?;
            buffer.set_pts(gst::ClockTime::from_nseconds(time.as_nanos() as u64));
            let mut map = buffer
                .map_writable()
                .map_err(|e| EncodeError::Encode(e.to_string()))?;
            yuv::bgrx_to_i420(&image, self.matrix, self.siting, &mut map)
                .map_err(|e| EncodeError::Encode(e.to_string()))?;
        }
        self.src
            .push_buffer(buffer)
            .map_err(|e| EncodeError::Encode(format!("{e:?}")))?;
        let mut frames = Vec::new();
        let mut wait = ENCODE_TIMEOUT;
        while let Some(sample) = self
            .sink
            .try_pull_sample(gst::ClockTime::from_nseconds(wait.as_nanos() as u64))
        {
            if let Some(buffer) = sample.buffer() {
                let map = buffer
                    .map_readable()
                    .map_err(|e| EncodeError::Encode(e.to_string()))?;
                frames.push(map.as_slice().to_vec());
            }
            // Whatever else is ready goes too, without waiting.
            wait = Duration::ZERO;
        }
        // Nobody else reads the pipeline's bus: emptied at every frame, it
        // holds no more than a frame's messages.
        self.drain_bus()?;
        Ok(frames)
    }

    /// Empties the pipeline's bus; its first error, if it reported one.
    fn drain_bus(&self) -> Result<(), EncodeError> {
        let Some(bus) = self.pipeline.bus() else {
            return Ok(());
        };
        let mut error = None;
        while let Some(message) = bus.pop() {
            if let gst::MessageView::Error(e) = message.view() {
                error.get_or_insert_with(|| e.error().to_string());
            }
        }
        error.map_or(Ok(()), |e| Err(EncodeError::Encode(e)))
    }
}

impl Drop for VideoEncoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests;
