//! A loopback TCP proxy between the client and the server that reads the
//! display channel's server messages as they pass, to count which image
//! encodings the server chose. Used in a separate, untimed run: the extra hop
//! would distort the timed ones.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// `SPICE_CHANNEL_DISPLAY`.
const CHANNEL_DISPLAY: u8 = 2;
/// Not known yet.
const CHANNEL_UNKNOWN: u8 = 0;
/// `SpiceLinkHeader`: magic, major, minor, size.
const LINK_HEADER: usize = 16;
/// `SpiceMiniDataHeader`: type u16, size u32.
const MINI_HEADER: usize = 6;

/// Images of one `SPICE_IMAGE_TYPE_*`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImageCount {
    /// Draw messages carrying such an image.
    pub count: u64,
    /// Bytes of those messages, headers included.
    pub bytes: u64,
    /// Pixels of the images.
    pub pixels: u64,
}

/// What the display channel carried.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DisplayStats {
    /// Per message type: (count, bytes with header).
    pub messages: BTreeMap<u16, (u64, u64)>,
    /// Per image type of DRAW_COPY / DRAW_OPAQUE / DRAW_BLEND sources.
    pub images: BTreeMap<u8, ImageCount>,
    /// Bytes from the server after the link stage.
    pub bytes: u64,
    /// Set when the stream could not be followed (the counts stop there).
    pub error: Option<String>,
}

/// The name of a display channel server message type.
pub fn message_name(t: u16) -> String {
    let name = match t {
        1 => "MIGRATE",
        2 => "MIGRATE_DATA",
        3 => "SET_ACK",
        4 => "PING",
        5 => "WAIT_FOR_CHANNELS",
        6 => "DISCONNECTING",
        7 => "NOTIFY",
        8 => "LIST",
        101 => "MODE",
        102 => "MARK",
        103 => "RESET",
        104 => "COPY_BITS",
        105 => "INVAL_LIST",
        106 => "INVAL_ALL_PIXMAPS",
        107 => "INVAL_PALETTE",
        108 => "INVAL_ALL_PALETTES",
        122 => "STREAM_CREATE",
        123 => "STREAM_DATA",
        124 => "STREAM_CLIP",
        125 => "STREAM_DESTROY",
        126 => "STREAM_DESTROY_ALL",
        302 => "DRAW_FILL",
        303 => "DRAW_OPAQUE",
        304 => "DRAW_COPY",
        305 => "DRAW_BLEND",
        306 => "DRAW_BLACKNESS",
        307 => "DRAW_WHITENESS",
        308 => "DRAW_INVERS",
        309 => "DRAW_ROP3",
        310 => "DRAW_STROKE",
        311 => "DRAW_TEXT",
        312 => "DRAW_TRANSPARENT",
        313 => "DRAW_ALPHA_BLEND",
        314 => "SURFACE_CREATE",
        315 => "SURFACE_DESTROY",
        316 => "STREAM_DATA_SIZED",
        317 => "MONITORS_CONFIG",
        318 => "DRAW_COMPOSITE",
        319 => "STREAM_ACTIVATE_REPORT",
        _ => return format!("type {t}"),
    };
    name.to_owned()
}

/// The name of a `SPICE_IMAGE_TYPE_*`.
pub fn image_name(t: u8) -> String {
    let name = match t {
        0 => "BITMAP",
        1 => "QUIC",
        100 => "LZ_PLT",
        101 => "LZ_RGB",
        102 => "GLZ_RGB",
        103 => "FROM_CACHE",
        104 => "SURFACE",
        105 => "JPEG",
        106 => "FROM_CACHE_LOSSLESS",
        107 => "ZLIB_GLZ_RGB",
        108 => "JPEG_ALPHA",
        109 => "LZ4",
        _ => return format!("image {t}"),
    };
    name.to_owned()
}

