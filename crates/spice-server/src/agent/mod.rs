//! The guest agent link: chunks between the agent's char device and the
//! client's main channel, with the token flow control of both directions.
//!
//! Guest → client: the agent writes `VDIChunkHeader` + payload; payloads for
//! the client port go out as `MAIN_AGENT_DATA`, one per client token. Without
//! tokens nothing more is read, which pushes back on the guest.
//!
//! Client → guest: each `MAIN_AGENT_DATA` becomes one chunk written to the
//! device; once written, the client gets its token back (`MAIN_AGENT_TOKEN`).

pub(crate) mod client_messages;

use std::collections::VecDeque;

use spice_proto::agent::{message_type, ChunkHeader, MessageHeader, MAX_DATA_SIZE, PORT_CLIENT, PORT_SERVER};

use crate::channel::main::AGENT_TOKENS;
use crate::vdi::CharDevice;

/// Chunks read per pump from the loop, so one busy agent cannot monopolise
/// it; a pump that stops at this bound says so ([`Pumped::more`]) and the
/// server queues another.
pub(crate) const MAX_CHUNKS_PER_PUMP: usize = 64;

/// Chunks read inside the host's own wakeup call. QEMU offers one guest write
/// (at most 32 KiB) per `spice_server_char_device_wakeup` and expects it read
/// before the call returns, as the C server does (it reads while the device
/// has data); what is left blocks the port until the server reads again. This
/// covers 32 KiB of header-only chunks.
pub(crate) const MAX_CHUNKS_PER_WAKEUP: usize = 4096;

struct Pending {
    bytes: Vec<u8>,
    written: usize,
    /// The client's own payload, whose token it gets back once written.
    from_client: bool,
    carries: Carries,
}

/// What a chunk the server writes on its own carries, so that a newer one
/// can take the place of one the device has not started taking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carries {
    /// Nothing to replace: the client's data.
    ClientData,
    /// A `VD_AGENT_MOUSE_STATE` (one chunk).
    MouseState,
    /// A chunk of the `n`th `VD_AGENT_MONITORS_CONFIG` the server wrote for
    /// the client; `first` is the chunk with the message header.
    MonitorsConfig { n: u64, first: bool },
    /// The `VD_AGENT_CLIENT_DISCONNECTED` notice (one chunk).
    ClientGone,
}

impl Pending {
    /// `data` as one chunk for `port`, nothing of it written yet.
    fn chunk(port: u32, data: &[u8], from_client: bool, carries: Carries) -> Self {
        let mut bytes = Vec::with_capacity(ChunkHeader::SIZE + data.len());
        ChunkHeader::encode_chunk(port, data, &mut bytes);
        Self {
            bytes,
            written: 0,
            from_client,
            carries,
        }
    }
}

/// What a pump produced for the client.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Pumped {
    /// Payloads to send as `MAIN_AGENT_DATA`.
    pub(crate) to_client: Vec<Vec<u8>>,
    /// Tokens to return with `MAIN_AGENT_TOKEN`.
    pub(crate) tokens: u32,
    /// The pump stopped at its chunk bound: the device may have more to read.
    pub(crate) more: bool,
}

pub(crate) struct AgentLink {
    device: Box<dyn CharDevice + Send>,
    to_device: VecDeque<Pending>,
    header: [u8; ChunkHeader::SIZE],
    header_len: usize,
    chunk: Option<(ChunkHeader, Vec<u8>)>,
    /// The client sent AGENT_START: it wants agent data.
    client_started: bool,
    /// `MAIN_AGENT_DATA` messages the client can still take.
    client_tokens: u32,
    broken: bool,
    /// Reading paused: the client's main channel has too much queued.
    held: bool,
    /// Client payloads the server consumed itself, whose tokens are due.
    tokens_owed: u32,
    /// Monitors configurations queued so far, to tell their chunks apart.
    monitors_configs: u64,
}

impl AgentLink {
    /// Takes the device into use, telling it so (the C server's `state(1)`).
    pub(crate) fn new(mut device: Box<dyn CharDevice + Send>) -> Self {
        device.state(true);
        Self {
            device,
            to_device: VecDeque::new(),
            header: [0; ChunkHeader::SIZE],
            header_len: 0,
            chunk: None,
            client_started: false,
            client_tokens: 0,
            broken: false,
            held: false,
            tokens_owed: 0,
            monitors_configs: 0,
        }
    }

