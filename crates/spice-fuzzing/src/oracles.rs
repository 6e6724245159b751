//! One oracle per fuzz target.
//!
//! Every oracle accepts any byte slice. It must not panic, loop forever or
//! allocate without bound for any input; the only panics allowed are the
//! assertions below (and those of the `spice-codec` and `spice-qxl` fuzz
//! entry points the codec and QXL oracles call), each of which states an
//! invariant of the code under test that a fuzzer found broken.
//!
//! # Input layouts
//!
//! - [`link_acceptor`] and [`deframer`]: one control byte, then the byte stream a
//!   client sends. The control byte's low six bits choose how the stream is split
//!   into reads (see [`Chunks`]); for the acceptor, [`ctl::DENY`] makes the ticket
//!   check fail and [`ctl::SERVER_MINI_HEADER`] makes the server offer the mini header.
//! - [`sasl_exchange`]: a control byte for the read sizes, one for the fake
//!   authenticator ([`sasl_ctl`]), then what a client sends after the link reply.
//! - [`link_mess`]: a raw `SpiceLinkMess` (also parsed as a link reply and header).
//! - the `*_messages` oracles: a message type chosen by [`split_message`], then the body.
//! - [`lz()`] and [`quic()`]: a whole LZ or QUIC stream, header included.
//! - [`lz4()`]: two bytes giving the width and height (`1 + b % 64` each), then
//!   the LZ4 image payload (top-down byte, format byte, length-prefixed blocks).
//! - [`glz`]: GLZ streams, each preceded by its length (2 bytes, big endian),
//!   decoded in order by one decoder.
//! - [`qxl_command`]: fake guest memory, laid out as [`spice_qxl::fuzzing`] describes.
//! - [`canvas_draw`]: the same guest memory, the command always a drawable;
//!   byte 12 picks the target's format, bytes 13–14 its size (see [`canvas_draw`]).
//! - [`main_sequence`], [`agent_messages`], [`inputs_sequence`] and
//!   [`record_sequence`]: a configuration byte, then steps (client messages,
//!   time passing, host actions), laid out as [`spice_server::fuzzing`]
//!   describes.

use std::time::{Duration, Instant};

use spice_codec::lz::{self, LzImageType};
use spice_codec::{lz4, quic, CodecError, DecodeLimits, ImageRef};
use spice_proto::caps::Caps;
use spice_proto::consts::{common_cap, ChannelType, LinkError, TICKET_PUBKEY_BYTES};
use spice_proto::framing::{Deframer, Frame, HeaderKind};
use spice_proto::link::{LinkHeader, LinkMess, LinkReply};
use spice_proto::msg::base::BaseClientMessage;
use spice_proto::msg::cursor::CursorClientMessage;
use spice_proto::msg::display::DisplayClientMessage;
use spice_proto::msg::inputs::InputsClientMessage;
use spice_proto::msg::main::MainClientMessage;
use spice_proto::msg::playback::PlaybackClientMessage;
use spice_proto::msg::record::RecordClientMessage;
use spice_proto::msg::spicevmc::SpicevmcClientMessage;
use spice_proto::wire::{Reader, Writer};
use spice_proto::{DecodeError, LinkAcceptor, LinkEvent, LinkFailure};

mod sasl;
pub use sasl::{sasl_client_request, sasl_ctl, sasl_exchange};

/// Bits of the control byte that starts [`link_acceptor`] and [`deframer`] inputs.
pub mod ctl {
    /// The ticket check fails: the acceptor is told `PermissionDenied`.
    pub const DENY: u8 = 0x80;
    /// The server offers `MINI_HEADER` in its common capabilities.
    pub const SERVER_MINI_HEADER: u8 = 0x40;
    /// The low bits that choose the read sizes, see [`super::Chunks`].
    pub const CHUNK_MASK: u8 = 0x3f;
    /// Within [`CHUNK_MASK`]: read sizes vary pseudo-randomly instead of being fixed.
    pub const VARIABLE_CHUNKS: u8 = 0x20;
}

/// The largest message body the deframer oracle accepts, as the server does.
pub const MAX_BODY: u32 = 4096;

/// A stand-in for the DER ticket key in the link reply; the acceptor only copies it.
pub const DUMMY_PUB_KEY: [u8; TICKET_PUBKEY_BYTES] = {
    let mut key = [0u8; TICKET_PUBKEY_BYTES];
    let mut i = 0;
    while i < TICKET_PUBKEY_BYTES {
        key[i] = (i as u8).wrapping_mul(31).wrapping_add(7);
        i += 1;
    }
    key
};

/// Splits a stream into reads as a socket might deliver it.
///
/// The mode is the control byte masked with [`ctl::CHUNK_MASK`]: `0` delivers
/// everything in one read, `1..=31` uses reads of exactly that many bytes, and
/// modes with [`ctl::VARIABLE_CHUNKS`] set use sizes drawn from a small
/// generator seeded by the mode, between 1 and `8 * (mode & 0x1f) + 1` bytes.
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    rest: &'a [u8],
    mode: u8,
    state: u32,
}

impl<'a> Chunks<'a> {
    /// Splits `data` according to the low bits of `ctl`.
    pub fn new(ctl: u8, data: &'a [u8]) -> Self {
        let mode = ctl & ctl::CHUNK_MASK;
        Self {
            rest: data,
            mode,
            state: 0x9E37_79B9 ^ u32::from(mode),
        }
    }

    fn next_size(&mut self) -> usize {
        if self.mode == 0 {
            return self.rest.len();
        }
        if self.mode & ctl::VARIABLE_CHUNKS == 0 {
            return usize::from(self.mode);
        }
        // xorshift32
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        let max = 8 * u32::from(self.mode & 0x1f) + 1;
        (self.state % max) as usize + 1
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let size = self.next_size().clamp(1, self.rest.len());
        let (chunk, rest) = self.rest.split_at(size);
        self.rest = rest;
        Some(chunk)
    }
}

