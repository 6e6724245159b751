//! The SASL exchange of the link stage, driven with a scripted authenticator.

use std::time::{Duration, Instant};

use spice_proto::acceptor::sasl::{MAX_DATA_LEN, MAX_MECHNAME_LEN};
use spice_proto::caps::Caps;
use spice_proto::consts::{common_cap, ChannelType, LinkError};
use spice_proto::link::{LinkHeader, LinkMess};
use spice_proto::{LinkAcceptor, LinkEvent, SaslData};

use super::{check_dead, check_failure_output, Chunks};

/// Bits of the second byte of a [`sasl_exchange`] input: how the fake
/// authenticator behaves.
pub mod sasl_ctl {
    /// The low two bits: how many client steps after the start it takes
    /// before the session is done.
    pub const STEPS_MASK: u8 = 0x03;
    /// The last step fails (a wrong password): the link closes silently.
    pub const DENY: u8 = 0x04;
    /// The session ends with a security layer under 56 bits: rejected.
    pub const WEAK: u8 = 0x08;
    /// The server's data: none, or as long as the client's (bit set).
    pub const ECHO: u8 = 0x10;
    /// The session cannot be made: the link closes silently.
    pub const NO_SESSION: u8 = 0x20;
    /// The mechanisms offered: two (clear) or one (set).
    pub const ONE_MECH: u8 = 0x40;
}

/// The mechanism lists the fake authenticator offers.
const LISTS: [&str; 2] = [",SCRAM-SHA-256,DIGEST-MD5,", ",GSSAPI,"];
/// C's "Authentication failed" rejection after a weak security layer.
const REJECTION: &[u8] = b"\x01\0\0\0\x16\0\0\0Authentication failed\0";

/// The link message of a client that can do SASL, as spice-gtk sends it.
pub fn sasl_client_request() -> Vec<u8> {
    let mess = LinkMess {
        connection_id: 0,
        channel_type: ChannelType::Main as u8,
        channel_id: 0,
        common_caps: Caps::with(&[
            common_cap::PROTOCOL_AUTH_SELECTION,
            common_cap::AUTH_SPICE,
            common_cap::AUTH_SASL,
            common_cap::MINI_HEADER,
        ]),
        channel_caps: Caps::new(),
    };
    crate::seeds::link_request(&mess)
}

/// Drives a [`LinkAcceptor`] that offered SASL with the bytes a client sends
/// after the link reply (its auth mechanism word, then the exchange).
///
/// Input: a control byte for the read sizes (as [`super::link_acceptor`]'s),
/// a [`sasl_ctl`] byte for the authenticator, then the client's stream.
///
/// Invariants: `SaslStart` comes once, right after the mechanism word, and
/// the list goes out exactly; the start names a listed mechanism and later
/// steps none; client data is within C's bound; the server's replies,
/// acceptance and rejection are byte-exact; failures send nothing or a
/// whole `INVALID_DATA` link reply and end the acceptor; a linked acceptor
/// consumes nothing more.
pub fn sasl_exchange(data: &[u8]) {
    run(data);
}

/// How an input's exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Too short to start.
    Short,
    /// Still going when the input ran out.
    Open,
    Linked,
    Failed,
}

