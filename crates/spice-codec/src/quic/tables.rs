//! Constant tables of the QUIC format.
//!
//! Everything here is fixed by the bitstream: the code families (Golomb-Rice
//! codes with an escape for long codewords), the residual mapping, the bucket
//! layout of the adaptive models, the pseudo-random table that spaces model
//! updates, and the run-length (MELCODE) state table. The values follow from
//! the format's parameters (`evol` = 3, codeword limit 26, wait-mask schedule
//! 0..=6 every 2048 samples); the two literal tables (`CHAOS`, `TRIGGER`) are
//! part of the format itself.

/// Masks of `n` low bits, `0..=32`.
pub(crate) const BPPMASK: [u32; 33] = {
    let mut t = [0u32; 33];
    let mut i = 1;
    while i < 33 {
        t[i] = if i == 32 { u32::MAX } else { (1u32 << i) - 1 };
        i += 1;
    }
    t
};

/// Longest codeword, in bits.
const MAX_CODEWORD: u32 = 26;

/// Largest wait-mask index: model updates are spaced by at most 63 samples.
pub(crate) const WMIMAX: u32 = 6;

/// Samples coded with one wait-mask index before moving to the next.
pub(crate) const WMINEXT: u32 = 2048;

/// Counter-halving thresholds by wait-mask index, for `evol` = 3.
const TRIGGER: [u32; 11] = [110, 550, 900, 800, 550, 400, 350, 250, 140, 160, 140];

/// The halving threshold for wait-mask index `wmidx`.
pub(crate) fn wm_trigger(wmidx: u32) -> u32 {
    TRIGGER[wmidx.min(10) as usize]
}

/// MELCODE run-length states: state `s` expects runs of `1 << MELC_LEN[s]`.
pub(crate) const MELC_LEN: [u32; 32] = [
    0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15,
];