/// Drives a server-side [`LinkAcceptor`] with a client byte stream.
///
/// Requests for known channel types are accepted with [`DUMMY_PUB_KEY`], others
/// refused with `ChannelNotAvailable`; tickets are answered `Ok` or, with
/// [`ctl::DENY`], `PermissionDenied`.
///
/// Invariants: bytes are consumed only while the link is in progress and all
/// of a read is consumed unless an event is pending or the link is over; every
/// reply on the wire is well formed and carries the error the driver is told;
/// a failed or finished acceptor consumes and emits nothing more; the mini
/// header is used exactly when both sides offered it.
pub fn link_acceptor(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let deny = control & ctl::DENY != 0;
    let server_common = if control & ctl::SERVER_MINI_HEADER != 0 {
        Caps::with(&[common_cap::MINI_HEADER])
    } else {
        Caps::new()
    };
    let channel_caps = Caps::with(&[0, 1, 2, 3]);

    let start = Instant::now();
    let mut acceptor = LinkAcceptor::new(start, Duration::from_secs(10));
    let mut chunks = Chunks::new(control, stream);
    while let Some(chunk) = chunks.next() {
        let mut rest = chunk;
        loop {
            let was_linked = acceptor.is_linked();
            let result = acceptor.handle_input(rest);
            let (used, event) = match result {
                Ok(ok) => ok,
                Err(failure) => {
                    check_failure_output(&acceptor.take_output(), &failure);
                    check_dead(&mut acceptor, rest, chunks);
                    return;
                }
            };
            assert!(used <= rest.len(), "consumed {used} of {} bytes", rest.len());
            if was_linked {
                assert_eq!(used, 0, "a linked acceptor consumed channel bytes");
                assert!(event.is_none(), "a linked acceptor raised an event");
            }
            rest = &rest[used..];
            match event {
                None => {
                    if !acceptor.is_linked() {
                        assert!(rest.is_empty(), "{} bytes left unread mid-link", rest.len());
                        assert!(acceptor.take_output().is_empty(), "output without an event");
                    }
                    break;
                }
                Some(LinkEvent::Request(mess)) => {
                    assert_eq!(acceptor.client(), Some(&mess), "request differs from client()");
                    check_link_mess_round_trip(&mess);
                    if ChannelType::from_u8(mess.channel_type).is_none() {
                        let failure = acceptor.refuse(LinkError::ChannelNotAvailable, "no such channel");
                        assert!(acceptor.is_failed());
                        check_failure_output(&acceptor.take_output(), &failure);
                        check_dead(&mut acceptor, rest, chunks);
                        return;
                    }
                    acceptor.accept(&server_common, &channel_caps, &DUMMY_PUB_KEY);
                    check_accept_reply(&acceptor.take_output(), &server_common, &channel_caps);
                }
                Some(LinkEvent::SaslStart | LinkEvent::SaslData(_)) => {
                    panic!("a SASL event though the reply offered the ticket")
                }
                Some(LinkEvent::Ticket(_ticket)) => {
                    let result = if deny {
                        LinkError::PermissionDenied
                    } else {
                        LinkError::Ok
                    };
                    match acceptor.finish(result, "fuzz ticket check") {
                        Ok(()) => {
                            assert!(!deny, "a denied ticket linked");
                            assert!(acceptor.is_linked() && !acceptor.is_failed());
                            assert_eq!(acceptor.take_output(), 0u32.to_le_bytes(), "link result");
                            let client = acceptor.client().expect("a linked acceptor knows its client");
                            assert_eq!(
                                acceptor.use_mini_header(),
                                client.common_caps.has(common_cap::MINI_HEADER)
                                    && server_common.has(common_cap::MINI_HEADER),
                                "mini header negotiation"
                            );
                        }
                        Err(failure) => {
                            assert!(deny, "an accepted ticket failed: {failure}");
                            assert_eq!(failure.error, LinkError::PermissionDenied);
                            check_failure_output(&acceptor.take_output(), &failure);
                            check_dead(&mut acceptor, rest, chunks);
                            return;
                        }
                    }
                }
            }
        }
    }
    assert!(!acceptor.is_failed(), "failed without reporting it");
    assert!(!acceptor.is_expired(start), "expired before its deadline");
    assert_eq!(acceptor.is_expired(acceptor.deadline()), !acceptor.is_linked());
}

/// After a failure: nothing more is consumed, raised or sent, whatever arrives.
fn check_dead(acceptor: &mut LinkAcceptor, rest: &[u8], chunks: Chunks<'_>) {
    assert!(acceptor.is_failed() && !acceptor.is_linked());
    for chunk in std::iter::once(rest).chain(chunks) {
        match acceptor.handle_input(chunk) {
            Ok((0, None)) => {}
            other => panic!("a failed acceptor went on: {other:?}"),
        }
    }
    acceptor.accept(&Caps::new(), &Caps::new(), &DUMMY_PUB_KEY);
    assert!(
        acceptor.take_output().is_empty(),
        "a failed acceptor sent more bytes"
    );
    assert!(acceptor.is_failed());
}

/// What a failing acceptor sent: nothing, a result word, or a refusal link reply,
/// carrying the error it reported.
fn check_failure_output(out: &[u8], failure: &LinkFailure) {
    assert_ne!(failure.error, LinkError::Ok, "a failure with error Ok");
    let code = failure.error.code();
    match out.len() {
        0 => {}
        4 => assert_eq!(u32::from_le_bytes([out[0], out[1], out[2], out[3]]), code),
        n => {
            assert_eq!(n, LinkHeader::SIZE + LinkReply::FIXED_SIZE, "refusal length");
            let header = LinkHeader::decode(&mut Reader::new(out)).expect("a whole header");
            assert_eq!(header, LinkHeader::server(LinkReply::FIXED_SIZE as u32));
            let (error, key, common, channel) =
                LinkReply::decode(&out[LinkHeader::SIZE..]).expect("a refusal that parses");
            assert_eq!(error, code, "refusal error");
            assert!(key.iter().all(|&b| b == 0), "a refusal with a key");
            assert!(common.words().is_empty() && channel.words().is_empty());
        }
    }
}

