//! What the server did for each client, per channel: so a user can see why a
//! session is slow (a client that does not read, a link that is slow, images
//! that compress badly, a stream whose quality dropped).
//!
//! Each channel counts into its own [`ChannelCounters`] (atomics, written by
//! the thread that serves the channel: the main context, or the display's
//! thread), listed in the server's [`Registry`]; [`ServerHandle::stats`]
//! reads them from any thread without stopping either. A channel's totals
//! are also logged (`debug`) when it closes.
//!
//! [`ServerHandle::stats`]: crate::ServerHandle::stats

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use spice_proto::msg::display::ImageData;

/// How an image went to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageCodec {
    /// Uncompressed pixels.
    Bitmap,
    /// QUIC (photographic, lossless).
    Quic,
    /// LZ.
    Lz,
    /// GLZ (LZ against the client's window of earlier images).
    Glz,
    /// GLZ deflated with zlib.
    ZlibGlz,
    /// LZ4.
    Lz4,
    /// JPEG (lossy).
    Jpeg,
    /// A reference to the client's pixmap cache.
    FromCache,
}

impl ImageCodec {
    const ALL: [ImageCodec; 8] = [
        Self::Bitmap,
        Self::Quic,
        Self::Lz,
        Self::Glz,
        Self::ZlibGlz,
        Self::Lz4,
        Self::Jpeg,
        Self::FromCache,
    ];

    /// A short lowercase name, for logs and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bitmap => "bitmap",
            Self::Quic => "quic",
            Self::Lz => "lz",
            Self::Glz => "glz",
            Self::ZlibGlz => "zlib-glz",
            Self::Lz4 => "lz4",
            Self::Jpeg => "jpeg",
            Self::FromCache => "cache",
        }
    }

    pub(crate) fn of(data: &ImageData<'_>) -> Self {
        match data {
            ImageData::Bitmap { .. } => Self::Bitmap,
            ImageData::Quic(_) => Self::Quic,
            ImageData::LzRgb(_) => Self::Lz,
            ImageData::GlzRgb(_) => Self::Glz,
            ImageData::ZlibGlzRgb { .. } => Self::ZlibGlz,
            ImageData::Lz4(_) => Self::Lz4,
            ImageData::Jpeg(_) => Self::Jpeg,
            ImageData::FromCache | ImageData::FromCacheLossless => Self::FromCache,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Everything the server keeps about its clients' channels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// One entry per client (session), oldest first.
    pub clients: Vec<ClientStats>,
}

/// One client: the channels of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStats {
    /// The session id its channels share.
    pub session: u32,
    /// The address of its main channel (or its first channel's).
    pub peer: Option<SocketAddr>,
    /// Its open channels, in the order they linked.
    pub channels: Vec<ChannelStats>,
}

/// One channel of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelStats {
    /// `SPICE_CHANNEL_*` type.
    pub channel_type: u8,
    /// Its name (`main`, `display`, ...).
    pub channel: &'static str,
    /// The channel instance id.
    pub channel_id: u8,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// How long it has been linked.
    pub linked_for: Duration,
    /// Messages queued for the client.
    pub messages_out: u64,
    /// Bytes of those messages, headers included, and the end of the link
    /// exchange if it was still queued when the channel started.
    pub bytes_out: u64,
    /// Bytes of `bytes_out` written to the socket.
    pub bytes_written: u64,
    /// Bytes queued and not written yet: a client that reads slowly, or a
    /// slow link, shows here first.
    pub queued_bytes: u64,
    /// Messages received from the client.
    pub messages_in: u64,
    /// Bytes of those messages, headers included.
    pub bytes_in: u64,
    /// The last measured round trip (PING to PONG), if any.
    pub round_trip: Option<Duration>,
    /// What a display channel sent.
    pub display: Option<DisplayStats>,
}

/// What a display channel sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisplayStats {
    /// Frames of damage started (at most one per frame interval).
    pub frames: u64,
    /// Images sent, by how they were coded: `(codec, images, bytes)`, only
    /// codecs that were used.
    pub images: Vec<(ImageCodec, u64, u64)>,
    /// Rows moved on the client's side (`COPY_BITS`) instead of resent.
    pub copy_bits: u64,
    /// Time spent coding images and stream frames.
    pub encode_time: Duration,
    /// Video stream frames sent (MJPEG), all streams.
    pub stream_frames: u64,
    /// Their bytes.
    pub stream_bytes: u64,
    /// The live stream, if one runs.
    pub stream: Option<LiveStream>,
}

