//! The SASL security layer: after a SASL authentication that negotiated one
//! (DIGEST-MD5's `auth-conf`, GSSAPI), every byte either way is encoded by
//! the session, as in the C server's `red_stream_sasl_read`/`_write`. It
//! sits above the WebSocket framing and TLS (never both: over TLS no layer
//! is negotiated), so the link stage and the channels see plain bytes.

use std::io;

use super::websocket::Pending;
use super::ReadResult;
use crate::channel::OutBuf;
use crate::sasl::SaslSession;

/// Wire bytes read and decoded at a time, as the C server's.
const READ_CHUNK: usize = 4096;
/// Plain bytes encoded at a time: encoded output is made only once the
/// previous chunk has gone, so it stays bounded like the caller's queue.
const ENCODE_CHUNK: usize = 64 * 1024;

pub(crate) struct SaslLayer {
    session: Box<dyn SaslSession>,
    /// Encoded bytes the transport has not taken yet.
    encoded: OutBuf,
    /// Decoded bytes the reader has not taken yet.
    decoded: Pending,
}

impl std::fmt::Debug for SaslLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslLayer")
            .field("encoded", &self.encoded.len())
            .finish_non_exhaustive()
    }
}

impl SaslLayer {
    /// A layer whose first output is `unencoded`: what was queued before
    /// the layer started (the authentication result, which goes in clear).
    /// `received`: bytes read past the authentication, already encoded.
    pub(crate) fn new(
        mut session: Box<dyn SaslSession>,
        unencoded: &mut OutBuf,
        received: &[u8],
    ) -> io::Result<Self> {
        let mut encoded = OutBuf::default();
        encoded.extend(unencoded.pending());
        unencoded.consume(unencoded.len());
        let mut decoded = Vec::new();
        if !received.is_empty() {
            session.decode(received, &mut decoded).map_err(invalid)?;
        }
        Ok(Self {
            session,
            encoded,
            decoded: Pending::new(decoded),
        })
    }

    /// Whether decoded input waits for the reader.
    pub(crate) fn maybe_buffered(&self) -> bool {
        !self.decoded.is_empty()
    }

    /// Whether encoded output waits for the transport.
    pub(crate) fn wants_write(&self) -> bool {
        !self.encoded.is_empty()
    }

    /// Reads decoded bytes into `buf`, reading and decoding from `below`
    /// as needed.
    pub(crate) fn read(
        &mut self,
        buf: &mut [u8],
        mut below: impl FnMut(&mut [u8]) -> io::Result<ReadResult>,
    ) -> io::Result<ReadResult> {
        let mut wire = [0u8; READ_CHUNK];
        loop {
            if !self.decoded.is_empty() {
                return Ok(ReadResult::Data(self.decoded.take_into(buf)));
            }
            let n = match below(&mut wire)? {
                ReadResult::Data(n) => n,
                other => return Ok(other),
            };
            // A partial packet decodes to nothing yet; read on.
            let mut out = Vec::new();
            self.session.decode(&wire[..n], &mut out).map_err(invalid)?;
            self.decoded = Pending::new(out);
        }
    }

    /// Encodes and writes `out` through `below` until done or the
    /// transport is full; returns whether everything was written.
    pub(crate) fn flush(
        &mut self,
        out: &mut OutBuf,
        mut below: impl FnMut(&mut OutBuf) -> io::Result<bool>,
    ) -> io::Result<bool> {
        loop {
            if !below(&mut self.encoded)? {
                return Ok(false);
            }
            if out.is_empty() {
                return Ok(true);
            }
            let n = out.len().min(ENCODE_CHUNK);
            self.session
                .encode(&out.pending()[..n], self.encoded.buffer())
                .map_err(invalid)?;
            out.consume(n);
        }
    }
}