/// The link reply after `accept`: a header and a reply that parse back to what was offered.
fn check_accept_reply(out: &[u8], server_common: &Caps, channel_caps: &Caps) {
    let header = LinkHeader::decode(&mut Reader::new(out)).expect("a link reply header");
    assert_eq!(
        header.size as usize,
        out.len() - LinkHeader::SIZE,
        "link reply size"
    );
    let (error, key, common, channel) = LinkReply::decode(&out[LinkHeader::SIZE..]).expect("a link reply");
    assert_eq!(error, LinkError::Ok.code());
    assert_eq!(key, DUMMY_PUB_KEY);
    assert!(common.has(common_cap::PROTOCOL_AUTH_SELECTION) && common.has(common_cap::AUTH_SPICE));
    assert_eq!(
        common.has(common_cap::MINI_HEADER),
        server_common.has(common_cap::MINI_HEADER)
    );
    assert_eq!(&channel, channel_caps);
}

/// Decodes seamless migration's channel state as a destination does (what
/// a client passes on from the source): never a panic, and what decodes
/// survives re-encoding.
pub fn migrate_data(data: &[u8]) {
    if let Ok(decoded) = spice_proto::migrate_data::MigrateData::decode(data) {
        let again = spice_proto::migrate_data::MigrateData::decode(&decoded.encode());
        assert_eq!(again.as_ref(), Ok(&decoded), "migrate data round trip");
    }
}

/// Parses link-stage structures: `LinkMess` (must round-trip when it decodes),
/// `LinkReply` (its caps and key must survive re-encoding) and `LinkHeader`.
pub fn link_mess(data: &[u8]) {
    if let Ok(mess) = LinkMess::decode(data) {
        check_link_mess_round_trip(&mess);
    }
    if let Ok((_error, key, common_caps, channel_caps)) = LinkReply::decode(data) {
        let pub_key: [u8; TICKET_PUBKEY_BYTES] = key.as_slice().try_into().expect("a whole key");
        let reply = LinkReply {
            error: LinkError::Ok,
            pub_key,
            common_caps,
            channel_caps,
        };
        let mut out = Vec::new();
        reply.encode_with_header(&mut out);
        let decoded = LinkReply::decode(&out[LinkHeader::SIZE..]).expect("a re-encoded reply parses");
        assert_eq!(
            decoded,
            (0, key, reply.common_caps, reply.channel_caps),
            "link reply round trip"
        );
    }
    if let Ok(header) = LinkHeader::decode(&mut Reader::new(data)) {
        let mut out = Vec::new();
        header.encode(&mut Writer::new(&mut out));
        assert_eq!(out, data[..LinkHeader::SIZE], "link header round trip");
    }
}

fn check_link_mess_round_trip(mess: &LinkMess) {
    let mut encoded = Vec::new();
    mess.encode(&mut Writer::new(&mut encoded));
    assert_eq!(encoded.len(), mess.encoded_len(), "encoded_len");
    assert_eq!(
        LinkMess::decode(&encoded).as_ref(),
        Ok(mess),
        "link message round trip"
    );
}

/// Frames a stream with both header kinds, delivered in one read and in the
/// reads chosen by the control byte; each frame is then decoded as a client
/// message of every channel.
///
/// Invariants: splitting the stream does not change the frames or whether an
/// oversized message is refused; no body exceeds [`MAX_BODY`]; every byte is
/// either in a frame or still buffered.
pub fn deframer(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    for kind in [HeaderKind::Full, HeaderKind::Mini] {
        let whole = run_deframer(kind, Chunks::new(0, stream));
        let split = run_deframer(kind, Chunks::new(control, stream));
        assert_eq!(
            whole, split,
            "{kind:?} framing depends on how the stream is split"
        );
        let (frames, outcome) = whole;
        if let Ok(buffered) = outcome {
            let framed: usize = frames.iter().map(|f| kind.size() + f.body.len()).sum();
            assert_eq!(framed + buffered, stream.len(), "bytes lost by the deframer");
        }
        for frame in &frames {
            assert!(frame.body.len() <= MAX_BODY as usize, "oversized frame");
            decode_everywhere(frame.msg_type, &frame.body);
        }
    }
}

/// Frames from `chunks`, and either the bytes left buffered or the error that stopped framing.
fn run_deframer(kind: HeaderKind, chunks: Chunks<'_>) -> (Vec<Frame>, Result<usize, DecodeError>) {
    let mut deframer = Deframer::new(kind, MAX_BODY);
    let mut frames = Vec::new();
    for chunk in chunks {
        deframer.push(chunk);
        loop {
            match deframer.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Err(e)),
            }
        }
    }
    let buffered = deframer.buffered();
    assert!(
        buffered < kind.size() + MAX_BODY as usize,
        "a whole frame left buffered"
    );
    (frames, Ok(buffered))
}

/// Splits an input into a message type and a body.
///
/// The first byte picks the type so that the interesting ranges are dense:
/// `0b0xxx_xxxx` gives `b & 0x1f` (base messages are 1..=6), `0b10xx_xxxx`
/// gives `101 + (b & 0x1f)` (channel messages start at 101), and `0b11xx_xxxx`
/// reads the type as a little-endian `u16` from the next two bytes.
pub fn split_message(data: &[u8]) -> Option<(u16, &[u8])> {
    let (&b, rest) = data.split_first()?;
    if b & 0xc0 == 0xc0 {
        let (ty, body) = rest.split_first_chunk::<2>()?;
        Some((u16::from_le_bytes(*ty), body))
    } else if b & 0x80 != 0 {
        Some((101 + u16::from(b & 0x1f), rest))
    } else {
        Some((u16::from(b & 0x1f), rest))
    }
}

