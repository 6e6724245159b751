//! The display channel for the plain-framebuffer display.
//!
//! ```text
//! S: SET_ACK            C: ACK_SYNC, DISPLAY_INIT
//! S: SURFACE_CREATE, DRAW_COPY (whole picture), MONITORS_CONFIG, MARK
//! S: DRAW_COPY of damage, whenever the client has room
//! S: SURFACE_DESTROY + the sequence above on resize
//! ```
//!
//! Output is pulled, not pushed: [`DisplayChannel::produce`] looks at the shared
//! surface only when the client has acknowledged enough and the socket has
//! drained, so damage coalesces in the client's region while it is behind.

use std::time::{Duration, Instant};

use spice_proto::consts::display_cap;
use spice_proto::migrate_data::{DisplayData, MigrateData};
use spice_proto::msg::display::{
    image_flags, CopyBits, DisplayClientMessage, DrawCopy, Image, ImageData, InvalAllPixmaps, InvalPixmaps,
    Mark, StreamActivateReport, StreamCreate, StreamData, StreamDestroy, StreamReport, SurfaceCreate,
    SurfaceDestroy, STREAM_FLAGS_TOP_DOWN, SURFACE_FLAGS_PRIMARY, SURFACE_FMT_32_XRGB,
};
use spice_proto::{Caps, DecodeError, Frame};

use super::{BaseOutcome, ChannelBase};
use crate::display::cache::{content_key, PixmapCache};
use crate::display::compress::{choose_wan, ClientDecoders, Encoders, Encoding, ImageCompression, WanCodecs};
use crate::display::damage::{ClientDamage, Move};
use crate::display::deferred::Picture;
use crate::display::encoder_thread::{EncoderThread, Job};
use crate::display::heads::Heads;
use crate::display::region::{Rect, Region};
use crate::display::shadow::Shadow;
use crate::display::stream::{self, Detector, StreamingVideo};
use crate::display::video::{self, StreamEncoder, VideoCodecs};
use crate::display::{DisplaySettings, DisplayShared, DisplayState, Surface};

/// Stop producing while this many bytes wait for the socket.
pub(crate) const MAX_QUEUED_BYTES: usize = 1 << 20;
/// Largest bitmap in one DRAW_COPY of damage; bigger rectangles go out in
/// horizontal bands so other messages can interleave. Each band is an image
/// of its own whose lossless coder starts with a cold model (QUIC updates
/// its model at every sample for the first 2048 pixels, and ever more
/// sparsely up to 12288), so bands are kept large: 128 full rows of a
/// 1024-pixel screen, a 320x240 video frame in one piece. A 1024x768 photo
/// in bands of 64 rows took 29% longer to code than in one piece, in bands
/// of 128 rows 13%.
pub(crate) const MAX_DRAW_BYTES: usize = 512 * 1024;
/// A produce round stops encoding damage once this much output is queued,
/// and leaves the rest in the client's region: the driver writes it to the
/// socket and comes back, so the client decodes one band while the server
/// encodes the next, and the display lock is never held for long.
pub(crate) const PRODUCE_CHUNK_BYTES: usize = 64 * 1024;
/// Shortest time from the start of one frame of damage to the next. A guest
/// console that scrolls redraws its whole screen a hundred times a second;
/// damage that arrives within a frame's interval waits and merges into the
/// next frame, so the client gets one move and one band of new lines per
/// frame instead of per redraw. Damage after a quiet spell goes at once.
pub(crate) const FRAME_INTERVAL: Duration = Duration::from_millis(16);

/// The largest stream whose MJPEG frames are encoded on the display thread
/// (640x480: under a millisecond a frame with libjpeg-turbo on the
/// benchmark's machine, 0.5 ms for 1024x160, about 2 ms with the pure-Rust
/// encoder); larger ones, and every GStreamer stream, get an encoder
/// thread, so that a frame never holds up the display's other clients and
/// its device for long. Either way the frame is encoded without the
/// display's lock: [`DisplayChannel::produce`] collects an inline frame
/// after the lock is let go, so the host's updates never wait for it; and
/// an MJPEG frame a deferred drawing shares is read where its pixels lie
/// on either thread, not copied under the lock.
const INLINE_STREAM_AREA: u64 = 640 * 480;

/// The earlier of two wake-up times, either of which may be absent.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What the display channel needs from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DisplayEvent {
    /// There may be room for more output.
    Produce,
    /// The client is leaving.
    Disconnect,
}

