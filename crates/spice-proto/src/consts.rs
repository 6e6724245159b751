//! Protocol constants from `spice/protocol.h` and `spice/enums.h`.

/// `SPICE_MAGIC`: the four bytes "REDQ" read as a little-endian `u32`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"REDQ");
/// `SPICE_VERSION_MAJOR`.
pub const VERSION_MAJOR: u32 = 2;
/// `SPICE_VERSION_MINOR`.
pub const VERSION_MINOR: u32 = 2;
/// `SPICE_MAX_PASSWORD_LENGTH`: the longest ticket password, in bytes, without the NUL.
pub const MAX_PASSWORD_LENGTH: usize = 60;
/// `SPICE_TICKET_KEY_PAIR_LENGTH`: RSA modulus size of the ticket key, in bits.
pub const TICKET_KEY_BITS: usize = 1024;
/// `SPICE_TICKET_PUBKEY_BYTES`: size of the DER public key in the link reply.
pub const TICKET_PUBKEY_BYTES: usize = TICKET_KEY_BITS / 8 + 34;
/// Size of the encrypted ticket the client sends back.
pub const TICKET_BYTES: usize = TICKET_KEY_BITS / 8;

/// Channel types (`SPICE_CHANNEL_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ChannelType {
    /// `SPICE_CHANNEL_MAIN`.
    Main = 1,
    /// `SPICE_CHANNEL_DISPLAY`.
    Display = 2,
    /// `SPICE_CHANNEL_INPUTS`.
    Inputs = 3,
    /// `SPICE_CHANNEL_CURSOR`.
    Cursor = 4,
    /// `SPICE_CHANNEL_PLAYBACK`.
    Playback = 5,
    /// `SPICE_CHANNEL_RECORD`.
    Record = 6,
    /// `SPICE_CHANNEL_TUNNEL` (obsolete).
    Tunnel = 7,
    /// `SPICE_CHANNEL_SMARTCARD`.
    Smartcard = 8,
    /// `SPICE_CHANNEL_USBREDIR`.
    UsbRedir = 9,
    /// `SPICE_CHANNEL_PORT`.
    Port = 10,
    /// `SPICE_CHANNEL_WEBDAV`.
    Webdav = 11,
}

impl ChannelType {
    /// Maps a wire value to a channel type.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Main,
            2 => Self::Display,
            3 => Self::Inputs,
            4 => Self::Cursor,
            5 => Self::Playback,
            6 => Self::Record,
            7 => Self::Tunnel,
            8 => Self::Smartcard,
            9 => Self::UsbRedir,
            10 => Self::Port,
            11 => Self::Webdav,
            _ => return None,
        })
    }

    /// Lowercase name used in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::Display => "display",
            Self::Inputs => "inputs",
            Self::Cursor => "cursor",
            Self::Playback => "playback",
            Self::Record => "record",
            Self::Tunnel => "tunnel",
            Self::Smartcard => "smartcard",
            Self::UsbRedir => "usbredir",
            Self::Port => "port",
            Self::Webdav => "webdav",
        }
    }
}

/// Link errors (`SPICE_LINK_ERR_*`), sent in the link reply or as the final link result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum LinkError {
    /// `SPICE_LINK_ERR_OK`.
    Ok = 0,
    /// `SPICE_LINK_ERR_ERROR`.
    Error = 1,
    /// `SPICE_LINK_ERR_INVALID_MAGIC`.
    InvalidMagic = 2,
    /// `SPICE_LINK_ERR_INVALID_DATA`.
    InvalidData = 3,
    /// `SPICE_LINK_ERR_VERSION_MISMATCH`.
    VersionMismatch = 4,
    /// `SPICE_LINK_ERR_NEED_SECURED`.
    NeedSecured = 5,
    /// `SPICE_LINK_ERR_NEED_UNSECURED`.
    NeedUnsecured = 6,
    /// `SPICE_LINK_ERR_PERMISSION_DENIED`.
    PermissionDenied = 7,
    /// `SPICE_LINK_ERR_BAD_CONNECTION_ID`.
    BadConnectionId = 8,
    /// `SPICE_LINK_ERR_CHANNEL_NOT_AVAILABLE`.
    ChannelNotAvailable = 9,
}

