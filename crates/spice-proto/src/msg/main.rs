//! Main channel messages (`MainChannel` in `spice.proto`).

use super::base::BaseClientMessage;
use super::ServerMessage;
use crate::error::DecodeError;
use crate::wire::{Reader, Writer};

/// Server message types of the main channel.
pub mod server_type {
    /// `SPICE_MSG_MAIN_INIT`.
    pub const INIT: u16 = 103;
    /// `SPICE_MSG_MAIN_CHANNELS_LIST`.
    pub const CHANNELS_LIST: u16 = 104;
    /// `SPICE_MSG_MAIN_MOUSE_MODE`.
    pub const MOUSE_MODE: u16 = 105;
    /// `SPICE_MSG_MAIN_MULTI_MEDIA_TIME`.
    pub const MULTI_MEDIA_TIME: u16 = 106;
    /// `SPICE_MSG_MAIN_AGENT_CONNECTED`.
    pub const AGENT_CONNECTED: u16 = 107;
    /// `SPICE_MSG_MAIN_AGENT_DISCONNECTED`.
    pub const AGENT_DISCONNECTED: u16 = 108;
    /// `SPICE_MSG_MAIN_AGENT_DATA`.
    pub const AGENT_DATA: u16 = 109;
    /// `SPICE_MSG_MAIN_AGENT_TOKEN`.
    pub const AGENT_TOKEN: u16 = 110;
    /// `SPICE_MSG_MAIN_NAME`.
    pub const NAME: u16 = 113;
    /// `SPICE_MSG_MAIN_UUID`.
    pub const UUID: u16 = 114;
    /// `SPICE_MSG_MAIN_AGENT_CONNECTED_TOKENS`.
    pub const AGENT_CONNECTED_TOKENS: u16 = 115;
}

/// Client message types of the main channel.
pub mod client_type {
    /// `SPICE_MSGC_MAIN_CLIENT_INFO`.
    pub const CLIENT_INFO: u16 = 101;
    /// `SPICE_MSGC_MAIN_MIGRATE_CONNECTED`.
    pub const MIGRATE_CONNECTED: u16 = 102;
    /// `SPICE_MSGC_MAIN_MIGRATE_CONNECT_ERROR`.
    pub const MIGRATE_CONNECT_ERROR: u16 = 103;
    /// `SPICE_MSGC_MAIN_ATTACH_CHANNELS`.
    pub const ATTACH_CHANNELS: u16 = 104;
    /// `SPICE_MSGC_MAIN_MOUSE_MODE_REQUEST`.
    pub const MOUSE_MODE_REQUEST: u16 = 105;
    /// `SPICE_MSGC_MAIN_AGENT_START`.
    pub const AGENT_START: u16 = 106;
    /// `SPICE_MSGC_MAIN_AGENT_DATA`.
    pub const AGENT_DATA: u16 = 107;
    /// `SPICE_MSGC_MAIN_AGENT_TOKEN`.
    pub const AGENT_TOKEN: u16 = 108;
    /// `SPICE_MSGC_MAIN_MIGRATE_END`.
    pub const MIGRATE_END: u16 = 109;
}

/// Largest agent data chunk a client may send (`VD_AGENT_MAX_DATA_SIZE`).
pub const MAX_AGENT_DATA: usize = 2048;

/// `SPICE_MSG_MAIN_INIT`: the first message of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Init {
    /// Session id every other channel must link with.
    pub session_id: u32,
    /// Number of display channels.
    pub display_channels_hint: u32,
    /// Mouse modes the server supports (bit flags).
    pub supported_mouse_modes: u32,
    /// Current mouse mode.
    pub current_mouse_mode: u32,
    /// Whether a guest agent is attached.
    pub agent_connected: u32,
    /// Agent messages the client may send before waiting for tokens.
    pub agent_tokens: u32,
    /// Multimedia clock, milliseconds.
    pub multi_media_time: u32,
    /// Hint for the client's image cache size.
    pub ram_hint: u32,
}