    /// Nothing can be read: the stream broke, or the client has no tokens left.
    fn read_stopped(&self) -> bool {
        self.broken || (self.client_started && self.client_tokens == 0)
    }

    /// Whether the last pump left the device unread because the client's queue was full.
    pub(crate) fn is_held(&self) -> bool {
        self.held
    }

    /// Stops using the device, telling it so (`state(0)`).
    pub(crate) fn detach(mut self) {
        self.device.state(false);
    }

    /// The client's `AGENT_START`: it takes agent data, `tokens` messages ahead.
    pub(crate) fn client_start(&mut self, tokens: u32) {
        self.client_started = true;
        self.client_tokens = tokens;
    }

    /// The client's `AGENT_TOKEN`.
    pub(crate) fn client_tokens(&mut self, tokens: u32) {
        self.client_tokens = self.client_tokens.saturating_add(tokens);
    }

    /// The client left: the agent is told, so it can drop per-client state.
    pub(crate) fn client_gone(&mut self) {
        self.client_started = false;
        self.client_tokens = 0;
        self.to_device.retain(|p| !p.from_client || p.written > 0);
        // A chunk the device has started taking is finished (the agent reads
        // chunks whole), but its token, like those owed, was the departed
        // client's: the next one would get more tokens than it spent.
        for p in &mut self.to_device {
            p.from_client = false;
        }
        self.tokens_owed = 0;
        // While the agent has not taken the last notice it has seen nothing of
        // the clients since, so one is enough (clients coming and going while
        // the guest does not read would otherwise pile them up).
        let notice_waits = self
            .to_device
            .iter()
            .any(|p| p.carries == Carries::ClientGone && p.written == 0);
        if !notice_waits {
            let mut message = Vec::new();
            MessageHeader::encode_message(message_type::CLIENT_DISCONNECTED, &[], &mut message);
            self.to_device
                .push_back(Pending::chunk(PORT_SERVER, &message, false, Carries::ClientGone));
        }
    }

    /// The pointer for the agent to move (agent mouse mode). A state the device
    /// has not started taking is replaced rather than queued behind.
    pub(crate) fn mouse_state(&mut self, state: spice_proto::agent::MouseState) {
        let mut data = Vec::with_capacity(spice_proto::agent::MouseState::SIZE);
        state.encode(&mut data);
        let mut message = Vec::new();
        MessageHeader::encode_message(message_type::MOUSE_STATE, &data, &mut message);
        let pending = Pending::chunk(PORT_SERVER, &message, false, Carries::MouseState);
        match self
            .to_device
            .iter()
            .rposition(|p| p.carries == Carries::MouseState && p.written == 0)
        {
            Some(stale) => self.to_device[stale] = pending,
            None => self.to_device.push_back(pending),
        }
    }

    /// The client's `AGENT_DATA`: queued as one chunk for the device. More than
    /// the client's tokens allow, or a payload larger than a chunk may carry
    /// ([`MAX_DATA_SIZE`]: spice-vdagentd closes its port on a larger chunk,
    /// and clients split their messages), is a protocol violation: the
    /// payload is refused (`false`), and the caller drops the client.
    pub(crate) fn queue_from_client(&mut self, data: &[u8]) -> bool {
        if data.len() > MAX_DATA_SIZE {
            tracing::warn!(size = data.len(), "client sent agent data larger than a chunk");
            return false;
        }
        let queued = self.to_device.iter().filter(|p| p.from_client).count();
        if queued >= AGENT_TOKENS as usize {
            tracing::warn!(queued, "client sent agent data beyond its tokens");
            return false;
        }
        self.to_device
            .push_back(Pending::chunk(PORT_CLIENT, data, true, Carries::ClientData));
        true
    }

    /// A client payload the server took itself (a gathered monitors
    /// configuration): the client gets its token back with the next pump.
    pub(crate) fn return_token(&mut self) {
        self.tokens_owed = self.tokens_owed.saturating_add(1);
    }