impl LinkError {
    /// The wire value.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// Common capability bits (`SPICE_COMMON_CAP_*`).
pub mod common_cap {
    /// `SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION`.
    pub const PROTOCOL_AUTH_SELECTION: u32 = 0;
    /// `SPICE_COMMON_CAP_AUTH_SPICE`.
    pub const AUTH_SPICE: u32 = 1;
    /// `SPICE_COMMON_CAP_AUTH_SASL`.
    pub const AUTH_SASL: u32 = 2;
    /// `SPICE_COMMON_CAP_MINI_HEADER`.
    pub const MINI_HEADER: u32 = 3;
}

/// Main channel capability bits (`SPICE_MAIN_CAP_*`).
pub mod main_cap {
    /// `SPICE_MAIN_CAP_SEMI_SEAMLESS_MIGRATE`.
    pub const SEMI_SEAMLESS_MIGRATE: u32 = 0;
    /// `SPICE_MAIN_CAP_NAME_AND_UUID`.
    pub const NAME_AND_UUID: u32 = 1;
    /// `SPICE_MAIN_CAP_AGENT_CONNECTED_TOKENS`.
    pub const AGENT_CONNECTED_TOKENS: u32 = 2;
    /// `SPICE_MAIN_CAP_SEAMLESS_MIGRATE`.
    pub const SEAMLESS_MIGRATE: u32 = 3;
}

/// Display channel capability bits (`SPICE_DISPLAY_CAP_*`).
pub mod display_cap {
    /// `SPICE_DISPLAY_CAP_SIZED_STREAM`.
    pub const SIZED_STREAM: u32 = 0;
    /// `SPICE_DISPLAY_CAP_MONITORS_CONFIG`.
    pub const MONITORS_CONFIG: u32 = 1;
    /// `SPICE_DISPLAY_CAP_COMPOSITE`.
    pub const COMPOSITE: u32 = 2;
    /// `SPICE_DISPLAY_CAP_A8_SURFACE`.
    pub const A8_SURFACE: u32 = 3;
    /// `SPICE_DISPLAY_CAP_STREAM_REPORT`.
    pub const STREAM_REPORT: u32 = 4;
    /// `SPICE_DISPLAY_CAP_LZ4_COMPRESSION`.
    pub const LZ4_COMPRESSION: u32 = 5;
    /// `SPICE_DISPLAY_CAP_PREF_COMPRESSION`.
    pub const PREF_COMPRESSION: u32 = 6;
    /// `SPICE_DISPLAY_CAP_MULTI_CODEC`: the client lists the stream codecs
    /// it decodes (the `CODEC_*` bits); without it, MJPEG only.
    pub const MULTI_CODEC: u32 = 8;
    /// `SPICE_DISPLAY_CAP_CODEC_MJPEG`.
    pub const CODEC_MJPEG: u32 = 9;
    /// `SPICE_DISPLAY_CAP_CODEC_VP8`.
    pub const CODEC_VP8: u32 = 10;
    /// `SPICE_DISPLAY_CAP_CODEC_H264`.
    pub const CODEC_H264: u32 = 11;
    /// `SPICE_DISPLAY_CAP_PREF_VIDEO_CODEC_TYPE`: `PREFERRED_VIDEO_CODEC_TYPE` is understood.
    pub const PREF_VIDEO_CODEC_TYPE: u32 = 12;
    /// `SPICE_DISPLAY_CAP_CODEC_VP9`.
    pub const CODEC_VP9: u32 = 13;
}

/// Inputs channel capability bits (`SPICE_INPUTS_CAP_*`).
pub mod inputs_cap {
    /// `SPICE_INPUTS_CAP_KEY_SCANCODE`: the server accepts `KEY_SCANCODE` messages.
    pub const KEY_SCANCODE: u32 = 0;
}

/// Playback channel capability bits (`SPICE_PLAYBACK_CAP_*`).
pub mod playback_cap {
    /// `SPICE_PLAYBACK_CAP_CELT_0_5_1` (obsolete codec).
    pub const CELT_0_5_1: u32 = 0;
    /// `SPICE_PLAYBACK_CAP_VOLUME`: `VOLUME` and `MUTE` messages are understood.
    pub const VOLUME: u32 = 1;
    /// `SPICE_PLAYBACK_CAP_LATENCY`: the `LATENCY` message is understood.
    pub const LATENCY: u32 = 2;
    /// `SPICE_PLAYBACK_CAP_OPUS`: Opus-compressed data is understood.
    pub const OPUS: u32 = 3;
}

/// Record channel capability bits (`SPICE_RECORD_CAP_*`).
pub mod record_cap {
    /// `SPICE_RECORD_CAP_CELT_0_5_1` (obsolete codec).
    pub const CELT: u32 = 0;
    /// `SPICE_RECORD_CAP_VOLUME`: `VOLUME` and `MUTE` messages are understood.
    pub const VOLUME: u32 = 1;
    /// `SPICE_RECORD_CAP_OPUS`: Opus-compressed data is understood.
    pub const OPUS: u32 = 2;
}

/// Spicevmc (usbredir, port, webdav) channel capability bits (`SPICE_SPICEVMC_CAP_*`).
pub mod spicevmc_cap {
    /// `SPICE_SPICEVMC_CAP_DATA_COMPRESS_LZ4`: `COMPRESSED_DATA` with LZ4 is understood.
    pub const DATA_COMPRESS_LZ4: u32 = 0;
}

/// Audio sample formats and data modes shared by playback and record.
pub mod audio {
    /// `SPICE_AUDIO_FMT_S16`: signed 16-bit little-endian samples, interleaved.
    pub const FMT_S16: u16 = 1;
    /// `SPICE_AUDIO_DATA_MODE_INVALID`.
    pub const MODE_INVALID: u16 = 0;
    /// `SPICE_AUDIO_DATA_MODE_RAW`: uncompressed PCM in the audio format.
    pub const MODE_RAW: u16 = 1;
    /// `SPICE_AUDIO_DATA_MODE_CELT_0_5_1` (obsolete).
    pub const MODE_CELT_0_5_1: u16 = 2;
    /// `SPICE_AUDIO_DATA_MODE_OPUS`.
    pub const MODE_OPUS: u16 = 3;
    /// Bytes of one S16 stereo frame (`SPICE_INTERFACE_PLAYBACK_CHAN` = 2 channels).
    pub const S16_STEREO_FRAME_BYTES: usize = 4;
}

/// Mouse modes (`SPICE_MOUSE_MODE_*`), used as bit flags.
pub mod mouse_mode {
    /// Relative motion, cursor drawn by the server.
    pub const SERVER: u32 = 1;
    /// Absolute positions, cursor drawn by the client.
    pub const CLIENT: u32 = 2;
}
