//! Fuzz oracles for the state machines of the main context, driven by
//! arbitrary sequences of client messages (`cargo-fuzz` targets in `fuzz/`,
//! through `spice-fuzzing`). Built only with the `fuzzing` feature: the
//! state machines are crate-private, so their oracles live here, as
//! `spice_qxl::fuzzing` does for the QXL parsers.
//!
//! Every oracle accepts any byte slice. It must not panic, loop forever or
//! allocate without bound; the only panics allowed are its assertions, each
//! an invariant of this crate.
//!
//! - [`main_sequence`]: the main channel (`channel::main`) with the
//!   session around it as the server's dispatch runs it: mouse modes, the
//!   channel list, the guest agent both ways, reconnects.
//! - [`agent_messages`]: the same session, with a step grammar that mostly
//!   speaks `MAIN_AGENT_START`/`DATA`/`TOKEN`, so the client → agent path
//!   (gathering `VDAgentMessage`s, monitors configurations, chunks for the
//!   device, tokens) gets the fuzzer's attention.
//! - [`inputs_sequence`]: the inputs channel and the held-keys tracker.
//! - [`record_sequence`]: the record channel with the host's record handle.
//! - [`spicevmc_sequence`]: a usbredir or port channel and its device.
//! - [`websocket_framing`]: a connection's framing before the link (raw
//!   SPICE or WebSocket, detected from the first bytes), with its own input
//!   layout.
//!
//! # Input layout
//!
//! The first byte configures the oracle (header kind, capabilities,
//! devices; see each oracle). The rest is a sequence of steps, each starting
//! with one byte `b` ([`InputBuilder`] writes them):
//!
//! - `0x00..=0x1f`: a client message of type `b` (base messages are 1..=6);
//!   `0x20..=0x3f`: a client message of type `101 + (b & 0x1f)` (channel
//!   messages); `0xc0..=0xff`: a client message whose type is the next two
//!   bytes (little endian). The body follows, preceded by its length: one
//!   byte, or `0xff` and two bytes (little endian). A body cut short by the
//!   end of the input is what is left.
//! - `0x40..=0x7f`: time passes, `(b & 0x3f)²` milliseconds.
//! - `0x80..=0xbf`: host action `b & 0x3f`, meaning per oracle; some read
//!   argument bytes after it.
//!
//! [`agent_messages`] reads `0x00..=0x7f` differently, see there.

pub mod inputs;
pub mod record;
pub mod session;
pub mod spicevmc;
pub mod websocket;

use std::time::Duration;

use spice_proto::{Deframer, Frame, HeaderKind};

pub use inputs::inputs_sequence;
pub use record::record_sequence;
pub use session::{agent_messages, main_sequence};
pub use spicevmc::spicevmc_sequence;
pub use websocket::websocket_framing;

use crate::channel::OutBuf;

/// A client message body's length is given in two bytes after this one.
const LONG_BODY: u8 = 0xff;

/// One step of an oracle's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step<'a> {
    /// A client message.
    Client { msg_type: u16, body: &'a [u8] },
    /// Time passes.
    Wait(Duration),
    /// A host action, `0..=63`; its arguments, if any, follow in the input.
    Host(u8),
    /// [`agent_messages`] only: `MAIN_AGENT_TOKEN` with this many tokens.
    AgentToken(u32),
    /// [`agent_messages`] only: `MAIN_AGENT_START` with this many tokens.
    AgentStart(u32),
}

/// How the low half of the step bytes reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grammar {
    /// As in the module documentation.
    Messages,
    /// `0x00..=0x3f`: `MAIN_AGENT_DATA` (length and body follow);
    /// `0x40..=0x5f`: `MAIN_AGENT_TOKEN` with `b & 0x1f` tokens;
    /// `0x60..=0x7f`: `MAIN_AGENT_START` with `b & 0x1f` tokens.
    Agent,
}

