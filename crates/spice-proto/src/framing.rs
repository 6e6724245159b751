//! Data headers and message framing after the link stage.
//!
//! Full header: `{u64 serial; u16 type; u32 size; u32 sub_list}` (18 bytes).
//! Mini header, when both sides set `MINI_HEADER`: `{u16 type; u32 size}` (6 bytes).

use crate::error::DecodeError;
use crate::wire::{Reader, Writer};

/// Which data header a channel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    /// `SpiceDataHeader`, 18 bytes.
    Full,
    /// `SpiceMiniDataHeader`, 6 bytes.
    Mini,
}

impl HeaderKind {
    /// Encoded header size.
    pub fn size(self) -> usize {
        match self {
            // 8 /* serial */ + 2 /* type */ + 4 /* size */ + 4 /* sub_list */
            Self::Full => 18,
            // 2 /* type */ + 4 /* size */
            Self::Mini => 6,
        }
    }

    /// Appends a header for a message of `size` body bytes.
    pub fn encode(self, serial: u64, msg_type: u16, size: u32, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        match self {
            Self::Full => {
                w.u64(serial).u16(msg_type).u32(size).u32(0);
            }
            Self::Mini => {
                w.u16(msg_type).u32(size);
            }
        }
    }

    /// Reads a header from the start of `buf`, if it holds a whole one.
    pub fn decode(self, buf: &[u8]) -> Option<(u16, u32)> {
        if buf.len() < self.size() {
            return None;
        }
        let mut r = Reader::new(buf);
        let read = |r: &mut Reader<'_>| -> Result<(u16, u32), DecodeError> {
            if self == Self::Full {
                r.u64("serial")?;
            }
            Ok((r.u16("message type")?, r.u32("message size")?))
        };
        read(&mut r).ok()
    }
}

/// One framed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Message type.
    pub msg_type: u16,
    /// Message body.
    pub body: Vec<u8>,
}

/// Splits a byte stream into messages, refusing any larger than a limit.
///
/// Memory is bounded by one partial message plus whatever the driver pushes
/// between calls to [`Deframer::next_frame`].
#[derive(Debug)]
pub struct Deframer {
    kind: HeaderKind,
    max_body: u32,
    buf: Vec<u8>,
    start: usize,
}

impl Deframer {
    /// A deframer for `kind` headers and bodies of at most `max_body` bytes.
    pub fn new(kind: HeaderKind, max_body: u32) -> Self {
        Self {
            kind,
            max_body,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered but not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Takes the next whole message, if any.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        let pending = &self.buf[self.start..];
        let Some((msg_type, size)) = self.kind.decode(pending) else {
            self.compact();
            return Ok(None);
        };
        if size > self.max_body {
            return Err(DecodeError::TooLarge {
                what: "message body",
                value: size.into(),
                limit: self.max_body.into(),
            });
        }
        let total = self.kind.size() + size as usize;
        if pending.len() < total {
            self.compact();
            return Ok(None);
        }
        let body = pending[self.kind.size()..total].to_vec();
        self.start += total;
        Ok(Some(Frame { msg_type, body }))
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_pushes() {
        for kind in [HeaderKind::Full, HeaderKind::Mini] {
            let mut wire = Vec::new();
            kind.encode(1, 101, 3, &mut wire);
            wire.extend_from_slice(b"abc");
            kind.encode(2, 2, 0, &mut wire);
            let mut d = Deframer::new(kind, 16);
            let mut frames = Vec::new();
            for byte in &wire {
                d.push(std::slice::from_ref(byte));
                while let Some(f) = d.next_frame().unwrap() {
                    frames.push(f);
                }
            }
            assert_eq!(
                frames,
                vec![
                    Frame {
                        msg_type: 101,
                        body: b"abc".to_vec()
                    },
                    Frame {
                        msg_type: 2,
                        body: vec![]
                    }
                ]
            );
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn oversized_message_is_rejected_before_buffering_it() {
        let mut wire = Vec::new();
        HeaderKind::Mini.encode(0, 101, 1 << 30, &mut wire);
        let mut d = Deframer::new(HeaderKind::Mini, 4096);
        d.push(&wire);
        assert!(matches!(d.next_frame(), Err(DecodeError::TooLarge { .. })));
    }
}
