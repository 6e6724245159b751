//! A scripted client speaking the wire protocol directly.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use spice_proto::caps::Caps;
use spice_proto::consts::{common_cap, MAGIC, TICKET_PUBKEY_BYTES};
use spice_proto::link::{LinkHeader, LinkMess, LinkReply};
use spice_proto::ticket::TicketKey;
use spice_proto::wire::{Reader, Writer};
use spice_proto::{ChannelType, Deframer, Frame, HeaderKind};

/// How a link attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The link reply carried this error.
    ReplyError(u32),
    /// The final link result was this error.
    ResultError(u32),
    /// The server closed the connection (or stopped answering) at this stage.
    Closed(&'static str),
}

/// Reads exactly `buf.len()` bytes, or reports where the stream ended.
pub fn read_exact_timeout(
    stream: &mut TcpStream,
    buf: &mut [u8],
    timeout: Duration,
) -> Result<(), &'static str> {
    stream.set_read_timeout(Some(timeout)).map_err(|_| "socket")?;
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err("closed"),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("timeout")
            }
            Err(_) => return Err("error"),
        }
    }
    Ok(())
}

/// Waits until the server closes the connection; `true` if it did within `timeout`.
pub fn wait_closed(stream: &mut TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
    false
}

/// The bytes a client sends to start a link.
pub fn link_request(channel: ChannelType, channel_id: u8, connection_id: u32, common: &[u32]) -> Vec<u8> {
    link_request_with_caps(channel, channel_id, connection_id, common, &[])
}

/// The bytes a client sends to start a link, with channel capabilities.
pub fn link_request_with_caps(
    channel: ChannelType,
    channel_id: u8,
    connection_id: u32,
    common: &[u32],
    channel_caps: &[u32],
) -> Vec<u8> {
    let mess = LinkMess {
        connection_id,
        channel_type: channel as u8,
        channel_id,
        common_caps: Caps::with(common),
        channel_caps: Caps::with(channel_caps),
    };
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out);
    LinkHeader {
        magic: MAGIC,
        major_version: 2,
        minor_version: 2,
        size: mess.encoded_len() as u32,
    }
    .encode(&mut w);
    mess.encode(&mut w);
    out
}

/// A linked channel.
#[derive(Debug)]
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
    header: HeaderKind,
    deframer: Deframer,
}

impl RawClient {
    /// Links a channel the way spice-gtk does (auth selection, SPICE ticket, mini header).
    pub fn link(
        addr: SocketAddr,
        channel: ChannelType,
        channel_id: u8,
        connection_id: u32,
        password: &str,
    ) -> Result<Self, LinkOutcome> {
        Self::link_with(addr, channel, channel_id, connection_id, password, true, &[])
    }

    /// Links a channel, offering the mini header only if `mini` is set, and the
    /// given channel capabilities.
    pub fn link_with(
        addr: SocketAddr,
        channel: ChannelType,
        channel_id: u8,
        connection_id: u32,
        password: &str,
        mini: bool,
        channel_caps: &[u32],
    ) -> Result<Self, LinkOutcome> {
        let stream = TcpStream::connect(addr).map_err(|_| LinkOutcome::Closed("connect"))?;
        Self::link_on(
            stream,
            channel,
            channel_id,
            connection_id,
            password,
            mini,
            channel_caps,
        )
    }

