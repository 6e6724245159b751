//! Channel state machines: bytes in, messages and host events out, no I/O.
//!
//! Each channel owns a [`ChannelBase`] for what all channels share (framing,
//! serials, ACK flow control, pings) and adds its own logic on top. The
//! network driver in [`crate::net`] moves bytes between sockets and these.

pub(crate) mod cursor;
pub(crate) mod display;
pub(crate) mod inputs;
pub(crate) mod main;
pub(crate) mod migration;
pub(crate) mod playback;
pub(crate) mod record;
pub(crate) mod spicevmc;

use std::time::Instant;

use spice_proto::msg::base::{BaseClientMessage, Ping, SetAck};
use spice_proto::msg::ServerMessage;
use spice_proto::HeaderKind;

/// `CLIENT_ACK_WINDOW` of the C server: one ACK per this many messages.
pub(crate) const ACK_WINDOW: u32 = 20;

/// Outgoing bytes not yet written to the socket.
#[derive(Debug, Default)]
pub(crate) struct OutBuf {
    data: Vec<u8>,
    start: usize,
}

impl OutBuf {
    pub(crate) fn pending(&self) -> &[u8] {
        &self.data[self.start..]
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len() - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks `n` bytes as written.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        } else if self.start > 1 << 20 {
            self.data.drain(..self.start);
            self.start = 0;
        }
    }

    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }

    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }
}

#[derive(Debug)]
struct AckState {
    generation: u32,
    window: u32,
    /// Generation the client last synced to; ACKs of older generations are stale.
    client_generation: Option<u32>,
    /// Messages sent since the last ACK, less what ACKs returned.
    unacked: u32,
}

/// What a base message asks of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BaseOutcome {
    /// Keep going.
    Continue,
    /// An ACK opened the send window: produce more output.
    WindowOpened,
    /// The client is leaving.
    Disconnect,
}

/// What every channel shares.
#[derive(Debug)]
pub(crate) struct ChannelBase {
    header: HeaderKind,
    serial: u64,
    pub(crate) out: OutBuf,
    ack: Option<AckState>,
    epoch: Instant,
    next_ping_id: u32,
    pub(crate) last_rtt: Option<std::time::Duration>,
}

impl ChannelBase {
    pub(crate) fn new(header: HeaderKind, epoch: Instant) -> Self {
        Self {
            header,
            serial: 0,
            out: OutBuf::default(),
            ack: None,
            epoch,
            next_ping_id: 1,
            last_rtt: None,
        }
    }

