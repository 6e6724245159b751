//! Well-formed inputs for every fuzz target: for the protocol targets,
//! modelled on what spice-gtk sends; for the codecs, streams of every image
//! type their decoders read, made by the codecs' own encoders from small
//! synthetic pictures; for QXL commands, `spice_qxl::fuzzing::fuzz_seeds`.
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

use spice_codec::lz::{self, LzImageType};
use spice_codec::quic::QuicImageType;
use spice_codec::{glz, lz4, quic, ImageRef};

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
        "sasl_exchange" => sasl_exchange(),
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
                spicevmc_messages(),
                base_messages(),
            ]
            .concat(),
        ),
        "agent_monitors_config" => agent_monitors_config(),
        "lz" => lz(),
        "lz4" => lz4(),
        "quic" => quic(),
        "glz" => glz(),
        "qxl_command" => qxl_command(),
        "canvas_draw" => canvas_draw(),
        "main_sequence" => main_sequence(),
        "agent_messages" => agent_messages(),
        "inputs_sequence" => inputs_sequence(),
        "record_sequence" => record_sequence(),
        "spicevmc_sequence" => spicevmc_sequence(),
        "websocket_framing" => websocket_framing(),
        "migrate_data" => migrate_data(),
        _ => Vec::new(),
    }
}

