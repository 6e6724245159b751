//! Cursor channel messages (`CursorChannel` in `spice.proto`).

use super::base::BaseClientMessage;
use super::ServerMessage;
use crate::error::DecodeError;
use crate::wire::Writer;

/// Server message types of the cursor channel.
pub mod server_type {
    /// `SPICE_MSG_CURSOR_INIT`.
    pub const INIT: u16 = 101;
    /// `SPICE_MSG_CURSOR_RESET`.
    pub const RESET: u16 = 102;
    /// `SPICE_MSG_CURSOR_SET`.
    pub const SET: u16 = 103;
    /// `SPICE_MSG_CURSOR_MOVE`.
    pub const MOVE: u16 = 104;
    /// `SPICE_MSG_CURSOR_HIDE`.
    pub const HIDE: u16 = 105;
    /// `SPICE_MSG_CURSOR_INVAL_ALL`.
    pub const INVAL_ALL: u16 = 108;
}

/// `SPICE_CURSOR_FLAGS_NONE`: no cursor shape follows.
pub const CURSOR_FLAGS_NONE: u16 = 1;
/// `SPICE_CURSOR_TYPE_ALPHA`: 32-bit ARGB pixels.
pub const CURSOR_TYPE_ALPHA: u8 = 0;

/// A cursor shape (`Cursor` with a `CursorHeader`), ARGB pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorShape {
    /// Unique id of this shape.
    pub unique: u64,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Hotspot column.
    pub hot_x: u16,
    /// Hotspot row.
    pub hot_y: u16,
    /// `width * height` pixels, 4 bytes each (B, G, R, A in memory order).
    pub argb: Vec<u8>,
}

fn encode_cursor(shape: Option<&CursorShape>, w: &mut Writer<'_>) {
    match shape {
        None => {
            w.u16(CURSOR_FLAGS_NONE);
        }
        Some(s) => {
            w.u16(0)
                .u64(s.unique)
                .u8(CURSOR_TYPE_ALPHA)
                .u16(s.width)
                .u16(s.height)
                .u16(s.hot_x)
                .u16(s.hot_y)
                .bytes(&s.argb);
        }
    }
}

/// `SPICE_MSG_CURSOR_INIT`: the state a new cursor channel starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Init<'a> {
    /// Position.
    pub x: i16,
    /// Position.
    pub y: i16,
    /// Whether the cursor is shown.
    pub visible: bool,
    /// Shape, if any.
    pub shape: Option<&'a CursorShape>,
}

impl ServerMessage for Init<'_> {
    const TYPE: u16 = server_type::INIT;
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.i16(self.x).i16(self.y).u16(0).u16(0).u8(self.visible.into());
        encode_cursor(self.shape, &mut w);
    }
}

/// `SPICE_MSG_CURSOR_SET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set<'a> {
    /// Position.
    pub x: i16,
    /// Position.
    pub y: i16,
    /// Whether the cursor is shown.
    pub visible: bool,
    /// New shape.
    pub shape: Option<&'a CursorShape>,
}

impl ServerMessage for Set<'_> {
    const TYPE: u16 = server_type::SET;
    fn encode_body(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.i16(self.x).i16(self.y).u8(self.visible.into());
        encode_cursor(self.shape, &mut w);
    }
}

/// `SPICE_MSG_CURSOR_MOVE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    /// Position.
    pub x: i16,
    /// Position.
    pub y: i16,
}

impl ServerMessage for Move {
    const TYPE: u16 = server_type::MOVE;
    fn encode_body(&self, out: &mut Vec<u8>) {
        Writer::new(out).i16(self.x).i16(self.y);
    }
}

/// `SPICE_MSG_CURSOR_HIDE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hide;

impl ServerMessage for Hide {
    const TYPE: u16 = server_type::HIDE;
    fn encode_body(&self, _out: &mut Vec<u8>) {}
}

/// Messages a client sends on the cursor channel: only base ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorClientMessage {
    /// A message common to all channels.
    Base(BaseClientMessage),
    /// A type this server does not know.
    Unknown(u16),
}

impl CursorClientMessage {
    /// Decodes one cursor channel message.
    pub fn decode(msg_type: u16, body: &[u8]) -> Result<Self, DecodeError> {
        Ok(match BaseClientMessage::decode(msg_type, body)? {
            Some(base) => Self::Base(base),
            None => Self::Unknown(msg_type),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::body_of;

    #[test]
    fn set_layout_with_alpha_shape() {
        let shape = CursorShape {
            unique: 5,
            width: 1,
            height: 1,
            hot_x: 0,
            hot_y: 0,
            argb: vec![1, 2, 3, 4],
        };
        let body = body_of(&Set {
            x: 3,
            y: 4,
            visible: true,
            shape: Some(&shape),
        });
        // 2+2 position, 1 visible, 2 flags, 8 unique, 1 type, 4*2 sizes, 4 pixels
        assert_eq!(body.len(), 4 + 1 + 2 + 8 + 1 + 8 + 4);
        assert_eq!(&body[0..7], &[3, 0, 4, 0, 1, 0, 0]);
        let init = body_of(&Init {
            x: 0,
            y: 0,
            visible: false,
            shape: None,
        });
        assert_eq!(init, [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    }
}
