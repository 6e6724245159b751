//! The LZ encoder.
//!
//! Greedy parsing. At each position four kinds of candidates are tried,
//! cheapest first:
//!
//! 1. the previous unit (a run: solid areas, distance 1),
//! 2. the unit one row up (vertical repetition, gradients, scrolled text),
//! 3. the distance of the last reference (repeated patterns),
//! 4. a hash chain over the last 73727 units (keys of 2 pixels or 3 bytes,
//!    at most [`LzEncoder::with_chain_depth`] links), like the C encoder's
//!    hash table but keeping more than one candidate per key.
//!
//! A candidate is scored by the bytes it saves over coding its units as
//! literals (a near reference costs 2 bytes, a far one 4). A match found is
//! first extended backwards over pending literals. As in the C encoder only
//! the last two positions of a match are hashed (hashing all of them costs
//! time and, measured, even ratio). Over stretches where the hash finds
//! nothing, it is consulted at fewer and fewer positions (up to one in
//! [`MAX_SKIP`] + 1), like LZ4's acceleration; the cheap candidates are still
//! tried everywhere.
//!
//! The hash table and chains live in [`LzEncoder`] so a caller encoding many
//! images reuses them; the head table is cleared per image, the chain links
//! need no clearing because only positions of the current image are
//! reachable from it.

use super::{Header, LzImageType, MAX_COPY, MAX_DISTANCE, MAX_IMAGE_BYTES, MAX_NEAR_DISTANCE};
use crate::{CodecError, ImageRef};

/// Hash-chain links followed per position by default (see
/// [`LzEncoder::with_chain_depth`]).
pub const DEFAULT_CHAIN_DEPTH: usize = 2;
/// Largest chain depth [`LzEncoder::with_chain_depth`] accepts.
pub const MAX_CHAIN_DEPTH: usize = 64;
/// A match at least this long is taken without looking further.
const GOOD_ENOUGH: usize = 16;
/// After this many hash searches in a row found nothing, search one
/// position in two, then one in three... up to one in [`MAX_SKIP`] + 1.
const SKIP_AFTER: usize = 32;
/// Most positions skipped between two hash searches.
const MAX_SKIP: usize = 8;
/// Largest hash table: 2^16 heads.
const MAX_HASH_BITS: u32 = 16;
/// Chain window: a power of two above [`MAX_DISTANCE`].
const WINDOW: usize = 1 << 17;

/// Reusable LZ encoder state: the hash table, chain links and the image
/// copied to a contiguous array of units. Keeping one per display channel
/// saves the allocations; [`encode_rgb32`] and [`encode_rgba`] make a fresh one.
#[derive(Debug)]
pub struct LzEncoder {
    depth: usize,
    pixels: Vec<u32>,
    bytes: Vec<u8>,
    head: Vec<u32>,
    chain: Vec<u32>,
}

/// Appends a complete LZ stream of type RGB32 (top-down) coding `image`,
/// whose pixels are B, G, R, x; the x byte is not coded (the client decodes
/// it as 0). See [`LzEncoder::encode_rgb32`].
pub fn encode_rgb32(image: &ImageRef, out: &mut Vec<u8>) -> Result<(), CodecError> {
    LzEncoder::new().encode_rgb32(image, out)
}

/// Appends a complete LZ stream of type RGBA (top-down) coding `image`,
/// whose pixels are B, G, R, A. See [`LzEncoder::encode_rgba`].
pub fn encode_rgba(image: &ImageRef, out: &mut Vec<u8>) -> Result<(), CodecError> {
    LzEncoder::new().encode_rgba(image, out)
}

impl Default for LzEncoder {
    fn default() -> Self {
        Self::with_chain_depth(DEFAULT_CHAIN_DEPTH)
    }
}

impl LzEncoder {
    /// An encoder with nothing allocated yet, following
    /// [`DEFAULT_CHAIN_DEPTH`] hash-chain links per position.
    pub fn new() -> Self {
        Self::default()
    }

    /// An encoder following up to `depth` hash-chain links per position
    /// (at most [`MAX_CHAIN_DEPTH`]). 0 tries only runs, the row above and
    /// the last distance: fastest, still good on UI content. Measured on
    /// 1024x768 text, depth 1, 2, 4 and 8 give about 0.85, 0.80, 0.74 and
    /// 0.69 of the C encoder's bytes; higher depths cost speed (depth 2 is
    /// about as fast as the C encoder on text).
    pub fn with_chain_depth(depth: usize) -> Self {
        Self {
            depth: depth.min(MAX_CHAIN_DEPTH),
            pixels: Vec::new(),
            bytes: Vec::new(),
            head: Vec::new(),
            chain: Vec::new(),
        }
    }

