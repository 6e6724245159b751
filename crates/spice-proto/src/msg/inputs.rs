//! Inputs channel messages (`InputsChannel` in `spice.proto`).

use super::base::BaseClientMessage;
use super::ServerMessage;
use crate::error::DecodeError;
use crate::wire::{Reader, Writer};

/// Server message types of the inputs channel.
pub mod server_type {
    /// `SPICE_MSG_INPUTS_INIT`.
    pub const INIT: u16 = 101;
    /// `SPICE_MSG_INPUTS_KEY_MODIFIERS`.
    pub const KEY_MODIFIERS: u16 = 102;
    /// `SPICE_MSG_INPUTS_MOUSE_MOTION_ACK`.
    pub const MOUSE_MOTION_ACK: u16 = 111;
}

/// Client message types of the inputs channel.
pub mod client_type {
    /// `SPICE_MSGC_INPUTS_KEY_DOWN`.
    pub const KEY_DOWN: u16 = 101;
    /// `SPICE_MSGC_INPUTS_KEY_UP`.
    pub const KEY_UP: u16 = 102;
    /// `SPICE_MSGC_INPUTS_KEY_MODIFIERS`.
    pub const KEY_MODIFIERS: u16 = 103;
    /// `SPICE_MSGC_INPUTS_KEY_SCANCODE`.
    pub const KEY_SCANCODE: u16 = 104;
    /// `SPICE_MSGC_INPUTS_MOUSE_MOTION`.
    pub const MOUSE_MOTION: u16 = 111;
    /// `SPICE_MSGC_INPUTS_MOUSE_POSITION`.
    pub const MOUSE_POSITION: u16 = 112;
    /// `SPICE_MSGC_INPUTS_MOUSE_PRESS`.
    pub const MOUSE_PRESS: u16 = 113;
    /// `SPICE_MSGC_INPUTS_MOUSE_RELEASE`.
    pub const MOUSE_RELEASE: u16 = 114;
}

/// `SPICE_INPUT_MOTION_ACK_BUNCH`: the server acks every this many motion messages.
pub const MOTION_ACK_BUNCH: u32 = 4;
/// Most scancode bytes accepted in one `KEY_SCANCODE` message.
pub const MAX_SCANCODE_BYTES: usize = 256;

/// `SPICE_MSG_INPUTS_INIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Init {
    /// Keyboard lock state (`SPICE_KEYBOARD_MODIFIER_FLAGS_*`).
    pub modifiers: u16,
}

impl ServerMessage for Init {
    const TYPE: u16 = server_type::INIT;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u16(self.modifiers);
    }
}

/// `SPICE_MSG_INPUTS_KEY_MODIFIERS`: the guest's lock LEDs changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyModifiers {
    /// Keyboard lock state (`SPICE_KEYBOARD_MODIFIER_FLAGS_*`).
    pub modifiers: u16,
}

impl ServerMessage for KeyModifiers {
    const TYPE: u16 = server_type::KEY_MODIFIERS;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).u16(self.modifiers);
    }
}

/// `SPICE_MSG_INPUTS_MOUSE_MOTION_ACK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MouseMotionAck;

impl ServerMessage for MouseMotionAck {
    const TYPE: u16 = server_type::MOUSE_MOTION_ACK;
    fn encode_body(&self, _out: &mut Vec<u8>) {}
}

