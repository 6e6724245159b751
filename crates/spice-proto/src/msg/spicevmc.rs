//! Spicevmc channel messages (`SpicevmcChannel`, `PortChannel` in
//! `spice.proto`): the usbredir, port and webdav channels, byte pipes between
//! a client and one of the host's char devices.
//!
//! Both sides send `DATA` (the bytes as they are) and, where the peer has
//! [`crate::consts::spicevmc_cap::DATA_COMPRESS_LZ4`], `COMPRESSED_DATA`. Port
//! and webdav channels add `PORT_INIT` (the port's name and whether the guest
//! opened it), `PORT_EVENT` from the server and `PORT_EVENT` from the client.

use super::base::BaseClientMessage;
use super::ServerMessage;
use crate::error::DecodeError;
use crate::wire::{Reader, Writer};

/// Server message types of the spicevmc channels.
pub mod server_type {
    /// `SPICE_MSG_SPICEVMC_DATA`.
    pub const DATA: u16 = 101;
    /// `SPICE_MSG_SPICEVMC_COMPRESSED_DATA`.
    pub const COMPRESSED_DATA: u16 = 102;
    /// `SPICE_MSG_PORT_INIT`.
    pub const PORT_INIT: u16 = 201;
    /// `SPICE_MSG_PORT_EVENT`.
    pub const PORT_EVENT: u16 = 202;
}

/// Client message types of the spicevmc channels.
pub mod client_type {
    /// `SPICE_MSGC_SPICEVMC_DATA`.
    pub const DATA: u16 = 101;
    /// `SPICE_MSGC_SPICEVMC_COMPRESSED_DATA`.
    pub const COMPRESSED_DATA: u16 = 102;
    /// `SPICE_MSGC_PORT_EVENT`.
    pub const PORT_EVENT: u16 = 201;
}

/// `SPICE_DATA_COMPRESSION_TYPE_*`.
pub mod compression {
    /// `SPICE_DATA_COMPRESSION_TYPE_NONE`.
    pub const NONE: u8 = 0;
    /// `SPICE_DATA_COMPRESSION_TYPE_LZ4`: one LZ4 block.
    pub const LZ4: u8 = 1;
}

/// `SPICE_PORT_EVENT_*`.
pub mod port_event {
    /// `SPICE_PORT_EVENT_OPENED`: the guest (or client) opened its end.
    pub const OPENED: u8 = 0;
    /// `SPICE_PORT_EVENT_CLOSED`.
    pub const CLOSED: u8 = 1;
    /// `SPICE_PORT_EVENT_BREAK`.
    pub const BREAK: u8 = 2;
}

/// Most bytes accepted in one client `DATA` message, and the most a
/// `COMPRESSED_DATA` message may say it expands to. spice-gtk sends what its
/// user wrote in one message (usbredir packets stay far below this); the C
/// server takes any size, which would let a client make it allocate at will.
pub const MAX_CLIENT_DATA: usize = 1024 * 1024;

/// `SPICE_MSG_SPICEVMC_DATA`: the bytes themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Data<'a>(pub &'a [u8]);

impl ServerMessage for Data<'_> {
    const TYPE: u16 = server_type::DATA;
    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0);
    }
}

/// `SPICE_MSG_SPICEVMC_COMPRESSED_DATA` (`CompressedData`) with a compression
/// type other than NONE: `{u8 type, u32 uncompressed_size, data[]}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressedData<'a> {
    /// [`compression`] type.
    pub kind: u8,
    /// Bytes once decompressed.
    pub uncompressed_size: u32,
    /// The compressed bytes.
    pub data: &'a [u8],
}

impl ServerMessage for CompressedData<'_> {
    const TYPE: u16 = server_type::COMPRESSED_DATA;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out)
            .u8(self.kind)
            .u32(self.uncompressed_size)
            .bytes(self.data);
    }
}

/// `SPICE_MSG_PORT_INIT`: `{u32 name_size, u32 name_offset, u8 opened}` and
/// the name, NUL-terminated, at the offset (the marshaller puts pointed-to
/// data after the fixed part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortInit<'a> {
    /// The port's name, without the NUL.
    pub name: &'a [u8],
    /// Whether the guest has the port open.
    pub opened: bool,
}

impl ServerMessage for PortInit<'_> {
    const TYPE: u16 = server_type::PORT_INIT;
    fn encode_body(&self, out: &mut Vec<u8>) {
        const FIXED: u32 = 4 + 4 + 1;
        Writer::new(out)
            .u32(self.name.len() as u32 + 1)
            .u32(FIXED)
            .u8(self.opened.into())
            .bytes(self.name)
            .u8(0);
    }
}

/// `SPICE_MSG_PORT_EVENT`: `{u8 event}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortEvent {
    /// A [`port_event`] value.
    pub event: u8,
}

impl ServerMessage for PortEvent {
    const TYPE: u16 = server_type::PORT_EVENT;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u8(self.event);
    }
}

