//! The QUIC coding loop, shared by the encoder and the decoder.
//!
//! One [`Engine`] codes a group of channels that share one adaptation state:
//! R, G and B together, or a single channel (GRAY, or the alpha of RGBA).
//! Rows are coded left to right. Each sample is predicted (row 0 from the
//! left neighbour, other rows from the mean of the left and upper
//! neighbours), the prediction error is mapped to a small non-negative value
//! and sent with one of `bpc` Golomb-Rice codes. Which code is chosen by the
//! adaptive model of the bucket of the previous pixel's coded value in the
//! same channel; models are updated only at pseudo-randomly spaced pixels
//! (the spacing grows with the number of pixels coded). In rows after the
//! first, when the two upper neighbours are equal and the two left pixels
//! are equal, a run of pixels equal to the left one is coded instead
//! (MELCODE).
//!
//! The encoder and decoder differ only in [`Coder`]; the control flow that
//! decides which sample uses which model, when models update and where runs
//! may start is this one set of functions, so both sides cannot drift apart.
//! Pixels are read from (and, decoding, written to) the caller's rows through
//! a [`Layout`], without intermediate copies.

use super::bits::{BitReader, BitWriter, ReaderState, WriterState};
use super::tables::{wm_trigger, Family, BPPMASK, CHAOS, MELC_LEN, WMIMAX, WMINEXT};
use crate::CodecError;

/// How `N` samples of a pixel are stored in a row of bytes.
pub(crate) trait Layout<const N: usize> {
    /// Bytes per pixel.
    const BYTES: usize;

    /// The samples of pixel `i`.
    fn load(row: &[u8], i: usize) -> [u8; N];

    /// The samples of the pixel `px` (its [`BYTES`](Self::BYTES) bytes).
    #[inline(always)]
    fn samples(px: &[u8]) -> [u8; N] {
        Self::load(px, 0)
    }

    /// Whether the pixels `a` and `b` have equal samples.
    #[inline(always)]
    fn same_px(a: &[u8], b: &[u8]) -> bool {
        Self::samples(a) == Self::samples(b)
    }

    /// The first pixel `p` in `from..end` (`from >= 2`) whose two upper
    /// neighbours (`p - 1` and `p` of `prev`) are equal and whose two left
    /// neighbours (`p - 2` and `p - 1` of `cur`) are too; `end` if none.
    #[inline(always)]
    fn first_run_candidate(prev: &[u8], cur: &[u8], from: usize, end: usize) -> usize {
        let b = Self::BYTES;
        let up = &prev[(from - 1) * b..end * b];
        let left = &cur[(from - 2) * b..(end - 1) * b];
        let ups = up.chunks_exact(b).zip(up[b..].chunks_exact(b));
        let lefts = left.chunks_exact(b).zip(left[b..].chunks_exact(b));
        for (k, ((u0, u1), (l0, l1))) in ups.zip(lefts).enumerate() {
            if Self::same_px(u0, u1) && Self::same_px(l0, l1) {
                return from + k;
            }
        }
        end
    }

    /// Stores the samples of pixel `i` (bytes outside the samples, such as
    /// the X of B, G, R, X, are left alone).
    fn store(row: &mut [u8], i: usize, s: [u8; N]);

    /// Whether pixels `a` and `b` have equal samples.
    #[inline(always)]
    fn same(row: &[u8], a: usize, b: usize) -> bool {
        Self::load(row, a) == Self::load(row, b)
    }

    /// Number of pixels from `i` (`i >= 1`) up to `end` equal to pixel `i - 1`.
    #[inline(always)]
    fn run_len(row: &[u8], i: usize, end: usize) -> usize {
        let mut j = i;
        while j < end && Self::same(row, j, i - 1) {
            j += 1;
        }
        j - i
    }

    /// Sets pixels `i..end` to pixel `i - 1`.
    #[inline(always)]
    fn fill(row: &mut [u8], i: usize, end: usize) {
        let s = Self::load(row, i - 1);
        for j in i..end {
            Self::store(row, j, s);
        }
    }
}

