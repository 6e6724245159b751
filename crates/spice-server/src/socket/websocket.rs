//! WebSocket (RFC 6455) under the SPICE stream, for browser clients such as
//! spice-html5: detected from the client's first bytes on the ordinary ports
//! (plain or TLS), as the C server does. The upgrade request is answered
//! here; framing (masking, fragmentation, ping/pong, close) is tungstenite's,
//! driven sans-IO through [`MemIo`] so the non-blocking transport below
//! (plain or TLS) stays ours. Everything is bounded: the request, incoming
//! frames and messages, and the frames made ahead of the socket.

use std::io::{self, Read, Write};

use base64ct::Encoding;
use sha1::{Digest, Sha1};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Bytes, Message, WebSocket};

use super::{Framing, ReadResult};
use crate::channel::OutBuf;

/// Largest upgrade request taken (the C server reads at most 4 KiB; a
/// browser's is about 500 bytes).
pub(crate) const MAX_REQUEST: usize = 4096;
/// Largest incoming frame payload and message. SPICE client messages are a
/// few KiB at most; this leaves room for clients that batch them.
pub(crate) const MAX_MESSAGE: usize = 256 * 1024;
/// Output is cut into binary frames of at most this much.
const MAX_OUT_FRAME: usize = 64 * 1024;
/// RFC 6455's key suffix for `Sec-WebSocket-Accept`.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Bytes read ahead, handed out in order.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    buf: Vec<u8>,
    at: usize,
}

impl Pending {
    pub(crate) fn new(buf: Vec<u8>) -> Self {
        Self { buf, at: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.at >= self.buf.len()
    }

    /// Bytes not handed out yet.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn len(&self) -> usize {
        self.buf.len().saturating_sub(self.at)
    }

    /// Copies as much as fits into `out`; returns how much.
    pub(crate) fn take_into(&mut self, out: &mut [u8]) -> usize {
        let n = (self.buf.len() - self.at).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        if self.is_empty() {
            self.buf = Vec::new();
            self.at = 0;
        }
        n
    }
}

/// tungstenite's "socket": raw bytes received (`rx`), frames to send (`tx`),
/// and the decoded payload not yet handed to the reader.
#[derive(Debug, Default)]
pub(crate) struct MemIo {
    pub(crate) rx: Pending,
    pub(crate) tx: OutBuf,
    pub(crate) payload: Pending,
    /// The last [`read`] handed out payload: more complete frames may wait
    /// in `rx` or in tungstenite's buffer, which no readiness event
    /// announces. Cleared once a read finds it needs more bytes, so a
    /// client holding back the end of a frame makes no busy loop.
    pub(crate) maybe_more: bool,
}

impl MemIo {
    /// Decoded payload not handed to the reader yet.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn payload_len(&self) -> usize {
        self.payload.len()
    }

    /// Appends bytes read from the transport (only once `rx` is drained:
    /// [`read`] consumes all it can before asking for more).
    pub(crate) fn receive(&mut self, bytes: &[u8]) {
        if self.rx.is_empty() {
            self.rx = Pending::new(bytes.to_vec());
        } else {
            self.rx.buf.extend_from_slice(bytes);
        }
    }
}

impl Read for MemIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rx.is_empty() {
            // Not the end of the stream: the transport has nothing more yet.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(self.rx.take_into(buf))
    }
}

impl Write for MemIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx.extend(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Takes `new` bytes from a client whose framing is not known yet. Returns
/// the framing once known: raw SPICE as soon as the bytes stop looking like
/// `GET `, WebSocket once a complete upgrade request has been answered. A
/// request that is not a WebSocket upgrade (or too long) is raw too, as in
/// the C server: the link stage then answers `INVALID_MAGIC`.
pub(crate) fn detect(seen: &mut Vec<u8>, new: &[u8]) -> Option<Framing> {
    seen.extend_from_slice(new);
    let raw = |seen: &mut Vec<u8>| Some(Framing::Raw(Pending::new(std::mem::take(seen))));
    if !b"GET ".starts_with(&seen[..seen.len().min(4)]) {
        return raw(seen);
    }
    let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
        if seen.len() > MAX_REQUEST {
            tracing::debug!("websocket upgrade request too long");
            return raw(seen);
        }
        return None;
    };
    let end = end + 4;
    let reply = match handshake_reply(&seen[..end]) {
        Ok(_) if end > MAX_REQUEST => Err(invalid("websocket upgrade request too long")),
        other => other,
    };
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => {
            tracing::debug!(error = %e, "not a websocket upgrade");
            return raw(seen);
        }
    };
    let mut io = MemIo::default();
    // A client may send frames right behind its request.
    io.receive(&seen[end..]);
    io.tx.extend(reply.as_bytes());
    seen.clear();
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
        .max_frame_size(Some(MAX_MESSAGE))
        .max_message_size(Some(MAX_MESSAGE));
    tracing::debug!("websocket client");
    Some(Framing::WebSocket(Box::new(WebSocket::from_raw_socket(
        io,
        Role::Server,
        Some(config),
    ))))
}