/// A video stream being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveStream {
    /// Its codec.
    pub codec: crate::display::video::VideoCodec,
    /// The quality of its last frame (0..100): the JPEG quality, or what
    /// the encoder's bit rate was derived from.
    pub quality: u8,
    /// Its bit rate since it started, in bits per second.
    pub bit_rate: u64,
}

/// Who a channel is, known once it links.
#[derive(Debug, Clone, Copy)]
struct Identity {
    session: u32,
    channel_type: u8,
    channel_id: u8,
    peer: Option<SocketAddr>,
}

/// A channel's counters; see the module docs.
#[derive(Debug)]
pub(crate) struct ChannelCounters {
    created: Instant,
    identity: OnceLock<Identity>,
    closed: AtomicBool,
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
    bytes_written: AtomicU64,
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    /// Microseconds plus one; zero until measured.
    round_trip_us: AtomicU64,
    display: DisplayCounters,
}

#[derive(Debug, Default)]
struct DisplayCounters {
    frames: AtomicU64,
    images: [AtomicU64; ImageCodec::ALL.len()],
    image_bytes: [AtomicU64; ImageCodec::ALL.len()],
    copy_bits: AtomicU64,
    encode_ns: AtomicU64,
    stream_frames: AtomicU64,
    stream_bytes: AtomicU64,
    /// The live stream: quality plus one (zero: none), its start in
    /// microseconds since `created`, and its bytes.
    stream_quality: AtomicU64,
    stream_started_us: AtomicU64,
    stream_live_bytes: AtomicU64,
    /// The live stream's codec (`SPICE_VIDEO_CODEC_TYPE_*`).
    stream_codec: AtomicU64,
}

