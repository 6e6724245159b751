//! The QUIC bit stream: bits fill 32-bit words from the most significant bit
//! down, and each word is stored little endian.
//!
//! Writer and reader each keep the state that changes with every codeword in
//! a small `Copy` value ([`WriterState`], [`ReaderState`]) that the coding
//! loops hold in a local, so that it lives in registers.

/// The per-codeword state of a [`BitWriter`].
#[derive(Clone, Copy)]
pub(crate) struct WriterState {
    /// Output so far in `buf[..pos]`; `buf[pos..]` is reserved space.
    pos: usize,
    /// Pending bits, left aligned (the first pending bit is bit 63).
    acc: u64,
    /// Number of pending bits, always below 32 between calls.
    pending: u32,
    /// A word did not fit in the reserved space.
    overflow: bool,
}

impl WriterState {
    /// Appends the low `len` bits of `code` (`len <= 32`, no bits above
    /// them), storing completed words into `buf`.
    #[inline(always)]
    pub(crate) fn put(&mut self, buf: &mut [u8], code: u32, len: u32) {
        debug_assert!(len <= 32 && (len == 32 || code >> len == 0));
        debug_assert!(self.pending < 32);
        self.acc |= u64::from(code) << (64 - self.pending - len);
        self.pending += len;
        if self.pending >= 32 {
            let word = (self.acc >> 32) as u32;
            self.acc <<= 32;
            self.pending -= 32;
            match buf.get_mut(self.pos..self.pos + 4) {
                Some(dst) => {
                    dst.copy_from_slice(&word.to_le_bytes());
                    self.pos += 4;
                }
                None => self.overflow = true,
            }
        }
    }

    /// Appends a pixel's codewords, each `code << 5 | len` (`len >= 1`).
    ///
    /// When they total at most 32 bits (nearly always: a sample's codeword
    /// is a few bits on photographs) at most one word completes, and it is
    /// stored without a branch: whether a word completes varies from pixel to
    /// pixel and would be mispredicted often. The top word is stored every
    /// time (a partial one is overwritten by the next store to the same
    /// place) and the position moves on only when it is complete.
    #[inline(always)]
    pub(crate) fn put_codewords<const N: usize>(&mut self, buf: &mut [u8], codewords: [u32; N]) {
        let total: u32 = codewords.iter().map(|cw| cw & 31).sum();
        if total > 32 {
            for cw in codewords {
                self.put(buf, cw >> 5, cw & 31);
            }
            return;
        }
        debug_assert!(self.pending < 32);
        for cw in codewords {
            let len = cw & 31;
            self.acc |= u64::from(cw >> 5) << (64 - self.pending - len);
            self.pending += len;
        }
        let full = self.pending >> 5;
        match buf.get_mut(self.pos..self.pos + 4) {
            Some(dst) => dst.copy_from_slice(&((self.acc >> 32) as u32).to_le_bytes()),
            None => self.overflow = true,
        }
        self.pos += 4 * full as usize;
        self.acc <<= 32 * full;
        self.pending -= 32 * full;
    }

    /// Appends `n` one bits.
    #[inline(always)]
    pub(crate) fn put_ones(&mut self, buf: &mut [u8], mut n: u32) {
        while n >= 32 {
            self.put(buf, u32::MAX, 32);
            n -= 32;
        }
        if n > 0 {
            self.put(buf, (1 << n) - 1, n);
        }
    }
}

/// Appends bits to a byte vector.
///
/// Words are stored into space made ahead of time with [`reserve`], so the
/// hot path never calls out. Running out of reserved space is not fatal: the
/// words are dropped and [`finish`] reports it.
///
/// [`reserve`]: BitWriter::reserve
/// [`finish`]: BitWriter::finish
pub(crate) struct BitWriter {
    /// The output, then reserved (zeroed) space.
    pub buf: Vec<u8>,
    /// Position and pending bits.
    pub st: WriterState,
}

impl BitWriter {
    /// A writer appending to `out`.
    pub(crate) fn new(out: Vec<u8>) -> Self {
        BitWriter {
            st: WriterState {
                pos: out.len(),
                acc: 0,
                pending: 0,
                overflow: false,
            },
            buf: out,
        }
    }

