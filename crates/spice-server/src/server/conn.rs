//! One client connection as the main context sees it: socket, watch and phase.

use std::io;
use std::time::Instant;

use spice_proto::link::LinkMess;
use spice_proto::ticket::TicketKey;
use spice_proto::{Deframer, HeaderKind, LinkAcceptor};

use crate::channel::inputs::InputsChannel;
use crate::channel::main::MainChannel;
use crate::channel::playback::PlaybackChannel;
use crate::channel::record::RecordChannel;
use crate::channel::spicevmc::VmcChannel;
use crate::channel::{ChannelBase, OutBuf};
use crate::core::{ChannelInfo, Interest, TimerId, WatchId};
use crate::socket::{ReadResult, Stream};
use crate::worker::Handover;

/// A linked channel served on the main context.
#[derive(Debug)]
pub(crate) enum Channel {
    Main(MainChannel),
    Inputs(InputsChannel),
    Playback(PlaybackChannel),
    Record(RecordChannel),
    /// A usbredir, port or webdav channel, and the device it serves.
    Vmc(VmcChannel, crate::vdi::VmcDeviceId),
}

impl Channel {
    pub(crate) fn base(&mut self) -> &mut ChannelBase {
        match self {
            Self::Main(c) => &mut c.base,
            Self::Inputs(c) => &mut c.base,
            Self::Playback(c) => &mut c.base,
            Self::Record(c) => &mut c.base,
            Self::Vmc(c, _) => &mut c.base,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Phase {
    /// Link stage: header, link message, ticket.
    Linking {
        acceptor: LinkAcceptor,
        key: Option<std::sync::Arc<TicketKey>>,
        /// Handed over by the host with authentication waived.
        skip_auth: bool,
        timer: TimerId,
        out: OutBuf,
        /// A ticket whose check waits (wrong passwords from this peer before).
        deferred: Option<Box<DeferredTicket>>,
        /// Waiting for a ticket key from the pool (`server/ticket_keys.rs`),
        /// with what the client sent after its link message.
        awaiting_key: Option<Vec<u8>>,
        /// The SASL session, once the client chose SASL.
        sasl: Option<super::sasl_link::Session>,
    },
    /// A linked channel of session `session_id`.
    Linked {
        session_id: u32,
        deframer: Deframer,
        channel: Channel,
    },
    /// A linked display or cursor channel, about to move to its display's
    /// thread; bytes that came with the ticket wait in its deframer.
    Handover(Box<Handover>),
    /// A linked channel of a client migrating in from another server,
    /// started when the client's main channel says MIGRATE_END (the C
    /// server's pending links of a migration target).
    Parked(Box<Parked>),
}

/// A channel link waiting for its session's migration to end.
#[derive(Debug)]
pub(crate) struct Parked {
    pub(crate) mess: LinkMess,
    pub(crate) header: HeaderKind,
    /// The link reply, perhaps not all written yet.
    pub(crate) out: OutBuf,
    /// What the client sent meanwhile (bounded), for the channel once it starts.
    pub(crate) early: Vec<u8>,
}

/// A ticket waiting for its check (or a SASL exchange waiting to start),
/// and what the client sent after it.
#[derive(Debug)]
pub(crate) struct DeferredTicket {
    /// `None`: a SASL client, whose mechanism list waits.
    pub(crate) ticket: Option<[u8; spice_proto::consts::TICKET_BYTES]>,
    /// `false`: refused unchecked when the time comes (too many attempts
    /// waiting), so even refusals come no faster than the throttle allows.
    pub(crate) check: bool,
    pub(crate) timer: TimerId,
    pub(crate) rest: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: Stream,
    pub(crate) watch: WatchId,
    pub(crate) interest: Interest,
    pub(crate) phase: Phase,
    pub(crate) info: ChannelInfo,
    /// Who the per-peer limits count this connection against.
    pub(crate) peer_key: super::admission::PeerKey,
    pub(crate) connected_at: Instant,
    /// How its queued output stands (whether its requests are read).
    pub(crate) output: super::backpressure::OutputWatch,
}

impl Conn {
    pub(crate) fn out(&mut self) -> &mut OutBuf {
        match &mut self.phase {
            Phase::Linking { out, .. } => out,
            Phase::Linked { channel, .. } => &mut channel.base().out,
            Phase::Handover(h) => &mut h.base.out,
            Phase::Parked(p) => &mut p.out,
        }
    }

    /// Whether anything waits to be written: queued messages, or TLS records.
    /// Whether the client's socket may be read: not while a spicevmc
    /// channel's device is behind with the client's data.
    pub(crate) fn accepts_input(&self) -> bool {
        match &self.phase {
            Phase::Linked {
                channel: Channel::Vmc(ch, _),
                ..
            } => ch.accepts_client_data(),
            _ => true,
        }
    }

    pub(crate) fn has_output(&mut self) -> bool {
        self.stream.wants_write() || !self.out().is_empty()
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<ReadResult> {
        self.stream.read(buf)
    }

    /// Writes queued output until done or the socket is full.
    /// Returns whether everything was written.
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        self.flush_counted().map(|(done, _)| done)
    }

    /// [`Self::flush`], also returning how many bytes went out.
    pub(crate) fn flush_counted(&mut self) -> io::Result<(bool, usize)> {
        let Conn { stream, phase, .. } = self;
        let out = match phase {
            Phase::Linking { out, .. } => out,
            Phase::Linked { channel, .. } => &mut channel.base().out,
            Phase::Handover(h) => &mut h.base.out,
            Phase::Parked(p) => &mut p.out,
        };
        let before = out.len();
        let done = stream.flush(out)?;
        let written = before - out.len();
        match phase {
            Phase::Linked { channel, .. } => channel.base().counters.written(written),
            Phase::Handover(h) => h.base.counters.written(written),
            Phase::Linking { .. } | Phase::Parked(_) => {}
        }
        Ok((done, written))
    }
}
