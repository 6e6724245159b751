//! Decoding errors shared by every parser in this crate.

/// Why a received byte sequence was rejected.
///
/// Every variant names the field being read, so a log line says exactly what
/// the peer got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before a field was complete.
    #[error("truncated {what}: needed {needed} bytes, {available} available")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A field holds a value the protocol does not allow.
    #[error("invalid {what}: {value}")]
    Invalid {
        /// The field being read.
        what: &'static str,
        /// The offending value.
        value: u64,
    },
    /// A length or count exceeds the limit this implementation accepts.
    #[error("{what} too large: {value} exceeds limit {limit}")]
    TooLarge {
        /// The field being read.
        what: &'static str,
        /// The value received.
        value: u64,
        /// The largest accepted value.
        limit: u64,
    },
}