    /// Appends a complete LZ stream of type RGB32: the header (stride
    /// `width * 4`, top-down) and one pass over the pixels' B, G, R bytes.
    /// Fails only if the image is invalid or larger than the clients accept
    /// (`width * 4 * height` of 1 GiB or more).
    pub fn encode_rgb32(&mut self, image: &ImageRef, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.encode_32(image, LzImageType::Rgb32, out)
    }

    /// Appends a complete LZ stream of type RGBA: the header, a pass over
    /// the pixels' B, G, R bytes, then a pass over their alpha bytes. Like
    /// [`encode_rgb32`](Self::encode_rgb32) otherwise.
    pub fn encode_rgba(&mut self, image: &ImageRef, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.encode_32(image, LzImageType::Rgba, out)
    }

    fn encode_32(
        &mut self,
        image: &ImageRef,
        kind: LzImageType,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        image.validate()?;
        let (w, h) = (image.width as usize, image.height as usize);
        if image.width > i32::MAX as u32 / 4
            || u64::from(image.width) * 4 * u64::from(image.height) > MAX_IMAGE_BYTES
        {
            return Err(CodecError::InvalidImage("too large for LZ"));
        }
        Header {
            kind,
            width: image.width,
            height: image.height,
            stride: image.width * 4,
            top_down: true,
        }
        .write(out);
        // Worst case: every unit a literal plus a control byte per 32.
        let units = w * h;
        out.reserve(units * 3 + units.div_ceil(MAX_COPY) + 16);

        self.pixels.clear();
        self.pixels.reserve(units);
        for y in 0..image.height {
            self.pixels.extend(
                image
                    .row(y)
                    .chunks_exact(4)
                    .map(|p| u32::from_le_bytes([p[0], p[1], p[2], 0])),
            );
        }
        compress(&self.pixels, w, self.depth, &mut self.head, &mut self.chain, out);

        if kind == LzImageType::Rgba {
            out.reserve(units + units.div_ceil(MAX_COPY));
            self.bytes.clear();
            self.bytes.reserve(units);
            for y in 0..image.height {
                self.bytes.extend(image.row(y).chunks_exact(4).map(|p| p[3]));
            }
            compress(&self.bytes, w, self.depth, &mut self.head, &mut self.chain, out);
        }
        Ok(())
    }
}

/// Codes one pass over byte units (`width` per row) with `enc`'s tables.
pub(super) fn compress_bytes(enc: &mut LzEncoder, s: &[u8], width: usize, out: &mut Vec<u8>) {
    compress(s, width, enc.depth, &mut enc.head, &mut enc.chain, out);
}

/// What the coder needs to know of a unit type.
trait Unit: Copy + Eq {
    /// Wire bytes of one literal.
    const BYTES: usize;
    /// Real length minus the coded length field (the decoder's bias).
    const LEN_BIAS: usize;
    /// Shortest reference worth coding (at least `LEN_BIAS + 1`).
    const MIN_MATCH: usize;
    /// Units hashed to find chain candidates.
    const HASH_UNITS: usize;
    /// Appends the literal coding of `self`.
    fn put(self, out: &mut Vec<u8>);
    /// The 64-bit hash key of `s[i..i + HASH_UNITS]`.
    fn key(s: &[Self], i: usize) -> u64;
}

/// An RGB pixel, `0x00RRGGBB`.
impl Unit for u32 {
    const BYTES: usize = 3;
    const LEN_BIAS: usize = 0;
    const MIN_MATCH: usize = 2;
    const HASH_UNITS: usize = 2;

    #[inline]
    fn put(self, out: &mut Vec<u8>) {
        let b = self.to_le_bytes();
        out.extend_from_slice(&b[..3]);
    }

    #[inline]
    fn key(s: &[Self], i: usize) -> u64 {
        u64::from(s[i]) | (u64::from(s[i + 1]) << 24)
    }
}

/// A byte unit (alpha, A8, palette indices).
impl Unit for u8 {
    const BYTES: usize = 1;
    const LEN_BIAS: usize = 2;
    const MIN_MATCH: usize = 3;
    const HASH_UNITS: usize = 3;

