//! The host's side of recording: control messages out, captured frames in.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{frames_from_le, Shared, StereoFrame, RECORD_BUFFER_FRAMES};
use crate::waker::Waker;

/// A control message the record channel has to send, in the order the host asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordItem {
    /// Send `START`.
    Start,
    /// Send `STOP`.
    Stop,
    /// Send `VOLUME`.
    Volume(Vec<u16>),
    /// Send `MUTE`.
    Mute(bool),
}

/// What a newly connected client must be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordSnapshot {
    pub(crate) active: bool,
    pub(crate) volume: Option<Vec<u16>>,
    pub(crate) mute: bool,
}

#[derive(Debug, Default)]
pub(crate) struct RecordState {
    active: bool,
    /// Link id of the connected record channel, if any.
    listener: Option<u64>,
    /// Captured frames the host has not read, oldest first.
    ring: VecDeque<StereoFrame>,
    queue: VecDeque<RecordItem>,
    volume: Option<Vec<u16>>,
    mute: bool,
    /// Frames dropped because the host did not read in time.
    overrun_frames: u64,
}

impl RecordState {
    fn push(&mut self, item: RecordItem) {
        if self.listener.is_some() {
            self.queue.push_back(item);
        }
    }
}

/// Shared between [`RecordHandle`]s and the main context.
pub(crate) type RecordShared = Shared<RecordState>;

impl RecordShared {
    pub(crate) fn attach_waker(&self, waker: Option<Arc<Waker>>) {
        self.attach(waker);
    }

    /// A record channel connected: it becomes the listener and learns the current state.
    pub(crate) fn attach_client(&self, conn: u64) -> RecordSnapshot {
        let mut s = self.lock();
        s.listener = Some(conn);
        s.queue.clear();
        RecordSnapshot {
            active: s.active,
            volume: s.volume.clone(),
            mute: s.mute,
        }
    }

    /// The record channel `conn` closed.
    pub(crate) fn detach_client(&self, conn: u64) {
        let mut s = self.lock();
        if s.listener == Some(conn) {
            s.listener = None;
            s.queue.clear();
        }
    }

    /// The next control message for the listener `conn`.
    pub(crate) fn pop(&self, conn: u64) -> Option<RecordItem> {
        let mut s = self.lock();
        if s.listener != Some(conn) {
            return None;
        }
        s.queue.pop_front()
    }

    /// Adds captured S16LE stereo bytes from the listener `conn` while recording;
    /// returns the frames kept.
    pub(crate) fn push_pcm(&self, conn: u64, bytes: &[u8]) -> usize {
        let mut s = self.lock();
        if !s.active || s.listener != Some(conn) {
            tracing::trace!(len = bytes.len(), "record data while not recording: dropped");
            return 0;
        }
        let before = s.ring.len();
        s.ring.extend(frames_from_le(bytes));
        let added = s.ring.len() - before;
        let excess = s.ring.len().saturating_sub(RECORD_BUFFER_FRAMES);
        if excess > 0 {
            if s.overrun_frames == 0 {
                tracing::debug!("host is not reading recorded audio; dropping the oldest");
            }
            s.ring.drain(..excess);
            s.overrun_frames += excess as u64;
        }
        added
    }
}

/// The host's handle on audio capture: start, read captured frames, stop.
///
/// Cheap to clone, `Send + Sync`; call it from any thread. Add it to the
/// server with [`crate::ServerBuilder::record`], which makes the server offer
/// a record channel (type 6, id 0).
///
/// [`RecordHandle::start`] asks the client to capture S16 stereo at
/// [`super::RECORD_RATE`] (or [`RecordHandle::set_rate`]); what it sends
/// (raw PCM, or Opus the server decodes) collects in a buffer
/// of at most [`super::RECORD_BUFFER_FRAMES`] frames that
/// [`RecordHandle::read`] drains. When the host reads too slowly the oldest
/// frames are dropped ([`RecordHandle::overrun_frames`]).
///
/// ```no_run
/// use spice_server::{RecordHandle, ServerBuilder};
///
/// let record = RecordHandle::new();
/// let _server = ServerBuilder::new().record(record.clone()).spawn().unwrap();
/// record.start();
/// let mut buf = [[0i16; 2]; 480];
/// let n = record.read(&mut buf); // 0 until the client sends something
/// # let _ = n;
/// ```
#[derive(Debug, Clone, Default)]
pub struct RecordHandle {
    pub(crate) shared: Arc<RecordShared>,
}

impl RecordHandle {
    /// A stopped record device.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts recording (`spice_server_record_start`): the buffer is emptied
    /// and a connected client is sent `START` (the host's rate, 2 channels, S16), as is
    /// one that connects later. Does nothing if already started.
    pub fn start(&self) {
        {
            let mut s = self.shared.lock();
            if s.active {
                return;
            }
            s.active = true;
            s.ring.clear();
            s.push(RecordItem::Start);
        }
        self.shared.wake();
    }