    /// A whole `VD_AGENT_MONITORS_CONFIG` message for the agent as if from
    /// the client (one the displays did not take), in chunks of at most
    /// [`MAX_DATA_SIZE`]; not counted against the client's tokens, which it
    /// got back when the server took it. Only the newest configuration
    /// matters, so it replaces one the device has not started taking: a
    /// client resizing in a loop while the guest does not read holds at most
    /// two (one being written, one waiting).
    pub(crate) fn queue_monitors_config(&mut self, message: &[u8]) {
        // Chunks are written in order: a configuration whose first chunk
        // waits unwritten has nothing written yet.
        let stale: Vec<u64> = self
            .to_device
            .iter()
            .filter_map(|p| match p.carries {
                Carries::MonitorsConfig { n, first: true } if p.written == 0 => Some(n),
                _ => None,
            })
            .collect();
        self.to_device
            .retain(|p| !matches!(p.carries, Carries::MonitorsConfig { n, .. } if stale.contains(&n)));
        self.monitors_configs += 1;
        let n = self.monitors_configs;
        for (i, part) in message.chunks(MAX_DATA_SIZE).enumerate() {
            let carries = Carries::MonitorsConfig { n, first: i == 0 };
            self.to_device
                .push_back(Pending::chunk(PORT_CLIENT, part, false, carries));
        }
    }

