//! Display channel messages (`DisplayChannel` in `spice.proto`).

use super::base::BaseClientMessage;
use super::{Rect, ServerMessage};
use crate::error::DecodeError;
use crate::wire::{Reader, Writer};

/// Server message types of the display channel.
pub mod server_type {
    /// `SPICE_MSG_DISPLAY_MARK`: the first complete picture is on screen.
    pub const MARK: u16 = 102;
    /// `SPICE_MSG_DISPLAY_RESET`.
    pub const RESET: u16 = 103;
    /// `SPICE_MSG_DISPLAY_COPY_BITS`.
    pub const COPY_BITS: u16 = 104;
    /// `SPICE_MSG_DISPLAY_INVAL_LIST`.
    pub const INVAL_LIST: u16 = 105;
    /// `SPICE_MSG_DISPLAY_INVAL_ALL_PIXMAPS`.
    pub const INVAL_ALL_PIXMAPS: u16 = 106;
    /// `SPICE_MSG_DISPLAY_STREAM_CREATE`.
    pub const STREAM_CREATE: u16 = 122;
    /// `SPICE_MSG_DISPLAY_STREAM_DATA`.
    pub const STREAM_DATA: u16 = 123;
    /// `SPICE_MSG_DISPLAY_STREAM_CLIP`.
    pub const STREAM_CLIP: u16 = 124;
    /// `SPICE_MSG_DISPLAY_STREAM_DESTROY`.
    pub const STREAM_DESTROY: u16 = 125;
    /// `SPICE_MSG_DISPLAY_STREAM_DESTROY_ALL`.
    pub const STREAM_DESTROY_ALL: u16 = 126;
    /// `SPICE_MSG_DISPLAY_DRAW_COPY`.
    pub const DRAW_COPY: u16 = 304;
    /// `SPICE_MSG_DISPLAY_SURFACE_CREATE`.
    pub const SURFACE_CREATE: u16 = 314;
    /// `SPICE_MSG_DISPLAY_SURFACE_DESTROY`.
    pub const SURFACE_DESTROY: u16 = 315;
    /// `SPICE_MSG_DISPLAY_MONITORS_CONFIG`.
    pub const MONITORS_CONFIG: u16 = 317;
    /// `SPICE_MSG_DISPLAY_STREAM_ACTIVATE_REPORT`.
    pub const STREAM_ACTIVATE_REPORT: u16 = 319;
}

/// Client message types of the display channel.
pub mod client_type {
    /// `SPICE_MSGC_DISPLAY_INIT`.
    pub const INIT: u16 = 101;
    /// `SPICE_MSGC_DISPLAY_STREAM_REPORT`.
    pub const STREAM_REPORT: u16 = 102;
    /// `SPICE_MSGC_DISPLAY_PREFERRED_COMPRESSION`.
    pub const PREFERRED_COMPRESSION: u16 = 103;
    /// `SPICE_MSGC_DISPLAY_GL_DRAW_DONE`.
    pub const GL_DRAW_DONE: u16 = 104;
    /// `SPICE_MSGC_DISPLAY_PREFERRED_VIDEO_CODEC_TYPE`.
    pub const PREFERRED_VIDEO_CODEC_TYPE: u16 = 105;
}

/// `SPICE_SURFACE_FMT_32_xRGB`.
pub const SURFACE_FMT_32_XRGB: u32 = 32;
/// `SPICE_SURFACE_FLAGS_PRIMARY`.
pub const SURFACE_FLAGS_PRIMARY: u32 = 1;
/// `SPICE_BITMAP_FMT_32BIT`: 4 bytes per pixel, xRGB little endian.
pub const BITMAP_FMT_32BIT: u8 = 8;
/// `SPICE_BITMAP_FLAGS_TOP_DOWN`.
pub const BITMAP_FLAGS_TOP_DOWN: u8 = 1 << 2;
/// `SPICE_IMAGE_TYPE_BITMAP`.
pub const IMAGE_TYPE_BITMAP: u8 = image_type::BITMAP;
/// `SPICE_ROPD_OP_PUT`.
pub const ROPD_OP_PUT: u16 = 1 << 3;