/// Follows the server side of a display channel connection.
#[derive(Debug, Default)]
struct DisplayParser {
    buf: Vec<u8>,
    stage: Stage,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Stage {
    #[default]
    LinkReply,
    LinkResult,
    Messages,
    Lost,
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl DisplayParser {
    fn feed(&mut self, data: &[u8], stats: &mut DisplayStats) {
        if self.stage == Stage::Lost {
            return;
        }
        self.buf.extend_from_slice(data);
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            match self.stage {
                Stage::LinkReply => {
                    let Some(size) = le32(rest, 12) else { break };
                    let total = LINK_HEADER + size as usize;
                    if rest.len() < total {
                        break;
                    }
                    at += total;
                    self.stage = Stage::LinkResult;
                }
                Stage::LinkResult => {
                    if rest.len() < 4 {
                        break;
                    }
                    at += 4;
                    self.stage = Stage::Messages;
                }
                Stage::Messages => {
                    let (Some(kind), Some(size)) = (le16(rest, 0), le32(rest, 2)) else {
                        break;
                    };
                    if size > 256 << 20 {
                        stats.error = Some(format!("message type {kind} of {size} bytes"));
                        self.stage = Stage::Lost;
                        break;
                    }
                    let total = MINI_HEADER + size as usize;
                    if rest.len() < total {
                        break;
                    }
                    let body = &rest[MINI_HEADER..total];
                    let entry = stats.messages.entry(kind).or_default();
                    entry.0 += 1;
                    entry.1 += total as u64;
                    stats.bytes += total as u64;
                    if matches!(kind, 303..=305) {
                        if let Some((image_type, pixels)) = source_image(body) {
                            let e = stats.images.entry(image_type).or_default();
                            e.count += 1;
                            e.bytes += total as u64;
                            e.pixels += pixels;
                        } else {
                            stats.error = Some(format!("unreadable {} body", message_name(kind)));
                        }
                    }
                    at += total;
                }
                Stage::Lost => break,
            }
        }
        self.buf.drain(..at);
    }
}

/// The source image of a DRAW_COPY (DRAW_OPAQUE, DRAW_BLEND): its type and
/// pixel count. The body is DisplayBase (surface_id, box, clip) and then the
/// image pointer, an offset from the start of the body.
fn source_image(body: &[u8]) -> Option<(u8, u64)> {
    let clip_type = *body.get(20)?;
    let after_clip = match clip_type {
        0 => 21,
        // SPICE_CLIP_TYPE_RECTS: the rectangles follow inline.
        1 => 25 + 16 * le32(body, 21)? as usize,
        _ => return None,
    };
    let image = le32(body, after_clip)? as usize;
    // SpiceImageDescriptor: id u64, type u8, flags u8, width u32, height u32.
    let kind = *body.get(image + 8)?;
    let w = le32(body, image + 10)?;
    let h = le32(body, image + 14)?;
    Some((kind, u64::from(w) * u64::from(h)))
}

/// The proxy: listens on a loopback port and forwards every connection to the
/// server, counting the display channel's messages.
pub struct Proxy {
    port: u16,
    stats: Arc<Mutex<DisplayStats>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts forwarding to `server`.
    pub fn start(server: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let stats = Arc::new(Mutex::new(DisplayStats::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (stats2, stop2) = (Arc::clone(&stats), Arc::clone(&stop));
        let acceptor = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(server) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                forward(client, upstream, Arc::clone(&stats2));
            }
        });
        Ok(Self {
            port,
            stats,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// The address the client connects to.
    pub fn addr(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.port).into()
    }

    /// What the display channel carried so far.
    pub fn stats(&self) -> DisplayStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(self.addr());
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// Two threads per connection: client to server (which learns the channel
/// type from the link message) and server to client (which parses the display
/// channel).
fn forward(client: TcpStream, upstream: TcpStream, stats: Arc<Mutex<DisplayStats>>) {
    let channel_type = Arc::new(AtomicU8::new(CHANNEL_UNKNOWN));
    let (Ok(client_r), Ok(upstream_w)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let kind = Arc::clone(&channel_type);
    std::thread::spawn(move || {
        let (mut from, mut to) = (client_r, upstream_w);
        let mut head = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if head.len() < LINK_HEADER + 6 {
                head.extend_from_slice(&buf[..n]);
                // SpiceLinkMess: connection_id u32, then channel_type u8.
                if let Some(&t) = head.get(LINK_HEADER + 4) {
                    kind.store(t, Ordering::SeqCst);
                }
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let (mut from, mut to) = (upstream, client);
        let mut parser = DisplayParser::default();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // The server answers only after the client's link message, so the
            // type is known by now.
            if channel_type.load(Ordering::SeqCst) == CHANNEL_DISPLAY {
                let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                parser.feed(&buf[..n], &mut s);
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw_copy(image_type: u8, w: u32, h: u32, payload: usize) -> Vec<u8> {
        let mut body = vec![0u8; 21];
        body.extend_from_slice(&57u32.to_le_bytes()); // src_bitmap
        body.resize(57, 0);
        body.extend_from_slice(&7u64.to_le_bytes());
        body.push(image_type);
        body.push(0);
        body.extend_from_slice(&w.to_le_bytes());
        body.extend_from_slice(&h.to_le_bytes());
        body.resize(body.len() + payload, 0xAB);
        let mut msg = 304u16.to_le_bytes().to_vec();
        msg.extend_from_slice(&(body.len() as u32).to_le_bytes());
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn follows_the_stream_in_pieces() {
        let mut stream = b"REDQ".to_vec();
        stream.extend_from_slice(&[2, 0, 0, 0, 2, 0, 0, 0]);
        stream.extend_from_slice(&10u32.to_le_bytes());
        stream.extend_from_slice(&[0; 10]); // link reply body
        stream.extend_from_slice(&[0; 4]); // link result
        stream.extend_from_slice(&draw_copy(0, 32, 10, 1280));
        stream.extend_from_slice(&draw_copy(102, 32, 700, 99));
        stream.extend_from_slice(&[102, 0, 0, 0, 0, 0]); // MARK
        let mut stats = DisplayStats::default();
        let mut parser = DisplayParser::default();
        for piece in stream.chunks(7) {
            parser.feed(piece, &mut stats);
        }
        assert_eq!(stats.error, None);
        assert_eq!(stats.images[&0].count, 1);
        assert_eq!(stats.images[&0].pixels, 320);
        assert_eq!(stats.images[&102].pixels, 32 * 700);
        assert_eq!(stats.messages[&304].0, 2);
        assert_eq!(stats.messages[&102], (1, 6));
        assert_eq!(
            stats.bytes,
            (stream.len() - LINK_HEADER - 10 - 4) as u64,
            "every byte after the link stage"
        );
    }
}