/// The pseudo-random table that decides where the models are updated.
pub(crate) const CHAOS: [u32; 256] = [
    0x02c57542, 0x35427717, 0x2f5a2153, 0x9244f155, 0x7bd26d07, 0x354c6052, 0x57329b28, 0x2993868e,
    0x6cd8808c, 0x147b46e0, 0x99db66af, 0xe32b4cac, 0x1b671264, 0x9d433486, 0x62a4c192, 0x06089a4b,
    0x9e3dce44, 0xdaabee13, 0x222425ea, 0xa46f331d, 0xcd589250, 0x8bb81d7f, 0xc8b736b9, 0x35948d33,
    0xd7ac7fd0, 0x5fbe2803, 0x2cfbc105, 0x013dbc4e, 0x7a37820f, 0x39f88e9e, 0xedd58794, 0xc5076689,
    0xfcada5a4, 0x64c2f46d, 0xb3ba3243, 0x8974b4f9, 0x5a05aebd, 0x20afcd00, 0x39e2b008, 0x88a18a45,
    0x600bde29, 0xf3971ace, 0xf37b0a6b, 0x7041495b, 0x70b707ab, 0x06beffbb, 0x4206051f, 0xe13c4ee3,
    0xc1a78327, 0x91aa067c, 0x8295f72a, 0x732917a6, 0x1d871b4d, 0x4048f136, 0xf1840e7e, 0x6a6048c1,
    0x696cb71a, 0x7ff501c3, 0x0fc6310b, 0x57e0f83d, 0x8cc26e74, 0x11a525a2, 0x946934c7, 0x7cd888f0,
    0x8f9d8604, 0x4f86e73b, 0x04520316, 0xdeeea20c, 0xf1def496, 0x67687288, 0xf540c5b2, 0x22401484,
    0x3478658a, 0xc2385746, 0x01979c2c, 0x5dad73c8, 0x0321f58b, 0xf0fedbee, 0x92826ddf, 0x284bec73,
    0x5b1a1975, 0x03df1e11, 0x20963e01, 0xa17cf12b, 0x740d776e, 0xa7a6bf3c, 0x01b5cce4, 0x1118aa76,
    0xfc6fac0a, 0xce927e9b, 0x00bf2567, 0x806f216c, 0xbca69056, 0x795bd3e9, 0xc9dc4557, 0x8929b6c2,
    0x789d52ec, 0x3f3fbf40, 0xb9197368, 0xa38c15b5, 0xc3b44fa8, 0xca8333b0, 0xb7e8d590, 0xbe807feb,
    0xbf5f8360, 0xd99e2f5c, 0x372928e1, 0x7c757c4c, 0x0db5b154, 0xc01ede02, 0x1fc86e78, 0x1f3985be,
    0xb4805c77, 0x00c880fa, 0x974c1b12, 0x35ab0214, 0xb2dc840d, 0x5b00ae37, 0xd313b026, 0xb260969d,
    0x7f4c8879, 0x1734c4d3, 0x49068631, 0xb9f6a021, 0x6b863e6f, 0xcee5debf, 0x29f8c9fb, 0x53dd6880,
    0x72b61223, 0x1f67a9fd, 0x0a0f6993, 0x13e59119, 0x11cca12e, 0xfe6b6766, 0x16b6effc, 0x97918fc4,
    0xc2b8a563, 0x94f2f741, 0x0bfa8c9a, 0xd1537ae8, 0xc1da349c, 0x873c60ca, 0x95005b85, 0x9b5c080e,
    0xbc8abbd9, 0xe1eab1d2, 0x6dac9070, 0x4ea9ebf1, 0xe0cf30d4, 0x1ef5bd7b, 0xd161043e, 0x5d2fa2e2,
    0xff5d3cae, 0x86ed9f87, 0x2aa1daa1, 0xbd731a34, 0x9e8f4b22, 0xb1c2c67a, 0xc21758c9, 0xa182215d,
    0xccb01948, 0x8d168df7, 0x04238cfe, 0x368c3dbc, 0x0aeadca5, 0xbad21c24, 0x0a71fee5, 0x9fc5d872,
    0x54c152c6, 0xfc329483, 0x6783384a, 0xeddb3e1c, 0x65f90e30, 0x884ad098, 0xce81675a, 0x4b372f7d,
    0x68bf9a39, 0x43445f1e, 0x40f8d8cb, 0x90d5acb6, 0x4cd07282, 0x349eeb06, 0x0c9d5332, 0x520b24ef,
    0x80020447, 0x67976491, 0x2f931ca3, 0xfe9b0535, 0xfcd30220, 0x61a9e6cc, 0xa487d8d7, 0x3f7c5dd1,
    0x7d0127c5, 0x48f51d15, 0x60dea871, 0xc9a91cb7, 0x58b53bb3, 0x9d5e0b2d, 0x624a78b4, 0x30dbee1b,
    0x9bdf22e7, 0x1df5c299, 0x2d5643a7, 0xf4dd35ff, 0x03ca8fd6, 0x53b47ed8, 0x6f2c19aa, 0xfeb0c1f4,
    0x49e54438, 0x2f2577e6, 0xbf876969, 0x72440ea9, 0xfa0bafb8, 0x74f5b3a0, 0x7dd357cd, 0x89ce1358,
    0x6ef2cdda, 0x1e7767f3, 0xa6be9fdb, 0x4f5f88f8, 0xba994a3a, 0x08ca6b65, 0xe0893818, 0x9e00a16a,
    0xf42bfc8f, 0x9972eedc, 0x749c8b51, 0x32c05f5e, 0xd706805f, 0x6bfbb7cf, 0xd9210a10, 0x31a1db97,
    0x923a9559, 0x37a7a1f6, 0x059f8861, 0xca493e62, 0x65157e81, 0x8f6467dd, 0xab85ff9f, 0x9331aff2,
    0x8616b9f5, 0xedbd5695, 0xee7e29b1, 0x313ac44f, 0xb903112f, 0x432ef649, 0xdc0a36c0, 0x61cf2bba,
    0x81474925, 0xa8b6c7ad, 0xee5931de, 0xb2f8158d, 0x59fb7409, 0x2e3dfaed, 0x9af25a3f, 0xe1fed4d5,
];

/// `ceil(log2(v))` for `v >= 1`.
const fn ceil_log2(v: u32) -> u32 {
    if v <= 1 {
        0
    } else {
        32 - (v - 1).leading_zeros()
    }
}

