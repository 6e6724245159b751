//! Non-blocking reads and writes on a client socket, shared by the main
//! context and the display threads.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

use crate::channel::OutBuf;

mod sasl;
pub(crate) mod websocket;

/// A connected client socket: TCP, or a Unix stream socket (QEMU's
/// `-spice unix=on`, or one the host accepted itself). Everything above it
/// (TLS, the link stage, the channels) sees only bytes and a descriptor.
#[derive(Debug)]
pub enum ClientSocket {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix stream connection.
    Unix(UnixStream),
}

impl From<TcpStream> for ClientSocket {
    fn from(s: TcpStream) -> Self {
        Self::Tcp(s)
    }
}

impl From<UnixStream> for ClientSocket {
    fn from(s: UnixStream) -> Self {
        Self::Unix(s)
    }
}

impl ClientSocket {
    pub(crate) fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_nonblocking(on),
            Self::Unix(s) => s.set_nonblocking(on),
        }
    }

    /// Sends small messages at once (TCP only; Unix sockets do not batch).
    pub(crate) fn set_nodelay(&self) {
        if let Self::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }

    /// Our end's address, for channel events (none for Unix sockets: the
    /// events' addresses are IP ones).
    pub(crate) fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Self::Tcp(s) => s.local_addr().ok(),
            Self::Unix(_) => None,
        }
    }

    /// The client's address (none for Unix sockets).
    pub(crate) fn peer_addr(&self) -> io::Result<Option<std::net::SocketAddr>> {
        match self {
            Self::Tcp(s) => s.peer_addr().map(Some),
            Self::Unix(s) => s.peer_addr().map(|_| None),
        }
    }
}