/// B, G, R, X/A bytes; samples R, G, B.
pub(crate) struct Bgrx;

impl Layout<3> for Bgrx {
    const BYTES: usize = 4;

    #[inline(always)]
    fn load(row: &[u8], i: usize) -> [u8; 3] {
        let p = &row[i * 4..i * 4 + 4];
        [p[2], p[1], p[0]]
    }

    #[inline(always)]
    fn store(row: &mut [u8], i: usize, s: [u8; 3]) {
        row[i * 4..i * 4 + 3].copy_from_slice(&[s[2], s[1], s[0]]);
    }

    #[inline(always)]
    fn same_px(a: &[u8], b: &[u8]) -> bool {
        let w = |p: &[u8]| u32::from_le_bytes([p[0], p[1], p[2], p[3]]) & 0x00ff_ffff;
        w(a) == w(b)
    }

    #[inline(always)]
    fn same(row: &[u8], a: usize, b: usize) -> bool {
        Self::same_px(&row[a * 4..a * 4 + 4], &row[b * 4..b * 4 + 4])
    }

    #[inline(always)]
    fn run_len(row: &[u8], i: usize, end: usize) -> usize {
        let p = &row[(i - 1) * 4..i * 4];
        let v = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) & 0x00ff_ffff;
        row[i * 4..end * 4]
            .chunks_exact(4)
            .position(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]) & 0x00ff_ffff != v)
            .unwrap_or(end - i)
    }

    #[inline(always)]
    fn fill(row: &mut [u8], i: usize, end: usize) {
        let (head, tail) = row.split_at_mut(i * 4);
        let s = &head[(i - 1) * 4..(i - 1) * 4 + 3];
        for p in tail[..(end - i) * 4].chunks_exact_mut(4) {
            p[..3].copy_from_slice(s);
        }
    }
}

/// The fourth byte of 4-byte pixels: the alpha of B, G, R, A.
pub(crate) struct Alpha;

impl Layout<1> for Alpha {
    const BYTES: usize = 4;

    #[inline(always)]
    fn load(row: &[u8], i: usize) -> [u8; 1] {
        [row[i * 4 + 3]]
    }

    #[inline(always)]
    fn store(row: &mut [u8], i: usize, s: [u8; 1]) {
        row[i * 4 + 3] = s[0];
    }
}

/// B, G, R bytes; samples R, G, B.
pub(crate) struct Bgr;

impl Layout<3> for Bgr {
    const BYTES: usize = 3;

    #[inline(always)]
    fn load(row: &[u8], i: usize) -> [u8; 3] {
        let p = &row[i * 3..i * 3 + 3];
        [p[2], p[1], p[0]]
    }

    #[inline(always)]
    fn store(row: &mut [u8], i: usize, s: [u8; 3]) {
        row[i * 3..i * 3 + 3].copy_from_slice(&[s[2], s[1], s[0]]);
    }
}

/// 16-bit little-endian x1r5g5b5; samples R, G, B of 5 bits.
pub(crate) struct X1r5g5b5;

impl Layout<3> for X1r5g5b5 {
    const BYTES: usize = 2;

    #[inline(always)]
    fn load(row: &[u8], i: usize) -> [u8; 3] {
        let v = u16::from_le_bytes([row[i * 2], row[i * 2 + 1]]);
        [(v >> 10) as u8 & 0x1f, (v >> 5) as u8 & 0x1f, v as u8 & 0x1f]
    }

    #[inline(always)]
    fn store(row: &mut [u8], i: usize, s: [u8; 3]) {
        let v = (u16::from(s[0]) << 10) | (u16::from(s[1]) << 5) | u16::from(s[2]);
        row[i * 2..i * 2 + 2].copy_from_slice(&v.to_le_bytes());
    }
}

