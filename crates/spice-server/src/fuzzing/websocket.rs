//! The oracle for a connection's framing: raw SPICE or WebSocket, detected
//! from the client's first bytes, then WebSocket frames decoded into the
//! SPICE stream (`socket::Framing`, the code every connection runs). All of
//! it comes before authentication.

use std::io;

use crate::socket::websocket::MAX_MESSAGE;
use crate::socket::{Framing, ReadResult};

/// A browser's upgrade request, as spice-html5 sends it.
pub const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Protocol: binary\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// How a run over the whole input ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Every byte was taken and more are awaited.
    NeedMore,
    /// The client closed (a WebSocket close frame).
    Closed,
    /// The framing was refused.
    Error,
}

/// The client's bytes: the first configures the run, the rest is read.
///
/// - bits 0..=2: the reader's buffer size (1 byte to 64 KiB);
/// - bits 3..=5: the transport's chunk size (1 byte to everything at once);
/// - bit 7 clear: the rest is the client's stream as is (an upgrade request
///   or SPICE bytes, then anything). Invariants: a stream that is not a
///   WebSocket upgrade comes out unchanged; what comes out, and how the run
///   ends, does not depend on the chunk or buffer sizes.
/// - bit 7 set: a well-formed client: [`UPGRADE`], then frames built from
///   the rest (see [`client_frames`]). Invariant: exactly the binary and
///   text payloads come out, in order, with no error, whatever the pings
///   and fragmentation around them.
pub fn websocket_framing(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let read_size = [1, 2, 5, 13, 64, 512, 4096, 65536][usize::from(control & 7)];
    let chunk = [1, 2, 3, 7, 64, 1000, 4096, usize::MAX][usize::from((control >> 3) & 7)];
    if control & 0x80 == 0 {
        let (out, end, framing) = run(rest, chunk, read_size);
        if let Framing::Raw(_) = framing {
            assert_eq!(out, rest, "raw SPICE bytes come out unchanged");
        }
        let (once, once_end, _) = run(rest, usize::MAX, 65536);
        assert_eq!(out, once, "payload depends on how the bytes were split");
        assert_eq!(end, once_end, "the outcome depends on how the bytes were split");
    } else {
        let (stream, expected) = client_frames(rest);
        let (out, end, framing) = run(&stream, chunk, read_size);
        assert!(
            matches!(framing, Framing::WebSocket(_)),
            "a valid upgrade is a WebSocket client"
        );
        assert_eq!(end, End::NeedMore, "well-formed frames are taken");
        assert!(out == expected, "payload of well-formed frames differs");
    }
}

/// Reads `input` through a fresh connection's framing, handed over by the
/// transport `chunk` bytes at a time into a `read_size` buffer, until the
/// input is used up or the run ends.
fn run(input: &[u8], chunk: usize, read_size: usize) -> (Vec<u8>, End, Framing) {
    let mut framing = Framing::detect();
    let mut buf = vec![0; read_size];
    let mut out = Vec::new();
    let mut at = 0;
    // Every read either takes input or hands out payload; an input can make
    // at most this many (a bound, so a loop would fail the oracle).
    let mut reads_left = 2 * input.len() + 16;
    let end = loop {
        reads_left = reads_left.checked_sub(1).expect("reads make progress");
        let result = framing.read(&mut buf, |b| {
            if at == input.len() {
                return Ok(ReadResult::WouldBlock);
            }
            let n = chunk.min(b.len()).min(input.len() - at);
            b[..n].copy_from_slice(&input[at..at + n]);
            at += n;
            Ok(ReadResult::Data(n))
        });
        match result {
            Ok(ReadResult::Data(n)) => {
                assert!(n > 0 && n <= read_size, "a read hands out 1..=buffer bytes");
                out.extend_from_slice(&buf[..n]);
            }
            Ok(ReadResult::WouldBlock) => break End::NeedMore,
            Ok(ReadResult::Closed) => break End::Closed,
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData, "refusals are InvalidData");
                break End::Error;
            }
        }
        if let Some(ws) = framing.websocket() {
            let io = ws.get_ref();
            // Nothing is buffered beyond the input and one message.
            assert!(
                io.payload_len() <= MAX_MESSAGE,
                "payload buffered beyond a message"
            );
        }
    };
    assert!(out.len() <= input.len(), "more payload than input");
    (out, end, framing)
}