fn invalid(e: crate::sasl::SaslError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use super::super::{ClientSocket, Stream};
    use super::*;
    use crate::sasl::{SaslError, SaslStep};

    /// A layer that frames each chunk as a length byte and its bytes
    /// XOR 0x5a, and decodes only whole frames, as a real one buffers.
    #[derive(Default)]
    struct Xor {
        partial: Vec<u8>,
    }

    fn frame(plain: &[u8]) -> Vec<u8> {
        plain
            .chunks(255)
            .flat_map(|c| std::iter::once(c.len() as u8).chain(c.iter().map(|b| b ^ 0x5a)))
            .collect()
    }

    impl SaslSession for Xor {
        fn mechanisms(&mut self) -> Result<String, SaslError> {
            Ok(",XOR,".into())
        }
        fn start(&mut self, _: &str, _: Option<&[u8]>) -> Result<SaslStep, SaslError> {
            Ok(SaslStep::Done(Vec::new()))
        }
        fn step(&mut self, _: Option<&[u8]>) -> Result<SaslStep, SaslError> {
            Ok(SaslStep::Done(Vec::new()))
        }
        fn ssf(&self) -> Result<u32, SaslError> {
            Ok(128)
        }
        fn encode(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), SaslError> {
            out.extend(frame(plain));
            Ok(())
        }
        fn decode(&mut self, wire: &[u8], out: &mut Vec<u8>) -> Result<(), SaslError> {
            self.partial.extend_from_slice(wire);
            while let Some(&len) = self.partial.first() {
                let len = usize::from(len);
                if len == 0 {
                    return Err(SaslError("bad frame".into()));
                }
                if self.partial.len() < 1 + len {
                    break;
                }
                out.extend(self.partial[1..=len].iter().map(|b| b ^ 0x5a));
                self.partial.drain(..=len);
            }
            Ok(())
        }
    }

    fn pair() -> (Stream, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut stream = Stream::plain(ClientSocket::Unix(ours));
        // Past WebSocket detection, as after a SPICE link.
        let mut probe = [0u8; 1];
        (&theirs).write_all(b"R").unwrap();
        assert!(matches!(stream.read(&mut probe).unwrap(), ReadResult::Data(1)));
        (stream, theirs)
    }

    fn read_all(stream: &mut Stream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 7];
        while let ReadResult::Data(n) = stream.read(&mut buf).unwrap() {
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[test]
    fn the_result_goes_in_clear_and_the_rest_through_the_layer() {
        let (mut stream, mut client) = pair();
        let mut out = OutBuf::default();
        out.extend(b"OK!!");
        // Bytes the client sent right after authenticating, already encoded.
        stream
            .start_sasl_layer(Box::new(Xor::default()), &mut out, &frame(b"early"))
            .unwrap();
        assert!(out.is_empty() && stream.has_sasl_layer());
        assert!(stream.maybe_buffered(), "decoded bytes wait for the reader");
        out.extend(b"link result and channel data");
        assert!(stream.flush(&mut out).unwrap());
        let mut wire = vec![0u8; 4 + frame(b"link result and channel data").len()];
        client.read_exact(&mut wire).unwrap();
        assert_eq!(&wire[..4], b"OK!!");
        assert_eq!(&wire[4..], frame(b"link result and channel data"));

        assert_eq!(read_all(&mut stream), b"early");
        // A frame in two writes: nothing until it is whole.
        let msg = frame(b"from the client");
        client.write_all(&msg[..5]).unwrap();
        assert!(read_all(&mut stream).is_empty());
        client.write_all(&msg[5..]).unwrap();
        assert_eq!(read_all(&mut stream), b"from the client");
    }

    #[test]
    fn large_output_is_encoded_in_bounded_chunks() {
        let (mut stream, mut client) = pair();
        let mut out = OutBuf::default();
        stream
            .start_sasl_layer(Box::new(Xor::default()), &mut out, &[])
            .unwrap();
        let plain: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        out.extend(&plain);
        // Encoded a chunk at a time, each framed on its own.
        let wire_len: usize = plain.chunks(ENCODE_CHUNK).map(|c| frame(c).len()).sum();
        let reader = std::thread::spawn(move || {
            let mut wire = vec![0u8; wire_len];
            client.read_exact(&mut wire).unwrap();
            wire
        });
        while !stream.flush(&mut out).unwrap() {
            // The socket is full: at most one chunk is encoded ahead.
            assert!(stream.sasl.as_ref().unwrap().encoded.len() <= frame(&[0; ENCODE_CHUNK]).len());
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let wire = reader.join().unwrap();
        let mut decoder = Xor::default();
        let mut decoded = Vec::new();
        decoder.decode(&wire, &mut decoded).unwrap();
        assert!(decoded == plain, "the bytes come through in order");
    }

    #[test]
    fn a_decode_error_is_an_io_error() {
        let (mut stream, mut client) = pair();
        let mut out = OutBuf::default();
        stream
            .start_sasl_layer(Box::new(Xor::default()), &mut out, &[])
            .unwrap();
        client.write_all(&[0, 1, 2]).unwrap();
        let mut buf = [0u8; 16];
        let err = stream.read(&mut buf).err().expect("a bad frame fails the read");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