impl ServerMessage for Init {
    const TYPE: u16 = server_type::INIT;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out)
            .u32(self.session_id)
            .u32(self.display_channels_hint)
            .u32(self.supported_mouse_modes)
            .u32(self.current_mouse_mode)
            .u32(self.agent_connected)
            .u32(self.agent_tokens)
            .u32(self.multi_media_time)
            .u32(self.ram_hint);
    }
}

/// `SPICE_MSG_MAIN_CHANNELS_LIST`: `(type, id)` of every channel but main.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelsList(pub Vec<(u8, u8)>);

impl ServerMessage for ChannelsList {
    const TYPE: u16 = server_type::CHANNELS_LIST;
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u32(self.0.len() as u32);
        for &(ty, id) in &self.0 {
            w.u8(ty).u8(id);
        }
    }
}

/// `SPICE_MSG_MAIN_MOUSE_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MouseMode {
    /// Supported modes (bit flags).
    pub supported: u16,
    /// Current mode.
    pub current: u16,
}

impl ServerMessage for MouseMode {
    const TYPE: u16 = server_type::MOUSE_MODE;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u16(self.supported).u16(self.current);
    }
}

/// `SPICE_MSG_MAIN_MULTI_MEDIA_TIME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiMediaTime(pub u32);

impl ServerMessage for MultiMediaTime {
    const TYPE: u16 = server_type::MULTI_MEDIA_TIME;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u32(self.0);
    }
}

/// `SPICE_MSG_MAIN_NAME`: the VM name, sent NUL-terminated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(pub String);

impl ServerMessage for Name {
    const TYPE: u16 = server_type::NAME;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out)
            .u32(self.0.len() as u32 + 1)
            .bytes(self.0.as_bytes())
            .u8(0);
    }
}

/// `SPICE_MSG_MAIN_UUID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uuid(pub [u8; 16]);

impl ServerMessage for Uuid {
    const TYPE: u16 = server_type::UUID;
    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

/// `SPICE_MSG_MAIN_AGENT_TOKEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentToken(pub u32);

impl ServerMessage for AgentToken {
    const TYPE: u16 = server_type::AGENT_TOKEN;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u32(self.0);
    }
}

/// `SPICE_MSG_MAIN_AGENT_CONNECTED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentConnected;

impl ServerMessage for AgentConnected {
    const TYPE: u16 = server_type::AGENT_CONNECTED;
    fn encode_body(&self, _out: &mut Vec<u8>) {}
}

/// `SPICE_MSG_MAIN_AGENT_CONNECTED_TOKENS`: the agent is back, with fresh tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentConnectedTokens(pub u32);

impl ServerMessage for AgentConnectedTokens {
    const TYPE: u16 = server_type::AGENT_CONNECTED_TOKENS;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u32(self.0);
    }
}

/// `SPICE_MSG_MAIN_AGENT_DISCONNECTED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentDisconnected {
    /// A `SPICE_LINK_ERR_*` code; 0 for a normal detach.
    pub error_code: u32,
}

impl ServerMessage for AgentDisconnected {
    const TYPE: u16 = server_type::AGENT_DISCONNECTED;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u32(self.error_code);
    }
}

/// `SPICE_MSG_MAIN_AGENT_DATA`: one chunk of the agent's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentData<'a>(pub &'a [u8]);

impl ServerMessage for AgentData<'_> {
    const TYPE: u16 = server_type::AGENT_DATA;
    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0);
    }
}

