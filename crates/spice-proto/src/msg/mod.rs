//! Channel messages: what the server sends (encoders) and what clients send (decoders).
//!
//! Message names follow `spice.proto`; type numbers are `SPICE_MSG_*` / `SPICE_MSGC_*`.

pub mod base;
pub mod cursor;
pub mod display;
pub mod inputs;
pub mod main;
pub mod playback;
pub mod record;
pub mod spicevmc;

/// A message the server sends.
pub trait ServerMessage {
    /// `SPICE_MSG_*` type number.
    const TYPE: u16;
    /// Appends the message body (without data header).
    fn encode_body(&self, out: &mut Vec<u8>);
}

/// `Rect`: `{i32 top, left, bottom, right}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    /// First row.
    pub top: i32,
    /// First column.
    pub left: i32,
    /// One past the last row.
    pub bottom: i32,
    /// One past the last column.
    pub right: i32,
}

impl Rect {
    /// Encoded size: 4 * 4.
    pub const SIZE: usize = 16;

    /// A rectangle from position and size.
    pub fn from_xywh(x: i32, y: i32, width: i32, height: i32) -> Self {
        Self {
            top: y,
            left: x,
            bottom: y + height,
            right: x + width,
        }
    }

    pub(crate) fn encode(&self, w: &mut crate::wire::Writer<'_>) {
        w.i32(self.top).i32(self.left).i32(self.bottom).i32(self.right);
    }
}

/// Encodes a message into a standalone body buffer.
pub fn body_of<M: ServerMessage>(msg: &M) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode_body(&mut out);
    out
}
