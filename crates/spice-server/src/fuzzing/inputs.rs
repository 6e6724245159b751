//! The inputs channel driven by client messages: [`inputs_sequence`].

use std::time::Instant;

use spice_proto::msg::base::BaseClientMessage;
use spice_proto::msg::inputs::{scancode_bytes, server_type, InputsClientMessage, MOTION_ACK_BUNCH};
use spice_proto::{Frame, HeaderKind};

use super::{le16, ClientView, Cursor, Grammar, Step};
use crate::channel::inputs::{InputEvent, InputsChannel};
use crate::channel::ChannelBase;
use crate::server::keys::HeldKeys;
use crate::vdi::{Leds, MouseButtons};

/// Bits of the configuration byte of [`inputs_sequence`].
pub mod config {
    /// Mini headers (else full ones).
    pub const MINI_HEADER: u8 = 1 << 0;
    /// Shifted right by one: the keyboard's LEDs when the channel opens.
    pub const LEDS: u8 = 0b1110;
}

/// Host actions of [`inputs_sequence`] (`0x80 | action`).
pub mod action {
    /// The guest's LEDs change: one byte follows, the LEDs (low three bits).
    pub const LEDS: u8 = 0;
    /// The client's socket takes everything queued.
    pub const DRAIN: u8 = 1;
    /// The channel closes if open (held keys are released), else the
    /// client links a new one.
    pub const TOGGLE_CHANNEL: u8 = 2;
}

/// As the link stage's `max_client_message(Inputs)`.
const MAX_INPUTS_MESSAGE: usize = 4 * 1024;

/// The inputs channel driven by client messages (configuration byte:
/// [`config`]; host actions: [`action`]), as the server's dispatch drives
/// it, keys held down tracked for release when it closes.
///
/// Invariants: the channel sends INIT first with the keyboard's LEDs, then
/// only the LEDs the host set and one motion ACK per [`MOTION_ACK_BUNCH`]
/// pointer messages; each message gives exactly the events its content
/// says (a key code's bytes up to the first zero, the raw scancodes, the
/// LEDs' low three bits, pointer fields unchanged), and a decode error or
/// `DISCONNECTING` closes the channel. When it closes, the bytes that
/// release the held keys are break codes that leave no key down and no
/// sequence half-read as the guest's keyboard reads the whole stream, and
/// a second release sends nothing.
pub fn inputs_sequence(data: &[u8]) {
    let Some((&config, steps)) = data.split_first() else {
        return;
    };
    let header = if config & config::MINI_HEADER != 0 {
        HeaderKind::Mini
    } else {
        HeaderKind::Full
    };
    let mut run = Inputs {
        header,
        now: Instant::now(),
        channel: None,
        held: HeldKeys::default(),
        keyboard: GuestKeyboard::default(),
    };
    run.open(Leds((config & config::LEDS) >> 1));
    let mut cursor = Cursor::new(steps);
    while let Some(step) = cursor.step(Grammar::Messages) {
        match step {
            Step::Client { msg_type, body } => run.client_message(msg_type, body),
            Step::Wait(d) => run.now += d,
            Step::Host(action::LEDS) => {
                let leds = Leds(cursor.byte().unwrap_or(0) & 7);
                if let Some(open) = &mut run.channel {
                    open.channel.send_leds(leds);
                    open.leds_sent.push(leds);
                }
            }
            Step::Host(action::DRAIN) => {
                run.check_output();
                if let Some(open) = &mut run.channel {
                    open.view.drain(&mut open.channel.base.out);
                }
            }
            Step::Host(action::TOGGLE_CHANNEL) => match run.channel {
                Some(_) => run.close(),
                None => run.open(Leds::default()),
            },
            Step::Host(_) | Step::AgentToken(_) | Step::AgentStart(_) => {}
        }
        run.check_output();
    }
}

#[derive(Debug)]
struct Open {
    channel: InputsChannel,
    view: ClientView,
    /// INIT has been checked, with these LEDs.
    init: Option<Leds>,
    /// LEDs the host set, not yet seen by the client.
    leds_sent: Vec<Leds>,
    /// Pointer messages handled, and motion ACKs the client saw.
    motions: u32,
    acks: u32,
}

#[derive(Debug)]
struct Inputs {
    header: HeaderKind,
    now: Instant,
    channel: Option<Open>,
    /// The server's tracker of held keys (one for the server, across channels).
    held: HeldKeys,
    /// What the guest's keyboard makes of every byte it was given.
    keyboard: GuestKeyboard,
}

impl Inputs {
    fn open(&mut self, leds: Leds) {
        let base = ChannelBase::new(self.header, self.now);
        self.channel = Some(Open {
            channel: InputsChannel::start(base, leds),
            view: ClientView::new(self.header),
            init: None,
            leds_sent: vec![leds],
            motions: 0,
            acks: 0,
        });
    }

    /// As the server closing an inputs channel: the held keys are released.
    fn close(&mut self) {
        self.check_output();
        self.channel = None;
        let releases = self.held.release_all();
        let mut at = releases.iter().peekable();
        while let Some(&b) = at.next() {
            if b == 0xe0 {
                let code = at.next().copied().expect("a prefix ends the release");
                assert!(code & 0x80 != 0, "release {code:#x} is a make code");
            } else {
                assert!(
                    b & 0x80 != 0 && b != 0xe1 && b != 0xe2,
                    "release {b:#x} is a make code"
                );
            }
        }
        for &b in &releases {
            self.keyboard.key(b);
        }
        assert_eq!(
            self.keyboard.down(),
            Vec::<u16>::new(),
            "keys still down after releasing {releases:x?}"
        );
        assert_eq!(
            self.keyboard.prefix, 0,
            "the keyboard waits for the rest of a sequence"
        );
        assert!(self.held.release_all().is_empty(), "keys released twice");
    }