#[derive(Debug)]
pub(crate) struct DisplayChannel {
    pub(crate) base: ChannelBase,
    key: u64,
    monitors_config: bool,
    initialized: bool,
    /// Surface generation the client has, if it has one.
    sent_generation: Option<u64>,
    /// Generation of the monitor configuration the client has.
    sent_heads: Option<u64>,
    next_image_id: u64,
    /// What the client decodes, from its link caps and DISPLAY_INIT.
    decoders: ClientDecoders,
    /// The client's PREFERRED_COMPRESSION, which overrides the server's setting.
    preferred: Option<ImageCompression>,
    /// Boxed: encoders are large and the channel enum holds every kind inline.
    encoders: Box<Encoders>,
    /// The setting in force for this produce round.
    setting: ImageCompression,
    /// The WAN codecs in force for this produce round.
    wan: WanCodecs,
    /// Whether this channel may use the client's session-wide stores: spice-gtk
    /// keeps one GLZ window and one pixmap cache per session, shared by all its
    /// display channels, and the server can mirror each for one channel only,
    /// so display channel 0 alone uses GLZ and the cache (the others use LZ
    /// and send every image).
    session_stores: bool,
    /// The mirror of the client's pixmap cache, from DISPLAY_INIT (boxed,
    /// like the encoders: the channel enum holds every kind inline).
    cache: Box<PixmapCache>,
    /// What the client's surface shows.
    shadow: Shadow,
    /// The band being sent, packed; kept so each frame's bands reuse its
    /// memory instead of allocating (and faulting in) their own.
    band_pixels: Vec<u8>,
    /// When the next frame of damage may start.
    next_frame: Option<Instant>,
    /// A frame is being sent over several produce rounds.
    frame_in_progress: bool,
    /// When a frame in progress may next ask the detector for a stream.
    next_stream_look: Option<Instant>,
    /// The video stream being sent, if any.
    stream: Option<Box<VideoStream>>,
    /// The id of the next stream.
    next_stream_id: u32,
    /// The stream setting in force for this produce round.
    streaming: StreamingVideo,
    /// The server's stream codecs in force for this produce round.
    video_codecs: VideoCodecs,
    /// What the client decodes and prefers for streams.
    client_video: Box<ClientVideo>,
    /// The client reports how it plays streams (`STREAM_REPORT` capability).
    stream_reports: bool,
    /// The client said it cannot play our streams: it gets none again.
    streams_refused: bool,
    /// An area to send again losslessly at the next frame (a stream the
    /// client could not play).
    resend: Option<Rect>,
    /// The client came by seamless migration: its channel state arrives
    /// as MIGRATE_DATA instead of DISPLAY_INIT, and it still has the
    /// surface the source showed it (no SURFACE_CREATE for it).
    migrated_in: bool,
}

/// What a client says about video streams.
#[derive(Debug)]
struct ClientVideo {
    /// Its capabilities (`MULTI_CODEC` and the `CODEC_*` it decodes).
    caps: Caps,
    /// Its preferred stream codecs (`SPICE_VIDEO_CODEC_TYPE_*`, best first),
    /// if it sent any.
    preferred: Vec<u8>,
}

/// A live video stream: an area of the surface sent as lossy frames.
#[derive(Debug)]
struct VideoStream {
    id: u32,
    area: Rect,
    /// Its encoder, on a thread of its own.
    encoder: EncoderThread,
    /// When the stream started (frames are timed from it for the encoder).
    started: Instant,
    /// The last change inside the area.
    last_change: Instant,
    /// The area changed since the last frame.
    dirty: bool,
    /// The quality (JPEG's, or the encoder's bit rate derived from it),
    /// following the link; it knows when the last frame went.
    rate: stream::RateControl,
    /// The id the client's reports on this stream carry.
    report_id: u32,
}

impl VideoStream {
    /// Notes the changes `damage` made inside the area at `now`, and
    /// returns the parts of it outside the area (for the lossless path).
    fn split(&mut self, damage: Vec<Rect>, now: Instant) -> Vec<Rect> {
        let mut rest = Vec::with_capacity(damage.len());
        for rect in damage {
            if rect.intersection(&self.area).is_some() {
                self.last_change = now;
                self.dirty = true;
            }
            rest.extend(rect.minus(&self.area));
        }
        rest
    }
}

