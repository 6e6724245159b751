//! The GLZ encoder and the dictionary it shares with the client.
//!
//! # Dictionary
//!
//! Every image encoded is copied (its B, G, R) into a ring of pixels and
//! stays there, referable, until it is evicted. Images are evicted oldest
//! first, before an image is added, while any of these holds:
//!
//! - the pixels of the images kept plus the new one exceed the window: the
//!   client's `glz_dictionary_window_size` (pixels, from DISPLAY_INIT),
//!   capped by the encoder's memory limit ([`DEFAULT_MAX_WINDOW_PIXELS`])
//!   and by what the format can address ([`super::MAX_WINDOW_PIXELS`]);
//! - the new image would overwrite the oldest one in the ring (an image
//!   never wraps around the ring's end: it starts at the ring's beginning
//!   instead, leaving a gap);
//! - 65536 images are kept (image distances stay small).
//!
//! Each stream's window head distance names the oldest image kept, so the
//! client frees exactly what the encoder evicted, and no stream refers to
//! an image older than its own head. Ids start at 0 and grow by one per
//! encoded image; [`GlzEncoder::reset`] starts over (a new client session:
//! spice-gtk clears its window when a session connects). An image larger
//! than the window is refused before anything changes, so the caller can
//! send it another way.
//!
//! # Matching
//!
//! Greedy parsing, like the LZ encoder, over candidates tried cheapest
//! first:
//!
//! 1. an identical row in an earlier image of the same width (the rows of
//!    each image are hashed into a table of 2^16 rows): scrolled and
//!    repainted content is found whole, a row at a time, wherever it was;
//! 2. the same place in the most recent earlier image of the same size (or,
//!    failing that, the same width): a repainted window, a clock, a cursor
//!    blink are mostly that;
//! 3. the displacement of the last reference into an earlier image: once
//!    scrolled content is found, the next rows follow at the same offset;
//! 4. the previous pixel (runs), the pixel one row up, and the distance of
//!    the last reference inside the image;
//! 5. a hash table over the whole window: keys of 3 pixels, buckets of the
//!    4 most recent positions, at most 2^16 buckets (1 MiB, so that it
//!    mostly stays in cache: a bigger one made the encoder 2.5 times slower
//!    on photos). Literal positions are inserted, and the last position of
//!    each reference (inserting the inside of references costs a cache miss
//!    each and, measured, gained nothing).
//!
//! A candidate is scored by the bytes it saves over literals (a reference
//! costs 3 to 7 bytes plus the length's extension bytes, a literal pixel 3).
//! Table entries are not removed when images leave the window: a candidate
//! counts only if it lies in an image still in the window, and only its
//! compared pixels are used, so a stale entry costs a probe, never
//! correctness. Over incompressible
//! stretches the table is consulted at fewer positions (the other
//! candidates are still tried everywhere), which bounds the time on noise
//! and photos.

use std::collections::VecDeque;

use super::{put_reference, reference_cost, GlzHeader, Source, MAX_COPY, MAX_WINDOW_PIXELS, TYPE_RGB32};
use crate::{CodecError, ImageRef};

/// Default cap on the window, in pixels (16 MiB of pixels): the client's
/// window is used up to this size.
pub const DEFAULT_MAX_WINDOW_PIXELS: usize = 1 << 22;
/// Hash-table entries probed per position by default.
pub const DEFAULT_SEARCH_DEPTH: usize = 4;
/// Largest search depth: the bucket size.
pub const MAX_SEARCH_DEPTH: usize = WAYS;

/// Positions per hash bucket.
const WAYS: usize = 4;
/// Most images kept in the window.
const MAX_WINDOW_IMAGES: usize = 1 << 16;
/// A match at least this long is taken without looking further.
const GOOD_ENOUGH: usize = 32;
/// Pixels hashed per key.
const HASH_UNITS: usize = 3;
/// After this many hash searches in a row found nothing, search one
/// position in two, then one in three... up to one in [`MAX_SKIP`] + 1.
const SKIP_AFTER: usize = 32;
/// Most positions skipped between two hash searches.
const MAX_SKIP: usize = 8;
/// Bounds of the number of hash buckets (log2).
const MIN_BUCKET_BITS: u32 = 10;
const MAX_BUCKET_BITS: u32 = 16;
/// Slots of the row table (log2).
const ROW_BITS: u32 = 16;
/// Earlier images looked at for one of the same size.
const SAME_SIZE_LOOKBACK: usize = 32;