/// The inverse of [`split_message`]: an oracle input for `msg_type` and `body`.
pub fn message_input(msg_type: u16, body: &[u8]) -> Vec<u8> {
    let mut out = match msg_type {
        0..=0x1f => vec![msg_type as u8],
        101..=132 => vec![0x80 | (msg_type - 101) as u8],
        _ => {
            let [lo, hi] = msg_type.to_le_bytes();
            vec![0xc0, lo, hi]
        }
    };
    out.extend_from_slice(body);
    out
}

/// Checks a channel decoder against the base decoder: base types must decode
/// (or fail) exactly as `BaseClientMessage` does, other types never as base.
fn check_against_base<M: std::fmt::Debug>(
    msg_type: u16,
    body: &[u8],
    decoded: &Result<M, DecodeError>,
    as_base: impl Fn(&M) -> Option<&BaseClientMessage>,
) {
    match (BaseClientMessage::decode(msg_type, body), decoded) {
        (Ok(Some(base)), Ok(msg)) => {
            assert_eq!(
                as_base(msg),
                Some(&base),
                "type {msg_type}: base message decoded differently"
            )
        }
        (Err(base_err), Err(err)) => assert_eq!(&base_err, err, "type {msg_type}: different base error"),
        (Ok(None), Ok(msg)) => {
            assert!(
                as_base(msg).is_none(),
                "type {msg_type}: {msg:?} is not a base message"
            )
        }
        (Ok(None), Err(_)) => {}
        (base, channel) => panic!("type {msg_type}: base decoder says {base:?}, channel decoder {channel:?}"),
    }
}

fn check_main(msg_type: u16, body: &[u8]) {
    let decoded = MainClientMessage::decode(msg_type, body);
    check_against_base(msg_type, body, &decoded, |m| match m {
        MainClientMessage::Base(b) => Some(b),
        _ => None,
    });
    match decoded {
        Ok(MainClientMessage::Unknown(ty)) => assert_eq!(ty, msg_type),
        Ok(MainClientMessage::AgentData(data)) => {
            assert_eq!(data, body);
            assert!(data.len() <= spice_proto::msg::main::MAX_AGENT_DATA + 64);
        }
        _ => {}
    }
}

fn check_display(msg_type: u16, body: &[u8]) {
    let decoded = DisplayClientMessage::decode(msg_type, body);
    check_against_base(msg_type, body, &decoded, |m| match m {
        DisplayClientMessage::Base(b) => Some(b),
        _ => None,
    });
    match decoded {
        Ok(DisplayClientMessage::Unknown(ty)) => assert_eq!(ty, msg_type),
        Ok(DisplayClientMessage::PreferredVideoCodecType(codecs)) => {
            assert_eq!(Some(&(codecs.len() as u8)), body.first());
            assert_eq!(codecs, body[1..=codecs.len()]);
        }
        _ => {}
    }
}

fn check_cursor(msg_type: u16, body: &[u8]) {
    let decoded = CursorClientMessage::decode(msg_type, body);
    check_against_base(msg_type, body, &decoded, |m| match m {
        CursorClientMessage::Base(b) => Some(b),
        CursorClientMessage::Unknown(_) => None,
    });
    if let Ok(CursorClientMessage::Unknown(ty)) = decoded {
        assert_eq!(ty, msg_type);
    }
}

fn check_inputs(msg_type: u16, body: &[u8]) {
    let decoded = InputsClientMessage::decode(msg_type, body);
    check_against_base(msg_type, body, &decoded, |m| match m {
        InputsClientMessage::Base(b) => Some(b),
        _ => None,
    });
    match decoded {
        Ok(InputsClientMessage::Unknown(ty)) => assert_eq!(ty, msg_type),
        Ok(InputsClientMessage::KeyScancode(bytes)) => {
            assert_eq!(bytes, body);
            assert!(bytes.len() <= spice_proto::msg::inputs::MAX_SCANCODE_BYTES);
        }
        Ok(InputsClientMessage::KeyDown(code) | InputsClientMessage::KeyUp(code)) => {
            assert!(spice_proto::msg::inputs::scancode_bytes(code).count() <= 4);
        }
        _ => {}
    }
}

fn check_playback(msg_type: u16, body: &[u8]) {
    let decoded = PlaybackClientMessage::decode(msg_type, body);
    check_against_base(msg_type, body, &decoded, |m| match m {
        PlaybackClientMessage::Base(b) => Some(b),
        PlaybackClientMessage::Unknown(_) => None,
    });
    if let Ok(PlaybackClientMessage::Unknown(ty)) = decoded {
        assert_eq!(ty, msg_type);
    }
}

fn check_record(msg_type: u16, body: &[u8]) {
    let decoded = RecordClientMessage::decode(msg_type, body);
    check_against_base(msg_type, body, &decoded, |m| match m {
        RecordClientMessage::Base(b) => Some(b),
        _ => None,
    });
    match decoded {
        Ok(RecordClientMessage::Unknown(ty)) => assert_eq!(ty, msg_type),
        Ok(RecordClientMessage::Data { data, .. } | RecordClientMessage::Mode { data, .. }) => {
            assert!(body.ends_with(data));
            assert!(data.len() <= spice_proto::msg::record::MAX_RECORD_DATA);
        }
        _ => {}
    }
}

