//! Seamless migration's per-channel state (`SPICE_MSG_MIGRATE_DATA`, which
//! the client passes on unchanged to the destination as
//! `SPICE_MSGC_MIGRATE_DATA`), laid out as the C server's
//! `migration-protocol.h`: a header (magic, version), then the channel's
//! packed little-endian struct. What arrives on the destination comes from
//! a client, so decoding is bounded by the message and checks magic and
//! version.

use crate::error::DecodeError;
use crate::wire::{Reader, Writer};

/// `SPICE_MIGRATE_NEED_FLUSH`: the client sends `MIGRATE_FLUSH_MARK` first.
pub const NEED_FLUSH: u32 = 1;
/// `SPICE_MIGRATE_NEED_DATA_TRANSFER`: `MIGRATE_DATA` follows `MIGRATE`.
pub const NEED_DATA_TRANSFER: u32 = 2;

/// `SPICE_MSG_MIGRATE` (every channel): the channel moves to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrate {
    /// [`NEED_FLUSH`], [`NEED_DATA_TRANSFER`].
    pub flags: u32,
}

impl crate::msg::ServerMessage for Migrate {
    const TYPE: u16 = crate::msg::base::server_type::MIGRATE;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u32(self.flags);
    }
}

/// `SPICE_MSG_MIGRATE_DATA`: the encoded state of one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateDataMsg(pub Vec<u8>);

impl crate::msg::ServerMessage for MigrateDataMsg {
    const TYPE: u16 = crate::msg::base::server_type::MIGRATE_DATA;
    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

const fn magic(tag: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*tag)
}

/// Surfaces a display's migration data may list (the protocol allows 10000
/// surfaces per display; more is refused).
pub const MAX_SURFACES: u32 = 10_000;

/// The state of one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrateData {
    /// `MNMD`: the main channel's agent state.
    Main(MainData),
    /// `DCMD`: the display channel's caches and the surfaces the client has.
    Display(DisplayData),
    /// `ICMD`: the inputs channel's motion count.
    Inputs {
        /// Motion messages not yet acknowledged.
        motion_count: u16,
    },
    /// `SVMD`: a usbredir, port or webdav channel's device state.
    SpiceVmc(CharDeviceData),
}

/// `SpiceMigrateDataCharDevice`. Data waiting to be written to the device
/// is not carried over by this implementation: its size is reported, the
/// bytes are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CharDeviceData {
    /// The device was open.
    pub connected: bool,
    /// Messages the client may still send.
    pub num_client_tokens: u32,
    /// Messages the server may still send the client.
    pub num_send_tokens: u32,
    /// Bytes queued for the device when the channel moved.
    pub write_size: u32,
}

/// `SpiceMigrateDataMain`: the agent link's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MainData {
    /// The agent device's state.
    pub agent: CharDeviceData,
    /// The client had sent `AGENT_START`.
    pub client_agent_started: bool,
}

/// `SpiceMigrateDataDisplay`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisplayData {
    /// Serial of the last message sent.
    pub message_serial: u64,
    /// The link was measured as low-bandwidth.
    pub low_bandwidth: bool,
    /// The client's pixmap cache id and size (pixels).
    pub pixmap_cache_id: u8,
    /// Its size.
    pub pixmap_cache_size: i64,
    /// The GLZ dictionary's id, window size and last image id.
    pub glz_dict_id: u8,
    /// The dictionary's window (pixels).
    pub glz_window: u32,
    /// The id of the last GLZ image sent.
    pub glz_last_image_id: u64,
    /// Surfaces the client has, lossless.
    pub surfaces: Vec<u32>,
}

const HEADER: usize = 8;
/// `SpiceMigrateDataCharDevice`: version, connected, three counts and a pointer.
const CHAR_DEVICE: usize = 4 + 1 + 4 * 5;
/// The fixed part of `SpiceMigrateDataDisplay` before the surfaces list.
const DISPLAY_FIXED: usize = 8 + 1 + 1 + 8 + 1 + 8 * 4 + 1 + 16 + 4;

