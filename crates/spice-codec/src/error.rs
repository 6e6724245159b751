//! Errors of the codecs.

/// Why an image could not be encoded or a stream decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input image is unusable.
    #[error("invalid image: {0}")]
    InvalidImage(&'static str),
    /// A compressed stream is malformed.
    #[error("corrupt {codec} stream: {what}")]
    Corrupt {
        /// Which codec.
        codec: &'static str,
        /// What was wrong.
        what: &'static str,
    },
    /// A stream asks for more than the caller's limit.
    #[error("{codec} image of {width}x{height} exceeds the limit")]
    TooLarge {
        /// Which codec.
        codec: &'static str,
        /// Claimed width.
        width: u32,
        /// Claimed height.
        height: u32,
    },
}