    /// Chunks waiting for the device, and their bytes not yet written.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn queued_to_device(&self) -> (usize, usize) {
        let bytes = self.to_device.iter().map(|p| p.bytes.len() - p.written).sum();
        (self.to_device.len(), bytes)
    }

    /// Moves what can move: queued chunks into the device, and up to
    /// `max_chunks` chunks from the device towards the client as far as its
    /// tokens go.
    #[cfg(test)]
    pub(crate) fn pump(&mut self, max_chunks: usize) -> Pumped {
        self.pump_with(max_chunks, true)
    }

    /// As [`Self::pump`]; with `read` false only writes move: the client's
    /// queue is full, and the device waits (pushing back on the guest) until
    /// [`Self::is_held`] data can flow again.
    pub(crate) fn pump_with(&mut self, max_chunks: usize, read: bool) -> Pumped {
        self.held = !read;
        let mut out = Pumped {
            tokens: std::mem::take(&mut self.tokens_owed),
            ..Pumped::default()
        };
        while let Some(front) = self.to_device.front_mut() {
            let n = self.device.write(&front.bytes[front.written..]);
            if n == 0 {
                break;
            }
            front.written = (front.written + n).min(front.bytes.len());
            if front.written == front.bytes.len() {
                if front.from_client {
                    out.tokens += 1;
                }
                self.to_device.pop_front();
            }
        }
        let mut budget = max_chunks;
        while read && !self.read_stopped() {
            if budget == 0 {
                out.more = true;
                break;
            }
            budget -= 1;
            match self.read_chunk() {
                Some((header, payload)) if header.port == PORT_CLIENT => {
                    if self.client_started {
                        self.client_tokens -= 1;
                        out.to_client.push(payload);
                    } else {
                        tracing::trace!(len = payload.len(), "agent data with no client; dropped");
                    }
                }
                Some((_, payload)) => {
                    tracing::debug!(len = payload.len(), "agent message for the server ignored")
                }
                None => break,
            }
        }
        out
    }

    /// Reads one whole chunk, if the device has it.
    fn read_chunk(&mut self) -> Option<(ChunkHeader, Vec<u8>)> {
        loop {
            match &mut self.chunk {
                None => {
                    let n = self.device.read(&mut self.header[self.header_len..]);
                    if n == 0 {
                        return None;
                    }
                    self.header_len += n.min(ChunkHeader::SIZE - self.header_len);
                    if self.header_len < ChunkHeader::SIZE {
                        continue;
                    }
                    self.header_len = 0;
                    match ChunkHeader::decode(&self.header) {
                        Ok(h) => self.chunk = Some((h, Vec::with_capacity(h.size as usize))),
                        Err(e) => {
                            tracing::error!(error = %e, "malformed agent stream; the agent is no longer read");
                            self.broken = true;
                            self.device.state(false);
                            return None;
                        }
                    }
                }
                Some((header, payload)) => {
                    let want = header.size as usize - payload.len();
                    if want > 0 {
                        let start = payload.len();
                        payload.resize(header.size as usize, 0);
                        let n = self.device.read(&mut payload[start..]).min(want);
                        payload.truncate(start + n);
                        if n < want {
                            if n == 0 {
                                return None;
                            }
                            continue;
                        }
                    }
                    return self.chunk.take();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A device whose guest side is two byte queues.
    #[derive(Clone, Default)]
    struct Pipe {
        from_guest: Arc<Mutex<VecDeque<u8>>>,
        to_guest: Arc<Mutex<Vec<u8>>>,
        room: Arc<Mutex<usize>>,
    }

    impl CharDevice for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> usize {
            let mut q = self.from_guest.lock().unwrap();
            let n = buf.len().min(q.len());
            for b in buf.iter_mut().take(n) {
                *b = q.pop_front().unwrap();
            }
            n
        }
        fn write(&mut self, data: &[u8]) -> usize {
            let mut room = self.room.lock().unwrap();
            let n = data.len().min(*room);
            *room -= n;
            self.to_guest.lock().unwrap().extend_from_slice(&data[..n]);
            n
        }
    }

    fn guest_sends(pipe: &Pipe, port: u32, payload: &[u8]) {
        let mut bytes = Vec::new();
        ChunkHeader::encode_chunk(port, payload, &mut bytes);
        pipe.from_guest.lock().unwrap().extend(bytes);
    }

    #[test]
    fn guest_chunks_reach_the_client_within_its_tokens() {
        let pipe = Pipe::default();
        let mut link = AgentLink::new(Box::new(pipe.clone()));
        link.client_start(2);
        for i in 0..3u8 {
            guest_sends(&pipe, PORT_CLIENT, &[i; 5]);
        }
        let out = link.pump(MAX_CHUNKS_PER_PUMP);
        assert_eq!(
            out.to_client,
            vec![vec![0u8; 5], vec![1u8; 5]],
            "two tokens, two messages"
        );
        link.client_tokens(5);
        assert_eq!(link.pump(MAX_CHUNKS_PER_PUMP).to_client, vec![vec![2u8; 5]]);
    }

    #[test]
    fn client_chunks_are_written_and_tokens_returned() {
        let pipe = Pipe::default();
        *pipe.room.lock().unwrap() = 10;
        let mut link = AgentLink::new(Box::new(pipe.clone()));
        assert!(link.queue_from_client(b"hello"));
        assert!(link.queue_from_client(b"world"));
        let out = link.pump(MAX_CHUNKS_PER_PUMP);
        assert_eq!(out.tokens, 0, "first chunk only partly written (8 + 5 > 10)");
        *pipe.room.lock().unwrap() = 100;
        assert_eq!(link.pump(MAX_CHUNKS_PER_PUMP).tokens, 2);
        let written = pipe.to_guest.lock().unwrap().clone();
        assert_eq!(written.len(), 2 * (8 + 5));
        assert_eq!(&written[8..13], b"hello");
    }

    #[test]
    fn a_full_client_queue_holds_the_device_unread() {
        let pipe = Pipe::default();
        let mut link = AgentLink::new(Box::new(pipe.clone()));
        link.client_start(100);
        guest_sends(&pipe, PORT_CLIENT, b"waiting");
        let held = link.pump_with(MAX_CHUNKS_PER_PUMP, false);
        assert!(held.to_client.is_empty() && link.is_held());
        assert!(!pipe.from_guest.lock().unwrap().is_empty(), "left in the device");
        assert_eq!(
            link.pump(MAX_CHUNKS_PER_PUMP).to_client,
            vec![b"waiting".to_vec()]
        );
        assert!(!link.is_held());
    }

    #[test]
    fn malformed_stream_stops_reading() {
        let pipe = Pipe::default();
        let mut link = AgentLink::new(Box::new(pipe.clone()));
        link.client_start(10);
        pipe.from_guest
            .lock()
            .unwrap()
            .extend([9u8, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert!(link.pump(MAX_CHUNKS_PER_PUMP).to_client.is_empty());
        guest_sends(&pipe, PORT_CLIENT, b"x");
        assert!(
            link.pump(MAX_CHUNKS_PER_PUMP).to_client.is_empty(),
            "no resync after a bad header"
        );
    }

    #[test]
    fn client_gone_tells_the_agent() {
        let pipe = Pipe::default();
        *pipe.room.lock().unwrap() = 1000;
        let mut link = AgentLink::new(Box::new(pipe.clone()));
        link.client_gone();
        link.pump(MAX_CHUNKS_PER_PUMP);
        let written = pipe.to_guest.lock().unwrap().clone();
        let header = ChunkHeader::decode(written[..8].try_into().unwrap()).unwrap();
        assert_eq!(header.port, PORT_SERVER);
        let message = MessageHeader::decode(&written[8..]).unwrap();
        assert_eq!(message.message_type, message_type::CLIENT_DISCONNECTED);
    }

    #[test]
    fn a_pump_stops_at_its_bound_and_says_there_may_be_more() {
        let pipe = Pipe::default();
        let mut link = AgentLink::new(Box::new(pipe.clone()));
        link.client_start(u32::MAX);
        for i in 0..10u8 {
            guest_sends(&pipe, PORT_CLIENT, &[i]);
        }
        let first = link.pump(4);
        assert_eq!((first.to_client.len(), first.more), (4, true));
        let rest = link.pump(100);
        assert_eq!((rest.to_client.len(), rest.more), (6, false), "drained");
        assert!(pipe.from_guest.lock().unwrap().is_empty());
        // Stopping for want of tokens is not "more": the client's tokens restart it.
        link.client_start(1);
        guest_sends(&pipe, PORT_CLIENT, b"a");
        guest_sends(&pipe, PORT_CLIENT, b"b");
        let out = link.pump(100);
        assert_eq!((out.to_client.len(), out.more), (1, false));
    }

    #[test]
    fn a_newer_monitors_config_replaces_one_not_started() {
        let pipe = Pipe::default();
        let mut link = AgentLink::new(Box::new(pipe.clone()));
        let config = |tag: u8| {
            let mut message = Vec::new();
            MessageHeader::encode_message(message_type::MONITORS_CONFIG, &[tag; 3000], &mut message);
            message
        };
        // Two chunks each; the device takes part of the first configuration.
        link.queue_monitors_config(&config(1));
        *pipe.room.lock().unwrap() = 100;
        link.pump(MAX_CHUNKS_PER_PUMP);
        for tag in 2..50 {
            link.queue_monitors_config(&config(tag));
        }
        assert_eq!(link.to_device.len(), 4, "the one begun and the newest");
        *pipe.room.lock().unwrap() = usize::MAX;
        link.pump(MAX_CHUNKS_PER_PUMP);
        let written = pipe.to_guest.lock().unwrap().clone();
        assert_eq!(written.len(), 2 * (2 * ChunkHeader::SIZE + 3020));
        let second = 2 * ChunkHeader::SIZE + 3020;
        assert_eq!(
            written[ChunkHeader::SIZE + MessageHeader::SIZE],
            1,
            "the first, whole"
        );
        assert_eq!(
            written[second + ChunkHeader::SIZE + MessageHeader::SIZE],
            49,
            "then the newest"
        );
    }

    #[test]
    fn clients_that_come_and_go_leave_one_notice_and_no_tokens() {
        let pipe = Pipe::default();
        *pipe.room.lock().unwrap() = 10;
        let mut link = AgentLink::new(Box::new(pipe.clone()));
        assert!(link.queue_from_client(b"hello"));
        link.pump(MAX_CHUNKS_PER_PUMP);
        for _ in 0..20 {
            link.client_gone();
        }
        assert_eq!(link.to_device.len(), 2, "the chunk begun and one notice");
        *pipe.room.lock().unwrap() = usize::MAX;
        assert_eq!(
            link.pump(MAX_CHUNKS_PER_PUMP).tokens,
            0,
            "the departed client's token is not the next one's"
        );
        assert_eq!(pipe.to_guest.lock().unwrap().len(), 8 + 5 + 8 + 20);
    }

    #[test]
    fn client_flood_beyond_tokens_is_dropped() {
        let mut link = AgentLink::new(Box::new(Pipe::default()));
        for _ in 0..AGENT_TOKENS {
            assert!(link.queue_from_client(b"x"));
        }
        assert!(!link.queue_from_client(b"x"));
    }

    #[test]
    fn client_data_larger_than_a_chunk_is_refused() {
        let pipe = Pipe::default();
        *pipe.room.lock().unwrap() = usize::MAX;
        let mut link = AgentLink::new(Box::new(pipe.clone()));
        assert!(link.queue_from_client(&[7; MAX_DATA_SIZE]));
        assert!(!link.queue_from_client(&[7; MAX_DATA_SIZE + 1]));
        link.pump(MAX_CHUNKS_PER_PUMP);
        let written = pipe.to_guest.lock().unwrap().len();
        assert_eq!(
            written,
            ChunkHeader::SIZE + MAX_DATA_SIZE,
            "only the first reached the device"
        );
    }
}