/// B, G, R, X bytes holding 5-bit samples widened to 8 bits
/// (`v << 3 | v >> 2`): how 16-bit images are decoded for 32-bit surfaces.
pub(crate) struct Bgrx555;

impl Layout<3> for Bgrx555 {
    const BYTES: usize = 4;

    #[inline(always)]
    fn load(row: &[u8], i: usize) -> [u8; 3] {
        let p = &row[i * 4..i * 4 + 4];
        [p[2] >> 3, p[1] >> 3, p[0] >> 3]
    }

    #[inline(always)]
    fn store(row: &mut [u8], i: usize, s: [u8; 3]) {
        let x = |v: u8| (v << 3) | (v >> 2);
        row[i * 4..i * 4 + 3].copy_from_slice(&[x(s[2]), x(s[1]), x(s[0])]);
    }
}

/// One byte per pixel.
pub(crate) struct Gray8;

impl Layout<1> for Gray8 {
    const BYTES: usize = 1;

    #[inline(always)]
    fn load(row: &[u8], i: usize) -> [u8; 1] {
        [row[i]]
    }

    #[inline(always)]
    fn store(row: &mut [u8], i: usize, s: [u8; 1]) {
        row[i] = s[0];
    }
}

/// Adaptation state of one channel group.
#[derive(Clone)]
pub(crate) struct State {
    /// Pixels left before the next model update.
    waitcnt: u32,
    tabrand_seed: u32,
    wm_trigger: u32,
    wmidx: u32,
    /// Pixels left before `wmidx` grows.
    wmileft: u32,
    melcstate: usize,
    melclen: u32,
    melcorder: u32,
}

impl State {
    fn new() -> Self {
        State {
            waitcnt: 0,
            tabrand_seed: 0xff,
            wm_trigger: wm_trigger(0),
            wmidx: 0,
            wmileft: WMINEXT,
            melcstate: 0,
            melclen: MELC_LEN[0],
            melcorder: 1 << MELC_LEN[0],
        }
    }

    #[inline]
    fn tabrand(&mut self) -> u32 {
        self.tabrand_seed = self.tabrand_seed.wrapping_add(1);
        CHAOS[(self.tabrand_seed & 0xff) as usize]
    }

    #[inline(always)]
    fn melc_up(&mut self) {
        if self.melcstate < MELC_LEN.len() - 1 {
            self.melcstate += 1;
            self.melclen = MELC_LEN[self.melcstate];
            self.melcorder = 1 << self.melclen;
        }
    }

    #[inline(always)]
    fn melc_down(&mut self) {
        if self.melcstate > 0 {
            self.melcstate -= 1;
            self.melclen = MELC_LEN[self.melcstate];
            self.melcorder = 1 << self.melclen;
        }
    }
}

/// Adaptive model of one channel: per bucket, the code-length sums of every
/// code and the best code.
#[derive(Clone)]
struct Model {
    counters: [[u32; 8]; 8],
    best: [u8; 8],
    /// `best` of the bucket of every context value, kept in step with
    /// `best` so that coding a sample takes one lookup.
    best_by_ctx: [u8; 256],
}

impl Model {
    fn new(fam: &Family) -> Self {
        Model {
            counters: [[0; 8]; 8],
            best: [(fam.bpc - 1) as u8; 8],
            best_by_ctx: [(fam.bpc - 1) as u8; 256],
        }
    }

    /// The code for a sample whose left neighbour's coded value is `ctx`.
    #[inline(always)]
    fn code(&self, ctx: u8) -> usize {
        (self.best_by_ctx[ctx as usize] & 7) as usize
    }