fn check_spicevmc(msg_type: u16, body: &[u8]) {
    use spice_proto::msg::spicevmc::{compression, MAX_CLIENT_DATA};
    let decoded = SpicevmcClientMessage::decode(msg_type, body);
    check_against_base(msg_type, body, &decoded, |m| match m {
        SpicevmcClientMessage::Base(b) => Some(b),
        _ => None,
    });
    match decoded {
        Ok(SpicevmcClientMessage::Unknown(ty)) => assert_eq!(ty, msg_type),
        Ok(SpicevmcClientMessage::Data(data)) => {
            assert_eq!(data, body);
            assert!(data.len() <= MAX_CLIENT_DATA);
        }
        Ok(SpicevmcClientMessage::Compressed {
            kind,
            uncompressed_size,
            data,
        }) => {
            // What the channel allocates to expand it is bounded.
            assert!(uncompressed_size as usize <= MAX_CLIENT_DATA);
            assert!(body.ends_with(data));
            if kind == compression::NONE {
                assert_eq!(uncompressed_size as usize, data.len());
            }
        }
        Ok(SpicevmcClientMessage::PortEvent(event)) => assert_eq!(body, [event]),
        _ => {}
    }
}

fn decode_everywhere(msg_type: u16, body: &[u8]) {
    check_main(msg_type, body);
    check_display(msg_type, body);
    check_cursor(msg_type, body);
    check_inputs(msg_type, body);
    check_playback(msg_type, body);
    check_record(msg_type, body);
    check_spicevmc(msg_type, body);
}

/// Decodes a main channel client message (input layout: [`split_message`]).
pub fn main_messages(data: &[u8]) {
    if let Some((msg_type, body)) = split_message(data) {
        check_main(msg_type, body);
    }
}

/// Decodes a display channel client message (input layout: [`split_message`]).
pub fn display_messages(data: &[u8]) {
    if let Some((msg_type, body)) = split_message(data) {
        check_display(msg_type, body);
    }
}

/// Decodes a cursor channel client message (input layout: [`split_message`]).
pub fn cursor_messages(data: &[u8]) {
    if let Some((msg_type, body)) = split_message(data) {
        check_cursor(msg_type, body);
    }
}

/// Decodes an inputs channel client message (input layout: [`split_message`]).
pub fn inputs_messages(data: &[u8]) {
    if let Some((msg_type, body)) = split_message(data) {
        check_inputs(msg_type, body);
    }
}

/// Decodes the same input with every channel's client decoder, and checks they
/// agree on base messages.
pub fn client_messages(data: &[u8]) {
    if let Some((msg_type, body)) = split_message(data) {
        decode_everywhere(msg_type, body);
    }
}

/// A client's `VD_AGENT_MONITORS_CONFIG` data (what the server offers a QXL
/// device or re-encodes for the guest agent): a decoded configuration has at
/// most `MAX_MONITORS` monitors, all inside the input, and survives encoding
/// (with and without physical sizes) unchanged.
pub fn agent_monitors_config(data: &[u8]) {
    use spice_proto::agent::{MonitorConfig, MonitorsConfig, MAX_MONITORS};
    let Ok(config) = MonitorsConfig::decode(data) else {
        return;
    };
    let n = config.monitors.len();
    assert!(n <= MAX_MONITORS, "{n} monitors decoded");
    let each = MonitorConfig::SIZE + if config.physical_mm.is_some() { 4 } else { 0 };
    assert!(8 + n * each <= data.len(), "monitors beyond the input");
    assert!(config.physical_mm.as_ref().is_none_or(|mm| mm.len() == n));
    let mut again = Vec::new();
    config.encode(&mut again);
    assert_eq!(again.len(), 8 + n * each);
    assert_eq!(MonitorsConfig::decode(&again).as_ref(), Ok(&config), "round trip");
    let plain = MonitorsConfig {
        physical_mm: None,
        ..config.clone()
    };
    let mut bytes = Vec::new();
    plain.encode(&mut bytes);
    assert_eq!(bytes.len(), 8 + n * MonitorConfig::SIZE, "the agent's form");
    assert_eq!(MonitorsConfig::decode(&bytes), Ok(plain));
}

// ---------------------------------------------------------------------------
// Image codecs (`spice-codec`) and QXL commands (`spice-qxl`): the parsers of
// what a guest hands the server. Each oracle runs the crate's own fuzz entry
// point (decode, re-encode, decode again) and then checks what that entry
// point does not: limits, exact stream lengths, and round trips through the
// encoders for the image types they do not encode directly.
// ---------------------------------------------------------------------------

/// The limits [`spice_codec::lz::fuzz_decode`] decodes under.
pub const LZ_LIMITS: DecodeLimits = DecodeLimits { max_pixels: 1 << 20 };
/// The limits [`spice_codec::lz4::fuzz_decode`] decodes under.
pub const LZ4_LIMITS: DecodeLimits = DecodeLimits { max_pixels: 4096 };
/// The limits [`spice_codec::quic::fuzz_decode`] decodes under.
pub const QUIC_LIMITS: DecodeLimits = DecodeLimits { max_pixels: 1 << 16 };

/// A decoder refuses an image of `pixels` pixels under a limit one below.
fn check_limit_enforced<T: std::fmt::Debug>(
    pixels: u64,
    decode: impl FnOnce(&DecodeLimits) -> Result<T, CodecError>,
) {
    assert!(pixels > 0, "an empty image decoded");
    let tighter = DecodeLimits {
        max_pixels: pixels - 1,
    };
    match decode(&tighter) {
        Err(CodecError::TooLarge { .. }) => {}
        other => panic!(
            "an image of {pixels} pixels under a limit of {}: {other:?}",
            pixels - 1
        ),
    }
}

