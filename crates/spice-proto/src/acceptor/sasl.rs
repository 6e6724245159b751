//! The SASL exchange of the link stage, as the C server and spice-gtk speak it.
//!
//! ```text
//! S: link reply with AUTH_SASL          (LinkAcceptor::accept_sasl)
//! C: u32 auth mechanism = AUTH_SASL     -> LinkEvent::SaslStart
//! S: u32 len, mechanism list ",A,B,"    (LinkAcceptor::sasl_mechanisms)
//! C: u32 len (1..=100), mechanism name
//! C: u32 len (<= 1 MiB), data           -> LinkEvent::SaslData (with the mechanism)
//! S: u32 len, data, u8 complete         (LinkAcceptor::sasl_reply)
//!    while not complete:
//! C: u32 len (<= 1 MiB), data           -> LinkEvent::SaslData (a step)
//! S: u32 len, data, u8 complete
//!    once complete:
//! S: u32 0 (auth accepted), then the ordinary link result, through the
//!    SASL security layer when one was negotiated
//!    or u32 1, u32 22, "Authentication failed\0" (SSF too weak)
//! ```
//!
//! Data carries a trailing NUL on the wire, counted in its length; a length
//! of 0 means "no data", which SASL tells apart from empty data (a length
//! of 1). Malformed input ends the link as the C server does: a bad
//! mechanism name, or oversized start data, with an `INVALID_DATA` link
//! reply; a bad name length or oversized step data by closing.

use super::{LinkAcceptor, LinkFailure, State};
use crate::caps::Caps;
use crate::consts::{common_cap, LinkError, TICKET_PUBKEY_BYTES};
use crate::link::LinkReply;

/// Longest mechanism name a client may send (the C server's bound).
pub const MAX_MECHNAME_LEN: usize = 100;
/// Largest start or step data in either direction (the C server's bound).
pub const MAX_DATA_LEN: usize = 1024 * 1024;
/// What the C server sends when the negotiated SSF is too weak.
const REJECT_MESSAGE: &[u8] = b"Authentication failed\0";

/// The client's start or step input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslData {
    /// The mechanism the client chose, on the start message only.
    pub mechanism: Option<String>,
    /// The client's data without its NUL; `None` when it sent none.
    pub data: Option<Vec<u8>>,
}

/// What the acceptor remembers between SASL messages.
#[derive(Debug, Default)]
pub(super) struct SaslProgress {
    /// The list sent to the client, `,`-delimited on both ends.
    mechlist: String,
    /// The chosen mechanism until the start data arrives.
    mechname: Option<String>,
}

impl LinkAcceptor {
    /// Answers a [`super::LinkEvent::Request`] offering SASL instead of the
    /// ticket: `AUTH_SELECTION` and `AUTH_SASL` are added to `common_caps`,
    /// and the public key is zeros, as the C server sends to a client that
    /// can do SASL.
    ///
    /// A client that cannot select an auth mechanism cannot do SASL; like
    /// the C server, it gets a `VERSION_MISMATCH` link error after the reply.
    pub fn accept_sasl(&mut self, common_caps: &Caps, channel_caps: &Caps) -> Result<(), LinkFailure> {
        if self.state != State::AwaitAccept {
            return Ok(());
        }
        let mut common = common_caps.clone();
        common.set(common_cap::PROTOCOL_AUTH_SELECTION);
        common.set(common_cap::AUTH_SASL);
        LinkReply {
            error: LinkError::Ok,
            pub_key: [0; TICKET_PUBKEY_BYTES],
            common_caps: common.clone(),
            channel_caps: channel_caps.clone(),
        }
        .encode_with_header(&mut self.output);
        self.server_common = common;
        self.sasl = Some(Box::default());
        let selection = self
            .client
            .as_ref()
            .is_some_and(|c| c.common_caps.has(common_cap::PROTOCOL_AUTH_SELECTION));
        if !selection {
            LinkReply::refusal(LinkError::VersionMismatch).encode_with_header(&mut self.output);
            return Err(self.fail_silently(
                LinkError::VersionMismatch,
                "SASL enabled, but the client supports only ticket authentication".into(),
            ));
        }
        self.state = State::AuthMechanism;
        Ok(())
    }

    /// The client's auth mechanism word, when SASL was offered.
    pub(super) fn sasl_chosen(&mut self, mechanism: u32) -> Result<Option<super::LinkEvent>, LinkFailure> {
        if mechanism != common_cap::AUTH_SASL {
            return Err(
                self.fail_with_link_error(format!("auth mechanism {mechanism} chosen, but SASL is required"))
            );
        }
        self.state = State::SaslAwaitList;
        Ok(Some(super::LinkEvent::SaslStart))
    }

    /// Sends the mechanisms the session offers, `,`-delimited as Cyrus'
    /// `sasl_listmech` makes them with the C server's arguments (",A,B,").
    pub fn sasl_mechanisms(&mut self, mechlist: &str) {
        if self.state != State::SaslAwaitList {
            return;
        }
        self.output
            .extend_from_slice(&(mechlist.len() as u32).to_le_bytes());
        self.output.extend_from_slice(mechlist.as_bytes());
        if let Some(progress) = &mut self.sasl {
            progress.mechlist = mechlist.to_owned();
        }
        self.state = State::SaslMechLen;
    }