    /// Feeds coded value `val` seen in context `ctx` to the context's bucket.
    #[inline]
    fn update(&mut self, fam: &Family, trigger: u32, ctx: u8, val: u8) {
        let b = fam.bucket_of[ctx as usize] as usize & 7;
        let counters = &mut self.counters[b];
        let lens = &fam.len[val as usize];
        // All eight lanes at once: the lengths of codes the family lacks
        // are 0, so their counters stay 0.
        for (c, len) in counters.iter_mut().zip(lens) {
            *c = c.wrapping_add(u32::from(*len));
        }
        // The shortest sum, the highest code among equals, without a chain
        // of dependent compares: codes the family lacks are lifted out of
        // reach, the minimum is taken as a tree (depth 3 rather than 7), and
        // the winner is the highest lane equal to it.
        let v: [u32; 8] = std::array::from_fn(|l| counters[l] | fam.absent_code[l]);
        let best_len = (v[0].min(v[1]).min(v[2].min(v[3]))).min(v[4].min(v[5]).min(v[6].min(v[7])));
        let equal = v
            .iter()
            .enumerate()
            .fold(0u32, |bits, (l, &c)| bits | (u32::from(c == best_len) << l));
        // `equal` is never 0 (the minimum is one of the lanes); `| 1` keeps
        // the expression total.
        let best = (31 - (equal | 1).leading_zeros()) as usize;
        if best_len > trigger {
            for c in counters.iter_mut() {
                *c >>= 1;
            }
        }
        if self.best[b] != best as u8 {
            self.best[b] = best as u8;
            if fam.mask == 0xff {
                let (start, end) = fam.bucket_range[b];
                self.best_by_ctx[usize::from(start)..usize::from(end)].fill(best as u8);
            } else {
                // Contexts above the sample range (only from corrupt
                // streams) share the bucket of their low bits.
                for (v, out) in self.best_by_ctx.iter_mut().enumerate() {
                    if usize::from(fam.bucket_of[v]) == b {
                        *out = best as u8;
                    }
                }
            }
        }
    }
}

/// How a pixel is predicted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pred {
    /// Row 0, pixel 0: no prediction.
    None,
    /// Row 0: the left neighbour.
    Left,
    /// Pixel 0 of later rows: the upper neighbour.
    Up,
    /// Later rows: mean of the left and upper neighbours.
    Mean,
}

impl Pred {
    /// The prediction of pixel `i`'s samples.
    #[inline(always)]
    fn of<const N: usize, L: Layout<N>>(self, prev: &[u8], cur: &[u8], i: usize) -> [u32; N] {
        match self {
            Pred::None => [0; N],
            Pred::Left => L::load(cur, i - 1).map(u32::from),
            Pred::Up => L::load(prev, 0).map(u32::from),
            Pred::Mean => {
                let a = L::load(cur, i - 1);
                let b = L::load(prev, i);
                std::array::from_fn(|c| (u32::from(a[c]) + u32::from(b[c])) >> 1)
            }
        }
    }
}

/// The side-specific half of the codec, with the rows it reads or writes.
pub(crate) trait Coder<const N: usize, L: Layout<N>> {
    /// Why coding may fail (the encoder cannot).
    type Error;

    /// The bit-level state (position, pending bits or look-ahead), which
    /// the coding loops keep in a local so that it stays in registers.
    type Hot: Copy;

    /// Takes the bit state out for a stretch of coding.
    fn hot(&self) -> Self::Hot;

    /// Puts the bit state back.
    fn set_hot(&mut self, hot: Self::Hot);

    /// Whether a run may start at pixel `i` (`3 <= i < width`) of a row
    /// after the first: the two pixels above it are equal and the two to its
    /// left are too.
    fn run_candidate(&self, i: usize) -> bool;

    /// Codes pixel `i` of the current row, predicted as `how`, sample `c`
    /// with code `codes[c]`; returns the coded values.
    fn pixel(&mut self, hot: &mut Self::Hot, fam: &Family, i: usize, codes: [usize; N], how: Pred)
        -> [u8; N];