/// Monitors configurations as spice-gtk sends them (with physical sizes),
/// as the server hands them to the agent (without), and an empty one.
fn agent_monitors_config() -> Vec<Seed> {
    use spice_proto::agent::{MonitorConfig, MonitorsConfig};
    let monitor = |width, height, x| MonitorConfig {
        height,
        width,
        depth: 32,
        x,
        y: 0,
    };
    let configs = [
        (
            "one-with-mm",
            MonitorsConfig {
                use_position: true,
                monitors: vec![monitor(800, 600, 0)],
                physical_mm: Some(vec![(211, 158)]),
            },
        ),
        (
            "two-plain",
            MonitorsConfig {
                use_position: true,
                monitors: vec![monitor(1024, 768, 0), monitor(1280, 1024, 1024)],
                physical_mm: None,
            },
        ),
        (
            "none",
            MonitorsConfig {
                use_position: false,
                monitors: Vec::new(),
                physical_mm: None,
            },
        ),
    ];
    configs
        .into_iter()
        .map(|(name, config)| {
            let mut bytes = Vec::new();
            config.encode(&mut bytes);
            (name.to_owned(), bytes)
        })
        .collect()
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

/// A SASL client's input after the link reply: the mechanism word, then
/// the start with `mech` and `steps` more messages, each with `data`.
fn sasl_client_stream(mech: &[u8], data: Option<&[u8]>, steps: usize) -> Vec<u8> {
    let mut out = common_cap::AUTH_SASL.to_le_bytes().to_vec();
    out.extend_from_slice(&(mech.len() as u32).to_le_bytes());
    out.extend_from_slice(mech);
    for _ in 0..=steps {
        match data {
            Some(d) => {
                out.extend_from_slice(&(d.len() as u32 + 1).to_le_bytes());
                out.extend_from_slice(d);
                out.push(0);
            }
            None => out.extend_from_slice(&0u32.to_le_bytes()),
        }
    }
    out
}

fn sasl_exchange() -> Vec<Seed> {
    use crate::oracles::sasl_ctl as s;
    let digest = sasl_client_stream(b"DIGEST-MD5", None, 1);
    let scram = sasl_client_stream(b"SCRAM-SHA-256", Some(b"n,,n=alice,r=0123456789"), 2);
    let mut seeds = vec![
        (
            "digest-one-read".to_owned(),
            [vec![0, 1 | s::ECHO], digest.clone()].concat(),
        ),
        (
            "digest-bytewise".to_owned(),
            [vec![1, 1], digest.clone()].concat(),
        ),
        (
            "digest-denied".to_owned(),
            [vec![7, 1 | s::DENY], digest.clone()].concat(),
        ),
        (
            "digest-weak".to_owned(),
            [vec![0, 1 | s::WEAK], digest.clone()].concat(),
        ),
        (
            "scram-variable-reads".to_owned(),
            [vec![ctl::VARIABLE_CHUNKS | 5, 2 | s::ECHO], scram].concat(),
        ),
        ("no-session".to_owned(), [vec![0, s::NO_SESSION], digest].concat()),
        (
            "gssapi-empty-data".to_owned(),
            [vec![3, s::ONE_MECH], sasl_client_stream(b"GSSAPI", Some(b""), 0)].concat(),
        ),
        (
            "mechanism-not-offered".to_owned(),
            [vec![0, 0], sasl_client_stream(b"PLAIN", None, 0)].concat(),
        ),
        (
            "ticket-instead".to_owned(),
            [vec![0, 0], common_cap::AUTH_SPICE.to_le_bytes().to_vec()].concat(),
        ),
    ];
    let mut oversized = common_cap::AUTH_SASL.to_le_bytes().to_vec();
    oversized.extend_from_slice(&101u32.to_le_bytes());
    seeds.push((
        "mechanism-name-too-long".to_owned(),
        [vec![0, 0], oversized].concat(),
    ));
    let mut huge = sasl_client_stream(b"DIGEST-MD5", None, 0);
    huge.truncate(huge.len() - 4);
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    seeds.push(("data-too-long".to_owned(), [vec![0, 0], huge].concat()));
    seeds
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

/// Each channel's seamless migration state, as our source sends it.
fn migrate_data() -> Vec<Seed> {
    use spice_proto::migrate_data::{CharDeviceData, DisplayData, MainData, MigrateData};
    let device = CharDeviceData {
        connected: true,
        num_client_tokens: 10,
        num_send_tokens: 5,
        write_size: 0,
    };
    [
        (
            "main",
            MigrateData::Main(MainData {
                agent: device,
                client_agent_started: true,
            }),
        ),
        (
            "display",
            MigrateData::Display(DisplayData {
                message_serial: 9,
                low_bandwidth: false,
                pixmap_cache_id: 1,
                pixmap_cache_size: 1 << 20,
                glz_dict_id: 1,
                glz_window: 1 << 22,
                glz_last_image_id: 99,
                surfaces: vec![0, 1, 2],
            }),
        ),
        ("inputs", MigrateData::Inputs { motion_count: 3 }),
        ("spicevmc", MigrateData::SpiceVmc(device)),
    ]
    .into_iter()
    .map(|(name, data)| (name.to_owned(), data.encode()))
    .collect()
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

/// Usbredir, port and webdav channel messages as spice-gtk sends them: data,
/// LZ4-compressed data (usbredir) and a port event.
fn spicevmc_messages() -> Vec<Message> {
    use spice_proto::msg::spicevmc::{client_type as vmc, compression, port_event};
    let text = [b'u'; 2000];
    let packed = lz4_flex::compress(&text);
    vec![
        ("spicevmc-data", vmc::DATA, b"info version\n".to_vec()),
        (
            "spicevmc-compressed-lz4",
            vmc::COMPRESSED_DATA,
            body(|w| {
                w.u8(compression::LZ4).u32(text.len() as u32).bytes(&packed);
            }),
        ),
        (
            "spicevmc-compressed-none",
            vmc::COMPRESSED_DATA,
            body(|w| {
                w.u8(compression::NONE).bytes(b"raw");
            }),
        ),
        ("port-event-break", vmc::PORT_EVENT, vec![port_event::BREAK]),
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

// ---------------------------------------------------------------------------
// Codec and QXL seeds.
// ---------------------------------------------------------------------------

/// What a synthetic picture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picture {
    /// One colour.
    Solid,
    /// Smooth horizontal and vertical ramps.
    Gradient,
    /// Dark glyph-like strokes on a light background, three colours.
    Text,
    /// Independent random bytes.
    Noise,
    /// A gradient with a little noise, as in a photograph.
    Photo,
}

/// xorshift32, for reproducible pictures.
fn xorshift(state: &mut u32) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    *state
}

/// `width * height` pixels, bytes B, G, R, A, rows top first. With `alpha`
/// the A byte varies across the picture, otherwise it is 0xff.
pub fn picture(kind: Picture, width: u32, height: u32, alpha: bool) -> Vec<u8> {
    let mut state = 0x1234_5678 ^ width.wrapping_mul(31) ^ height.wrapping_mul(7919);
    let mut out = Vec::with_capacity(width as usize * height as usize * 4);
    for y in 0..height {
        for x in 0..width {
            let noise = xorshift(&mut state);
            let [b, g, r] = match kind {
                Picture::Solid => [0x30, 0x60, 0x90],
                Picture::Gradient => [
                    (x * 255 / width) as u8,
                    (y * 255 / height) as u8,
                    ((x + y) * 4) as u8,
                ],
                Picture::Text => {
                    let stroke = (x % 6 == 1 && y % 9 < 6) || (y % 9 == 2 && x % 6 < 4);
                    match (stroke, x % 18 < 6) {
                        (true, true) => [0x20, 0x20, 0xc0],
                        (true, false) => [0x10, 0x10, 0x10],
                        (false, _) => [0xf0, 0xf0, 0xf0],
                    }
                }
                Picture::Noise => [noise as u8, (noise >> 8) as u8, (noise >> 16) as u8],
                Picture::Photo => {
                    let n = (noise & 7) as u8;
                    [
                        (x * 2 + y) as u8 ^ n,
                        (128 + x - y.min(128)) as u8 ^ n,
                        (y * 3) as u8 ^ (n >> 1),
                    ]
                }
            };
            let a = if !alpha {
                0xff
            } else if kind == Picture::Noise {
                (noise >> 24) as u8
            } else {
                ((x + y) * 255 / (width + height)) as u8
            };
            out.extend_from_slice(&[b, g, r, a]);
        }
    }
    out
}

fn image_ref(width: u32, height: u32, data: &[u8]) -> ImageRef<'_> {
    ImageRef {
        width,
        height,
        stride: width as usize * 4,
        data,
    }
}

/// Replaces the LZ header of `stream` by `header`.
fn with_lz_header(mut stream: Vec<u8>, header: lz::Header) -> Vec<u8> {
    let mut head = Vec::new();
    header.write(&mut head);
    stream[..lz::HEADER_LEN].copy_from_slice(&head);
    stream
}

/// An LZ stream of a byte-unit type (palette, A8, XXXA): `units` coded by the
/// PLT8 pass, `units_per_row` per row, under the header of `kind`.
fn lz_bytes(kind: LzImageType, width: u32, stride: u32, units_per_row: u32, units: &[u8]) -> Vec<u8> {
    let height = units.len() as u32 / units_per_row;
    let mut out = Vec::new();
    lz::encode_plt8(units_per_row, height, units, &mut out).expect("PLT8 encodes");
    with_lz_header(
        out,
        lz::Header {
            kind,
            width,
            height,
            stride,
            top_down: true,
        },
    )
}

/// Packs palette indices (`bits` per index, 1 or 4) into rows of
/// `ceil(width * bits / 8)` bytes, the first index in the low bits (`le`) or
/// in the high bits.
fn pack_indices(indices: &[u8], width: u32, bits: u32, le: bool) -> (u32, Vec<u8>) {
    let per_byte = (8 / bits) as usize;
    let stride = (width as usize).div_ceil(per_byte);
    let mut out = Vec::new();
    for row in indices.chunks(width as usize) {
        let mut packed = vec![0u8; stride];
        for (x, &i) in row.iter().enumerate() {
            let slot = x % per_byte;
            let shift = if le { slot } else { per_byte - 1 - slot } * bits as usize;
            packed[x / per_byte] |= (i & ((1 << bits) - 1) as u8) << shift;
        }
        out.extend_from_slice(&packed);
    }
    (stride as u32, out)
}

/// LZ streams of every type: RGB32 and RGBA from the encoder, PLT8 from the
/// palettizer, RGB24, the packed palette types, A8 and XXXA by coding their
/// units with the encoder's RGB32 or PLT8 pass under their own header, and
/// RGB16 (which nothing encodes) as literals and one back-reference.
fn lz() -> Vec<Seed> {
    let mut seeds = Vec::new();
    for (name, kind, w, h) in [
        ("rgb32-1x1", Picture::Solid, 1, 1),
        ("rgb32-solid-40x30", Picture::Solid, 40, 30),
        ("rgb32-gradient-16x16", Picture::Gradient, 16, 16),
        ("rgb32-text-64x27", Picture::Text, 64, 27),
        ("rgb32-noise-9x7", Picture::Noise, 9, 7),
        ("rgb32-photo-33x20", Picture::Photo, 33, 20),
        ("rgb32-column-1x50", Picture::Text, 1, 50),
    ] {
        let pixels = picture(kind, w, h, false);
        let mut out = Vec::new();
        lz::encode_rgb32(&image_ref(w, h, &pixels), &mut out).expect("RGB32 encodes");
        seeds.push((format!("lz-{name}"), out));
    }
    for (name, kind, w, h) in [
        ("rgba-text-32x18", Picture::Text, 32, 18),
        ("rgba-noise-6x5", Picture::Noise, 6, 5),
        ("rgba-gradient-20x10", Picture::Gradient, 20, 10),
    ] {
        let pixels = picture(kind, w, h, true);
        let mut out = Vec::new();
        lz::encode_rgba(&image_ref(w, h, &pixels), &mut out).expect("RGBA encodes");
        seeds.push((format!("lz-{name}"), out));
    }

    // Far references (more than 8191 pixels back): a noisy row repeated 90 rows later.
    let (w, h) = (100, 100);
    let mut pixels = picture(Picture::Solid, w, h, false);
    let noisy = picture(Picture::Noise, w, 1, false);
    let row = w as usize * 4;
    pixels[..row].copy_from_slice(&noisy);
    pixels[90 * row..91 * row].copy_from_slice(&noisy);
    let mut out = Vec::new();
    lz::encode_rgb32(&image_ref(w, h, &pixels), &mut out).expect("RGB32 encodes");
    seeds.push(("lz-rgb32-far-reference".into(), out.clone()));

    // Bottom-up.
    let header = lz::Header::parse(&out).expect("a header");
    seeds.push((
        "lz-rgb32-bottom-up".into(),
        with_lz_header(
            out,
            lz::Header {
                top_down: false,
                ..header
            },
        ),
    ));

    // RGB24: the RGB32 pass under an RGB24 header.
    for (name, kind, w, h) in [
        ("text-24x12", Picture::Text, 24, 12),
        ("photo-10x9", Picture::Photo, 10, 9),
    ] {
        let pixels = picture(kind, w, h, false);
        let mut out = Vec::new();
        lz::encode_rgb32(&image_ref(w, h, &pixels), &mut out).expect("RGB32 encodes");
        let header = lz::Header {
            kind: LzImageType::Rgb24,
            width: w,
            height: h,
            stride: w * 3,
            top_down: true,
        };
        seeds.push((format!("lz-rgb24-{name}"), with_lz_header(out, header)));
    }

    // PLT8 through the palettizer.
    for (name, kind, w, h) in [
        ("text-48x20", Picture::Text, 48, 20),
        ("gradient-13x11", Picture::Gradient, 13, 11),
    ] {
        let pixels = picture(kind, w, h, false);
        let p = lz::palettize(&image_ref(w, h, &pixels), 256).expect("few colours");
        let mut out = Vec::new();
        lz::encode_plt8(w, h, &p.indices, &mut out).expect("PLT8 encodes");
        seeds.push((format!("lz-plt8-{name}"), out));
    }

    // Packed palette types: 4-bit and 1-bit indices of the text picture.
    let (w, h) = (21, 10);
    let pixels = picture(Picture::Text, w, h, false);
    let p = lz::palettize(&image_ref(w, h, &pixels), 256).expect("few colours");
    for (name, kind, bits, le) in [
        ("plt4le", LzImageType::Plt4Le, 4, true),
        ("plt4be", LzImageType::Plt4Be, 4, false),
        ("plt1le", LzImageType::Plt1Le, 1, true),
        ("plt1be", LzImageType::Plt1Be, 1, false),
    ] {
        let (stride, packed) = pack_indices(&p.indices, w, bits, le);
        seeds.push((
            format!("lz-{name}-21x10"),
            lz_bytes(kind, w, stride, stride, &packed),
        ));
    }

    // A8 and XXXA: alpha bytes.
    let (w, h) = (16, 12);
    let alpha: Vec<u8> = picture(Picture::Gradient, w, h, true)
        .chunks_exact(4)
        .map(|p| p[3])
        .collect();
    seeds.push(("lz-a8-16x12".into(), lz_bytes(LzImageType::A8, w, w, w, &alpha)));
    seeds.push((
        "lz-xxxa-16x12".into(),
        lz_bytes(LzImageType::Xxxa, w, w * 4, w, &alpha),
    ));

    // RGB16, 10x3: one row of literals, then a reference of 20 pixels, 10 back.
    let mut out = Vec::new();
    lz::Header {
        kind: LzImageType::Rgb16,
        width: 10,
        height: 3,
        stride: 20,
        top_down: true,
    }
    .write(&mut out);
    out.push(9);
    for i in 0u16..10 {
        out.extend_from_slice(&(i * 0x0c63).to_be_bytes());
    }
    // Length field 7, plus 12, plus 1 for RGB16 units; distance 9 + 1.
    out.extend_from_slice(&[7 << 5, 12, 9]);
    seeds.push(("lz-rgb16-10x3".into(), out));
    seeds
}

/// The fuzz input for an LZ4 image of `width` x `height` (at most 64 each way).
fn lz4_input(width: u32, height: u32, payload: &[u8]) -> Vec<u8> {
    assert!((1..=64).contains(&width) && (1..=64).contains(&height));
    [&[(width - 1) as u8, (height - 1) as u8][..], payload].concat()
}

/// The LZ4 payload of `bytes` (a multiple of 4) under format byte `format`.
fn lz4_payload(bytes: &[u8], format: u8, top_down: bool) -> Vec<u8> {
    let n = bytes.len() as u32 / 4;
    let mut out = Vec::new();
    lz4::Lz4Encoder::new()
        .encode(&image_ref(n, 1, bytes), lz4::FMT_32BIT, &mut out)
        .expect("LZ4 encodes");
    out[0] = u8::from(top_down);
    out[1] = format;
    out
}

/// LZ4 images of each format and assorted sizes, one bottom-up, and one of
/// two blocks, the second referring back into the first.
fn lz4() -> Vec<Seed> {
    let mut seeds = Vec::new();
    for (name, kind, w, h, alpha) in [
        ("32bit-1x1", Picture::Solid, 1, 1, false),
        ("32bit-text-64x64", Picture::Text, 64, 64, false),
        ("32bit-text-17x5", Picture::Text, 17, 5, false),
        ("32bit-noise-12x9", Picture::Noise, 12, 9, false),
        ("rgba-gradient-16x16", Picture::Gradient, 16, 16, true),
        ("rgba-noise-5x3", Picture::Noise, 5, 3, true),
    ] {
        let pixels = picture(kind, w, h, alpha);
        let mut out = Vec::new();
        let format = if alpha { lz4::FMT_RGBA } else { lz4::FMT_32BIT };
        lz4::Lz4Encoder::new()
            .encode(&image_ref(w, h, &pixels), format, &mut out)
            .expect("LZ4 encodes");
        seeds.push((format!("lz4-{name}"), lz4_input(w, h, &out)));
    }
    // 16 and 24 bit: their bytes coded as if 32-bit pixels.
    let text = picture(Picture::Text, 64, 64, false);
    seeds.push((
        "lz4-16bit-8x4".into(),
        lz4_input(8, 4, &lz4_payload(&text[..8 * 4 * 2], lz4::FMT_16BIT, true)),
    ));
    seeds.push((
        "lz4-24bit-4x3".into(),
        lz4_input(4, 3, &lz4_payload(&text[..4 * 3 * 3], lz4::FMT_24BIT, true)),
    ));
    seeds.push((
        "lz4-32bit-bottom-up-20x10".into(),
        lz4_input(20, 10, &lz4_payload(&text[..20 * 10 * 4], lz4::FMT_32BIT, false)),
    ));
    // 4x2 32-bit in two blocks: 19 literal bytes, then an 8-byte match 16
    // bytes back (into the first block) and the 5 literals a block ends with.
    let mut two = vec![1, lz4::FMT_32BIT];
    two.extend_from_slice(&21u32.to_be_bytes());
    two.extend_from_slice(&[0xf0, 19 - 15]);
    two.extend((0..19).map(|i| i * 13));
    two.extend_from_slice(&9u32.to_be_bytes());
    two.extend_from_slice(&[8 - 4, 16, 0, 0x50, 1, 2, 3, 4, 5]);
    seeds.push(("lz4-32bit-two-blocks-4x2".into(), lz4_input(4, 2, &two)));
    seeds
}

/// `pixels` (B, G, R, A) in the source layout of `kind`.
fn quic_source(kind: QuicImageType, pixels: &[u8]) -> Vec<u8> {
    let px = pixels.chunks_exact(4);
    match kind {
        QuicImageType::Rgb32 | QuicImageType::Rgba => pixels.to_vec(),
        QuicImageType::Rgb24 => px.flat_map(|p| [p[0], p[1], p[2]]).collect(),
        QuicImageType::Gray => px.map(|p| p[1]).collect(),
        QuicImageType::Rgb16 => px
            .flat_map(|p| {
                let v = (u16::from(p[2] >> 3) << 10) | (u16::from(p[1] >> 3) << 5) | u16::from(p[0] >> 3);
                v.to_le_bytes()
            })
            .collect(),
    }
}

/// QUIC streams of all five types, of assorted sizes and content (runs,
/// text, photographic gradients, noise).
fn quic() -> Vec<Seed> {
    use QuicImageType::*;
    let mut seeds = Vec::new();
    for (name, kind, picture_kind, w, h) in [
        ("rgb32-1x1", Rgb32, Picture::Photo, 1, 1),
        ("rgb32-photo-32x24", Rgb32, Picture::Photo, 32, 24),
        ("rgb32-text-48x16", Rgb32, Picture::Text, 48, 16),
        ("rgb32-noise-8x8", Rgb32, Picture::Noise, 8, 8),
        ("rgb32-solid-64x64", Rgb32, Picture::Solid, 64, 64),
        ("rgb32-column-1x40", Rgb32, Picture::Gradient, 1, 40),
        ("rgba-photo-20x20", Rgba, Picture::Photo, 20, 20),
        ("rgba-text-30x9", Rgba, Picture::Text, 30, 9),
        ("rgb24-photo-16x12", Rgb24, Picture::Photo, 16, 12),
        ("rgb24-text-40x8", Rgb24, Picture::Text, 40, 8),
        ("rgb16-photo-24x10", Rgb16, Picture::Photo, 24, 10),
        ("rgb16-gradient-50x3", Rgb16, Picture::Gradient, 50, 3),
        ("gray-gradient-30x20", Gray, Picture::Gradient, 30, 20),
        ("gray-noise-7x5", Gray, Picture::Noise, 7, 5),
    ] {
        let source = quic_source(kind, &picture(picture_kind, w, h, kind == Rgba));
        let stride = w as usize * kind.source_bytes_per_pixel();
        let mut out = Vec::new();
        quic::encode(kind, w, h, stride, &source, &mut out).expect("QUIC encodes");
        seeds.push((format!("quic-{name}"), out));
    }
    seeds
}

/// The encoder [`spice_codec::glz::fuzz_decode`] re-encodes with.
fn glz_encoder() -> glz::GlzEncoder {
    glz::GlzEncoder::with_limits(1 << 17, 1 << 17)
}

/// GLZ inputs: sequences of streams from one encoder, each preceded by its
/// length, so later images refer into earlier ones.
fn glz() -> Vec<Seed> {
    /// A picture and its width and height.
    type Frame = (Picture, u32, u32);
    let sequences: [(&str, &[Frame]); 4] = [
        ("text-32x16", &[(Picture::Text, 32, 16)]),
        ("photo-1x30", &[(Picture::Photo, 1, 30)]),
        (
            "text-again-and-wider",
            &[
                (Picture::Text, 24, 12),
                (Picture::Text, 24, 12),
                (Picture::Text, 36, 12),
            ],
        ),
        (
            "mixed-4",
            &[
                (Picture::Gradient, 16, 16),
                (Picture::Noise, 6, 4),
                (Picture::Gradient, 16, 8),
                (Picture::Solid, 40, 20),
            ],
        ),
    ];
    let mut seeds = Vec::new();
    for (name, images) in sequences {
        let mut encoder = glz_encoder();
        let mut input = Vec::new();
        for &(kind, w, h) in images {
            let pixels = picture(kind, w, h, false);
            let mut stream = Vec::new();
            encoder
                .encode_rgb32(&image_ref(w, h, &pixels), &mut stream)
                .expect("GLZ encodes");
            input.extend_from_slice(&u16::try_from(stream.len()).expect("a short stream").to_be_bytes());
            input.extend_from_slice(&stream);
        }
        seeds.push((format!("glz-{name}"), input));
    }
    seeds
}

/// One seed per QXL command kind, from `spice-qxl`.
fn qxl_command() -> Vec<Seed> {
    spice_qxl::fuzzing::fuzz_seeds()
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| (format!("qxl-{i}"), bytes))
        .collect()
}

/// Drawables for the canvas: the QXL seeds that draw (COPY, clipped COPY,
/// STROKE, TEXT, COMPOSITE), then one per case the canvas treats apart —
/// glyph composites from A8 surfaces, transformed and tiled sources, 4- and
/// 8-bit glyphs, Béziers, dashes, masks from A1 surfaces — on targets of
/// several formats (byte 12, see `oracles::canvas_draw`).
fn canvas_draw() -> Vec<Seed> {
    use spice_qxl::command::{composite_flags as cf, draw_type, line_flags, path_flags, string_flags};
    use spice_qxl::fuzzing::FUZZ_BASE;
    use spice_qxl::testkit::{self as kit, Arena, DrawableSpec};

    let mut seeds: Vec<Seed> = spice_qxl::fuzzing::fuzz_seeds()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| [0, 1, 7, 8, 9].contains(i))
        .map(|(i, bytes)| (format!("qxl-{i}"), bytes))
        .collect();
    let new_arena = || {
        let mut a = Arena::new(FUZZ_BASE, 1024);
        a.reserve(16);
        a
    };
    // The command's offset and type, then the target: format index, size bytes.
    let finish = |mut a: Arena, cmd: u64, format: u8| {
        let mem = a.memory_mut().as_bytes_mut();
        mem[0..2].copy_from_slice(&((cmd - FUZZ_BASE) as u16).to_le_bytes());
        mem[2] = 1;
        mem[12] = format;
        mem[13] = 0;
        mem[14] = 0;
        mem.to_vec()
    };
    let draw = |draw_type: u8, bbox, op| {
        let mut d = DrawableSpec::qemu_copy(bbox, op);
        d.draw_type = draw_type;
        d.effect = 0;
        kit::drawable(&d)
    };
    let repeat = |r: u8, shift: u32| u32::from(r) << shift;

    // Xorg's glyphs: a 1x1-ish ARGB source repeated, through an A8 surface, OVER ARGB.
    let mut a = new_arena();
    let src = a.put(&kit::surface_image(1, 3));
    let mask = a.put(&kit::surface_image(2, 2));
    let flags = 3 | repeat(cf::REPEAT_NORMAL, cf::SRC_REPEAT_SHIFT);
    let op = kit::composite_op(flags, src, 0, mask, 0, (0, 0), (2, 1));
    let cmd = a.put(&draw(draw_type::COMPOSITE, kit::rect(3, 2, 13, 9), op));
    seeds.push(("composite-glyphs".into(), finish(a, cmd, 1)));

    // A surface scaled up by a bilinear transform, padded, opaque, onto xRGB.
    let mut a = new_arena();
    let src = a.put(&kit::surface_image(1, 1));
    let t = a.put(&kit::transform([1 << 15, 0, 1 << 14, 0, 1 << 15, 0]));
    let flags =
        3 | 4 << cf::SRC_FILTER_SHIFT | repeat(cf::REPEAT_PAD, cf::SRC_REPEAT_SHIFT) | cf::SOURCE_OPAQUE;
    let op = kit::composite_op(flags, src, t, 0, 0, (1, 1), (0, 0));
    let cmd = a.put(&draw(draw_type::COMPOSITE, kit::rect(0, 0, 20, 14), op));
    seeds.push(("composite-scaled".into(), finish(a, cmd, 0)));

    // 8-bit glyphs over a background, and 4-bit ones with a pattern brush.
    for (name, bpp, flag, format) in [
        ("text-a8", 8u32, string_flags::RASTER_A8, 0u8),
        ("text-a4", 4, string_flags::RASTER_A4, 2),
    ] {
        let mut a = new_arena();
        let row = |v: u8| vec![v; (6 * bpp as usize).div_ceil(8)];
        let rows: Vec<u8> = [0x10u8, 0x80, 0xff, 0x80, 0x10]
            .iter()
            .flat_map(|&v| row(v))
            .collect();
        let first = [
            kit::raster_glyph((2, 8), (0, -5), 6, 5, &rows),
            kit::raster_glyph((7, 9), (1, -5), 6, 5, &rows),
        ]
        .concat();
        let string = a.put(&kit::string(first.len() as u32, 2, flag, &first, 0));
        let pattern = a.put(&kit::surface_image(1, 1));
        let fore = if bpp == 4 {
            kit::pattern_brush(pattern, 1, 2)
        } else {
            kit::solid_brush(0x00ff_ffff)
        };
        let op = kit::text_op(
            string,
            kit::rect(1, 2, 16, 10),
            &fore,
            &kit::solid_brush(0x0020_4060),
            8,
            8,
        );
        let cmd = a.put(&draw(draw_type::TEXT, kit::rect(0, 0, 18, 12), op));
        seeds.push((name.into(), finish(a, cmd, format)));
    }

    // A closed path with a Bézier, XOR, on 565; a dashed one starting with a gap, on A8.
    let mut a = new_arena();
    let fix = |x: i32, y: i32| (x * 16 + 3, y * 16 + 9);
    let seg = [
        kit::path_seg(path_flags::BEGIN, &[fix(1, 1), fix(15, 2)]),
        kit::path_seg(path_flags::BEZIER, &[fix(22, 4), fix(20, 14), fix(10, 12)]),
        kit::path_seg(path_flags::END | path_flags::CLOSE, &[fix(2, 10)]),
    ]
    .concat();
    let path = a.put(&kit::path(seg.len() as u32, &seg, 0));
    let mut spec = kit::StrokeSpec::solid(path, 0xf81f);
    spec.fore_mode = 1 << 6;
    let cmd = a.put(&draw(
        draw_type::STROKE,
        kit::rect(0, 0, 24, 16),
        kit::stroke_op(&spec),
    ));
    seeds.push(("stroke-bezier-xor".into(), finish(a, cmd, 2)));
    let mut a = new_arena();
    let seg = kit::path_seg(
        path_flags::BEGIN | path_flags::END,
        &[fix(0, 3), fix(23, 3), fix(5, 15)],
    );
    let path = a.put(&kit::path(seg.len() as u32, &seg, 0));
    let style = a.put(&kit::fixed_array(&[48, 16, 32]));
    let spec = kit::StrokeSpec {
        attr_flags: line_flags::STYLED | line_flags::START_WITH_GAP,
        style_nseg: 3,
        style,
        ..kit::StrokeSpec::solid(path, 0xc0)
    };
    let cmd = a.put(&draw(
        draw_type::STROKE,
        kit::rect(0, 0, 24, 16),
        kit::stroke_op(&spec),
    ));
    seeds.push(("stroke-dashed".into(), finish(a, cmd, 3)));

    // A copy from another surface through a mask that is an A1 surface.
    let mut a = new_arena();
    let src = a.put(&kit::surface_image(1, 1));
    let mask = a.put(&kit::surface_image(4, 4));
    let mut op = kit::copy_op(src, kit::rect(0, 0, 10, 8), 8, 1, 0);
    // `QXLQMask` after the copy's fields: flags, pos, bitmap.
    op.truncate(27);
    op.extend_from_slice(&[1]);
    op.extend_from_slice(&2i32.to_le_bytes());
    op.extend_from_slice(&1i32.to_le_bytes());
    op.extend_from_slice(&mask.to_le_bytes());
    let cmd = a.put(&draw(draw_type::COPY, kit::rect(4, 4, 14, 12), op));
    seeds.push(("copy-surface-mask".into(), finish(a, cmd, 4)));
    seeds
}

