//! The main channel and the session around it, as the server's dispatch
//! (`server/dispatch.rs`, `server/mod.rs`) drives them: [`main_sequence`]
//! and [`agent_messages`].
//!
//! The dispatch itself is tied to sockets and the event loop, so `Session`
//! repeats its few decisions (the mouse mode request, where a client's agent
//! payload goes, when the agent is pumped, what a closing session does) over
//! the real state machines: `MainChannel`, `ClientMessages` and
//! `AgentLink` with an in-memory [`CharDevice`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use spice_proto::agent::{
    message_type, ChunkHeader, MessageHeader, MonitorConfig, MonitorsConfig, MouseState, MAX_DATA_SIZE,
    MAX_MONITORS, PORT_CLIENT, PORT_SERVER, PROTOCOL,
};
use spice_proto::consts::{main_cap, mouse_mode};
use spice_proto::msg::base::server_type as base_type;
use spice_proto::msg::main::{client_type, server_type, MAX_AGENT_DATA};
use spice_proto::{Caps, Frame, HeaderKind};

use super::{le16, le32, ClientView, Cursor, Grammar, Step};
use crate::agent::client_messages::{ClientMessages, Route};
use crate::agent::{AgentLink, MAX_CHUNKS_PER_PUMP};
use crate::channel::main::{MainChannel, MainEvent, SessionIntro, AGENT_TOKENS};
use crate::channel::ChannelBase;
use crate::display::ClientMonitors;
use crate::vdi::CharDevice;

/// Bits of the configuration byte of [`main_sequence`] and [`agent_messages`].
pub mod config {
    /// Mini headers (else full ones).
    pub const MINI_HEADER: u8 = 1 << 0;
    /// The client has `MAIN_CAP_NAME_AND_UUID`.
    pub const NAME_AND_UUID: u8 = 1 << 1;
    /// The client has `MAIN_CAP_AGENT_CONNECTED_TOKENS`.
    pub const AGENT_CONNECTED_TOKENS: u8 = 1 << 2;
    /// A tablet is attached at the start (client mouse mode is possible).
    pub const TABLET: u8 = 1 << 3;
    /// The server's agent-mouse setting: the agent moves the pointer in client mode.
    pub const AGENT_MOUSE: u8 = 1 << 4;
    /// A guest agent is attached at the start.
    pub const AGENT: u8 = 1 << 5;
    /// The displays' devices take clients' monitors configurations (so the
    /// agent never gets one).
    pub const DISPLAYS_TAKE_MONITORS: u8 = 1 << 6;
    /// The server has a name and a UUID to tell.
    pub const NAME: u8 = 1 << 7;
}

/// Host actions of [`main_sequence`] and [`agent_messages`] (`0x80 | action`).
pub mod action {
    /// `0..=7`: the agent's device takes `ROOM[action]` more bytes before it is full.
    pub const ROOM: [usize; 8] = [0, 1, 7, 64, 512, 4096, 65536, usize::MAX];
    /// The guest writes raw bytes on the agent port: a length byte, then the bytes.
    pub const GUEST_BYTES: u8 = 8;
    /// The guest writes one chunk: a port byte (odd: client, even: server),
    /// a length byte, then the payload.
    pub const GUEST_CHUNK: u8 = 9;
    /// The host wakes the server for the agent device.
    pub const WAKEUP: u8 = 10;
    /// The client's socket takes everything queued on the main channel.
    pub const DRAIN: u8 = 11;
    /// The guest agent is detached if attached, else a new one attached.
    pub const TOGGLE_AGENT: u8 = 12;
    /// The client's main channel closes if open, else a new client connects.
    pub const TOGGLE_CLIENT: u8 = 13;
    /// The tablet is removed if attached, else attached.
    pub const TOGGLE_TABLET: u8 = 14;
    /// A pointer event for the agent: two bytes, its x and y.
    pub const AGENT_POINTER: u8 = 15;
}

/// As `server::AGENT_BACKLOG_LIMIT`: agent data is read from the device
/// only while less than this waits on the main channel.
const AGENT_BACKLOG_LIMIT: usize = 256 * 1024;

/// As `Limits::output_pause_bytes`: a connection with this much queued has
/// its requests left unread.
const OUTPUT_PAUSE_BYTES: usize = 256 * 1024;