impl DisplayChannel {
    /// Starts flow control and registers for damage under `key`, for
    /// display channel `channel_id`.
    pub(crate) fn start(
        mut base: ChannelBase,
        key: u64,
        channel_id: u8,
        client_caps: &Caps,
        shared: &DisplayShared,
    ) -> Self {
        base.start_acks();
        {
            let mut state = shared.lock();
            state.clients.insert(key, ClientDamage::default());
            state.client_caps.insert(key, client_caps.clone());
        }
        shared.clients_changed();
        Self {
            base,
            key,
            monitors_config: client_caps.has(display_cap::MONITORS_CONFIG),
            initialized: false,
            sent_generation: None,
            sent_heads: None,
            next_image_id: 1,
            decoders: ClientDecoders {
                lz4: client_caps.has(display_cap::LZ4_COMPRESSION),
                glz_window: 0,
            },
            preferred: None,
            encoders: Box::default(),
            setting: ImageCompression::default(),
            wan: WanCodecs::default(),
            session_stores: channel_id == 0,
            cache: Box::default(),
            shadow: Shadow::default(),
            band_pixels: Vec::new(),
            next_frame: None,
            frame_in_progress: false,
            next_stream_look: None,
            stream: None,
            next_stream_id: 1,
            streaming: StreamingVideo::Off,
            video_codecs: VideoCodecs::default(),
            client_video: Box::new(ClientVideo {
                caps: client_caps.clone(),
                preferred: Vec::new(),
            }),
            stream_reports: client_caps.has(display_cap::STREAM_REPORT),
            streams_refused: false,
            resend: None,
            migrated_in: false,
        }
    }

    /// A channel of a client that moved here by seamless migration (see
    /// `migrated_in`).
    pub(crate) fn migrated_in(mut self) -> Self {
        self.migrated_in = true;
        self.base.expect_migrate_data();
        self
    }

    /// Seamless migration, source side: MIGRATE, then the state the
    /// destination needs (`DCMD`: the client's caches and surfaces), then
    /// nothing more on this channel.
    pub(crate) fn migrate_out(&mut self) {
        let (glz_window, glz_last_image_id) = self.encoders.glz_state();
        let data = DisplayData {
            message_serial: 0,
            low_bandwidth: false,
            pixmap_cache_id: 1,
            pixmap_cache_size: self.cache.capacity(),
            glz_dict_id: 1,
            glz_window,
            glz_last_image_id,
            surfaces: if self.sent_generation.is_some() {
                vec![0]
            } else {
                Vec::new()
            },
        };
        self.end_stream();
        self.base.migrate_out(Some(MigrateData::Display(data)));
    }

    /// The destination's side of [`Self::migrate_out`]: the client's
    /// pixmap cache (its contents unknown here) is emptied and mirrored
    /// anew at the source's size; GLZ goes on in the client's window with
    /// a dictionary of our own numbered after the source's last image
    /// (never reusing an id the client may hold: spice-gtk's window cannot
    /// take two images of one id; a gap when the source sent none is
    /// harmless); the picture goes whole once, over the surface the client
    /// kept.
    fn restore(&mut self, data: DisplayData) {
        let window = if self.session_stores {
            *self.cache = PixmapCache::new(data.pixmap_cache_size.max(0));
            self.base.send(&InvalAllPixmaps);
            data.glz_window
        } else {
            0
        };
        self.decoders.glz_window = window;
        self.encoders.continue_glz(window, data.glz_last_image_id);
        self.initialized = true;
    }

    /// Stops receiving damage.
    pub(crate) fn detach(&self, shared: &DisplayShared) {
        tracing::debug!(
            images = self.cache.len(),
            pixels = self.cache.used(),
            hits = self.cache.hits(),
            "pixmap cache at disconnect"
        );
        let mut state = shared.lock();
        state.clients.remove(&self.key);
        state.client_caps.remove(&self.key);
        drop(state);
        shared.clients_changed();
    }