/// The `101 Switching Protocols` answer to an upgrade request, or why it is
/// refused: no `Sec-WebSocket-Key`, or subprotocols offered without
/// `binary` (the C server's checks).
fn handshake_reply(request: &[u8]) -> io::Result<String> {
    let text = std::str::from_utf8(request).map_err(|_| invalid("websocket request is not text"))?;
    let mut key = None;
    let mut protocol = None;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(value.trim());
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            protocol = Some(value.trim());
        }
    }
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| invalid("websocket request without Sec-WebSocket-Key"))?;
    let binary = match protocol {
        None => false,
        Some(p) if p.split(',').any(|t| t.trim() == "binary") => true,
        Some(_) => return Err(invalid("websocket subprotocols offered without binary")),
    };
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{}\r\n",
        accept_key(key),
        if binary {
            "Sec-WebSocket-Protocol: binary\r\n"
        } else {
            ""
        }
    ))
}

/// `Sec-WebSocket-Accept` for a client's key.
fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64ct::Base64::encode_string(&sha.finalize())
}

/// Hands decoded payload to `buf`. `None`: the frames need more bytes from
/// the transport. Pings are answered (the pong waits in `tx`), a close is
/// answered and reported as the end of the stream.
pub(crate) fn read(ws: &mut WebSocket<MemIo>, buf: &mut [u8]) -> io::Result<Option<ReadResult>> {
    use tungstenite::Error;
    loop {
        let io = ws.get_mut();
        if !io.payload.is_empty() {
            io.maybe_more = true;
            return Ok(Some(ReadResult::Data(io.payload.take_into(buf))));
        }
        io.maybe_more = false;
        match ws.read() {
            Ok(Message::Binary(data)) => ws.get_mut().payload = Pending::new(data.into()),
            // The C server passes text frames' bytes on as well.
            Ok(Message::Text(text)) => ws.get_mut().payload = Pending::new(text.as_str().as_bytes().to_vec()),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Ok(Message::Close(_)) => {
                // Queues the close reply for the caller's last flush.
                let _ = ws.flush();
                return Ok(Some(ReadResult::Closed));
            }
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                // Moves a queued pong into `tx`.
                let _ = ws.flush();
                return Ok(None);
            }
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => return Ok(Some(ReadResult::Closed)),
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

/// Puts the start of `data` into one binary frame in `tx`; returns how much.
pub(crate) fn frame_output(ws: &mut WebSocket<MemIo>, data: &[u8]) -> io::Result<usize> {
    let n = data.len().min(MAX_OUT_FRAME);
    ws.send(Message::Binary(Bytes::copy_from_slice(&data[..n])))
        .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn spice_bytes_are_raw_at_once() {
        let mut seen = Vec::new();
        let Some(Framing::Raw(mut pending)) = detect(&mut seen, b"REDQ\x02\x00") else {
            panic!("raw");
        };
        let mut out = [0u8; 16];
        assert_eq!(pending.take_into(&mut out), 6);
        assert_eq!(&out[..4], b"REDQ");
    }

    #[test]
    fn request_split_anywhere_and_refusals() {
        let request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: binary\r\n\r\n";
        let mut seen = Vec::new();
        for b in &request[..request.len() - 1] {
            assert!(detect(&mut seen, std::slice::from_ref(b)).is_none());
        }
        let Some(Framing::WebSocket(ws)) = detect(&mut seen, b"\n") else {
            panic!("websocket");
        };
        let reply = String::from_utf8(ws.get_ref().tx.pending().to_vec()).unwrap();
        assert!(reply.starts_with("HTTP/1.1 101 "), "{reply}");
        assert!(reply.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(reply.contains("Sec-WebSocket-Protocol: binary\r\n"));

        // Not an upgrade: raw, for the link stage's INVALID_MAGIC.
        let is_raw = |bytes: &[u8]| matches!(detect(&mut Vec::new(), bytes), Some(Framing::Raw(_)));
        assert!(is_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(is_raw(
            b"GET / HTTP/1.1\r\nSec-WebSocket-Key: a\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
        ));
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_REQUEST));
        assert!(is_raw(&long));
    }
}
