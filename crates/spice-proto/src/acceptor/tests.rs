//! One test per link error, plus the happy paths.

use super::*;
use crate::consts::{ChannelType, TICKET_PUBKEY_BYTES};
use crate::wire::Writer;

const T: Duration = Duration::from_secs(10);

fn header(magic: u32, major: u32, size: u32) -> Vec<u8> {
    let mut v = Vec::new();
    LinkHeader {
        magic,
        major_version: major,
        minor_version: 2,
        size,
    }
    .encode(&mut Writer::new(&mut v));
    v
}

pub(super) fn link_bytes(common: &[u32], channel_type: u8, connection_id: u32) -> Vec<u8> {
    let mess = LinkMess {
        connection_id,
        channel_type,
        channel_id: 0,
        common_caps: Caps::with(common),
        channel_caps: Caps::new(),
    };
    let mut v = header(MAGIC, 2, mess.encoded_len() as u32);
    mess.encode(&mut Writer::new(&mut v));
    v
}

/// Reads the error word of a link reply the acceptor sent.
fn reply_error(out: &[u8]) -> u32 {
    assert!(
        out.len() >= 16 + LinkReply::FIXED_SIZE,
        "a full link reply: {out:?}"
    );
    assert_eq!(&out[..4], b"REDQ");
    u32::from_le_bytes(out[16..20].try_into().unwrap())
}

fn expect_reply_error(input: &[u8], expected: LinkError) {
    let mut a = LinkAcceptor::new(Instant::now(), T);
    let err = a.handle_input(input).unwrap_err();
    assert_eq!(err.error, expected, "{err}");
    assert_eq!(reply_error(&a.take_output()), expected.code());
    assert!(a.is_failed());
}

fn accepted(common: &[u32]) -> LinkAcceptor {
    let mut a = LinkAcceptor::new(Instant::now(), T);
    let (used, event) = a
        .handle_input(&link_bytes(common, ChannelType::Main as u8, 0))
        .unwrap();
    assert!(used > 0);
    assert!(matches!(event, Some(LinkEvent::Request(m)) if m.channel_type == 1));
    a.accept(
        &Caps::with(&[common_cap::MINI_HEADER]),
        &Caps::new(),
        &[1; TICKET_PUBKEY_BYTES],
    );
    assert_eq!(reply_error(&a.take_output()), 0);
    a
}

#[test]
fn invalid_magic_is_refused_after_four_bytes() {
    expect_reply_error(b"GET ", LinkError::InvalidMagic);
}

#[test]
fn version_mismatch_is_refused() {
    expect_reply_error(&header(MAGIC, 1, 18), LinkError::VersionMismatch);
}

#[test]
fn version_zero_peer_gets_no_reply() {
    let mut a = LinkAcceptor::new(Instant::now(), T);
    let err = a.handle_input(&header(MAGIC, 0, 18)).unwrap_err();
    assert_eq!(err.error, LinkError::VersionMismatch);
    assert!(a.take_output().is_empty());
}

#[test]
fn undersized_and_oversized_link_messages_are_invalid_data() {
    expect_reply_error(&header(MAGIC, 2, 17), LinkError::InvalidData);
    expect_reply_error(&header(MAGIC, 2, 4097), LinkError::InvalidData);
}

#[test]
fn capability_count_overflow_is_invalid_data() {
    let mut body = Vec::new();
    Writer::new(&mut body)
        .u32(0)
        .u8(1)
        .u8(0)
        .u32(0x4000_0001)
        .u32(0x4000_0000)
        .u32(18);
    let mut input = header(MAGIC, 2, body.len() as u32);
    input.extend_from_slice(&body);
    expect_reply_error(&input, LinkError::InvalidData);
}

#[test]
fn capabilities_outside_the_message_are_invalid_data() {
    let mut body = Vec::new();
    Writer::new(&mut body)
        .u32(0)
        .u8(1)
        .u8(0)
        .u32(3)
        .u32(0)
        .u32(18)
        .u32(0xB);
    let mut input = header(MAGIC, 2, body.len() as u32);
    input.extend_from_slice(&body);
    expect_reply_error(&input, LinkError::InvalidData);
}

