//! The host's side of playback: samples in, packets queued for the client.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{extend_le, frames_from_interleaved, Shared, StereoFrame, MAX_PLAYBACK_BACKLOG, PACKET_BYTES};
use crate::waker::Waker;

/// Something the playback channel has to send, in the order the host asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlaybackItem {
    /// Send `START`.
    Start,
    /// One packet of [`PACKET_BYTES`] S16LE bytes, shared by the clients.
    Data(Arc<[u8]>),
    /// Send `STOP`.
    Stop,
    /// Send `VOLUME`.
    Volume(Vec<u16>),
    /// Send `MUTE`.
    Mute(bool),
}

/// What a newly connected client must be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlaybackSnapshot {
    pub(crate) active: bool,
    pub(crate) volume: Option<Vec<u16>>,
    pub(crate) mute: bool,
}

/// What waits for one client's playback channel.
#[derive(Debug, Default)]
struct Listener {
    queue: VecDeque<PlaybackItem>,
    /// `Data` items in `queue`.
    packets: usize,
    /// Whether a drop was logged since the queue was last drained.
    overrunning: bool,
}

impl Listener {
    /// Drops the oldest packets beyond the backlog; returns the frames dropped.
    fn trim(&mut self) -> u64 {
        let mut dropped = 0;
        while self.packets > MAX_PLAYBACK_BACKLOG {
            if let Some(at) = self.queue.iter().position(|i| matches!(i, PlaybackItem::Data(_))) {
                self.queue.remove(at);
                self.packets -= 1;
                dropped += super::FRAMES_PER_PACKET as u64;
                if !self.overrunning {
                    self.overrunning = true;
                    tracing::debug!("playback client is behind; dropping the oldest audio");
                }
            } else {
                self.packets = 0;
            }
        }
        dropped
    }
}

#[derive(Debug, Default)]
pub(crate) struct PlaybackState {
    active: bool,
    /// Each connected playback channel (several with several clients), by link id.
    listeners: Vec<(u64, Listener)>,
    /// Bytes of a packet not yet complete (fewer than [`PACKET_BYTES`]).
    partial: Vec<u8>,
    volume: Option<Vec<u16>>,
    mute: bool,
    /// Frames dropped because a client was behind (summed over clients).
    overrun_frames: u64,
}

impl PlaybackState {
    fn push(&mut self, item: PlaybackItem) {
        for (_, listener) in &mut self.listeners {
            listener.queue.push_back(item.clone());
        }
    }

    fn listener(&mut self, conn: u64) -> Option<&mut Listener> {
        self.listeners
            .iter_mut()
            .find(|(c, _)| *c == conn)
            .map(|(_, l)| l)
    }

    /// Queues complete packets from `partial` for every listener, each
    /// dropping its oldest beyond the backlog: a client that is behind
    /// loses its own audio, not the others'.
    fn queue_packets(&mut self) -> bool {
        let mut queued = false;
        while self.partial.len() >= PACKET_BYTES {
            let rest = self.partial.split_off(PACKET_BYTES);
            let packet: Arc<[u8]> = std::mem::replace(&mut self.partial, rest).into();
            for (_, listener) in &mut self.listeners {
                listener.queue.push_back(PlaybackItem::Data(packet.clone()));
                listener.packets += 1;
            }
            queued = true;
        }
        for (_, listener) in &mut self.listeners {
            self.overrun_frames += listener.trim();
        }
        queued
    }
}

/// Shared between [`PlaybackHandle`]s and the main context.
pub(crate) type PlaybackShared = Shared<PlaybackState>;

impl PlaybackShared {
    pub(crate) fn attach_waker(&self, waker: Option<Arc<Waker>>) {
        self.attach(waker);
    }

    /// A playback channel connected: it becomes a listener, with nothing
    /// queued, and learns the current state.
    pub(crate) fn attach_client(&self, conn: u64) -> PlaybackSnapshot {
        let mut s = self.lock();
        s.listeners.retain(|(c, _)| *c != conn);
        if s.listeners.is_empty() {
            s.partial.clear();
        }
        s.listeners.push((conn, Listener::default()));
        PlaybackSnapshot {
            active: s.active,
            volume: s.volume.clone(),
            mute: s.mute,
        }
    }

    /// The playback channel `conn` closed.
    pub(crate) fn detach_client(&self, conn: u64) {
        let mut s = self.lock();
        s.listeners.retain(|(c, _)| *c != conn);
        if s.listeners.is_empty() {
            s.partial.clear();
        }
    }

    /// The next item for the listener `conn`.
    pub(crate) fn pop(&self, conn: u64) -> Option<PlaybackItem> {
        let mut s = self.lock();
        let listener = s.listener(conn)?;
        let item = listener.queue.pop_front();
        match &item {
            Some(PlaybackItem::Data(_)) => listener.packets -= 1,
            None => listener.overrunning = false,
            Some(_) => {}
        }
        item
    }
}