/// `SPICE_MSG_DISPLAY_MARK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark;

impl ServerMessage for Mark {
    const TYPE: u16 = server_type::MARK;
    fn encode_body(&self, _out: &mut Vec<u8>) {}
}

/// `SPICE_MSG_DISPLAY_SURFACE_CREATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurfaceCreate {
    /// 0 for the primary surface.
    pub surface_id: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `SPICE_SURFACE_FMT_*`.
    pub format: u32,
    /// `SPICE_SURFACE_FLAGS_*`.
    pub flags: u32,
}

impl ServerMessage for SurfaceCreate {
    const TYPE: u16 = server_type::SURFACE_CREATE;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out)
            .u32(self.surface_id)
            .u32(self.width)
            .u32(self.height)
            .u32(self.format)
            .u32(self.flags);
    }
}

/// `SPICE_MSG_DISPLAY_SURFACE_DESTROY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurfaceDestroy {
    /// The surface to drop.
    pub surface_id: u32,
}

impl ServerMessage for SurfaceDestroy {
    const TYPE: u16 = server_type::SURFACE_DESTROY;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u32(self.surface_id);
    }
}

/// One monitor of `SPICE_MSG_DISPLAY_MONITORS_CONFIG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Monitor index.
    pub monitor_id: u32,
    /// Surface shown on this monitor.
    pub surface_id: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Position of the monitor within the surface.
    pub x: u32,
    /// Position of the monitor within the surface.
    pub y: u32,
    /// Unused flags.
    pub flags: u32,
}

/// `SPICE_MSG_DISPLAY_MONITORS_CONFIG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorsConfig {
    /// Most monitors the guest supports.
    pub max_allowed: u16,
    /// The current monitors.
    pub heads: Vec<Head>,
}

impl ServerMessage for MonitorsConfig {
    const TYPE: u16 = server_type::MONITORS_CONFIG;
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u16(self.heads.len() as u16).u16(self.max_allowed);
        for h in &self.heads {
            w.u32(h.monitor_id)
                .u32(h.surface_id)
                .u32(h.width)
                .u32(h.height)
                .u32(h.x)
                .u32(h.y)
                .u32(h.flags);
        }
    }
}

/// `SPICE_IMAGE_TYPE_*` of the images the server sends.
pub mod image_type {
    /// `SPICE_IMAGE_TYPE_BITMAP`.
    pub const BITMAP: u8 = 0;
    /// `SPICE_IMAGE_TYPE_QUIC`.
    pub const QUIC: u8 = 1;
    /// `SPICE_IMAGE_TYPE_LZ_RGB`.
    pub const LZ_RGB: u8 = 101;
    /// `SPICE_IMAGE_TYPE_GLZ_RGB`.
    pub const GLZ_RGB: u8 = 102;
    /// `SPICE_IMAGE_TYPE_FROM_CACHE`.
    pub const FROM_CACHE: u8 = 103;
    /// `SPICE_IMAGE_TYPE_JPEG`.
    pub const JPEG: u8 = 105;
    /// `SPICE_IMAGE_TYPE_FROM_CACHE_LOSSLESS`.
    pub const FROM_CACHE_LOSSLESS: u8 = 106;
    /// `SPICE_IMAGE_TYPE_ZLIB_GLZ_RGB`.
    pub const ZLIB_GLZ_RGB: u8 = 107;
    /// `SPICE_IMAGE_TYPE_LZ4`.
    pub const LZ4: u8 = 109;
}

