//! Playback and record instances: the C push/pull audio API over the Rust
//! [`PlaybackHandle`] and [`RecordHandle`].

use std::sync::Mutex;

use spice_server::{PlaybackHandle, RecordHandle, FRAMES_PER_PACKET};

/// Buffers lent to the host through `spice_server_playback_get_buffer`; the C
/// server keeps three, which is enough for QEMU's put/get rhythm.
const BUFFERS: usize = 3;

/// A playback instance: the handle plus the frame buffers the host fills.
pub(crate) struct Playback {
    pub(crate) handle: PlaybackHandle,
    buffers: Mutex<Buffers>,
}

#[derive(Default)]
struct Buffers {
    free: Vec<Box<[u32]>>,
    lent: Vec<Box<[u32]>>,
}

impl Playback {
    pub(crate) fn new(handle: PlaybackHandle) -> Self {
        Self {
            handle,
            buffers: Mutex::new(Buffers {
                free: (0..BUFFERS)
                    .map(|_| vec![0u32; FRAMES_PER_PACKET].into_boxed_slice())
                    .collect(),
                lent: Vec::new(),
            }),
        }
    }

    /// A buffer of [`FRAMES_PER_PACKET`] stereo frames (one `u32` each), or
    /// `None` when nobody listens, which tells the host to drop its audio.
    pub(crate) fn lend(&self) -> Option<*mut u32> {
        if !self.handle.is_active() || !self.handle.has_client() {
            return None;
        }
        let mut b = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        let mut buffer = b.free.pop()?;
        let ptr = buffer.as_mut_ptr();
        b.lent.push(buffer);
        Some(ptr)
    }

    /// Takes back a buffer from `lend` and plays it. Unknown pointers are ignored.
    pub(crate) fn play(&self, ptr: *const u32) {
        let mut b = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(i) = b.lent.iter().position(|buf| buf.as_ptr() == ptr) else {
            tracing::warn!("put_samples with a buffer the server did not lend; ignored");
            return;
        };
        let buffer = b.lent.swap_remove(i);
        let frames: Vec<[i16; 2]> = buffer.iter().map(|&f| unpack(f)).collect();
        b.free.push(buffer);
        drop(b);
        self.handle.write(&frames);
    }
}

/// A stereo frame as the C API carries it: left in the low 16 bits.
pub(crate) fn unpack(frame: u32) -> [i16; 2] {
    [frame as u16 as i16, (frame >> 16) as u16 as i16]
}

/// The inverse of [`unpack`].
pub(crate) fn pack(frame: [i16; 2]) -> u32 {
    u32::from(frame[0] as u16) | (u32::from(frame[1] as u16) << 16)
}

/// A record instance.
pub(crate) struct Record {
    pub(crate) handle: RecordHandle,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pack_left_low() {
        assert_eq!(unpack(0xFFFE_0001), [1, -2]);
        assert_eq!(pack([1, -2]), 0xFFFE_0001);
        assert_eq!(unpack(pack([i16::MIN, i16::MAX])), [i16::MIN, i16::MAX]);
    }

    #[test]
    fn no_buffer_without_a_listener() {
        let p = Playback::new(PlaybackHandle::new());
        p.handle.start();
        assert!(p.lend().is_none(), "no client connected");
        p.play(std::ptr::null());
    }
}
