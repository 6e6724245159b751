//! Record channel messages (`RecordChannel` in `spice.proto`).
//!
//! The server asks the client to capture audio with `START` and ends it with
//! `STOP`. The client answers with `MODE` (how its `DATA` is encoded),
//! `START_MARK` and then `DATA` packets. `VOLUME` and `MUTE` need the client's
//! [`crate::consts::record_cap::VOLUME`].

use super::base::BaseClientMessage;
use super::playback::encode_volume;
use super::ServerMessage;
use crate::error::DecodeError;
use crate::wire::{Reader, Writer};

/// Server message types of the record channel.
pub mod server_type {
    /// `SPICE_MSG_RECORD_START`.
    pub const START: u16 = 101;
    /// `SPICE_MSG_RECORD_STOP`.
    pub const STOP: u16 = 102;
    /// `SPICE_MSG_RECORD_VOLUME`.
    pub const VOLUME: u16 = 103;
    /// `SPICE_MSG_RECORD_MUTE`.
    pub const MUTE: u16 = 104;
}

/// Client message types of the record channel.
pub mod client_type {
    /// `SPICE_MSGC_RECORD_DATA`.
    pub const DATA: u16 = 101;
    /// `SPICE_MSGC_RECORD_MODE`.
    pub const MODE: u16 = 102;
    /// `SPICE_MSGC_RECORD_START_MARK`.
    pub const START_MARK: u16 = 103;
}

/// Most audio bytes accepted in one `DATA` or `MODE` message. spice-gtk sends
/// 1920 bytes (480 S16 stereo frames) per packet; the C server's receive
/// buffer is 32 KiB.
pub const MAX_RECORD_DATA: usize = 64 * 1024;

/// `SPICE_MSG_RECORD_START`: `{u32 channels, u16 format, u32 frequency}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// Number of interleaved channels (2).
    pub channels: u32,
    /// `SPICE_AUDIO_FMT_*` (see [`crate::consts::audio::FMT_S16`]).
    pub format: u16,
    /// Frames per second.
    pub frequency: u32,
}

impl ServerMessage for Start {
    const TYPE: u16 = server_type::START;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out)
            .u32(self.channels)
            .u16(self.format)
            .u32(self.frequency);
    }
}

/// `SPICE_MSG_RECORD_STOP`: no body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop;

impl ServerMessage for Stop {
    const TYPE: u16 = server_type::STOP;
    fn encode_body(&self, _out: &mut Vec<u8>) {}
}

/// `SPICE_MSG_RECORD_VOLUME` (`AudioVolume`): one level per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Volume<'a> {
    /// Levels, 0 (silent) to 65535 (full); at most
    /// [`super::playback::MAX_VOLUME_CHANNELS`] are sent.
    pub volume: &'a [u16],
}

impl ServerMessage for Volume<'_> {
    const TYPE: u16 = server_type::VOLUME;
    fn encode_body(&self, out: &mut Vec<u8>) {
        encode_volume(self.volume, out);
    }
}

/// `SPICE_MSG_RECORD_MUTE` (`AudioMute`): `{u8 mute}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mute {
    /// Whether the guest muted its input.
    pub mute: bool,
}

impl ServerMessage for Mute {
    const TYPE: u16 = server_type::MUTE;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u8(self.mute.into());
    }
}

/// Messages a client sends on the record channel. Audio bytes borrow the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordClientMessage<'a> {
    /// A message common to all channels.
    Base(BaseClientMessage),
    /// `SPICE_MSGC_RECORD_DATA`: `{u32 time, data[]}`, captured audio.
    Data {
        /// Client time stamp.
        time: u32,
        /// Samples, encoded as the last `MODE` said (raw: S16LE interleaved).
        data: &'a [u8],
    },
    /// `SPICE_MSGC_RECORD_MODE`: `{u32 time, u16 mode, data[]}`.
    Mode {
        /// Client time stamp.
        time: u32,
        /// `SPICE_AUDIO_DATA_MODE_*` (see [`crate::consts::audio`]).
        mode: u16,
        /// Codec-specific data.
        data: &'a [u8],
    },
    /// `SPICE_MSGC_RECORD_START_MARK`: `{u32 time}`, when capture began.
    StartMark {
        /// Client time stamp.
        time: u32,
    },
    /// A type this server does not know.
    Unknown(u16),
}

