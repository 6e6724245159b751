//! The pointer shape and position the host publishes.

use std::sync::Arc;

use spice_proto::msg::cursor::CursorShape;

use super::DisplayError;

/// Largest cursor side accepted, in pixels (the protocol carries u16, clients draw ≤ 256).
pub const MAX_CURSOR_SIDE: u16 = 512;

/// An ARGB cursor image with its hotspot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorImage {
    width: u16,
    height: u16,
    hot_x: u16,
    hot_y: u16,
    argb: Vec<u8>,
}

impl CursorImage {
    /// Builds a cursor from `width * height` pixels of 4 bytes each, in
    /// little-endian ARGB order (B, G, R, A in memory), not premultiplied.
    pub fn new(width: u16, height: u16, hot_x: u16, hot_y: u16, argb: Vec<u8>) -> Result<Self, DisplayError> {
        if width == 0 || height == 0 || width > MAX_CURSOR_SIDE || height > MAX_CURSOR_SIDE {
            return Err(DisplayError::CursorSize { width, height });
        }
        let expected = usize::from(width) * usize::from(height) * 4;
        if argb.len() != expected {
            return Err(DisplayError::CursorData {
                expected,
                got: argb.len(),
            });
        }
        if hot_x >= width || hot_y >= height {
            return Err(DisplayError::CursorHotspot { hot_x, hot_y });
        }
        Ok(Self {
            width,
            height,
            hot_x,
            hot_y,
            argb,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u16 {
        self.height
    }
}

/// What the cursor channel mirrors; serials tell what changed since it last looked.
#[derive(Debug, Clone, Default)]
pub(crate) struct CursorState {
    pub(crate) shape: Option<Arc<CursorShape>>,
    pub(crate) shape_serial: u64,
    pub(crate) x: i32,
    pub(crate) y: i32,
    pub(crate) position_serial: u64,
    pub(crate) visible: bool,
    next_unique: u64,
}

impl CursorState {
    pub(crate) fn set_shape(&mut self, image: CursorImage) {
        self.next_unique += 1;
        self.shape = Some(Arc::new(CursorShape {
            unique: self.next_unique,
            width: image.width,
            height: image.height,
            hot_x: image.hot_x,
            hot_y: image.hot_y,
            argb: image.argb,
        }));
        self.shape_serial += 1;
        self.visible = true;
    }

    pub(crate) fn move_to(&mut self, x: i32, y: i32) {
        self.x = x;
        self.y = y;
        self.position_serial += 1;
    }

    pub(crate) fn hide(&mut self) {
        self.visible = false;
        self.shape_serial += 1;
    }
}