// ---------------------------------------------------------------------------
// Channel sequences: sessions as spice-gtk runs them, with the host's side
// (agent device, record handle) acting in between.
// ---------------------------------------------------------------------------

/// A whole `VDAgentMessage`.
fn agent_message(kind: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    spice_proto::agent::MessageHeader::encode_message(kind, data, &mut out);
    out
}

/// spice-gtk's `VD_AGENT_ANNOUNCE_CAPABILITIES` (request, one caps word).
fn announce_capabilities() -> Vec<u8> {
    agent_message(
        spice_proto::agent::message_type::ANNOUNCE_CAPABILITIES,
        &body(|w| {
            w.u32(1).u32(0x0000_7fff);
        }),
    )
}

/// A `VD_AGENT_MONITORS_CONFIG` as spice-gtk sends it on a resize.
fn monitors_config_message(with_mm: bool) -> Vec<u8> {
    use spice_proto::agent::{MonitorConfig, MonitorsConfig};
    let config = MonitorsConfig {
        use_position: true,
        monitors: vec![
            MonitorConfig {
                height: 768,
                width: 1024,
                depth: 32,
                x: 0,
                y: 0,
            },
            MonitorConfig {
                height: 600,
                width: 800,
                depth: 32,
                x: 1024,
                y: 0,
            },
        ],
        physical_mm: with_mm.then(|| vec![(270, 203), (211, 158)]),
    };
    let mut data = Vec::new();
    config.encode(&mut data);
    agent_message(spice_proto::agent::message_type::MONITORS_CONFIG, &data)
}