    #[inline]
    fn put(self, out: &mut Vec<u8>) {
        out.push(self);
    }

    #[inline]
    fn key(s: &[Self], i: usize) -> u64 {
        u64::from(s[i]) | (u64::from(s[i + 1]) << 8) | (u64::from(s[i + 2]) << 16)
    }
}

/// Bytes a reference of `len` units at `distance` takes on the wire.
#[inline]
fn reference_cost<U: Unit>(len: usize, distance: usize) -> usize {
    let field = len - U::LEN_BIAS;
    let ext = if field >= 7 { 1 + (field - 7) / 255 } else { 0 };
    ext + if distance <= MAX_NEAR_DISTANCE { 2 } else { 4 }
}

/// Bytes saved by coding `len` units at `distance` as a reference rather
/// than as literals; 0 when not worth it.
#[inline]
fn saving<U: Unit>(len: usize, distance: usize) -> usize {
    if len < U::MIN_MATCH {
        return 0;
    }
    (len * U::BYTES).saturating_sub(reference_cost::<U>(len, distance))
}

/// Number of equal units at `a` and `b` (`b < a`), at most `max`.
#[inline]
fn common<U: Unit>(s: &[U], a: usize, b: usize, max: usize) -> usize {
    let x = &s[a..a + max];
    let y = &s[b..b + max];
    let mut k = 0;
    // Eight at a time first: fixed-size array comparisons vectorise.
    for (p, q) in x.chunks_exact(8).zip(y.chunks_exact(8)) {
        let p: &[U; 8] = p.try_into().expect("chunk of 8");
        let q: &[U; 8] = q.try_into().expect("chunk of 8");
        if p != q {
            break;
        }
        k += 8;
    }
    k + x[k..].iter().zip(&y[k..]).take_while(|(p, q)| p == q).count()
}

#[derive(Clone, Copy, Default)]
struct Match {
    len: usize,
    distance: usize,
    saving: usize,
}

impl Match {
    #[inline]
    fn consider<U: Unit>(&mut self, len: usize, distance: usize) {
        let saving = saving::<U>(len, distance);
        if saving > self.saving {
            *self = Match {
                len,
                distance,
                saving,
            };
        }
    }
}

struct Matcher<'a, U> {
    s: &'a [U],
    width: usize,
    depth: usize,
    head: &'a mut [u32],
    chain: &'a mut [u32],
    mask: usize,
    shift: u32,
    /// Positions below this have been hashed (or deliberately skipped).
    next_insert: usize,
    /// Distance of the last reference coded.
    last_distance: usize,
}

