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