/// A pong to the main channel's ping `id`.
fn pong(id: u32) -> Vec<u8> {
    body(|w| {
        w.u32(id).u64(u64::from(id) * 1000);
    })
}

/// The host action arguments of a guest chunk for the client port.
fn guest_chunk(payload: &[u8]) -> Vec<u8> {
    let len = payload.len().min(255);
    [&[1, len as u8][..], &payload[..len]].concat()
}

fn main_sequence() -> Vec<Seed> {
    use spice_server::fuzzing::session::{action, config};
    use spice_server::fuzzing::InputBuilder;
    let gtk = config::MINI_HEADER | config::NAME_AND_UUID | config::AGENT_CONNECTED_TOKENS | config::NAME;
    let reply = agent_message(spice_proto::agent::message_type::REPLY, &[2, 0, 0, 0, 0, 0, 0, 0]);
    let spice_gtk = InputBuilder::new(gtk | config::AGENT | config::TABLET)
        .wait(2)
        .client(base::PONG, &pong(1))
        .wait(2)
        .client(base::PONG, &pong(2))
        .wait(20)
        .client(base::PONG, &pong(3))
        .client(main::ATTACH_CHANNELS, &[])
        .client(main::MOUSE_MODE_REQUEST, &2u16.to_le_bytes())
        .client(main::AGENT_START, &10u32.to_le_bytes())
        .client(main::AGENT_DATA, &announce_capabilities())
        .host(7, &[])
        .host(action::GUEST_CHUNK, &guest_chunk(&announce_capabilities()))
        .client(main::AGENT_DATA, &monitors_config_message(true))
        .host(action::GUEST_CHUNK, &guest_chunk(&reply))
        .client(main::AGENT_TOKEN, &2u32.to_le_bytes())
        .host(action::WAKEUP, &[])
        .host(action::DRAIN, &[])
        .host(action::TOGGLE_TABLET, &[])
        .host(action::TOGGLE_AGENT, &[])
        .host(action::TOGGLE_AGENT, &[])
        .client(
            base::DISCONNECTING,
            &body(|w| {
                w.u64(1).u32(0);
            }),
        )
        .host(action::TOGGLE_CLIENT, &[])
        .client(
            main::CLIENT_INFO,
            &body(|w| {
                w.u64(1 << 20);
            }),
        )
        .build();
    let plain = InputBuilder::new(0)
        .client(main::MOUSE_MODE_REQUEST, &2u16.to_le_bytes())
        .client(main::MOUSE_MODE_REQUEST, &1u16.to_le_bytes())
        .client(main::AGENT_DATA, &announce_capabilities())
        .client(main::MIGRATE_END, &[])
        .client(base::ACK_SYNC, &1u32.to_le_bytes())
        .client(999, &[1, 2, 3])
        .host(action::TOGGLE_AGENT, &[])
        .client(main::AGENT_START, &1u32.to_le_bytes())
        .host(action::GUEST_CHUNK, &guest_chunk(b"one"))
        .host(action::GUEST_CHUNK, &guest_chunk(b"two"))
        .host(action::GUEST_BYTES, &[3, 9, 9, 9])
        .host(action::WAKEUP, &[])
        .host(action::DRAIN, &[])
        .build();
    let agent_mouse = InputBuilder::new(config::MINI_HEADER | config::AGENT | config::AGENT_MOUSE)
        .client(main::MOUSE_MODE_REQUEST, &2u16.to_le_bytes())
        .host(action::AGENT_POINTER, &[10, 20])
        .host(action::AGENT_POINTER, &[11, 21])
        .host(4, &[])
        .host(action::TOGGLE_AGENT, &[])
        .host(action::TOGGLE_CLIENT, &[])
        .host(action::TOGGLE_CLIENT, &[])
        .build();
    vec![
        ("spice-gtk".into(), spice_gtk),
        ("full-header-no-agent".into(), plain),
        ("agent-mouse".into(), agent_mouse),
    ]
}

