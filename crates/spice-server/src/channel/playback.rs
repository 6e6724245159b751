//! The playback channel: audio from the host to the client, raw PCM.

use std::time::Instant;

use spice_proto::consts::{audio, playback_cap};
use spice_proto::msg::playback::{Data, Mode, Mute, PlaybackClientMessage, Start, Stop, Volume};
use spice_proto::{Caps, DecodeError, Frame};

use super::{BaseOutcome, ChannelBase};
use crate::audio::{PlaybackItem, PlaybackShared, CHANNELS, PLAYBACK_RATE};

/// Audio bytes queued on the socket beyond which no more packets are taken
/// from the host's backlog; the rest wait there, bounded.
pub(crate) const MAX_QUEUED_AUDIO_BYTES: usize = 8 * 1024;

/// What the playback channel needs from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlaybackEvent {
    /// The client is leaving.
    Disconnect,
}

#[derive(Debug)]
pub(crate) struct PlaybackChannel {
    pub(crate) base: ChannelBase,
    /// Link id, which identifies this channel to the shared playback state.
    conn: u64,
    volume_cap: bool,
    /// Whether the client was last sent `START` (rather than `STOP`).
    started: bool,
}

impl PlaybackChannel {
    /// Registers as the playback client and sends `MODE` (raw), the volume if
    /// the host set one, and `START` if playback is under way.
    pub(crate) fn start(
        base: ChannelBase,
        conn: u64,
        client_caps: &Caps,
        shared: &PlaybackShared,
        mm_time: u32,
    ) -> Self {
        let snapshot = shared.attach_client(conn);
        let mut ch = Self {
            base,
            conn,
            volume_cap: client_caps.has(playback_cap::VOLUME),
            started: false,
        };
        ch.base.send(&Mode {
            time: mm_time,
            mode: audio::MODE_RAW,
            data: &[],
        });
        if let Some(volume) = &snapshot.volume {
            ch.send_volume(volume);
        }
        if snapshot.volume.is_some() || snapshot.mute {
            ch.send_mute(snapshot.mute);
        }
        if snapshot.active {
            ch.send_start(mm_time);
        }
        ch
    }

    pub(crate) fn handle(
        &mut self,
        frame: &Frame,
        now: Instant,
    ) -> Result<Option<PlaybackEvent>, DecodeError> {
        Ok(
            match PlaybackClientMessage::decode(frame.msg_type, &frame.body)? {
                PlaybackClientMessage::Base(base) => match self.base.handle_base(base, now) {
                    BaseOutcome::Disconnect => Some(PlaybackEvent::Disconnect),
                    BaseOutcome::Continue | BaseOutcome::WindowOpened => None,
                },
                PlaybackClientMessage::Unknown(t) => {
                    tracing::debug!(msg_type = t, "ignoring unknown playback message");
                    None
                }
            },
        )
    }

    /// Sends what the host queued, while the socket keeps up.
    pub(crate) fn produce(&mut self, shared: &PlaybackShared, mm_time: u32) {
        while self.base.out.len() < MAX_QUEUED_AUDIO_BYTES {
            let Some(item) = shared.pop(self.conn) else {
                break;
            };
            match item {
                PlaybackItem::Start => self.send_start(mm_time),
                PlaybackItem::Data(data) => {
                    if self.started {
                        tracing::trace!(time = mm_time, len = data.len(), "playback data");
                        self.base.send(&Data {
                            time: mm_time,
                            data: &data,
                        });
                    }
                }
                PlaybackItem::Stop => {
                    if self.started {
                        tracing::debug!("playback stop");
                        self.started = false;
                        self.base.send(&Stop);
                    }
                }
                PlaybackItem::Volume(volume) => self.send_volume(&volume),
                PlaybackItem::Mute(mute) => self.send_mute(mute),
            }
        }
    }

    /// No longer the playback client.
    pub(crate) fn detach(&self, shared: &PlaybackShared) {
        shared.detach_client(self.conn);
    }

    fn send_start(&mut self, mm_time: u32) {
        if self.started {
            return;
        }
        tracing::debug!(rate = PLAYBACK_RATE, "playback start");
        self.started = true;
        self.base.send(&Start {
            channels: CHANNELS,
            format: audio::FMT_S16,
            frequency: PLAYBACK_RATE,
            time: mm_time,
        });
    }

    fn send_volume(&mut self, volume: &[u16]) {
        // spice-gtk warns about a volume message with no channels; the C server skips it too.
        if self.volume_cap && !volume.is_empty() {
            self.base.send(&Volume { volume });
        }
    }

