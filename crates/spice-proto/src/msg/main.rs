//! Main channel messages (`MainChannel` in `spice.proto`).

use super::base::BaseClientMessage;
use super::ServerMessage;
use crate::error::DecodeError;
use crate::wire::{Reader, Writer};

/// Server message types of the main channel.
pub mod server_type {
    /// `SPICE_MSG_MAIN_MIGRATE_BEGIN`.
    pub const MIGRATE_BEGIN: u16 = 101;
    /// `SPICE_MSG_MAIN_MIGRATE_CANCEL`.
    pub const MIGRATE_CANCEL: u16 = 102;
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
    /// `SPICE_MSG_MAIN_MIGRATE_SWITCH_HOST`.
    pub const MIGRATE_SWITCH_HOST: u16 = 111;
    /// `SPICE_MSG_MAIN_MIGRATE_END`.
    pub const MIGRATE_END: u16 = 112;
    /// `SPICE_MSG_MAIN_NAME`.
    pub const NAME: u16 = 113;
    /// `SPICE_MSG_MAIN_UUID`.
    pub const UUID: u16 = 114;
    /// `SPICE_MSG_MAIN_AGENT_CONNECTED_TOKENS`.
    pub const AGENT_CONNECTED_TOKENS: u16 = 115;
    /// `SPICE_MSG_MAIN_MIGRATE_BEGIN_SEAMLESS`.
    pub const MIGRATE_BEGIN_SEAMLESS: u16 = 116;
    /// `SPICE_MSG_MAIN_MIGRATE_DST_SEAMLESS_ACK`.
    pub const MIGRATE_DST_SEAMLESS_ACK: u16 = 117;
    /// `SPICE_MSG_MAIN_MIGRATE_DST_SEAMLESS_NACK`.
    pub const MIGRATE_DST_SEAMLESS_NACK: u16 = 118;
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
    /// `SPICE_MSGC_MAIN_MIGRATE_DST_DO_SEAMLESS`.
    pub const MIGRATE_DST_DO_SEAMLESS: u16 = 110;
    /// `SPICE_MSGC_MAIN_MIGRATE_CONNECTED_SEAMLESS`.
    pub const MIGRATE_CONNECTED_SEAMLESS: u16 = 111;
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

/// The migration protocol version a seamless source announces
/// (`SPICE_MIGRATION_PROTOCOL_VERSION`).
pub const MIGRATION_PROTOCOL_VERSION: u32 = 1;

/// Where a client is to go (`SpiceMigrationDstInfo`, spice.proto's `DstInfo`):
/// the destination's plain and TLS ports, its host, and the subject its
/// certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DstInfo {
    /// Plain port; 0 or -1 in the host's call means none (sent as given, truncated).
    pub port: u16,
    /// TLS port.
    pub sport: u16,
    /// Host name or address (without NUL).
    pub host: String,
    /// Subject of the destination's certificate, if the host gave one.
    pub cert_subject: Option<String>,
}

/// Bytes of `DstInfo`'s fixed part: two ports, then size and offset of
/// the host and of the certificate subject.
const DST_INFO_FIXED: usize = 2 + 2 + 4 + 4 + 4 + 4;

impl DstInfo {
    /// Writes the fixed part (the two strings' offsets counted from the
    /// body's start, `fixed_len` being the length of everything before the
    /// strings) and then the strings, NUL-terminated, as the C marshaller
    /// lays out `@marshall` pointers: after the message, in member order; a
    /// missing subject has size and offset 0.
    fn encode(&self, out: &mut Vec<u8>, fixed_len: usize, trailer: &[u8]) {
        let host_size = self.host.len() + 1;
        let host_at = fixed_len;
        let (subject_size, subject_at) = match &self.cert_subject {
            Some(s) => (s.len() + 1, host_at + host_size),
            None => (0, 0),
        };
        let mut w = Writer::new(out);
        w.u16(self.port)
            .u16(self.sport)
            .u32(host_size as u32)
            .u32(host_at as u32)
            .u32(subject_size as u32)
            .u32(subject_at as u32)
            .bytes(trailer)
            .bytes(self.host.as_bytes())
            .u8(0);
        if let Some(s) = &self.cert_subject {
            w.bytes(s.as_bytes()).u8(0);
        }
    }
}

