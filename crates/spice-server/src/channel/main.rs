//! The main channel: session start, channel list, mouse mode.

use std::time::Instant;

use spice_proto::consts::main_cap;
use spice_proto::msg::main::{
    AgentConnected, AgentConnectedTokens, AgentData, AgentDisconnected, AgentToken, ChannelsList, Init,
    MainClientMessage, MouseMode, Name, Uuid,
};
use spice_proto::{Caps, DecodeError, Frame};

use super::{BaseOutcome, ChannelBase};

/// `REDS_AGENT_WINDOW_SIZE`: agent messages the client may send up front.
pub(crate) const AGENT_TOKENS: u32 = 10;

/// What the main channel needs the server to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MainEvent {
    /// The client takes agent data, `tokens` messages ahead.
    AgentStart(u32),
    /// Agent data from the client.
    AgentData(Vec<u8>),
    /// The client can take `tokens` more agent messages.
    AgentToken(u32),
    /// Send the channel list.
    AttachChannels,
    /// The client asks for a mouse mode.
    MouseModeRequest(u16),
    /// The client is leaving.
    Disconnect,
}

/// What the session tells a new main channel.
#[derive(Debug, Clone)]
pub(crate) struct SessionIntro<'a> {
    pub(crate) session_id: u32,
    pub(crate) display_channels: u32,
    pub(crate) supported_mouse_modes: u32,
    pub(crate) current_mouse_mode: u32,
    pub(crate) multi_media_time: u32,
    pub(crate) agent_connected: bool,
    pub(crate) name: Option<&'a str>,
    pub(crate) uuid: Option<[u8; 16]>,
}

#[derive(Debug)]
pub(crate) struct MainChannel {
    pub(crate) base: ChannelBase,
    /// The client asked for the channel list; channels added later are announced.
    pub(crate) attached: bool,
    /// The client understands `AGENT_CONNECTED_TOKENS`.
    agent_tokens_cap: bool,
}

impl MainChannel {
    /// Sends INIT (and NAME, UUID when the client understands them), then a PING.
    pub(crate) fn start(
        mut base: ChannelBase,
        client_caps: &Caps,
        intro: &SessionIntro<'_>,
        now: Instant,
    ) -> Self {
        base.send(&Init {
            session_id: intro.session_id,
            display_channels_hint: intro.display_channels,
            supported_mouse_modes: intro.supported_mouse_modes,
            current_mouse_mode: intro.current_mouse_mode,
            agent_connected: u32::from(intro.agent_connected),
            agent_tokens: AGENT_TOKENS,
            multi_media_time: intro.multi_media_time,
            ram_hint: 0,
        });
        if client_caps.has(main_cap::NAME_AND_UUID) {
            if let Some(name) = intro.name {
                base.send(&Name(name.to_owned()));
            }
            if let Some(uuid) = intro.uuid {
                base.send(&Uuid(uuid));
            }
        }
        base.send_ping(now);
        Self {
            base,
            attached: false,
            agent_tokens_cap: client_caps.has(main_cap::AGENT_CONNECTED_TOKENS),
        }
    }

    pub(crate) fn handle(&mut self, frame: &Frame, now: Instant) -> Result<Option<MainEvent>, DecodeError> {
        Ok(match MainClientMessage::decode(frame.msg_type, &frame.body)? {
            MainClientMessage::Base(base) => match self.base.handle_base(base, now) {
                BaseOutcome::Disconnect => Some(MainEvent::Disconnect),
                BaseOutcome::Continue | BaseOutcome::WindowOpened => None,
            },
            MainClientMessage::AttachChannels => {
                self.attached = true;
                Some(MainEvent::AttachChannels)
            }
            MainClientMessage::MouseModeRequest { mode } => Some(MainEvent::MouseModeRequest(mode)),
            MainClientMessage::ClientInfo { cache_size } => {
                tracing::debug!(cache_size, "client info");
                None
            }
            MainClientMessage::AgentStart { tokens } => Some(MainEvent::AgentStart(tokens)),
            MainClientMessage::AgentData(data) => Some(MainEvent::AgentData(data)),
            MainClientMessage::AgentToken { tokens } => Some(MainEvent::AgentToken(tokens)),
            MainClientMessage::Migration(t) => {
                tracing::debug!(msg_type = t, "ignoring migration message");
                None
            }
            MainClientMessage::Unknown(t) => {
                tracing::debug!(msg_type = t, "ignoring unknown main message");
                None
            }
        })
    }

    pub(crate) fn send_channels_list(&mut self, channels: Vec<(u8, u8)>) {
        self.base.send(&ChannelsList(channels));
    }

    /// The agent attached: the client may start talking to it.
    pub(crate) fn send_agent_connected(&mut self) {
        if self.agent_tokens_cap {
            self.base.send(&AgentConnectedTokens(AGENT_TOKENS));
        } else {
            self.base.send(&AgentConnected);
        }
    }

    pub(crate) fn send_agent_disconnected(&mut self) {
        self.base.send(&AgentDisconnected { error_code: 0 });
    }

    pub(crate) fn send_agent_data(&mut self, data: &[u8]) {
        self.base.send(&AgentData(data));
    }

    pub(crate) fn send_agent_tokens(&mut self, tokens: u32) {
        self.base.send(&AgentToken(tokens));
    }

    pub(crate) fn send_mouse_mode(&mut self, supported: u32, current: u32) {
        self.base.send(&MouseMode {
            supported: supported as u16,
            current: current as u16,
        });
    }
}