/// As the link stage's `max_client_message(Main)`: a larger message is a
/// framing error and closes the channel.
const MAX_MAIN_MESSAGE: usize = 8 * 1024;

/// The most a main channel may have queued after a step: the pause limit,
/// plus what one step may add before reads stop (a pump's chunks, the
/// net test's padded ping).
const MAX_MAIN_BACKLOG: usize = 1 << 20;

/// The longest message the server writes to the agent for a client: a
/// monitors configuration without physical sizes.
const MAX_SERVER_CLIENT_MESSAGE: usize = MessageHeader::SIZE + 8 + MAX_MONITORS * MonitorConfig::SIZE;

/// Chunks of one such message.
const SERVER_CLIENT_MESSAGE_CHUNKS: usize = MAX_SERVER_CLIENT_MESSAGE.div_ceil(MAX_DATA_SIZE);

/// The most chunks the agent's device may have waiting: the client's
/// [`AGENT_TOKENS`]; the chunk at the front, which the device may have
/// begun taking for a client that has left since; and of what the server
/// writes on its own, the rest of a monitors configuration being written
/// and the newest one waiting (a newer one replaces one not started), one
/// pointer state and one client-gone notice.
const MAX_QUEUED_CHUNKS: usize = AGENT_TOKENS as usize + 1 + 2 * SERVER_CLIENT_MESSAGE_CHUNKS + 2;

/// The bytes those chunks hold at most.
const MAX_QUEUED_BYTES: usize = (AGENT_TOKENS as usize + 1) * (ChunkHeader::SIZE + MAX_AGENT_DATA + 64)
    + 2 * (SERVER_CLIENT_MESSAGE_CHUNKS * ChunkHeader::SIZE + MAX_SERVER_CLIENT_MESSAGE)
    + (ChunkHeader::SIZE + MessageHeader::SIZE + MouseState::SIZE)
    + (ChunkHeader::SIZE + MessageHeader::SIZE);

/// The main channel's session driven by client messages (configuration
/// byte: [`config`]; host actions: [`action`]).
///
/// Invariants: every message the server queues frames and is one the main
/// channel sends: INIT first (with the session's mouse modes and agent
/// state), then NAME and UUID when asked for, then the three net-test
/// pings, and later only the channel list (after `ATTACH_CHANNELS`), mouse
/// modes (a valid current mode among the supported ones, as the session
/// has them), agent state changes (the tokens variant exactly with the
/// capability), agent data and tokens. Agent data reaches the client only
/// after `AGENT_START`, within its tokens, unchanged and in the guest's
/// order; tokens come back only for payloads the client sent. Everything
/// written to the agent's device is well-formed chunks carrying well-formed
/// agent messages: the client's stream as it sent it, monitors
/// configurations the server re-encoded (never when the displays take
/// them), pointer states and client-gone notices. What waits for the device
/// stays within `MAX_QUEUED_CHUNKS` and `MAX_QUEUED_BYTES` whatever the
/// client sends, and the main channel's queue within `MAX_MAIN_BACKLOG`.
pub fn main_sequence(data: &[u8]) {
    run(data, Grammar::Messages);
}

/// [`main_sequence`] with the agent grammar: `0x00..=0x3f` is a
/// `MAIN_AGENT_DATA` (length and payload follow), `0x40..=0x5f` a
/// `MAIN_AGENT_TOKEN` and `0x60..=0x7f` a `MAIN_AGENT_START` with `b & 0x1f`
/// tokens; host actions and two-byte-typed messages as there. The same
/// invariants hold.
pub fn agent_messages(data: &[u8]) {
    run(data, Grammar::Agent);
}

fn run(data: &[u8], grammar: Grammar) {
    let Some((&config, steps)) = data.split_first() else {
        return;
    };
    let mut session = Session::new(config);
    let mut cursor = Cursor::new(steps);
    while let Some(step) = cursor.step(grammar) {
        match step {
            Step::Client { msg_type, body } => session.client_message(msg_type, body),
            Step::AgentToken(tokens) => {
                session.client_message(client_type::AGENT_TOKEN, &tokens.to_le_bytes())
            }
            Step::AgentStart(tokens) => {
                session.client_message(client_type::AGENT_START, &tokens.to_le_bytes())
            }
            Step::Wait(d) => {
                session.now += d;
            }
            Step::Host(a) => session.host(a, &mut cursor),
        }
        session.check();
    }
}