/// `SPICE_MSG_MAIN_MIGRATE_BEGIN`: connect to the destination and report back
/// (semi-seamless migration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateBegin(pub DstInfo);

impl ServerMessage for MigrateBegin {
    const TYPE: u16 = server_type::MIGRATE_BEGIN;
    fn encode_body(&self, out: &mut Vec<u8>) {
        self.0.encode(out, DST_INFO_FIXED, &[]);
    }
}

/// `SPICE_MSG_MAIN_MIGRATE_BEGIN_SEAMLESS`: as [`MigrateBegin`], with the
/// source's migration protocol version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateBeginSeamless {
    /// The destination.
    pub dst: DstInfo,
    /// The source's migration protocol version.
    pub src_mig_version: u32,
}

impl ServerMessage for MigrateBeginSeamless {
    const TYPE: u16 = server_type::MIGRATE_BEGIN_SEAMLESS;
    fn encode_body(&self, out: &mut Vec<u8>) {
        self.dst
            .encode(out, DST_INFO_FIXED + 4, &self.src_mig_version.to_le_bytes());
    }
}

/// `SPICE_MSG_MAIN_MIGRATE_SWITCH_HOST`: drop this server and connect afresh
/// to the destination (clients without semi-seamless migration). The same
/// layout as `DstInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateSwitchHost(pub DstInfo);

impl ServerMessage for MigrateSwitchHost {
    const TYPE: u16 = server_type::MIGRATE_SWITCH_HOST;
    fn encode_body(&self, out: &mut Vec<u8>) {
        self.0.encode(out, DST_INFO_FIXED, &[]);
    }
}

/// `SPICE_MSG_MAIN_MIGRATE_END`: the migration completed; the client moves
/// its channels to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrateEnd;

impl ServerMessage for MigrateEnd {
    const TYPE: u16 = server_type::MIGRATE_END;
    fn encode_body(&self, _out: &mut Vec<u8>) {}
}

/// `SPICE_MSG_MAIN_MIGRATE_CANCEL`: the migration failed; the client drops
/// its connection to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrateCancel;

impl ServerMessage for MigrateCancel {
    const TYPE: u16 = server_type::MIGRATE_CANCEL;
    fn encode_body(&self, _out: &mut Vec<u8>) {}
}

/// `SPICE_MSG_MAIN_MIGRATE_DST_SEAMLESS_ACK`: the destination takes seamless
/// migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrateDstSeamlessAck;

impl ServerMessage for MigrateDstSeamlessAck {
    const TYPE: u16 = server_type::MIGRATE_DST_SEAMLESS_ACK;
    fn encode_body(&self, _out: &mut Vec<u8>) {}
}

/// `SPICE_MSG_MAIN_MIGRATE_DST_SEAMLESS_NACK`: the destination refuses
/// seamless migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrateDstSeamlessNack;

impl ServerMessage for MigrateDstSeamlessNack {
    const TYPE: u16 = server_type::MIGRATE_DST_SEAMLESS_NACK;
    fn encode_body(&self, _out: &mut Vec<u8>) {}
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
    /// `SPICE_MSGC_MAIN_MIGRATE_CONNECTED` (`seamless: false`) or
    /// `_CONNECTED_SEAMLESS`: the client reached the destination.
    MigrateConnected {
        /// The client linked for seamless migration.
        seamless: bool,
    },
    /// `SPICE_MSGC_MAIN_MIGRATE_CONNECT_ERROR`: the client could not reach
    /// the destination.
    MigrateConnectError,
    /// `SPICE_MSGC_MAIN_MIGRATE_END`: sent to the destination once the client
    /// moved its channels there (semi-seamless).
    MigrateEnd,
    /// `SPICE_MSGC_MAIN_MIGRATE_DST_DO_SEAMLESS`: the client asks the
    /// destination for seamless migration from a source of this version.
    MigrateDstDoSeamless {
        /// The source's migration protocol version.
        src_version: u32,
    },
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
            client_type::MIGRATE_CONNECTED => Self::MigrateConnected { seamless: false },
            client_type::MIGRATE_CONNECTED_SEAMLESS => Self::MigrateConnected { seamless: true },
            client_type::MIGRATE_CONNECT_ERROR => Self::MigrateConnectError,
            client_type::MIGRATE_END => Self::MigrateEnd,
            client_type::MIGRATE_DST_DO_SEAMLESS => Self::MigrateDstDoSeamless {
                src_version: r.u32("migrate dst do seamless version")?,
            },
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