/// Reads steps and their arguments off the input.
#[derive(Debug)]
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    /// The next byte, if any.
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    /// Up to `n` bytes: fewer at the end of the input.
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        taken
    }

    fn u16(&mut self) -> u16 {
        let b = self.bytes(2);
        u16::from_le_bytes([b.first().copied().unwrap_or(0), b.get(1).copied().unwrap_or(0)])
    }

    /// A length-prefixed body.
    fn body(&mut self) -> &'a [u8] {
        let len = match self.byte().unwrap_or(0) {
            LONG_BODY => usize::from(self.u16()),
            n => usize::from(n),
        };
        self.bytes(len)
    }

    fn step(&mut self, grammar: Grammar) -> Option<Step<'a>> {
        use spice_proto::msg::main::client_type::AGENT_DATA;
        let b = self.byte()?;
        Some(match (b >> 6, grammar) {
            (0, Grammar::Messages) => Step::Client {
                msg_type: if b & 0x20 == 0 {
                    u16::from(b)
                } else {
                    101 + u16::from(b & 0x1f)
                },
                body: self.body(),
            },
            (0, Grammar::Agent) => Step::Client {
                msg_type: AGENT_DATA,
                body: self.body(),
            },
            (1, Grammar::Messages) => {
                let units = u64::from(b & 0x3f);
                Step::Wait(Duration::from_millis(units * units))
            }
            (1, Grammar::Agent) if b & 0x20 == 0 => Step::AgentToken(u32::from(b & 0x1f)),
            (1, Grammar::Agent) => Step::AgentStart(u32::from(b & 0x1f)),
            (2, _) => Step::Host(b & 0x3f),
            _ => Step::Client {
                msg_type: self.u16(),
                body: self.body(),
            },
        })
    }
}

/// Writes oracle inputs step by step (for seeds and tests).
#[derive(Debug, Clone, Default)]
pub struct InputBuilder(Vec<u8>);

impl InputBuilder {
    /// An input starting with the configuration byte `config`.
    pub fn new(config: u8) -> Self {
        Self(vec![config])
    }

    /// A client message (for [`agent_messages`], only through the two-byte
    /// type form, so that it is read as a message, not an agent step).
    pub fn client(mut self, msg_type: u16, body: &[u8]) -> Self {
        match msg_type {
            0..=0x1f => self.0.push(msg_type as u8),
            101..=132 => self.0.push(0x20 | (msg_type - 101) as u8),
            _ => {
                self.0.push(0xc0);
                self.0.extend(msg_type.to_le_bytes());
            }
        }
        self.length_prefixed(body)
    }

    /// A client message in the two-byte type form, which every grammar reads.
    pub fn typed_client(mut self, msg_type: u16, body: &[u8]) -> Self {
        self.0.push(0xc0);
        self.0.extend(msg_type.to_le_bytes());
        self.length_prefixed(body)
    }

    /// [`agent_messages`]: a `MAIN_AGENT_DATA` carrying `payload`.
    pub fn agent_data(mut self, payload: &[u8]) -> Self {
        self.0.push(0);
        self.length_prefixed(payload)
    }

    /// [`agent_messages`]: `MAIN_AGENT_TOKEN` with `tokens` (at most 31).
    pub fn agent_token(mut self, tokens: u8) -> Self {
        self.0.push(0x40 | (tokens & 0x1f));
        self
    }

    /// [`agent_messages`]: `MAIN_AGENT_START` with `tokens` (at most 31).
    pub fn agent_start(mut self, tokens: u8) -> Self {
        self.0.push(0x60 | (tokens & 0x1f));
        self
    }

    /// `units²` milliseconds pass (`units` at most 63).
    pub fn wait(mut self, units: u8) -> Self {
        self.0.push(0x40 | (units & 0x3f));
        self
    }

    /// Host action `action` (at most 63), followed by its argument bytes.
    pub fn host(mut self, action: u8, args: &[u8]) -> Self {
        self.0.push(0x80 | (action & 0x3f));
        self.0.extend_from_slice(args);
        self
    }

