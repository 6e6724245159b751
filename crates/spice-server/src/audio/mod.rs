//! Audio: the host plays sound to the client ([`PlaybackHandle`]) and
//! captures sound from the client's microphone ([`RecordHandle`]).
//!
//! The host sees raw PCM in both directions: signed 16-bit samples, two
//! interleaved channels (left, right), [`PLAYBACK_RATE`] / [`RECORD_RATE`]
//! frames per second. A frame is one `[left, right]` pair ([`StereoFrame`]).
//! On the wire, a client that decodes Opus gets Opus playback when the
//! server's playback compression is on (`ServerBuilder::playback_compression`,
//! as the C server's `spice_server_set_playback_compression`), and a client
//! may record in Opus; the server encodes and decodes (`opus.rs`).
//!
//! As with the display, the host never waits for a client. Calls on the
//! handles take a short lock, queue work for the server's main context and
//! wake it; memory is bounded in both directions: playback keeps at most
//! [`MAX_PLAYBACK_BACKLOG`] packets for a client that is behind (the oldest
//! are dropped), and the record buffer keeps at most [`RECORD_BUFFER_FRAMES`]
//! frames the host has not read (the oldest are dropped).

pub(crate) mod opus;
mod playback;
mod record;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) use opus::{OpusDecoder, OpusEncoder};
pub use playback::PlaybackHandle;
pub(crate) use playback::{PlaybackItem, PlaybackShared};
pub use record::RecordHandle;
pub(crate) use record::{RecordItem, RecordShared};

use crate::waker::Waker;

/// One sample per channel: `[left, right]`.
pub type StereoFrame = [i16; 2];

/// Frames per second of playback unless the host sets another
/// ([`PlaybackHandle::set_rate`]): the Opus rate the C server reports as best.
pub const PLAYBACK_RATE: u32 = 48_000;
/// Frames per second of recording unless the host sets another
/// ([`RecordHandle::set_rate`]).
pub const RECORD_RATE: u32 = 48_000;
/// The only rate audio goes as Opus at; at any other the server sends and
/// takes raw PCM (the C server also codes 8, 12, 16 and 24 kHz, which no
/// host asks for).
pub const OPUS_RATE: u32 = 48_000;
/// Interleaved channels in both directions.
pub const CHANNELS: u32 = 2;
/// Frames per playback `DATA` packet: 10 ms at [`PLAYBACK_RATE`], the buffer
/// size the C server hands out (`spice_server_playback_get_buffer`).
pub const FRAMES_PER_PACKET: usize = 480;
/// Bytes of one playback packet: [`FRAMES_PER_PACKET`] S16 stereo frames.
pub const PACKET_BYTES: usize = FRAMES_PER_PACKET * 4;
/// Most packets (here 400 ms) kept for a client that is behind; when more are
/// written, the oldest are dropped.
pub const MAX_PLAYBACK_BACKLOG: usize = 40;
/// Most captured frames (here 500 ms) kept until the host reads them; when
/// more arrive, the oldest are dropped.
pub const RECORD_BUFFER_FRAMES: usize = 24_000;

/// Lock and waker shared by both directions.
#[derive(Debug, Default)]
pub(crate) struct Shared<S> {
    state: Mutex<S>,
    waker: Mutex<Option<Arc<Waker>>>,
    /// Frames per second the host works at; 0 until it sets one (48 kHz).
    rate: AtomicU32,
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, S> {
        // A panic while holding the lock leaves samples, not broken invariants.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn attach(&self, waker: Option<Arc<Waker>>) {
        *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = waker;
    }

    /// Frames per second the host works at.
    pub(crate) fn rate(&self) -> u32 {
        match self.rate.load(Ordering::Relaxed) {
            0 => PLAYBACK_RATE,
            rate => rate,
        }
    }

    /// The host's rate for `direction` (playback, record); 0 is ignored.
    fn set_rate(&self, rate: u32, direction: &'static str) {
        if rate == 0 {
            tracing::warn!(direction, "a rate of 0 ignored");
            return;
        }
        self.rate.store(rate, Ordering::Relaxed);
    }

    fn wake(&self) {
        if let Some(w) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            w.wake();
        }
    }
}

/// Appends frames as S16LE interleaved bytes.
fn extend_le(out: &mut Vec<u8>, frames: &[StereoFrame]) {
    out.reserve(frames.len() * 4);
    for [l, r] in frames {
        out.extend_from_slice(&l.to_le_bytes());
        out.extend_from_slice(&r.to_le_bytes());
    }
}

/// Reads S16LE interleaved bytes as frames; a trailing partial frame is ignored.
fn frames_from_le(bytes: &[u8]) -> impl Iterator<Item = StereoFrame> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| [i16::from_le_bytes([b[0], b[1]]), i16::from_le_bytes([b[2], b[3]])])
}

/// Interleaved samples as frames; a trailing odd sample is ignored.
fn frames_from_interleaved(samples: &[i16]) -> Vec<StereoFrame> {
    samples.chunks_exact(2).map(|s| [s[0], s[1]]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_conversion_round_trips() {
        let frames = [[1, -1], [i16::MIN, i16::MAX]];
        let mut bytes = Vec::new();
        extend_le(&mut bytes, &frames);
        assert_eq!(bytes, [1, 0, 0xff, 0xff, 0, 0x80, 0xff, 0x7f]);
        bytes.push(9);
        assert_eq!(frames_from_le(&bytes).collect::<Vec<_>>(), frames);
        assert_eq!(frames_from_interleaved(&[1, 2, 3]), [[1, 2]]);
    }
}
