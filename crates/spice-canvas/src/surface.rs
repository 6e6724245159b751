//! Surfaces: pixels in one of the formats the QXL device defines, stored as
//! 32-bit words so pixman can draw into them.
//!
//! The words hold the guest's bytes unchanged (little-endian hosts): a
//! surface row is byte for byte what the guest keeps in its memory, so
//! copying rows in and out of guest memory is a plain byte copy.

use pixman::FormatCode;
use spice_qxl::surface::surface_format;

use crate::error::CanvasError;

/// Most bytes one surface may hold, as the device allows (`height * |stride|`).
pub const MAX_SURFACE_BYTES: u64 = spice_qxl::surface::MAX_SURFACE_BYTES;

/// Pixel formats of QXL surfaces (`SPICE_SURFACE_FMT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// 32-bit, B G R x bytes.
    Xrgb32,
    /// 32-bit, B G R A bytes (premultiplied, as pixman and Xorg's Render use it).
    Argb32,
    /// 16-bit x1r5g5b5, little endian.
    Rgb555,
    /// 16-bit r5g6b5, little endian.
    Rgb565,
    /// 8-bit alpha.
    A8,
    /// 1-bit alpha, least significant bit first.
    A1,
}

impl Format {
    /// The format of a `SPICE_SURFACE_FMT_*` value.
    pub fn from_spice(code: u32) -> Option<Self> {
        Some(match code {
            surface_format::XRGB32 => Self::Xrgb32,
            surface_format::ARGB32 => Self::Argb32,
            surface_format::RGB555 => Self::Rgb555,
            surface_format::RGB565 => Self::Rgb565,
            surface_format::A8 => Self::A8,
            surface_format::A1 => Self::A1,
            _ => return None,
        })
    }

    /// Bits per pixel.
    pub fn bits_per_pixel(self) -> u32 {
        match self {
            Self::Xrgb32 | Self::Argb32 => 32,
            Self::Rgb555 | Self::Rgb565 => 16,
            Self::A8 => 8,
            Self::A1 => 1,
        }
    }

    /// The bits of a pixel value that this format keeps (guests pass solid
    /// colours as raw pixel values of the target's format).
    pub fn pixel_mask(self) -> u32 {
        match self.bits_per_pixel() {
            32 => u32::MAX,
            bits => (1 << bits) - 1,
        }
    }

    pub(crate) fn pixman(self) -> FormatCode {
        match self {
            Self::Xrgb32 => FormatCode::X8R8G8B8,
            Self::Argb32 => FormatCode::A8R8G8B8,
            Self::Rgb555 => FormatCode::X1R5G5B5,
            Self::Rgb565 => FormatCode::R5G6B5,
            Self::A8 => FormatCode::A8,
            Self::A1 => FormatCode::A1,
        }
    }

    /// Bytes of a row of `width` pixels, padded to whole words.
    pub fn row_words(self, width: u32) -> usize {
        (u64::from(width) * u64::from(self.bits_per_pixel())).div_ceil(32) as usize
    }
}

/// A surface the canvas owns: `height` rows of `stride` words.
#[derive(Clone, PartialEq, Eq)]
pub struct Surface {
    width: u32,
    height: u32,
    format: Format,
    stride: usize,
    bits: Vec<u32>,
}

impl std::fmt::Debug for Surface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Surface")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Surface {
    /// A cleared (all zero) surface; at most [`MAX_SURFACE_BYTES`].
    pub fn new(width: u32, height: u32, format: Format) -> Result<Self, CanvasError> {
        let stride = format.row_words(width);
        let bytes = stride as u64 * 4 * u64::from(height);
        if width == 0 || height == 0 || bytes > MAX_SURFACE_BYTES {
            return Err(CanvasError::SurfaceSize { width, height });
        }
        Ok(Self {
            width,
            height,
            format,
            stride,
            bits: vec![0; stride * height as usize],
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Pixel format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Reads the same pixels as another format of the same size (xRGB as
    /// ARGB, say); ignored for formats of another size.
    pub fn relabel(&mut self, format: Format) {
        if format.bits_per_pixel() == self.format.bits_per_pixel() {
            self.format = format;
        }
    }

    /// Row `y` as bytes (the guest's layout), `None` past the last row.
    pub fn row_bytes(&self, y: u32) -> Option<&[u8]> {
        let start = (y as usize).checked_mul(self.stride)?;
        self.bits
            .get(start..start + self.stride)
            .map(bytemuck::cast_slice)
    }

    /// Row `y` as bytes to write into, `None` past the last row.
    pub fn row_bytes_mut(&mut self, y: u32) -> Option<&mut [u8]> {
        let start = (y as usize).checked_mul(self.stride)?;
        self.bits
            .get_mut(start..start + self.stride)
            .map(bytemuck::cast_slice_mut)
    }

    /// Reads the surface.
    pub fn view(&self) -> SurfaceRef<'_> {
        SurfaceRef {
            width: self.width,
            height: self.height,
            format: self.format,
            stride: self.stride,
            bits: &self.bits,
        }
    }

    /// Draws into the surface.
    pub fn view_mut(&mut self) -> SurfaceMut<'_> {
        SurfaceMut {
            width: self.width,
            height: self.height,
            format: self.format,
            stride: self.stride,
            bits: &mut self.bits,
        }
    }
}

/// A surface to read: `height` rows of `stride` words.
#[derive(Debug, Clone, Copy)]
pub struct SurfaceRef<'a> {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) format: Format,
    pub(crate) stride: usize,
    pub(crate) bits: &'a [u32],
}

