//! A scripted guest agent behind the server's agent port: what spice-vdagent
//! would write and read, with the wire format built here from `vd_agent.h`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spice_proto::agent::{ChunkHeader, MessageHeader, PORT_CLIENT};
use spice_server::CharDevice;

/// `VD_AGENT_CAP_*` bits the fake agent announces.
pub mod cap {
    /// `VD_AGENT_CAP_MONITORS_CONFIG`.
    pub const MONITORS_CONFIG: u32 = 1;
    /// `VD_AGENT_CAP_CLIPBOARD_BY_DEMAND`.
    pub const CLIPBOARD_BY_DEMAND: u32 = 5;
    /// `VD_AGENT_CAP_CLIPBOARD_SELECTION`.
    pub const CLIPBOARD_SELECTION: u32 = 6;
}

#[derive(Default)]
struct Pipes {
    from_guest: VecDeque<u8>,
    to_guest: Vec<u8>,
}

/// The device the server holds; clone the controlling [`FakeAgent`] to script it.
#[derive(Clone, Default)]
pub struct FakeAgent {
    pipes: Arc<Mutex<Pipes>>,
}

impl CharDevice for FakeAgent {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut p = self.pipes.lock().unwrap();
        let n = buf.len().min(p.from_guest.len());
        for b in buf.iter_mut().take(n) {
            *b = p.from_guest.pop_front().unwrap_or_default();
        }
        n
    }

    fn write(&mut self, data: &[u8]) -> usize {
        self.pipes.lock().unwrap().to_guest.extend_from_slice(data);
        data.len()
    }
}

/// A message the fake agent received, with the port its chunk came on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// `VDP_*_PORT`.
    pub port: u32,
    /// `VD_AGENT_*` type.
    pub message_type: u32,
    /// Message data.
    pub data: Vec<u8>,
}

impl FakeAgent {
    /// A new agent with empty pipes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes one message towards the client (one chunk; `data` must be small).
    pub fn send(&self, message_type: u32, data: &[u8]) {
        let mut message = Vec::new();
        MessageHeader::encode_message(message_type, data, &mut message);
        let mut chunk = Vec::new();
        ChunkHeader::encode_chunk(PORT_CLIENT, &message, &mut chunk);
        self.pipes.lock().unwrap().from_guest.extend(chunk);
    }

    /// Bytes the guest has not read yet.
    pub fn unread(&self) -> usize {
        self.pipes.lock().unwrap().from_guest.len()
    }

    /// Parses everything written to the guest so far into messages
    /// (chunks reassembled per port).
    pub fn received(&self) -> Vec<Received> {
        let bytes = self.pipes.lock().unwrap().to_guest.clone();
        let mut streams: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut at = 0;
        while at + ChunkHeader::SIZE <= bytes.len() {
            let Ok(h) = ChunkHeader::decode(bytes[at..at + 8].try_into().unwrap()) else {
                break;
            };
            let end = at + 8 + h.size as usize;
            if end > bytes.len() {
                break;
            }
            match streams.iter_mut().find(|(p, _)| *p == h.port) {
                Some((_, s)) => s.extend_from_slice(&bytes[at + 8..end]),
                None => streams.push((h.port, bytes[at + 8..end].to_vec())),
            }
            at = end;
        }
        let mut out = Vec::new();
        for (port, stream) in streams {
            let mut i = 0;
            while i + MessageHeader::SIZE <= stream.len() {
                let Ok(h) = MessageHeader::decode(&stream[i..]) else {
                    break;
                };
                let end = i + MessageHeader::SIZE + h.size as usize;
                if end > stream.len() {
                    break;
                }
                out.push(Received {
                    port,
                    message_type: h.message_type,
                    data: stream[i + MessageHeader::SIZE..end].to_vec(),
                });
                i = end;
            }
        }
        out
    }

    /// Waits until a received message matches `want`.
    pub fn wait_for(&self, timeout: Duration, want: impl Fn(&Received) -> bool) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(r) = self.received().into_iter().find(|r| want(r)) {
                return Some(r);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// `VD_AGENT_ANNOUNCE_CAPABILITIES` data: `{u32 request; u32 caps[1]}`.
pub fn announce_capabilities(request: bool, caps: &[u32]) -> Vec<u8> {
    let word = caps.iter().fold(0u32, |w, &c| w | (1 << c));
    let mut out = u32::from(request).to_le_bytes().to_vec();
    out.extend_from_slice(&word.to_le_bytes());
    out
}

/// `VD_AGENT_CLIPBOARD_GRAB` data with the selection byte: `{u8 selection; u8 pad[3]; u32 types[]}`.
pub fn clipboard_grab(selection: u8, types: &[u32]) -> Vec<u8> {
    let mut out = vec![selection, 0, 0, 0];
    for t in types {
        out.extend_from_slice(&t.to_le_bytes());
    }
    out
}