/// The guest side of the agent's port.
#[derive(Debug, Default)]
struct DeviceState {
    /// Bytes the device takes before it is full.
    room: usize,
    /// What the guest wrote, not yet read by the server.
    from_guest: VecDeque<u8>,
    /// What the server wrote, checked as it arrives.
    to_guest: AgentStream,
    /// The server's last `state()`.
    connected: bool,
}

#[derive(Debug, Clone, Default)]
struct Device(Arc<Mutex<DeviceState>>);

impl Device {
    fn lock(&self) -> MutexGuard<'_, DeviceState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CharDevice for Device {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut d = self.lock();
        let n = buf.len().min(d.from_guest.len());
        for (slot, b) in buf.iter_mut().zip(d.from_guest.drain(..n)) {
            *slot = b;
        }
        n
    }

    fn write(&mut self, data: &[u8]) -> usize {
        // Not asserted: the server keeps writing after it told the device
        // `state(false)` for a guest's malformed stream (it stops reading only).
        let mut d = self.lock();
        let n = data.len().min(d.room);
        d.room -= n;
        d.to_guest.feed(&data[..n]);
        n
    }

    fn state(&mut self, connected: bool) {
        self.lock().connected = connected;
    }
}

/// The agent's view of what the server writes: chunks, and on each port a
/// stream of agent messages, as spice-vdagentd reads them.
#[derive(Debug, Default)]
struct AgentStream {
    /// A chunk header being read.
    header: Vec<u8>,
    /// The chunk being read: its port and the bytes still to come.
    chunk: Option<(u32, usize)>,
    client: MessageReader,
    server: MessageReader,
}

impl AgentStream {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let Some((port, left)) = self.chunk else {
                let take = (ChunkHeader::SIZE - self.header.len()).min(bytes.len());
                self.header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if let Ok(whole) = <[u8; ChunkHeader::SIZE]>::try_from(self.header.as_slice()) {
                    let header = ChunkHeader::decode(&whole)
                        .unwrap_or_else(|e| panic!("the server wrote a bad chunk header: {e}"));
                    self.header.clear();
                    self.chunk = (header.size > 0).then_some((header.port, header.size as usize));
                }
                continue;
            };
            let take = left.min(bytes.len());
            let (payload, rest) = bytes.split_at(take);
            bytes = rest;
            self.chunk = (left > take).then_some((port, left - take));
            match port {
                PORT_CLIENT => {
                    self.client.feed(payload, check_client_message);
                }
                _ => {
                    if self.server.feed(payload, check_server_message) {
                        // spice-vdagentd forgets the client's partial message
                        // when it hears the client left.
                        self.client = MessageReader::default();
                    }
                }
            }
        }
    }
}

/// Agent messages out of the payloads of one port's chunks.
#[derive(Debug, Default)]
struct MessageReader {
    header: Vec<u8>,
    /// The message being read, its data (kept only for the types the
    /// checks look into) and the bytes still to come.
    current: Option<(MessageHeader, Vec<u8>, u32)>,
}

impl MessageReader {
    /// Reads `payload`, calling `check` on each whole message; returns
    /// whether one was a client-gone notice.
    fn feed(&mut self, mut payload: &[u8], check: fn(&MessageHeader, &[u8]) -> bool) -> bool {
        let mut client_gone = false;
        while !payload.is_empty() || self.current.as_ref().is_some_and(|c| c.2 == 0) {
            let Some((header, data, left)) = &mut self.current else {
                let take = (MessageHeader::SIZE - self.header.len()).min(payload.len());
                self.header.extend_from_slice(&payload[..take]);
                payload = &payload[take..];
                if self.header.len() == MessageHeader::SIZE {
                    let header = MessageHeader::decode(&self.header).expect("a whole header");
                    assert_eq!(
                        header.protocol, PROTOCOL,
                        "agent message of protocol {}",
                        header.protocol
                    );
                    self.header.clear();
                    self.current = Some((header, Vec::new(), header.size));
                }
                continue;
            };
            let take = (*left as usize).min(payload.len());
            if keeps_data(header.message_type) && data.len() + take <= MAX_SERVER_CLIENT_MESSAGE {
                data.extend_from_slice(&payload[..take]);
            }
            payload = &payload[take..];
            *left -= take as u32;
            if *left == 0 {
                client_gone |= check(header, data);
                self.current = None;
            }
        }
        client_gone
    }
}

