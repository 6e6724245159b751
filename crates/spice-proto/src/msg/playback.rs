//! Playback channel messages (`PlaybackChannel` in `spice.proto`).
//!
//! The server streams audio to the client: `MODE` says how `DATA` is encoded,
//! `START` gives the format, then one `DATA` per packet until `STOP`. `VOLUME`
//! and `MUTE` need the client's [`crate::consts::playback_cap::VOLUME`],
//! `LATENCY` its [`crate::consts::playback_cap::LATENCY`]. The client sends only
//! the messages every channel shares.

use super::base::BaseClientMessage;
use super::ServerMessage;
use crate::error::DecodeError;
use crate::wire::Writer;

/// Server message types of the playback channel.
pub mod server_type {
    /// `SPICE_MSG_PLAYBACK_DATA`.
    pub const DATA: u16 = 101;
    /// `SPICE_MSG_PLAYBACK_MODE`.
    pub const MODE: u16 = 102;
    /// `SPICE_MSG_PLAYBACK_START`.
    pub const START: u16 = 103;
    /// `SPICE_MSG_PLAYBACK_STOP`.
    pub const STOP: u16 = 104;
    /// `SPICE_MSG_PLAYBACK_VOLUME`.
    pub const VOLUME: u16 = 105;
    /// `SPICE_MSG_PLAYBACK_MUTE`.
    pub const MUTE: u16 = 106;
    /// `SPICE_MSG_PLAYBACK_LATENCY`.
    pub const LATENCY: u16 = 107;
}

/// `SPICE_MSG_PLAYBACK_DATA`: one packet of audio, `{u32 time, data[]}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Data<'a> {
    /// Multimedia time (ms) the packet belongs to.
    pub time: u32,
    /// The samples, encoded as the last `MODE` said (raw: S16LE interleaved).
    pub data: &'a [u8],
}

impl ServerMessage for Data<'_> {
    const TYPE: u16 = server_type::DATA;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u32(self.time).bytes(self.data);
    }
}

/// `SPICE_MSG_PLAYBACK_MODE`: `{u32 time, u16 mode, data[]}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode<'a> {
    /// Multimedia time (ms).
    pub time: u32,
    /// `SPICE_AUDIO_DATA_MODE_*` (see [`crate::consts::audio`]).
    pub mode: u16,
    /// Codec-specific data; empty for raw.
    pub data: &'a [u8],
}

impl ServerMessage for Mode<'_> {
    const TYPE: u16 = server_type::MODE;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u32(self.time).u16(self.mode).bytes(self.data);
    }
}

/// `SPICE_MSG_PLAYBACK_START`: `{u32 channels, u16 format, u32 frequency, u32 time}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// Number of interleaved channels (2).
    pub channels: u32,
    /// `SPICE_AUDIO_FMT_*` (see [`crate::consts::audio::FMT_S16`]).
    pub format: u16,
    /// Frames per second.
    pub frequency: u32,
    /// Multimedia time (ms) playback starts at.
    pub time: u32,
}

impl ServerMessage for Start {
    const TYPE: u16 = server_type::START;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out)
            .u32(self.channels)
            .u16(self.format)
            .u32(self.frequency)
            .u32(self.time);
    }
}

/// `SPICE_MSG_PLAYBACK_STOP`: no body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop;

impl ServerMessage for Stop {
    const TYPE: u16 = server_type::STOP;
    fn encode_body(&self, _out: &mut Vec<u8>) {}
}

/// Most channels an `AudioVolume` message can carry (its count is a `u8`).
pub const MAX_VOLUME_CHANNELS: usize = u8::MAX as usize;

/// Encodes `AudioVolume`: `{u8 nchannels, u16 volume[nchannels]}`, keeping at
/// most [`MAX_VOLUME_CHANNELS`] values.
pub(crate) fn encode_volume(volume: &[u16], out: &mut Vec<u8>) {
    let volume = &volume[..volume.len().min(MAX_VOLUME_CHANNELS)];
    let mut w = Writer::new(out);
    w.u8(volume.len() as u8);
    for &v in volume {
        w.u16(v);
    }
}