    pub(crate) fn handle(
        &mut self,
        frame: &Frame,
        now: Instant,
    ) -> Result<Option<DisplayEvent>, DecodeError> {
        Ok(match DisplayClientMessage::decode(frame.msg_type, &frame.body)? {
            DisplayClientMessage::Base(base) => match self.base.handle_base(base, now) {
                BaseOutcome::Disconnect => Some(DisplayEvent::Disconnect),
                BaseOutcome::WindowOpened => Some(DisplayEvent::Produce),
                BaseOutcome::Continue => None,
                BaseOutcome::Migrated => match self.base.take_migrate_data() {
                    Some(MigrateData::Display(data)) if self.migrated_in && !self.initialized => {
                        self.restore(data);
                        Some(DisplayEvent::Produce)
                    }
                    other => {
                        tracing::debug!(?other, "unexpected migration data on a display channel; ignored");
                        None
                    }
                },
            },
            DisplayClientMessage::Init {
                pixmap_cache_size,
                glz_dictionary_window_size,
                ..
            } => {
                tracing::debug!(pixmap_cache_size, glz_dictionary_window_size, "display init");
                let window = match u32::try_from(glz_dictionary_window_size) {
                    Ok(w) if self.session_stores => w,
                    _ => 0,
                };
                if self.session_stores {
                    *self.cache = PixmapCache::new(pixmap_cache_size);
                }
                self.decoders.glz_window = window;
                self.encoders.set_glz_window(window);
                self.initialized = true;
                Some(DisplayEvent::Produce)
            }
            DisplayClientMessage::PreferredCompression(c) => {
                // As the C server: a valid value replaces the server's setting
                // for this client (LZ4 then falls back to LZ if the client
                // lacks the capability); anything else is logged and ignored.
                match ImageCompression::from_wire(c) {
                    Some(preferred) => {
                        tracing::debug!(?preferred, "client's preferred compression");
                        self.preferred = Some(preferred);
                    }
                    None => tracing::debug!(compression = c, "ignoring invalid preferred compression"),
                }
                Some(DisplayEvent::Produce)
            }
            DisplayClientMessage::StreamReport(report) => self.stream_report(&report, now),
            DisplayClientMessage::PreferredVideoCodecType(codecs) => {
                tracing::debug!(?codecs, "client's preferred video codecs");
                // As in the C server, the live stream ends (its area goes
                // lossless) so that the next one follows the new choice.
                self.client_video.preferred = codecs;
                self.end_stream_and_resend();
                Some(DisplayEvent::Produce)
            }
            DisplayClientMessage::GlDrawDone => None,
            DisplayClientMessage::Unknown(t) => {
                tracing::debug!(msg_type = t, "ignoring unknown display message");
                None
            }
        })
    }

    /// A client's report on a stream: it steers the live stream's quality,
    /// or, when the client says it cannot play it at all, ends it (the
    /// area goes again losslessly) and no stream starts again for it.
    fn stream_report(&mut self, report: &StreamReport, now: Instant) -> Option<DisplayEvent> {
        let video = self
            .stream
            .as_mut()
            .filter(|v| v.id == report.stream_id && v.report_id == report.unique_id)?;
        tracing::debug!(?report, "stream report");
        if report.num_frames == 0 && report.num_drops == u32::MAX {
            tracing::info!(
                id = video.id,
                "the client cannot play video streams; sending lossless"
            );
            self.streams_refused = true;
            self.end_stream_and_resend();
            return Some(DisplayEvent::Produce);
        }
        video
            .rate
            .on_client_report(report.num_frames, report.num_drops, report.last_frame_delay, now);
        None
    }

    /// Whether the client can take more output now.
    fn has_room(&self) -> bool {
        self.initialized
            && !self.base.is_migrated_out()
            && !self.base.waiting_for_ack()
            && self.base.out.len() < MAX_QUEUED_BYTES
    }

    /// Sends whatever the client is missing, as far as flow control and the
    /// frame pace allow; a new frame starts only if `may_start` (the driver
    /// holds frames while the display's device is still drawing a burst of
    /// commands). Returns when to call again for damage that waits for its
    /// frame.
    pub(crate) fn produce(
        &mut self,
        shared: &DisplayShared,
        settings: DisplaySettings,
        now: Instant,
        may_start: bool,
    ) -> Option<Instant> {
        self.setting = self.preferred.unwrap_or(settings.compression);
        self.wan = settings.wan;
        self.streaming = settings.streaming;
        self.video_codecs = settings.video_codecs;
        self.encoders.jpeg = settings.jpeg_encoder;
        self.collect_stream_frame();
        let next = self.produce_damage(shared, now, may_start);
        // A frame for an inline encoder is encoded here, with the display's
        // lock let go.
        self.collect_stream_frame();
        // A live stream needs a call when it times out, damage or not.
        let stream_end = self.stream.as_ref().map(|s| s.last_change + stream::TIMEOUT);
        earliest(next, stream_end)
    }