fn agent_messages() -> Vec<Seed> {
    use spice_server::fuzzing::session::{action, config};
    use spice_server::fuzzing::InputBuilder;
    let clipboard = agent_message(spice_proto::agent::message_type::CLIPBOARD, &[0x61; 90]);
    let monitors = monitors_config_message(true);
    let gtk = config::MINI_HEADER | config::AGENT | config::AGENT_CONNECTED_TOKENS;
    let split = InputBuilder::new(gtk)
        .agent_start(10)
        .agent_data(&announce_capabilities())
        .agent_data(&clipboard[..40])
        .agent_data(&clipboard[40..])
        .agent_data(&monitors[..30])
        .agent_data(&monitors[30..])
        .host(5, &[])
        .host(action::WAKEUP, &[])
        .agent_token(3)
        .build();
    let to_displays = InputBuilder::new(gtk | config::DISPLAYS_TAKE_MONITORS)
        .agent_start(10)
        .agent_data(&monitors_config_message(false))
        .host(7, &[])
        .build();
    let from_guest = InputBuilder::new(gtk)
        .agent_start(2)
        .host(action::GUEST_CHUNK, &guest_chunk(&announce_capabilities()))
        .host(action::GUEST_CHUNK, &guest_chunk(b"second"))
        .host(action::GUEST_CHUNK, &guest_chunk(b"third"))
        .agent_token(1)
        .host(action::GUEST_CHUNK, &[0, 4, 1, 2, 3, 4])
        .host(action::DRAIN, &[])
        .build();
    let reconnect = InputBuilder::new(gtk)
        .agent_start(10)
        .agent_data(&clipboard[..40])
        .host(3, &[])
        .host(action::TOGGLE_CLIENT, &[])
        .host(action::TOGGLE_CLIENT, &[])
        .agent_start(10)
        .agent_data(&clipboard)
        .typed_client(base::DISCONNECTING, &[0; 12])
        .host(7, &[])
        .build();
    vec![
        ("split-messages".into(), split),
        ("monitors-to-displays".into(), to_displays),
        ("guest-to-client".into(), from_guest),
        ("reconnect-mid-message".into(), reconnect),
    ]
}