/// `SPICE_MSG_PLAYBACK_VOLUME` (`AudioVolume`): one level per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Volume<'a> {
    /// Levels, 0 (silent) to 65535 (full); at most [`MAX_VOLUME_CHANNELS`] are sent.
    pub volume: &'a [u16],
}

impl ServerMessage for Volume<'_> {
    const TYPE: u16 = server_type::VOLUME;
    fn encode_body(&self, out: &mut Vec<u8>) {
        encode_volume(self.volume, out);
    }
}

/// `SPICE_MSG_PLAYBACK_MUTE` (`AudioMute`): `{u8 mute}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mute {
    /// Whether the guest muted its output.
    pub mute: bool,
}

impl ServerMessage for Mute {
    const TYPE: u16 = server_type::MUTE;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u8(self.mute.into());
    }
}

/// `SPICE_MSG_PLAYBACK_LATENCY`: `{u32 latency_ms}`, the minimum the client should buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// Milliseconds.
    pub latency_ms: u32,
}

impl ServerMessage for Latency {
    const TYPE: u16 = server_type::LATENCY;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u32(self.latency_ms);
    }
}

/// Messages a client sends on the playback channel: only the common ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaybackClientMessage {
    /// A message common to all channels.
    Base(BaseClientMessage),
    /// A type this server does not know.
    Unknown(u16),
}

impl PlaybackClientMessage {
    /// Decodes one playback channel message.
    pub fn decode(msg_type: u16, body: &[u8]) -> Result<Self, DecodeError> {
        Ok(match BaseClientMessage::decode(msg_type, body)? {
            Some(base) => Self::Base(base),
            None => Self::Unknown(msg_type),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::audio;
    use crate::msg::body_of;

    #[test]
    fn layouts() {
        assert_eq!(
            body_of(&Data {
                time: 0x0102_0304,
                data: &[9, 8, 7]
            }),
            [4, 3, 2, 1, 9, 8, 7]
        );
        assert_eq!(
            body_of(&Mode {
                time: 5,
                mode: audio::MODE_RAW,
                data: &[]
            }),
            [5, 0, 0, 0, 1, 0]
        );
        assert_eq!(
            body_of(&Start {
                channels: 2,
                format: audio::FMT_S16,
                frequency: 48000,
                time: 7
            }),
            [2, 0, 0, 0, 1, 0, 0x80, 0xbb, 0, 0, 7, 0, 0, 0]
        );
        assert_eq!(body_of(&Stop), [0u8; 0]);
        assert_eq!(
            body_of(&Volume {
                volume: &[0x1234, 0xffff]
            }),
            [2, 0x34, 0x12, 0xff, 0xff]
        );
        assert_eq!(body_of(&Mute { mute: true }), [1]);
        assert_eq!(body_of(&Latency { latency_ms: 300 }), [0x2c, 1, 0, 0]);
        assert_eq!(
            (Data::TYPE, Mode::TYPE, Start::TYPE, Stop::TYPE),
            (101, 102, 103, 104)
        );
        assert_eq!((Volume::TYPE, Mute::TYPE, Latency::TYPE), (105, 106, 107));
    }

    #[test]
    fn volume_keeps_at_most_255_channels() {
        let body = body_of(&Volume { volume: &[1; 300] });
        assert_eq!(body[0], 255);
        assert_eq!(body.len(), 1 + 2 * 255);
    }

    #[test]
    fn client_sends_only_base_messages() {
        assert_eq!(
            PlaybackClientMessage::decode(101, &[1, 2]).unwrap(),
            PlaybackClientMessage::Unknown(101)
        );
        assert_eq!(
            PlaybackClientMessage::decode(2, &[]).unwrap(),
            PlaybackClientMessage::Base(BaseClientMessage::Ack)
        );
        assert!(PlaybackClientMessage::decode(3, &[0; 5]).is_err());
    }
}
