//! SPICE image codecs: pure functions over pixel buffers, no I/O, no channels.
//!
//! Encoders produce exactly the bitstreams the clients' decoders (spice-common,
//! used by spice-gtk; spice-html5's JavaScript) read; the matching decoders here
//! exist to test the encoders and to parse guest-supplied images, and are
//! bounded and fuzzed like every other parser of untrusted input. JPEG is
//! the exception: lossy, encoded through the `jpeg-encoder` crate, and with
//! no decoder here (clients use libjpeg or the browser's).
//!
//! Pixels are 32-bit xRGB little endian (B, G, R, X in memory) unless a
//! function says otherwise.

pub mod error;
pub mod glz;
pub mod jpeg;
pub mod lz;
pub mod lz4;
pub mod quality;
pub mod quic;
pub mod yuv;

#[cfg(test)]
mod bench;
#[cfg(test)]
mod test_images;

pub use error::CodecError;

/// Bounds a decoder enforces before it allocates anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest `width * height` a stream may claim.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    /// 64 Mi pixels (an 8192 x 8192 image).
    fn default() -> Self {
        Self { max_pixels: 1 << 26 }
    }
}

/// A borrowed image: `height` rows of `width` 32-bit pixels, `stride` bytes apart.
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from one row to the next; at least `width * 4`.
    pub stride: usize,
    /// Rows, top first.
    pub data: &'a [u8],
}

impl ImageRef<'_> {
    /// Checks that the buffer holds the whole image.
    pub fn validate(&self) -> Result<(), CodecError> {
        let row = self.width as usize * 4;
        if self.width == 0 || self.height == 0 {
            return Err(CodecError::InvalidImage("empty image"));
        }
        if self.stride < row {
            return Err(CodecError::InvalidImage("stride shorter than a row"));
        }
        // Checked: the geometry can come from a guest.
        let needed = self
            .stride
            .checked_mul(self.height as usize - 1)
            .and_then(|rows| rows.checked_add(row));
        if needed.is_none_or(|needed| self.data.len() < needed) {
            return Err(CodecError::InvalidImage("buffer shorter than the image"));
        }
        Ok(())
    }

    /// Row `y` as `width * 4` bytes.
    pub fn row(&self, y: u32) -> &[u8] {
        let start = y as usize * self.stride;
        &self.data[start..start + self.width as usize * 4]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_refuses_geometry_whose_size_overflows() {
        let data = [0u8; 64];
        let image = ImageRef {
            width: 2,
            height: 3,
            stride: usize::MAX / 2,
            data: &data,
        };
        assert!(image.validate().is_err());
        let fits = ImageRef { stride: 8, ..image };
        assert!(fits.validate().is_ok());
        let short = ImageRef { height: 9, ..fits };
        assert!(short.validate().is_err());
    }
}