    /// Codes pixels `i..end` of the current row, predicted as `how`, with
    /// no model update in between: sample `c` of pixel `p` uses code
    /// `best[c][corr[p][c]]` and its coded value goes to `corr[p + 1]`. With
    /// `run_index` (rows after the first), stops before the first pixel where
    /// a run starts: `i > 2`, not where the previous run ended
    /// (`run_index`), and [`run_candidate`](Self::run_candidate). Returns where
    /// it stopped.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn stretch(
        &mut self,
        hot: &mut Self::Hot,
        fam: &Family,
        corr: &mut [[u8; N]],
        best: [&[u8; 256]; N],
        mut i: usize,
        end: usize,
        how: Pred,
        run_index: Option<usize>,
    ) -> usize {
        while i < end {
            if run_index.is_some_and(|r| i > 2 && r != i && self.run_candidate(i)) {
                break;
            }
            let ctx = corr[i];
            let codes = std::array::from_fn(|c| usize::from(best[c][usize::from(ctx[c])] & 7));
            corr[i + 1] = self.pixel(hot, fam, i, codes, how);
            i += 1;
        }
        i
    }

    /// Codes a run of pixels equal to pixel `i - 1`, starting at `i` and
    /// ending at most at `end`; returns the index after the run.
    fn run(
        &mut self,
        hot: &mut Self::Hot,
        st: &mut State,
        i: usize,
        end: usize,
    ) -> Result<usize, Self::Error>;
}

/// Encoder side: reads the rows, writes codewords.
pub(crate) struct Enc<'r> {
    pub w: BitWriter,
    pub prev: &'r [u8],
    pub cur: &'r [u8],
}

impl<'r> Enc<'r> {
    /// An encoder writing to `w`; set `prev` and `cur` before each row.
    pub(crate) fn new(w: BitWriter) -> Self {
        Enc {
            w,
            prev: &[],
            cur: &[],
        }
    }
}

impl<const N: usize, L: Layout<N>> Coder<N, L> for Enc<'_> {
    type Error = std::convert::Infallible;
    type Hot = WriterState;

    #[inline(always)]
    fn hot(&self) -> WriterState {
        self.w.st
    }

    #[inline(always)]
    fn set_hot(&mut self, hot: WriterState) {
        self.w.st = hot;
    }

    #[inline(always)]
    fn run_candidate(&self, i: usize) -> bool {
        L::same(self.prev, i - 1, i) && L::same(self.cur, i - 1, i - 2)
    }

    #[inline(always)]
    fn pixel(
        &mut self,
        hot: &mut WriterState,
        fam: &Family,
        i: usize,
        codes: [usize; N],
        how: Pred,
    ) -> [u8; N] {
        let pred = how.of::<N, L>(self.prev, self.cur, i);
        let s = L::load(self.cur, i);
        let mut coded = [0u8; N];
        let mut codewords = [0u32; N];
        for c in 0..N {
            let err = u32::from(s[c]).wrapping_sub(pred[c]) & fam.mask;
            let v = fam.to_coded[err as usize];
            codewords[c] = fam.codeword[v as usize][codes[c] & 7];
            coded[c] = v;
        }
        hot.put_codewords(&mut self.w.buf, codewords);
        coded
    }

    /// The encoder knows every sample in advance, so it codes a stretch in
    /// two passes: coded values first (each pixel on its own), then the
    /// codewords, which then depend on each other only through the bit
    /// writer (one pixel at a time, each code waited for the previous
    /// pixel's coded value).
    #[inline(always)]
    fn stretch(
        &mut self,
        hot: &mut WriterState,
        fam: &Family,
        corr: &mut [[u8; N]],
        best: [&[u8; 256]; N],
        i: usize,
        end: usize,
        how: Pred,
        run_index: Option<usize>,
    ) -> usize {
        let mut stop = end;
        if let Some(r) = run_index {
            let mut from = i.max(3);
            while from < end {
                let p = L::first_run_candidate(self.prev, self.cur, from, end);
                if p != r {
                    stop = p;
                    break;
                }
                // Not where the previous run ended.
                from = p + 1;
            }
        }
        if stop <= i {
            return stop;
        }
        let b = L::BYTES;
        let to_coded = |s: [u8; N], pred: [u32; N]| -> [u8; N] {
            std::array::from_fn(|c| {
                let err = u32::from(s[c]).wrapping_sub(pred[c]) & fam.mask;
                fam.to_coded[err as u8 as usize]
            })
        };
        // Pixels i - 1..stop of this row, and i..stop of the row above.
        let row = &self.cur[(i - 1) * b..stop * b];
        let left = row.chunks_exact(b);
        let here = row[b..].chunks_exact(b);
        let out = &mut corr[i + 1..=stop];
        if how == Pred::Mean {
            let up = self.prev[i * b..stop * b].chunks_exact(b);
            for (((l, h), u), out) in left.zip(here).zip(up).zip(out) {
                let (l, u) = (L::samples(l), L::samples(u));
                let pred = std::array::from_fn(|c| (u32::from(l[c]) + u32::from(u[c])) >> 1);
                *out = to_coded(L::samples(h), pred);
            }
        } else {
            debug_assert!(how == Pred::Left);
            for ((l, h), out) in left.zip(here).zip(out) {
                *out = to_coded(L::samples(h), L::samples(l).map(u32::from));
            }
        }
        for pair in corr[i..=stop].windows(2) {
            let (ctx, v) = (pair[0], pair[1]);
            let codewords: [u32; N] = std::array::from_fn(|c| {
                fam.codeword[usize::from(v[c])][usize::from(best[c][usize::from(ctx[c])] & 7)]
            });
            hot.put_codewords(&mut self.w.buf, codewords);
        }
        stop
    }

    #[inline(always)]
    fn run(
        &mut self,
        hot: &mut WriterState,
        st: &mut State,
        mut i: usize,
        end: usize,
    ) -> Result<usize, Self::Error> {
        let n = L::run_len(self.cur, i, end);
        i += n;
        let mut len = n as u32;
        let mut hits = 0;
        while len >= st.melcorder {
            hits += 1;
            len -= st.melcorder;
            st.melc_up();
        }
        hot.put_ones(&mut self.w.buf, hits);
        hot.put(&mut self.w.buf, len, st.melclen + 1);
        st.melc_down();
        Ok(i)
    }
}