impl MigrateData {
    const MAIN: u32 = magic(b"MNMD");
    const DISPLAY: u32 = magic(b"DCMD");
    const INPUTS: u32 = magic(b"ICMD");
    const SPICEVMC: u32 = magic(b"SVMD");

    /// The bytes of `SPICE_MSG_MIGRATE_DATA`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        match self {
            Self::Main(m) => {
                w.u32(Self::MAIN).u32(1);
                char_device(&mut w, &m.agent);
                w.u8(u8::from(m.client_agent_started));
                // agent2client: chunk_header_size, chunk header (port,
                // size), msg_header_done, partial len, ptr, remaining, filter.
                w.u32(0).u32(0).u32(0).u8(0).u32(0).u32(0).u32(0).u8(0);
                // client2agent: msg_remaining, filter result.
                w.u32(0).u8(0);
            }
            Self::Display(d) => {
                w.u32(Self::DISPLAY).u32(1);
                w.u64(d.message_serial)
                    .u8(u8::from(d.low_bandwidth))
                    .u8(d.pixmap_cache_id)
                    .u64(d.pixmap_cache_size as u64)
                    .u8(0);
                for _ in 0..4 {
                    w.u64(0);
                }
                w.u8(d.glz_dict_id)
                    .u32(d.glz_window)
                    .u32(1)
                    .u64(d.glz_last_image_id)
                    // The surfaces list follows the struct; its offset is
                    // counted from the start of the message, header included.
                    .u32((HEADER + DISPLAY_FIXED) as u32)
                    .u32(d.surfaces.len() as u32);
                for &id in &d.surfaces {
                    w.u32(id);
                }
            }
            Self::Inputs { motion_count } => {
                w.u32(Self::INPUTS).u32(1).u16(*motion_count);
            }
            Self::SpiceVmc(c) => {
                w.u32(Self::SPICEVMC).u32(1);
                char_device(&mut w, c);
            }
        }
        out
    }

    /// Decodes what a client passed on. Refuses an unknown magic, a newer
    /// version, a short body and a surfaces list outside it.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let magic = r.u32("migrate data magic")?;
        let version = r.u32("migrate data version")?;
        if version == 0 || version > 1 {
            return Err(DecodeError::Invalid {
                what: "migrate data version",
                value: u64::from(version),
            });
        }
        Ok(match magic {
            Self::MAIN => {
                let agent = read_char_device(&mut r)?;
                let client_agent_started = r.u8("client agent started")? != 0;
                r.take(4 + 8 + 1 + 4 + 4 + 4 + 1 + 4 + 1, "agent message state")?;
                Self::Main(MainData {
                    agent,
                    client_agent_started,
                })
            }
            Self::DISPLAY => {
                let message_serial = r.u64("message serial")?;
                let low_bandwidth = r.u8("low bandwidth")? != 0;
                let pixmap_cache_id = r.u8("pixmap cache id")?;
                let pixmap_cache_size = r.i64("pixmap cache size")?;
                r.take(1 + 8 * 4, "pixmap cache clients")?;
                let glz_dict_id = r.u8("glz dictionary id")?;
                let glz_window = r.u32("glz window")?;
                r.u32("glz encoders")?;
                let glz_last_image_id = r.u64("glz last image id")?;
                let ptr = r.u32("surfaces pointer")? as usize;
                // The list lies anywhere after the header, within the body.
                let list = body.get(ptr.max(HEADER)..).ok_or(DecodeError::Invalid {
                    what: "surfaces pointer",
                    value: ptr as u64,
                })?;
                let mut l = Reader::new(list);
                let count = l.u32("surface count")?;
                if count > MAX_SURFACES {
                    return Err(DecodeError::TooLarge {
                        what: "surface count",
                        value: u64::from(count),
                        limit: u64::from(MAX_SURFACES),
                    });
                }
                let mut surfaces = Vec::with_capacity((count as usize).min(l.remaining() / 4));
                for _ in 0..count {
                    surfaces.push(l.u32("surface id")?);
                }
                Self::Display(DisplayData {
                    message_serial,
                    low_bandwidth,
                    pixmap_cache_id,
                    pixmap_cache_size,
                    glz_dict_id,
                    glz_window,
                    glz_last_image_id,
                    surfaces,
                })
            }
            Self::INPUTS => Self::Inputs {
                motion_count: r.u16("motion count")?,
            },
            Self::SPICEVMC => Self::SpiceVmc(read_char_device(&mut r)?),
            other => {
                return Err(DecodeError::Invalid {
                    what: "migrate data magic",
                    value: u64::from(other),
                })
            }
        })
    }
}