impl Default for ChannelCounters {
    fn default() -> Self {
        Self {
            created: Instant::now(),
            identity: OnceLock::new(),
            closed: AtomicBool::new(false),
            messages_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            messages_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            round_trip_us: AtomicU64::new(0),
            display: DisplayCounters::default(),
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl ChannelCounters {
    pub(crate) fn message_out(&self, bytes: usize) {
        add(&self.messages_out, 1);
        add(&self.bytes_out, bytes as u64);
    }

    /// Bytes of the link exchange still queued when the channel started.
    pub(crate) fn queued_at_link(&self, bytes: usize) {
        add(&self.bytes_out, bytes as u64);
    }

    pub(crate) fn written(&self, bytes: usize) {
        add(&self.bytes_written, bytes as u64);
    }

    pub(crate) fn message_in(&self, bytes: usize) {
        add(&self.messages_in, 1);
        add(&self.bytes_in, bytes as u64);
    }

    pub(crate) fn round_trip(&self, rtt: Duration) {
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX - 1);
        self.round_trip_us.store(us + 1, Ordering::Relaxed);
    }

    pub(crate) fn frame(&self) {
        add(&self.display.frames, 1);
    }

    pub(crate) fn image(&self, data: &ImageData<'_>, encode_time: Duration) {
        let d = &self.display;
        let i = ImageCodec::of(data).index();
        add(&d.images[i], 1);
        add(&d.image_bytes[i], data.len() as u64);
        add(&d.encode_ns, encode_time.as_nanos() as u64);
    }

    pub(crate) fn copy_bits(&self) {
        add(&self.display.copy_bits, 1);
    }

    pub(crate) fn stream_started(&self, codec: crate::display::video::VideoCodec) {
        let d = &self.display;
        d.stream_codec.store(u64::from(codec.wire()), Ordering::Relaxed);
        let at = self.created.elapsed().as_micros() as u64;
        d.stream_started_us.store(at, Ordering::Relaxed);
        d.stream_live_bytes.store(0, Ordering::Relaxed);
    }

    pub(crate) fn stream_frame(&self, bytes: usize, quality: u8, encode_time: Duration) {
        let d = &self.display;
        add(&d.stream_frames, 1);
        add(&d.stream_bytes, bytes as u64);
        add(&d.stream_live_bytes, bytes as u64);
        add(&d.encode_ns, encode_time.as_nanos() as u64);
        d.stream_quality.store(u64::from(quality) + 1, Ordering::Relaxed);
    }

    pub(crate) fn stream_ended(&self) {
        self.display.stream_quality.store(0, Ordering::Relaxed);
    }

    fn snapshot(&self, identity: &Identity) -> ChannelStats {
        let bytes_out = get(&self.bytes_out);
        let bytes_written = get(&self.bytes_written);
        let rtt = get(&self.round_trip_us);
        ChannelStats {
            channel_type: identity.channel_type,
            channel: crate::server::channel_name(identity.channel_type),
            channel_id: identity.channel_id,
            peer: identity.peer,
            linked_for: self.created.elapsed(),
            messages_out: get(&self.messages_out),
            bytes_out,
            bytes_written,
            queued_bytes: bytes_out.saturating_sub(bytes_written),
            messages_in: get(&self.messages_in),
            bytes_in: get(&self.bytes_in),
            round_trip: (rtt > 0).then(|| Duration::from_micros(rtt - 1)),
            // Only display channels count display figures.
            display: (identity.channel_type == spice_proto::ChannelType::Display as u8)
                .then(|| self.display_snapshot()),
        }
    }

    fn display_snapshot(&self) -> DisplayStats {
        let d = &self.display;
        let images = ImageCodec::ALL
            .iter()
            .map(|&c| (c, get(&d.images[c.index()]), get(&d.image_bytes[c.index()])))
            .filter(|&(_, n, _)| n > 0)
            .collect();
        let quality = get(&d.stream_quality);
        let stream = (quality > 0).then(|| {
            let since = Duration::from_micros(get(&d.stream_started_us));
            let elapsed = self.created.elapsed().saturating_sub(since).as_secs_f64();
            let bits = get(&d.stream_live_bytes) as f64 * 8.0;
            LiveStream {
                codec: crate::display::video::VideoCodec::from_wire(get(&d.stream_codec) as u8)
                    .unwrap_or(crate::display::video::VideoCodec::Mjpeg),
                quality: (quality - 1) as u8,
                bit_rate: if elapsed > 0.0 { (bits / elapsed) as u64 } else { 0 },
            }
        });
        DisplayStats {
            frames: get(&d.frames),
            images,
            copy_bits: get(&d.copy_bits),
            encode_time: Duration::from_nanos(get(&d.encode_ns)),
            stream_frames: get(&d.stream_frames),
            stream_bytes: get(&d.stream_bytes),
            stream,
        }
    }

    /// The channel is gone: its totals go to the log and the registry
    /// forgets it.
    pub(crate) fn close(&self) {
        if self.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(identity) = self.identity.get() {
            let s = self.snapshot(identity);
            tracing::debug!(
                session = identity.session,
                channel = s.channel,
                id = s.channel_id,
                linked_s = s.linked_for.as_secs_f32(),
                messages_out = s.messages_out,
                bytes_out = s.bytes_out,
                messages_in = s.messages_in,
                bytes_in = s.bytes_in,
                rtt_us = s.round_trip.map(|r| r.as_micros() as u64),
                display = ?s.display,
                "channel totals"
            );
        }
    }
}

/// The server's list of open channels' counters.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    channels: Mutex<Vec<Arc<ChannelCounters>>>,
}

impl Registry {
    /// Lists a channel that just linked.
    pub(crate) fn register(&self, counters: &Arc<ChannelCounters>, info: &crate::ChannelInfo) {
        let _ = counters.identity.set(Identity {
            session: info.connection_id,
            channel_type: info.channel_type,
            channel_id: info.channel_id,
            peer: info.peer,
        });
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.retain(|c| !c.closed.load(Ordering::Relaxed));
        channels.push(counters.clone());
    }

