//! Non-blocking reads and writes on a client socket, shared by the main
//! context and the display threads.

use std::io::{self, Read, Write};
use std::net::TcpStream;

use crate::channel::OutBuf;

/// What a read attempt found.
pub(crate) enum ReadResult {
    Data(usize),
    WouldBlock,
    Closed,
}

/// Reads what the socket has into `buf`, retrying on interruption.
pub(crate) fn read(mut stream: &TcpStream, buf: &mut [u8]) -> io::Result<ReadResult> {
    loop {
        return match stream.read(buf) {
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
pub(crate) fn flush(mut stream: &TcpStream, out: &mut OutBuf) -> io::Result<bool> {
    loop {
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

/// A client's transport: plain TCP, or TLS over TCP. Both are non-blocking;
/// the TLS handshake advances inside [`Stream::read`] and [`Stream::flush`]
/// as the socket allows, so it never waits on the client.
#[derive(Debug)]
pub(crate) struct Stream {
    tcp: TcpStream,
    tls: Option<Box<rustls::ServerConnection>>,
    /// The last TLS read returned data: rustls may hold more plaintext,
    /// which no readiness event announces.
    maybe_buffered: bool,
}

impl Stream {
    pub(crate) fn plain(tcp: TcpStream) -> Self {
        Self {
            tcp,
            tls: None,
            maybe_buffered: false,
        }
    }

    /// A TLS server connection over `tcp`; the handshake starts with the
    /// client's first bytes.
    pub(crate) fn tls(tcp: TcpStream, config: &crate::tls::TlsConfig) -> Result<Self, rustls::Error> {
        let conn = rustls::ServerConnection::new(config.server.clone())?;
        Ok(Self {
            tcp,
            tls: Some(Box::new(conn)),
            maybe_buffered: false,
        })
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether TLS records wait to be written (handshake messages, alerts,
    /// encrypted output the socket did not take).
    pub(crate) fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Whether decrypted input may wait inside rustls (a reader that stopped
    /// before [`ReadResult::WouldBlock`] should read again without waiting
    /// for the socket).
    pub(crate) fn maybe_buffered(&self) -> bool {
        self.maybe_buffered
    }

    /// Reads plaintext into `buf`: straight from the socket, or through TLS
    /// (reading and decrypting records, answering the handshake).
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<ReadResult> {
        let Some(tls) = &mut self.tls else {
            return read(&self.tcp, buf);
        };
        let result = Self::read_tls(tls, &self.tcp, buf);
        self.maybe_buffered = matches!(result, Ok(ReadResult::Data(_)));
        result
    }

    fn read_tls(
        tls: &mut rustls::ServerConnection,
        tcp: &TcpStream,
        buf: &mut [u8],
    ) -> io::Result<ReadResult> {
        loop {
            match tls.reader().read(buf) {
                Ok(0) => return Ok(ReadResult::Closed),
                Ok(n) => return Ok(ReadResult::Data(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(ReadResult::Closed),
                Err(e) => return Err(e),
            }
            match tls.read_tls(&mut &*tcp) {
                Ok(0) => return Ok(ReadResult::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadResult::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = tls.process_new_packets() {
                // Best effort: the alert telling the client why.
                let _ = tls.write_tls(&mut &*tcp);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }

    /// Writes queued output until done or the socket is full; through TLS,
    /// pending records go first. Returns whether everything was written.
    pub(crate) fn flush(&mut self, out: &mut OutBuf) -> io::Result<bool> {
        let Some(tls) = &mut self.tls else {
            return flush(&self.tcp, out);
        };
        loop {
            while tls.wants_write() {
                match tls.write_tls(&mut &self.tcp) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if out.is_empty() {
                return Ok(true);
            }
            // rustls takes at most its buffer limit (64 KiB) at a time.
            let n = tls.writer().write(out.pending())?;
            if n == 0 {
                return Ok(false);
            }
            out.consume(n);
        }
    }

    /// Tells a TLS client the connection ends (best effort, before closing).
    pub(crate) fn close_notify(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            let _ = tls.write_tls(&mut &self.tcp);
        }
    }
}