    /// The input.
    pub fn build(self) -> Vec<u8> {
        self.0
    }

    fn length_prefixed(mut self, body: &[u8]) -> Self {
        let len = body.len().min(usize::from(u16::MAX));
        if len < usize::from(LONG_BODY) {
            self.0.push(len as u8);
        } else {
            self.0.push(LONG_BODY);
            self.0.extend((len as u16).to_le_bytes());
        }
        self.0.extend_from_slice(&body[..len]);
        self
    }
}

/// What the client reads: the frames a channel queued, checked as they come.
#[derive(Debug)]
struct ClientView {
    deframer: Deframer,
    /// Bytes of the channel's output already fed to `deframer`.
    fed: usize,
}

impl ClientView {
    /// The largest server message the oracles expect: the main channel's
    /// net-test ping (250 KiB of padding).
    const MAX_BODY: u32 = 1 << 20;

    fn new(header: HeaderKind) -> Self {
        Self {
            deframer: Deframer::new(header, Self::MAX_BODY),
            fed: 0,
        }
    }

    /// The messages queued since the last call: whole, well-framed messages
    /// only, since a channel queues nothing else.
    fn frames(&mut self, out: &OutBuf) -> Vec<Frame> {
        let pending = out.pending();
        self.deframer.push(&pending[self.fed..]);
        self.fed = pending.len();
        let mut frames = Vec::new();
        loop {
            match self.deframer.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => panic!("the server queued a message that does not frame: {e}"),
            }
        }
        assert_eq!(self.deframer.buffered(), 0, "a partial message queued");
        frames
    }

    /// The socket took everything queued.
    fn drain(&mut self, out: &mut OutBuf) {
        assert_eq!(self.fed, out.len(), "output drained unread");
        out.consume(out.len());
        self.fed = 0;
    }
}

/// Reads a little-endian `u16` at `at` of a server message body.
fn le16(body: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([body[at], body[at + 1]])
}

/// Reads a little-endian `u32` at `at` of a server message body.
fn le32(body: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_and_cursor_agree() {
        let long = vec![7u8; 300];
        let input = InputBuilder::new(0)
            .client(3, b"pong")
            .client(105, &[2, 0])
            .client(999, &long)
            .wait(5)
            .host(9, &[1, 2])
            .build();
        let mut c = Cursor::new(&input[1..]);
        let g = Grammar::Messages;
        assert_eq!(
            c.step(g),
            Some(Step::Client {
                msg_type: 3,
                body: b"pong"
            })
        );
        assert_eq!(
            c.step(g),
            Some(Step::Client {
                msg_type: 105,
                body: &[2, 0]
            })
        );
        assert_eq!(
            c.step(g),
            Some(Step::Client {
                msg_type: 999,
                body: &long
            })
        );
        assert_eq!(c.step(g), Some(Step::Wait(Duration::from_millis(25))));
        assert_eq!(c.step(g), Some(Step::Host(9)));
        assert_eq!(c.bytes(5), [1, 2]);
        assert_eq!(c.step(g), None);

        let agent = InputBuilder::new(0)
            .agent_data(b"abc")
            .agent_token(3)
            .agent_start(10)
            .typed_client(2, &[])
            .build();
        let mut c = Cursor::new(&agent[1..]);
        let g = Grammar::Agent;
        let data = spice_proto::msg::main::client_type::AGENT_DATA;
        assert_eq!(
            c.step(g),
            Some(Step::Client {
                msg_type: data,
                body: b"abc"
            })
        );
        assert_eq!(c.step(g), Some(Step::AgentToken(3)));
        assert_eq!(c.step(g), Some(Step::AgentStart(10)));
        assert_eq!(
            c.step(g),
            Some(Step::Client {
                msg_type: 2,
                body: &[]
            })
        );
    }
}