fn inputs_sequence() -> Vec<Seed> {
    use spice_server::fuzzing::inputs::{action, config};
    use spice_server::fuzzing::InputBuilder;
    let key = |code: u32| code.to_le_bytes();
    let motion = body(|w| {
        w.i32(3).i32(-2).u16(1);
    });
    let mut typing = InputBuilder::new(config::MINI_HEADER | (2 << 1))
        .client(inputs::KEY_DOWN, &key(0x1e))
        .client(inputs::KEY_UP, &key(0x9e))
        .client(inputs::KEY_DOWN, &key(0x1de0))
        .client(inputs::KEY_UP, &key(0x9de0))
        .client(inputs::KEY_SCANCODE, &[0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5])
        .client(inputs::KEY_MODIFIERS, &7u16.to_le_bytes())
        .host(action::LEDS, &[4]);
    for _ in 0..5 {
        typing = typing.client(inputs::MOUSE_MOTION, &motion);
    }
    let typing = typing
        .client(
            inputs::MOUSE_POSITION,
            &body(|w| {
                w.u32(640).u32(400).u16(0).u8(0);
            }),
        )
        .client(inputs::MOUSE_PRESS, &[1, 1, 0])
        .client(inputs::MOUSE_RELEASE, &[1, 0, 0])
        .client(inputs::MOUSE_PRESS, &[4, 8, 0])
        .host(action::DRAIN, &[])
        .client(999, &[1])
        .build();
    let held = InputBuilder::new(0)
        .client(inputs::KEY_DOWN, &key(0x2a))
        .client(inputs::KEY_DOWN, &key(0x38e0))
        .client(inputs::KEY_SCANCODE, &[0x1d, 0xe0, 0x5b])
        .host(action::TOGGLE_CHANNEL, &[])
        .host(action::TOGGLE_CHANNEL, &[])
        .client(inputs::KEY_DOWN, &key(0x1e))
        .client(base::DISCONNECTING, &[0; 12])
        .build();
    vec![
        ("typing-and-pointer".into(), typing),
        ("keys-held-at-close".into(), held),
    ]
}