fn keeps_data(message_type: u32) -> bool {
    matches!(
        message_type,
        message_type::MONITORS_CONFIG | message_type::MOUSE_STATE
    )
}

/// A whole message on the client port: the client's own, or a monitors
/// configuration the server re-encoded for the agent (never forwarded as
/// the client sent it: those are gathered).
fn check_client_message(header: &MessageHeader, data: &[u8]) -> bool {
    if header.message_type == message_type::MONITORS_CONFIG {
        assert_eq!(data.len(), header.size as usize, "monitors configuration length");
        let config = MonitorsConfig::decode(data).expect("the server's monitors configuration decodes");
        assert!(config.physical_mm.is_none(), "physical sizes sent to the agent");
        assert_eq!(
            data.len(),
            8 + config.monitors.len() * MonitorConfig::SIZE,
            "the agent's form of a monitors configuration"
        );
    }
    false
}

/// A whole message on the server port: pointer states and client-gone
/// notices only. Returns whether it was the latter.
fn check_server_message(header: &MessageHeader, data: &[u8]) -> bool {
    match header.message_type {
        message_type::MOUSE_STATE => {
            assert_eq!(data.len(), MouseState::SIZE, "pointer state length");
            false
        }
        message_type::CLIENT_DISCONNECTED => {
            assert_eq!(header.size, 0, "client-gone notice with data");
            true
        }
        other => panic!("the server wrote agent message type {other} on its own port"),
    }
}

/// What the client has and has been told on its main channel.
#[derive(Debug)]
struct Client {
    main: MainChannel,
    view: ClientView,
    /// INIT and the rest of the welcome have been checked.
    welcomed: bool,
    /// The client sent `ATTACH_CHANNELS`.
    asked_channels: bool,
    /// `AGENT_DATA` payloads the client handed an attached agent.
    agent_payloads: u64,
    /// Tokens the server gave back with `AGENT_TOKEN`.
    tokens_returned: u64,
}

/// The agent link as the client's tokens allow it to send: a model of
/// `AgentLink`'s `client_started` and `client_tokens`.
#[derive(Debug, Default)]
struct TokenModel {
    started: bool,
    tokens: u32,
}

struct Session {
    config: u8,
    header: HeaderKind,
    epoch: Instant,
    now: Instant,
    client: Option<Client>,
    sessions: u32,
    agent: Option<AgentLink>,
    device: Device,
    /// What the guest wrote on the client port, payload by payload, in
    /// order: what may reach the client.
    guest_payloads: VecDeque<Vec<u8>>,
    /// Reads the guest's writes as the server should, for `guest_payloads`.
    guest_stream: GuestStream,
    tokens: TokenModel,
    router: ClientMessages,
    tablet: bool,
    mouse_mode: u32,
}

/// Chunks out of the bytes the guest wrote, as `AgentLink` reads them.
#[derive(Debug, Default)]
struct GuestStream {
    header: Vec<u8>,
    chunk: Option<(ChunkHeader, Vec<u8>)>,
    /// A bad header: the server stops reading, and so does this.
    broken: bool,
}

impl GuestStream {
    /// Reads `bytes`, returning the client-port payloads completed.
    fn feed(&mut self, mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut payloads = Vec::new();
        while !self.broken && !bytes.is_empty() {
            match &mut self.chunk {
                None => {
                    let take = (ChunkHeader::SIZE - self.header.len()).min(bytes.len());
                    self.header.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if let Ok(whole) = <[u8; ChunkHeader::SIZE]>::try_from(self.header.as_slice()) {
                        self.header.clear();
                        match ChunkHeader::decode(&whole) {
                            Ok(h) => self.chunk = Some((h, Vec::new())),
                            Err(_) => self.broken = true,
                        }
                    }
                }
                Some((header, payload)) => {
                    let take = (header.size as usize - payload.len()).min(bytes.len());
                    payload.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                }
            }
            if let Some((header, payload)) = &self.chunk {
                if payload.len() == header.size as usize {
                    if header.port == PORT_CLIENT {
                        payloads.push(payload.clone());
                    }
                    self.chunk = None;
                }
            }
        }
        payloads
    }
}

