//! Capability sets exchanged in the link stage.

use crate::error::DecodeError;
use crate::wire::Reader;

/// The most capability words accepted per set, as in the C server
/// (`reds_handle_read_link_done`): far above the handful defined today.
pub const MAX_CAP_WORDS: u32 = 1024;

/// A set of capability bits, stored as the little-endian words of the wire format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps {
    words: Vec<u32>,
}

impl Caps {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set with the given bits.
    pub fn with(bits: &[u32]) -> Self {
        let mut caps = Self::new();
        for &bit in bits {
            caps.set(bit);
        }
        caps
    }

    /// Builds a set from raw words.
    pub fn from_words(words: Vec<u32>) -> Self {
        Self { words }
    }

    /// Turns a bit on.
    pub fn set(&mut self, bit: u32) {
        let word = usize::try_from(bit / 32).unwrap_or(usize::MAX);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (bit % 32);
    }

    /// Whether a bit is on.
    pub fn has(&self, bit: u32) -> bool {
        usize::try_from(bit / 32)
            .ok()
            .and_then(|word| self.words.get(word))
            .is_some_and(|w| w & (1 << (bit % 32)) != 0)
    }

    /// The raw words.
    pub fn words(&self) -> &[u32] {
        &self.words
    }

    /// Number of words on the wire.
    pub fn word_count(&self) -> u32 {
        u32::try_from(self.words.len()).unwrap_or(u32::MAX)
    }

    /// Reads `count` words.
    pub fn decode(r: &mut Reader<'_>, count: u32, what: &'static str) -> Result<Self, DecodeError> {
        if count > MAX_CAP_WORDS {
            return Err(DecodeError::TooLarge {
                what,
                value: count.into(),
                limit: MAX_CAP_WORDS.into(),
            });
        }
        let mut words = Vec::with_capacity(count as usize);
        for _ in 0..count {
            words.push(r.u32(what)?);
        }
        Ok(Self { words })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_across_words() {
        let caps = Caps::with(&[0, 3, 33]);
        assert_eq!(caps.words(), &[0b1001, 0b10]);
        assert!(caps.has(3) && caps.has(33));
        assert!(!caps.has(1) && !caps.has(64) && !caps.has(u32::MAX));
    }
}