/// A usbredir channel with LZ4 and a port, as spice-gtk and QEMU use them:
/// client data plain and compressed, a device that takes it in parts and
/// gives compressible and incompressible data, port events.
fn spicevmc_sequence() -> Vec<Seed> {
    use spice_proto::msg::spicevmc::{client_type as vmc, compression, port_event};
    use spice_server::fuzzing::spicevmc::{action, config};
    use spice_server::fuzzing::InputBuilder;
    let text = [b'z'; 1500];
    let lz4 = body(|w| {
        w.u8(compression::LZ4)
            .u32(text.len() as u32)
            .bytes(&lz4_flex::compress(&text));
    });
    let usb = InputBuilder::new(config::LZ4 | config::MINI_HEADER)
        .client(vmc::DATA, b"usbredir hello")
        .client(vmc::COMPRESSED_DATA, &lz4)
        .host(action::DEVICE_TAKES, &[4])
        .host(action::DEVICE_TAKES, &[255])
        .host(action::DEVICE_GIVES, &[21])
        .host(action::DEVICE_GIVES, &[2])
        .host(action::DEVICE_GIVES, &[40])
        .host(action::DRAIN, &[])
        .build();
    let port = InputBuilder::new(config::PORT)
        .host(action::PORT_EVENT, &[0])
        .client(vmc::PORT_EVENT, &[port_event::BREAK])
        .client(vmc::COMPRESSED_DATA, &[compression::NONE, b'h', b'i'])
        .host(action::DEVICE_TAKES, &[1])
        .host(action::PORT_EVENT, &[1])
        .build();
    vec![("usbredir".into(), usb), ("port".into(), port)]
}