    /// A length, name or data of the client's SASL input is complete.
    pub(super) fn sasl_input(&mut self, chunk: &[u8]) -> Result<Option<super::LinkEvent>, LinkFailure> {
        match self.state {
            State::SaslMechLen => {
                let len = read_u32(chunk) as usize;
                if !(1..=MAX_MECHNAME_LEN).contains(&len) {
                    return Err(self.fail_silently(
                        LinkError::InvalidData,
                        format!("SASL mechanism name length {len} out of range"),
                    ));
                }
                self.state = State::SaslMechName { len };
                Ok(None)
            }
            State::SaslMechName { .. } => {
                // The C server reads the name as a C string: it ends at a NUL.
                let name = chunk.split(|&b| b == 0).next().unwrap_or_default();
                let listed = self.sasl.as_ref().is_some_and(|p| is_listed(&p.mechlist, name));
                let name = String::from_utf8_lossy(name).into_owned();
                if !listed {
                    return Err(self.fail_with_link_error(format!("SASL mechanism {name:?} was not offered")));
                }
                if let Some(progress) = &mut self.sasl {
                    progress.mechname = Some(name);
                }
                self.state = State::SaslDataLen;
                Ok(None)
            }
            State::SaslDataLen => {
                let len = read_u32(chunk) as usize;
                if len > MAX_DATA_LEN {
                    let reason = format!("SASL data of {len} bytes is too long");
                    return Err(if self.starting() {
                        self.fail_with_link_error(reason)
                    } else {
                        self.fail_silently(LinkError::InvalidData, reason)
                    });
                }
                if len == 0 {
                    return Ok(Some(self.sasl_event(None)));
                }
                self.state = State::SaslData { len };
                Ok(None)
            }
            State::SaslData { .. } => {
                // The wire's NUL (whatever byte the client put there) is not data.
                let data = chunk[..chunk.len() - 1].to_vec();
                Ok(Some(self.sasl_event(Some(data))))
            }
            _ => Ok(None),
        }
    }

    fn starting(&self) -> bool {
        self.sasl.as_ref().is_some_and(|p| p.mechname.is_some())
    }

    fn sasl_event(&mut self, data: Option<Vec<u8>>) -> super::LinkEvent {
        let mechanism = self.sasl.as_mut().and_then(|p| p.mechname.take());
        self.state = State::SaslAwaitStep;
        super::LinkEvent::SaslData(SaslData { mechanism, data })
    }

    /// Answers a [`super::LinkEvent::SaslData`] with the server's data and
    /// whether the server is done. When not, the next step is read; when
    /// done, the driver checks the security strength and calls
    /// [`Self::sasl_accept`] or [`Self::sasl_reject`].
    ///
    /// Data over [`MAX_DATA_LEN`] closes the link, as in the C server.
    pub fn sasl_reply(&mut self, data: &[u8], complete: bool) -> Result<(), LinkFailure> {
        if self.state != State::SaslAwaitStep {
            return Err(self.fail_silently(LinkError::Error, "SASL reply out of order".into()));
        }
        if data.len() > MAX_DATA_LEN {
            return Err(self.fail_silently(
                LinkError::Error,
                format!("SASL reply of {} bytes is too long", data.len()),
            ));
        }
        if data.is_empty() {
            self.output.extend_from_slice(&0u32.to_le_bytes());
        } else {
            self.output
                .extend_from_slice(&(data.len() as u32 + 1).to_le_bytes());
            self.output.extend_from_slice(data);
            self.output.push(0);
        }
        self.output.push(u8::from(complete));
        self.state = if complete {
            State::SaslAwaitVerdict
        } else {
            State::SaslDataLen
        };
        Ok(())
    }

    /// The SASL session failed (wrong password, a mechanism error): the C
    /// server closes without a word, and so does this.
    pub fn sasl_fail(&mut self, reason: impl Into<String>) -> LinkFailure {
        self.fail_silently(LinkError::PermissionDenied, reason.into())
    }

    /// Authentication succeeded: sends the auth result word (0). The link
    /// result follows with [`Self::finish`], which the driver sends through
    /// the security layer if the session negotiated one; the acceptor's
    /// output up to here must go out unencoded.
    pub fn sasl_accept(&mut self) {
        if self.state != State::SaslAwaitVerdict {
            return;
        }
        self.output.extend_from_slice(&LinkError::Ok.code().to_le_bytes());
        self.state = State::AwaitResult;
    }

    /// Authentication completed with too weak a security layer: sends the C
    /// server's rejection (a 1, then a length-prefixed message) and fails.
    pub fn sasl_reject(&mut self, reason: impl Into<String>) -> LinkFailure {
        self.output.extend_from_slice(&1u32.to_le_bytes());
        self.output
            .extend_from_slice(&(REJECT_MESSAGE.len() as u32).to_le_bytes());
        self.output.extend_from_slice(REJECT_MESSAGE);
        self.fail_silently(LinkError::PermissionDenied, reason.into())
    }

    /// The C server's `reds_send_link_error` during the exchange: a whole
    /// link reply carrying `INVALID_DATA`, not a result word.
    fn fail_with_link_error(&mut self, reason: String) -> LinkFailure {
        LinkReply::refusal(LinkError::InvalidData).encode_with_header(&mut self.output);
        self.fail_silently(LinkError::InvalidData, reason)
    }
}

fn read_u32(chunk: &[u8]) -> u32 {
    u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])
}

/// Whether `name` is one of the `,`-delimited entries of `mechlist`.
fn is_listed(mechlist: &str, name: &[u8]) -> bool {
    if name.is_empty() || name.contains(&b',') {
        return false;
    }
    mechlist
        .as_bytes()
        .split(|&b| b == b',')
        .any(|entry| entry == name)
}

#[cfg(test)]
mod tests;