    /// Links a channel over an already connected socket.
    pub fn link_on(
        mut stream: TcpStream,
        channel: ChannelType,
        channel_id: u8,
        connection_id: u32,
        password: &str,
        mini: bool,
        channel_caps: &[u32],
    ) -> Result<Self, LinkOutcome> {
        let mut common = vec![common_cap::PROTOCOL_AUTH_SELECTION, common_cap::AUTH_SPICE];
        if mini {
            common.push(common_cap::MINI_HEADER);
        }
        stream
            .write_all(&link_request_with_caps(
                channel,
                channel_id,
                connection_id,
                &common,
                channel_caps,
            ))
            .map_err(|_| LinkOutcome::Closed("send link"))?;
        let t = Duration::from_secs(10);
        let mut header = [0u8; LinkHeader::SIZE];
        read_exact_timeout(&mut stream, &mut header, t).map_err(LinkOutcome::Closed)?;
        let header =
            LinkHeader::decode(&mut Reader::new(&header)).map_err(|_| LinkOutcome::Closed("header"))?;
        let mut body = vec![0u8; header.size.min(4096) as usize];
        read_exact_timeout(&mut stream, &mut body, t).map_err(LinkOutcome::Closed)?;
        let (error, key, server_common, _) =
            LinkReply::decode(&body).map_err(|_| LinkOutcome::Closed("reply"))?;
        if error != 0 {
            return Err(LinkOutcome::ReplyError(error));
        }
        assert_eq!(key.len(), TICKET_PUBKEY_BYTES);
        let ticket = TicketKey::encrypt_for_client(&key, &mut getrandom::SysRng, password)
            .ok_or(LinkOutcome::Closed("public key"))?;
        let mut auth = common_cap::AUTH_SPICE.to_le_bytes().to_vec();
        auth.extend_from_slice(&ticket);
        stream
            .write_all(&auth)
            .map_err(|_| LinkOutcome::Closed("send ticket"))?;
        let mut result = [0u8; 4];
        read_exact_timeout(&mut stream, &mut result, t).map_err(LinkOutcome::Closed)?;
        let result = u32::from_le_bytes(result);
        if result != 0 {
            return Err(LinkOutcome::ResultError(result));
        }
        let kind = if mini && server_common.has(common_cap::MINI_HEADER) {
            HeaderKind::Mini
        } else {
            HeaderKind::Full
        };
        Ok(Self {
            stream,
            header: kind,
            deframer: Deframer::new(kind, 64 << 20),
        })
    }

    /// Sends one message.
    pub fn send(&mut self, msg_type: u16, body: &[u8]) {
        let mut out = Vec::new();
        self.header.encode(1, msg_type, body.len() as u32, &mut out);
        out.extend_from_slice(body);
        self.stream.write_all(&out).expect("send");
    }

