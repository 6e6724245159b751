//! The server side of the link stage as a state machine without I/O.
//!
//! ```text
//! C: LinkHeader + LinkMess + caps      -> Event::Request      (driver calls accept/refuse)
//! S: LinkHeader + LinkReply + caps
//! C: u32 auth mechanism (if AUTH_SELECTION)
//! C: 128-byte encrypted ticket         -> Event::Ticket       (driver calls finish)
//! S: u32 link result
//! ```
//!
//! With SASL (see [`sasl`]), the client picks `AUTH_SASL` and the ticket is
//! replaced by the Cyrus exchange; the link result follows it.
//!
//! The driver feeds received bytes to [`LinkAcceptor::handle_input`] and sends
//! whatever [`LinkAcceptor::take_output`] returns. Malformed input produces the
//! matching link error on the wire and a [`LinkFailure`]; the driver then closes
//! the connection once the output is flushed.

use std::time::{Duration, Instant};

use crate::caps::Caps;
use crate::consts::{common_cap, LinkError, MAGIC, TICKET_BYTES, TICKET_PUBKEY_BYTES, VERSION_MAJOR};
use crate::link::{LinkHeader, LinkMess, LinkReply};
use crate::wire::Reader;

/// Largest link message accepted, as in the C server: bounds pre-auth allocations.
pub const MAX_LINK_MESSAGE: u32 = 4096;

/// What the acceptor needs from its driver next.
#[derive(Debug)]
pub enum LinkEvent {
    /// The link message arrived and is well formed: answer with
    /// [`LinkAcceptor::accept`] or [`LinkAcceptor::refuse`].
    Request(LinkMess),
    /// The encrypted ticket arrived: check it, then call [`LinkAcceptor::finish`].
    Ticket(Box<[u8; TICKET_BYTES]>),
    /// The client chose SASL: start a SASL session and answer with
    /// [`LinkAcceptor::sasl_mechanisms`] (or drop the connection).
    SaslStart,
    /// The client's SASL start (with its chosen `mechanism`) or step data:
    /// run it, then answer with [`LinkAcceptor::sasl_reply`].
    SaslData(SaslData),
}

/// Why a link attempt ended without a channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("link refused ({error:?}): {reason}")]
pub struct LinkFailure {
    /// The code sent to the client, if any was sent.
    pub error: LinkError,
    /// What went wrong, for the log.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Message { size: usize },
    AwaitAccept,
    AuthMechanism,
    Ticket,
    AwaitResult,
    Linked,
    Failed,
    SaslAwaitList,
    SaslMechLen,
    SaslMechName { len: usize },
    SaslDataLen,
    SaslData { len: usize },
    SaslAwaitStep,
    SaslAwaitVerdict,
}

/// Server-side link state machine for one incoming connection.
#[derive(Debug)]
pub struct LinkAcceptor {
    state: State,
    input: Vec<u8>,
    output: Vec<u8>,
    deadline: Instant,
    client: Option<LinkMess>,
    server_common: Caps,
    /// Set once the link reply offered SASL instead of the ticket.
    sasl: Option<Box<sasl::SaslProgress>>,
}

impl LinkAcceptor {
    /// Starts waiting for a client that must finish linking within `timeout` of `now`.
    pub fn new(now: Instant, timeout: Duration) -> Self {
        Self {
            state: State::Header,
            input: Vec::new(),
            output: Vec::new(),
            deadline: now + timeout,
            client: None,
            server_common: Caps::new(),
            sasl: None,
        }
    }

    /// When the link must be complete; the driver drops the connection after it.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the link stalled past its deadline.
    pub fn is_expired(&self, now: Instant) -> bool {
        now >= self.deadline && !self.is_linked()
    }

    /// Whether the link completed successfully.
    pub fn is_linked(&self) -> bool {
        self.state == State::Linked
    }

    /// Whether the link failed; the connection should close once output is flushed.
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// Bytes to send to the client.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// The client's link message, once received.
    pub fn client(&self) -> Option<&LinkMess> {
        self.client.as_ref()
    }

    /// Whether both sides agreed on the 6-byte mini data header.
    pub fn use_mini_header(&self) -> bool {
        self.client
            .as_ref()
            .is_some_and(|c| c.common_caps.has(common_cap::MINI_HEADER))
            && self.server_common.has(common_cap::MINI_HEADER)
    }