#[test]
fn refusal_after_request_sends_reply_with_error() {
    let mut a = LinkAcceptor::new(Instant::now(), T);
    let (_, event) = a.handle_input(&link_bytes(&[0, 1], 42, 0)).unwrap();
    assert!(matches!(event, Some(LinkEvent::Request(_))));
    let failure = a.refuse(LinkError::ChannelNotAvailable, "unknown channel");
    assert_eq!(failure.error, LinkError::ChannelNotAvailable);
    assert_eq!(
        reply_error(&a.take_output()),
        LinkError::ChannelNotAvailable.code()
    );
}

#[test]
fn full_exchange_with_auth_selection_and_mini_header() {
    let mut a = accepted(&[
        common_cap::PROTOCOL_AUTH_SELECTION,
        common_cap::AUTH_SPICE,
        common_cap::MINI_HEADER,
    ]);
    let mut input = common_cap::AUTH_SPICE.to_le_bytes().to_vec();
    input.extend_from_slice(&[9u8; TICKET_BYTES]);
    input.extend_from_slice(b"extra");
    let (used, event) = a.handle_input(&input).unwrap();
    assert_eq!(
        used,
        4 + TICKET_BYTES,
        "bytes after the ticket belong to the channel"
    );
    assert!(matches!(event, Some(LinkEvent::Ticket(t)) if t[0] == 9));
    a.finish(LinkError::Ok, "").unwrap();
    assert_eq!(a.take_output(), 0u32.to_le_bytes());
    assert!(a.is_linked());
    assert!(a.use_mini_header());
}

#[test]
fn legacy_client_without_auth_selection_sends_ticket_directly() {
    let mut a = accepted(&[]);
    let (used, event) = a.handle_input(&[3u8; TICKET_BYTES]).unwrap();
    assert_eq!(used, TICKET_BYTES);
    assert!(matches!(event, Some(LinkEvent::Ticket(_))));
    assert!(!a.use_mini_header());
}

#[test]
fn unknown_auth_mechanism_is_invalid_data_result() {
    let mut a = accepted(&[common_cap::PROTOCOL_AUTH_SELECTION]);
    let err = a.handle_input(&common_cap::AUTH_SASL.to_le_bytes()).unwrap_err();
    assert_eq!(err.error, LinkError::InvalidData);
    assert_eq!(a.take_output(), LinkError::InvalidData.code().to_le_bytes());
}

#[test]
fn wrong_password_is_permission_denied_result() {
    let mut a = accepted(&[]);
    a.handle_input(&[0u8; TICKET_BYTES]).unwrap();
    let err = a
        .finish(LinkError::PermissionDenied, "wrong password")
        .unwrap_err();
    assert_eq!(err.error, LinkError::PermissionDenied);
    assert_eq!(a.take_output(), 7u32.to_le_bytes());
    assert!(a.is_failed());
}

#[test]
fn bad_connection_id_is_a_result_word() {
    let mut a = accepted(&[]);
    a.handle_input(&[0u8; TICKET_BYTES]).unwrap();
    let err = a
        .finish(LinkError::BadConnectionId, "no such session")
        .unwrap_err();
    assert_eq!(a.take_output(), 8u32.to_le_bytes());
    assert_eq!(err.error, LinkError::BadConnectionId);
}

#[test]
fn stalled_link_expires_at_its_deadline() {
    let start = Instant::now();
    let mut a = LinkAcceptor::new(start, T);
    a.handle_input(&header(MAGIC, 2, 18)[..10]).unwrap();
    assert!(!a.is_expired(start + Duration::from_secs(9)));
    assert!(a.is_expired(start + T));
}

#[test]
fn byte_at_a_time_input_reaches_the_request() {
    let bytes = link_bytes(&[0, 1, 3], 1, 0);
    let mut a = LinkAcceptor::new(Instant::now(), T);
    let mut got = None;
    for b in &bytes {
        let (used, event) = a.handle_input(std::slice::from_ref(b)).unwrap();
        assert_eq!(used, 1);
        if event.is_some() {
            got = event;
        }
    }
    assert!(matches!(got, Some(LinkEvent::Request(m)) if m.common_caps.has(3)));
}