/// The code family and model layout for one sample depth (8 or 5 bits).
///
/// Code number `l` (`0..bpc`) is a Golomb-Rice code with parameter `l` whose
/// unary prefix is cut at `prefix_len[l]` zeros; values from
/// `n_gr[l]` up are sent as that many zeros followed by a fixed-length
/// suffix. All tables are filled for the 256 values a corrupt stream may
/// produce, as a decoder reads them into bytes.
pub(crate) struct Family {
    /// Bits per sample.
    pub bpc: u32,
    /// `(1 << bpc) - 1`.
    pub mask: u32,
    /// Number of values coded as plain Golomb-Rice codewords, per code.
    pub n_gr: [u32; 8],
    /// Length of an escaped (not Golomb-Rice) codeword, per code.
    pub escape_len: [u32; 8],
    /// Suffix length of an escaped codeword, per code.
    pub escape_suffix: [u32; 8],
    /// A 32-bit window is an escaped codeword iff it is `<=` this, per code
    /// (its first `prefix_len` bits are zero).
    pub escape_max: [u32; 8],
    /// Codeword per value and code, with its length in the low 5 bits:
    /// `code << 5 | len`.
    pub codeword: [[u32; 8]; 256],
    /// Codeword length per value and code.
    pub len: [[u8; 8]; 256],
    /// Per code number, `u32::MAX` where the family has no such code
    /// (`l >= bpc`), else 0: OR-ed into the model's counters so that an
    /// absent code never looks shortest.
    pub absent_code: [u32; 8],
    /// Prediction error (mod 2^bpc) to the coded value: small magnitudes first.
    pub to_coded: [u8; 256],
    /// Coded value back to the prediction error; 0 for values a valid
    /// stream never holds.
    pub from_coded: [u8; 256],
    /// Adaptive-model bucket of a context value (the previous coded value).
    pub bucket_of: [u8; 256],
    /// Number of buckets.
    pub n_buckets: usize,
    /// The context values of each bucket, `start..end` (buckets are
    /// consecutive ranges; the last reaches the top sample value).
    pub bucket_range: [(u16, u16); 8],
}

const fn family(bpc: u32) -> Family {
    let mask = BPPMASK[bpc as usize];
    let mut f = Family {
        bpc,
        mask,
        n_gr: [0; 8],
        escape_len: [0; 8],
        escape_suffix: [0; 8],
        escape_max: [0; 8],
        codeword: [[0; 8]; 256],
        len: [[0; 8]; 256],
        absent_code: [u32::MAX; 8],
        to_coded: [0; 256],
        from_coded: [0; 256],
        bucket_of: [0; 256],
        n_buckets: 0,
        bucket_range: [(0, 0); 8],
    };
    let mut l = 0;
    while l < bpc {
        let mut prefix = MAX_CODEWORD - bpc;
        if prefix > BPPMASK[(bpc - l) as usize] {
            prefix = BPPMASK[(bpc - l) as usize];
        }
        let n_gr = prefix << l;
        let escaped = mask + 1 - n_gr;
        let li = l as usize;
        f.n_gr[li] = n_gr;
        f.absent_code[li] = 0;
        f.escape_suffix[li] = ceil_log2(escaped);
        f.escape_len[li] = prefix + f.escape_suffix[li];
        f.escape_max[li] = BPPMASK[(32 - prefix) as usize];
        let mut n = 0u32;
        while n < 256 {
            let (code, len) = if n < n_gr {
                ((1 << l) | (n & BPPMASK[li]), (n >> l) + l + 1)
            } else {
                (n - n_gr, f.escape_len[li])
            };
            f.codeword[n as usize][li] = (code << 5) | len;
            f.len[n as usize][li] = len as u8;
            n += 1;
        }
        l += 1;
    }
    // Prediction errors: 0, -1, 1, -2, 2, ... map to 0, 1, 2, 3, 4, ...
    let half = mask >> 1;
    let mut s = 0u32;
    while s <= mask {
        f.to_coded[s as usize] = if s <= half { s << 1 } else { ((mask - s) << 1) + 1 } as u8;
        f.from_coded[s as usize] = if s & 1 == 1 { mask - (s >> 1) } else { s >> 1 } as u8;
        s += 1;
    }
    // Buckets of 1, 2, 4, 8, ... context values; a bucket whose end plus its
    // own size reaches the last level takes everything up to it.
    let levels = mask + 1;
    let mut bucket_at = [0u8; 256];
    let mut start = 0u32;
    let mut size = 1u32;
    let mut b = 0u8;
    loop {
        let mut end = start + size - 1;
        if end + size >= levels {
            end = levels - 1;
        }
        let mut v = start;
        while v <= end {
            bucket_at[v as usize] = b;
            v += 1;
        }
        f.bucket_range[b as usize] = (start as u16, end as u16 + 1);
        b += 1;
        if end == levels - 1 {
            break;
        }
        start = end + 1;
        size *= 2;
    }
    f.n_buckets = b as usize;
    let mut v = 0;
    while v < 256 {
        f.bucket_of[v] = bucket_at[v & mask as usize];
        v += 1;
    }
    f
}

/// Family of 8-bit samples (RGB24, RGB32, RGBA, GRAY).
pub(crate) static FAMILY_8: Family = family(8);
/// Family of 5-bit samples (RGB16).
pub(crate) static FAMILY_5: Family = family(5);