fn char_device(w: &mut Writer<'_>, c: &CharDeviceData) {
    w.u32(1)
        .u8(u8::from(c.connected))
        .u32(c.num_client_tokens)
        .u32(c.num_send_tokens)
        // The data queued for the device does not travel: its size as
        // given, no client tokens for it, no pointer.
        .u32(c.write_size)
        .u32(0)
        .u32(0);
}

fn read_char_device(r: &mut Reader<'_>) -> Result<CharDeviceData, DecodeError> {
    let start = r.remaining();
    r.u32("char device version")?;
    let connected = r.u8("char device connected")? != 0;
    let num_client_tokens = r.u32("client tokens")?;
    let num_send_tokens = r.u32("send tokens")?;
    let write_size = r.u32("write size")?;
    r.u32("write client tokens")?;
    r.u32("write data pointer")?;
    debug_assert_eq!(start - r.remaining(), CHAR_DEVICE);
    Ok(CharDeviceData {
        connected,
        num_client_tokens,
        num_send_tokens,
        write_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let all = [
            MigrateData::Main(MainData {
                agent: CharDeviceData {
                    connected: true,
                    num_client_tokens: 10,
                    num_send_tokens: 3,
                    write_size: 0,
                },
                client_agent_started: true,
            }),
            MigrateData::Display(DisplayData {
                message_serial: 77,
                low_bandwidth: false,
                pixmap_cache_id: 1,
                pixmap_cache_size: 1 << 20,
                glz_dict_id: 1,
                glz_window: 1 << 22,
                glz_last_image_id: 41,
                surfaces: vec![0, 3],
            }),
            MigrateData::Inputs { motion_count: 2 },
            MigrateData::SpiceVmc(CharDeviceData::default()),
        ];
        for data in all {
            assert_eq!(MigrateData::decode(&data.encode()), Ok(data));
        }
    }

    #[test]
    fn layouts_follow_the_c_structs() {
        // Header, then SpiceMigrateDataMain: 25 + 1 + 26 + 5 bytes.
        let main = MigrateData::Main(MainData::default()).encode();
        assert_eq!(main.len(), HEADER + CHAR_DEVICE + 1 + 26 + 5);
        assert_eq!(&main[..4], b"MNMD");
        // SpiceMigrateDataDisplay, then the lossless surfaces list.
        let display = MigrateData::Display(DisplayData {
            surfaces: vec![0],
            ..Default::default()
        })
        .encode();
        assert_eq!(display.len(), HEADER + DISPLAY_FIXED + 4 + 4);
        assert_eq!(&display[..4], b"DCMD");
        assert_eq!(MigrateData::Inputs { motion_count: 0 }.encode().len(), HEADER + 2);
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(MigrateData::decode(b"").is_err());
        assert!(MigrateData::decode(b"XXXX\x01\0\0\0").is_err());
        // A newer version.
        assert!(MigrateData::decode(b"ICMD\x02\0\0\0\0\0").is_err());
        // A surfaces pointer past the end, and a count past the limit.
        let mut d = MigrateData::Display(DisplayData::default()).encode();
        let at = HEADER + DISPLAY_FIXED - 4;
        d[at..at + 4].copy_from_slice(&9999u32.to_le_bytes());
        assert!(MigrateData::decode(&d).is_err());
        let mut d = MigrateData::Display(DisplayData::default()).encode();
        let n = d.len() - 4;
        d[n..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(MigrateData::decode(&d).is_err());
        // Truncated anywhere: an error, never a panic.
        let full = MigrateData::Main(MainData::default()).encode();
        for len in 0..full.len() {
            assert!(MigrateData::decode(&full[..len]).is_err(), "{len}");
        }
    }
}
