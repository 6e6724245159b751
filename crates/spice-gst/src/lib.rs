//! VP8, VP9 and H.264 encoders for SPICE video streams, through GStreamer.
//!
//! The C server encodes these codecs through GStreamer too, with the same
//! elements (`vp8enc`, `vp9enc`, `x264enc`), so a host that streams VP8
//! with the C library streams it with ours given the same plugins. The
//! pipeline is `appsrc ! videoconvert ! <encoder> ! appsink`; a frame goes in
//! as BGRx rows (the surface's own format) and comes out as one encoded
//! frame, ready for `SPICE_MSG_DISPLAY_STREAM_DATA`: VP8/VP9 frames as the
//! encoder writes them, H.264 as an Annex B byte stream, one access unit per
//! frame (spice-gtk feeds both to its GStreamer decoder unchanged).
//!
//! GStreamer is a runtime dependency: [`VideoEncoder::available`] says
//! whether this machine has the element, and a server falls back to its own
//! MJPEG when it has not.

mod encoder;

pub use encoder::{EncodeError, VideoCodec, VideoEncoder};