impl Session {
    fn new(config: u8) -> Self {
        let epoch = Instant::now();
        let mut session = Self {
            config,
            header: if config & config::MINI_HEADER != 0 {
                HeaderKind::Mini
            } else {
                HeaderKind::Full
            },
            epoch,
            now: epoch,
            client: None,
            sessions: 0,
            agent: None,
            device: Device::default(),
            guest_payloads: VecDeque::new(),
            guest_stream: GuestStream::default(),
            tokens: TokenModel::default(),
            router: ClientMessages::default(),
            tablet: config & config::TABLET != 0,
            mouse_mode: mouse_mode::SERVER,
        };
        if config & config::AGENT != 0 {
            session.set_agent(true);
        }
        session.connect();
        session
    }

    /// As `ServerState::supported_mouse_modes`.
    fn supported_mouse_modes(&self) -> u32 {
        let agent_moves_pointer = self.config & config::AGENT_MOUSE != 0 && self.agent.is_some();
        if self.tablet || agent_moves_pointer {
            mouse_mode::SERVER | mouse_mode::CLIENT
        } else {
            mouse_mode::SERVER
        }
    }

    /// A client connects: a new session and its main channel
    /// (`ServerState::begin_session`, then `MainChannel::start`).
    fn connect(&mut self) {
        self.sessions += 1;
        self.router = ClientMessages::default();
        let caps = {
            let mut caps = Vec::new();
            if self.config & config::NAME_AND_UUID != 0 {
                caps.push(main_cap::NAME_AND_UUID);
            }
            if self.config & config::AGENT_CONNECTED_TOKENS != 0 {
                caps.push(main_cap::AGENT_CONNECTED_TOKENS);
            }
            Caps::with(&caps)
        };
        let named = self.config & config::NAME != 0;
        let intro = SessionIntro {
            session_id: self.sessions,
            display_channels: 1,
            supported_mouse_modes: self.supported_mouse_modes(),
            current_mouse_mode: self.mouse_mode,
            multi_media_time: self.now.saturating_duration_since(self.epoch).as_millis() as u32,
            agent_connected: self.agent.is_some(),
            name: named.then_some("fuzz"),
            uuid: named.then_some([0x5a; 16]),
        };
        let base = ChannelBase::new(self.header, self.now);
        let main = MainChannel::start(base, &caps, Some(&intro), self.now);
        self.client = Some(Client {
            main,
            view: ClientView::new(self.header),
            welcomed: false,
            asked_channels: false,
            agent_payloads: 0,
            tokens_returned: 0,
        });
        // The welcome, checked against the session as it was.
        self.check_client_output();
    }

    /// The client's main channel closed (`ServerState::close_session`).
    fn disconnect(&mut self) {
        self.check_client_output();
        self.client = None;
        if let Some(agent) = &mut self.agent {
            agent.client_gone();
            self.tokens = TokenModel::default();
        }
        self.pump();
        self.mouse_mode = mouse_mode::SERVER;
    }

    /// As `ServerState::set_agent`.
    fn set_agent(&mut self, attach: bool) {
        let was = match self.agent.take() {
            Some(old) => {
                old.detach();
                true
            }
            None => false,
        };
        assert!(!self.device.lock().connected, "a detached device still in use");
        if attach {
            self.device = Device::default();
            self.guest_payloads.clear();
            self.guest_stream = GuestStream::default();
            self.agent = Some(AgentLink::new(Box::new(self.device.clone())));
            assert!(self.device.lock().connected, "an attached device not told");
        }
        self.tokens = TokenModel::default();
        self.router = ClientMessages::default();
        match (was, attach) {
            (_, true) => {
                if let Some(client) = &mut self.client {
                    client.main.send_agent_connected();
                }
                self.update_mouse_modes();
                self.pump();
            }
            (true, false) => {
                if let Some(client) = &mut self.client {
                    client.main.send_agent_disconnected();
                }
                self.update_mouse_modes();
            }
            (false, false) => {}
        }
    }

    /// As `ServerState::update_mouse_modes`.
    fn update_mouse_modes(&mut self) {
        let supported = self.supported_mouse_modes();
        if supported & self.mouse_mode == 0 {
            self.mouse_mode = mouse_mode::SERVER;
        }
        let current = self.mouse_mode;
        if let Some(client) = &mut self.client {
            client.main.send_mouse_mode(supported, current);
        }
    }

