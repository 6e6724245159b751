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