/// Decoder side: reads codewords, writes the current row.
pub(crate) struct Dec<'i, 'r> {
    pub r: BitReader<'i>,
    pub prev: &'r [u8],
    pub cur: &'r mut [u8],
}

const CORRUPT_RUN: CodecError = CodecError::Corrupt {
    codec: "quic",
    what: "run longer than the row",
};

impl Dec<'_, '_> {
    /// Reads one codeword of code `l`; returns the coded value.
    #[inline(always)]
    fn codeword(&self, hot: &mut ReaderState, fam: &Family, l: usize) -> u8 {
        let l = l & 7;
        let bits = hot.window();
        let (coded, len) = if bits > fam.escape_max[l] {
            // Golomb-Rice: `zeros` zero bits, a one, then `l` low bits.
            let zeros = bits.leading_zeros();
            let len = zeros + 1 + l as u32;
            ((zeros << l) | ((bits >> (32 - len)) & BPPMASK[l]), len)
        } else {
            // Escape: a run of zeros, then the value's offset in a fixed width.
            let len = fam.escape_len[l];
            let suffix = (bits >> (32 - len)) & BPPMASK[fam.escape_suffix[l] as usize];
            (fam.n_gr[l] + suffix, len)
        };
        hot.skip(self.r.data, len);
        // A corrupt escape may exceed the sample range; like the reference
        // decoder, keep its low byte.
        coded as u8
    }
}

impl<const N: usize, L: Layout<N>> Coder<N, L> for Dec<'_, '_> {
    type Error = CodecError;
    type Hot = ReaderState;

    #[inline(always)]
    fn hot(&self) -> ReaderState {
        self.r.st
    }

    #[inline(always)]
    fn set_hot(&mut self, hot: ReaderState) {
        self.r.st = hot;
    }