    /// Queues one message.
    pub(crate) fn send<M: ServerMessage>(&mut self, msg: &M) {
        self.serial += 1;
        let buf = self.out.buffer();
        let header_at = buf.len();
        self.header.encode(self.serial, M::TYPE, 0, buf);
        let body_at = buf.len();
        msg.encode_body(buf);
        let size = (buf.len() - body_at) as u32;
        // The size field follows serial (8) and type (2) in the full header, type (2) in the mini one.
        let size_at = header_at + if self.header == HeaderKind::Full { 10 } else { 2 };
        buf[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
        if let Some(ack) = &mut self.ack {
            ack.unacked = ack.unacked.saturating_add(1);
        }
    }

    /// Starts ACK flow control (display and cursor channels).
    pub(crate) fn start_acks(&mut self) {
        let set_ack = SetAck {
            generation: 1,
            window: ACK_WINDOW,
        };
        self.send(&set_ack);
        self.ack = Some(AckState {
            generation: set_ack.generation,
            window: set_ack.window,
            client_generation: None,
            unacked: 0,
        });
    }

    /// Whether the client has fallen two windows behind, so sending must pause.
    pub(crate) fn waiting_for_ack(&self) -> bool {
        self.ack.as_ref().is_some_and(|a| a.unacked > a.window * 2)
    }

    /// Sends a PING carrying `padding` zero bytes (to time a transfer) and
    /// returns its id.
    pub(crate) fn send_padded_ping(&mut self, now: Instant, padding: usize) -> u32 {
        let ping = Ping {
            id: self.next_ping_id,
            timestamp: now.saturating_duration_since(self.epoch).as_micros() as u64,
            padding,
        };
        self.next_ping_id = self.next_ping_id.wrapping_add(1);
        self.send(&ping);
        ping.id
    }

    pub(crate) fn handle_base(&mut self, msg: BaseClientMessage, now: Instant) -> BaseOutcome {
        match msg {
            BaseClientMessage::AckSync { generation } => {
                tracing::trace!(generation, "ack sync");
                if let Some(ack) = &mut self.ack {
                    ack.client_generation = Some(generation);
                }
                BaseOutcome::Continue
            }
            BaseClientMessage::Ack => {
                let Some(ack) = &mut self.ack else {
                    return BaseOutcome::Continue;
                };
                if ack.client_generation != Some(ack.generation) {
                    return BaseOutcome::Continue;
                }
                let was_waiting = ack.unacked > ack.window * 2;
                ack.unacked = ack.unacked.saturating_sub(ack.window);
                if was_waiting {
                    BaseOutcome::WindowOpened
                } else {
                    BaseOutcome::Continue
                }
            }
            BaseClientMessage::Pong { id, timestamp } => {
                let sent = std::time::Duration::from_micros(timestamp);
                let elapsed = now.saturating_duration_since(self.epoch);
                if let Some(rtt) = elapsed.checked_sub(sent) {
                    tracing::debug!(id, rtt_us = rtt.as_micros() as u64, "pong");
                    self.last_rtt = Some(rtt);
                }
                BaseOutcome::Continue
            }
            BaseClientMessage::Disconnecting { reason, .. } => {
                tracing::debug!(reason, "client is disconnecting");
                BaseOutcome::Disconnect
            }
            BaseClientMessage::MigrateFlushMark | BaseClientMessage::MigrateData => {
                tracing::debug!("ignoring migration message");
                BaseOutcome::Continue
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spice_proto::msg::display::Mark;
    use spice_proto::Deframer;

    #[test]
    fn send_frames_messages_with_serials_for_both_headers() {
        for kind in [HeaderKind::Full, HeaderKind::Mini] {
            let mut base = ChannelBase::new(kind, Instant::now());
            base.send(&SetAck {
                generation: 1,
                window: 20,
            });
            base.send(&Mark);
            let mut d = Deframer::new(kind, 1024);
            d.push(base.out.pending());
            let f1 = d.next_frame().unwrap().unwrap();
            let f2 = d.next_frame().unwrap().unwrap();
            assert_eq!((f1.msg_type, f1.body.len()), (3, 8));
            assert_eq!((f2.msg_type, f2.body.len()), (102, 0));
            if kind == HeaderKind::Full {
                assert_eq!(&base.out.pending()[..8], &1u64.to_le_bytes());
            }
        }
    }

    #[test]
    fn ack_window_pauses_and_reopens() {
        let mut base = ChannelBase::new(HeaderKind::Mini, Instant::now());
        base.start_acks();
        base.handle_base(BaseClientMessage::AckSync { generation: 1 }, Instant::now());
        for _ in 0..ACK_WINDOW * 2 {
            base.send(&Mark);
        }
        assert!(!base.waiting_for_ack());
        base.send(&Mark);
        assert!(base.waiting_for_ack());
        assert_eq!(
            base.handle_base(BaseClientMessage::Ack, Instant::now()),
            BaseOutcome::WindowOpened
        );
        assert!(!base.waiting_for_ack());
    }

    #[test]
    fn pong_measures_round_trip() {
        let epoch = Instant::now();
        let mut base = ChannelBase::new(HeaderKind::Mini, epoch);
        base.send_padded_ping(epoch + std::time::Duration::from_millis(5), 0);
        let outcome = base.handle_base(
            BaseClientMessage::Pong {
                id: 1,
                timestamp: 5000,
            },
            epoch + std::time::Duration::from_millis(8),
        );
        assert_eq!(outcome, BaseOutcome::Continue);
        assert_eq!(base.last_rtt, Some(std::time::Duration::from_millis(3)));
    }
}