impl AsRawFd for ClientSocket {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Self::Tcp(s) => s.as_raw_fd(),
            Self::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl Read for &ClientSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientSocket::Tcp(s) => (&*s).read(buf),
            ClientSocket::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &ClientSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientSocket::Tcp(s) => (&*s).write(buf),
            ClientSocket::Unix(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a read attempt found.
pub(crate) enum ReadResult {
    Data(usize),
    WouldBlock,
    Closed,
}

/// Reads what the socket has into `buf`, retrying on interruption.
pub(crate) fn read(mut stream: impl Read, buf: &mut [u8]) -> io::Result<ReadResult> {
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
pub(crate) fn flush(mut stream: impl Write, out: &mut OutBuf) -> io::Result<bool> {
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

/// A client's byte stream: the [`Transport`], and WebSocket framing over it
/// when the client's first bytes are an HTTP upgrade request (browser
/// clients such as spice-html5, on the same ports as the C server).
#[derive(Debug)]
pub(crate) struct Stream {
    inner: Transport,
    framing: Framing,
    /// The SASL security layer, on top, once authentication started one.
    sasl: Option<Box<sasl::SaslLayer>>,
}

impl Stream {
    pub(crate) fn plain(sock: ClientSocket) -> Self {
        Self {
            inner: Transport::plain(sock),
            framing: Framing::detect(),
            sasl: None,
        }
    }

    /// A TLS server connection over `sock`; the handshake starts with the
    /// client's first bytes.
    pub(crate) fn tls(sock: ClientSocket, config: &crate::tls::TlsConfig) -> Result<Self, rustls::Error> {
        Ok(Self {
            inner: Transport::tls(sock, config)?,
            framing: Framing::detect(),
            sasl: None,
        })
    }

    pub(crate) fn socket(&self) -> &ClientSocket {
        self.inner.socket()
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }

    /// The TLS cipher's key length in bits, for SASL's external SSF.
    pub(crate) fn tls_bits(&self) -> Option<u32> {
        self.inner.tls_bits()
    }

    /// Starts the SASL security layer: `unencoded` (the authentication
    /// result) goes out first as it is, then everything is encoded;
    /// `received` are bytes read past the authentication.
    pub(crate) fn start_sasl_layer(
        &mut self,
        session: Box<dyn crate::sasl::SaslSession>,
        unencoded: &mut OutBuf,
        received: &[u8],
    ) -> io::Result<()> {
        self.sasl = Some(Box::new(sasl::SaslLayer::new(session, unencoded, received)?));
        Ok(())
    }

    /// Whether a SASL security layer encodes the stream.
    pub(crate) fn has_sasl_layer(&self) -> bool {
        self.sasl.is_some()
    }

    /// Whether the client speaks through WebSocket frames.
    pub(crate) fn is_websocket(&self) -> bool {
        matches!(self.framing, Framing::WebSocket(_))
    }

    /// Whether bytes wait to be written below the caller's queue: TLS
    /// records, the WebSocket handshake reply or frames, pongs.
    pub(crate) fn wants_write(&self) -> bool {
        self.sasl.as_ref().is_some_and(|l| l.wants_write())
            || self.inner.wants_write()
            || match &self.framing {
                Framing::WebSocket(ws) => !ws.get_ref().tx.is_empty(),
                _ => false,
            }
    }

    /// Whether input may already wait inside the stream (decrypted by
    /// rustls, decoded from frames, or read while detecting WebSocket), which
    /// no readiness event announces: a reader that stopped before
    /// [`ReadResult::WouldBlock`] should read again without waiting.
    pub(crate) fn maybe_buffered(&self) -> bool {
        self.sasl.as_ref().is_some_and(|l| l.maybe_buffered())
            || self.inner.maybe_buffered()
            || match &self.framing {
                Framing::Detect(_) => false,
                Framing::Raw(pending) => !pending.is_empty(),
                Framing::WebSocket(ws) => !ws.get_ref().payload.is_empty() || ws.get_ref().maybe_more,
            }
    }

    /// Reads the client's bytes into `buf`: as they come, or the payload of
    /// WebSocket frames, decoded by the SASL layer if there is one.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<ReadResult> {
        let Some(mut layer) = self.sasl.take() else {
            return self.read_framed(buf);
        };
        let result = layer.read(buf, |wire| self.read_framed(wire));
        self.sasl = Some(layer);
        result
    }

    fn read_framed(&mut self, buf: &mut [u8]) -> io::Result<ReadResult> {
        let inner = &mut self.inner;
        let result = self.framing.read(buf, |b| inner.read(b))?;
        if let (ReadResult::Closed, Framing::WebSocket(ws)) = (&result, &mut self.framing) {
            // Best effort: the reply to the client's close.
            let _ = self.inner.flush(&mut ws.get_mut().tx);
        }
        Ok(result)
    }

    /// Writes queued output until done or the socket is full (as WebSocket
    /// binary frames when the client speaks WebSocket, encoded by the SASL
    /// layer if there is one). Returns whether everything was written.
    pub(crate) fn flush(&mut self, out: &mut OutBuf) -> io::Result<bool> {
        let Some(mut layer) = self.sasl.take() else {
            return self.flush_framed(out);
        };
        let result = layer.flush(out, |encoded| self.flush_framed(encoded));
        self.sasl = Some(layer);
        result
    }

    fn flush_framed(&mut self, out: &mut OutBuf) -> io::Result<bool> {
        let Framing::WebSocket(ws) = &mut self.framing else {
            return self.inner.flush(out);
        };
        loop {
            // Frames already made go first; new ones are made only when
            // they have gone, so the frame buffer stays bounded.
            if !self.inner.flush(&mut ws.get_mut().tx)? {
                return Ok(false);
            }
            if out.is_empty() {
                return Ok(true);
            }
            let n = websocket::frame_output(ws, out.pending())?;
            out.consume(n);
        }
    }

    /// Tells a TLS client the connection ends (best effort, before closing).
    pub(crate) fn close_notify(&mut self) {
        self.inner.close_notify();
    }
}

/// How the client's bytes are framed, found from its first bytes.
#[derive(Debug)]
pub(crate) enum Framing {
    /// Not known yet: what was read so far, all of it a prefix of an HTTP
    /// request (`GET `, as the C server checks).
    Detect(Vec<u8>),
    /// A SPICE client: its bytes as they come, the ones read while detecting first.
    Raw(websocket::Pending),
    /// A WebSocket client.
    WebSocket(Box<tungstenite::WebSocket<websocket::MemIo>>),
}

impl Framing {
    pub(crate) fn detect() -> Self {
        Self::Detect(Vec::new())
    }

    /// Reads the client's bytes into `buf` through this framing, pulling
    /// what the transport has from `source` as needed (no I/O here, so the
    /// fuzz oracle drives the same code as a connection).
    pub(crate) fn read(
        &mut self,
        buf: &mut [u8],
        mut source: impl FnMut(&mut [u8]) -> io::Result<ReadResult>,
    ) -> io::Result<ReadResult> {
        loop {
            match self {
                Self::Raw(pending) if pending.is_empty() => return source(buf),
                Self::Raw(pending) => return Ok(ReadResult::Data(pending.take_into(buf))),
                Self::Detect(seen) => {
                    let n = match source(buf)? {
                        ReadResult::Data(n) => n,
                        other => return Ok(other),
                    };
                    if let Some(next) = websocket::detect(seen, &buf[..n]) {
                        *self = next;
                    }
                }
                Self::WebSocket(ws) => {
                    if let Some(result) = websocket::read(ws, buf)? {
                        return Ok(result);
                    }
                    // Frames need more bytes from below.
                    match source(buf)? {
                        ReadResult::Data(n) => ws.get_mut().receive(&buf[..n]),
                        other => return Ok(other),
                    }
                }
            }
        }
    }

    /// The WebSocket connection, once the client upgraded.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn websocket(&mut self) -> Option<&mut tungstenite::WebSocket<websocket::MemIo>> {
        match self {
            Self::WebSocket(ws) => Some(ws),
            _ => None,
        }
    }
}

/// A client's transport: the plain socket, or TLS over it. Both are non-blocking;
/// the TLS handshake advances inside [`Stream::read`] and [`Stream::flush`]
/// as the socket allows, so it never waits on the client.
#[derive(Debug)]
struct Transport {
    sock: ClientSocket,
    tls: Option<Box<rustls::ServerConnection>>,
    /// The last TLS read returned data: rustls may hold more plaintext,
    /// which no readiness event announces.
    maybe_buffered: bool,
}

impl Transport {
    fn plain(sock: ClientSocket) -> Self {
        Self {
            sock,
            tls: None,
            maybe_buffered: false,
        }
    }

    /// A TLS server connection over `sock`; the handshake starts with the
    /// client's first bytes.
    fn tls(sock: ClientSocket, config: &crate::tls::TlsConfig) -> Result<Self, rustls::Error> {
        let conn = rustls::ServerConnection::new(config.server.clone())?;
        Ok(Self {
            sock,
            tls: Some(Box::new(conn)),
            maybe_buffered: false,
        })
    }

    fn socket(&self) -> &ClientSocket {
        &self.sock
    }

    fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The negotiated cipher's key length in bits (once the handshake is
    /// done; every suite rustls offers has 128 or 256).
    fn tls_bits(&self) -> Option<u32> {
        let suite = self.tls.as_ref()?.negotiated_cipher_suite()?;
        let name = format!("{:?}", suite.suite());
        Some(if name.contains("AES_128") { 128 } else { 256 })
    }

    /// Whether TLS records wait to be written (handshake messages, alerts,
    /// encrypted output the socket did not take).
    fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Whether decrypted input may wait inside rustls (a reader that stopped
    /// before [`ReadResult::WouldBlock`] should read again without waiting
    /// for the socket).
    fn maybe_buffered(&self) -> bool {
        self.maybe_buffered
    }

    /// Reads plaintext into `buf`: straight from the socket, or through TLS
    /// (reading and decrypting records, answering the handshake).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<ReadResult> {
        let Some(tls) = &mut self.tls else {
            return read(&self.sock, buf);
        };
        let result = Self::read_tls(tls, &self.sock, buf);
        self.maybe_buffered = matches!(result, Ok(ReadResult::Data(_)));
        result
    }

    fn read_tls(
        tls: &mut rustls::ServerConnection,
        sock: &ClientSocket,
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
            match tls.read_tls(&mut &*sock) {
                Ok(0) => return Ok(ReadResult::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadResult::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = tls.process_new_packets() {
                // Best effort: the alert telling the client why.
                let _ = tls.write_tls(&mut &*sock);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }

    /// Writes queued output until done or the socket is full; through TLS,
    /// pending records go first. Returns whether everything was written.
    fn flush(&mut self, out: &mut OutBuf) -> io::Result<bool> {
        let Some(tls) = &mut self.tls else {
            return flush(&self.sock, out);
        };
        loop {
            while tls.wants_write() {
                match tls.write_tls(&mut &self.sock) {
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
    fn close_notify(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            let _ = tls.write_tls(&mut &self.sock);
        }
    }
}

/// A listening socket: TCP, or a Unix stream socket.
///
/// The server makes its own (see [`crate::Config`]), or takes one the host
/// opened with [`crate::ServerBuilder::listen_socket`] (the C API's
/// `spice_server_set_listen_socket_fd`); it is made non-blocking when the
/// server starts.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(std::net::TcpListener),
    /// A Unix stream socket listener.
    Unix(std::os::unix::net::UnixListener),
}

impl From<std::net::TcpListener> for Listener {
    fn from(listener: std::net::TcpListener) -> Self {
        Self::Tcp(listener)
    }
}

impl From<std::os::unix::net::UnixListener> for Listener {
    fn from(listener: std::os::unix::net::UnixListener) -> Self {
        Self::Unix(listener)
    }
}

impl Listener {
    /// Switches the socket to non-blocking mode, as the accept loop needs.
    pub(crate) fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Self::Tcp(l) => l.set_nonblocking(true),
            Self::Unix(l) => l.set_nonblocking(true),
        }
    }

    /// The TCP address it listens on; `None` for a Unix socket.
    pub(crate) fn tcp_addr(&self) -> io::Result<Option<std::net::SocketAddr>> {
        match self {
            Self::Tcp(l) => l.local_addr().map(Some),
            Self::Unix(_) => Ok(None),
        }
    }

    /// A connection, with the client's address (none for Unix sockets).
    pub(crate) fn accept(&self) -> io::Result<(ClientSocket, Option<std::net::SocketAddr>)> {
        match self {
            Self::Tcp(l) => l.accept().map(|(s, peer)| (ClientSocket::Tcp(s), Some(peer))),
            Self::Unix(l) => l.accept().map(|(s, _)| (ClientSocket::Unix(s), None)),
        }
    }

    /// Listens on a Unix socket at `path`, as the C server: a path starting
    /// with `@` names a Linux abstract socket; otherwise a socket left at the
    /// path by an earlier run is removed first (only a socket: anything else
    /// there is an error, not something to delete).
    pub(crate) fn unix(path: &std::path::Path) -> io::Result<Self> {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::FileTypeExt;
        use std::os::unix::net::{SocketAddr, UnixListener};
        let bytes = path.as_os_str().as_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name)?,
            None => {
                if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                    std::fs::remove_file(path)?;
                }
                SocketAddr::from_pathname(path)?
            }
        };
        let listener = UnixListener::bind_addr(&addr)?;
        listener.set_nonblocking(true)?;
        Ok(Self::Unix(listener))
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Self::Tcp(l) => l.as_raw_fd(),
            Self::Unix(l) => l.as_raw_fd(),
        }
    }
}