/// An image in the window.
#[derive(Debug, Clone, Copy)]
struct WindowImage {
    id: u64,
    /// Global position of its first pixel (ring index: `start & mask`).
    start: u64,
    /// Pixels.
    len: usize,
    width: u32,
    height: u32,
}

/// What one [`GlzEncoder::encode_rgb32`] produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GlzStats {
    /// The image's id.
    pub id: u64,
    /// The window head distance written in the header.
    pub win_head_dist: u32,
    /// Bytes appended (header included).
    pub bytes: usize,
    /// Pixels coded as literals.
    pub literal_pixels: usize,
    /// Pixels copied from earlier in the same image.
    pub near_pixels: usize,
    /// Pixels copied from earlier images.
    pub far_pixels: usize,
}

/// A GLZ encoder and its dictionary: one per client session, fed every GLZ
/// image that client is sent, in the order it is sent. See the module
/// documentation for the dictionary's rules.
///
/// Memory: the ring of pixels (4 bytes per pixel of window, allocated as
/// images arrive, at most the window rounded up to a power of two) and the
/// hash tables (at most 2 MiB).
pub struct GlzEncoder {
    /// Effective window, pixels (0: GLZ unusable).
    window: usize,
    /// Ring capacity - 1 (a power of two minus one).
    mask: u64,
    depth: usize,
    ring: Vec<u32>,
    images: VecDeque<WindowImage>,
    /// Pixels of the images in `images`.
    live: usize,
    /// Global position after the last image.
    next_pos: u64,
    next_id: u64,
    table: Vec<u32>,
    bucket_bits: u32,
    /// Rows of earlier images by content: (row hash, global position of
    /// the row's first pixel plus one), direct-mapped by the hash; (0, 0)
    /// is an empty slot. Empty is all zeros so that the table's pages are
    /// left to the kernel's zero pages until a row lands in them: a session
    /// of small updates touches a few of its 256 pages, not all of them.
    rows: Vec<(u64, u64)>,
    /// Scratch: per row of the image being coded, its hash and the global
    /// position of an earlier identical row (`NO_ROW` if none).
    row_src: Vec<(u64, u64)>,
}

/// `row_src` entry for a row seen nowhere before.
const NO_ROW: u64 = u64::MAX;

impl std::fmt::Debug for GlzEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlzEncoder")
            .field("window", &self.window)
            .field("images", &self.images.len())
            .field("live_pixels", &self.live)
            .field("next_id", &self.next_id)
            .finish_non_exhaustive()
    }
}

impl GlzEncoder {
    /// An encoder for a client that offered a window of `client_window`
    /// pixels (DISPLAY_INIT's `glz_dictionary_window_size`), capped at
    /// [`DEFAULT_MAX_WINDOW_PIXELS`]. A window of 0 makes every encode fail.
    pub fn new(client_window: u32) -> Self {
        Self::with_limits(client_window as usize, DEFAULT_MAX_WINDOW_PIXELS)
    }

    /// Like [`new`](Self::new) with another cap: the window is
    /// `min(client_window, max_window)` pixels, and the ring's capacity
    /// is the smallest power of two above the client's window, but at most
    /// the largest at or below `max_window` (so the ring takes at most
    /// `4 * max_window` bytes).
    pub fn with_limits(client_window: usize, max_window: usize) -> Self {
        let max_window = max_window.min(MAX_WINDOW_PIXELS);
        let cap = if max_window == 0 {
            0
        } else {
            1usize << (usize::BITS - 1 - max_window.leading_zeros())
        };
        let ring_cap = client_window.next_power_of_two().min(cap);
        let window = client_window.min(ring_cap);
        let bucket_bits = (usize::BITS - ring_cap.max(1).leading_zeros())
            .saturating_sub(4)
            .clamp(MIN_BUCKET_BITS, MAX_BUCKET_BITS);
        Self {
            window,
            mask: ring_cap.saturating_sub(1) as u64,
            depth: DEFAULT_SEARCH_DEPTH,
            ring: Vec::new(),
            images: VecDeque::new(),
            live: 0,
            next_pos: 0,
            next_id: 0,
            table: Vec::new(),
            bucket_bits,
            rows: Vec::new(),
            row_src: Vec::new(),
        }
    }