fn audio_bytes<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a [u8], DecodeError> {
    let data = r.rest();
    if data.len() > MAX_RECORD_DATA {
        return Err(DecodeError::TooLarge {
            what,
            value: data.len() as u64,
            limit: MAX_RECORD_DATA as u64,
        });
    }
    Ok(data)
}

impl<'a> RecordClientMessage<'a> {
    /// Decodes one record channel message.
    pub fn decode(msg_type: u16, body: &'a [u8]) -> Result<Self, DecodeError> {
        if let Some(base) = BaseClientMessage::decode(msg_type, body)? {
            return Ok(Self::Base(base));
        }
        let mut r = Reader::new(body);
        Ok(match msg_type {
            client_type::DATA => Self::Data {
                time: r.u32("record data time")?,
                data: audio_bytes(&mut r, "record data")?,
            },
            client_type::MODE => Self::Mode {
                time: r.u32("record mode time")?,
                mode: r.u16("record mode")?,
                data: audio_bytes(&mut r, "record mode data")?,
            },
            client_type::START_MARK => Self::StartMark {
                time: r.u32("record start mark time")?,
            },
            other => Self::Unknown(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::audio;
    use crate::msg::body_of;

    #[test]
    fn server_layouts() {
        assert_eq!(
            body_of(&Start {
                channels: 2,
                format: audio::FMT_S16,
                frequency: 48000
            }),
            [2, 0, 0, 0, 1, 0, 0x80, 0xbb, 0, 0]
        );
        assert_eq!(body_of(&Stop), [0u8; 0]);
        assert_eq!(body_of(&Volume { volume: &[7] }), [1, 7, 0]);
        assert_eq!(body_of(&Mute { mute: false }), [0]);
        assert_eq!(
            (Start::TYPE, Stop::TYPE, Volume::TYPE, Mute::TYPE),
            (101, 102, 103, 104)
        );
    }

    #[test]
    fn decodes_data_mode_and_start_mark() {
        let body = [1, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd];
        assert_eq!(
            RecordClientMessage::decode(client_type::DATA, &body).unwrap(),
            RecordClientMessage::Data {
                time: 1,
                data: &[0xaa, 0xbb, 0xcc, 0xdd]
            }
        );
        assert_eq!(
            RecordClientMessage::decode(client_type::MODE, &[2, 0, 0, 0, 1, 0]).unwrap(),
            RecordClientMessage::Mode {
                time: 2,
                mode: audio::MODE_RAW,
                data: &[]
            }
        );
        assert_eq!(
            RecordClientMessage::decode(client_type::START_MARK, &[3, 0, 0, 0]).unwrap(),
            RecordClientMessage::StartMark { time: 3 }
        );
        assert_eq!(
            RecordClientMessage::decode(150, &[]).unwrap(),
            RecordClientMessage::Unknown(150)
        );
    }

    #[test]
    fn rejects_truncated_and_oversized_messages() {
        assert!(RecordClientMessage::decode(client_type::DATA, &[1, 0]).is_err());
        assert!(RecordClientMessage::decode(client_type::MODE, &[1, 0, 0, 0, 1]).is_err());
        assert!(RecordClientMessage::decode(client_type::START_MARK, &[]).is_err());
        let mut big = vec![0u8; 4 + MAX_RECORD_DATA];
        assert!(RecordClientMessage::decode(client_type::DATA, &big).is_ok());
        big.push(0);
        assert!(matches!(
            RecordClientMessage::decode(client_type::DATA, &big),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
