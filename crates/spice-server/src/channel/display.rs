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
use spice_proto::msg::display::{
    image_flags, CopyBits, DisplayClientMessage, DrawCopy, Head, Image, ImageData, InvalPixmaps, Mark,
    MonitorsConfig, SurfaceCreate, SurfaceDestroy, SURFACE_FLAGS_PRIMARY, SURFACE_FMT_32_XRGB,
};
use spice_proto::{Caps, DecodeError, Frame};

use super::{BaseOutcome, ChannelBase};
use crate::display::cache::{content_key, PixmapCache};
use crate::display::compress::{choose_wan, ClientDecoders, Encoders, Encoding, ImageCompression, WanCodecs};
use crate::display::region::{Rect, Region};
use crate::display::shadow::Shadow;
use crate::display::{DisplayShared, DisplayState, Surface};

/// Stop producing while this many bytes wait for the socket.
pub(crate) const MAX_QUEUED_BYTES: usize = 1 << 20;
/// Largest bitmap in one DRAW_COPY of damage; bigger rectangles go out in
/// horizontal bands so other messages can interleave.
pub(crate) const MAX_DRAW_BYTES: usize = 256 * 1024;
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
    /// When the next frame of damage may start.
    next_frame: Option<Instant>,
    /// A frame is being sent over several produce rounds.
    frame_in_progress: bool,
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
            state.clients.insert(key, Region::new());
            state.client_caps.insert(key, client_caps.clone());
        }
        Self {
            base,
            key,
            monitors_config: client_caps.has(display_cap::MONITORS_CONFIG),
            initialized: false,
            sent_generation: None,
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
            next_frame: None,
            frame_in_progress: false,
        }
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
            DisplayClientMessage::StreamReport
            | DisplayClientMessage::GlDrawDone
            | DisplayClientMessage::PreferredVideoCodecType(_) => None,
            DisplayClientMessage::Unknown(t) => {
                tracing::debug!(msg_type = t, "ignoring unknown display message");
                None
            }
        })
    }

    /// Whether the client can take more output now.
    fn has_room(&self) -> bool {
        self.initialized && !self.base.waiting_for_ack() && self.base.out.len() < MAX_QUEUED_BYTES
    }

    /// Sends whatever the client is missing, as far as flow control and the
    /// frame pace allow; a new frame starts only if `may_start` (the driver
    /// holds frames while the display's device is still drawing a burst of
    /// commands). Returns when to call again for damage that waits for its
    /// frame.
    pub(crate) fn produce(
        &mut self,
        shared: &DisplayShared,
        setting: ImageCompression,
        wan: WanCodecs,
        now: Instant,
        may_start: bool,
    ) -> Option<Instant> {
        self.setting = self.preferred.unwrap_or(setting);
        self.wan = wan;
        if !self.has_room() {
            return None;
        }
        let mut state = shared.lock();
        let DisplayState {
            surface,
            generation,
            clients,
            ..
        } = &mut *state;
        let surface = surface.as_ref()?;
        if self.sent_generation != Some(*generation) {
            // The whole picture goes out; older damage is covered by it.
            clients.insert(self.key, Region::new());
            self.send_surface(surface);
            self.sent_generation = Some(*generation);
            self.next_frame = Some(now + FRAME_INTERVAL);
            return None;
        }
        let region = clients.get_mut(&self.key)?;
        if region.is_empty() {
            self.frame_in_progress = false;
            return None;
        }
        if !self.frame_in_progress {
            if let Some(at) = self.next_frame.filter(|at| now < *at) {
                return Some(at);
            }
            if !may_start {
                return None;
            }
            self.next_frame = Some(now + FRAME_INTERVAL);
            self.frame_in_progress = true;
        }
        let mut unsent = Vec::new();
        for rect in region.take() {
            if self.base.out.len() >= PRODUCE_CHUNK_BYTES {
                unsent.push(rect);
            } else {
                self.send_damage(surface, rect, &mut unsent);
            }
        }
        self.frame_in_progress = !unsent.is_empty();
        for rect in unsent {
            region.add(rect);
        }
        None
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
            tracing::trace!(?moved, "copy bits");
            self.base.send(&CopyBits {
                surface_id: 0,
                dest: moved.dest.to_wire(),
                src_x: moved.dest.x as i32,
                src_y: moved.src_y as i32,
            });
            self.shadow.apply(moved);
        }
        for band in plan.bands {
            if self.base.out.len() >= PRODUCE_CHUNK_BYTES {
                unsent.push(band);
            } else if let Some(rest) = self.send_draws(surface, band, MAX_DRAW_BYTES) {
                unsent.push(rest);
            }
        }
    }

    fn send_surface(&mut self, surface: &Surface) {
        if self.sent_generation.is_some() {
            self.base.send(&SurfaceDestroy { surface_id: 0 });
        }
        self.base.send(&SurfaceCreate {
            surface_id: 0,
            width: surface.width,
            height: surface.height,
            format: SURFACE_FMT_32_XRGB,
            flags: SURFACE_FLAGS_PRIMARY,
        });
        // One image for the whole picture, as the C server sends it: tools such as
        // spicy-screenshot capture on the first redraw after the surface appears.
        let whole = Rect::new(0, 0, surface.width, surface.height);
        let rest = self.send_draws(surface, whole, usize::MAX);
        debug_assert!(rest.is_none(), "one band never stops early");
        self.shadow.reset(surface);
        if self.monitors_config {
            self.base.send(&MonitorsConfig {
                max_allowed: 1,
                heads: vec![Head {
                    monitor_id: 0,
                    surface_id: 0,
                    width: surface.width,
                    height: surface.height,
                    x: 0,
                    y: 0,
                    flags: 0,
                }],
            });
        }
        self.base.send(&Mark);
    }

    /// Sends `rect` as DRAW_COPYs of at most `max_bytes` of pixels each,
    /// until [`PRODUCE_CHUNK_BYTES`] of output are queued; returns the part
    /// of `rect` not sent. A single band (`max_bytes` covering the whole
    /// rectangle) always goes out.
    fn send_draws(&mut self, surface: &Surface, rect: Rect, max_bytes: usize) -> Option<Rect> {
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
        let mut pixels = Vec::new();
        let mut y = rect.y;
        while y < rect.y + rect.height {
            if y > rect.y && self.base.out.len() >= PRODUCE_CHUNK_BYTES {
                return Some(Rect::new(rect.x, y, rect.width, rect.y + rect.height - y));
            }
            let rows = band_rows.min(rect.y + rect.height - y);
            let band = Rect::new(rect.x, y, rect.width, rows);
            pixels.clear();
            surface.copy_rect(band, &mut pixels);
            self.shadow.store(band, &pixels);
            self.send_band(band, &pixels);
            y += rows;
        }
        None
    }

    /// Sends one band of packed `pixels` as a DRAW_COPY: a reference when
    /// the client's pixmap cache holds it, else encoded (and offered to the
    /// cache).
    fn send_band(&mut self, band: Rect, pixels: &[u8]) {
        let key = self
            .cache
            .admits(band.area())
            .then(|| content_key(band.width, band.height, pixels));
        let (id, flags, data) = match key.and_then(|key| self.cache.lookup(key)) {
            Some(id) => {
                tracing::trace!(id, ?band, "pixmap cache hit");
                (id, 0, ImageData::FromCache)
            }
            None => {
                let id = self.next_image_id;
                self.next_image_id += 1;
                let encoding = choose_wan(
                    self.setting,
                    self.decoders,
                    self.wan,
                    band.width,
                    band.height,
                    pixels,
                );
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