    /// Probes up to `depth` hash-table entries per position (1 to
    /// [`MAX_SEARCH_DEPTH`]; default [`DEFAULT_SEARCH_DEPTH`]).
    pub fn with_search_depth(mut self, depth: usize) -> Self {
        self.depth = depth.clamp(1, MAX_SEARCH_DEPTH);
        self
    }

    /// Numbers images from `id` on: a dictionary that follows another one's
    /// (a migration destination goes on after the source's last image, so
    /// the client's window, which holds the source's images, sees ids grow
    /// as it expects). Nothing before is ever referred to.
    pub fn starting_at(mut self, id: u64) -> Self {
        self.next_id = id;
        self
    }

    /// The window in pixels: the largest image this encoder takes.
    pub fn window_pixels(&self) -> usize {
        self.window
    }

    /// Whether a `width` x `height` image fits the window (encoding it
    /// can then fail only if the image buffer is invalid).
    pub fn fits(&self, width: u32, height: u32) -> bool {
        let n = u64::from(width) * u64::from(height);
        n > 0 && n <= self.window as u64
    }

    /// The id the next image gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Images in the window.
    pub fn images(&self) -> usize {
        self.images.len()
    }

    /// Pixels of the images in the window.
    pub fn window_used(&self) -> usize {
        self.live
    }

    /// Bytes of memory held (ring and hash table).
    pub fn memory_bytes(&self) -> usize {
        self.ring.capacity() * 4
            + self.table.capacity() * 4
            + self.rows.capacity() * 16
            + self.row_src.capacity() * 16
    }

    /// Empties the dictionary and starts ids again from 0, for a client
    /// whose window was cleared (a new session). Keeps the memory.
    pub fn reset(&mut self) {
        self.images.clear();
        self.live = 0;
        self.next_pos = 0;
        self.next_id = 0;
        self.table.fill(0);
        self.rows.fill((0, 0));
    }

    /// Appends a GLZ_RGB stream (type RGB32, top-down) coding `image`,
    /// whose pixels are B, G, R, x (x is not coded; the client decodes it
    /// as 0), and adds the image to the dictionary under the next id.
    ///
    /// The stream may refer to any image in the dictionary, so the client
    /// must receive the streams in the order they were encoded, every one
    /// of them (as GLZ_RGB or wrapped as ZLIB_GLZ_RGB). Fails, changing
    /// nothing, if the image is invalid or larger than the window
    /// ([`fits`](Self::fits)).
    pub fn encode_rgb32(&mut self, image: &ImageRef, out: &mut Vec<u8>) -> Result<GlzStats, CodecError> {
        image.validate()?;
        if self.window == 0 {
            return Err(CodecError::InvalidImage("the client has no GLZ window"));
        }
        if !self.fits(image.width, image.height) {
            return Err(CodecError::InvalidImage("image larger than the GLZ window"));
        }
        let (w, h) = (image.width as usize, image.height as usize);
        let n = w * h;
        let start_len = out.len();

        // Place the image in the ring and evict what it needs.
        let cap = self.mask + 1;
        let mut pos = self.next_pos;
        let offset = pos & self.mask;
        if offset + n as u64 > cap {
            pos += cap - offset;
        }
        while let Some(front) = self.images.front() {
            if pos + n as u64 - front.start > cap
                || self.live + n > self.window
                || self.images.len() >= MAX_WINDOW_IMAGES
            {
                self.live -= front.len;
                self.images.pop_front();
            } else {
                break;
            }
        }
        let id = self.next_id;
        let win_head_dist = self.images.front().map_or(0, |f| id - f.id) as u32;

        let r0 = (pos & self.mask) as usize;
        if self.ring.len() < r0 + n {
            self.ring.resize(r0 + n, 0);
        }
        for y in 0..image.height {
            let dst = &mut self.ring[r0 + y as usize * w..][..w];
            for (d, p) in dst.iter_mut().zip(image.row(y).chunks_exact(4)) {
                *d = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) & 0x00ff_ffff;
            }
        }
        if self.table.is_empty() {
            self.table = vec![0; WAYS << self.bucket_bits];
            self.rows = vec![(0, 0); 1 << ROW_BITS];
        }
        // Rows seen before (in images still in the window: checked when used).
        let row_slot = |key: u64| (key >> (64 - ROW_BITS)) as usize;
        self.row_src.clear();
        self.row_src
            .extend(self.ring[r0..r0 + n].chunks_exact(w).map(|row| {
                let key = row_hash(row);
                let (held, at_plus_one) = self.rows[row_slot(key)];
                let found = held == key && at_plus_one != 0;
                (key, if found { at_plus_one - 1 } else { NO_ROW })
            }));