/// `SPICE_IMAGE_FLAGS_*`.
pub mod image_flags {
    /// `SPICE_IMAGE_FLAGS_CACHE_ME`: the client keeps the image under its id.
    pub const CACHE_ME: u8 = 1;
    /// `SPICE_IMAGE_FLAGS_HIGH_BITS_SET`.
    pub const HIGH_BITS_SET: u8 = 2;
    /// `SPICE_IMAGE_FLAGS_CACHE_REPLACE_ME`.
    pub const CACHE_REPLACE_ME: u8 = 4;
}

/// How an image's pixels travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageData<'a> {
    /// Uncompressed 32-bit xRGB rows, top first (`SPICE_BITMAP_FMT_32BIT`, TOP_DOWN).
    Bitmap {
        /// Bytes per row of `data`.
        stride: u32,
        /// `stride * height` bytes.
        data: &'a [u8],
    },
    /// A QUIC stream (`BinaryData`).
    Quic(&'a [u8]),
    /// An LZ stream of an RGB image (`BinaryData`).
    LzRgb(&'a [u8]),
    /// A GLZ stream (`BinaryData`), referring to the client's GLZ dictionary.
    GlzRgb(&'a [u8]),
    /// A GLZ stream deflated with zlib.
    ZlibGlzRgb {
        /// Size of the GLZ stream before deflate.
        glz_size: u32,
        /// The deflated bytes.
        data: &'a [u8],
    },
    /// The SPICE LZ4 framing (`BinaryData`).
    Lz4(&'a [u8]),
    /// A baseline JFIF stream (`BinaryData`), lossy.
    Jpeg(&'a [u8]),
    /// The client has the image in its pixmap cache under the descriptor's id.
    FromCache,
    /// The client has the image in its pixmap cache under the descriptor's
    /// id, and must use it only if it was cached lossless.
    FromCacheLossless,
}

impl ImageData<'_> {
    fn image_type(&self) -> u8 {
        match self {
            Self::Bitmap { .. } => image_type::BITMAP,
            Self::Quic(_) => image_type::QUIC,
            Self::LzRgb(_) => image_type::LZ_RGB,
            Self::GlzRgb(_) => image_type::GLZ_RGB,
            Self::ZlibGlzRgb { .. } => image_type::ZLIB_GLZ_RGB,
            Self::Lz4(_) => image_type::LZ4,
            Self::Jpeg(_) => image_type::JPEG,
            Self::FromCache => image_type::FROM_CACHE,
            Self::FromCacheLossless => image_type::FROM_CACHE_LOSSLESS,
        }
    }

    /// Bytes of payload (for buffer sizing and statistics).
    pub fn len(&self) -> usize {
        match self {
            Self::Bitmap { data, .. }
            | Self::Quic(data)
            | Self::LzRgb(data)
            | Self::GlzRgb(data)
            | Self::ZlibGlzRgb { data, .. }
            | Self::Lz4(data)
            | Self::Jpeg(data) => data.len(),
            Self::FromCache | Self::FromCacheLossless => 0,
        }
    }

    /// Whether there is no payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the client gets the exact pixels (everything but JPEG); only
    /// lossless images may be cached as such.
    pub fn is_lossless(&self) -> bool {
        !matches!(self, Self::Jpeg(_))
    }
}

/// An image (`SpiceImage`): descriptor plus data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image<'a> {
    /// Image id: the pixmap cache key when cached.
    pub id: u64,
    /// [`image_flags`].
    pub flags: u8,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The pixels.
    pub data: ImageData<'a>,
}

impl<'a> Image<'a> {
    /// An uncompressed top-down 32-bit image.
    pub fn bitmap(id: u64, width: u32, height: u32, stride: u32, data: &'a [u8]) -> Self {
        Self {
            id,
            flags: 0,
            width,
            height,
            data: ImageData::Bitmap { stride, data },
        }
    }

    /// Descriptor 8 /* id */ + 1 /* type */ + 1 /* flags */ + 4 /* width */ + 4 /* height */.
    pub const DESCRIPTOR_SIZE: usize = 18;

    fn encode(&self, w: &mut Writer<'_>) {
        w.u64(self.id)
            .u8(self.data.image_type())
            .u8(self.flags)
            .u32(self.width)
            .u32(self.height);
        match self.data {
            ImageData::Bitmap { stride, data } => {
                // 1 /* format */ + 1 /* flags */ + 4 /* x */ + 4 /* y */ + 4 /* stride */ + 4 /* palette */
                w.u8(BITMAP_FMT_32BIT)
                    .u8(BITMAP_FLAGS_TOP_DOWN)
                    .u32(self.width)
                    .u32(self.height)
                    .u32(stride)
                    .u32(0)
                    .bytes(data);
            }
            ImageData::Quic(data)
            | ImageData::LzRgb(data)
            | ImageData::GlzRgb(data)
            | ImageData::Lz4(data)
            | ImageData::Jpeg(data) => {
                w.u32(data.len() as u32).bytes(data);
            }
            ImageData::ZlibGlzRgb { glz_size, data } => {
                w.u32(glz_size).u32(data.len() as u32).bytes(data);
            }
            ImageData::FromCache | ImageData::FromCacheLossless => {}
        }
    }
}

/// `SPICE_MSG_DISPLAY_DRAW_COPY` of an image onto a surface, no clipping, no mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawCopy<'a> {
    /// Destination surface.
    pub surface_id: u32,
    /// Destination rectangle; the same size as the image.
    pub dest: Rect,
    /// Source pixels.
    pub image: Image<'a>,
}

impl DrawCopy<'_> {
    /// Size of the fixed part before the image:
    /// DisplayBase 4 /* surface_id */ + 16 /* box */ + 1 /* clip type */,
    /// Copy 4 /* src_bitmap */ + 16 /* src_area */ + 2 /* rop */ + 1 /* scale_mode */
    /// + 1 /* mask flags */ + 8 /* mask pos */ + 4 /* mask bitmap */.
    pub const FIXED_SIZE: usize = 57;
    /// Descriptor and bitmap header of an uncompressed image:
    /// 18 /* descriptor */ + 18 /* format, flags, x, y, stride, palette */.
    pub const IMAGE_HEADER_SIZE: usize = 18 + 18;
}

