//! The SASL exchange byte for byte, and every way a client can break it.

use std::time::{Duration, Instant};

use super::super::{LinkAcceptor, LinkEvent};
use super::*;
use crate::consts::ChannelType;

const LIST: &str = ",DIGEST-MD5,SCRAM-SHA-256,";

fn link_bytes(common: &[u32]) -> Vec<u8> {
    super::super::tests::link_bytes(common, ChannelType::Main as u8, 0)
}

fn u32s(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Whether `out` is a whole link reply carrying `error`.
fn is_link_error(out: &[u8], error: LinkError) -> bool {
    out.len() >= 20 && &out[..4] == b"REDQ" && out[16..20] == error.code().to_le_bytes()
}

/// An acceptor that sent its SASL link reply to a client that chose SASL.
fn offered() -> LinkAcceptor {
    let mut a = LinkAcceptor::new(Instant::now(), Duration::from_secs(10));
    let (_, event) = a
        .handle_input(&link_bytes(&[
            common_cap::PROTOCOL_AUTH_SELECTION,
            common_cap::AUTH_SASL,
            common_cap::MINI_HEADER,
        ]))
        .unwrap();
    assert!(matches!(event, Some(LinkEvent::Request(_))));
    a.accept_sasl(&Caps::with(&[common_cap::MINI_HEADER]), &Caps::new())
        .unwrap();
    let reply = a.take_output();
    assert!(is_link_error(&reply, LinkError::Ok));
    // The common caps word: AUTH_SELECTION | AUTH_SASL | MINI_HEADER, no AUTH_SPICE.
    let caps = u32::from_le_bytes(reply[reply.len() - 4..].try_into().unwrap());
    assert_eq!(caps, 0b1101);
    let (used, event) = a.handle_input(&common_cap::AUTH_SASL.to_le_bytes()).unwrap();
    assert_eq!(used, 4);
    assert!(matches!(event, Some(LinkEvent::SaslStart)));
    a.sasl_mechanisms(LIST);
    let out = a.take_output();
    assert_eq!(&out[..4], &(LIST.len() as u32).to_le_bytes());
    assert_eq!(&out[4..], LIST.as_bytes());
    a
}

fn start_bytes(mech: &[u8], data: Option<&[u8]>) -> Vec<u8> {
    let mut v = u32s(&[mech.len() as u32]);
    v.extend_from_slice(mech);
    match data {
        Some(d) => {
            v.extend_from_slice(&(d.len() as u32 + 1).to_le_bytes());
            v.extend_from_slice(d);
            v.push(0);
        }
        None => v.extend_from_slice(&0u32.to_le_bytes()),
    }
    v
}

#[test]
fn a_two_step_exchange_ends_in_the_link_result() {
    let mut a = offered();
    let (used, event) = a.handle_input(&start_bytes(b"DIGEST-MD5", None)).unwrap();
    assert_eq!(used, 4 + 10 + 4);
    let Some(LinkEvent::SaslData(d)) = event else {
        panic!("no start: {event:?}")
    };
    assert_eq!(d.mechanism.as_deref(), Some("DIGEST-MD5"));
    assert_eq!(d.data, None, "no data is not empty data");

    a.sasl_reply(b"challenge", false).unwrap();
    let mut expected = u32s(&[10]);
    expected.extend_from_slice(b"challenge\0");
    expected.push(0);
    assert_eq!(a.take_output(), expected);

    let mut step = u32s(&[9]);
    step.extend_from_slice(b"response\0");
    step.extend_from_slice(b"after");
    let (used, event) = a.handle_input(&step).unwrap();
    assert_eq!(used, 13, "bytes after the step are not the exchange's");
    let Some(LinkEvent::SaslData(d)) = event else {
        panic!("no step: {event:?}")
    };
    assert_eq!(d.mechanism, None);
    assert_eq!(d.data.as_deref(), Some(&b"response"[..]));

    a.sasl_reply(b"", true).unwrap();
    assert_eq!(a.take_output(), [0, 0, 0, 0, 1]);
    a.sasl_accept();
    assert_eq!(a.take_output(), 0u32.to_le_bytes());
    a.finish(LinkError::Ok, "").unwrap();
    assert_eq!(a.take_output(), 0u32.to_le_bytes());
    assert!(a.is_linked());
    assert!(a.use_mini_header());
}

#[test]
fn empty_start_data_is_not_absent_data() {
    let mut a = offered();
    let (_, event) = a.handle_input(&start_bytes(b"SCRAM-SHA-256", Some(b""))).unwrap();
    assert!(matches!(event, Some(LinkEvent::SaslData(SaslData { data: Some(d), .. })) if d.is_empty()));
}

#[test]
fn byte_at_a_time_input_reaches_the_start() {
    let mut a = offered();
    let bytes = start_bytes(b"SCRAM-SHA-256", Some(b"n,,n=user,r=abc"));
    let mut got = None;
    for b in &bytes {
        let (used, event) = a.handle_input(std::slice::from_ref(b)).unwrap();
        assert_eq!(used, 1);
        got = got.or(event);
    }
    assert!(
        matches!(got, Some(LinkEvent::SaslData(SaslData { data: Some(d), .. })) if d == b"n,,n=user,r=abc")
    );
}

#[test]
fn a_mechanism_not_offered_is_an_invalid_data_link_error() {
    for name in [
        &b"PLAIN"[..],
        b"DIGEST",
        b"DIGEST-MD5,SCRAM-SHA-256",
        b"MD5\0",
        b",DIGEST-MD5",
    ] {
        let mut a = offered();
        let err = a.handle_input(&start_bytes(name, None)).unwrap_err();
        assert_eq!(err.error, LinkError::InvalidData, "{name:?}");
        assert!(is_link_error(&a.take_output(), LinkError::InvalidData));
        assert!(a.is_failed());
    }
}

#[test]
fn a_mechanism_name_ends_at_a_nul_as_in_c() {
    let mut a = offered();
    let (_, event) = a.handle_input(&start_bytes(b"DIGEST-MD5\0junk", None)).unwrap();
    assert!(
        matches!(event, Some(LinkEvent::SaslData(SaslData { mechanism: Some(m), .. })) if m == "DIGEST-MD5")
    );
    let mut a = offered();
    assert!(a.handle_input(&start_bytes(b"\0DIGEST-MD5", None)).is_err());
    assert!(is_link_error(&a.take_output(), LinkError::InvalidData));
}

#[test]
fn a_bad_mechanism_name_length_closes_silently() {
    for len in [0, MAX_MECHNAME_LEN as u32 + 1, u32::MAX] {
        let mut a = offered();
        let err = a.handle_input(&u32s(&[len])).unwrap_err();
        assert_eq!(err.error, LinkError::InvalidData);
        assert!(a.take_output().is_empty(), "length {len}");
        assert!(a.is_failed());
    }
}

#[test]
fn oversized_start_data_is_a_link_error_and_oversized_step_data_closes() {
    let mut a = offered();
    let mut input = start_bytes(b"DIGEST-MD5", None);
    input.truncate(input.len() - 4);
    input.extend_from_slice(&(MAX_DATA_LEN as u32 + 1).to_le_bytes());
    assert!(a.handle_input(&input).is_err());
    assert!(is_link_error(&a.take_output(), LinkError::InvalidData));

    let mut a = offered();
    a.handle_input(&start_bytes(b"DIGEST-MD5", None)).unwrap();
    a.sasl_reply(b"x", false).unwrap();
    a.take_output();
    assert!(a.handle_input(&u32s(&[u32::MAX])).is_err());
    assert!(a.take_output().is_empty());
    assert!(a.is_failed());
}

#[test]
fn data_at_the_limit_is_taken() {
    let mut a = offered();
    let mut input = start_bytes(b"DIGEST-MD5", None);
    input.truncate(input.len() - 4);
    input.extend_from_slice(&(MAX_DATA_LEN as u32).to_le_bytes());
    input.resize(input.len() + MAX_DATA_LEN, 7);
    let (used, event) = a.handle_input(&input).unwrap();
    assert_eq!(used, input.len());
    assert!(
        matches!(event, Some(LinkEvent::SaslData(SaslData { data: Some(d), .. })) if d.len() == MAX_DATA_LEN - 1)
    );
}

#[test]
fn the_ticket_mechanism_is_refused_when_sasl_is_required() {
    let mut a = LinkAcceptor::new(Instant::now(), Duration::from_secs(10));
    a.handle_input(&link_bytes(&[common_cap::PROTOCOL_AUTH_SELECTION]))
        .unwrap();
    a.accept_sasl(&Caps::new(), &Caps::new()).unwrap();
    a.take_output();
    let err = a.handle_input(&common_cap::AUTH_SPICE.to_le_bytes()).unwrap_err();
    assert_eq!(err.error, LinkError::InvalidData);
    assert!(is_link_error(&a.take_output(), LinkError::InvalidData));
}

#[test]
fn a_client_without_auth_selection_gets_version_mismatch() {
    let mut a = LinkAcceptor::new(Instant::now(), Duration::from_secs(10));
    a.handle_input(&link_bytes(&[])).unwrap();
    let err = a.accept_sasl(&Caps::new(), &Caps::new()).unwrap_err();
    assert_eq!(err.error, LinkError::VersionMismatch);
    let out = a.take_output();
    // The ordinary reply, then a second one with the error, as the C server.
    assert!(is_link_error(&out, LinkError::Ok));
    let second = &out[out.len() - 16 - LinkReply::FIXED_SIZE..];
    assert!(is_link_error(second, LinkError::VersionMismatch));
    assert!(a.is_failed());
}

#[test]
fn a_weak_security_layer_gets_the_c_servers_rejection() {
    let mut a = offered();
    a.handle_input(&start_bytes(b"SCRAM-SHA-256", Some(b"x")))
        .unwrap();
    a.sasl_reply(b"final", true).unwrap();
    a.take_output();
    let failure = a.sasl_reject("SSF 0 is below 56");
    assert_eq!(failure.error, LinkError::PermissionDenied);
    let mut expected = u32s(&[1, 22]);
    expected.extend_from_slice(b"Authentication failed\0");
    assert_eq!(a.take_output(), expected);
    assert!(a.is_failed());
}

#[test]
fn a_failed_step_closes_without_output_and_replies_out_of_order_fail() {
    let mut a = offered();
    a.handle_input(&start_bytes(b"DIGEST-MD5", None)).unwrap();
    a.sasl_fail("wrong password");
    assert!(a.take_output().is_empty());
    assert!(a.is_failed());

    let mut a = offered();
    assert!(a.sasl_reply(b"early", false).is_err());
    assert!(a.take_output().is_empty());
}

#[test]
fn an_oversized_server_reply_closes() {
    let mut a = offered();
    a.handle_input(&start_bytes(b"DIGEST-MD5", None)).unwrap();
    assert!(a.sasl_reply(&vec![0; MAX_DATA_LEN + 1], false).is_err());
    assert!(a.take_output().is_empty());
}