/// Messages a client sends on the inputs channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputsClientMessage {
    /// A message common to all channels.
    Base(BaseClientMessage),
    /// `SPICE_MSGC_INPUTS_KEY_DOWN`: up to four scancode bytes, LSB first, 0-terminated.
    KeyDown(u32),
    /// `SPICE_MSGC_INPUTS_KEY_UP`: as `KeyDown`, with release codes.
    KeyUp(u32),
    /// `SPICE_MSGC_INPUTS_KEY_MODIFIERS`: the client's lock state.
    KeyModifiers(u16),
    /// `SPICE_MSGC_INPUTS_KEY_SCANCODE`: raw scancode bytes.
    KeyScancode(Vec<u8>),
    /// `SPICE_MSGC_INPUTS_MOUSE_MOTION`.
    MouseMotion {
        /// Relative motion.
        dx: i32,
        /// Relative motion.
        dy: i32,
        /// Button mask (`SPICE_MOUSE_BUTTON_MASK_*`).
        buttons: u16,
    },
    /// `SPICE_MSGC_INPUTS_MOUSE_POSITION`.
    MousePosition {
        /// Absolute position.
        x: u32,
        /// Absolute position.
        y: u32,
        /// Button mask.
        buttons: u16,
        /// Display the position refers to.
        display_id: u8,
    },
    /// `SPICE_MSGC_INPUTS_MOUSE_PRESS`.
    MousePress {
        /// `SPICE_MOUSE_BUTTON_*`.
        button: u8,
        /// Button mask after the press.
        buttons: u16,
    },
    /// `SPICE_MSGC_INPUTS_MOUSE_RELEASE`.
    MouseRelease {
        /// `SPICE_MOUSE_BUTTON_*`.
        button: u8,
        /// Button mask after the release.
        buttons: u16,
    },
    /// A type this server does not know.
    Unknown(u16),
}

impl InputsClientMessage {
    /// Decodes one inputs channel message.
    pub fn decode(msg_type: u16, body: &[u8]) -> Result<Self, DecodeError> {
        if let Some(base) = BaseClientMessage::decode(msg_type, body)? {
            return Ok(Self::Base(base));
        }
        let mut r = Reader::new(body);
        Ok(match msg_type {
            client_type::KEY_DOWN => Self::KeyDown(r.u32("key down code")?),
            client_type::KEY_UP => Self::KeyUp(r.u32("key up code")?),
            client_type::KEY_MODIFIERS => Self::KeyModifiers(r.u16("key modifiers")?),
            client_type::KEY_SCANCODE => {
                if body.len() > MAX_SCANCODE_BYTES {
                    return Err(DecodeError::TooLarge {
                        what: "key scancode bytes",
                        value: body.len() as u64,
                        limit: MAX_SCANCODE_BYTES as u64,
                    });
                }
                Self::KeyScancode(body.to_vec())
            }
            client_type::MOUSE_MOTION => Self::MouseMotion {
                dx: r.i32("mouse motion dx")?,
                dy: r.i32("mouse motion dy")?,
                buttons: r.u16("mouse motion buttons")?,
            },
            client_type::MOUSE_POSITION => Self::MousePosition {
                x: r.u32("mouse position x")?,
                y: r.u32("mouse position y")?,
                buttons: r.u16("mouse position buttons")?,
                display_id: r.u8("mouse position display id")?,
            },
            client_type::MOUSE_PRESS => Self::MousePress {
                button: r.u8("mouse press button")?,
                buttons: r.u16("mouse press buttons")?,
            },
            client_type::MOUSE_RELEASE => Self::MouseRelease {
                button: r.u8("mouse release button")?,
                buttons: r.u16("mouse release buttons")?,
            },
            other => Self::Unknown(other),
        })
    }
}

/// Splits a `KEY_DOWN`/`KEY_UP` code into its scancode bytes (LSB first, up to the first 0).
pub fn scancode_bytes(code: u32) -> impl Iterator<Item = u8> {
    code.to_le_bytes().into_iter().take_while(|&b| b != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_key_code_splits_into_prefix_and_code() {
        // spice-gtk sends the E0-prefixed Right Ctrl (0x11D) as 0x1DE0.
        assert_eq!(scancode_bytes(0x1DE0).collect::<Vec<_>>(), [0xE0, 0x1D]);
        assert_eq!(scancode_bytes(0x9E).collect::<Vec<_>>(), [0x9E]);
        assert_eq!(scancode_bytes(0).count(), 0);
    }

    #[test]
    fn decodes_position_and_rejects_truncated_press() {
        let mut body = Vec::new();
        Writer::new(&mut body).u32(10).u32(20).u16(1).u8(0);
        assert_eq!(
            InputsClientMessage::decode(client_type::MOUSE_POSITION, &body).unwrap(),
            InputsClientMessage::MousePosition {
                x: 10,
                y: 20,
                buttons: 1,
                display_id: 0
            }
        );
        assert!(InputsClientMessage::decode(client_type::MOUSE_PRESS, &[1, 0]).is_err());
        assert!(InputsClientMessage::decode(client_type::KEY_SCANCODE, &[1; 300]).is_err());
    }
}