impl<'a> SurfaceRef<'a> {
    /// A view of `bits` as a surface; `None` if they cannot hold it.
    pub fn new(width: u32, height: u32, format: Format, stride: usize, bits: &'a [u32]) -> Option<Self> {
        holds(width, height, format, stride, bits.len()).then_some(Self {
            width,
            height,
            format,
            stride,
            bits,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Pixel format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The words of row `y`.
    pub(crate) fn row(&self, y: u32) -> &'a [u32] {
        let start = y as usize * self.stride;
        &self.bits[start..start + self.stride]
    }

    /// An owned copy of the `width × height` area at `(x, y)` (clipped to the
    /// surface; pixels outside it are 0), in the same format.
    pub(crate) fn copy_area(&self, x: i32, y: i32, width: u32, height: u32) -> Result<Surface, CanvasError> {
        let mut out = Surface::new(width, height, self.format)?;
        crate::pixels::copy_pixels(self, x, y, &mut out.view_mut(), 0, 0, width, height);
        Ok(out)
    }
}

/// A surface to draw into: `height` rows of `stride` words.
#[derive(Debug)]
pub struct SurfaceMut<'a> {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) format: Format,
    pub(crate) stride: usize,
    pub(crate) bits: &'a mut [u32],
}

impl<'a> SurfaceMut<'a> {
    /// A view of `bits` as a surface to draw into; `None` if they cannot hold
    /// it (pixman is only ever given memory that holds the whole surface).
    pub fn new(width: u32, height: u32, format: Format, stride: usize, bits: &'a mut [u32]) -> Option<Self> {
        holds(width, height, format, stride, bits.len()).then_some(Self {
            width,
            height,
            format,
            stride,
            bits,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Pixel format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Reads what was drawn.
    pub fn as_ref(&self) -> SurfaceRef<'_> {
        SurfaceRef {
            width: self.width,
            height: self.height,
            format: self.format,
            stride: self.stride,
            bits: self.bits,
        }
    }

    /// Runs `f` with the surface as a pixman image.
    pub(crate) fn with_pixman<T>(
        &mut self,
        f: impl FnOnce(&mut pixman::Image<'_, 'static>) -> T,
    ) -> Option<T> {
        let mut image = pixman::Image::from_slice_mut(
            self.format.pixman(),
            self.width as usize,
            self.height as usize,
            self.bits,
            self.stride * 4,
            false,
        )
        .ok()?;
        Some(f(&mut image))
    }
}

/// Whether `len` words hold `height` rows `stride` apart of `width` pixels,
/// within the size limit (pixman is only ever handed memory that fits).
fn holds(width: u32, height: u32, format: Format, stride: usize, len: usize) -> bool {
    width > 0
        && height > 0
        && width <= i32::MAX as u32
        && height <= i32::MAX as u32
        && stride >= format.row_words(width)
        && (stride as u64) * 4 * u64::from(height) <= MAX_SURFACE_BYTES
        && stride.checked_mul(height as usize).is_some_and(|n| n <= len)
}

/// The surfaces a draw operation may read from besides its target.
pub trait Sources {
    /// Surface `id`, if it exists.
    fn surface(&self, id: u32) -> Option<SurfaceRef<'_>>;
}

/// No other surfaces.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSources;

impl Sources for NoSources {
    fn surface(&self, _id: u32) -> Option<SurfaceRef<'_>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_and_size_rows() {
        for code in [1, 8, 16, 32, 80, 96] {
            let f = Format::from_spice(code).unwrap();
            assert_eq!(
                f.bits_per_pixel(),
                spice_qxl::surface::surface_format::bits_per_pixel(code).unwrap()
            );
        }
        assert_eq!(Format::from_spice(24), None);
        assert_eq!(Format::A1.row_words(33), 2);
        assert_eq!(Format::A8.row_words(5), 2);
        assert_eq!(Format::Rgb565.row_words(3), 2);
        assert_eq!(Format::Xrgb32.row_words(3), 3);
        assert_eq!(Format::Rgb555.pixel_mask(), 0xffff);
    }

    #[test]
    fn views_refuse_memory_that_cannot_hold_the_surface() {
        let mut bits = vec![0u32; 11];
        assert!(SurfaceMut::new(4, 3, Format::Xrgb32, 4, &mut bits).is_none());
        assert!(SurfaceMut::new(4, 2, Format::Xrgb32, 3, &mut bits).is_none());
        assert!(SurfaceMut::new(4, 2, Format::Xrgb32, 4, &mut bits).is_some());
        assert!(SurfaceRef::new(0, 2, Format::Xrgb32, 4, &bits).is_none());
        assert!(Surface::new(1 << 16, 1 << 16, Format::Xrgb32).is_err());
    }
}