/// The host's handle on audio playback: start, write samples, stop.
///
/// Cheap to clone, `Send + Sync`; call it from any thread. Add it to the
/// server with [`crate::ServerBuilder::playback`], which makes the server
/// offer a playback channel (type 5, id 0).
///
/// Samples are S16 stereo at [`super::PLAYBACK_RATE`] (or
/// [`PlaybackHandle::set_rate`]); the server sends them in packets of
/// [`super::FRAMES_PER_PACKET`] frames (raw, or one Opus packet each), each
/// stamped with the
/// multimedia time it was sent at. The host paces the stream (writes about as
/// fast as it should play), as an emulated sound card does. Nothing blocks:
///
/// - samples written while playback is stopped or no client's playback channel
///   is connected are dropped;
/// - while a client is behind, at most [`super::MAX_PLAYBACK_BACKLOG`] packets
///   wait for it and the oldest are dropped ([`PlaybackHandle::overrun_frames`]).
///
/// A client that connects during playback is sent `START` at once and gets
/// the samples written from then on.
///
/// ```no_run
/// use spice_server::{PlaybackHandle, ServerBuilder};
///
/// let playback = PlaybackHandle::new();
/// let _server = ServerBuilder::new().playback(playback.clone()).spawn().unwrap();
/// playback.start();
/// playback.write(&[[0, 0]; 480]); // 10 ms of silence
/// playback.stop();
/// ```
#[derive(Debug, Clone, Default)]
pub struct PlaybackHandle {
    pub(crate) shared: Arc<PlaybackShared>,
}

impl PlaybackHandle {
    /// A stopped playback device.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts playback (`spice_server_playback_start`): a connected client is
    /// sent `START` (the host's rate, 2 channels, S16). Does nothing if already started.
    pub fn start(&self) {
        {
            let mut s = self.shared.lock();
            if s.active {
                return;
            }
            s.active = true;
            s.partial.clear();
            s.push(PlaybackItem::Start);
        }
        self.shared.wake();
    }

    /// Stops playback (`spice_server_playback_stop`). A last incomplete packet
    /// is padded with silence and sent before `STOP`. Does nothing if stopped.
    pub fn stop(&self) {
        {
            let mut s = self.shared.lock();
            if !s.active {
                return;
            }
            s.active = false;
            if !s.listeners.is_empty() && !s.partial.is_empty() {
                s.partial.resize(PACKET_BYTES, 0);
                s.queue_packets();
            }
            s.partial.clear();
            s.push(PlaybackItem::Stop);
        }
        self.shared.wake();
    }

    /// Queues frames for the client (`spice_server_playback_put_samples`).
    ///
    /// Returns how many frames were taken: all of them while playback is
    /// started and a client is connected, otherwise none (they are dropped).
    pub fn write(&self, frames: &[StereoFrame]) -> usize {
        let queued = {
            let mut s = self.shared.lock();
            if !s.active || s.listeners.is_empty() {
                tracing::trace!(frames = frames.len(), "no playback client: samples dropped");
                return 0;
            }
            extend_le(&mut s.partial, frames);
            s.queue_packets()
        };
        if queued {
            self.shared.wake();
        }
        frames.len()
    }

    /// As [`PlaybackHandle::write`], with samples interleaved
    /// `[l0, r0, l1, r1, …]`; a trailing odd sample is ignored.
    pub fn write_interleaved(&self, samples: &[i16]) -> usize {
        self.write(&frames_from_interleaved(samples))
    }

    /// Sets the guest's volume, one level per channel from 0 to 65535
    /// (`spice_server_playback_set_volume`). Clients that understand volume
    /// are told now and on connect; at most 255 channels are sent.
    pub fn set_volume(&self, volume: &[u16]) {
        {
            let mut s = self.shared.lock();
            s.volume = Some(volume.to_vec());
            s.push(PlaybackItem::Volume(volume.to_vec()));
        }
        self.shared.wake();
    }

    /// Mutes or unmutes the guest's output (`spice_server_playback_set_mute`).
    pub fn set_mute(&self, mute: bool) {
        {
            let mut s = self.shared.lock();
            s.mute = mute;
            s.push(PlaybackItem::Mute(mute));
        }
        self.shared.wake();
    }

    /// Sets the frames per second the host works at (`spice_server_set_playback_rate`;
    /// default and best [`super::OPUS_RATE`]); 0 is ignored. Clients are told at their next
    /// `START`; audio goes as Opus only at [`super::OPUS_RATE`], raw otherwise.
    pub fn set_rate(&self, rate: u32) {
        self.shared.set_rate(rate, "playback");
    }

    /// Frames per second the host works at ([`Self::set_rate`]).
    pub fn rate(&self) -> u32 {
        self.shared.rate()
    }

    /// Whether playback is started.
    pub fn is_active(&self) -> bool {
        self.shared.lock().active
    }

    /// Whether a client's playback channel is connected, so written samples go somewhere.
    pub fn has_client(&self) -> bool {
        !self.shared.lock().listeners.is_empty()
    }