impl ServerMessage for DrawCopy<'_> {
    const TYPE: u16 = server_type::DRAW_COPY;
    fn encode_body(&self, out: &mut Vec<u8>) {
        let img = &self.image;
        out.reserve(Self::FIXED_SIZE + Self::IMAGE_HEADER_SIZE + img.data.len());
        let mut w = Writer::new(out);
        w.u32(self.surface_id);
        self.dest.encode(&mut w);
        w.u8(0); // SPICE_CLIP_TYPE_NONE
        w.u32(Self::FIXED_SIZE as u32); // src_bitmap: the image follows the fixed part
        Rect::from_xywh(0, 0, img.width as i32, img.height as i32).encode(&mut w);
        w.u16(ROPD_OP_PUT).u8(0); // rop, scale mode
        w.u8(0).i32(0).i32(0).u32(0); // mask: none
        img.encode(&mut w);
    }
}

/// `SPICE_RES_TYPE_PIXMAP`: a resource of the pixmap cache.
pub const RES_TYPE_PIXMAP: u8 = 1;

/// `SPICE_MSG_DISPLAY_INVAL_LIST`: the client drops these pixmap cache entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalPixmaps {
    /// Image ids to drop; at most `u16::MAX` (the encoder stops there).
    pub ids: Vec<u64>,
}

impl ServerMessage for InvalPixmaps {
    const TYPE: u16 = server_type::INVAL_LIST;
    fn encode_body(&self, out: &mut Vec<u8>) {
        let count = self.ids.len().min(u16::MAX as usize);
        let mut w = Writer::new(out);
        w.u16(count as u16);
        for id in &self.ids[..count] {
            w.u8(RES_TYPE_PIXMAP).u64(*id);
        }
    }
}

