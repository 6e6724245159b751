//! One client connection as the main context sees it: socket, watch and phase.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use spice_proto::ticket::TicketKey;
use spice_proto::{Deframer, LinkAcceptor};

use crate::channel::cursor::CursorChannel;
use crate::channel::display::DisplayChannel;
use crate::channel::inputs::InputsChannel;
use crate::channel::main::MainChannel;
use crate::channel::playback::PlaybackChannel;
use crate::channel::record::RecordChannel;
use crate::channel::{ChannelBase, OutBuf};
use crate::core::{ChannelInfo, Interest, TimerId, WatchId};

/// A linked channel.
#[derive(Debug)]
pub(crate) enum Channel {
    Main(MainChannel),
    Display(DisplayChannel),
    Cursor(CursorChannel),
    Inputs(InputsChannel),
    Playback(PlaybackChannel),
    Record(RecordChannel),
}

impl Channel {
    pub(crate) fn base(&mut self) -> &mut ChannelBase {
        match self {
            Self::Main(c) => &mut c.base,
            Self::Display(c) => &mut c.base,
            Self::Cursor(c) => &mut c.base,
            Self::Inputs(c) => &mut c.base,
            Self::Playback(c) => &mut c.base,
            Self::Record(c) => &mut c.base,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Phase {
    /// Link stage: header, link message, ticket.
    Linking {
        acceptor: LinkAcceptor,
        key: Option<Box<TicketKey>>,
        /// Handed over by the host with authentication waived.
        skip_auth: bool,
        timer: TimerId,
        out: OutBuf,
    },
    /// A linked channel of session `session_id`.
    Linked {
        session_id: u32,
        deframer: Deframer,
        channel: Channel,
    },
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) watch: WatchId,
    pub(crate) interest: Interest,
    pub(crate) phase: Phase,
    pub(crate) info: ChannelInfo,
    pub(crate) connected_at: Instant,
}

/// What a read attempt found.
pub(crate) enum ReadResult {
    Data(usize),
    WouldBlock,
    Closed,
}

impl Conn {
    pub(crate) fn out(&mut self) -> &mut OutBuf {
        match &mut self.phase {
            Phase::Linking { out, .. } => out,
            Phase::Linked { channel, .. } => &mut channel.base().out,
        }
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<ReadResult> {
        loop {
            return match self.stream.read(buf) {
                Ok(0) => Ok(ReadResult::Closed),
                Ok(n) => Ok(ReadResult::Data(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadResult::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// Writes queued output until done or the socket is full.
    /// Returns whether everything was written.
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        loop {
            let Conn { stream, phase, .. } = self;
            let out = match phase {
                Phase::Linking { out, .. } => out,
                Phase::Linked { channel, .. } => &mut channel.base().out,
            };
            if out.is_empty() {
                return Ok(true);
            }
            match stream.write(out.pending()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => out.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
