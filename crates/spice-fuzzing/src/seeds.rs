//! Well-formed inputs for every fuzz target, modelled on what spice-gtk sends.
//!
//! They seed `fuzz/corpus/` (`cargo run -p spice-fuzzing --example write_seeds`)
//! and are replayed by the tests whether or not corpus minimisation kept them.

use spice_proto::caps::Caps;
use spice_proto::consts::{common_cap, display_cap, inputs_cap, main_cap, ChannelType, MAGIC, TICKET_BYTES};
use spice_proto::framing::HeaderKind;
use spice_proto::link::{LinkHeader, LinkMess};
use spice_proto::msg::base::client_type as base;
use spice_proto::msg::display::client_type as display;
use spice_proto::msg::inputs::client_type as inputs;
use spice_proto::msg::main::client_type as main;
use spice_proto::wire::Writer;

use crate::oracles::{ctl, message_input};

/// A named seed input.
pub type Seed = (String, Vec<u8>);

/// The common capabilities spice-gtk announces without SASL.
pub const CLIENT_COMMON_CAPS: [u32; 3] = [
    common_cap::PROTOCOL_AUTH_SELECTION,
    common_cap::AUTH_SPICE,
    common_cap::MINI_HEADER,
];

/// Session id used by the seeds for channels other than main.
pub const SESSION_ID: u32 = 0x1234_5678;

/// Seeds for the target called `target`; empty for an unknown name.
pub fn for_target(target: &str) -> Vec<Seed> {
    match target {
        "link_acceptor" => link_acceptor(),
        "link_mess" => link_mess(),
        "deframer" => deframer(),
        "main_messages" => inputs_of(main_messages()),
        "display_messages" => inputs_of(display_messages()),
        "cursor_messages" => inputs_of(base_messages()),
        "inputs_messages" => inputs_of(inputs_messages()),
        "client_messages" => inputs_of(
            [
                main_messages(),
                display_messages(),
                inputs_messages(),
                base_messages(),
            ]
            .concat(),
        ),
        _ => Vec::new(),
    }
}

/// A named client message: type and body.
type Message = (&'static str, u16, Vec<u8>);

fn inputs_of(messages: Vec<Message>) -> Vec<Seed> {
    messages
        .into_iter()
        .map(|(name, ty, body)| (name.to_owned(), message_input(ty, &body)))
        .collect()
}

fn body(f: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
    let mut out = Vec::new();
    f(&mut Writer::new(&mut out));
    out
}

/// The link message spice-gtk sends for a channel.
pub fn client_link_mess(channel_type: ChannelType, common: &[u32]) -> LinkMess {
    let channel_caps = match channel_type {
        ChannelType::Main => Caps::with(&[
            main_cap::SEMI_SEAMLESS_MIGRATE,
            main_cap::NAME_AND_UUID,
            main_cap::AGENT_CONNECTED_TOKENS,
            main_cap::SEAMLESS_MIGRATE,
        ]),
        ChannelType::Display => Caps::with(&[
            display_cap::SIZED_STREAM,
            display_cap::MONITORS_CONFIG,
            display_cap::COMPOSITE,
            display_cap::A8_SURFACE,
            display_cap::STREAM_REPORT,
            display_cap::LZ4_COMPRESSION,
            display_cap::PREF_COMPRESSION,
        ]),
        ChannelType::Inputs => Caps::with(&[inputs_cap::KEY_SCANCODE]),
        _ => Caps::new(),
    };
    LinkMess {
        connection_id: if channel_type == ChannelType::Main {
            0
        } else {
            SESSION_ID
        },
        channel_type: channel_type as u8,
        channel_id: 0,
        common_caps: Caps::with(common),
        channel_caps,
    }
}

/// A client link header followed by `mess`.
pub fn link_request(mess: &LinkMess) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out);
    LinkHeader {
        magic: MAGIC,
        major_version: 2,
        minor_version: 2,
        size: mess.encoded_len() as u32,
    }
    .encode(&mut w);
    mess.encode(&mut w);
    out
}

