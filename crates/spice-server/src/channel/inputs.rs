//! The inputs channel: keyboard, mouse and tablet events from the client.

use std::time::Instant;

use spice_proto::msg::inputs::{
    scancode_bytes, Init, InputsClientMessage, KeyModifiers, MouseMotionAck, MOTION_ACK_BUNCH,
};
use spice_proto::{DecodeError, Frame};

use super::{BaseOutcome, ChannelBase};
use crate::vdi::{Leds, MouseButtons};

/// An input event for the host's devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputEvent {
    /// One scancode byte for the keyboard.
    Scancode(u8),
    /// The client's lock state, to be synced into the guest.
    ClientLeds(Leds),
    /// Relative motion (server mouse mode).
    Motion { dx: i32, dy: i32, buttons: MouseButtons },
    /// Absolute position (client mouse mode).
    Position {
        x: u32,
        y: u32,
        buttons: MouseButtons,
        display: u8,
    },
    /// A button went down; `button` is `SPICE_MOUSE_BUTTON_*`.
    Press { button: u8, buttons: MouseButtons },
    /// A button went up.
    Release { button: u8, buttons: MouseButtons },
    /// The client is leaving.
    Disconnect,
}

/// `SPICE_MOUSE_BUTTON_UP`.
pub(crate) const BUTTON_UP: u8 = 4;
/// `SPICE_MOUSE_BUTTON_DOWN`.
pub(crate) const BUTTON_DOWN: u8 = 5;

#[derive(Debug)]
pub(crate) struct InputsChannel {
    pub(crate) base: ChannelBase,
    motions: u32,
}

impl InputsChannel {
    /// Sends INIT with the keyboard's current LEDs.
    pub(crate) fn start(mut base: ChannelBase, leds: Leds) -> Self {
        base.send(&Init {
            modifiers: leds.0.into(),
        });
        Self { base, motions: 0 }
    }

    /// Tells the client the guest's LEDs changed.
    pub(crate) fn send_leds(&mut self, leds: Leds) {
        self.base.send(&KeyModifiers {
            modifiers: leds.0.into(),
        });
    }

    /// Counts a motion message and acks every [`MOTION_ACK_BUNCH`] of them, so the
    /// client keeps sending.
    fn count_motion(&mut self) {
        self.motions += 1;
        if self.motions % MOTION_ACK_BUNCH == 0 {
            self.base.send(&MouseMotionAck);
        }
    }

    pub(crate) fn handle(&mut self, frame: &Frame, now: Instant) -> Result<Vec<InputEvent>, DecodeError> {
        let mut events = Vec::new();
        match InputsClientMessage::decode(frame.msg_type, &frame.body)? {
            InputsClientMessage::Base(base) => {
                if self.base.handle_base(base, now) == BaseOutcome::Disconnect {
                    events.push(InputEvent::Disconnect);
                }
            }
            InputsClientMessage::KeyDown(code) | InputsClientMessage::KeyUp(code) => {
                events.extend(scancode_bytes(code).map(InputEvent::Scancode));
            }
            InputsClientMessage::KeyScancode(bytes) => {
                events.extend(bytes.into_iter().map(InputEvent::Scancode));
            }
            InputsClientMessage::KeyModifiers(modifiers) => {
                events.push(InputEvent::ClientLeds(Leds((modifiers & 0x7) as u8)));
            }
            InputsClientMessage::MouseMotion { dx, dy, buttons } => {
                self.count_motion();
                events.push(InputEvent::Motion {
                    dx,
                    dy,
                    buttons: MouseButtons(buttons),
                });
            }
            InputsClientMessage::MousePosition {
                x,
                y,
                buttons,
                display_id,
            } => {
                self.count_motion();
                events.push(InputEvent::Position {
                    x,
                    y,
                    buttons: MouseButtons(buttons),
                    display: display_id,
                });
            }
            InputsClientMessage::MousePress { button, buttons } => events.push(InputEvent::Press {
                button,
                buttons: MouseButtons(buttons),
            }),
            InputsClientMessage::MouseRelease { button, buttons } => events.push(InputEvent::Release {
                button,
                buttons: MouseButtons(buttons),
            }),
            InputsClientMessage::Unknown(t) => {
                tracing::debug!(msg_type = t, "ignoring unknown inputs message")
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spice_proto::msg::inputs::client_type;
    use spice_proto::{Deframer, HeaderKind};

    #[test]
    fn motion_is_acked_every_fourth_message() {
        let mut ch = InputsChannel::start(ChannelBase::new(HeaderKind::Mini, Instant::now()), Leds::NUM_LOCK);
        let mut body = Vec::new();
        spice_proto::wire::Writer::new(&mut body).i32(1).i32(-1).u16(0);
        for _ in 0..8 {
            let events = ch
                .handle(
                    &Frame {
                        msg_type: client_type::MOUSE_MOTION,
                        body: body.clone(),
                    },
                    Instant::now(),
                )
                .unwrap();
            assert!(matches!(events[..], [InputEvent::Motion { dx: 1, dy: -1, .. }]));
        }
        let mut d = Deframer::new(HeaderKind::Mini, 64);
        d.push(ch.base.out.pending());
        let types: Vec<u16> = std::iter::from_fn(|| d.next_frame().unwrap())
            .map(|f| f.msg_type)
            .collect();
        assert_eq!(types, [101, 111, 111]);
    }

    #[test]
    fn extended_key_becomes_two_scancodes() {
        let mut ch = InputsChannel::start(
            ChannelBase::new(HeaderKind::Mini, Instant::now()),
            Leds::default(),
        );
        let events = ch
            .handle(
                &Frame {
                    msg_type: client_type::KEY_DOWN,
                    body: 0x1DE0u32.to_le_bytes().to_vec(),
                },
                Instant::now(),
            )
            .unwrap();
        assert_eq!(events, [InputEvent::Scancode(0xE0), InputEvent::Scancode(0x1D)]);
    }
}
