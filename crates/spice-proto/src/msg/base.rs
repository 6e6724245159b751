//! Messages every channel shares (`BaseChannel` in `spice.proto`).

use super::ServerMessage;
use crate::error::DecodeError;
use crate::wire::{Reader, Writer};

/// Server message types common to all channels.
pub mod server_type {
    /// `SPICE_MSG_MIGRATE`.
    pub const MIGRATE: u16 = 1;
    /// `SPICE_MSG_MIGRATE_DATA`.
    pub const MIGRATE_DATA: u16 = 2;
    /// `SPICE_MSG_SET_ACK`.
    pub const SET_ACK: u16 = 3;
    /// `SPICE_MSG_PING`.
    pub const PING: u16 = 4;
    /// `SPICE_MSG_WAIT_FOR_CHANNELS`.
    pub const WAIT_FOR_CHANNELS: u16 = 5;
    /// `SPICE_MSG_DISCONNECTING`.
    pub const DISCONNECTING: u16 = 6;
    /// `SPICE_MSG_NOTIFY`.
    pub const NOTIFY: u16 = 7;
}

/// Client message types common to all channels.
pub mod client_type {
    /// `SPICE_MSGC_ACK_SYNC`.
    pub const ACK_SYNC: u16 = 1;
    /// `SPICE_MSGC_ACK`.
    pub const ACK: u16 = 2;
    /// `SPICE_MSGC_PONG`.
    pub const PONG: u16 = 3;
    /// `SPICE_MSGC_MIGRATE_FLUSH_MARK`.
    pub const MIGRATE_FLUSH_MARK: u16 = 4;
    /// `SPICE_MSGC_MIGRATE_DATA`.
    pub const MIGRATE_DATA: u16 = 5;
    /// `SPICE_MSGC_DISCONNECTING`.
    pub const DISCONNECTING: u16 = 6;
}

/// First channel-specific message type; lower numbers are base messages.
pub const FIRST_CHANNEL_TYPE: u16 = 101;

/// `SPICE_MSG_SET_ACK`: starts flow control on the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetAck {
    /// Generation the client echoes in `ACK_SYNC`.
    pub generation: u32,
    /// The client sends one `ACK` per `window` messages.
    pub window: u32,
}

impl ServerMessage for SetAck {
    const TYPE: u16 = server_type::SET_ACK;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u32(self.generation).u32(self.window);
    }
}

/// `SPICE_MSG_PING`: the client answers with `PONG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    /// Echoed in the pong.
    pub id: u32,
    /// Echoed in the pong; the server's send time.
    pub timestamp: u64,
    /// Padding used to measure bandwidth.
    pub padding: usize,
}

impl ServerMessage for Ping {
    const TYPE: u16 = server_type::PING;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u32(self.id).u64(self.timestamp);
        out.resize(out.len() + self.padding, 0);
    }
}

/// `SPICE_MSG_DISCONNECTING`: the server is about to close the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnecting {
    /// Server time of the decision.
    pub time_stamp: u64,
    /// A `SPICE_LINK_ERR_*` reason.
    pub reason: u32,
}

impl ServerMessage for Disconnecting {
    const TYPE: u16 = server_type::DISCONNECTING;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u64(self.time_stamp).u32(self.reason);
    }
}

/// `SPICE_MSG_NOTIFY`: a message shown or logged by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Server time.
    pub time_stamp: u64,
    /// 0 info, 1 warning, 2 error.
    pub severity: u32,
    /// 0 low, 1 medium, 2 high.
    pub visibility: u32,
    /// Error, warning or info code.
    pub what: u32,
    /// Text, sent NUL-terminated.
    pub message: String,
}

impl ServerMessage for Notify {
    const TYPE: u16 = server_type::NOTIFY;
    fn encode_body(&self, out: &mut Vec<u8>) {
        let len = self.message.len() + 1;
        Writer::new(out)
            .u64(self.time_stamp)
            .u32(self.severity)
            .u32(self.visibility)
            .u32(self.what)
            .u32(len as u32)
            .bytes(self.message.as_bytes())
            .u8(0);
    }
}

/// Client messages common to all channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseClientMessage {
    /// `SPICE_MSGC_ACK_SYNC`.
    AckSync {
        /// The generation of the `SET_ACK` being acknowledged.
        generation: u32,
    },
    /// `SPICE_MSGC_ACK`: one window of messages was received.
    Ack,
    /// `SPICE_MSGC_PONG`.
    Pong {
        /// Id of the ping.
        id: u32,
        /// Timestamp of the ping.
        timestamp: u64,
    },
    /// `SPICE_MSGC_MIGRATE_FLUSH_MARK`: the client sent all it had for the
    /// migration source.
    MigrateFlushMark,
    /// `SPICE_MSGC_MIGRATE_DATA`: the channel's state from the migration
    /// source, passed on by the client (see [`crate::migrate_data`]).
    MigrateData(Vec<u8>),
    /// `SPICE_MSGC_DISCONNECTING`: the client is closing the channel.
    Disconnecting {
        /// Client time.
        time_stamp: u64,
        /// A `SPICE_LINK_ERR_*` reason.
        reason: u32,
    },
}

impl BaseClientMessage {
    /// Decodes a base message, or `None` if `msg_type` is not one.
    pub fn decode(msg_type: u16, body: &[u8]) -> Result<Option<Self>, DecodeError> {
        let mut r = Reader::new(body);
        let msg = match msg_type {
            client_type::ACK_SYNC => Self::AckSync {
                generation: r.u32("ack sync generation")?,
            },
            client_type::ACK => Self::Ack,
            client_type::PONG => Self::Pong {
                id: r.u32("pong id")?,
                timestamp: r.u64("pong timestamp")?,
            },
            client_type::MIGRATE_FLUSH_MARK => Self::MigrateFlushMark,
            client_type::MIGRATE_DATA => Self::MigrateData(r.rest().to_vec()),
            client_type::DISCONNECTING => Self::Disconnecting {
                time_stamp: r.u64("disconnecting time stamp")?,
                reason: r.u32("disconnecting reason")?,
            },
            _ => return Ok(None),
        };
        // Older clients pad some messages; extra bytes in base messages are harmless.
        Ok(Some(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::body_of;

    #[test]
    fn set_ack_and_ping_layouts() {
        assert_eq!(
            body_of(&SetAck {
                generation: 1,
                window: 20
            }),
            [1, 0, 0, 0, 20, 0, 0, 0]
        );
        let ping = body_of(&Ping {
            id: 2,
            timestamp: 3,
            padding: 5,
        });
        assert_eq!(ping.len(), 4 + 8 + 5);
    }

    #[test]
    fn decodes_pong_and_rejects_short_one() {
        let mut body = Vec::new();
        Writer::new(&mut body).u32(9).u64(1234);
        assert_eq!(
            BaseClientMessage::decode(client_type::PONG, &body).unwrap(),
            Some(BaseClientMessage::Pong {
                id: 9,
                timestamp: 1234
            })
        );
        assert!(BaseClientMessage::decode(client_type::PONG, &body[..5]).is_err());
        assert_eq!(BaseClientMessage::decode(101, &[]).unwrap(), None);
    }
}
