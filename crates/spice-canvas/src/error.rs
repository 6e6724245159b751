//! What can keep an operation from being drawn.

use thiserror::Error;

/// Why a draw operation was not (fully) rendered. The target is left as it
/// was for operations refused before drawing.
#[derive(Debug, Error)]
pub enum CanvasError {
    /// A surface of no pixels, or more than the device allows.
    #[error("surface of {width}x{height} is empty or too large")]
    SurfaceSize {
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
    },
    /// An image or operation names a surface that does not exist.
    #[error("surface {0} does not exist")]
    NoSurface(u32),
    /// The bitmap's rows were left in guest memory by the parser; the caller
    /// must copy them into `Bitmap::data` first.
    #[error("bitmap rows were not copied out of guest memory")]
    RowsNotCopied,
    /// A bitmap format the operation cannot use (or a missing palette).
    #[error("bitmap format {0} cannot be drawn here")]
    BitmapFormat(u8),
    /// A QUIC image from the guest did not decode.
    #[error("quic image: {0}")]
    Quic(#[from] spice_codec::CodecError),
    /// A mask that is not a 1-bit image.
    #[error("mask is not a 1-bit image")]
    MaskFormat,
    /// An operand the canvas does not take.
    #[error("{0} is not rendered")]
    Unsupported(&'static str),
    /// A composite operator that is not one of pixman's.
    #[error("composite operator {0} is not a pixman operator")]
    Operator(u8),
    /// A composite filter pixman cannot sample with (the convolutions need
    /// parameters the protocol does not carry).
    #[error("composite filter {0} cannot be used")]
    Filter(u8),
    /// An operand whose value cannot be drawn (named).
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// pixman refused an image or transform.
    #[error("pixman refused {0}")]
    Pixman(&'static str),
}