    /// As `ServerState::mouse_mode_request`.
    fn mouse_mode_request(&mut self, mode: u32) -> Option<u32> {
        let new = match mode {
            mouse_mode::CLIENT if self.supported_mouse_modes() & mouse_mode::CLIENT != 0 => {
                mouse_mode::CLIENT
            }
            mouse_mode::SERVER => mouse_mode::SERVER,
            _ => return None,
        };
        if new == self.mouse_mode {
            return None;
        }
        self.mouse_mode = new;
        Some(new)
    }

    /// As `ServerState::agent_pump` with the wakeups a bounded pump queues
    /// run at once.
    fn pump(&mut self) {
        let Some(agent) = &mut self.agent else { return };
        loop {
            let backlog = self.client.as_ref().map_or(0, |c| c.main.base.out.len());
            let pumped = agent.pump_with(MAX_CHUNKS_PER_PUMP, backlog < AGENT_BACKLOG_LIMIT);
            if let Some(client) = &mut self.client {
                for data in &pumped.to_client {
                    client.main.send_agent_data(data);
                }
                if pumped.tokens > 0 {
                    client.main.send_agent_tokens(pumped.tokens);
                }
            }
            if !pumped.more {
                break;
            }
        }
    }

    fn client_message(&mut self, msg_type: u16, body: &[u8]) {
        let Some(client) = &mut self.client else {
            return;
        };
        // As the server: a client that does not read its replies is not read either.
        if client.main.base.out.len() >= OUTPUT_PAUSE_BYTES {
            return;
        }
        if body.len() > MAX_MAIN_MESSAGE {
            return self.disconnect();
        }
        let frame = Frame {
            msg_type,
            body: body.to_vec(),
        };
        let keep = match client.main.handle(&frame, self.now) {
            Err(_) | Ok(Some(MainEvent::Disconnect)) => false,
            Ok(None) => true,
            // No migration is under way: these change nothing.
            Ok(Some(MainEvent::MigrateConnected { .. } | MainEvent::MigrateEnd)) => true,
            // Not migrating in: the server declines seamless migration.
            Ok(Some(MainEvent::DstDoSeamless(_))) => {
                client.main.send_dst_seamless(false);
                true
            }
            Ok(Some(MainEvent::AttachChannels)) => {
                assert!(client.main.attached);
                client.asked_channels = true;
                client
                    .main
                    .send_channels_list(vec![(1, 0), (2, 0), (3, 0), (4, 0)]);
                true
            }
            Ok(Some(MainEvent::MouseModeRequest(mode))) => {
                assert_eq!(msg_type, client_type::MOUSE_MODE_REQUEST);
                assert_eq!(mode, le16(body, 0), "the mode asked for");
                if let Some(current) = self.mouse_mode_request(u32::from(mode)) {
                    let supported = self.supported_mouse_modes();
                    if let Some(client) = &mut self.client {
                        client.main.send_mouse_mode(supported, current);
                    }
                }
                true
            }
            Ok(Some(MainEvent::AgentStart(tokens))) => {
                assert_eq!(tokens, le32(body, 0));
                if let Some(agent) = &mut self.agent {
                    agent.client_start(tokens);
                    self.tokens = TokenModel {
                        started: true,
                        tokens,
                    };
                }
                self.pump();
                true
            }
            Ok(Some(MainEvent::AgentToken(tokens))) => {
                assert_eq!(tokens, le32(body, 0));
                if let Some(agent) = &mut self.agent {
                    agent.client_tokens(tokens);
                    self.tokens.tokens = self.tokens.tokens.saturating_add(tokens);
                }
                self.pump();
                true
            }
            Ok(Some(MainEvent::AgentData(data))) => {
                assert_eq!(data, body, "agent data changed by the decoder");
                assert!(data.len() <= MAX_AGENT_DATA + 64);
                let keep = self.agent_data_from_client(&data);
                self.pump();
                keep
            }
        };
        if !keep {
            self.disconnect();
        }
    }

    /// As `ServerState::agent_data_from_client`.
    fn agent_data_from_client(&mut self, data: &[u8]) -> bool {
        let Some(agent) = &mut self.agent else {
            return true;
        };
        if let Some(client) = &mut self.client {
            client.agent_payloads += 1;
        }
        match self.router.route(data) {
            Ok(Route::Forward) => {
                if !agent.queue_from_client(data) {
                    return false;
                }
            }
            Ok(Route::Held) => agent.return_token(),
            Ok(Route::MonitorsConfig(body)) => {
                agent.return_token();
                self.client_monitors_config(&body);
            }
            Err(_) => return false,
        }
        true
    }