/// An LZ stream (`SPICE_IMAGE_TYPE_LZ_RGB` / `LZ_PLT` payload, header included).
///
/// Beyond [`spice_codec::lz::fuzz_decode`] (RGB32 and RGBA re-encode to the
/// same pixels): the header parses alone to the same fields; the pixel limit
/// is enforced; the stream is consumed exactly (one byte less or one more
/// fails); palette images expand to `width * height` pixels; and RGB24,
/// every palette type, A8 and XXXA survive a round trip through the encoder,
/// whose RGB32 and PLT8 token passes code those types' units the same way
/// (only the header differs).
pub fn lz(data: &[u8]) {
    spice_codec::lz::fuzz_decode(data);
    let Ok(img) = lz::decode(data, &LZ_LIMITS) else {
        return;
    };
    let h = img.header;
    assert_eq!(lz::Header::parse(data), Ok(h), "header parsed alone");
    let pixels = u64::from(h.width) * u64::from(h.height);
    assert!(pixels <= LZ_LIMITS.max_pixels);
    check_limit_enforced(pixels, |limits| lz::decode(data, limits));
    assert!(
        lz::decode(&data[..data.len() - 1], &LZ_LIMITS).is_err(),
        "a stream one byte short decoded"
    );
    let longer = [data, &[0]].concat();
    assert!(
        lz::decode(&longer, &LZ_LIMITS).is_err(),
        "a trailing byte was ignored"
    );

    let (w, rows) = (h.width as usize, h.height as usize);
    let expected_len = match h.kind {
        LzImageType::A8 => w * rows,
        k if k.is_palette() => h.stride as usize * rows,
        _ => w * 4 * rows,
    };
    assert_eq!(img.data.len(), expected_len, "{:?} decoded length", h.kind);
    if h.kind.is_palette() {
        let palette: Vec<u32> = (0..256).map(|i| i * 0x0001_0101).collect();
        let rgb = img.palette_to_rgb32(&palette).expect("a palette image expands");
        assert_eq!(rgb.len(), w * rows * 4, "expanded palette image");
    } else {
        assert!(img.palette_to_rgb32(&[]).is_none());
    }

    // Re-encode the units with the RGB32 or PLT8 pass, then put the original
    // header back: the stream must decode to the same image.
    let mut again = Vec::new();
    match h.kind {
        LzImageType::Rgb24 => {
            let image = ImageRef {
                width: h.width,
                height: h.height,
                stride: w * 4,
                data: &img.data,
            };
            lz::encode_rgb32(&image, &mut again).expect("an RGB24 image re-encodes as RGB32");
        }
        LzImageType::Xxxa => {
            let alpha: Vec<u8> = img.data.chunks_exact(4).map(|p| p[3]).collect();
            lz::encode_plt8(h.width, h.height, &alpha, &mut again).expect("alpha bytes re-encode");
        }
        LzImageType::A8 => {
            lz::encode_plt8(h.width, h.height, &img.data, &mut again).expect("A8 bytes re-encode");
        }
        k if k.is_palette() => {
            lz::encode_plt8(h.stride, h.height, &img.data, &mut again).expect("palette bytes re-encode");
        }
        // RGB32 and RGBA: done by fuzz_decode. RGB16: no encoder.
        _ => return,
    }
    again[..lz::HEADER_LEN].copy_from_slice(&data[..lz::HEADER_LEN]);
    let back = lz::decode(&again, &LZ_LIMITS).expect("a re-encoded stream decodes");
    assert_eq!(back, img, "{:?} round trip", h.kind);
}

/// An LZ4 image: two bytes give the size (1 to 64 pixels each way, as in
/// [`spice_codec::lz4::fuzz_decode`]), the rest is the `SPICE_IMAGE_TYPE_LZ4`
/// payload.
///
/// Beyond `fuzz_decode` (32-bit formats re-encode to the same pixels): the
/// pixel limit is enforced; the blocks are consumed exactly (one byte less,
/// or an empty block after them, fails); and every format, 16 and 24 bit
/// included, survives a round trip when its bytes can be coded as 32-bit
/// pixels (LZ4 codes bytes; only the format byte tells them apart).
pub fn lz4(data: &[u8]) {
    spice_codec::lz4::fuzz_decode(data);
    let [a, b, ref stream @ ..] = *data else {
        return;
    };
    let (width, height) = (u32::from(a % 64) + 1, u32::from(b % 64) + 1);
    let Ok(img) = lz4::decode(stream, width, height, &LZ4_LIMITS) else {
        return;
    };
    check_limit_enforced(u64::from(width) * u64::from(height), |limits| {
        lz4::decode(stream, width, height, limits)
    });
    assert!(
        lz4::decode(&stream[..stream.len() - 1], width, height, &LZ4_LIMITS).is_err(),
        "a stream one byte short decoded"
    );
    let longer = [stream, &[0, 0, 0, 0]].concat();
    assert!(
        lz4::decode(&longer, width, height, &LZ4_LIMITS).is_err(),
        "an empty block after the image was accepted"
    );
    assert_eq!(img.top_down, stream[0] != 0);
    assert_eq!(img.format, stream[1]);
    let total = img.data.len();
    if total % 4 != 0 {
        return;
    }
    let image = ImageRef {
        width: (total / 4) as u32,
        height: 1,
        stride: total,
        data: &img.data,
    };
    let mut again = Vec::new();
    lz4::Lz4Encoder::new()
        .encode(&image, lz4::FMT_32BIT, &mut again)
        .expect("the bytes re-encode");
    again[..2].copy_from_slice(&stream[..2]);
    let back = lz4::decode(&again, width, height, &LZ4_LIMITS).expect("a re-encoded stream decodes");
    assert_eq!(back, img, "format {} round trip", img.format);
}