    /// Makes room for at least `bytes` more bytes of output.
    pub(crate) fn reserve(&mut self, bytes: usize) {
        let need = self.st.pos.saturating_add(bytes);
        if self.buf.len() < need {
            let grown = self.buf.len().saturating_add(self.buf.len() / 2);
            self.buf.resize(need.max(grown), 0);
        }
    }

    /// Appends the low `len` bits of `code` (`len <= 32`, no bits above them).
    pub(crate) fn put(&mut self, code: u32, len: u32) {
        self.st.put(&mut self.buf, code, len);
    }

    /// Appends `n` one bits.
    #[cfg(test)]
    pub(crate) fn put_ones(&mut self, n: u32) {
        self.st.put_ones(&mut self.buf, n);
    }

    /// Ends the stream as the reference encoder does: the last word is
    /// completed with zero bits and one more zero word follows, so a decoder
    /// that always looks 32 bits ahead never reads past the end. Returns the
    /// output and whether all of it fitted in the reserved space.
    pub(crate) fn finish(mut self) -> (Vec<u8>, bool) {
        self.reserve(8);
        if self.st.pending > 0 {
            self.put(0, 32 - self.st.pending);
        }
        self.put(0, 32);
        self.buf.truncate(self.st.pos);
        (self.buf, !self.st.overflow)
    }
}

/// The per-codeword state of a [`BitReader`].
#[derive(Clone, Copy)]
pub(crate) struct ReaderState {
    /// Next byte of the data to load.
    next: usize,
    /// Zero words loaded after the end of the data.
    padding: u64,
    /// Unread bits, left aligned.
    acc: u64,
    /// Number of valid bits in `acc`, at least 32 between calls.
    avail: u32,
}

impl ReaderState {
    /// The next 32 bits, first bit in the most significant position.
    #[inline(always)]
    pub(crate) fn window(&self) -> u32 {
        (self.acc >> 32) as u32
    }

    /// Consumes `len` bits, `len <= 32`, loading from `data` as needed.
    #[inline(always)]
    pub(crate) fn skip(&mut self, data: &[u8], len: u32) {
        debug_assert!(len <= 32);
        self.acc <<= len;
        self.avail -= len;
        if self.avail < 32 {
            self.refill(data);
        }
    }

    /// Loads one more word of `data` (a zero word past its end); `avail`
    /// must be below 33.
    #[inline(always)]
    fn refill(&mut self, data: &[u8]) {
        let word = match data.get(self.next..self.next + 4) {
            Some(b) => {
                self.next += 4;
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
            None => {
                self.padding += 1;
                0
            }
        };
        self.acc |= u64::from(word) << (32 - self.avail);
        self.avail += 32;
    }
}

/// Reads bits through a 32-bit look-ahead window.
///
/// Past the end of the data the window is filled with zeros; [`overrun`]
/// tells whether the reference decoder would have failed by then (it fails as
/// soon as its window reaches past the last whole word). Since the position
/// only grows, checking that once in a while and at the end gives the same
/// verdict as checking at every step.
///
/// [`overrun`]: BitReader::overrun
pub(crate) struct BitReader<'a> {
    /// Whole words of the stream (a trailing partial word is ignored, as the
    /// reference decoder does).
    pub data: &'a [u8],
    /// Position and look-ahead.
    pub st: ReaderState,
}