    /// As `ServerState::client_monitors_config`, with displays that all take
    /// such requests or none.
    fn client_monitors_config(&mut self, body: &[u8]) {
        let Ok(config) = MonitorsConfig::decode(body) else {
            return;
        };
        if self.config & config::DISPLAYS_TAKE_MONITORS != 0 {
            return;
        }
        let Some(agent) = &mut self.agent else { return };
        let monitors = ClientMonitors::from_wire(&config);
        let mut data = Vec::new();
        monitors.to_wire(false).encode(&mut data);
        let mut message = Vec::new();
        MessageHeader::encode_message(message_type::MONITORS_CONFIG, &data, &mut message);
        agent.queue_monitors_config(&message);
    }

    fn host(&mut self, a: u8, cursor: &mut Cursor<'_>) {
        match a {
            0..=7 => {
                let mut d = self.device.lock();
                d.room = d.room.saturating_add(action::ROOM[usize::from(a)]);
            }
            action::GUEST_BYTES => {
                let n = cursor.byte().unwrap_or(0);
                self.guest_writes(cursor.bytes(usize::from(n)));
            }
            action::GUEST_CHUNK => {
                let port = if cursor.byte().unwrap_or(0) & 1 != 0 {
                    PORT_CLIENT
                } else {
                    PORT_SERVER
                };
                let n = cursor.byte().unwrap_or(0);
                let mut chunk = Vec::new();
                ChunkHeader::encode_chunk(port, cursor.bytes(usize::from(n)), &mut chunk);
                self.guest_writes(&chunk);
            }
            action::WAKEUP => self.pump(),
            action::DRAIN => {
                self.check_client_output();
                if let Some(client) = &mut self.client {
                    client.view.drain(&mut client.main.base.out);
                    // As `ServerState::pump`: a reader held by the backlog resumes.
                    if self.agent.as_ref().is_some_and(|a| a.is_held()) {
                        self.pump();
                    }
                }
            }
            action::TOGGLE_AGENT => self.set_agent(self.agent.is_none()),
            action::TOGGLE_CLIENT => match self.client {
                Some(_) => self.disconnect(),
                None => self.connect(),
            },
            action::TOGGLE_TABLET => {
                self.tablet = !self.tablet;
                self.update_mouse_modes();
            }
            action::AGENT_POINTER => {
                let (x, y) = (cursor.byte().unwrap_or(0), cursor.byte().unwrap_or(0));
                if let Some(agent) = &mut self.agent {
                    agent.mouse_state(MouseState {
                        x: x.into(),
                        y: y.into(),
                        buttons: 0,
                        display_id: 0,
                    });
                }
                self.pump();
            }
            _ => {}
        }
    }

    fn guest_writes(&mut self, bytes: &[u8]) {
        self.device.lock().from_guest.extend(bytes);
        let payloads = self.guest_stream.feed(bytes);
        self.guest_payloads.extend(payloads);
    }