    fn produce_damage(&mut self, shared: &DisplayShared, now: Instant, may_start: bool) -> Option<Instant> {
        if !self.has_room() {
            return None;
        }
        let mut state = shared.lock();
        let DisplayState {
            surface,
            deferred,
            generation,
            clients,
            heads,
            detector,
            ..
        } = &mut *state;
        // Pixels are read through `picture`, which draws a deferred drawing
        // only when a read needs it: a video frame that the stream does not
        // take before the next one covers it is never drawn.
        let mut picture = Picture::new(surface.as_mut()?, deferred);
        if self.sent_generation != Some(*generation) {
            // The whole picture goes out; older damage is covered by it.
            clients.insert(self.key, ClientDamage::default());
            self.end_stream();
            self.send_surface(picture.pixels(), heads);
            self.sent_generation = Some(*generation);
            self.next_frame = Some(now + FRAME_INTERVAL);
            return None;
        }
        if self.sent_heads != Some(heads.generation) {
            self.send_heads(picture.width(), picture.height(), heads);
        }
        let damage = clients.get_mut(&self.key)?;
        damage.region.set_tight(self.wan.jpeg);
        if let Some(area) = self.resend.take() {
            damage.add_lossy(area);
        }
        if self
            .stream
            .as_ref()
            .is_some_and(|s| now >= s.last_change + stream::TIMEOUT)
        {
            // The video stopped: its area goes again, lossless.
            if let Some(area) = self.end_stream() {
                damage.add_lossy(area);
            }
        }
        if self.streaming == StreamingVideo::Off {
            // Turned off mid-stream: the area goes lossless.
            if let Some(area) = self.end_stream() {
                damage.add_lossy(area);
            }
        }
        self.keep_moves_off_the_stream(damage, now);
        // The live stream takes its part of the damage and sends its frames
        // at its own pace, apart from the lossless frames' pacing.
        let mut stream_wait = self.pump_stream(&mut picture, &mut damage.region, now);
        if damage.is_empty() {
            self.frame_in_progress = false;
            return stream_wait;
        }
        let look_for_stream = if self.frame_in_progress {
            // A frame that takes longer to send than the next damage takes
            // to come (a large area changing every frame, losslessly) never
            // ends, so the detector is asked once a frame interval anyway:
            // otherwise a full-screen video would never become a stream.
            let due = self.next_stream_look.is_none_or(|at| now >= at);
            if due {
                self.next_stream_look = Some(now + FRAME_INTERVAL);
            }
            due
        } else {
            if let Some(at) = self.next_frame.filter(|at| now < *at) {
                return earliest(Some(at), stream_wait);
            }
            if !may_start {
                return stream_wait;
            }
            self.next_frame = Some(now + FRAME_INTERVAL);
            self.next_stream_look = self.next_frame;
            self.frame_in_progress = true;
            self.base.counters.frame();
            true
        };
        if look_for_stream
            && self.stream.is_none()
            && self.streaming != StreamingVideo::Off
            && self.start_stream(shared, &mut picture, detector, now)
        {
            self.keep_moves_off_the_stream(damage, now);
            stream_wait = self.pump_stream(&mut picture, &mut damage.region, now);
            if damage.is_empty() {
                self.frame_in_progress = false;
                return stream_wait;
            }
        }
        // The host's own copies first: the images below are taken from the
        // picture as it is now, which is what the client has once it made them.
        for mv in damage.take_moves() {
            self.send_move(mv);
        }
        let mut pending = damage.region.take();
        if let Some(video) = &self.stream {
            // The region merges rectangles, so what is left can reach into
            // the live stream's area. The stream owns it: the client shows
            // lossy pixels there, which must neither be drawn over losslessly
            // nor become the source of a COPY_BITS (both would leave the
            // shadow believing the client has exact pixels there, and a
            // later move would copy the lossy ones out of the area for good).
            pending = pending.iter().flat_map(|r| r.minus(&video.area)).collect();
        }
        let surface = picture.pixels_in(&pending);
        let mut unsent = Vec::new();
        for rect in pending {
            if self.base.out.len() >= PRODUCE_CHUNK_BYTES {
                unsent.push(rect);
            } else {
                self.send_damage(surface, rect, &mut unsent);
            }
        }
        self.frame_in_progress = !unsent.is_empty();
        for rect in unsent {
            damage.add(rect);
        }
        stream_wait
    }

    /// Moves that read or write the live stream's area are not made (the
    /// client has lossy pixels there): what they would have written goes as
    /// damage, the stream's part to the stream.
    fn keep_moves_off_the_stream(&mut self, damage: &mut ClientDamage, now: Instant) {
        let Some(video) = self.stream.as_mut() else {
            return;
        };
        let dropped = damage.drop_moves_touching(&video.area);
        if !dropped.is_empty() {
            for rest in video.split(dropped, now) {
                damage.add(rest);
            }
        }
    }

    /// Sends a `COPY_BITS` and makes the move in the client's shadow.
    fn send_move(&mut self, moved: Move) {
        tracing::trace!(?moved, "copy bits");
        self.base.counters.copy_bits();
        self.base.send(&CopyBits {
            surface_id: 0,
            dest: moved.dest.to_wire(),
            src_x: moved.src_x as i32,
            src_y: moved.src_y as i32,
        });
        self.shadow.apply(moved);
    }