        GlzHeader {
            kind: TYPE_RGB32,
            top_down: true,
            width: image.width,
            height: image.height,
            stride: image.width * 4,
            id,
            win_head_dist,
        }
        .write(out);
        // Worst case: every pixel a literal plus a control byte per 32.
        out.reserve(n * 3 + n.div_ceil(MAX_COPY));

        let far = same_place(&self.images, pos, image.width, image.height);
        let mut coder = Coder {
            ring: &self.ring,
            s: &self.ring[r0..r0 + n],
            mask: self.mask,
            images: &self.images,
            table: &mut self.table,
            shift: 64 - self.bucket_bits,
            g0: pos,
            id,
            width: w,
            depth: self.depth,
            last_near: 0,
            same_far: far,
            last_far: far,
            row_src: &self.row_src,
            row: 0,
            cache: 0,
            stats: GlzStats {
                id,
                win_head_dist,
                ..GlzStats::default()
            },
        };
        coder.compress(out);
        let mut stats = coder.stats;
        stats.bytes = out.len() - start_len;
        for (y, &(key, _)) in self.row_src.iter().enumerate() {
            self.rows[row_slot(key)] = (key, pos + (y * w) as u64 + 1);
        }

        self.images.push_back(WindowImage {
            id,
            start: pos,
            len: n,
            width: image.width,
            height: image.height,
        });
        self.live += n;
        self.next_pos = pos + n as u64;
        self.next_id += 1;
        Ok(stats)
    }
}

/// The global displacement from the most recent image of the same size
/// (else of the same width) to an image placed at `pos`; 0 when none.
fn same_place(images: &VecDeque<WindowImage>, pos: u64, width: u32, height: u32) -> u64 {
    let recent = || images.iter().rev().take(SAME_SIZE_LOOKBACK);
    recent()
        .find(|im| im.width == width && im.height == height)
        .or_else(|| recent().find(|im| im.width == width))
        .map_or(0, |im| pos - im.start)
}