    #[test]
    fn migrate_begin_lays_strings_after_the_fixed_part() {
        let dst = DstInfo {
            port: 5901,
            sport: 5902,
            host: "127.0.0.1".into(),
            cert_subject: Some("CN=x".into()),
        };
        let body = body_of(&MigrateBegin(dst.clone()));
        let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        assert_eq!(&body[0..4], &[0x0d, 0x17, 0x0e, 0x17]);
        assert_eq!(u32_at(&body, 4), 10); // "127.0.0.1" and its NUL
        assert_eq!(u32_at(&body, 8), 20);
        assert_eq!(u32_at(&body, 12), 5);
        assert_eq!(u32_at(&body, 16), 30);
        assert_eq!(&body[20..30], b"127.0.0.1\0");
        assert_eq!(&body[30..], b"CN=x\0");
        // The switch-host message has the same layout.
        assert_eq!(body_of(&MigrateSwitchHost(dst.clone())), body);

        // Seamless: the version follows the fixed part; offsets move by 4.
        let body = body_of(&MigrateBeginSeamless {
            dst,
            src_mig_version: MIGRATION_PROTOCOL_VERSION,
        });
        assert_eq!(u32_at(&body, 8), 24);
        assert_eq!(u32_at(&body, 16), 34);
        assert_eq!(u32_at(&body, 20), 1);
        assert_eq!(&body[24..34], b"127.0.0.1\0");
        assert_eq!(&body[34..], b"CN=x\0");
    }

    #[test]
    fn migrate_begin_without_subject_has_null_pointer() {
        let body = body_of(&MigrateBegin(DstInfo {
            port: 1,
            sport: 0xffff,
            host: "h".into(),
            cert_subject: None,
        }));
        assert_eq!(
            body,
            [1, 0, 0xff, 0xff, 2, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'h', 0]
        );
        assert!(body_of(&MigrateEnd).is_empty());
        assert!(body_of(&MigrateCancel).is_empty());
        assert_eq!(MigrateEnd::TYPE, 112);
        assert_eq!(MigrateSwitchHost::TYPE, 111);
        assert_eq!(MigrateDstSeamlessAck::TYPE, 117);
        assert_eq!(MigrateDstSeamlessNack::TYPE, 118);
    }

    #[test]
    fn decodes_migration_replies() {
        assert_eq!(
            MainClientMessage::decode(client_type::MIGRATE_CONNECTED, &[]).unwrap(),
            MainClientMessage::MigrateConnected { seamless: false }
        );
        assert_eq!(
            MainClientMessage::decode(client_type::MIGRATE_CONNECTED_SEAMLESS, &[]).unwrap(),
            MainClientMessage::MigrateConnected { seamless: true }
        );
        assert_eq!(
            MainClientMessage::decode(client_type::MIGRATE_CONNECT_ERROR, &[]).unwrap(),
            MainClientMessage::MigrateConnectError
        );
        assert_eq!(
            MainClientMessage::decode(client_type::MIGRATE_END, &[]).unwrap(),
            MainClientMessage::MigrateEnd
        );
        assert_eq!(
            MainClientMessage::decode(client_type::MIGRATE_DST_DO_SEAMLESS, &[1, 0, 0, 0]).unwrap(),
            MainClientMessage::MigrateDstDoSeamless { src_version: 1 }
        );
        assert!(MainClientMessage::decode(client_type::MIGRATE_DST_DO_SEAMLESS, &[1, 0]).is_err());
    }
}