/// `SPICE_MSG_DISPLAY_INVAL_ALL_PIXMAPS` without waiting for other channels:
/// the client empties its pixmap cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalAllPixmaps;

impl ServerMessage for InvalAllPixmaps {
    const TYPE: u16 = server_type::INVAL_ALL_PIXMAPS;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u8(0); // wait_count
    }
}

/// `SPICE_MSG_DISPLAY_COPY_BITS`: the client copies a rectangle of its own
/// surface from `src` to `dest` (overlap allowed: a scroll).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyBits {
    /// Surface copied within.
    pub surface_id: u32,
    /// Destination rectangle.
    pub dest: Rect,
    /// Top-left corner of the source, same size as `dest`.
    pub src_x: i32,
    /// Top-left corner of the source.
    pub src_y: i32,
}

impl ServerMessage for CopyBits {
    const TYPE: u16 = server_type::COPY_BITS;
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u32(self.surface_id);
        self.dest.encode(&mut w);
        w.u8(0); // SPICE_CLIP_TYPE_NONE
        w.i32(self.src_x).i32(self.src_y);
    }
}

/// `SPICE_VIDEO_CODEC_TYPE_MJPEG`: every frame a baseline JPEG.
pub const VIDEO_CODEC_MJPEG: u8 = 1;
/// `SPICE_VIDEO_CODEC_TYPE_VP8`: VP8 frames.
pub const VIDEO_CODEC_VP8: u8 = 2;
/// `SPICE_VIDEO_CODEC_TYPE_H264`: H.264 access units, Annex B byte stream.
pub const VIDEO_CODEC_H264: u8 = 3;
/// `SPICE_VIDEO_CODEC_TYPE_VP9`: VP9 frames.
pub const VIDEO_CODEC_VP9: u8 = 4;
/// `SPICE_STREAM_FLAGS_TOP_DOWN`: frames' rows come top first.
pub const STREAM_FLAGS_TOP_DOWN: u8 = 1;

/// `SPICE_MSG_DISPLAY_STREAM_CREATE`: a video stream on a surface; its
/// frames follow in [`StreamData`] and are drawn into `dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCreate {
    /// Surface the stream draws on.
    pub surface_id: u32,
    /// Stream id, unique among the channel's live streams.
    pub id: u32,
    /// `STREAM_FLAGS_*`.
    pub flags: u8,
    /// `VIDEO_CODEC_*`.
    pub codec_type: u8,
    /// Creation time stamp (unused by clients).
    pub stamp: u64,
    /// Size of the encoded frames.
    pub stream_width: u32,
    /// Size of the encoded frames.
    pub stream_height: u32,
    /// Size of the source area (the frames are scaled from it).
    pub src_width: u32,
    /// Size of the source area.
    pub src_height: u32,
    /// Where the frames are drawn.
    pub dest: Rect,
}

impl ServerMessage for StreamCreate {
    const TYPE: u16 = server_type::STREAM_CREATE;
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u32(self.surface_id)
            .u32(self.id)
            .u8(self.flags)
            .u8(self.codec_type);
        w.u64(self.stamp);
        w.u32(self.stream_width).u32(self.stream_height);
        w.u32(self.src_width).u32(self.src_height);
        self.dest.encode(&mut w);
        w.u8(0); // SPICE_CLIP_TYPE_NONE
    }
}

/// `SPICE_MSG_DISPLAY_STREAM_DATA`: one encoded frame, shown by the client
/// at `multi_media_time` on the session's multimedia clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamData<'a> {
    /// The stream.
    pub id: u32,
    /// When to show the frame (milliseconds, the main channel's clock).
    pub multi_media_time: u32,
    /// The encoded frame.
    pub data: &'a [u8],
}

impl ServerMessage for StreamData<'_> {
    const TYPE: u16 = server_type::STREAM_DATA;
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u32(self.id).u32(self.multi_media_time);
        w.u32(self.data.len() as u32);
        out.extend_from_slice(self.data);
    }
}

