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

/// `VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS`: the monitors' positions are meant.
pub const MONITORS_FLAG_USE_POS: u32 = 1;
/// `VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE`: a `VDAgentMonitorMM` per
/// monitor follows the monitors.
pub const MONITORS_FLAG_PHYSICAL_SIZE: u32 = 2;
/// Most monitors a configuration may name (the C server's `MAX_NUM_MONITORS`).
pub const MAX_MONITORS: usize = 256;

/// `VDAgentMonConfig`: one monitor a client wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Height in pixels (0 with width 0: a disabled monitor).
    pub height: u32,
    /// Width in pixels.
    pub width: u32,
    /// Bits per pixel.
    pub depth: u32,
    /// Position of the left edge.
    pub x: i32,
    /// Position of the top edge.
    pub y: i32,
}

impl MonitorConfig {
    /// Encoded size.
    pub const SIZE: usize = 20;
}

/// `VDAgentMonitorsConfig`: the monitors a client wants (`VD_AGENT_MONITORS_CONFIG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorsConfig {
    /// [`MONITORS_FLAG_USE_POS`]; [`MONITORS_FLAG_PHYSICAL_SIZE`] is implied by
    /// `physical_mm` and is not kept here.
    pub use_position: bool,
    /// The monitors, in the client's order.
    pub monitors: Vec<MonitorConfig>,
    /// Each monitor's physical size in millimetres, `(width, height)`, when
    /// the client sent them (`VDAgentMonitorMM`).
    pub physical_mm: Option<Vec<(u16, u16)>>,
}

impl MonitorsConfig {
    /// Reads the message data, checking the count against the data's length
    /// and [`MAX_MONITORS`]; unknown flags are ignored, as by the C server.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(data);
        let count = r.u32("monitors config count")? as usize;
        let flags = r.u32("monitors config flags")?;
        let with_mm = flags & MONITORS_FLAG_PHYSICAL_SIZE != 0;
        let each = MonitorConfig::SIZE + if with_mm { 4 } else { 0 };
        if count > MAX_MONITORS {
            return Err(DecodeError::TooLarge {
                what: "monitors config count",
                value: count as u64,
                limit: MAX_MONITORS as u64,
            });
        }
        if count * each > r.remaining() {
            return Err(DecodeError::Invalid {
                what: "monitors config count",
                value: count as u64,
            });
        }
        let mut monitors = Vec::with_capacity(count);
        for _ in 0..count {
            monitors.push(MonitorConfig {
                height: r.u32("monitor height")?,
                width: r.u32("monitor width")?,
                depth: r.u32("monitor depth")?,
                x: r.i32("monitor x")?,
                y: r.i32("monitor y")?,
            });
        }
        let physical_mm = if with_mm {
            let mut mm = Vec::with_capacity(count);
            for _ in 0..count {
                let height = r.u16("monitor height in mm")?;
                let width = r.u16("monitor width in mm")?;
                mm.push((width, height));
            }
            Some(mm)
        } else {
            None
        };
        Ok(Self {
            use_position: flags & MONITORS_FLAG_USE_POS != 0,
            monitors,
            physical_mm,
        })
    }

    /// The flags word of the encoding.
    pub fn flags(&self) -> u32 {
        let mut flags = 0;
        if self.use_position {
            flags |= MONITORS_FLAG_USE_POS;
        }
        if self.physical_mm.is_some() {
            flags |= MONITORS_FLAG_PHYSICAL_SIZE;
        }
        flags
    }

    /// Appends the message data (physical sizes only when present, one per monitor).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u32(self.monitors.len() as u32).u32(self.flags());
        for m in &self.monitors {
            w.u32(m.height).u32(m.width).u32(m.depth).i32(m.x).i32(m.y);
        }
        if let Some(mm) = &self.physical_mm {
            for i in 0..self.monitors.len() {
                let (width, height) = mm.get(i).copied().unwrap_or((0, 0));
                w.u16(height).u16(width);
            }
        }
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
    fn monitors_config_round_trips_with_and_without_physical_sizes() {
        let mut config = MonitorsConfig {
            use_position: true,
            monitors: vec![
                MonitorConfig {
                    height: 600,
                    width: 800,
                    depth: 32,
                    x: 0,
                    y: 0,
                },
                MonitorConfig {
                    height: 768,
                    width: 1024,
                    depth: 32,
                    x: 800,
                    y: -10,
                },
            ],
            physical_mm: Some(vec![(300, 200), (400, 250)]),
        };
        let mut out = Vec::new();
        config.encode(&mut out);
        assert_eq!(out.len(), 8 + 2 * 24);
        assert_eq!(&out[4..8], &3u32.to_le_bytes(), "both flags");
        assert_eq!(MonitorsConfig::decode(&out).unwrap(), config);
        config.physical_mm = None;
        out.clear();
        config.encode(&mut out);
        assert_eq!(out.len(), 8 + 2 * 20, "the size vdagentd checks");
        assert_eq!(MonitorsConfig::decode(&out).unwrap(), config);
    }

    #[test]
    fn monitors_config_counts_are_checked_against_the_data() {
        let mut data = Vec::new();
        Writer::new(&mut data).u32(2).u32(MONITORS_FLAG_PHYSICAL_SIZE);
        data.extend_from_slice(&[0; 2 * 20 + 4]);
        assert!(
            MonitorsConfig::decode(&data).is_err(),
            "second physical size missing"
        );
        let mut huge = Vec::new();
        Writer::new(&mut huge).u32(u32::MAX).u32(0);
        assert!(MonitorsConfig::decode(&huge).is_err());
        let mut many = Vec::new();
        Writer::new(&mut many).u32(300).u32(0);
        many.extend_from_slice(&vec![0; 300 * 20]);
        assert!(MonitorsConfig::decode(&many).is_err(), "over MAX_MONITORS");
        let mut unknown = Vec::new();
        Writer::new(&mut unknown).u32(0).u32(0x80);
        assert_eq!(MonitorsConfig::decode(&unknown).unwrap().flags(), 0);
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