/// A QUIC stream (the payload of `SPICE_IMAGE_TYPE_QUIC`, which a QXL guest
/// may hand the server).
///
/// Beyond [`spice_codec::quic::fuzz_decode`] (the decoded pixels re-encode
/// and decode to the same image, for every type): the header read alone
/// agrees; the pixel limit is enforced; and only whole words of coded data
/// are read: dropping a partial last word or appending a word of one bits
/// changes nothing.
pub fn quic(data: &[u8]) {
    spice_codec::quic::fuzz_decode(data);
    let Ok(img) = quic::decode(data, &QUIC_LIMITS) else {
        return;
    };
    let header = quic::read_header(data).expect("the header of a decoded stream");
    assert_eq!(
        (header.kind, header.width, header.height),
        (img.kind, img.width, img.height),
        "header read alone"
    );
    assert_eq!(img.data.len(), img.stride() * img.height as usize);
    check_limit_enforced(u64::from(img.width) * u64::from(img.height), |limits| {
        quic::decode(data, limits)
    });
    let words = &data[..data.len() / 4 * 4];
    if words.len() != data.len() {
        assert_eq!(
            quic::decode(words, &QUIC_LIMITS).as_ref(),
            Ok(&img),
            "partial last word read"
        );
    }
    let longer = [words, &[0xff; 4]].concat();
    assert_eq!(
        quic::decode(&longer, &QUIC_LIMITS),
        Ok(img),
        "a word after the image read"
    );
}

/// A sequence of GLZ streams decoded by one decoder, see
/// [`spice_codec::glz::fuzz_decode`] (each stream preceded by its length,
/// 2 bytes big endian; decoded images re-encode, through zlib-GLZ too, to the
/// same pixels).
pub fn glz(data: &[u8]) {
    spice_codec::glz::fuzz_decode(data);
}

/// A QXL command in fake guest memory, see [`spice_qxl::fuzzing`] for the
/// layout and the invariants (release info exactly when the command can be
/// read, every accepted command within the parse limits — including the
/// paths of STROKE, the glyphs of TEXT and the images and transforms of
/// COMPOSITE — monitors config and primary surface checked against the same
/// memory).
pub fn qxl_command(data: &[u8]) {
    spice_qxl::fuzzing::fuzz_parse(data);
}

/// Formats of the canvas oracle's target, by byte 12 of the input (6 and 7: xRGB).
const CANVAS_FORMATS: [spice_canvas::Format; 6] = [
    spice_canvas::Format::Xrgb32,
    spice_canvas::Format::Argb32,
    spice_canvas::Format::Rgb565,
    spice_canvas::Format::A8,
    spice_canvas::Format::Rgb555,
    spice_canvas::Format::A1,
];

/// The surfaces the canvas oracle's drawables may read besides their
/// target: `(id, width, height, format)`, one of each format that matters
/// (A8 and ARGB for composites, A1 for masks).
const CANVAS_SOURCES: [(u32, u32, u32, spice_canvas::Format); 4] = [
    (1, 12, 10, spice_canvas::Format::Xrgb32),
    (2, 12, 10, spice_canvas::Format::A8),
    (3, 7, 5, spice_canvas::Format::Argb32),
    (4, 40, 10, spice_canvas::Format::A1),
];

/// A surface of the canvas oracle, its bytes a fixed pattern.
fn canvas_surface(id: u32, width: u32, height: u32, format: spice_canvas::Format) -> spice_canvas::Surface {
    let mut s = spice_canvas::Surface::new(width, height, format).expect("a small surface");
    for y in 0..height {
        let row = s.row_bytes_mut(y).expect("a row of the surface");
        for (x, b) in row.iter_mut().enumerate() {
            *b = (x as u32 * 37 + y * 11 + id * 101) as u8;
        }
    }
    s
}

struct CanvasSources(Vec<(u32, spice_canvas::Surface)>);

impl spice_canvas::Sources for CanvasSources {
    fn surface(&self, id: u32) -> Option<spice_canvas::SurfaceRef<'_>> {
        self.0.iter().find(|(i, _)| *i == id).map(|(_, s)| s.view())
    }
}

/// A drawable parsed out of fake guest memory (laid out as for
/// [`qxl_command`], the command type forced to DRAW) and rendered into a
/// small target (format `byte 12 % 8`, see `CANVAS_FORMATS`; size
/// `24 + byte 13 % 16` by `16 + byte 14 % 8`), reading four other surfaces
/// (`CANVAS_SOURCES`); the rows of bitmaps left in guest memory are copied
/// first, as the QXL worker does.
///
/// Invariants: drawing never panics; the damage it reports lies within the
/// target and (text aside, whose x-byte clearing covers the glyphs' union)
/// the drawable's box, and no pixel outside it changed (none at all when it
/// reports none).
pub fn canvas_draw(data: &[u8]) {
    canvas_run(data);
}