/// `SPICE_MSG_DISPLAY_STREAM_DESTROY`: the stream ends; frames the client
/// still holds for it are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamDestroy {
    /// The stream.
    pub id: u32,
}

impl ServerMessage for StreamDestroy {
    const TYPE: u16 = server_type::STREAM_DESTROY;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u32(self.id);
    }
}

/// `SPICE_MSG_DISPLAY_STREAM_ACTIVATE_REPORT`: asks a client with
/// `SPICE_DISPLAY_CAP_STREAM_REPORT` to report how it plays a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamActivateReport {
    /// The stream.
    pub stream_id: u32,
    /// Echoed in the reports, so reports on an older stream of the same id are told apart.
    pub unique_id: u32,
    /// Frames at most between two reports.
    pub max_window_size: u32,
    /// Milliseconds at most between two reports.
    pub timeout_ms: u32,
}

impl ServerMessage for StreamActivateReport {
    const TYPE: u16 = server_type::STREAM_ACTIVATE_REPORT;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out)
            .u32(self.stream_id)
            .u32(self.unique_id)
            .u32(self.max_window_size)
            .u32(self.timeout_ms);
    }
}

/// `SPICE_MSGC_DISPLAY_STREAM_REPORT`: how the client played a stream's
/// last frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamReport {
    /// The stream.
    pub stream_id: u32,
    /// The `unique_id` of the activation.
    pub unique_id: u32,
    /// Multimedia time of the first frame reported.
    pub start_frame_mm_time: u32,
    /// Multimedia time of the last frame reported.
    pub end_frame_mm_time: u32,
    /// Frames received.
    pub num_frames: u32,
    /// Of those, dropped (late or not decoded); `u32::MAX` with no frames:
    /// the client cannot play the stream at all.
    pub num_drops: u32,
    /// Milliseconds the last frame came before its display time (negative: late).
    pub last_frame_delay: i32,
    /// The audio playback's latency, in milliseconds.
    pub audio_delay: u32,
}

/// Messages a client sends on the display channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisplayClientMessage {
    /// A message common to all channels.
    Base(BaseClientMessage),
    /// `SPICE_MSGC_DISPLAY_INIT`: cache sizes; the server starts sending after it.
    Init {
        /// Pixmap cache id.
        pixmap_cache_id: u8,
        /// Pixmap cache size in pixels.
        pixmap_cache_size: i64,
        /// GLZ dictionary id.
        glz_dictionary_id: u8,
        /// GLZ window in pixels.
        glz_dictionary_window_size: i32,
    },
    /// `SPICE_MSGC_DISPLAY_STREAM_REPORT`.
    StreamReport(StreamReport),
    /// `SPICE_MSGC_DISPLAY_PREFERRED_COMPRESSION`.
    PreferredCompression(u8),
    /// `SPICE_MSGC_DISPLAY_GL_DRAW_DONE`.
    GlDrawDone,
    /// `SPICE_MSGC_DISPLAY_PREFERRED_VIDEO_CODEC_TYPE`.
    PreferredVideoCodecType(Vec<u8>),
    /// A type this server does not know.
    Unknown(u16),
}

