//! One display or cursor channel on its display's thread: socket, framing,
//! channel state machine.

use std::time::Instant;

use spice_proto::Deframer;

use super::{Handover, HandoverKind};
use crate::channel::cursor::{CursorChannel, CursorEvent};
use crate::channel::display::{DisplayChannel, DisplayEvent};
use crate::channel::ChannelBase;
use crate::core::ChannelInfo;
use crate::display::DisplayShared;
use crate::handle::ServerHandle;
use crate::socket::{ReadResult, Stream};

/// Reads per turn before other clients get theirs.
const READS_PER_TURN: usize = 16;
/// Rounds of produce-and-write per turn. A round stops at
/// [`crate::channel::display::PRODUCE_CHUNK_BYTES`] of output, so this bounds
/// how long one client keeps the thread from its device and other clients.
const ROUNDS_PER_TURN: usize = 16;

/// One per client connection, so the display's larger state is not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Channel {
    Display(DisplayChannel),
    Cursor(CursorChannel),
}

/// A client channel served by a display thread.
#[derive(Debug)]
pub(super) struct Client {
    pub(super) stream: Stream,
    pub(super) info: ChannelInfo,
    deframer: Deframer,
    channel: Channel,
    server: ServerHandle,
    /// Reading stopped at its budget: the socket may hold more.
    pub(super) unread: bool,
    /// Producing stopped at its budget with the socket still taking data.
    pub(super) unsent: bool,
    /// Damage waits for its frame until then.
    pub(super) wake_at: Option<Instant>,
}

impl Client {
    /// Takes over a channel linked by the main context.
    pub(super) fn start(handover: Handover, stream: Stream, display: &DisplayShared) -> Self {
        let Handover {
            info,
            kind,
            base,
            deframer,
            server,
            ..
        } = handover;
        let channel = match kind {
            HandoverKind::Display { caps, migrated_in } => {
                let channel = DisplayChannel::start(base, info.link_id, info.channel_id, &caps, display);
                Channel::Display(if migrated_in {
                    channel.migrated_in()
                } else {
                    channel
                })
            }
            HandoverKind::Cursor => Channel::Cursor(CursorChannel::start(base, display)),
        };
        Self {
            stream,
            info,
            deframer,
            channel,
            server,
            // Bytes that came with the ticket wait in the deframer.
            unread: true,
            unsent: true,
            wake_at: None,
        }
    }

    fn base(&self) -> &ChannelBase {
        match &self.channel {
            Channel::Display(d) => &d.base,
            Channel::Cursor(c) => &c.base,
        }
    }

    fn name(&self) -> &'static str {
        match self.channel {
            Channel::Display(_) => "display",
            Channel::Cursor(_) => "cursor",
        }
    }

    /// Whether the client has work left for the next turn.
    pub(super) fn busy(&self) -> bool {
        self.unread || self.unsent
    }

    /// Reads and handles what the socket has, within a budget.
    /// Returns `false` when the channel must close.
    pub(super) fn read(&mut self, buf: &mut [u8]) -> bool {
        self.unread = false;
        if !self.handle_frames() {
            return false;
        }
        for _ in 0..READS_PER_TURN {
            match self.stream.read(buf) {
                Ok(ReadResult::Data(n)) => {
                    self.deframer.push(&buf[..n]);
                    if !self.handle_frames() {
                        return false;
                    }
                }
                Ok(ReadResult::WouldBlock) => return true,
                Ok(ReadResult::Closed) => {
                    tracing::debug!(conn = self.info.link_id, "peer closed the connection");
                    return false;
                }
                Err(e) => {
                    tracing::debug!(conn = self.info.link_id, error = %e, "read failed");
                    return false;
                }
            }
        }
        self.unread = true;
        true
    }

    /// Handles every complete message in the deframer.
    fn handle_frames(&mut self) -> bool {
        loop {
            let frame = match self.deframer.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return true,
                Err(e) => {
                    tracing::warn!(peer = ?self.info.peer, conn = self.info.link_id, error = %e, "malformed message framing; closing channel");
                    return false;
                }
            };
            let now = Instant::now();
            self.base().received(&frame);
            tracing::trace!(
                channel = self.name(),
                msg_type = frame.msg_type,
                len = frame.body.len(),
                "client message"
            );
            let keep = match &mut self.channel {
                Channel::Display(display) => match display.handle(&frame, now) {
                    Ok(Some(DisplayEvent::Disconnect)) => false,
                    Ok(Some(DisplayEvent::Produce) | None) => true,
                    Err(e) => malformed(self.name(), &e),
                },
                Channel::Cursor(cursor) => match cursor.handle(&frame, now) {
                    Ok(Some(CursorEvent::Disconnect)) => false,
                    Ok(Some(CursorEvent::Produce) | None) => true,
                    Err(e) => malformed(self.name(), &e),
                },
            };
            if !keep {
                return false;
            }
        }
    }

    /// Produces what the client is missing and writes it, as far as the
    /// socket, the client's ACK window and the turn's budget allow; a new
    /// frame of damage starts only if `may_start`.
    /// Returns `false` when the channel must close.
    pub(super) fn pump(&mut self, display: &DisplayShared, may_start: bool) -> bool {
        let settings = display.settings();
        self.unsent = false;
        self.wake_at = None;
        for _ in 0..ROUNDS_PER_TURN {
            let out = match &mut self.channel {
                Channel::Display(d) => {
                    let now = Instant::now();
                    // The earliest any round asked for: a later round that
                    // found nothing to do must not forget an earlier one's
                    // held frame.
                    let wake = d.produce(display, settings, now, may_start);
                    self.wake_at = crate::channel::display::earliest(self.wake_at, wake);
                    &mut d.base.out
                }
                Channel::Cursor(c) => {
                    c.produce(display);
                    &mut c.base.out
                }
            };
            if out.is_empty() && !self.stream.wants_write() {
                return true;
            }
            let before = out.len();
            let flushed = self.stream.flush(out);
            let written = before - out.len();
            self.base().counters.written(written);
            match flushed {
                Ok(true) => continue,
                // The socket is full: its writable edge brings us back.
                Ok(false) => return true,
                Err(e) => {
                    tracing::debug!(conn = self.info.link_id, error = %e, "write failed");
                    return false;
                }
            }
        }
        self.unsent = true;
        true
    }

    /// Ends the channel: the display stops keeping damage for it, and the
    /// main context hears it is gone (unless it closed it itself).
    /// Seamless migration: the channel moves to the destination.
    pub(super) fn migrate_out(&mut self) {
        match &mut self.channel {
            Channel::Display(d) => d.migrate_out(),
            Channel::Cursor(c) => c.base.migrate_out(None),
        }
        self.unsent = true;
    }

    pub(super) fn close(self, display: &DisplayShared, report: bool) {
        if let Channel::Display(d) = &self.channel {
            d.detach(display);
        }
        if report {
            self.server.display_channel_closed(self.info.link_id);
        }
    }
}

fn malformed(channel: &str, error: &spice_proto::DecodeError) -> bool {
    tracing::warn!(channel, %error, "malformed client message; closing channel");
    false
}