/// Messages a client sends on a usbredir, port or webdav channel. Data
/// borrows the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpicevmcClientMessage<'a> {
    /// A message common to all channels.
    Base(BaseClientMessage),
    /// `SPICE_MSGC_SPICEVMC_DATA`: bytes for the device.
    Data(&'a [u8]),
    /// `SPICE_MSGC_SPICEVMC_COMPRESSED_DATA` (`CompressedData`).
    Compressed {
        /// [`compression`] type; NONE carries the bytes as they are.
        kind: u8,
        /// Bytes once decompressed (the data's length for NONE); at most
        /// [`MAX_CLIENT_DATA`].
        uncompressed_size: u32,
        /// The (compressed) bytes.
        data: &'a [u8],
    },
    /// `SPICE_MSGC_PORT_EVENT`: `{u8 event}`, exactly one byte as the C server wants.
    PortEvent(u8),
    /// A type this server does not know.
    Unknown(u16),
}

fn bounded(len: usize, what: &'static str) -> Result<(), DecodeError> {
    if len > MAX_CLIENT_DATA {
        return Err(DecodeError::TooLarge {
            what,
            value: len as u64,
            limit: MAX_CLIENT_DATA as u64,
        });
    }
    Ok(())
}

impl<'a> SpicevmcClientMessage<'a> {
    /// Decodes one spicevmc channel message.
    pub fn decode(msg_type: u16, body: &'a [u8]) -> Result<Self, DecodeError> {
        if let Some(base) = BaseClientMessage::decode(msg_type, body)? {
            return Ok(Self::Base(base));
        }
        let mut r = Reader::new(body);
        Ok(match msg_type {
            client_type::DATA => {
                bounded(body.len(), "spicevmc data")?;
                Self::Data(body)
            }
            client_type::COMPRESSED_DATA => {
                let kind = r.u8("compressed data type")?;
                let uncompressed_size = if kind == compression::NONE {
                    None
                } else {
                    Some(r.u32("compressed data uncompressed size")?)
                };
                let data = r.rest();
                bounded(data.len(), "compressed data")?;
                let uncompressed_size = uncompressed_size.unwrap_or(data.len() as u32);
                bounded(uncompressed_size as usize, "compressed data uncompressed size")?;
                Self::Compressed {
                    kind,
                    uncompressed_size,
                    data,
                }
            }
            client_type::PORT_EVENT => {
                if body.len() != 1 {
                    return Err(DecodeError::Invalid {
                        what: "port event size",
                        value: body.len() as u64,
                    });
                }
                Self::PortEvent(body[0])
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
    fn server_layouts() {
        assert_eq!(body_of(&Data(b"ab")), *b"ab");
        assert_eq!(
            body_of(&CompressedData {
                kind: compression::LZ4,
                uncompressed_size: 2000,
                data: &[9, 8]
            }),
            [1, 0xd0, 0x07, 0, 0, 9, 8]
        );
        assert_eq!(
            body_of(&PortInit {
                name: b"org.x",
                opened: true
            }),
            [6, 0, 0, 0, 9, 0, 0, 0, 1, b'o', b'r', b'g', b'.', b'x', 0]
        );
        assert_eq!(
            body_of(&PortEvent {
                event: port_event::CLOSED
            }),
            [1]
        );
        assert_eq!(
            (Data::TYPE, CompressedData::TYPE, PortInit::TYPE, PortEvent::TYPE),
            (101, 102, 201, 202)
        );
    }

    #[test]
    fn decodes_data_compressed_and_events() {
        assert_eq!(
            SpicevmcClientMessage::decode(client_type::DATA, b"xyz").unwrap(),
            SpicevmcClientMessage::Data(b"xyz")
        );
        assert_eq!(
            SpicevmcClientMessage::decode(client_type::COMPRESSED_DATA, &[1, 10, 0, 0, 0, 7]).unwrap(),
            SpicevmcClientMessage::Compressed {
                kind: compression::LZ4,
                uncompressed_size: 10,
                data: &[7]
            }
        );
        assert_eq!(
            SpicevmcClientMessage::decode(client_type::COMPRESSED_DATA, &[0, 5, 6]).unwrap(),
            SpicevmcClientMessage::Compressed {
                kind: compression::NONE,
                uncompressed_size: 2,
                data: &[5, 6]
            }
        );
        assert_eq!(
            SpicevmcClientMessage::decode(client_type::PORT_EVENT, &[0]).unwrap(),
            SpicevmcClientMessage::PortEvent(port_event::OPENED)
        );
        assert!(SpicevmcClientMessage::decode(client_type::PORT_EVENT, &[0, 0]).is_err());
        assert!(SpicevmcClientMessage::decode(client_type::COMPRESSED_DATA, &[1, 0, 0]).is_err());
        let huge = (MAX_CLIENT_DATA as u32 + 1).to_le_bytes();
        assert!(SpicevmcClientMessage::decode(
            client_type::COMPRESSED_DATA,
            &[1, huge[0], huge[1], huge[2], huge[3]]
        )
        .is_err());
        assert_eq!(
            SpicevmcClientMessage::decode(150, &[]).unwrap(),
            SpicevmcClientMessage::Unknown(150)
        );
    }
}