/// [`canvas_draw`], returning what drawing gave (`None` when the input
/// holds no drawable).
pub fn canvas_run(data: &[u8]) -> Option<Result<spice_canvas::Damage, spice_canvas::CanvasError>> {
    use spice_qxl::fuzzing::{fuzz_limits, fuzz_slots, FUZZ_BASE};
    use spice_qxl::{Command, CommandExt, FakeMemory, Guest, GuestMemory};
    if data.len() < 16 {
        return None;
    }
    let len = data.len();
    let memory = FakeMemory::from_bytes(FUZZ_BASE, data.to_vec());
    let slots = fuzz_slots(len);
    let guest = Guest::new(&slots, &memory).with_limits(fuzz_limits());
    let offset = u64::from(u16::from_le_bytes([data[0], data[1]])) % len as u64;
    let group = u32::from(data[3] >> 2 & 1);
    let generation = group ^ u32::from(data[3] >> 3 & 1);
    let phys = match group {
        0 => slots.physical(0, generation, FUZZ_BASE + offset),
        _ => slots.physical(1, generation, offset),
    };
    let ext = CommandExt {
        data: phys,
        cmd_type: spice_qxl::command::QXL_CMD_DRAW,
        group_id: group,
        flags: u32::from(data[3] & 3),
    };
    let Ok(Command::Draw(mut drawable)) = spice_qxl::parse_command(&guest, &ext).command else {
        return None;
    };
    for image in drawable.op.images_mut() {
        if let spice_qxl::Image::Bitmap(b) = image {
            if let Some(rows) = b.guest_rows {
                let mut bytes = vec![0; rows.len as usize];
                if memory.read(rows.host, &mut bytes).is_err() {
                    return None;
                }
                b.data = bytes;
            }
        }
    }
    let format = CANVAS_FORMATS
        .get(usize::from(data[12] & 7))
        .copied()
        .unwrap_or(spice_canvas::Format::Xrgb32);
    let (width, height) = (24 + u32::from(data[13] % 16), 16 + u32::from(data[14] % 8));
    let mut target = canvas_surface(drawable.surface_id, width, height, format);
    let before = target.clone();
    let sources = CanvasSources(
        CANVAS_SOURCES
            .iter()
            .map(|&(id, w, h, f)| (id, canvas_surface(id, w, h, f)))
            .collect(),
    );
    let result = spice_canvas::draw(&mut target.view_mut(), drawable.surface_id, &drawable, &sources);
    let Ok(damage) = result else {
        return Some(result);
    };
    let inside = |x: u32, y: u32| {
        damage.is_some_and(|r| {
            (i64::from(r.left)..i64::from(r.right)).contains(&i64::from(x))
                && (i64::from(r.top)..i64::from(r.bottom)).contains(&i64::from(y))
        })
    };
    if let Some(r) = damage {
        assert!(
            r.left >= 0 && r.top >= 0 && r.left < r.right && r.top < r.bottom,
            "damage {r:?}"
        );
        assert!(
            r.right as u32 <= width && r.bottom as u32 <= height,
            "damage {r:?} past the target"
        );
        // Text is the exception: on xRGB targets C clears the x bytes over
        // the glyphs' whole union, which may reach past the box.
        let b = drawable.bbox;
        assert!(
            matches!(drawable.op, spice_qxl::DrawOp::Text(_))
                || (r.left >= b.left && r.top >= b.top && r.right <= b.right && r.bottom <= b.bottom),
            "damage {r:?} outside the box {b:?}"
        );
    }
    let bpp = format.bits_per_pixel();
    for y in 0..height {
        let (new, old) = (
            target.row_bytes(y).expect("a row"),
            before.row_bytes(y).expect("a row"),
        );
        for x in 0..width {
            let bit = (x * bpp) as usize;
            let bits = bpp.min(8) as usize;
            let (at, bytes) = (bit / 8, (bpp as usize).div_ceil(8));
            let changed = if bpp >= 8 {
                new[at..at + bytes] != old[at..at + bytes]
            } else {
                (new[at] ^ old[at]) >> (bit % 8) & ((1 << bits) - 1) != 0
            };
            assert!(
                !changed || inside(x, y),
                "pixel ({x}, {y}) changed outside the damage {damage:?}"
            );
        }
    }
    Some(Ok(damage))
}

// ---------------------------------------------------------------------------
// Channel state machines (`spice-server`): sequences of client messages
// through the main, inputs and record channels and the agent path. Their
// oracles live in `spice_server::fuzzing`, next to the crate-private state
// they drive; see there for the invariants.
// ---------------------------------------------------------------------------

/// The main channel's session: mouse modes, channel list, the guest agent
/// both ways, reconnects ([`spice_server::fuzzing::main_sequence`]).
pub fn main_sequence(data: &[u8]) {
    spice_server::fuzzing::main_sequence(data);
}

/// The client → agent path: `MAIN_AGENT_START`/`DATA`/`TOKEN` gathered into
/// agent messages and chunks for the device
/// ([`spice_server::fuzzing::agent_messages`]).
pub fn agent_messages(data: &[u8]) {
    spice_server::fuzzing::agent_messages(data);
}

/// The inputs channel and the keys it leaves held
/// ([`spice_server::fuzzing::inputs_sequence`]).
pub fn inputs_sequence(data: &[u8]) {
    spice_server::fuzzing::inputs_sequence(data);
}

/// The record channel with the host's record handle
/// ([`spice_server::fuzzing::record_sequence`]).
pub fn record_sequence(data: &[u8]) {
    spice_server::fuzzing::record_sequence(data);
}

/// A usbredir or port channel and its device
/// ([`spice_server::fuzzing::spicevmc_sequence`]).
pub fn spicevmc_sequence(data: &[u8]) {
    spice_server::fuzzing::spicevmc_sequence(data);
}

/// A connection's framing before the link: raw SPICE or WebSocket, detected
/// from the first bytes, then frames decoded into the SPICE stream
/// ([`spice_server::fuzzing::websocket_framing`]).
pub fn websocket_framing(data: &[u8]) {
    spice_server::fuzzing::websocket_framing(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_input_inverts_split_message() {
        for ty in [0u16, 1, 6, 31, 101, 120, 132, 133, 999, u16::MAX] {
            let input = message_input(ty, b"xy");
            assert_eq!(split_message(&input), Some((ty, &b"xy"[..])), "type {ty}");
        }
    }

    #[test]
    fn chunks_cover_the_stream_in_order() {
        let data: Vec<u8> = (0..=255).collect();
        for control in 0..=ctl::CHUNK_MASK {
            let chunks: Vec<&[u8]> = Chunks::new(control, &data).collect();
            assert_eq!(chunks.concat(), data, "mode {control}");
            assert!(chunks.iter().all(|c| !c.is_empty()));
            if control == 0 {
                assert_eq!(chunks.len(), 1);
            }
        }
    }
}