/// A hash of a row's pixels.
fn row_hash(row: &[u32]) -> u64 {
    // Four independent lanes, folded at the end.
    let mut lanes = [
        0x243F_6A88_85A3_08D3u64,
        0x1319_8A2E_0370_7344,
        0xA409_3822_299F_31D0,
        0x082E_FA98_EC4E_6C89,
    ];
    let mut chunks = row.chunks_exact(4);
    for c in &mut chunks {
        for (l, &p) in lanes.iter_mut().zip(c) {
            *l = (*l ^ u64::from(p)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    for (l, &p) in lanes.iter_mut().zip(chunks.remainder()) {
        *l = (*l ^ u64::from(p) ^ 0xff).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    let mut h = row.len() as u64;
    for l in lanes {
        h = (h ^ l ^ (l >> 29)).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    }
    h ^ (h >> 32)
}

/// The best reference found so far for one position.
#[derive(Clone, Copy)]
struct Best {
    len: usize,
    saving: usize,
    src: Source,
    /// For a reference into an earlier image: the global position of its start.
    start: u64,
}

impl Best {
    const NONE: Self = Self {
        len: 0,
        saving: 0,
        src: Source::Near(1),
        start: 0,
    };

    #[inline]
    fn consider(&mut self, len: usize, src: Source, start: u64) {
        if len < 2 {
            return;
        }
        let saving = (len * 3).saturating_sub(reference_cost(len, src));
        if saving > self.saving {
            *self = Self {
                len,
                saving,
                src,
                start,
            };
        }
    }
}

/// Number of equal pixels at the starts of `a` and `b`.
#[inline]
fn common(a: &[u32], b: &[u32]) -> usize {
    let max = a.len().min(b.len());
    let (a, b) = (&a[..max], &b[..max]);
    let mut k = 0;
    // Eight at a time first: fixed-size array comparisons vectorise.
    for (p, q) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let p: &[u32; 8] = p.try_into().expect("chunk of 8");
        let q: &[u32; 8] = q.try_into().expect("chunk of 8");
        if p != q {
            break;
        }
        k += 8;
    }
    k + a[k..].iter().zip(&b[k..]).take_while(|(p, q)| p == q).count()
}

/// State of the coding of one image.
struct Coder<'a> {
    ring: &'a [u32],
    /// The image being coded (a slice of the ring).
    s: &'a [u32],
    mask: u64,
    /// The earlier images in the window, oldest first.
    images: &'a VecDeque<WindowImage>,
    table: &'a mut [u32],
    shift: u32,
    /// Global position of the image's first pixel.
    g0: u64,
    id: u64,
    width: usize,
    depth: usize,
    /// Distance of the last reference inside the image (0: none).
    last_near: usize,
    /// Global displacement to the same place in a same-sized image (0: none).
    same_far: u64,
    /// Global displacement of the last reference to an earlier image (0: none).
    last_far: u64,
    /// Per row, the global position of an identical earlier row, if any.
    row_src: &'a [(u64, u64)],
    /// The row of the last position looked at.
    row: usize,
    /// Index in `images` of the last image located.
    cache: usize,
    stats: GlzStats,
}

impl Coder<'_> {
    #[inline]
    fn hash(&self, i: usize) -> usize {
        let s = self.s;
        let a = u64::from(s[i]) | (u64::from(s[i + 1]) << 24);
        let b = if HASH_UNITS > 2 { u64::from(s[i + 2]) } else { 0 };
        let h = (a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)) >> self.shift;
        (h as usize) * WAYS
    }

    /// Puts position `i` at the front of its bucket `b`.
    #[inline]
    fn insert_at(&mut self, b: usize, i: usize) {
        let bucket = &mut self.table[b..b + WAYS];
        bucket.copy_within(0..WAYS - 1, 1);
        bucket[0] = (self.g0 + i as u64) as u32;
    }

    #[inline]
    fn insert(&mut self, i: usize) {
        if i + HASH_UNITS <= self.s.len() {
            let b = self.hash(i);
            self.insert_at(b, i);
        }
    }

    /// The earlier image holding global position `q`, with its index.
    #[inline]
    fn locate(&mut self, q: u64) -> Option<WindowImage> {
        let inside = |im: &WindowImage| im.start <= q && q < im.start + im.len as u64;
        if let Some(im) = self.images.get(self.cache) {
            if inside(im) {
                return Some(*im);
            }
        }
        let k = self.images.partition_point(|im| im.start <= q);
        let im = self.images.get(k.checked_sub(1)?)?;
        if inside(im) {
            self.cache = k - 1;
            Some(*im)
        } else {
            None
        }
    }

    /// Considers the pixels at global position `q` (before the one of `i`)
    /// as the source of a reference for the pixels at `i`.
    #[inline]
    fn try_global(&mut self, i: usize, q: u64, best: &mut Best) {
        if q >= self.g0 {
            self.try_near(i, i - (q - self.g0) as usize, best);
            return;
        }
        // Cheap rejection before the image is looked up (the ring grows
        // as images arrive: a stale entry may point past its end).
        if self.ring.get((q & self.mask) as usize) != Some(&self.s[i]) {
            return;
        }
        let Some(im) = self.locate(q) else { return };
        let offset = (q - im.start) as usize;
        let base = (im.start & self.mask) as usize;
        let avail = (im.len - offset).min(self.s.len() - i);
        let src = &self.ring[base + offset..base + offset + avail];
        let cur = &self.s[i..i + avail];
        let probe = best.len.min(avail - 1);
        if src[probe] != cur[probe] {
            return;
        }
        let len = common(src, cur);
        best.consider(
            len,
            Source::Far {
                image_dist: self.id - im.id,
                offset,
            },
            im.start,
        );
    }

    /// Considers the pixels `d` back inside the image.
    #[inline]
    fn try_near(&self, i: usize, d: usize, best: &mut Best) {
        let s = self.s;
        let max = s.len() - i;
        let probe = best.len.min(max - 1);
        if s[i - d + probe] != s[i + probe] || s[i - d] != s[i] {
            return;
        }
        let len = common(&s[i - d..], &s[i..]);
        best.consider(len, Source::Near(d), 0);
    }

    /// The best reference for the pixels at `i`; with `hash`, also searches
    /// the hash table and inserts `i`.
    fn find(&mut self, i: usize, hash: bool) -> Best {
        let mut best = Best::NONE;
        let gi = self.g0 + i as u64;
        let w = self.width;
        while (self.row + 1) * w <= i {
            self.row += 1;
        }
        let src = self.row_src[self.row].1;
        let mut row_delta = 0;
        // Rows are entered after their image is coded: always earlier.
        if src < self.g0 {
            let q = src + (i - self.row * w) as u64;
            row_delta = gi - q;
            self.try_global(i, q, &mut best);
        }
        let (same, last) = (self.same_far, self.last_far);
        if last != 0 && last != row_delta && last <= gi {
            self.try_global(i, gi - last, &mut best);
        }
        if same != 0 && same != last && same != row_delta && same <= gi {
            self.try_global(i, gi - same, &mut best);
        }
        if i > 0 && best.len < GOOD_ENOUGH {
            self.try_near(i, 1, &mut best);
            if best.len < GOOD_ENOUGH && w > 1 && i >= w {
                self.try_near(i, w, &mut best);
            }
            let d = self.last_near;
            if best.len < GOOD_ENOUGH && d > 1 && d != w && i >= d {
                self.try_near(i, d, &mut best);
            }
        }
        if !hash || i + HASH_UNITS > self.s.len() {
            return best;
        }
        let b = self.hash(i);
        if best.len < GOOD_ENOUGH {
            for k in 0..self.depth {
                let entry = self.table[b + k];
                let back = (gi as u32).wrapping_sub(entry);
                if back == 0 || u64::from(back) > gi {
                    continue;
                }
                self.try_global(i, gi - u64::from(back), &mut best);
                if best.len >= GOOD_ENOUGH {
                    break;
                }
            }
        }
        self.insert_at(b, i);
        best
    }

    /// Appends `s[from..to]` as literal runs.
    fn literals(&mut self, from: usize, to: usize, out: &mut Vec<u8>) {
        self.stats.literal_pixels += to - from;
        for run in self.s[from..to].chunks(MAX_COPY) {
            out.push((run.len() - 1) as u8);
            for &p in run {
                out.extend_from_slice(&p.to_le_bytes()[..3]);
            }
        }
    }

    fn compress(&mut self, out: &mut Vec<u8>) {
        let n = self.s.len();
        let mut lit = 0;
        let mut i = 0;
        let mut misses = 0usize;
        let mut next_hash = 0;
        while i < n {
            let hash = i >= next_hash;
            let mut best = self.find(i, hash);
            if best.saving == 0 {
                if hash {
                    misses += 1;
                    next_hash = i + 1 + (misses / SKIP_AFTER).min(MAX_SKIP);
                }
                i += 1;
                continue;
            }
            misses = 0;
            // A match found late (a skipped position, a sparse insertion,
            // a full bucket) may start earlier.
            match &mut best.src {
                Source::Near(d) => {
                    let d = *d;
                    while i > lit && i > d && self.s[i - 1] == self.s[i - 1 - d] {
                        i -= 1;
                        best.len += 1;
                    }
                    self.last_near = d;
                    self.stats.near_pixels += best.len;
                }
                Source::Far { offset, .. } => {
                    let base = (best.start & self.mask) as usize;
                    while i > lit && *offset > 0 && self.s[i - 1] == self.ring[base + *offset - 1] {
                        i -= 1;
                        *offset -= 1;
                        best.len += 1;
                    }
                    self.last_far = self.g0 + i as u64 - (best.start + *offset as u64);
                    self.stats.far_pixels += best.len;
                }
            }
            self.literals(lit, i, out);
            put_reference(best.len, best.src, out);
            let end = i + best.len;
            // Only the last position of a reference is hashed: inserting
            // its inside costs a cache miss each and, measured, gains
            // nothing (identical rows are found through the row table).
            if end - 1 > i {
                self.insert(end - 1);
            }
            i = end;
            lit = i;
            next_hash = i;
        }
        self.literals(lit, n, out);
    }
}