    fn send_mute(&mut self, mute: bool) {
        if self.volume_cap {
            self.base.send(&Mute { mute });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{PlaybackHandle, FRAMES_PER_PACKET, MAX_PLAYBACK_BACKLOG, PACKET_BYTES};
    use spice_proto::msg::playback::server_type;
    use spice_proto::{Deframer, HeaderKind};

    fn frames(ch: &mut PlaybackChannel) -> Vec<spice_proto::Frame> {
        let mut d = Deframer::new(HeaderKind::Mini, 1 << 20);
        d.push(ch.base.out.pending());
        let n = ch.base.out.len();
        ch.base.out.consume(n);
        std::iter::from_fn(|| d.next_frame().unwrap()).collect()
    }

    fn types(frames: &[spice_proto::Frame]) -> Vec<u16> {
        frames.iter().map(|f| f.msg_type).collect()
    }

    fn channel(p: &PlaybackHandle, conn: u64, caps: &[u32]) -> PlaybackChannel {
        PlaybackChannel::start(
            ChannelBase::new(HeaderKind::Mini, Instant::now()),
            conn,
            &Caps::with(caps),
            &p.shared,
            1000,
        )
    }

    #[test]
    fn idle_connect_sends_mode_only_then_start_data_stop() {
        let p = PlaybackHandle::new();
        let mut ch = channel(&p, 1, &[playback_cap::VOLUME]);
        let f = frames(&mut ch);
        assert_eq!(types(&f), [server_type::MODE]);
        assert_eq!(f[0].body, [0xe8, 3, 0, 0, 1, 0]);

        p.start();
        p.write(&[[0x102, -2]; FRAMES_PER_PACKET * 2]);
        p.stop();
        ch.produce(&p.shared, 2000);
        let f = frames(&mut ch);
        assert_eq!(
            types(&f),
            [
                server_type::START,
                server_type::DATA,
                server_type::DATA,
                server_type::STOP
            ]
        );
        assert_eq!(f[0].body, [2, 0, 0, 0, 1, 0, 0x80, 0xbb, 0, 0, 0xd0, 7, 0, 0]);
        assert_eq!(f[1].body.len(), 4 + PACKET_BYTES);
        assert_eq!(&f[1].body[..8], &[0xd0, 7, 0, 0, 2, 1, 0xfe, 0xff]);
    }

    #[test]
    fn connecting_during_playback_gets_volume_mute_and_start() {
        let p = PlaybackHandle::new();
        p.set_volume(&[0x8000, 0x8000]);
        p.start();
        let mut ch = channel(&p, 1, &[playback_cap::VOLUME]);
        let f = frames(&mut ch);
        assert_eq!(
            types(&f),
            [
                server_type::MODE,
                server_type::VOLUME,
                server_type::MUTE,
                server_type::START
            ]
        );
        assert_eq!(f[1].body, [2, 0, 0x80, 0, 0x80]);
        assert_eq!(f[2].body, [0]);

        // Without the VOLUME capability, volume and mute are not sent.
        let mut plain = channel(&p, 2, &[]);
        assert_eq!(
            types(&frames(&mut plain)),
            [server_type::MODE, server_type::START]
        );
        p.set_mute(true);
        plain.produce(&p.shared, 0);
        assert!(frames(&mut plain).is_empty());
    }

    #[test]
    fn a_slow_socket_leaves_the_backlog_with_the_host_bounded() {
        let p = PlaybackHandle::new();
        let mut ch = channel(&p, 1, &[]);
        frames(&mut ch);
        p.start();
        for _ in 0..200 {
            p.write(&[[1, 1]; FRAMES_PER_PACKET]);
            // The socket never drains: output stops at the limit.
            ch.produce(&p.shared, 0);
            assert!(ch.base.out.len() < MAX_QUEUED_AUDIO_BYTES + PACKET_BYTES + 16);
        }
        assert_eq!(
            p.overrun_frames(),
            (200 - MAX_PLAYBACK_BACKLOG as u64 - 5) * FRAMES_PER_PACKET as u64
        );
        // Once the socket drains, the backlog follows.
        let f = frames(&mut ch);
        assert_eq!(f.len(), 6, "START and the packets that fit");
        ch.produce(&p.shared, 0);
        let f = frames(&mut ch);
        assert!(f.len() >= 4);
        for _ in 0..20 {
            ch.produce(&p.shared, 0);
            frames(&mut ch);
        }
        assert!(p.shared.pop(1).is_none());
    }

    #[test]
    fn disconnect_message_and_unknown_types() {
        let p = PlaybackHandle::new();
        let mut ch = channel(&p, 1, &[]);
        let now = Instant::now();
        assert_eq!(
            ch.handle(
                &Frame {
                    msg_type: 150,
                    body: vec![]
                },
                now
            ),
            Ok(None)
        );
        let mut body = Vec::new();
        spice_proto::wire::Writer::new(&mut body).u64(0).u32(0);
        assert_eq!(
            ch.handle(&Frame { msg_type: 6, body }, now),
            Ok(Some(PlaybackEvent::Disconnect))
        );
        ch.detach(&p.shared);
        assert!(!p.has_client());
    }
}