/// A stand-in for the RSA-encrypted ticket: the acceptor never decrypts it.
pub fn ticket() -> [u8; TICKET_BYTES] {
    let mut t = [0u8; TICKET_BYTES];
    let mut x: u32 = 0x2545_F491;
    for b in &mut t {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    t
}

/// Everything a client sends to link a channel: request, auth mechanism if it
/// offered auth selection, and the ticket.
pub fn client_link_stream(mess: &LinkMess) -> Vec<u8> {
    let mut out = link_request(mess);
    if mess.common_caps.has(common_cap::PROTOCOL_AUTH_SELECTION) {
        out.extend_from_slice(&common_cap::AUTH_SPICE.to_le_bytes());
    }
    out.extend_from_slice(&ticket());
    out
}

fn with_ctl(control: u8, stream: &[u8]) -> Vec<u8> {
    let mut out = vec![control];
    out.extend_from_slice(stream);
    out
}

fn link_acceptor() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let channels = [
        ChannelType::Main,
        ChannelType::Display,
        ChannelType::Inputs,
        ChannelType::Cursor,
    ];
    for channel in channels {
        let stream = client_link_stream(&client_link_mess(channel, &CLIENT_COMMON_CAPS));
        seeds.push((
            format!("{}-mini", channel.name()),
            with_ctl(ctl::SERVER_MINI_HEADER, &stream),
        ));
    }
    let main_stream = client_link_stream(&client_link_mess(ChannelType::Main, &CLIENT_COMMON_CAPS));
    for (name, control) in [
        ("main-full-header", 0),
        ("main-bytewise", ctl::SERVER_MINI_HEADER | 1),
        ("main-chunks-7", ctl::SERVER_MINI_HEADER | 7),
        (
            "main-variable-chunks",
            ctl::SERVER_MINI_HEADER | ctl::VARIABLE_CHUNKS | 5,
        ),
        ("main-denied", ctl::SERVER_MINI_HEADER | ctl::DENY),
    ] {
        seeds.push((name.to_owned(), with_ctl(control, &main_stream)));
    }

    // An old client: no auth selection, so no mechanism word before the ticket.
    let old = client_link_stream(&client_link_mess(ChannelType::Main, &[common_cap::AUTH_SPICE]));
    seeds.push(("main-no-auth-selection".into(), with_ctl(0, &old)));

    // Channel data right behind the ticket, in the same read.
    let mut eager = main_stream.clone();
    HeaderKind::Mini.encode(0, main::ATTACH_CHANNELS, 0, &mut eager);
    seeds.push((
        "main-with-channel-data".into(),
        with_ctl(ctl::SERVER_MINI_HEADER, &eager),
    ));

    // Refusals.
    let mut sasl = link_request(&client_link_mess(ChannelType::Main, &CLIENT_COMMON_CAPS));
    sasl.extend_from_slice(&common_cap::AUTH_SASL.to_le_bytes());
    seeds.push(("sasl-mechanism".into(), with_ctl(0, &sasl)));
    let mut unknown_channel = client_link_mess(ChannelType::Main, &CLIENT_COMMON_CAPS);
    unknown_channel.channel_type = 42;
    seeds.push((
        "unknown-channel".into(),
        with_ctl(0, &client_link_stream(&unknown_channel)),
    ));
    seeds.push(("http".into(), with_ctl(0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
    for (name, major, size) in [
        ("version-1", 1, 18),
        ("version-0", 0, 18),
        ("size-too-small", 2, 17),
        ("size-too-large", 2, 4097),
    ] {
        let mut v = Vec::new();
        LinkHeader {
            magic: MAGIC,
            major_version: major,
            minor_version: 2,
            size,
        }
        .encode(&mut Writer::new(&mut v));
        seeds.push((name.into(), with_ctl(0, &v)));
    }
    let mut bad_offset = link_request(&client_link_mess(ChannelType::Display, &CLIENT_COMMON_CAPS));
    // caps_offset of the link message, pointing into its fixed part.
    bad_offset[LinkHeader::SIZE + 14..LinkHeader::SIZE + 18].copy_from_slice(&4u32.to_le_bytes());
    seeds.push(("caps-offset-in-fixed-part".into(), with_ctl(0, &bad_offset)));
    seeds
}

fn link_mess() -> Vec<Seed> {
    let mut seeds = Vec::new();
    for channel in [
        ChannelType::Main,
        ChannelType::Display,
        ChannelType::Inputs,
        ChannelType::Cursor,
        ChannelType::Playback,
        ChannelType::UsbRedir,
    ] {
        let mess = client_link_mess(channel, &CLIENT_COMMON_CAPS);
        let mut v = Vec::new();
        mess.encode(&mut Writer::new(&mut v));
        seeds.push((channel.name().to_owned(), v));
    }
    let no_caps = LinkMess {
        connection_id: 0,
        channel_type: 1,
        channel_id: 0,
        common_caps: Caps::new(),
        channel_caps: Caps::new(),
    };
    let mut v = Vec::new();
    no_caps.encode(&mut Writer::new(&mut v));
    seeds.push(("no-caps".into(), v));
    // Caps placed after padding, as a client may legally do.
    seeds.push((
        "padded-caps".into(),
        body(|w| {
            w.u32(0)
                .u8(2)
                .u8(1)
                .u32(1)
                .u32(1)
                .u32(22)
                .u32(0)
                .u32(0xb)
                .u32(0x7f);
        }),
    ));
    // A server's link reply body, for the reply parser.
    let mut reply = Vec::new();
    spice_proto::link::LinkReply {
        error: spice_proto::LinkError::Ok,
        pub_key: crate::oracles::DUMMY_PUB_KEY,
        common_caps: Caps::with(&CLIENT_COMMON_CAPS),
        channel_caps: Caps::with(&[0, 1, 2, 3]),
    }
    .encode_with_header(&mut reply);
    seeds.push(("link-reply".into(), reply[LinkHeader::SIZE..].to_vec()));
    seeds
}

fn deframer() -> Vec<Seed> {
    let streams: [(&str, Vec<Message>); 4] = [
        ("main", main_messages()),
        ("display", display_messages()),
        ("inputs", inputs_messages()),
        ("base", base_messages()),
    ];
    let mut seeds = Vec::new();
    for (name, messages) in streams {
        for (kind_name, kind, control) in [
            ("mini", HeaderKind::Mini, 0),
            ("full", HeaderKind::Full, ctl::VARIABLE_CHUNKS | 3),
        ] {
            let mut stream = vec![control];
            for (serial, (_, ty, body)) in messages.iter().enumerate() {
                kind.encode(serial as u64 + 1, *ty, body.len() as u32, &mut stream);
                stream.extend_from_slice(body);
            }
            seeds.push((format!("{name}-{kind_name}"), stream));
        }
    }
    let mut oversized = vec![1];
    HeaderKind::Mini.encode(0, main::AGENT_DATA, 1 << 20, &mut oversized);
    seeds.push(("oversized".into(), oversized));
    seeds
}

fn base_messages() -> Vec<Message> {
    vec![
        (
            "ack-sync",
            base::ACK_SYNC,
            body(|w| {
                w.u32(1);
            }),
        ),
        ("ack", base::ACK, vec![]),
        (
            "pong",
            base::PONG,
            body(|w| {
                w.u32(7).u64(0x0001_2345_6789);
            }),
        ),
        ("migrate-flush-mark", base::MIGRATE_FLUSH_MARK, vec![]),
        ("migrate-data", base::MIGRATE_DATA, vec![1, 2, 3, 4]),
        (
            "disconnecting",
            base::DISCONNECTING,
            body(|w| {
                w.u64(99).u32(0);
            }),
        ),
    ]
}

fn main_messages() -> Vec<Message> {
    // VDAgentMessage {protocol 1, type ANNOUNCE_CAPABILITIES, opaque, size}
    // + VDAgentAnnounceCapabilities {request 1, caps[1]}.
    let agent_data = body(|w| {
        w.u32(1).u32(6).u64(0).u32(8).u32(1).u32(0x0000_7fff);
    });
    let mut messages = base_messages();
    messages.extend([
        (
            "main-client-info",
            main::CLIENT_INFO,
            body(|w| {
                w.u64(1 << 20);
            }),
        ),
        ("main-attach-channels", main::ATTACH_CHANNELS, vec![]),
        (
            "main-mouse-mode-client",
            main::MOUSE_MODE_REQUEST,
            body(|w| {
                w.u16(2);
            }),
        ),
        (
            "main-mouse-mode-server",
            main::MOUSE_MODE_REQUEST,
            body(|w| {
                w.u16(1);
            }),
        ),
        (
            "main-agent-start",
            main::AGENT_START,
            body(|w| {
                w.u32(10);
            }),
        ),
        ("main-agent-data", main::AGENT_DATA, agent_data),
        (
            "main-agent-token",
            main::AGENT_TOKEN,
            body(|w| {
                w.u32(5);
            }),
        ),
        ("main-migrate-connected", main::MIGRATE_CONNECTED, vec![]),
        ("main-migrate-end", main::MIGRATE_END, vec![]),
        ("main-unknown", 999, vec![0xff; 8]),
    ]);
    messages
}

fn display_messages() -> Vec<Message> {
    vec![
        (
            "display-init",
            display::INIT,
            body(|w| {
                w.u8(1).u64(80 * 1024 * 1024 / 4).u8(1).i32(0x0080_0000);
            }),
        ),
        ("display-stream-report", display::STREAM_REPORT, vec![0; 32]),
        (
            "display-preferred-compression",
            display::PREFERRED_COMPRESSION,
            vec![7],
        ),
        ("display-gl-draw-done", display::GL_DRAW_DONE, vec![]),
        (
            "display-preferred-codecs",
            display::PREFERRED_VIDEO_CODEC_TYPE,
            vec![3, 1, 2, 3],
        ),
        (
            "display-ack-sync",
            base::ACK_SYNC,
            body(|w| {
                w.u32(2);
            }),
        ),
    ]
}

fn inputs_messages() -> Vec<Message> {
    vec![
        (
            "inputs-key-down-a",
            inputs::KEY_DOWN,
            body(|w| {
                w.u32(0x1e);
            }),
        ),
        (
            "inputs-key-up-a",
            inputs::KEY_UP,
            body(|w| {
                w.u32(0x9e);
            }),
        ),
        (
            "inputs-key-down-rctrl",
            inputs::KEY_DOWN,
            body(|w| {
                w.u32(0x1DE0);
            }),
        ),
        (
            "inputs-key-up-rctrl",
            inputs::KEY_UP,
            body(|w| {
                w.u32(0x9DE0);
            }),
        ),
        (
            "inputs-key-modifiers",
            inputs::KEY_MODIFIERS,
            body(|w| {
                w.u16(2);
            }),
        ),
        (
            "inputs-key-scancode",
            inputs::KEY_SCANCODE,
            vec![0xe0, 0x1d, 0xe0, 0x9d],
        ),
        (
            "inputs-mouse-motion",
            inputs::MOUSE_MOTION,
            body(|w| {
                w.i32(-3).i32(5).u16(0);
            }),
        ),
        (
            "inputs-mouse-position",
            inputs::MOUSE_POSITION,
            body(|w| {
                w.u32(640).u32(400).u16(1).u8(0);
            }),
        ),
        (
            "inputs-mouse-press",
            inputs::MOUSE_PRESS,
            body(|w| {
                w.u8(1).u16(1);
            }),
        ),
        (
            "inputs-mouse-release",
            inputs::MOUSE_RELEASE,
            body(|w| {
                w.u8(1).u16(0);
            }),
        ),
        ("inputs-ack", base::ACK, vec![]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_seeds() {
        for (target, _) in crate::TARGETS {
            assert!(!for_target(target).is_empty(), "{target}");
        }
    }

    #[test]
    fn link_seeds_link() {
        use spice_proto::{LinkAcceptor, LinkEvent};
        use std::time::{Duration, Instant};
        for channel in [ChannelType::Main, ChannelType::Cursor] {
            let stream = client_link_stream(&client_link_mess(channel, &CLIENT_COMMON_CAPS));
            let mut a = LinkAcceptor::new(Instant::now(), Duration::from_secs(10));
            let (used, event) = a.handle_input(&stream).unwrap();
            assert!(matches!(event, Some(LinkEvent::Request(_))));
            a.accept(&Caps::new(), &Caps::new(), &crate::oracles::DUMMY_PUB_KEY);
            let (used2, event) = a.handle_input(&stream[used..]).unwrap();
            assert!(matches!(event, Some(LinkEvent::Ticket(_))));
            assert_eq!(used + used2, stream.len());
            a.finish(spice_proto::LinkError::Ok, "").unwrap();
            assert!(a.is_linked());
        }
    }
}