    /// The live stream's part of the damage: `region` gives up what lies
    /// in the stream's area, and the stream's frame is sent if the area
    /// changed, its encoder is free and its frame rate allows. Returns when
    /// to come back for a frame held by the frame rate (a busy encoder
    /// wakes the display thread itself).
    fn pump_stream(
        &mut self,
        picture: &mut Picture<'_>,
        region: &mut Region,
        now: Instant,
    ) -> Option<Instant> {
        let video = self.stream.as_mut()?;
        if !region.is_empty() {
            for rest in video.split(region.take(), now) {
                region.add(rest);
            }
        }
        if !video.dirty || video.encoder.busy() {
            return None;
        }
        if let Some(at) = video
            .rate
            .last_frame()
            .map(|t| t + stream::MIN_FRAME_INTERVAL)
            .filter(|at| now < *at)
        {
            return Some(at);
        }
        video.rate.on_frame(now);
        video.dirty = false;
        self.send_stream_data(picture, now);
        None
    }

    /// Starts a stream on the detector's candidate area, if there is one
    /// and the setting takes it; returns whether it did.
    fn start_stream(
        &mut self,
        shared: &DisplayShared,
        picture: &mut Picture<'_>,
        detector: &Detector,
        now: Instant,
    ) -> bool {
        if self.streams_refused {
            return false;
        }
        let Some(area) = detector.candidate(now, picture.width(), picture.height()) else {
            return false;
        };
        let area = Rect::new(area.x, area.y, area.width & !1, area.height & !1);
        if area.area() < stream::MIN_AREA {
            return false;
        }
        if self.streaming == StreamingVideo::Filter {
            let mut pixels = Vec::new();
            picture.pixels_in(&[area]).copy_rect(area, &mut pixels);
            if !crate::display::compress::looks_photographic(&pixels, area.width, area.height) {
                return false;
            }
        }
        let rate = stream::RateControl::default();
        let codecs = video::for_client(
            &self.video_codecs,
            &self.client_video.caps,
            &self.client_video.preferred,
        );
        let Some((codec, encoder)) = StreamEncoder::start(&codecs, area, rate.quality(), self.encoders.jpeg)
        else {
            // The client decodes none of the codecs this server encodes.
            return false;
        };
        let encoder = if matches!(encoder, StreamEncoder::Mjpeg(_)) && area.area() <= INLINE_STREAM_AREA {
            Ok(EncoderThread::inline(encoder))
        } else {
            // Display channels are produced only on the display's thread,
            // which is registered as its worker before it serves any client.
            let worker = shared.worker();
            EncoderThread::spawn(encoder, move || {
                if let Some(worker) = &worker {
                    worker.wake();
                }
            })
        };
        let encoder = match encoder {
            Ok(encoder) => encoder,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a stream encoder thread; the area stays lossless");
                return false;
            }
        };
        let id = self.next_stream_id;
        self.next_stream_id = self.next_stream_id.wrapping_add(1);
        tracing::debug!(id, ?area, ?codec, "video stream starts");
        self.base.counters.stream_started(codec);
        self.base.send(&StreamCreate {
            surface_id: 0,
            id,
            flags: STREAM_FLAGS_TOP_DOWN,
            codec_type: codec.wire(),
            stamp: u64::from(stream::mm_time(now)),
            stream_width: area.width,
            stream_height: area.height,
            src_width: area.width,
            src_height: area.height,
            dest: area.to_wire(),
        });
        // Stream ids are not reused on a channel (they would wrap after
        // 2^32 streams), so the id also tells a report on an older stream
        // apart.
        let report_id = id;
        if self.stream_reports {
            self.base.send(&StreamActivateReport {
                stream_id: id,
                unique_id: report_id,
                max_window_size: stream::REPORT_WINDOW,
                timeout_ms: stream::REPORT_TIMEOUT_MS,
            });
        }
        // What the client shows there is lossy from now on.
        self.shadow.forget(area);
        self.stream = Some(Box::new(VideoStream {
            id,
            area,
            encoder,
            started: now,
            last_change: now,
            dirty: true,
            rate,
            report_id,
        }));
        true
    }

    /// Hands the live stream's area to its encoder, stamped with the
    /// multimedia clock (the client shows it after the latency it was given
    /// in MAIN_INIT); [`Self::collect_stream_frame`] sends it once encoded.
    fn send_stream_data(&mut self, picture: &mut Picture<'_>, now: Instant) {
        let Some(video) = self.stream.as_mut() else {
            return;
        };
        // An MJPEG frame whose pixels a deferred drawing keeps (a guest's
        // video frame) is read from there when it is encoded, inline or on
        // the stream's thread: no copy of the frame under the display's
        // lock.
        let shared = video
            .encoder
            .reads_in_place()
            .then(|| picture.share_rect(video.area))
            .flatten();
        let mut pixels = video.encoder.buffer();
        if shared.is_none() {
            picture.copy_rect(video.area, &mut pixels);
        }
        let job = Job {
            pixels,
            shared,
            area: video.area,
            quality: video.rate.quality(),
            time: now.saturating_duration_since(video.started),
            stamp: stream::mm_time(now),
        };
        if let Err(e) = video.encoder.submit(job) {
            tracing::warn!(id = video.id, error = ?e, "the stream's encoder is gone; the area goes lossless");
            self.end_stream_and_resend();
        }
    }

    /// Sends the live stream's frame if its encoder is done with it.
    fn collect_stream_frame(&mut self) {
        let Some(video) = self.stream.as_mut() else {
            return;
        };
        let done = match video.encoder.take() {
            Ok(Some(done)) => done,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(id = video.id, error = ?e, "the stream's encoder failed; the area goes lossless");
                self.end_stream_and_resend();
                return;
            }
        };
        let id = video.id;
        for data in done.frames {
            self.base
                .counters
                .stream_frame(data.len(), done.quality, done.encode_time);
            tracing::trace!(id, quality = done.quality, bytes = data.len(), "stream frame");
            self.base.send(&StreamData {
                id,
                multi_media_time: done.stamp,
                data: &data,
            });
        }
    }

    /// Ends the live stream, if any, outside a frame: its area goes again
    /// through the lossless path at the next frame (with any area already
    /// waiting for that).
    fn end_stream_and_resend(&mut self) {
        if let Some(area) = self.end_stream() {
            self.resend = Some(self.resend.map_or(area, |waiting| waiting.union(&area)));
        }
    }

    /// Ends the live stream, if any; returns its area, which the client must
    /// get again losslessly.
    fn end_stream(&mut self) -> Option<Rect> {
        let video = self.stream.take()?;
        tracing::debug!(id = video.id, "video stream ends");
        self.base.counters.stream_ended();
        self.base.send(&StreamDestroy { id: video.id });
        self.shadow.forget(video.area);
        Some(video.area)
    }

    /// Brings `rect` up to date: rows that moved go as a COPY_BITS, rows the
    /// client already has are skipped, the rest go as images.
    /// What does not fit this round is added to `unsent`.
    fn send_damage(&mut self, surface: &Surface, rect: Rect, unsent: &mut Vec<Rect>) {
        let rect = rect.clip(surface.width, surface.height);
        if rect.is_empty() {
            return;
        }
        let plan = self.shadow.plan(surface, rect);
        if let Some(moved) = plan.moved {
            self.send_move(moved);
        }
        for band in plan.bands {
            // A JPEG image blurs every pixel of its band, and merged damage
            // covers pixels that did not change (text beside a picture):
            // where JPEG may be used, a band shrinks to what changed, so
            // those keep the exact pixels the client has. (Elsewhere whole
            // bands stay: a console line re-shown keeps the shape the pixmap
            // cache knows it by.)
            let band = if self.wan.jpeg {
                match self.shadow.changed_part(surface, band) {
                    Some(part) => part,
                    None => continue,
                }
            } else {
                band
            };
            if self.base.out.len() >= PRODUCE_CHUNK_BYTES {
                unsent.push(band);
            } else if let Some(rest) = self.send_draws(surface, band, MAX_DRAW_BYTES, Lossy::Allowed) {
                unsent.push(rest);
            }
        }
    }

    /// Tells the client which monitors the picture holds (clients without
    /// the capability show the whole picture as one).
    fn send_heads(&mut self, width: u32, height: u32, heads: &Heads) {
        self.sent_heads = Some(heads.generation);
        if self.monitors_config {
            self.base.send(&heads.message(width, height));
        }
    }

    fn send_surface(&mut self, surface: &Surface, heads: &Heads) {
        if self.sent_generation.is_some() {
            self.base.send(&SurfaceDestroy { surface_id: 0 });
        }
        if self.migrated_in && self.sent_generation.is_none() {
            // The client kept the surface the migration source showed it.
            tracing::debug!("migrated client keeps its surface; redrawing it");
        } else {
            self.base.send(&SurfaceCreate {
                surface_id: 0,
                width: surface.width,
                height: surface.height,
                format: SURFACE_FMT_32_XRGB,
                flags: SURFACE_FLAGS_PRIMARY,
            });
        }
        // One image for the whole picture, as the C server sends it: tools such as
        // spicy-screenshot capture on the first redraw after the surface appears.
        // Lossless, as there: a whole screen mixes photos with text and
        // window edges, which JPEG would blur until each is redrawn.
        let whole = Rect::new(0, 0, surface.width, surface.height);
        let rest = self.send_draws(surface, whole, usize::MAX, Lossy::Refused);
        debug_assert!(rest.is_none(), "one band never stops early");
        self.shadow.reset(surface);
        self.send_heads(surface.width, surface.height, heads);
        self.base.send(&Mark);
    }

    /// Sends `rect` as DRAW_COPYs of at most `max_bytes` of pixels each,
    /// until [`PRODUCE_CHUNK_BYTES`] of output are queued; returns the part
    /// of `rect` not sent. A single band (`max_bytes` covering the whole
    /// rectangle) always goes out.
    fn send_draws(&mut self, surface: &Surface, rect: Rect, max_bytes: usize, lossy: Lossy) -> Option<Rect> {
        let rect = rect.clip(surface.width, surface.height);
        if rect.is_empty() {
            return None;
        }
        let row_bytes = rect.width as usize * 4;
        // Bands of equal height, none over `max_bytes`: no thin tail band
        // that would cost a message and a worse compression ratio of its own.
        let max_rows = (max_bytes / row_bytes).clamp(1, rect.height as usize);
        let bands = (rect.height as usize).div_ceil(max_rows);
        let band_rows = (rect.height as usize).div_ceil(bands) as u32;
        let mut pixels = std::mem::take(&mut self.band_pixels);
        let mut y = rect.y;
        let mut rest = None;
        while y < rect.y + rect.height {
            if y > rect.y && self.base.out.len() >= PRODUCE_CHUNK_BYTES {
                rest = Some(Rect::new(rect.x, y, rect.width, rect.y + rect.height - y));
                break;
            }
            let rows = band_rows.min(rect.y + rect.height - y);
            let band = Rect::new(rect.x, y, rect.width, rows);
            let packed = if band.width == surface.width {
                // Whole rows are already packed in the picture.
                let start = band.y as usize * surface.stride();
                &surface.pixels[start..start + rows as usize * surface.stride()]
            } else {
                pixels.clear();
                surface.copy_rect(band, &mut pixels);
                &pixels[..]
            };
            // Lossy bands too: see the shadow's module documentation.
            self.shadow.store(band, packed);
            self.send_band(band, packed, lossy);
            y += rows;
        }
        self.band_pixels = pixels;
        rest
    }

    /// Sends one band of packed `pixels` as a DRAW_COPY: a reference when
    /// the client's pixmap cache holds it, else encoded (and offered to the
    /// cache); JPEG (on WAN links) only where `lossy` allows it.
    fn send_band(&mut self, band: Rect, pixels: &[u8], lossy: Lossy) {
        let key = self
            .cache
            .admits(band.area())
            .then(|| content_key(band.width, band.height, pixels));
        let started = Instant::now();
        let (id, flags, data) = match key.and_then(|key| self.cache.lookup(key)) {
            Some(id) => {
                tracing::trace!(id, ?band, "pixmap cache hit");
                (id, 0, ImageData::FromCache)
            }
            None => {
                let id = self.next_image_id;
                self.next_image_id += 1;
                let wan = WanCodecs {
                    jpeg: self.wan.jpeg && lossy == Lossy::Allowed,
                    ..self.wan
                };
                let encoding = choose_wan(self.setting, self.decoders, wan, band.width, band.height, pixels);
                let data = self.encoders.encode(encoding, band.width, band.height, pixels);
                tracing::trace!(?band, ?encoding, bytes = data.len(), "draw");
                let mut flags = 0;
                let photo = matches!(encoding, Encoding::Quic);
                if let Some(key) =
                    key.filter(|key| data.is_lossless() && (!photo || self.cache.admits_photo(*key)))
                {
                    if let Some(evicted) = self.cache.insert(key, id, band.area()) {
                        if !evicted.is_empty() {
                            self.base.send(&InvalPixmaps { ids: evicted });
                        }
                        flags = image_flags::CACHE_ME;
                    }
                }
                (id, flags, data)
            }
        };
        self.base.counters.image(&data, started.elapsed());
        self.base.send(&DrawCopy {
            surface_id: 0,
            dest: band.to_wire(),
            image: Image {
                id,
                flags,
                width: band.width,
                height: band.height,
                data,
            },
        });
    }
}

/// Whether an image may go lossy (JPEG, where the WAN settings turn it on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lossy {
    /// Damage: JPEG where the client's WAN codecs allow it.
    Allowed,
    /// The whole picture at (re)connection or resize: always lossless.
    Refused,
}

#[cfg(test)]
mod tests;