    /// Checks what the client was sent since the last check.
    fn check_client_output(&mut self) {
        let supported = self.supported_mouse_modes();
        let (mouse_mode, agent) = (self.mouse_mode, self.agent.is_some());
        let tokens_cap = self.config & config::AGENT_CONNECTED_TOKENS != 0;
        let Some(client) = &mut self.client else {
            return;
        };
        let frames = client.view.frames(&client.main.base.out);
        let mut frames = frames.iter().peekable();
        if !client.welcomed {
            client.welcomed = true;
            let init = frames.next().expect("INIT");
            assert_eq!(init.msg_type, server_type::INIT, "the first message");
            assert_eq!(init.body.len(), 32);
            assert_eq!(le32(&init.body, 0), self.sessions, "session id");
            assert_eq!(le32(&init.body, 8), supported, "supported mouse modes");
            assert_eq!(le32(&init.body, 12), mouse_mode, "current mouse mode");
            assert_eq!(le32(&init.body, 16), u32::from(agent), "agent connected");
            assert_eq!(le32(&init.body, 20), AGENT_TOKENS);
            if self.config & (config::NAME_AND_UUID | config::NAME) == config::NAME_AND_UUID | config::NAME {
                let name = frames.next().expect("NAME");
                assert_eq!(name.msg_type, server_type::NAME);
                let uuid = frames.next().expect("UUID");
                assert_eq!(
                    (uuid.msg_type, uuid.body.as_slice()),
                    (server_type::UUID, &[0x5a; 16][..])
                );
            }
            for _ in 0..3 {
                let ping = frames.next().expect("a net-test ping");
                assert_eq!(ping.msg_type, base_type::PING);
            }
        }
        for frame in frames {
            let body = frame.body.as_slice();
            match frame.msg_type {
                server_type::CHANNELS_LIST => {
                    assert!(client.asked_channels, "channel list before ATTACH_CHANNELS");
                }
                server_type::MOUSE_MODE => {
                    assert_eq!(body.len(), 4);
                    let (sent_supported, current) = (u32::from(le16(body, 0)), u32::from(le16(body, 2)));
                    assert!(
                        current == mouse_mode::SERVER || current == mouse_mode::CLIENT,
                        "mouse mode {current}"
                    );
                    assert!(
                        sent_supported & current != 0,
                        "mouse mode {current} not among {sent_supported}"
                    );
                    assert_eq!(
                        (sent_supported, current),
                        (supported, mouse_mode),
                        "mouse modes sent"
                    );
                }
                server_type::AGENT_CONNECTED => {
                    assert!(!tokens_cap, "AGENT_CONNECTED to a client with tokens")
                }
                server_type::AGENT_CONNECTED_TOKENS => {
                    assert!(
                        tokens_cap,
                        "AGENT_CONNECTED_TOKENS to a client without the capability"
                    );
                    assert_eq!(le32(body, 0), AGENT_TOKENS);
                }
                server_type::AGENT_DISCONNECTED => {}
                // The answer to a client's MIGRATE_DST_DO_SEAMLESS: seamless
                // migration is not offered.
                server_type::MIGRATE_DST_SEAMLESS_NACK => assert!(body.is_empty()),
                server_type::AGENT_DATA => {
                    assert!(self.tokens.started, "agent data before AGENT_START");
                    assert!(self.tokens.tokens > 0, "agent data beyond the client's tokens");
                    self.tokens.tokens -= 1;
                    assert!(body.len() <= MAX_DATA_SIZE);
                    // Unchanged and in order; payloads read while no client
                    // had started are dropped, so some may be skipped.
                    let at = self
                        .guest_payloads
                        .iter()
                        .position(|p| p == body)
                        .expect("agent data the guest did not write");
                    self.guest_payloads.drain(..=at);
                }
                server_type::AGENT_TOKEN => {
                    client.tokens_returned += u64::from(le32(body, 0));
                    assert!(
                        client.tokens_returned <= client.agent_payloads,
                        "{} tokens returned for {} payloads",
                        client.tokens_returned,
                        client.agent_payloads
                    );
                }
                other => panic!("unexpected main channel message {other}"),
            }
        }
    }

    /// The invariants that hold after every step.
    fn check(&mut self) {
        self.check_client_output();
        if let Some(client) = &self.client {
            let backlog = client.main.base.out.len();
            assert!(backlog <= MAX_MAIN_BACKLOG, "{backlog} bytes queued on main");
        }
        if let Some(agent) = &self.agent {
            let (chunks, bytes) = agent.queued_to_device();
            assert!(
                chunks <= MAX_QUEUED_CHUNKS && bytes <= MAX_QUEUED_BYTES,
                "{chunks} chunks ({bytes} bytes) wait for the agent's device"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::InputBuilder;

    fn message(kind: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MessageHeader::encode_message(kind, data, &mut out);
        out
    }

    #[test]
    fn a_session_with_an_agent_runs_clean() {
        let mut chunk = Vec::new();
        ChunkHeader::encode_chunk(PORT_CLIENT, b"hello", &mut chunk);
        let input = InputBuilder::new(config::AGENT | config::MINI_HEADER | config::AGENT_CONNECTED_TOKENS)
            .host(7, &[])
            .client(client_type::AGENT_START, &10u32.to_le_bytes())
            .client(
                client_type::AGENT_DATA,
                &message(message_type::CLIPBOARD, b"clip"),
            )
            .host(action::GUEST_BYTES, &[chunk.len() as u8])
            .build();
        let mut input = input;
        input.extend(&chunk);
        main_sequence(&input);
    }
}