impl DisplayClientMessage {
    /// Decodes one display channel message.
    pub fn decode(msg_type: u16, body: &[u8]) -> Result<Self, DecodeError> {
        if let Some(base) = BaseClientMessage::decode(msg_type, body)? {
            return Ok(Self::Base(base));
        }
        let mut r = Reader::new(body);
        Ok(match msg_type {
            client_type::INIT => Self::Init {
                pixmap_cache_id: r.u8("display init pixmap cache id")?,
                pixmap_cache_size: r.i64("display init pixmap cache size")?,
                glz_dictionary_id: r.u8("display init glz dictionary id")?,
                glz_dictionary_window_size: r.i32("display init glz window size")?,
            },
            client_type::STREAM_REPORT => Self::StreamReport(StreamReport {
                stream_id: r.u32("stream report stream id")?,
                unique_id: r.u32("stream report unique id")?,
                start_frame_mm_time: r.u32("stream report start time")?,
                end_frame_mm_time: r.u32("stream report end time")?,
                num_frames: r.u32("stream report frames")?,
                num_drops: r.u32("stream report drops")?,
                last_frame_delay: r.i32("stream report last frame delay")?,
                audio_delay: r.u32("stream report audio delay")?,
            }),
            client_type::PREFERRED_COMPRESSION => Self::PreferredCompression(r.u8("preferred compression")?),
            client_type::GL_DRAW_DONE => Self::GlDrawDone,
            client_type::PREFERRED_VIDEO_CODEC_TYPE => {
                let n = r.u8("preferred video codec count")?;
                Self::PreferredVideoCodecType(r.take(n.into(), "preferred video codecs")?.to_vec())
            }
            other => Self::Unknown(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_messages_have_the_protocol_layout() {
        let mut out = Vec::new();
        StreamCreate {
            surface_id: 0,
            id: 7,
            flags: STREAM_FLAGS_TOP_DOWN,
            codec_type: VIDEO_CODEC_MJPEG,
            stamp: 1,
            stream_width: 320,
            stream_height: 240,
            src_width: 320,
            src_height: 240,
            dest: Rect {
                top: 10,
                left: 20,
                bottom: 250,
                right: 340,
            },
        }
        .encode_body(&mut out);
        // surface, id, flags, codec, stamp, 4 sizes, rect, clip type
        assert_eq!(out.len(), 4 + 4 + 1 + 1 + 8 + 16 + 16 + 1);
        assert_eq!(&out[4..10], &[7, 0, 0, 0, 1, 1]);
        out.clear();
        StreamData {
            id: 7,
            multi_media_time: 9,
            data: b"jpeg",
        }
        .encode_body(&mut out);
        assert_eq!(out, [7, 0, 0, 0, 9, 0, 0, 0, 4, 0, 0, 0, b'j', b'p', b'e', b'g']);
    }
    use crate::msg::body_of;

    #[test]
    fn cache_and_copy_bits_layouts() {
        let body = body_of(&InvalPixmaps {
            ids: vec![7, 1 << 40],
        });
        assert_eq!(body.len(), 2 + 2 * 9);
        assert_eq!(&body[..3], &[2, 0, RES_TYPE_PIXMAP]);
        assert_eq!(u64::from_le_bytes(body[3..11].try_into().unwrap()), 7);
        assert_eq!(u64::from_le_bytes(body[12..20].try_into().unwrap()), 1 << 40);
        assert_eq!(body_of(&InvalAllPixmaps), vec![0]);
        let body = body_of(&CopyBits {
            surface_id: 0,
            dest: Rect::from_xywh(5, 10, 20, 30),
            src_x: 5,
            src_y: 22,
        });
        assert_eq!(body.len(), 4 + 16 + 1 + 8);
        let word = |o: usize| i32::from_le_bytes(body[o..o + 4].try_into().unwrap());
        assert_eq!([word(4), word(8), word(12), word(16)], [10, 5, 40, 25]);
        assert_eq!(body[20], 0, "clip none");
        assert_eq!([word(21), word(25)], [5, 22]);
        let jpeg = [0xff, 0xd8, 0xff, 0xd9];
        let img = Image {
            id: 3,
            flags: image_flags::CACHE_ME,
            width: 1,
            height: 1,
            data: ImageData::Jpeg(&jpeg),
        };
        let body = body_of(&DrawCopy {
            surface_id: 0,
            dest: Rect::from_xywh(0, 0, 1, 1),
            image: img,
        });
        assert_eq!(body[65], image_type::JPEG);
        assert_eq!(body[66], image_flags::CACHE_ME);
        assert_eq!(&body[75..79], &4u32.to_le_bytes());
        assert_eq!(&body[79..], &jpeg);
    }

    #[test]
    fn draw_copy_layout() {
        let pixels = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let body = body_of(&DrawCopy {
            surface_id: 0,
            dest: Rect::from_xywh(10, 20, 2, 1),
            image: Image::bitmap(42, 2, 1, 8, &pixels),
        });
        assert_eq!(body.len(), DrawCopy::FIXED_SIZE + DrawCopy::IMAGE_HEADER_SIZE + 8);
        // box: top, left, bottom, right
        let word = |o: usize| i32::from_le_bytes(body[o..o + 4].try_into().unwrap());
        assert_eq!([word(4), word(8), word(12), word(16)], [20, 10, 21, 12]);
        assert_eq!(body[20], 0, "clip none");
        assert_eq!(word(21), 57, "image offset");
        assert_eq!(u16::from_le_bytes([body[41], body[42]]), ROPD_OP_PUT);
        assert_eq!(u64::from_le_bytes(body[57..65].try_into().unwrap()), 42);
        assert_eq!(body[65], IMAGE_TYPE_BITMAP);
        assert_eq!(body[75], BITMAP_FMT_32BIT);
        assert_eq!(body[76], BITMAP_FLAGS_TOP_DOWN);
        assert_eq!(&body[93..], &pixels);
    }

    #[test]
    fn compressed_images_carry_their_size() {
        let body = body_of(&DrawCopy {
            surface_id: 0,
            dest: Rect::from_xywh(0, 0, 4, 4),
            image: Image {
                id: 9,
                flags: image_flags::CACHE_ME,
                width: 4,
                height: 4,
                data: ImageData::LzRgb(&[1, 2, 3]),
            },
        });
        let img = &body[DrawCopy::FIXED_SIZE..];
        assert_eq!((img[8], img[9]), (image_type::LZ_RGB, image_flags::CACHE_ME));
        assert_eq!(&img[18..22], &3u32.to_le_bytes());
        assert_eq!(&img[22..], &[1, 2, 3]);
        let cached = body_of(&DrawCopy {
            surface_id: 0,
            dest: Rect::from_xywh(0, 0, 4, 4),
            image: Image {
                id: 9,
                flags: 0,
                width: 4,
                height: 4,
                data: ImageData::FromCache,
            },
        });
        assert_eq!(cached.len(), DrawCopy::FIXED_SIZE + Image::DESCRIPTOR_SIZE);
        let zlib = body_of(&DrawCopy {
            surface_id: 0,
            dest: Rect::from_xywh(0, 0, 4, 4),
            image: Image {
                id: 1,
                flags: 0,
                width: 4,
                height: 4,
                data: ImageData::ZlibGlzRgb {
                    glz_size: 100,
                    data: &[7; 5],
                },
            },
        });
        let z = &zlib[DrawCopy::FIXED_SIZE + Image::DESCRIPTOR_SIZE..];
        assert_eq!(
            (&z[..4], &z[4..8]),
            (&100u32.to_le_bytes()[..], &5u32.to_le_bytes()[..])
        );
    }

    #[test]
    fn decodes_init_and_rejects_truncated() {
        let mut body = Vec::new();
        Writer::new(&mut body).u8(1).u64(1000).u8(2).i32(-1);
        assert_eq!(
            DisplayClientMessage::decode(client_type::INIT, &body).unwrap(),
            DisplayClientMessage::Init {
                pixmap_cache_id: 1,
                pixmap_cache_size: 1000,
                glz_dictionary_id: 2,
                glz_dictionary_window_size: -1
            }
        );
        assert!(DisplayClientMessage::decode(client_type::INIT, &body[..9]).is_err());
        assert!(DisplayClientMessage::decode(client_type::PREFERRED_VIDEO_CODEC_TYPE, &[5, 1]).is_err());
    }
}