impl<U: Unit> Matcher<'_, U> {
    #[inline]
    fn hash(&self, i: usize) -> usize {
        (U::key(self.s, i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// Links position `i` into its chain; returns the previous head.
    #[inline]
    fn insert(&mut self, i: usize) -> u32 {
        let h = self.hash(i);
        let prev = self.head[h];
        self.head[h] = i as u32 + 1;
        self.chain[i & self.mask] = prev;
        prev
    }

    /// Hashes the positions from `next_insert` up to (not including) `end`.
    #[inline]
    fn catch_up(&mut self, end: usize) {
        let last = self.s.len().saturating_sub(U::HASH_UNITS - 1);
        let end = end.min(last);
        while self.next_insert < end {
            self.insert(self.next_insert);
            self.next_insert += 1;
        }
    }

    /// The best reference for the units at `i` (`i >= 1`); with `hash`,
    /// also searches the hash chain and links `i` into it.
    fn find(&mut self, i: usize, hash: bool) -> Match {
        let s = self.s;
        let n = s.len();
        let max = n - i;
        let mut best = Match::default();

        // 1. A run of the previous unit.
        if s[i] == s[i - 1] {
            let len = common(s, i, i - 1, max);
            best.consider::<U>(len, 1);
        }
        // 2. The unit one row up.
        let w = self.width;
        if best.len < GOOD_ENOUGH && w > 1 && i >= w && w <= MAX_DISTANCE && s[i] == s[i - w] {
            let len = common(s, i, i - w, max);
            best.consider::<U>(len, w);
        }
        // 3. The distance of the last reference.
        let d = self.last_distance;
        if best.len < GOOD_ENOUGH && d > 1 && d != w && i >= d && s[i] == s[i - d] {
            let len = common(s, i, i - d, max);
            best.consider::<U>(len, d);
        }
        // 4. The hash chain.
        if !hash {
            return best;
        }
        self.catch_up(i);
        if i + U::HASH_UNITS > n {
            return best;
        }
        self.next_insert = i + 1;
        let mut link = self.insert(i) as usize;
        if best.len >= GOOD_ENOUGH {
            return best;
        }
        for _ in 0..self.depth {
            if link == 0 {
                break;
            }
            let p = link - 1;
            let distance = i - p;
            if distance > MAX_DISTANCE {
                break;
            }
            // Only a longer match can save more (or an equally long nearer one).
            let probe = best.len.min(max - 1);
            if s[p + probe] == s[i + probe] && s[p] == s[i] {
                let len = common(s, i, p, max);
                best.consider::<U>(len, distance);
                if best.len >= GOOD_ENOUGH {
                    break;
                }
            }
            let next = self.chain[p & self.mask] as usize;
            if next >= link {
                break;
            }
            link = next;
        }
        best
    }
}

/// Appends `s[from..to]` as literal runs.
fn literals<U: Unit>(s: &[U], from: usize, to: usize, out: &mut Vec<u8>) {
    for run in s[from..to].chunks(MAX_COPY) {
        out.push((run.len() - 1) as u8);
        for &u in run {
            u.put(out);
        }
    }
}

/// Appends a reference token.
fn reference<U: Unit>(len: usize, distance: usize, out: &mut Vec<u8>) {
    debug_assert!(len > U::LEN_BIAS && (1..=MAX_DISTANCE).contains(&distance));
    let field = len - U::LEN_BIAS;
    let head = field.min(7) as u8;
    let ext = |out: &mut Vec<u8>| {
        if field >= 7 {
            let mut rest = field - 7;
            while rest >= 255 {
                out.push(255);
                rest -= 255;
            }
            out.push(rest as u8);
        }
    };
    let d = distance - 1;
    if d < MAX_NEAR_DISTANCE {
        out.push((head << 5) | (d >> 8) as u8);
        ext(out);
        out.push(d as u8);
    } else {
        let far = d - MAX_NEAR_DISTANCE;
        out.push((head << 5) | 31);
        ext(out);
        out.extend_from_slice(&[255, (far >> 8) as u8, far as u8]);
    }
}

/// Codes one pass over `s` (an image `width` units wide).
fn compress<U: Unit>(
    s: &[U],
    width: usize,
    depth: usize,
    head: &mut Vec<u32>,
    chain: &mut Vec<u32>,
    out: &mut Vec<u8>,
) {
    let n = s.len();
    if n == 0 {
        return;
    }
    let bits = (usize::BITS - n.leading_zeros()).clamp(10, MAX_HASH_BITS);
    head.clear();
    head.resize(1 << bits, 0);
    let window = n.next_power_of_two().min(WINDOW);
    if chain.len() < window {
        chain.resize(window, 0);
    }
    let mut m = Matcher {
        s,
        width,
        depth,
        head,
        chain,
        mask: window - 1,
        shift: 64 - bits,
        next_insert: 0,
        last_distance: 0,
    };

    let mut lit = 0;
    let mut i = 1;
    let mut misses = 0usize;
    let mut next_hash = 1;
    while i < n {
        let hash = i >= next_hash;
        let mut best = m.find(i, hash);
        if best.saving == 0 {
            // Over incompressible stretches, search the hash chains at fewer
            // positions (and hash only those): one more skipped per
            // SKIP_AFTER misses. The cheap candidates are still tried.
            if hash {
                misses += 1;
                next_hash = i + 1 + (misses / SKIP_AFTER).min(MAX_SKIP);
                m.next_insert = m.next_insert.max(next_hash);
            }
            i += 1;
            continue;
        }
        misses = 0;
        // A match found late (missed by a skipped or short chain) may start
        // earlier.
        let d = best.distance;
        while i > lit && i > d && s[i - 1] == s[i - 1 - d] {
            i -= 1;
            best.len += 1;
        }
        literals(s, lit, i, out);
        reference::<U>(best.len, d, out);
        m.last_distance = d;
        i += best.len;
        lit = i;
        next_hash = i;
        // Hash only the match's last two positions.
        m.next_insert = m.next_insert.max(i - 2);
    }
    literals(s, lit, n, out);
}