impl<'a> BitReader<'a> {
    /// A reader over the whole words of `data`, positioned at bit 0.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        let words = data.len() / 4;
        let data = &data[..words * 4];
        let mut st = ReaderState {
            next: 0,
            padding: 0,
            acc: 0,
            avail: 0,
        };
        st.refill(data);
        BitReader { data, st }
    }

    /// Number of whole words in the stream.
    pub(crate) fn words(&self) -> u64 {
        (self.data.len() / 4) as u64
    }

    /// The next 32 bits, first bit in the most significant position.
    pub(crate) fn window(&self) -> u32 {
        self.st.window()
    }

    /// Consumes `len` bits, `len <= 32`.
    pub(crate) fn skip(&mut self, len: u32) {
        self.st.skip(self.data, len);
    }

    /// Bits consumed so far.
    pub(crate) fn position(&self) -> u64 {
        (self.st.next as u64 / 4 + self.st.padding) * 32 - u64::from(self.st.avail)
    }

    /// Whether the window now reaches past the last whole word, which the
    /// reference decoder treats as an error.
    pub(crate) fn overrun(&self) -> bool {
        self.position() + 32 > self.words() * 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_packs_msb_first_in_le_words() {
        let mut w = BitWriter::new(Vec::new());
        w.reserve(8);
        w.put(0x4349, 16);
        w.put(0x5551, 16);
        w.put(1, 1);
        w.put(0, 3);
        w.put(0xf, 4);
        let (out, ok) = w.finish();
        assert!(ok);
        assert_eq!(
            out,
            [0x51, 0x55, 0x49, 0x43, 0, 0, 0, 0x8f, 0, 0, 0, 0],
            "magic word, a partial word padded, then one zero word"
        );
        let mut r = BitReader::new(&out);
        assert_eq!(r.window(), 0x4349_5551);
        r.skip(16);
        assert_eq!(r.window(), 0x5551_8f00);
        r.skip(16);
        assert_eq!(r.window() >> 24, 0x8f);
        r.skip(8);
        assert!(!r.overrun());
        r.skip(24);
        assert!(!r.overrun(), "window exactly on the last word");
        r.skip(1);
        assert!(r.overrun());
        assert_eq!(r.window(), 0);
    }

    #[test]
    fn writer_full_word_then_finish() {
        let mut w = BitWriter::new(Vec::new());
        w.reserve(4);
        w.put(0xdead_beef, 32);
        let (out, ok) = w.finish();
        assert!(ok);
        assert_eq!(out, [0xef, 0xbe, 0xad, 0xde, 0, 0, 0, 0]);
        let mut w = BitWriter::new(out);
        w.reserve(4);
        w.put_ones(40);
        let (out, ok) = w.finish();
        assert!(ok);
        assert_eq!(&out[8..], [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0, 0, 0, 0]);
    }

    #[test]
    fn pixel_codewords_write_what_single_codewords_write() {
        // Codewords of 1 to 26 bits (the longest QUIC codeword) in groups of
        // three, their totals on both sides of the 32-bit fast path.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut grouped, mut single) = (BitWriter::new(vec![7]), BitWriter::new(vec![7]));
        let (mut fast, mut slow) = (0, 0);
        for _ in 0..5000 {
            let codewords: [u32; 3] = std::array::from_fn(|_| {
                let r = next();
                let len = if r & 1 == 0 {
                    1 + (r >> 8) % 6
                } else {
                    1 + (r >> 8) % 26
                } as u32;
                ((r >> 32) as u32 & ((1 << len) - 1)) << 5 | len
            });
            if codewords.iter().map(|cw| cw & 31).sum::<u32>() <= 32 {
                fast += 1;
            } else {
                slow += 1;
            }
            grouped.reserve(16);
            single.reserve(16);
            grouped.st.put_codewords(&mut grouped.buf, codewords);
            for cw in codewords {
                single.put(cw >> 5, cw & 31);
            }
        }
        assert!(fast > 1000 && slow > 1000, "both paths taken: {fast} {slow}");
        let (grouped, ok) = grouped.finish();
        assert!(ok);
        assert_eq!(grouped, single.finish().0);
    }

    #[test]
    fn pixel_codewords_report_overflow() {
        let mut w = BitWriter::new(vec![1, 2]);
        for _ in 0..4 {
            w.st.put_codewords(&mut w.buf, [0x1ff << 5 | 9, 3 << 5 | 2, 1 << 5 | 1]);
        }
        let (out, ok) = w.finish();
        assert!(!ok);
        assert_eq!(out[..2], [1, 2], "earlier output kept");
    }

    #[test]
    fn writer_reports_overflow() {
        let mut w = BitWriter::new(vec![1, 2]);
        w.put(0xdead_beef, 32);
        w.put(0x1234_5678, 32);
        let (out, ok) = w.finish();
        assert!(!ok);
        assert_eq!(out[..2], [1, 2], "earlier output kept");
    }
}
