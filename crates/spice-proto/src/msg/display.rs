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
    /// `SPICE_MSG_DISPLAY_INVAL_ALL_PIXMAPS`.
    pub const INVAL_ALL_PIXMAPS: u16 = 106;
    /// `SPICE_MSG_DISPLAY_DRAW_COPY`.
    pub const DRAW_COPY: u16 = 304;
    /// `SPICE_MSG_DISPLAY_SURFACE_CREATE`.
    pub const SURFACE_CREATE: u16 = 314;
    /// `SPICE_MSG_DISPLAY_SURFACE_DESTROY`.
    pub const SURFACE_DESTROY: u16 = 315;
    /// `SPICE_MSG_DISPLAY_MONITORS_CONFIG`.
    pub const MONITORS_CONFIG: u16 = 317;
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
pub const IMAGE_TYPE_BITMAP: u8 = 0;
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

/// An uncompressed 32-bit bitmap (`SPICE_IMAGE_TYPE_BITMAP`, `SPICE_BITMAP_FMT_32BIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bitmap<'a> {
    /// Image id, unique per content for caching.
    pub id: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row of `data`.
    pub stride: u32,
    /// Rows top to bottom, `stride * height` bytes.
    pub data: &'a [u8],
}

/// `SPICE_MSG_DISPLAY_DRAW_COPY` of a bitmap onto a surface, no clipping, no mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawCopy<'a> {
    /// Destination surface.
    pub surface_id: u32,
    /// Destination rectangle; the same size as the bitmap.
    pub dest: Rect,
    /// Source pixels.
    pub bitmap: Bitmap<'a>,
}

impl DrawCopy<'_> {
    /// Size of the fixed part before the image:
    /// DisplayBase 4 /* surface_id */ + 16 /* box */ + 1 /* clip type */,
    /// Copy 4 /* src_bitmap */ + 16 /* src_area */ + 2 /* rop */ + 1 /* scale_mode */
    /// + 1 /* mask flags */ + 8 /* mask pos */ + 4 /* mask bitmap */.
    pub const FIXED_SIZE: usize = 57;
    /// Image descriptor 8 /* id */ + 1 /* type */ + 1 /* flags */ + 4 /* width */ + 4 /* height */,
    /// then bitmap 1 /* format */ + 1 /* flags */ + 4 /* x */ + 4 /* y */ + 4 /* stride */ + 4 /* palette */.
    pub const IMAGE_HEADER_SIZE: usize = 18 + 18;
}

impl ServerMessage for DrawCopy<'_> {
    const TYPE: u16 = server_type::DRAW_COPY;
    fn encode_body(&self, out: &mut Vec<u8>) {
        let b = &self.bitmap;
        out.reserve(Self::FIXED_SIZE + Self::IMAGE_HEADER_SIZE + b.data.len());
        let mut w = Writer::new(out);
        w.u32(self.surface_id);
        self.dest.encode(&mut w);
        w.u8(0); // SPICE_CLIP_TYPE_NONE
        w.u32(Self::FIXED_SIZE as u32); // src_bitmap: the image follows the fixed part
        Rect::from_xywh(0, 0, b.width as i32, b.height as i32).encode(&mut w);
        w.u16(ROPD_OP_PUT).u8(0); // rop, scale mode
        w.u8(0).i32(0).i32(0).u32(0); // mask: none
        w.u64(b.id)
            .u8(IMAGE_TYPE_BITMAP)
            .u8(0)
            .u32(b.width)
            .u32(b.height)
            .u8(BITMAP_FMT_32BIT)
            .u8(BITMAP_FLAGS_TOP_DOWN)
            .u32(b.width)
            .u32(b.height)
            .u32(b.stride)
            .u32(0) // no palette
            .bytes(b.data);
    }
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
    /// `SPICE_MSGC_DISPLAY_STREAM_REPORT` (streams are not sent yet; ignored).
    StreamReport,
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
            client_type::STREAM_REPORT => {
                // 8 fields of u32/i32.
                r.take(32, "stream report")?;
                Self::StreamReport
            }
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
    use crate::msg::body_of;

    #[test]
    fn draw_copy_layout() {
        let pixels = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let body = body_of(&DrawCopy {
            surface_id: 0,
            dest: Rect::from_xywh(10, 20, 2, 1),
            bitmap: Bitmap {
                id: 42,
                width: 2,
                height: 1,
                stride: 8,
                data: &pixels,
            },
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