/// Messages a client sends on the main channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MainClientMessage {
    /// A message common to all channels.
    Base(BaseClientMessage),
    /// `SPICE_MSGC_MAIN_CLIENT_INFO`.
    ClientInfo {
        /// Client cache size.
        cache_size: u64,
    },
    /// `SPICE_MSGC_MAIN_ATTACH_CHANNELS`: asks for the channel list.
    AttachChannels,
    /// `SPICE_MSGC_MAIN_MOUSE_MODE_REQUEST`.
    MouseModeRequest {
        /// Requested mode.
        mode: u16,
    },
    /// `SPICE_MSGC_MAIN_AGENT_START`.
    AgentStart {
        /// Tokens granted to the server for agent data.
        tokens: u32,
    },
    /// `SPICE_MSGC_MAIN_AGENT_DATA`.
    AgentData(Vec<u8>),
    /// `SPICE_MSGC_MAIN_AGENT_TOKEN`.
    AgentToken {
        /// Additional tokens.
        tokens: u32,
    },
    /// A migration message; migration is not supported.
    Migration(u16),
    /// A type this server does not know.
    Unknown(u16),
}

impl MainClientMessage {
    /// Decodes one main channel message.
    pub fn decode(msg_type: u16, body: &[u8]) -> Result<Self, DecodeError> {
        if let Some(base) = BaseClientMessage::decode(msg_type, body)? {
            return Ok(Self::Base(base));
        }
        let mut r = Reader::new(body);
        let msg = match msg_type {
            client_type::CLIENT_INFO => Self::ClientInfo {
                cache_size: r.u64("client info cache size")?,
            },
            client_type::ATTACH_CHANNELS => Self::AttachChannels,
            client_type::MOUSE_MODE_REQUEST => Self::MouseModeRequest {
                mode: r.u16("mouse mode request")?,
            },
            client_type::AGENT_START => Self::AgentStart {
                tokens: r.u32("agent start tokens")?,
            },
            client_type::AGENT_DATA => {
                if body.len() > MAX_AGENT_DATA + 64 {
                    return Err(DecodeError::TooLarge {
                        what: "agent data",
                        value: body.len() as u64,
                        limit: (MAX_AGENT_DATA + 64) as u64,
                    });
                }
                Self::AgentData(r.rest().to_vec())
            }
            client_type::AGENT_TOKEN => Self::AgentToken {
                tokens: r.u32("agent tokens")?,
            },
            client_type::MIGRATE_CONNECTED
            | client_type::MIGRATE_CONNECT_ERROR
            | client_type::MIGRATE_END => Self::Migration(msg_type),
            other => Self::Unknown(other),
        };
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::body_of;

    #[test]
    fn init_is_32_bytes_in_field_order() {
        let body = body_of(&Init {
            session_id: 1,
            display_channels_hint: 2,
            supported_mouse_modes: 3,
            current_mouse_mode: 4,
            agent_connected: 5,
            agent_tokens: 6,
            multi_media_time: 7,
            ram_hint: 8,
        });
        let words: Vec<u32> = body
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(words, [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn name_is_nul_terminated_with_length() {
        assert_eq!(body_of(&Name("vm".into())), [3, 0, 0, 0, b'v', b'm', 0]);
    }

    #[test]
    fn channels_list_layout() {
        assert_eq!(
            body_of(&ChannelsList(vec![(2, 0), (3, 0)])),
            [2, 0, 0, 0, 2, 0, 3, 0]
        );
    }

    #[test]
    fn decodes_client_messages() {
        assert_eq!(
            MainClientMessage::decode(client_type::MOUSE_MODE_REQUEST, &[2, 0]).unwrap(),
            MainClientMessage::MouseModeRequest { mode: 2 }
        );
        assert_eq!(
            MainClientMessage::decode(client_type::ATTACH_CHANNELS, &[]).unwrap(),
            MainClientMessage::AttachChannels
        );
        assert!(MainClientMessage::decode(client_type::AGENT_START, &[1]).is_err());
        assert!(MainClientMessage::decode(client_type::AGENT_DATA, &[0; 5000]).is_err());
        assert_eq!(
            MainClientMessage::decode(999, &[]).unwrap(),
            MainClientMessage::Unknown(999)
        );
    }
}