/// [`UPGRADE`] then masked client frames built from `spec`, and the payload
/// they carry. Each frame takes a kind byte `k`, a length byte `l`, four
/// mask bytes, then `l` payload bytes (fewer at the end of `spec`):
///
/// - `k & 3 == 0`: one binary frame;
/// - `1`: a ping (at most 125 bytes), which carries no payload;
/// - `2`: a text frame (its bytes are passed on, as the C server does);
///   the payload is made valid UTF-8 by clearing each byte's high bit;
/// - `3`: a binary message in two fragments (a continuation follows);
/// - `k & 4`: the length takes the 16-bit form, `l * 300` bytes.
pub fn client_frames(mut spec: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut stream = UPGRADE.to_vec();
    let mut payload = Vec::new();
    let take = |spec: &mut &[u8], n: usize| -> Vec<u8> {
        let n = n.min(spec.len());
        let (head, tail) = spec.split_at(n);
        *spec = tail;
        head.to_vec()
    };
    while spec.len() >= 2 {
        let (kind, len) = (spec[0], usize::from(spec[1]));
        spec = &spec[2..];
        let mask: [u8; 4] = take(&mut spec, 4).try_into().unwrap_or([0x5a; 4]);
        let len = if kind & 4 != 0 { len * 300 } else { len };
        let mut body = take(&mut spec, len);
        match kind & 3 {
            0 => {
                push_frame(&mut stream, 0x82, mask, &body);
                payload.extend_from_slice(&body);
            }
            1 => {
                body.truncate(125);
                push_frame(&mut stream, 0x89, mask, &body);
            }
            2 => {
                body.iter_mut().for_each(|b| *b &= 0x7f);
                push_frame(&mut stream, 0x81, mask, &body);
                payload.extend_from_slice(&body);
            }
            _ => {
                let (first, second) = body.split_at(body.len() / 2);
                push_frame(&mut stream, 0x02, mask, first);
                push_frame(&mut stream, 0x80, mask, second);
                payload.extend_from_slice(&body);
            }
        }
    }
    (stream, payload)
}

/// Appends one masked frame (first byte `head`: FIN and opcode).
fn push_frame(stream: &mut Vec<u8>, head: u8, mask: [u8; 4], body: &[u8]) {
    stream.push(head);
    match u16::try_from(body.len()) {
        Ok(n) if n < 126 => stream.push(0x80 | n as u8),
        Ok(n) => {
            stream.push(0x80 | 126);
            stream.extend_from_slice(&n.to_be_bytes());
        }
        Err(_) => {
            stream.push(0x80 | 127);
            stream.extend_from_slice(&(body.len() as u64).to_be_bytes());
        }
    }
    stream.extend_from_slice(&mask);
    stream.extend(body.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_frames_and_raw_bytes() {
        // Binary, ping, text, fragmented, long binary; split one byte at a time.
        let mut spec = Vec::new();
        for (kind, len) in [(0u8, 10u8), (1, 20), (2, 5), (3, 9), (4, 1)] {
            spec.extend([kind, len, 1, 2, 3, 4]);
            let n = if kind & 4 != 0 {
                usize::from(len) * 300
            } else {
                usize::from(len)
            };
            spec.extend((0..n).map(|i| i as u8 | 0x80));
        }
        let (stream, expected) = client_frames(&spec);
        assert_eq!(expected.len(), 10 + 5 + 9 + 300);
        let (out, end, _) = run(&stream, 1, 7);
        assert_eq!((out == expected, end), (true, End::NeedMore));
        for control in [0x80u8, 0x87, 0xb8, 0xff] {
            let mut data = vec![control];
            data.extend_from_slice(&spec);
            websocket_framing(&data);
        }
        // SPICE's magic: raw, unchanged, in any split.
        websocket_framing(b"\x09REDQ\x02\x00\x00\x00\x02\x00\x00\x00");
        // An upgrade then garbage: refused the same way in any split.
        let mut data = vec![0x00];
        data.extend_from_slice(UPGRADE);
        data.extend_from_slice(&[0xff; 40]);
        websocket_framing(&data);
    }
}
