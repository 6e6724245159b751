//! The guest agent stream (`spice/vd_agent.h`): chunks between the server and
//! the agent's virtio-serial port, each carrying part of a `VDAgentMessage`.
//!
//! ```text
//! VDIChunkHeader { u32 port; u32 size; } data[size]
//! VDAgentMessage { u32 protocol; u32 type; u64 opaque; u32 size; } data[size]
//! ```

use crate::error::DecodeError;
use crate::wire::{Reader, Writer};

/// `VDP_CLIENT_PORT`: chunks to and from the client.
pub const PORT_CLIENT: u32 = 1;
/// `VDP_SERVER_PORT`: chunks for the server itself.
pub const PORT_SERVER: u32 = 2;
/// `VD_AGENT_MAX_DATA_SIZE`: the largest chunk payload.
pub const MAX_DATA_SIZE: usize = 2048;
/// `VD_AGENT_PROTOCOL`.
pub const PROTOCOL: u32 = 1;

/// `VDAgentMessage` types (`VD_AGENT_*`).
pub mod message_type {
    /// `VD_AGENT_MOUSE_STATE`.
    pub const MOUSE_STATE: u32 = 1;
    /// `VD_AGENT_MONITORS_CONFIG`.
    pub const MONITORS_CONFIG: u32 = 2;
    /// `VD_AGENT_REPLY`.
    pub const REPLY: u32 = 3;
    /// `VD_AGENT_CLIPBOARD`.
    pub const CLIPBOARD: u32 = 4;
    /// `VD_AGENT_DISPLAY_CONFIG`.
    pub const DISPLAY_CONFIG: u32 = 5;
    /// `VD_AGENT_ANNOUNCE_CAPABILITIES`.
    pub const ANNOUNCE_CAPABILITIES: u32 = 6;
    /// `VD_AGENT_CLIPBOARD_GRAB`.
    pub const CLIPBOARD_GRAB: u32 = 7;
    /// `VD_AGENT_CLIPBOARD_REQUEST`.
    pub const CLIPBOARD_REQUEST: u32 = 8;
    /// `VD_AGENT_CLIPBOARD_RELEASE`.
    pub const CLIPBOARD_RELEASE: u32 = 9;
    /// `VD_AGENT_CLIENT_DISCONNECTED`.
    pub const CLIENT_DISCONNECTED: u32 = 13;
}

/// `VDAgentMouseState`: the pointer as the agent moves it (agent mouse mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MouseState {
    /// Position.
    pub x: u32,
    /// Position.
    pub y: u32,
    /// `VD_AGENT_*BUTTON_MASK` bits: the protocol's button mask shifted left by one.
    pub buttons: u32,
    /// Display the position refers to.
    pub display_id: u8,
}

impl MouseState {
    /// Encoded size: 4 + 4 + 4 + 1.
    pub const SIZE: usize = 13;
    /// `VD_AGENT_UBUTTON_MASK`: wheel up.
    pub const WHEEL_UP: u32 = 1 << 4;
    /// `VD_AGENT_DBUTTON_MASK`: wheel down.
    pub const WHEEL_DOWN: u32 = 1 << 5;

    /// The agent's button bits for a protocol button mask (`SPICE_MOUSE_BUTTON_MASK_*`).
    pub fn buttons_from_protocol(mask: u16) -> u32 {
        u32::from(mask) << 1
    }

    /// Appends the message data.
    pub fn encode(&self, out: &mut Vec<u8>) {
        Writer::new(out)
            .u32(self.x)
            .u32(self.y)
            .u32(self.buttons)
            .u8(self.display_id);
    }
}

/// `VDIChunkHeader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// [`PORT_CLIENT`] or [`PORT_SERVER`].
    pub port: u32,
    /// Payload bytes that follow.
    pub size: u32,
}

impl ChunkHeader {
    /// Encoded size: 4 /* port */ + 4 /* size */.
    pub const SIZE: usize = 8;

    /// Reads a header and checks it: a known port and a payload within [`MAX_DATA_SIZE`].
    pub fn decode(bytes: &[u8; Self::SIZE]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let port = r.u32("agent chunk port")?;
        let size = r.u32("agent chunk size")?;
        if port != PORT_CLIENT && port != PORT_SERVER {
            return Err(DecodeError::Invalid {
                what: "agent chunk port",
                value: port.into(),
            });
        }
        if size as usize > MAX_DATA_SIZE {
            return Err(DecodeError::TooLarge {
                what: "agent chunk size",
                value: size.into(),
                limit: MAX_DATA_SIZE as u64,
            });
        }
        Ok(Self { port, size })
    }

    /// Appends the header and `data` as one chunk.
    pub fn encode_chunk(port: u32, data: &[u8], out: &mut Vec<u8>) {
        Writer::new(out).u32(port).u32(data.len() as u32).bytes(data);
    }
}

/// `VDAgentMessage` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// A [`message_type`].
    pub message_type: u32,
    /// Opaque to the transport.
    pub opaque: u64,
    /// Data bytes that follow (possibly over several chunks).
    pub size: u32,
}

impl MessageHeader {
    /// Encoded size: 4 + 4 + 8 + 4.
    pub const SIZE: usize = 20;

    /// Reads a header from the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        Ok(Self {
            protocol: r.u32("agent message protocol")?,
            message_type: r.u32("agent message type")?,
            opaque: r.u64("agent message opaque")?,
            size: r.u32("agent message size")?,
        })
    }

    /// Appends the header and `data`.
    pub fn encode_message(message_type: u32, data: &[u8], out: &mut Vec<u8>) {
        Writer::new(out)
            .u32(PROTOCOL)
            .u32(message_type)
            .u64(0)
            .u32(data.len() as u32)
            .bytes(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_round_trip_and_limits() {
        let mut out = Vec::new();
        ChunkHeader::encode_chunk(PORT_CLIENT, b"abc", &mut out);
        let header = ChunkHeader::decode(out[..8].try_into().unwrap()).unwrap();
        assert_eq!(header, ChunkHeader { port: 1, size: 3 });
        let mut bad = [0u8; 8];
        bad[0] = 7;
        assert!(ChunkHeader::decode(&bad).is_err(), "unknown port");
        bad[0] = 1;
        bad[4..8].copy_from_slice(&4096u32.to_le_bytes());
        assert!(ChunkHeader::decode(&bad).is_err(), "oversized chunk");
    }

    #[test]
    fn message_header_layout() {
        let mut out = Vec::new();
        MessageHeader::encode_message(message_type::CLIENT_DISCONNECTED, &[], &mut out);
        assert_eq!(out.len(), MessageHeader::SIZE);
        let h = MessageHeader::decode(&out).unwrap();
        assert_eq!((h.protocol, h.message_type, h.size), (1, 13, 0));
    }
}