    #[inline(always)]
    fn run_candidate(&self, i: usize) -> bool {
        L::same(self.prev, i - 1, i) && L::same(self.cur, i - 1, i - 2)
    }

    #[inline(always)]
    fn pixel(
        &mut self,
        hot: &mut ReaderState,
        fam: &Family,
        i: usize,
        codes: [usize; N],
        how: Pred,
    ) -> [u8; N] {
        let pred = how.of::<N, L>(self.prev, self.cur, i);
        let mut coded = [0u8; N];
        let mut s = [0u8; N];
        for c in 0..N {
            let v = self.codeword(hot, fam, codes[c]);
            s[c] = ((u32::from(fam.from_coded[v as usize]) + pred[c]) & fam.mask) as u8;
            coded[c] = v;
        }
        L::store(self.cur, i, s);
        coded
    }

    fn run(
        &mut self,
        hot: &mut ReaderState,
        st: &mut State,
        i: usize,
        end: usize,
    ) -> Result<usize, CodecError> {
        let max = (end - i) as u64;
        let mut len: u64 = 0;
        loop {
            // Leading one bits (up to 8 per step) each stand for a full
            // run of `melcorder` pixels.
            let ones = (!hot.window()).leading_zeros().min(8);
            for _ in 0..ones {
                len += u64::from(st.melcorder);
                st.melc_up();
            }
            if ones != 8 {
                hot.skip(self.r.data, ones + 1);
                break;
            }
            hot.skip(self.r.data, 8);
            if len > max {
                return Err(CORRUPT_RUN);
            }
        }
        if st.melclen > 0 {
            len += u64::from(hot.window() >> (32 - st.melclen));
            hot.skip(self.r.data, st.melclen);
        }
        st.melc_down();
        if len > max {
            return Err(CORRUPT_RUN);
        }
        let end = i + len as usize;
        L::fill(self.cur, i, end);
        Ok(end)
    }
}

/// Codes `N` channels that share one adaptation state.
pub(crate) struct Engine<const N: usize> {
    fam: &'static Family,
    st: State,
    models: [Model; N],
    /// Coded values of the current row, shifted by one: `corr[i + 1]` is
    /// pixel `i`'s, `corr[0]` the context of pixel 0. Entries inside a run
    /// keep the value of an earlier row, as in the reference codec.
    corr: Vec<[u8; N]>,
    width: usize,
    rows_done: usize,
}

impl<const N: usize> Engine<N> {
    /// A fresh engine for rows of `width` pixels (`width >= 1`).
    pub(crate) fn new(fam: &'static Family, width: usize) -> Self {
        Engine {
            fam,
            st: State::new(),
            models: std::array::from_fn(|_| Model::new(fam)),
            corr: vec![[0; N]; width + 1],
            width,
            rows_done: 0,
        }
    }

    /// Codes the next row: the encoder reads it from `io`'s current row, the
    /// decoder writes it there. `io` is passed by value (and handed back) so
    /// that its bit buffer is a local the compiler can keep in registers.
    pub(crate) fn code_row<L: Layout<N>, C: Coder<N, L>>(&mut self, mut io: C) -> Result<C, C::Error> {
        let first = self.rows_done == 0;
        // The context of pixel 0: 0 in row 0, else pixel 0's coded value of
        // the row above.
        self.corr[0] = if first { [0; N] } else { self.corr[1] };
        let mut pos = 0;
        let mut left = self.width;
        // The wait mask grows every WMINEXT pixels until WMIMAX; a row is
        // cut into segments where it changes.
        while self.st.wmidx < WMIMAX && self.st.wmileft as usize <= left {
            let n = self.st.wmileft as usize;
            if n > 0 {
                io = self.segment::<L, C>(io, first, pos, pos + n)?;
                left -= n;
                pos += n;
            }
            self.st.wmidx += 1;
            self.st.wm_trigger = wm_trigger(self.st.wmidx);
            self.st.wmileft = WMINEXT;
        }
        if left > 0 {
            io = self.segment::<L, C>(io, first, pos, pos + left)?;
            if self.st.wmidx < WMIMAX {
                self.st.wmileft -= left as u32;
            }
        }
        self.rows_done += 1;
        Ok(io)
    }