    /// Reads the next message; `None` on timeout or close.
    pub fn recv(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(frame)) = self.deframer.next_frame() {
                return Some(frame);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let mut buf = [0u8; 65536];
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.deframer.push(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    /// Which data header the link agreed on.
    pub fn header(&self) -> HeaderKind {
        self.header
    }

    /// Reads messages until one of `msg_type` arrives.
    pub fn recv_type(&mut self, msg_type: u16, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let frame = self.recv(left)?;
            if frame.msg_type == msg_type {
                return Some(frame);
            }
        }
    }
}

/// A client-side picture rebuilt from display messages: DRAW_COPY of every
/// lossless image type, the pixmap cache and COPY_BITS.
#[derive(Debug, Default)]
pub struct Screen {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Packed xRGB rows.
    pub pixels: Vec<u8>,
    /// MARK messages seen.
    pub marks: u32,
    /// DRAW_COPY messages applied.
    pub draws: u32,
    /// How many images of each `SPICE_IMAGE_TYPE_*` arrived.
    pub kinds: std::collections::BTreeMap<u8, u32>,
    /// The GLZ window, for a client that offered one in DISPLAY_INIT.
    pub glz: Option<spice_codec::glz::GlzDecoder>,
    /// The pixmap cache: packed rows of each image sent with CACHE_ME, by id.
    pub cache: std::collections::HashMap<u64, Vec<u8>>,
    /// The most pixels the cache held at once.
    pub max_cached_pixels: usize,
    /// COPY_BITS messages applied.
    pub copy_bits: u32,
    /// Pixels of all DRAW_COPY images applied.
    pub drawn_pixels: u64,
}

/// Decodes the image body after its descriptor into top-down 32-bit rows and their stride.
fn decode_image(kind: u8, r: &mut Reader<'_>, w: u32, h: u32) -> Result<(Vec<u8>, usize), String> {
    use spice_proto::msg::display::image_type;
    let e = |e: spice_proto::DecodeError| e.to_string();
    let limits = spice_codec::DecodeLimits::default();
    match kind {
        image_type::BITMAP => {
            r.take(2, "fmt/flags").map_err(e)?;
            r.take(8, "x/y").map_err(e)?;
            let stride = r.u32("stride").map_err(e)? as usize;
            r.u32("palette").map_err(e)?;
            let data = r.take(stride * h as usize, "pixels").map_err(e)?;
            Ok((data.to_vec(), stride))
        }
        image_type::LZ_RGB => {
            let size = r.u32("lz size").map_err(e)? as usize;
            let stream = r.take(size, "lz stream").map_err(e)?;
            let image = spice_codec::lz::decode(stream, &limits).map_err(|e| e.to_string())?;
            if (image.header.width, image.header.height) != (w, h) || !image.header.top_down {
                return Err("LZ header does not match the descriptor".into());
            }
            Ok((image.data, image.stride))
        }
        image_type::LZ4 => {
            let size = r.u32("lz4 size").map_err(e)? as usize;
            let stream = r.take(size, "lz4 stream").map_err(e)?;
            let image = spice_codec::lz4::decode(stream, w, h, &limits).map_err(|e| e.to_string())?;
            if !image.top_down {
                return Err("bottom-up LZ4 image".into());
            }
            Ok((image.data, image.stride))
        }
        image_type::QUIC => {
            let size = r.u32("quic size").map_err(e)? as usize;
            let stream = r.take(size, "quic stream").map_err(e)?;
            let image = spice_codec::quic::decode(stream, &limits).map_err(|e| e.to_string())?;
            if (image.width, image.height) != (w, h) {
                return Err("QUIC header does not match the descriptor".into());
            }
            Ok((image.data, w as usize * 4))
        }
        other => Err(format!("image type {other} not decoded by the test client")),
    }
}

/// Decodes a GLZ_RGB or ZLIB_GLZ_RGB image body with the client's window.
fn decode_glz(
    kind: u8,
    r: &mut Reader<'_>,
    w: u32,
    h: u32,
    glz: &mut spice_codec::glz::GlzDecoder,
) -> Result<(Vec<u8>, usize), String> {
    use spice_proto::msg::display::image_type;
    let e = |e: spice_proto::DecodeError| e.to_string();
    let stream = if kind == image_type::ZLIB_GLZ_RGB {
        let glz_size = r.u32("glz size").map_err(e)? as usize;
        let size = r.u32("zlib size").map_err(e)? as usize;
        let data = r.take(size, "zlib stream").map_err(e)?;
        spice_codec::glz::decode_zlib_glz(data, glz_size).map_err(|e| e.to_string())?
    } else {
        let size = r.u32("glz size").map_err(e)? as usize;
        r.take(size, "glz stream").map_err(e)?.to_vec()
    };
    let image = glz.decode(&stream).map_err(|e| e.to_string())?;
    if (image.header.width, image.header.height) != (w, h) || !image.header.top_down {
        return Err("GLZ header does not match the descriptor".into());
    }
    Ok((image.data, w as usize * 4))
}

impl Screen {
    /// A screen for a client that offered a GLZ window in DISPLAY_INIT.
    pub fn with_glz() -> Self {
        Self {
            glz: Some(spice_codec::glz::GlzDecoder::new(
                spice_codec::DecodeLimits::default(),
                u64::MAX,
            )),
            ..Self::default()
        }
    }