    fn client_message(&mut self, msg_type: u16, body: &[u8]) {
        let Some(open) = &mut self.channel else {
            return;
        };
        if body.len() > MAX_INPUTS_MESSAGE {
            return self.close();
        }
        let frame = Frame {
            msg_type,
            body: body.to_vec(),
        };
        let decoded = InputsClientMessage::decode(msg_type, body);
        let events = match open.channel.handle(&frame, self.now) {
            Ok(events) => events,
            Err(e) => {
                assert_eq!(decoded, Err(e), "the channel and the decoder disagree");
                return self.close();
            }
        };
        let decoded = decoded.expect("the channel took a message the decoder refuses");
        let expected: Vec<InputEvent> = match decoded {
            InputsClientMessage::Base(BaseClientMessage::Disconnecting { .. }) => {
                vec![InputEvent::Disconnect]
            }
            InputsClientMessage::Base(_) | InputsClientMessage::Unknown(_) => vec![],
            InputsClientMessage::KeyDown(code) | InputsClientMessage::KeyUp(code) => {
                scancode_bytes(code).map(InputEvent::Scancode).collect()
            }
            InputsClientMessage::KeyScancode(bytes) => bytes.into_iter().map(InputEvent::Scancode).collect(),
            InputsClientMessage::KeyModifiers(m) => vec![InputEvent::ClientLeds(Leds((m & 7) as u8))],
            InputsClientMessage::MouseMotion { dx, dy, buttons } => {
                open.motions += 1;
                vec![InputEvent::Motion {
                    dx,
                    dy,
                    buttons: MouseButtons(buttons),
                }]
            }
            InputsClientMessage::MousePosition {
                x,
                y,
                buttons,
                display_id,
            } => {
                open.motions += 1;
                vec![InputEvent::Position {
                    x,
                    y,
                    buttons: MouseButtons(buttons),
                    display: display_id,
                }]
            }
            InputsClientMessage::MousePress { button, buttons } => vec![InputEvent::Press {
                button,
                buttons: MouseButtons(buttons),
            }],
            InputsClientMessage::MouseRelease { button, buttons } => vec![InputEvent::Release {
                button,
                buttons: MouseButtons(buttons),
            }],
        };
        assert_eq!(events, expected, "events of message {msg_type}");
        // As `ServerState::input`: every scancode goes to the keyboard and is tracked.
        let mut closes = false;
        for event in events {
            match event {
                InputEvent::Scancode(b) => {
                    self.held.track(b);
                    self.keyboard.key(b);
                }
                InputEvent::Disconnect => closes = true,
                _ => {}
            }
        }
        if closes {
            self.close();
        }
    }

    fn check_output(&mut self) {
        let Some(open) = &mut self.channel else {
            return;
        };
        for frame in open.view.frames(&open.channel.base.out) {
            match frame.msg_type {
                server_type::INIT | server_type::KEY_MODIFIERS => {
                    assert_eq!(
                        open.init.is_none(),
                        frame.msg_type == server_type::INIT,
                        "INIT comes first and once"
                    );
                    assert_eq!(frame.body.len(), 2);
                    let leds = open
                        .leds_sent
                        .first()
                        .copied()
                        .expect("LEDs the host did not set");
                    open.leds_sent.remove(0);
                    assert_eq!(le16(&frame.body, 0), u16::from(leds.0), "LEDs sent");
                    open.init = Some(leds);
                }
                server_type::MOUSE_MOTION_ACK => {
                    assert!(frame.body.is_empty());
                    open.acks += 1;
                }
                other => panic!("unexpected inputs channel message {other}"),
            }
        }
        assert!(open.leds_sent.is_empty(), "LEDs the client was not sent");
        assert_eq!(open.acks, open.motions / MOTION_ACK_BUNCH, "motion ACKs");
    }
}

/// A set-1 (XT) keyboard as the server describes what it feeds one
/// (`server/keys.rs`, the C server's `kbd_push_scan`): `0xE0` makes the next
/// code an extended key, `0xE1` and `0xE2` make it one that holds nothing
/// (Pause), bit 7 marks a release, and codes 0x60..=0x62, whose releases
/// would be the prefixes, name no key. Kept apart from the server's tracker: it
/// reads every byte the keyboard is given, the releases too.
#[derive(Debug, Clone)]
struct GuestKeyboard {
    down: [bool; 256],
    /// The prefix that applies to the next byte, if any.
    prefix: u8,
}

impl Default for GuestKeyboard {
    fn default() -> Self {
        Self {
            down: [false; 256],
            prefix: 0,
        }
    }
}

impl GuestKeyboard {
    fn key(&mut self, b: u8) {
        if (0xe0..=0xe2).contains(&b) {
            self.prefix = b;
            return;
        }
        let code = match std::mem::take(&mut self.prefix) {
            0 => usize::from(b & 0x7f),
            0xe0 => usize::from(b & 0x7f) | 0x80,
            _ => return,
        };
        // No key has a make code whose break code is a prefix.
        if !(0x60..=0x62).contains(&(code & 0x7f)) {
            self.down[code] = b & 0x80 == 0;
        }
    }

    /// The keys held down: codes, `0x80` set for extended ones.
    fn down(&self) -> Vec<u16> {
        (0..256u16).filter(|&c| self.down[usize::from(c)]).collect()
    }
}
