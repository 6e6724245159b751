//! zlib-GLZ: a GLZ stream compressed as a zlib stream (RFC 1950), which the
//! client inflates with `inflateInit`/`inflate(Z_FINISH)` into a buffer of
//! exactly the GLZ stream's size (`glz_data_size` in the image descriptor)
//! before decoding it as GLZ.
//!
//! GLZ leaves literals uncompressed and codes every reference in at least
//! 3 bytes, so deflate finds more in it where images have few exact repeats
//! but skewed colours (anti-aliased text, gradients); on content GLZ
//! already copies it gains little. It costs server CPU for every image, so
//! the C server enables it only for WAN clients; here the caller decides,
//! and [`ZlibGlzEncoder::wrap`] says when it paid.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::CodecError;

/// The C server's zlib level for zlib-GLZ.
pub const DEFAULT_ZLIB_LEVEL: u32 = 3;
/// GLZ streams shorter than this are not worth wrapping (the C server's
/// `MIN_GLZ_SIZE_FOR_ZLIB`).
pub const MIN_GLZ_SIZE_FOR_ZLIB: usize = 100;
/// Output reserved per deflate call.
const CHUNK: usize = 64 * 1024;

/// A reusable deflater for zlib-GLZ.
pub struct ZlibGlzEncoder {
    deflate: Compress,
}

impl std::fmt::Debug for ZlibGlzEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZlibGlzEncoder").finish_non_exhaustive()
    }
}

impl Default for ZlibGlzEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ZlibGlzEncoder {
    /// A deflater at [`DEFAULT_ZLIB_LEVEL`].
    pub fn new() -> Self {
        Self::with_level(DEFAULT_ZLIB_LEVEL)
    }

    /// A deflater at zlib level `level` (1 fastest to 9 smallest).
    pub fn with_level(level: u32) -> Self {
        Self {
            deflate: Compress::new(Compression::new(level.clamp(1, 9)), true),
        }
    }

    /// Appends the zlib stream of `glz` to `out` when that pays, as the C
    /// server decides it: `glz` is at least [`MIN_GLZ_SIZE_FOR_ZLIB`] bytes
    /// and the zlib stream comes out shorter. Returns whether it appended;
    /// when not, `out` is unchanged and the caller sends `glz` as GLZ_RGB.
    /// Deflating stops as soon as the output is as long as `glz`.
    pub fn wrap(&mut self, glz: &[u8], out: &mut Vec<u8>) -> bool {
        if glz.len() < MIN_GLZ_SIZE_FOR_ZLIB {
            return false;
        }
        let start = out.len();
        if self.deflate_into(glz, out, Some(glz.len())) {
            true
        } else {
            out.truncate(start);
            false
        }
    }

    /// Appends the zlib stream of `glz` to `out` whatever its size.
    pub fn wrap_always(&mut self, glz: &[u8], out: &mut Vec<u8>) {
        let done = self.deflate_into(glz, out, None);
        debug_assert!(done);
    }

    /// Deflates `input` onto `out`; gives up (returning false) once more
    /// than `limit` bytes would be written, if there is a limit.
    fn deflate_into(&mut self, input: &[u8], out: &mut Vec<u8>, limit: Option<usize>) -> bool {
        self.deflate.reset();
        let start = out.len();
        loop {
            if limit.is_some_and(|l| out.len() - start >= l) {
                return false;
            }
            out.reserve(CHUNK);
            let consumed = self.deflate.total_in() as usize;
            let status = self
                .deflate
                .compress_vec(&input[consumed..], out, FlushCompress::Finish)
                .expect("deflate of an in-memory buffer");
            if status == Status::StreamEnd {
                return limit.is_none_or(|l| out.len() - start < l);
            }
        }
    }
}

/// Appends the zlib stream of `glz` at [`DEFAULT_ZLIB_LEVEL`] (see
/// [`ZlibGlzEncoder`] to reuse the deflater and to learn whether it paid).
pub fn encode_zlib_glz(glz: &[u8], out: &mut Vec<u8>) {
    ZlibGlzEncoder::new().wrap_always(glz, out);
}

/// Inflates a zlib-GLZ payload the way the client does, but strictly: it
/// must be one complete zlib stream of exactly `glz_size` bytes. Refuses a
/// `glz_size` that `data` could not inflate to before allocating.
pub fn decode_zlib_glz(data: &[u8], glz_size: usize) -> Result<Vec<u8>, CodecError> {
    let corrupt = |what| CodecError::Corrupt {
        codec: "zlib-glz",
        what,
    };
    // Deflate expands at most about 1032 times.
    if glz_size > data.len().saturating_mul(1032) {
        return Err(corrupt("payload too short for its size"));
    }
    let mut inflate = Decompress::new(true);
    let mut out = Vec::with_capacity(glz_size);
    let status = inflate
        .decompress_vec(data, &mut out, FlushDecompress::Finish)
        .map_err(|_| corrupt("bad deflate data"))?;
    if status != Status::StreamEnd || out.len() != glz_size {
        return Err(corrupt("inflated size differs"));
    }
    if inflate.total_in() as usize != data.len() {
        return Err(corrupt("bytes after the zlib stream"));
    }
    Ok(out)
}