    /// Stops recording (`spice_server_record_stop`): the client is sent `STOP`
    /// and later data is dropped. Frames already captured can still be read.
    pub fn stop(&self) {
        {
            let mut s = self.shared.lock();
            if !s.active {
                return;
            }
            s.active = false;
            s.push(RecordItem::Stop);
        }
        self.shared.wake();
    }

    /// Moves captured frames, oldest first, into `out`; returns how many
    /// (`spice_server_record_get_samples`). Never waits.
    pub fn read(&self, out: &mut [StereoFrame]) -> usize {
        let mut s = self.shared.lock();
        let n = out.len().min(s.ring.len());
        for (slot, frame) in out.iter_mut().zip(s.ring.drain(..n)) {
            *slot = frame;
        }
        n
    }

    /// Frames captured and not yet read.
    pub fn available(&self) -> usize {
        self.shared.lock().ring.len()
    }

    /// Sets the guest's capture volume, one level per channel from 0 to 65535
    /// (`spice_server_record_set_volume`). Clients that understand volume are
    /// told now and on connect; at most 255 channels are sent.
    pub fn set_volume(&self, volume: &[u16]) {
        {
            let mut s = self.shared.lock();
            s.volume = Some(volume.to_vec());
            s.push(RecordItem::Volume(volume.to_vec()));
        }
        self.shared.wake();
    }

    /// Mutes or unmutes the guest's input (`spice_server_record_set_mute`).
    pub fn set_mute(&self, mute: bool) {
        {
            let mut s = self.shared.lock();
            s.mute = mute;
            s.push(RecordItem::Mute(mute));
        }
        self.shared.wake();
    }

    /// Sets the frames per second the host works at (`spice_server_set_record_rate`;
    /// default and best [`super::OPUS_RATE`]); 0 is ignored. Clients are told at their next
    /// `START`; audio goes as Opus only at [`super::OPUS_RATE`], raw otherwise.
    pub fn set_rate(&self, rate: u32) {
        self.shared.set_rate(rate, "record");
    }

    /// Frames per second the host works at ([`Self::set_rate`]).
    pub fn rate(&self) -> u32 {
        self.shared.rate()
    }

    /// Whether recording is started.
    pub fn is_active(&self) -> bool {
        self.shared.lock().active
    }

    /// Whether a client's record channel is connected.
    pub fn has_client(&self) -> bool {
        self.shared.lock().listener.is_some()
    }

    /// Frames dropped so far because more than
    /// [`super::RECORD_BUFFER_FRAMES`] waited unread.
    pub fn overrun_frames(&self) -> u64 {
        self.shared.lock().overrun_frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(frames: &[StereoFrame]) -> Vec<u8> {
        let mut v = Vec::new();
        super::super::extend_le(&mut v, frames);
        v
    }

    #[test]
    fn captured_frames_are_read_in_order_only_while_recording() {
        let r = RecordHandle::new();
        r.shared.attach_client(3);
        assert_eq!(r.shared.push_pcm(3, &le(&[[1, 1]])), 0, "not started");
        r.start();
        assert_eq!(r.shared.push_pcm(4, &le(&[[1, 1]])), 0, "not the listener");
        assert_eq!(r.shared.push_pcm(3, &le(&[[1, 2], [3, 4], [5, 6]])), 3);
        let mut out = [[0; 2]; 2];
        assert_eq!(r.read(&mut out), 2);
        assert_eq!(out, [[1, 2], [3, 4]]);
        r.stop();
        assert_eq!(r.shared.push_pcm(3, &le(&[[7, 7]])), 0, "stopped");
        assert_eq!(r.read(&mut out), 1, "captured frames survive stop");
        assert_eq!(out[0], [5, 6]);
        assert_eq!(
            std::iter::from_fn(|| r.shared.pop(3)).collect::<Vec<_>>(),
            [RecordItem::Start, RecordItem::Stop]
        );
    }

    #[test]
    fn buffer_is_bounded_and_keeps_the_newest_frames() {
        let r = RecordHandle::new();
        r.shared.attach_client(1);
        r.start();
        let chunk: Vec<StereoFrame> = (0..1000).map(|i| [i as i16, 0]).collect();
        let bytes = le(&chunk);
        for _ in 0..30 {
            r.shared.push_pcm(1, &bytes);
        }
        assert_eq!(r.available(), RECORD_BUFFER_FRAMES);
        assert_eq!(r.overrun_frames(), 30_000 - RECORD_BUFFER_FRAMES as u64);
        let mut out = vec![[0; 2]; RECORD_BUFFER_FRAMES];
        assert_eq!(r.read(&mut out), RECORD_BUFFER_FRAMES);
        assert_eq!(out[RECORD_BUFFER_FRAMES - 1], [999, 0]);
        assert_eq!(out[0], [(30_000 - RECORD_BUFFER_FRAMES) as i16 % 1000, 0]);
    }

    #[test]
    fn start_empties_the_buffer() {
        let r = RecordHandle::new();
        r.shared.attach_client(1);
        r.start();
        r.shared.push_pcm(1, &le(&[[1, 1]; 10]));
        r.stop();
        r.start();
        assert_eq!(r.available(), 0);
    }
}
