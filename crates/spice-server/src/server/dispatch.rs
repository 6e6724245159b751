//! Messages on linked channels, and input events routed to the host's devices.

use spice_proto::consts::mouse_mode;

use super::conn::{Channel, Conn, Phase};
use super::{channel_name, ServerState};
use crate::agent::client_messages::Route;
use crate::channel::inputs::{InputEvent, BUTTON_DOWN, BUTTON_UP};
use crate::channel::main::MainEvent;
use crate::channel::playback::PlaybackEvent;
use crate::channel::record::RecordEvent;
use crate::channel::spicevmc::VmcEvent;
use crate::vdi::Leds;

/// Scancodes of the lock keys, used to bring the guest's locks in line with the client's.
const LOCK_KEYS: [(Leds, u8); 3] = [
    (Leds::SCROLL_LOCK, 0x46),
    (Leds::NUM_LOCK, 0x45),
    (Leds::CAPS_LOCK, 0x3a),
];

impl ServerState {
    /// Frames and handles channel messages. Returns `false` to close the connection.
    pub(super) fn feed_channel(&mut self, id: u64, conn: &mut Conn, data: &[u8]) -> bool {
        let Phase::Linked { deframer, .. } = &mut conn.phase else {
            return false;
        };
        deframer.push(data);
        loop {
            let Phase::Linked {
                deframer, channel, ..
            } = &mut conn.phase
            else {
                return false;
            };
            let frame = match deframer.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return true,
                Err(e) => {
                    tracing::warn!(peer = ?conn.info.peer, conn = id, error = %e, "malformed message framing; closing channel");
                    return false;
                }
            };
            channel.base().received(&frame);
            let now = self.now();
            // With several clients, the agent serves the oldest (see `first_session`).
            let has_agent = self.serves_agent(id);
            let name = channel_name(conn.info.channel_type);
            tracing::trace!(
                channel = name,
                msg_type = frame.msg_type,
                len = frame.body.len(),
                "client message"
            );
            let keep = match channel {
                Channel::Main(main) => match main.handle(&frame, now) {
                    Ok(Some(MainEvent::AttachChannels)) => {
                        main.send_channels_list(self.channel_list());
                        true
                    }
                    Ok(Some(MainEvent::MouseModeRequest(mode))) => {
                        if let Some(current) = self.mouse_mode_request(u32::from(mode)) {
                            main.send_mouse_mode(self.supported_mouse_modes(), current);
                        }
                        true
                    }
                    Ok(Some(MainEvent::AgentStart(_) | MainEvent::AgentToken(_))) if !has_agent => {
                        tracing::debug!("agent flow control from a client the agent does not serve; ignored");
                        true
                    }
                    Ok(Some(MainEvent::AgentData(data))) if !has_agent => {
                        tracing::debug!(
                            len = data.len(),
                            "agent data from a client the agent does not serve; dropped"
                        );
                        true
                    }
                    Ok(Some(MainEvent::AgentStart(tokens))) => {
                        if let Some(agent) = &mut self.agent {
                            agent.client_start(tokens);
                        }
                        self.agent_pump(Some(main));
                        true
                    }
                    Ok(Some(MainEvent::AgentData(data))) => {
                        let keep = self.agent_data_from_client(&data);
                        self.agent_pump(Some(main));
                        keep
                    }
                    Ok(Some(MainEvent::AgentToken(tokens))) => {
                        if let Some(agent) = &mut self.agent {
                            agent.client_tokens(tokens);
                        }
                        self.agent_pump(Some(main));
                        true
                    }
                    Ok(Some(MainEvent::MigrateConnected { ok, seamless })) => {
                        self.migrate_client_connected(id, ok, seamless, main);
                        true
                    }
                    Ok(Some(MainEvent::DstDoSeamless(src_version))) => {
                        self.seamless_arrival(id, src_version, main);
                        true
                    }
                    Ok(Some(MainEvent::MigrateEnd)) => {
                        self.migration_arrived(id, main);
                        true
                    }
                    Ok(Some(MainEvent::Disconnect)) => false,
                    // Seamless migration, source side: main's state went
                    // out after every other channel moved (see
                    // `close_moved_main`).
                    Ok(None) => !self.client_moved(id, main),
                    Err(e) => self.malformed(name, &e),
                },
                Channel::Inputs(inputs) => match inputs.handle(&frame, now) {
                    Ok(events) => events.into_iter().all(|event| self.input(event)),
                    Err(e) => self.malformed(name, &e),
                },
                Channel::Playback(playback) => match playback.handle(&frame, now) {
                    Ok(Some(PlaybackEvent::Disconnect)) => false,
                    Ok(None) => true,
                    Err(e) => self.malformed(name, &e),
                },
                Channel::Record(record) => {
                    let conn = record.conn();
                    match record.handle(&frame, now) {
                        Ok(Some(RecordEvent::Samples(data))) => {
                            if let Some(handle) = &self.devices.record {
                                handle.shared.push_pcm(conn, data);
                            }
                            true
                        }
                        Ok(Some(RecordEvent::Disconnect)) => false,
                        Ok(None) => true,
                        Err(e) => self.malformed(name, &e),
                    }
                }
                Channel::Vmc(vmc, device) => match vmc.handle(&frame, now) {
                    Ok(Some(VmcEvent::Data)) => {
                        self.vmc.transfer(*device, vmc);
                        true
                    }
                    Ok(Some(VmcEvent::PortEvent(event))) => {
                        self.vmc.client_port_event(*device, event);
                        true
                    }
                    Ok(Some(VmcEvent::Disconnect)) => false,
                    Ok(None) => true,
                    Err(error) => {
                        tracing::warn!(channel = name, %error, "bad spicevmc data from the client; closing channel");
                        false
                    }
                },
            };
            if let (Channel::Main(main), true) = (channel, has_agent) {
                let low = main.is_low_bandwidth();
                self.set_low_bandwidth(low);
            }
            if !keep {
                return false;
            }
        }
    }

    /// One `MAIN_AGENT_DATA` payload: to the agent, or gathered when it is
    /// part of a monitors configuration for the displays. Returns `false`
    /// when the client's agent stream is broken or goes beyond its tokens
    /// (the main channel closes, as with the C server).
    fn agent_data_from_client(&mut self, data: &[u8]) -> bool {
        let Some(agent) = &mut self.agent else {
            tracing::debug!(len = data.len(), "agent data with no agent attached; dropped");
            return true;
        };
        match self.client_agent_messages.route(data) {
            Ok(Route::Forward) => {
                if !agent.queue_from_client(data) {
                    // Beyond its tokens. Dropping the payload alone would cut
                    // a message short in the agent's stream; the C server
                    // refuses the buffer and drops the connection.
                    return false;
                }
            }
            Ok(Route::Held) => agent.return_token(),
            Ok(Route::MonitorsConfig(body)) => {
                agent.return_token();
                self.client_monitors_config(&body);
            }
            Err(error) => {
                tracing::warn!(%error, "malformed agent data from the client; closing its main channel");
                return false;
            }
        }
        true
    }

    /// A client's monitors configuration: to the displays' devices if every
    /// one takes such requests (as the C server decides), else to the guest
    /// agent, in the form the agent checks (no physical sizes: spice-vdagentd
    /// refuses a message longer than its monitors).
    pub(super) fn client_monitors_config(&mut self, body: &[u8]) {
        let config = match spice_proto::agent::MonitorsConfig::decode(body) {
            Ok(config) => config,
            Err(error) => {
                tracing::warn!(%error, "malformed monitors configuration from the client; ignored");
                return;
            }
        };
        let monitors = crate::display::ClientMonitors::from_wire(&config);
        let displays: Vec<_> = self.devices.displays.values().collect();
        let devices_take =
            !displays.is_empty() && displays.iter().all(|d| d.shared.accepts_client_monitors());
        if devices_take {
            tracing::debug!(
                monitors = monitors.monitors.len(),
                "client monitors configuration to the displays"
            );
            for display in displays {
                if !display.shared.configure_client_monitors(&monitors) {
                    tracing::debug!("a display's device did not take the monitors configuration");
                }
            }
            return;
        }
        let Some(agent) = &mut self.agent else { return };
        tracing::debug!(
            monitors = monitors.monitors.len(),
            "client monitors configuration to the agent"
        );
        let mut data = Vec::new();
        monitors.to_wire(false).encode(&mut data);
        let mut message = Vec::new();
        spice_proto::agent::MessageHeader::encode_message(
            spice_proto::agent::message_type::MONITORS_CONFIG,
            &data,
            &mut message,
        );
        agent.queue_monitors_config(&message);
    }

    fn malformed(&self, channel: &str, error: &spice_proto::DecodeError) -> bool {
        tracing::warn!(channel, %error, "malformed client message; closing channel");
        false
    }

    /// In client mode with agent mouse, pointer events become the agent's
    /// `VD_AGENT_MOUSE_STATE`, as in the C server. Returns whether `event` was one.
    fn agent_pointer(&mut self, event: &InputEvent) -> bool {
        use spice_proto::agent::MouseState;
        let state = &mut self.agent_mouse;
        match *event {
            InputEvent::Position {
                x,
                y,
                buttons,
                display,
            } => {
                state.x = x;
                state.y = y;
                state.buttons = MouseState::buttons_from_protocol(buttons.0);
                state.display_id = display;
            }
            InputEvent::Press { button, buttons } => {
                state.buttons = MouseState::buttons_from_protocol(buttons.0)
                    | match button {
                        BUTTON_UP => MouseState::WHEEL_UP,
                        BUTTON_DOWN => MouseState::WHEEL_DOWN,
                        _ => 0,
                    };
            }
            InputEvent::Release { buttons, .. } => {
                state.buttons = MouseState::buttons_from_protocol(buttons.0);
            }
            _ => return false,
        }
        let state = *state;
        if let Some(agent) = &mut self.agent {
            agent.mouse_state(state);
        }
        self.agent_pump(None);
        true
    }

    /// Applies a mouse mode request; returns the new mode if it changed.
    fn mouse_mode_request(&mut self, mode: u32) -> Option<u32> {
        let new = match mode {
            mouse_mode::CLIENT if self.supported_mouse_modes() & mouse_mode::CLIENT != 0 => {
                mouse_mode::CLIENT
            }
            mouse_mode::CLIENT => {
                tracing::debug!("client mouse mode requested but no tablet is attached");
                return None;
            }
            mouse_mode::SERVER => mouse_mode::SERVER,
            other => {
                tracing::debug!(mode = other, "ignoring unknown mouse mode");
                return None;
            }
        };
        if new == self.mouse_mode {
            return None;
        }
        tracing::debug!(mode = new, "mouse mode changed");
        self.set_mouse_mode(new);
        Some(new)
    }

    /// Hands one input event to the host's devices. Returns `false` to close the channel.
    fn input(&mut self, event: InputEvent) -> bool {
        let client_mode = self.mouse_mode == mouse_mode::CLIENT;
        if client_mode && self.agent_moves_pointer() && self.agent_pointer(&event) {
            return true;
        }
        let devices = &mut self.devices;
        match event {
            InputEvent::Disconnect => return false,
            InputEvent::Scancode(byte) => {
                self.held_keys.track(byte);
                if let Some(k) = devices.keyboard.as_mut() {
                    k.push_scancode(byte);
                }
            }
            InputEvent::ClientLeds(client) => {
                if let Some(k) = devices.keyboard.as_mut() {
                    let guest = k.leds();
                    for (led, code) in LOCK_KEYS {
                        if guest.contains(led) != client.contains(led) {
                            k.push_scancode(code);
                            k.push_scancode(code | 0x80);
                        }
                    }
                }
            }
            InputEvent::Motion { dx, dy, buttons } => {
                if let (false, Some(m)) = (client_mode, devices.mouse.as_mut()) {
                    m.motion(dx, dy, 0, buttons);
                }
            }
            InputEvent::Position { x, y, buttons, .. } => {
                if let (true, Some(t)) = (client_mode, devices.tablet.as_mut()) {
                    t.position(
                        x.min(i32::MAX as u32) as i32,
                        y.min(i32::MAX as u32) as i32,
                        buttons,
                    );
                }
            }
            InputEvent::Press { button, buttons } => {
                let dz = match button {
                    BUTTON_UP => -1,
                    BUTTON_DOWN => 1,
                    _ => 0,
                };
                if client_mode {
                    if let Some(t) = devices.tablet.as_mut() {
                        if dz != 0 {
                            t.wheel(dz, buttons);
                        } else {
                            t.press(buttons);
                        }
                    }
                } else if let Some(m) = devices.mouse.as_mut() {
                    if dz != 0 {
                        m.motion(0, 0, dz, buttons);
                    } else {
                        m.press(buttons);
                    }
                }
            }
            InputEvent::Release { buttons, .. } => {
                if client_mode {
                    if let Some(t) = devices.tablet.as_mut() {
                        t.buttons(buttons);
                    }
                } else if let Some(m) = devices.mouse.as_mut() {
                    m.buttons(buttons);
                }
            }
        }
        true
    }
}