fn record_sequence() -> Vec<Seed> {
    use spice_proto::msg::record::client_type as record;
    use spice_server::fuzzing::record::{action, config};
    use spice_server::fuzzing::InputBuilder;
    let data = |frames: &[[i16; 2]]| {
        let mut out = 7u32.to_le_bytes().to_vec();
        for [l, r] in frames {
            out.extend(l.to_le_bytes());
            out.extend(r.to_le_bytes());
        }
        out
    };
    let raw_mode = body(|w| {
        w.u32(0).u16(1);
    });
    let capture =
        InputBuilder::new(config::MINI_HEADER | config::VOLUME_CAP | config::ACTIVE | config::VOLUME)
            .client(record::MODE, &raw_mode)
            .client(record::START_MARK, &0u32.to_le_bytes())
            .client(record::DATA, &data(&[[1, -1], [2, -2], [3, -3]]))
            .host(action::READ, &[1])
            .host(action::STOP, &[])
            .client(record::DATA, &data(&[[4, -4]]))
            .host(action::START, &[])
            .host(action::VOLUME, &[2, 0x80, 0x40])
            .host(action::MUTE, &[1])
            .client(record::DATA, &data(&[[5, -5], [6, -6]]))
            .host(action::BULK_DATA, &[64])
            .host(action::BULK_DATA, &[64])
            .host(action::READ, &[2])
            .host(action::DRAIN, &[])
            .build();
    let opus = InputBuilder::new(0)
        .host(action::START, &[])
        .client(
            record::MODE,
            &body(|w| {
                w.u32(0).u16(3);
            }),
        )
        // A real Opus packet: a CELT 20 ms stereo frame of no bytes, which
        // decodes to 960 frames; then four bytes that are not Opus, which close.
        .client(record::DATA, &[7, 0, 0, 0, 0xfc])
        .host(action::READ, &[16])
        .client(record::DATA, &data(&[[1, 1]]))
        .host(action::TOGGLE_CHANNEL, &[])
        .host(action::MUTE, &[1])
        .host(action::TOGGLE_CHANNEL, &[])
        .client(record::DATA, &data(&[[2, 2]]))
        .host(action::READ, &[1])
        .client(base::DISCONNECTING, &[0; 12])
        .build();
    vec![("capture".into(), capture), ("opus-and-relink".into(), opus)]
}

/// spice-html5's upgrade and link in binary frames (built by the oracle, and
/// as a raw stream split differently), pings and fragments among them, a
/// plain SPICE link, and an upgrade followed by garbage.
fn websocket_framing() -> Vec<Seed> {
    use spice_server::fuzzing::websocket::{client_frames, UPGRADE};
    let link = client_link_stream(&client_link_mess(
        ChannelType::Main,
        &[common_cap::PROTOCOL_AUTH_SELECTION],
    ));
    let frame = |kind: u8, body: &[u8]| {
        let mut spec = vec![kind, body.len() as u8, 0x12, 0x34, 0x56, 0x78];
        spec.extend_from_slice(body);
        spec
    };
    let spec = [
        frame(0, &link[..16]),
        frame(1, b"ping"),
        frame(3, &link[16..]),
        frame(2, b"text"),
    ]
    .concat();
    let mut built = vec![0x80 | 0x12];
    built.extend_from_slice(&spec);
    let mut raw_ws = vec![0x1b];
    raw_ws.extend_from_slice(&client_frames(&spec).0);
    let mut raw_spice = vec![0x3f];
    raw_spice.extend_from_slice(&link);
    let mut garbage = vec![0x05];
    garbage.extend_from_slice(UPGRADE);
    garbage.extend_from_slice(&[0x88, 0x80, 0xff, 0xff]);
    vec![
        ("html5-link-frames".into(), built),
        ("html5-link-stream".into(), raw_ws),
        ("raw-spice-link".into(), raw_spice),
        ("upgrade-then-close".into(), garbage),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canvas_seeds_draw_something() {
        for (name, bytes) in for_target("canvas_draw") {
            let drawn = crate::oracles::canvas_run(&bytes);
            assert!(matches!(drawn, Some(Ok(Some(_)))), "{name}: {drawn:?}");
        }
    }

    #[test]
    fn codec_seeds_decode() {
        use spice_codec::DecodeLimits;
        let limits = DecodeLimits::default();
        let mut lz_kinds = std::collections::HashSet::new();
        for (name, bytes) in for_target("lz") {
            let img = lz::decode(&bytes, &limits).unwrap_or_else(|e| panic!("{name}: {e}"));
            lz_kinds.insert(img.header.kind);
        }
        assert_eq!(lz_kinds.len(), 11, "every LZ type: {lz_kinds:?}");
        let mut lz4_formats = std::collections::HashSet::new();
        for (name, bytes) in for_target("lz4") {
            let (w, h) = (u32::from(bytes[0] % 64) + 1, u32::from(bytes[1] % 64) + 1);
            let img = lz4::decode(&bytes[2..], w, h, &limits).unwrap_or_else(|e| panic!("{name}: {e}"));
            lz4_formats.insert(img.format);
        }
        assert_eq!(lz4_formats.len(), 4, "every LZ4 format");
        let mut quic_kinds = std::collections::HashSet::new();
        for (name, bytes) in for_target("quic") {
            let img = quic::decode(&bytes, &limits).unwrap_or_else(|e| panic!("{name}: {e}"));
            quic_kinds.insert(img.kind);
        }
        assert_eq!(quic_kinds.len(), 5, "every QUIC type");
        for (name, bytes) in for_target("glz") {
            let mut decoder = glz::GlzDecoder::new(DecodeLimits { max_pixels: 1 << 16 }, 1 << 18);
            let mut rest = &bytes[..];
            while let [a, b, ref tail @ ..] = *rest {
                let (stream, next) = tail.split_at(usize::from(u16::from_be_bytes([a, b])));
                decoder.decode(stream).unwrap_or_else(|e| panic!("{name}: {e}"));
                rest = next;
            }
        }
    }

    #[test]
    fn codec_seeds_stay_small() {
        // The replay test runs every prefix of every corpus file.
        for target in ["lz", "lz4", "quic", "glz"] {
            for (name, bytes) in for_target(target) {
                assert!(bytes.len() <= 4096, "{name}: {} bytes", bytes.len());
            }
        }
    }

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