    /// Applies one display message; returns an error string for anything malformed.
    pub fn apply(&mut self, frame: &Frame) -> Result<(), String> {
        use spice_proto::msg::display::{image_type, server_type};
        let mut r = Reader::new(&frame.body);
        let e = |e: spice_proto::DecodeError| e.to_string();
        match frame.msg_type {
            server_type::SURFACE_CREATE => {
                let _id = r.u32("id").map_err(e)?;
                self.width = r.u32("w").map_err(e)?;
                self.height = r.u32("h").map_err(e)?;
                self.pixels = vec![0; self.width as usize * self.height as usize * 4];
            }
            server_type::MARK => self.marks += 1,
            server_type::INVAL_LIST => {
                let count = r.u16("count").map_err(e)?;
                for _ in 0..count {
                    if r.u8("resource type").map_err(e)? != spice_proto::msg::display::RES_TYPE_PIXMAP {
                        return Err("inval list of something other than pixmaps".into());
                    }
                    let id = r.u64("resource id").map_err(e)?;
                    if self.cache.remove(&id).is_none() {
                        return Err(format!("inval of image {id}, which is not cached"));
                    }
                }
            }
            server_type::INVAL_ALL_PIXMAPS => self.cache.clear(),
            server_type::COPY_BITS => {
                r.u32("surface").map_err(e)?;
                let top = r.i32("top").map_err(e)?;
                let left = r.i32("left").map_err(e)?;
                let bottom = r.i32("bottom").map_err(e)?;
                let right = r.i32("right").map_err(e)?;
                if r.u8("clip").map_err(e)? != 0 {
                    return Err("clip".into());
                }
                let src_x = r.i32("src x").map_err(e)?;
                let src_y = r.i32("src y").map_err(e)?;
                let (w, h) = (self.width as i32, self.height as i32);
                let inside = |x: i32, y: i32| (0..=w).contains(&x) && (0..=h).contains(&y);
                let (cw, ch) = (right - left, bottom - top);
                if cw <= 0
                    || ch <= 0
                    || !inside(left, top)
                    || !inside(right, bottom)
                    || !inside(src_x, src_y)
                    || !inside(src_x + cw, src_y + ch)
                {
                    return Err("copy bits outside the surface".into());
                }
                // Overlapping copy: rows in the order that reads each source row
                // before it is overwritten.
                let row_bytes = cw as usize * 4;
                let stride = self.width as usize * 4;
                let order: Vec<i32> = if src_y < top {
                    (0..ch).rev().collect()
                } else {
                    (0..ch).collect()
                };
                for row in order {
                    let from = (src_y + row) as usize * stride + src_x as usize * 4;
                    let to = (top + row) as usize * stride + left as usize * 4;
                    self.pixels.copy_within(from..from + row_bytes, to);
                }
                self.copy_bits += 1;
            }
            server_type::DRAW_COPY => {
                r.u32("surface").map_err(e)?;
                let top = r.i32("top").map_err(e)? as usize;
                let left = r.i32("left").map_err(e)? as usize;
                r.take(8, "bottom/right").map_err(e)?;
                if r.u8("clip").map_err(e)? != 0 {
                    return Err("clip".into());
                }
                let offset = r.u32("image offset").map_err(e)? as usize;
                let mut img = Reader::new(frame.body.get(offset..).ok_or("offset")?);
                let id = img.u64("id").map_err(e)?;
                let kind = img.u8("type").map_err(e)?;
                let flags = img.u8("flags").map_err(e)?;
                let w = img.u32("w").map_err(e)? as usize;
                let h = img.u32("h").map_err(e)? as usize;
                let (rows, stride) = match (kind, &mut self.glz) {
                    (image_type::FROM_CACHE | image_type::FROM_CACHE_LOSSLESS, _) => {
                        let rows = self
                            .cache
                            .get(&id)
                            .ok_or_else(|| format!("image {id} is not in the cache"))?;
                        if rows.len() != w * h * 4 {
                            return Err(format!("cached image {id} has another size"));
                        }
                        (rows.clone(), w * 4)
                    }
                    (image_type::GLZ_RGB | image_type::ZLIB_GLZ_RGB, Some(glz)) => {
                        decode_glz(kind, &mut img, w as u32, h as u32, glz)?
                    }
                    _ => decode_image(kind, &mut img, w as u32, h as u32)?,
                };
                if flags & spice_proto::msg::display::image_flags::CACHE_ME != 0 {
                    let packed: Vec<u8> = (0..h)
                        .flat_map(|row| rows[row * stride..row * stride + w * 4].iter().copied())
                        .collect();
                    self.cache.insert(id, packed);
                    let held: usize = self.cache.values().map(|p| p.len() / 4).sum();
                    self.max_cached_pixels = self.max_cached_pixels.max(held);
                }
                for row in 0..h {
                    let dst = ((top + row) * self.width as usize + left) * 4;
                    self.pixels
                        .get_mut(dst..dst + w * 4)
                        .ok_or("draw outside surface")?
                        .copy_from_slice(
                            rows.get(row * stride..row * stride + w * 4)
                                .ok_or("short image")?,
                        );
                }
                *self.kinds.entry(kind).or_default() += 1;
                self.draws += 1;
                self.drawn_pixels += (w * h) as u64;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The ACK window the server sets; clients ACK once per this many messages.
pub const ACK_WINDOW: u32 = 20;