    /// Frames dropped so far because a client fell more than
    /// [`super::MAX_PLAYBACK_BACKLOG`] packets behind.
    pub fn overrun_frames(&self) -> u64 {
        self.shared.lock().overrun_frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAMES_PER_PACKET;

    fn drain(shared: &PlaybackShared, conn: u64) -> Vec<PlaybackItem> {
        std::iter::from_fn(|| shared.pop(conn)).collect()
    }

    #[test]
    fn samples_without_a_client_are_dropped() {
        let p = PlaybackHandle::new();
        p.start();
        assert_eq!(p.write(&[[1, 2]; 1000]), 0);
        p.shared.attach_client(7);
        assert!(drain(&p.shared, 7).is_empty());
        assert!(p.has_client());
    }

    #[test]
    fn packets_are_cut_at_480_frames_and_stop_pads_the_rest() {
        let p = PlaybackHandle::new();
        let snap = p.shared.attach_client(1);
        assert!(!snap.active);
        p.start();
        assert_eq!(
            p.write(&[[1, -1]; FRAMES_PER_PACKET + 10]),
            FRAMES_PER_PACKET + 10
        );
        assert_eq!(p.write_interleaved(&[3, 4, 5]), 1);
        p.stop();
        let items = drain(&p.shared, 1);
        assert_eq!(items.len(), 4, "{items:?}");
        assert_eq!(items[0], PlaybackItem::Start);
        let (PlaybackItem::Data(a), PlaybackItem::Data(b)) = (&items[1], &items[2]) else {
            panic!("{items:?}");
        };
        assert_eq!((a.len(), b.len()), (PACKET_BYTES, PACKET_BYTES));
        assert_eq!(&a[..4], &[1, 0, 0xff, 0xff]);
        assert_eq!(&b[40..44], &[3, 0, 4, 0]);
        assert!(b[44..].iter().all(|&x| x == 0), "padded with silence");
        assert_eq!(items[3], PlaybackItem::Stop);
    }

    #[test]
    fn backlog_is_bounded_and_keeps_the_newest_packets() {
        let p = PlaybackHandle::new();
        p.shared.attach_client(1);
        p.start();
        for i in 0..100i16 {
            p.write(&[[i, i]; FRAMES_PER_PACKET]);
        }
        let mut s = p.shared.lock();
        let listener = s.listener(1).expect("listener");
        assert_eq!(listener.packets, MAX_PLAYBACK_BACKLOG);
        assert!(listener.queue.len() <= MAX_PLAYBACK_BACKLOG + 1);
        drop(s);
        assert_eq!(
            p.overrun_frames(),
            (100 - MAX_PLAYBACK_BACKLOG as u64) * FRAMES_PER_PACKET as u64
        );
        let items = drain(&p.shared, 1);
        // START survives; the first packet left is number 100 - backlog.
        assert_eq!(items[0], PlaybackItem::Start);
        let PlaybackItem::Data(first) = &items[1] else {
            panic!("{items:?}")
        };
        assert_eq!(first[0], 100 - MAX_PLAYBACK_BACKLOG as u8);
    }

    #[test]
    fn every_listener_gets_everything_and_a_slow_one_loses_only_its_own() {
        let p = PlaybackHandle::new();
        p.shared.attach_client(1);
        p.set_volume(&[100, 200]);
        p.set_mute(true);
        p.start();
        let snap = p.shared.attach_client(2);
        assert_eq!(
            snap,
            PlaybackSnapshot {
                active: true,
                volume: Some(vec![100, 200]),
                mute: true
            },
            "a second client learns the state"
        );
        assert_eq!(
            drain(&p.shared, 1),
            [
                PlaybackItem::Volume(vec![100, 200]),
                PlaybackItem::Mute(true),
                PlaybackItem::Start
            ]
        );
        assert!(drain(&p.shared, 2).is_empty(), "a new listener starts empty");
        // Client 2 keeps up, client 1 stops reading.
        let mut got = Vec::new();
        for i in 0..(MAX_PLAYBACK_BACKLOG as i16 + 10) {
            p.write(&[[i, i]; FRAMES_PER_PACKET]);
            got.extend(drain(&p.shared, 2));
        }
        assert_eq!(got.len(), MAX_PLAYBACK_BACKLOG + 10, "the reader lost nothing");
        let slow = drain(&p.shared, 1);
        assert_eq!(slow.len(), MAX_PLAYBACK_BACKLOG, "the slow one kept the newest");
        assert_eq!(p.overrun_frames(), 10 * FRAMES_PER_PACKET as u64);
        p.shared.detach_client(1);
        p.shared.detach_client(1);
        assert!(p.has_client());
        p.set_mute(false);
        assert_eq!(drain(&p.shared, 2), [PlaybackItem::Mute(false)]);
        assert!(p.shared.pop(1).is_none(), "a detached listener gets nothing");
        p.shared.detach_client(2);
        assert!(!p.has_client());
    }
}