fn run(data: &[u8]) -> End {
    let &[chunking, script, ref stream @ ..] = data else {
        return End::Short;
    };
    let list = LISTS[usize::from(script & sasl_ctl::ONE_MECH != 0)];
    let mut steps_left = script & sasl_ctl::STEPS_MASK;

    let start = Instant::now();
    let mut acceptor = LinkAcceptor::new(start, Duration::from_secs(10));
    let request = sasl_client_request();
    let (used, event) = acceptor.handle_input(&request).expect("a valid link message");
    assert_eq!(used, request.len());
    assert!(matches!(event, Some(LinkEvent::Request(_))));
    acceptor
        .accept_sasl(&Caps::with(&[common_cap::MINI_HEADER]), &Caps::new())
        .expect("a client with auth selection");
    let reply = acceptor.take_output();
    assert!(reply.len() > LinkHeader::SIZE, "a link reply");

    let mut started = false;
    let mut mechanism_seen = false;
    let mut chunks = Chunks::new(chunking, stream);
    while let Some(chunk) = chunks.next() {
        let mut rest = chunk;
        loop {
            let was_linked = acceptor.is_linked();
            let (used, event) = match acceptor.handle_input(rest) {
                Ok(ok) => ok,
                Err(failure) => {
                    let out = acceptor.take_output();
                    check_failure_output(&out, &failure);
                    assert!(out.len() != 4, "SASL failures send no result word");
                    check_dead(&mut acceptor, rest, chunks);
                    return End::Failed;
                }
            };
            assert!(used <= rest.len());
            if was_linked {
                assert_eq!(used, 0, "a linked acceptor consumed channel bytes");
                assert!(event.is_none());
            }
            rest = &rest[used..];
            match event {
                None => {
                    if !acceptor.is_linked() {
                        assert!(rest.is_empty(), "{} bytes left unread mid-exchange", rest.len());
                        assert!(acceptor.take_output().is_empty(), "output without an event");
                    }
                    break;
                }
                Some(LinkEvent::Request(_) | LinkEvent::Ticket(_)) => {
                    panic!("a ticket-stage event during SASL")
                }
                Some(LinkEvent::SaslStart) => {
                    assert!(!started, "SaslStart twice");
                    started = true;
                    assert!(acceptor.take_output().is_empty());
                    if script & sasl_ctl::NO_SESSION != 0 {
                        acceptor.sasl_fail("no session");
                        assert!(acceptor.take_output().is_empty());
                        check_dead(&mut acceptor, rest, chunks);
                        return End::Failed;
                    }
                    acceptor.sasl_mechanisms(list);
                    let out = acceptor.take_output();
                    assert_eq!(out[..4], (list.len() as u32).to_le_bytes());
                    assert_eq!(&out[4..], list.as_bytes());
                }
                Some(LinkEvent::SaslData(SaslData { mechanism, data })) => {
                    assert!(started, "SASL data before SaslStart");
                    match mechanism {
                        Some(name) => {
                            assert!(!mechanism_seen, "a second start");
                            mechanism_seen = true;
                            assert!(!name.is_empty() && name.len() <= MAX_MECHNAME_LEN);
                            assert!(list.split(',').any(|m| m == name), "{name:?} was not offered");
                        }
                        None => assert!(mechanism_seen, "a step before the start"),
                    }
                    let len = data.as_ref().map_or(0, Vec::len);
                    assert!(len < MAX_DATA_LEN, "client data over C's bound");
                    if !step(&mut acceptor, script, &mut steps_left, len) {
                        check_dead(&mut acceptor, rest, chunks);
                        return End::Failed;
                    }
                }
            }
        }
    }
    assert!(!acceptor.is_failed(), "failed without reporting it");
    assert_eq!(acceptor.is_expired(acceptor.deadline()), !acceptor.is_linked());
    if acceptor.is_linked() {
        End::Linked
    } else {
        End::Open
    }
}

/// Answers one start or step as the script says; `false` once the link is over
/// without a channel.
fn step(acceptor: &mut LinkAcceptor, script: u8, steps_left: &mut u8, client_len: usize) -> bool {
    let done = *steps_left == 0;
    if done && script & sasl_ctl::DENY != 0 {
        acceptor.sasl_fail("wrong password");
        assert!(acceptor.take_output().is_empty(), "a failed step is silent");
        assert!(acceptor.is_failed());
        return false;
    }
    *steps_left = steps_left.saturating_sub(1);
    let reply = if script & sasl_ctl::ECHO != 0 {
        vec![b'x'; client_len]
    } else {
        Vec::new()
    };
    acceptor.sasl_reply(&reply, done).expect("a reply in order");
    let out = acceptor.take_output();
    let mut expected = Vec::new();
    if reply.is_empty() {
        expected.extend_from_slice(&0u32.to_le_bytes());
    } else {
        expected.extend_from_slice(&(reply.len() as u32 + 1).to_le_bytes());
        expected.extend_from_slice(&reply);
        expected.push(0);
    }
    expected.push(u8::from(done));
    assert_eq!(out, expected, "server step encoding");
    if !done {
        return true;
    }
    if script & sasl_ctl::WEAK != 0 {
        let failure = acceptor.sasl_reject("weak layer");
        assert_eq!(failure.error, LinkError::PermissionDenied);
        assert_eq!(acceptor.take_output(), REJECTION);
        assert!(acceptor.is_failed());
        return false;
    }
    acceptor.sasl_accept();
    assert_eq!(acceptor.take_output(), 0u32.to_le_bytes(), "auth accepted");
    acceptor.finish(LinkError::Ok, "").expect("the link result");
    assert_eq!(acceptor.take_output(), 0u32.to_le_bytes(), "link result");
    assert!(acceptor.is_linked() && acceptor.use_mini_header());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_reach_the_ends_they_are_named_for() {
        for (name, bytes) in crate::seeds::for_target("sasl_exchange") {
            let expected = match name.as_str() {
                "digest-one-read" | "digest-bytewise" | "scram-variable-reads" | "gssapi-empty-data" => {
                    End::Linked
                }
                _ => End::Failed,
            };
            assert_eq!(run(&bytes), expected, "{name}");
            // Cut short, each stays open or fails; it never links.
            assert_ne!(run(&bytes[..bytes.len() - 1]), End::Linked, "{name} cut short");
        }
    }
}
