//! The cursor channel: pointer shape, position and visibility.

use std::time::Instant;

use spice_proto::msg::cursor::{CursorClientMessage, Hide, Init, Move, Set};
use spice_proto::{DecodeError, Frame};

use super::{BaseOutcome, ChannelBase};
use crate::display::{CursorState, DisplayShared};

/// What the cursor channel needs from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CursorEvent {
    /// There may be room for more output.
    Produce,
    /// The client is leaving.
    Disconnect,
}

/// Cursor updates are produced only while less than this waits on the
/// socket: a client that acknowledges without reading would otherwise make
/// the queue grow at the host's cursor rate. Only the latest shape and
/// position matter, so holding back loses nothing.
pub(crate) const MAX_QUEUED_BYTES: usize = 256 * 1024;

fn clamp16(v: i32) -> i16 {
    v.clamp(i16::MIN.into(), i16::MAX.into()) as i16
}

#[derive(Debug)]
pub(crate) struct CursorChannel {
    pub(crate) base: ChannelBase,
    sent_shape_serial: u64,
    sent_position_serial: u64,
}

impl CursorChannel {
    /// Starts flow control and sends INIT with the current cursor.
    pub(crate) fn start(mut base: ChannelBase, shared: &DisplayShared) -> Self {
        base.start_acks();
        let state = shared.lock();
        let c: &CursorState = &state.cursor;
        base.send(&Init {
            x: clamp16(c.x),
            y: clamp16(c.y),
            visible: c.visible && c.shape.is_some(),
            shape: c.shape.as_deref(),
        });
        Self {
            base,
            sent_shape_serial: c.shape_serial,
            sent_position_serial: c.position_serial,
        }
    }

    pub(crate) fn handle(&mut self, frame: &Frame, now: Instant) -> Result<Option<CursorEvent>, DecodeError> {
        Ok(match CursorClientMessage::decode(frame.msg_type, &frame.body)? {
            CursorClientMessage::Base(base) => match self.base.handle_base(base, now) {
                BaseOutcome::Disconnect => Some(CursorEvent::Disconnect),
                BaseOutcome::WindowOpened => Some(CursorEvent::Produce),
                BaseOutcome::Continue | BaseOutcome::Migrated => None,
            },
            CursorClientMessage::Unknown(t) => {
                tracing::debug!(msg_type = t, "ignoring unknown cursor message");
                None
            }
        })
    }

    /// Sends the latest shape or position if they changed.
    pub(crate) fn produce(&mut self, shared: &DisplayShared) {
        if self.base.waiting_for_ack() || self.base.out.len() >= MAX_QUEUED_BYTES {
            return;
        }
        let state = shared.lock();
        let c = &state.cursor;
        if c.shape_serial != self.sent_shape_serial {
            match (&c.shape, c.visible) {
                (Some(shape), true) => self.base.send(&Set {
                    x: clamp16(c.x),
                    y: clamp16(c.y),
                    visible: true,
                    shape: Some(shape),
                }),
                _ => self.base.send(&Hide),
            }
            self.sent_shape_serial = c.shape_serial;
            self.sent_position_serial = c.position_serial;
        } else if c.position_serial != self.sent_position_serial {
            self.base.send(&Move {
                x: clamp16(c.x),
                y: clamp16(c.y),
            });
            self.sent_position_serial = c.position_serial;
        }
    }
}