    /// Codes all channels of pixel `i`.
    #[inline(always)]
    fn pixel<L: Layout<N>, C: Coder<N, L>>(&mut self, io: &mut C, hot: &mut C::Hot, i: usize, how: Pred) {
        let ctx = self.corr[i];
        let codes: [usize; N] = std::array::from_fn(|c| self.models[c].code(ctx[c]));
        self.corr[i + 1] = io.pixel(hot, self.fam, i, codes, how);
    }

    /// Codes pixels `i..end` with the models as they are (see
    /// [`Coder::stretch`]); returns where it stopped.
    #[inline(always)]
    fn stretch<L: Layout<N>, C: Coder<N, L>>(
        &mut self,
        io: &mut C,
        hot: &mut C::Hot,
        i: usize,
        end: usize,
        how: Pred,
        run_index: Option<usize>,
    ) -> usize {
        let best = std::array::from_fn(|c| &self.models[c].best_by_ctx);
        io.stretch(hot, self.fam, &mut self.corr, best, i, end, how, run_index)
    }

    /// Updates every channel's model with pixel `i`'s coded values.
    fn update(&mut self, i: usize) {
        let fam = self.fam;
        let trigger = self.st.wm_trigger;
        let (ctx, val) = (self.corr[i], self.corr[i + 1]);
        for (c, m) in self.models.iter_mut().enumerate() {
            m.update(fam, trigger, ctx[c], val[c]);
        }
    }

    /// Codes pixels `i..end` of the current row with one wait mask.
    fn segment<L: Layout<N>, C: Coder<N, L>>(
        &mut self,
        mut io: C,
        first: bool,
        mut i: usize,
        end: usize,
    ) -> Result<C, C::Error> {
        let waitmask = BPPMASK[self.st.wmidx as usize];
        let mut hot = io.hot();
        if i == 0 {
            self.pixel::<L, C>(&mut io, &mut hot, 0, if first { Pred::None } else { Pred::Up });
            if self.st.waitcnt > 0 {
                self.st.waitcnt -= 1;
            } else {
                self.st.waitcnt = self.st.tabrand() & waitmask;
                self.update(0);
            }
            i = 1;
        }
        let mut stop = i + self.st.waitcnt as usize;

        if first {
            while stop < end {
                i = self.stretch::<L, C>(&mut io, &mut hot, i, stop + 1, Pred::Left, None);
                self.update(stop);
                stop = i + (self.st.tabrand() & waitmask) as usize;
            }
            self.stretch::<L, C>(&mut io, &mut hot, i, end, Pred::Left, None);
            self.st.waitcnt = (stop - end) as u32;
            io.set_hot(hot);
            return Ok(io);
        }

        let mut run_index = 0;
        loop {
            let mut run = false;
            'coding: {
                while stop < end {
                    i = self.stretch::<L, C>(&mut io, &mut hot, i, stop + 1, Pred::Mean, Some(run_index));
                    if i <= stop {
                        run = true;
                        break 'coding;
                    }
                    self.update(stop);
                    stop = i + (self.st.tabrand() & waitmask) as usize;
                }
                i = self.stretch::<L, C>(&mut io, &mut hot, i, end, Pred::Mean, Some(run_index));
                if i < end {
                    run = true;
                    break 'coding;
                }
            }
            if !run {
                self.st.waitcnt = (stop - end) as u32;
                io.set_hot(hot);
                return Ok(io);
            }
            run_index = i;
            self.st.waitcnt = (stop - i) as u32;
            i = io.run(&mut hot, &mut self.st, i, end)?;
            if i == end {
                io.set_hot(hot);
                return Ok(io);
            }
            stop = i + self.st.waitcnt as usize;
        }
    }
}