    /// Consumes bytes from the client.
    ///
    /// Returns how many bytes were used (the rest belong to the channel once linked)
    /// and the event the driver must answer, if one is ready.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(usize, Option<LinkEvent>), LinkFailure> {
        let mut used = 0;
        loop {
            let want = match self.state {
                State::Header => LinkHeader::SIZE,
                State::Message { size } => size,
                State::AuthMechanism => 4,
                State::Ticket => TICKET_BYTES,
                State::SaslMechLen | State::SaslDataLen => 4,
                State::SaslMechName { len } | State::SaslData { len } => len,
                // Waiting for the driver's answer, or over.
                _ => return Ok((used, None)),
            };
            let need = want - self.input.len();
            let take = need.min(data.len() - used);
            self.input.extend_from_slice(&data[used..used + take]);
            used += take;
            if self.input.len() < want {
                // A wrong magic is refused as soon as four bytes are in.
                if self.state == State::Header && self.input.len() >= 4 {
                    self.check_magic()?;
                }
                return Ok((used, None));
            }
            let chunk = std::mem::take(&mut self.input);
            if let Some(event) = self.step(&chunk)? {
                return Ok((used, Some(event)));
            }
        }
    }

    fn check_magic(&mut self) -> Result<(), LinkFailure> {
        let magic = u32::from_le_bytes([self.input[0], self.input[1], self.input[2], self.input[3]]);
        if magic != MAGIC {
            return Err(self.fail_with_reply(LinkError::InvalidMagic, format!("bad magic {magic:#010x}")));
        }
        Ok(())
    }

    fn step(&mut self, chunk: &[u8]) -> Result<Option<LinkEvent>, LinkFailure> {
        match self.state {
            State::Header => {
                let header = LinkHeader::decode(&mut Reader::new(chunk))
                    .map_err(|e| self.fail_with_reply(LinkError::InvalidData, e.to_string()))?;
                if header.magic != MAGIC {
                    return Err(self.fail_with_reply(
                        LinkError::InvalidMagic,
                        format!("bad magic {:#010x}", header.magic),
                    ));
                }
                if header.major_version != VERSION_MAJOR {
                    let reason = format!("unsupported protocol version {}", header.major_version);
                    // Like the C server, stay silent towards major version 0 peers.
                    return Err(if header.major_version == 0 {
                        self.fail_silently(LinkError::VersionMismatch, reason)
                    } else {
                        self.fail_with_reply(LinkError::VersionMismatch, reason)
                    });
                }
                if header.size < LinkMess::FIXED_SIZE as u32 || header.size > MAX_LINK_MESSAGE {
                    return Err(self.fail_with_reply(
                        LinkError::InvalidData,
                        format!("link message size {} out of range", header.size),
                    ));
                }
                self.state = State::Message {
                    size: header.size as usize,
                };
                Ok(None)
            }
            State::Message { .. } => {
                let mess = LinkMess::decode(chunk)
                    .map_err(|e| self.fail_with_reply(LinkError::InvalidData, e.to_string()))?;
                self.client = Some(mess.clone());
                self.state = State::AwaitAccept;
                Ok(Some(LinkEvent::Request(mess)))
            }
            State::AuthMechanism => {
                let mechanism = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                if self.sasl.is_some() {
                    return self.sasl_chosen(mechanism);
                }
                if mechanism != common_cap::AUTH_SPICE {
                    return Err(self.fail_with_result(
                        LinkError::InvalidData,
                        format!("unsupported auth mechanism {mechanism}"),
                    ));
                }
                self.state = State::Ticket;
                Ok(None)
            }
            State::Ticket => {
                let mut ticket = Box::new([0u8; TICKET_BYTES]);
                ticket.copy_from_slice(chunk);
                self.state = State::AwaitResult;
                Ok(Some(LinkEvent::Ticket(ticket)))
            }
            State::SaslMechLen | State::SaslMechName { .. } | State::SaslDataLen | State::SaslData { .. } => {
                self.sasl_input(chunk)
            }
            _ => Ok(None),
        }
    }

    /// Answers a [`LinkEvent::Request`] with the server's capabilities and ticket key.
    ///
    /// `AUTH_SELECTION` and `AUTH_SPICE` are added to `common_caps` if missing,
    /// since the ticket exchange always follows.
    pub fn accept(&mut self, common_caps: &Caps, channel_caps: &Caps, pub_key: &[u8; TICKET_PUBKEY_BYTES]) {
        if self.state != State::AwaitAccept {
            return;
        }
        let mut common = common_caps.clone();
        common.set(common_cap::PROTOCOL_AUTH_SELECTION);
        common.set(common_cap::AUTH_SPICE);
        LinkReply {
            error: LinkError::Ok,
            pub_key: *pub_key,
            common_caps: common.clone(),
            channel_caps: channel_caps.clone(),
        }
        .encode_with_header(&mut self.output);
        let selection = self
            .client
            .as_ref()
            .is_some_and(|c| c.common_caps.has(common_cap::PROTOCOL_AUTH_SELECTION));
        self.server_common = common;
        self.state = if selection {
            State::AuthMechanism
        } else {
            State::Ticket
        };
    }

    /// Answers a [`LinkEvent::Request`] with an error reply instead.
    pub fn refuse(&mut self, error: LinkError, reason: impl Into<String>) -> LinkFailure {
        self.fail_with_reply(error, reason.into())
    }

    /// Sends the final link result after a [`LinkEvent::Ticket`].
    ///
    /// `LinkError::Ok` completes the link; anything else fails it.
    pub fn finish(&mut self, result: LinkError, reason: impl Into<String>) -> Result<(), LinkFailure> {
        if self.state != State::AwaitResult {
            return Err(self.fail_silently(LinkError::Error, "link result out of order".into()));
        }
        if result == LinkError::Ok {
            self.output.extend_from_slice(&result.code().to_le_bytes());
            self.state = State::Linked;
            Ok(())
        } else {
            Err(self.fail_with_result(result, reason.into()))
        }
    }

    /// Whether the link reply has been sent, so errors go out as a result word.
    fn reply_sent(&self) -> bool {
        !matches!(
            self.state,
            State::Header | State::Message { .. } | State::AwaitAccept | State::Linked | State::Failed
        )
    }

    fn fail_with_reply(&mut self, error: LinkError, reason: String) -> LinkFailure {
        if self.reply_sent() {
            return self.fail_with_result(error, reason);
        }
        LinkReply::refusal(error).encode_with_header(&mut self.output);
        self.fail_silently(error, reason)
    }

    fn fail_with_result(&mut self, error: LinkError, reason: String) -> LinkFailure {
        self.output.extend_from_slice(&error.code().to_le_bytes());
        self.fail_silently(error, reason)
    }

    fn fail_silently(&mut self, error: LinkError, reason: String) -> LinkFailure {
        self.state = State::Failed;
        self.input.clear();
        LinkFailure { error, reason }
    }
}

pub mod sasl;
pub use sasl::SaslData;

#[cfg(test)]
mod tests;
