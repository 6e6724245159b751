//! Where the client's agent data goes: message by message, as the C server's
//! agent message filter sees it.
//!
//! The client sends `VDAgentMessage`s split over `MAIN_AGENT_DATA` payloads
//! (spice-gtk: at most 2 KiB each, never two messages in one payload). Most
//! go to the guest agent untouched; a `VD_AGENT_MONITORS_CONFIG` is gathered
//! whole, because the server offers it to the displays' devices first (a QXL
//! device passes it to its guest driver) and only hands it to the agent
//! when they do not take it.

use spice_proto::agent::{message_type, MessageHeader, MonitorConfig, MAX_MONITORS, PROTOCOL};

/// The largest monitors configuration gathered: [`MAX_MONITORS`] monitors
/// with their physical sizes.
const MAX_MONITORS_CONFIG: usize = 8 + MAX_MONITORS * (MonitorConfig::SIZE + 4);

/// What to do with one payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// To the agent, as it is.
    Forward,
    /// Part of a message being gathered.
    Held,
    /// A whole `VD_AGENT_MONITORS_CONFIG` (its data, without the message header).
    MonitorsConfig(Vec<u8>),
}

/// The client's stream is not a sequence of agent messages.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StreamError {
    #[error("agent data starts with {0} bytes, shorter than a message header")]
    ShortHeader(usize),
    #[error("agent message of protocol {0}")]
    Protocol(u32),
    #[error("agent data runs {0} bytes past the end of its message")]
    Overrun(usize),
    #[error("monitors configuration of {0} bytes is larger than {MAX_MONITORS_CONFIG}")]
    MonitorsConfigTooLarge(u32),
}

#[derive(Debug, Default)]
pub(crate) struct ClientMessages {
    /// Bytes of the current message still to come.
    remaining: u32,
    /// The current message's data so far, when it is being gathered.
    gathering: Option<Vec<u8>>,
}

impl ClientMessages {
    /// Routes one `MAIN_AGENT_DATA` payload.
    pub(crate) fn route(&mut self, data: &[u8]) -> Result<Route, StreamError> {
        let body = if self.remaining == 0 {
            if data.len() < MessageHeader::SIZE {
                return Err(StreamError::ShortHeader(data.len()));
            }
            let header = MessageHeader::decode(data).map_err(|_| StreamError::ShortHeader(data.len()))?;
            if header.protocol != PROTOCOL {
                return Err(StreamError::Protocol(header.protocol));
            }
            let monitors = header.message_type == message_type::MONITORS_CONFIG;
            if monitors && header.size as usize > MAX_MONITORS_CONFIG {
                return Err(StreamError::MonitorsConfigTooLarge(header.size));
            }
            self.remaining = header.size;
            self.gathering = monitors.then(|| Vec::with_capacity(header.size as usize));
            &data[MessageHeader::SIZE..]
        } else {
            data
        };
        if body.len() > self.remaining as usize {
            let over = body.len() - self.remaining as usize;
            self.remaining = 0;
            self.gathering = None;
            return Err(StreamError::Overrun(over));
        }
        self.remaining -= body.len() as u32;
        let Some(gathered) = &mut self.gathering else {
            return Ok(Route::Forward);
        };
        gathered.extend_from_slice(body);
        if self.remaining > 0 {
            return Ok(Route::Held);
        }
        Ok(Route::MonitorsConfig(self.gathering.take().unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MessageHeader::encode_message(kind, data, &mut out);
        out
    }

    #[test]
    fn other_messages_are_forwarded_chunk_by_chunk() {
        let mut m = ClientMessages::default();
        let clip = message(message_type::CLIPBOARD, &[7; 3000]);
        assert_eq!(m.route(&clip[..2048]), Ok(Route::Forward));
        assert_eq!(m.route(&clip[2048..]), Ok(Route::Forward));
        assert_eq!(
            m.route(&message(message_type::CLIPBOARD_RELEASE, &[])),
            Ok(Route::Forward)
        );
    }

    #[test]
    fn a_monitors_config_is_gathered_across_payloads() {
        let mut m = ClientMessages::default();
        let data: Vec<u8> = (0..100).collect();
        let msg = message(message_type::MONITORS_CONFIG, &data);
        assert_eq!(m.route(&msg[..50]), Ok(Route::Held));
        assert_eq!(m.route(&msg[50..]), Ok(Route::MonitorsConfig(data)));
        assert_eq!(
            m.route(&message(message_type::CLIPBOARD, b"x")),
            Ok(Route::Forward)
        );
    }

    #[test]
    fn broken_streams_are_refused() {
        let mut m = ClientMessages::default();
        assert_eq!(m.route(&[1, 0, 0]), Err(StreamError::ShortHeader(3)));
        let mut wrong = message(message_type::CLIPBOARD, b"abc");
        wrong[0] = 9;
        assert_eq!(m.route(&wrong), Err(StreamError::Protocol(9)));
        let mut long = message(message_type::CLIPBOARD, b"abc");
        long.push(0);
        assert_eq!(m.route(&long), Err(StreamError::Overrun(1)));
        let huge = message(message_type::MONITORS_CONFIG, &vec![0; MAX_MONITORS_CONFIG + 1]);
        assert!(matches!(
            m.route(&huge[..2048]),
            Err(StreamError::MonitorsConfigTooLarge(_))
        ));
        // After an error the next payload starts a message again.
        assert_eq!(
            m.route(&message(message_type::CLIPBOARD, b"ok")),
            Ok(Route::Forward)
        );
    }
}
