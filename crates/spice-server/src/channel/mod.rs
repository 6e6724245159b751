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

use spice_proto::migrate_data::{Migrate, MigrateData, MigrateDataMsg, NEED_DATA_TRANSFER, NEED_FLUSH};
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
    /// The channel's state from a migration source arrived (seamless
    /// migration): [`ChannelBase::take_migrate_data`] has it.
    Migrated,
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
    /// Seamless migration moved the channel away: nothing more is sent.
    migrated_out: bool,
    /// The channel waits for its state from a migration source.
    expect_migrate_data: bool,
    /// State from a migration source, until the channel takes it.
    migrate_data: Option<MigrateData>,
    /// State for the migration destination, sent on the client's flush mark.
    migrate_out_data: Option<MigrateData>,
    /// What the channel sent and received, for `ServerHandle::stats`.
    pub(crate) counters: std::sync::Arc<crate::metrics::ChannelCounters>,
}

impl Drop for ChannelBase {
    fn drop(&mut self) {
        self.counters.close();
    }
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
            migrated_out: false,
            expect_migrate_data: false,
            migrate_data: None,
            migrate_out_data: None,
            counters: Default::default(),
        }
    }

    /// Counts a message from the client.
    pub(crate) fn received(&self, frame: &spice_proto::Frame) {
        self.counters.message_in(self.header.size() + frame.body.len());
    }

    /// Queues one message.
    pub(crate) fn send<M: ServerMessage>(&mut self, msg: &M) {
        if self.migrated_out {
            // The client reads one message after MIGRATE: its data.
            tracing::trace!(msg_type = M::TYPE, "channel migrated; not sent");
            return;
        }
        self.queue(msg);
    }

    /// Queues one message, migrated or not.
    fn queue<M: ServerMessage>(&mut self, msg: &M) {
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
        self.counters.message_out(buf.len() - header_at);
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

    /// Seamless migration, source side: tells the client the channel moves
    /// (`MIGRATE`) and hands it `data` to pass on to the destination; the
    /// channel sends nothing more.
    pub(crate) fn migrate_out(&mut self, data: Option<MigrateData>) {
        // As C: a channel with state first has the client flush what it
        // sent here (MIGRATE_FLUSH_MARK), then gets MIGRATE_DATA.
        let flags = if data.is_some() {
            NEED_FLUSH | NEED_DATA_TRANSFER
        } else {
            0
        };
        self.send(&Migrate { flags });
        self.migrate_out_data = data;
        self.migrated_out = true;
    }

    /// Whether [`Self::migrate_out`] happened.
    pub(crate) fn is_migrated_out(&self) -> bool {
        self.migrated_out
    }

    /// Whether the channel moved and its state went out (or it had none).
    pub(crate) fn migration_data_sent(&self) -> bool {
        self.migrated_out && self.migrate_out_data.is_none()
    }

    /// The channel came by seamless migration and takes its state from
    /// the client's MIGRATE_DATA (which closes it when malformed); other
    /// channels ignore MIGRATE_DATA.
    pub(crate) fn expect_migrate_data(&mut self) {
        self.expect_migrate_data = true;
    }

    /// The migration data the client passed on, once.
    pub(crate) fn take_migrate_data(&mut self) -> Option<MigrateData> {
        self.migrate_data.take()
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
                    self.counters.round_trip(rtt);
                }
                BaseOutcome::Continue
            }
            BaseClientMessage::Disconnecting { reason, .. } => {
                tracing::debug!(reason, "client is disconnecting");
                BaseOutcome::Disconnect
            }
            BaseClientMessage::MigrateFlushMark => {
                if let Some(data) = self.migrate_out_data.take() {
                    // The one message a migrated channel still sends.
                    self.queue(&MigrateDataMsg(data.encode()));
                }
                BaseOutcome::Continue
            }
            BaseClientMessage::MigrateData(_) if !self.expect_migrate_data => {
                tracing::debug!("ignoring migration data this channel does not use");
                BaseOutcome::Continue
            }
            BaseClientMessage::MigrateData(body) => match MigrateData::decode(&body) {
                Ok(data) => {
                    tracing::debug!(?data, "migration data");
                    self.expect_migrate_data = false;
                    self.migrate_data = Some(data);
                    BaseOutcome::Migrated
                }
                Err(e) => {
                    tracing::warn!(error = %e, "malformed migration data; closing channel");
                    BaseOutcome::Disconnect
                }
            },
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