    /// The open channels, grouped by client.
    pub(crate) fn snapshot(&self) -> ServerStats {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.retain(|c| !c.closed.load(Ordering::Relaxed));
        let mut clients: Vec<ClientStats> = Vec::new();
        for counters in channels.iter() {
            let Some(identity) = counters.identity.get() else {
                continue;
            };
            let stats = counters.snapshot(identity);
            match clients.iter_mut().find(|c| c.session == identity.session) {
                Some(client) => {
                    if stats.channel_type == spice_proto::ChannelType::Main as u8 {
                        client.peer = stats.peer;
                    }
                    client.channels.push(stats);
                }
                None => clients.push(ClientStats {
                    session: identity.session,
                    peer: stats.peer,
                    channels: vec![stats],
                }),
            }
        }
        ServerStats { clients }
    }
}

impl std::fmt::Display for ServerStats {
    /// One line per channel, for logs and terminals.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.clients.is_empty() {
            return writeln!(f, "no clients");
        }
        for client in &self.clients {
            let peer = client.peer.map_or_else(|| "-".to_owned(), |p| p.to_string());
            writeln!(f, "client {} ({peer}):", client.session)?;
            for c in &client.channels {
                write!(
                    f,
                    "  {}:{} out {} msgs {:.1} KB, queued {} B, in {} msgs {:.1} KB",
                    c.channel,
                    c.channel_id,
                    c.messages_out,
                    c.bytes_out as f64 / 1e3,
                    c.queued_bytes,
                    c.messages_in,
                    c.bytes_in as f64 / 1e3,
                )?;
                if let Some(rtt) = c.round_trip {
                    write!(f, ", rtt {:.1} ms", rtt.as_secs_f64() * 1e3)?;
                }
                if let Some(d) = &c.display {
                    write!(
                        f,
                        "; {} frames, encode {:.0} ms",
                        d.frames,
                        d.encode_time.as_secs_f64() * 1e3
                    )?;
                    for (codec, n, bytes) in &d.images {
                        write!(f, ", {} {n} ({:.1} KB)", codec.name(), *bytes as f64 / 1e3)?;
                    }
                    if d.copy_bits > 0 {
                        write!(f, ", copy-bits {}", d.copy_bits)?;
                    }
                    if d.stream_frames > 0 {
                        write!(
                            f,
                            ", stream {} frames ({:.1} KB)",
                            d.stream_frames,
                            d.stream_bytes as f64 / 1e3
                        )?;
                    }
                    if let Some(s) = d.stream {
                        write!(
                            f,
                            " live {:?} at q{} {:.0} kbit/s",
                            s.codec,
                            s.quality,
                            s.bit_rate as f64 / 1e3
                        )?;
                    }
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(session: u32, channel_type: u8, channel_id: u8) -> crate::ChannelInfo {
        crate::ChannelInfo {
            link_id: 1,
            connection_id: session,
            channel_type,
            channel_id,
            local: None,
            peer: Some("127.0.0.1:4000".parse().unwrap()),
            tls: false,
        }
    }

    #[test]
    fn channels_are_grouped_by_client_and_forgotten_when_closed() {
        let registry = Registry::default();
        let main = Arc::new(ChannelCounters::default());
        let display = Arc::new(ChannelCounters::default());
        let other = Arc::new(ChannelCounters::default());
        registry.register(&main, &info(7, 1, 0));
        registry.register(&display, &info(7, 2, 0));
        registry.register(&other, &info(9, 1, 0));
        main.message_out(100);
        main.written(60);
        display.frame();
        display.image(&ImageData::Quic(&[0; 40]), Duration::from_millis(2));
        display.image(&ImageData::FromCache, Duration::ZERO);
        display.image(&ImageData::Quic(&[0; 10]), Duration::from_millis(1));
        display.round_trip(Duration::from_micros(1500));
        let stats = registry.snapshot();
        assert_eq!(stats.clients.len(), 2);
        let seven = &stats.clients[0];
        assert_eq!((seven.session, seven.channels.len()), (7, 2));
        assert_eq!(seven.channels[0].channel, "main");
        assert_eq!(seven.channels[0].queued_bytes, 40);
        assert_eq!(seven.channels[0].display, None);
        let d = seven.channels[1].display.as_ref().unwrap();
        assert_eq!(d.frames, 1);
        assert_eq!(
            d.images,
            vec![(ImageCodec::Quic, 2, 50), (ImageCodec::FromCache, 1, 0)]
        );
        assert_eq!(d.encode_time, Duration::from_millis(3));
        assert_eq!(seven.channels[1].round_trip, Some(Duration::from_micros(1500)));
        display.close();
        let stats = registry.snapshot();
        assert_eq!(stats.clients[0].channels.len(), 1, "closed display forgotten");
        assert!(stats.to_string().contains("main:0 out 1 msgs"));
    }

    #[test]
    fn a_live_stream_reports_its_quality_until_it_ends() {
        let c = ChannelCounters::default();
        c.stream_started(crate::display::video::VideoCodec::Mjpeg);
        c.stream_frame(5000, 70, Duration::from_millis(1));
        c.stream_frame(5000, 60, Duration::from_millis(1));
        let d = c.display_snapshot();
        assert_eq!((d.stream_frames, d.stream_bytes), (2, 10_000));
        assert_eq!(d.stream.unwrap().quality, 60);
        assert!(d.stream.unwrap().bit_rate > 0);
        c.stream_ended();
        assert_eq!(c.display_snapshot().stream, None);
    }
}
