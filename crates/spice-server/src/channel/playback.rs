//! The playback channel: audio from the host to the client, raw PCM or Opus.
//!
//! The mode is chosen once per connection, as in the C server: Opus when the
//! server's playback compression is on and the client has
//! `SPICE_PLAYBACK_CAP_OPUS`, raw PCM otherwise. Each packet of the host's
//! ([`crate::audio::FRAMES_PER_PACKET`] frames) becomes one Opus packet.

use std::time::Instant;

use spice_proto::consts::{audio, playback_cap};
use spice_proto::msg::playback::{Data, Mode, Mute, PlaybackClientMessage, Start, Stop, Volume};
use spice_proto::{Caps, DecodeError, Frame};

use super::{BaseOutcome, ChannelBase};
use crate::audio::{OpusEncoder, PlaybackItem, PlaybackShared, CHANNELS, OPUS_RATE};

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
    /// Whether the client decodes Opus.
    opus_cap: bool,
    /// The server's playback compression setting.
    compression: bool,
    /// The host's frames per second, as last read.
    rate: u32,
    /// Whether the client was last sent `START` (rather than `STOP`).
    started: bool,
    /// The Opus encoder in Opus mode; `None`: raw PCM.
    encoder: Option<OpusEncoder>,
}

impl PlaybackChannel {
    /// Registers as the playback client and sends `MODE` (Opus if
    /// `compression` is on and the client decodes it, else raw), the volume
    /// if the host set one, and `START` if playback is under way.
    pub(crate) fn start(
        base: ChannelBase,
        conn: u64,
        client_caps: &Caps,
        shared: &PlaybackShared,
        mm_time: u32,
        compression: bool,
    ) -> Self {
        let snapshot = shared.attach_client(conn);
        let mut ch = Self {
            base,
            conn,
            volume_cap: client_caps.has(playback_cap::VOLUME),
            opus_cap: client_caps.has(playback_cap::OPUS),
            compression,
            rate: shared.rate(),
            started: false,
            encoder: None,
        };
        ch.choose_mode(mm_time);
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

    /// Playback compression changed: a client whose mode changes is sent
    /// `MODE` now (as the C server's `snd_set_playback_compression`).
    pub(crate) fn set_compression(&mut self, compression: bool, mm_time: u32) {
        self.compression = compression;
        if self.wants_opus() != self.encoder.is_some() {
            self.choose_mode(mm_time);
        }
    }

    /// Opus while compression is on, the client decodes it and the host
    /// plays at the Opus rate (as the C server's `snd_desired_audio_mode`).
    fn wants_opus(&self) -> bool {
        self.compression && self.opus_cap && self.rate == OPUS_RATE
    }

    /// Opus if [`Self::wants_opus`] (a fresh encoder), else raw; tells the client.
    fn choose_mode(&mut self, mm_time: u32) {
        self.encoder = if self.wants_opus() {
            OpusEncoder::new()
                .inspect_err(|e| tracing::warn!(error = %e, "no opus encoder; playback goes raw"))
                .ok()
        } else {
            None
        };
        let mode = if self.encoder.is_some() {
            audio::MODE_OPUS
        } else {
            audio::MODE_RAW
        };
        tracing::debug!(mode, "playback mode");
        self.base.send(&Mode {
            time: mm_time,
            mode,
            data: &[],
        });
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
                    BaseOutcome::Continue | BaseOutcome::WindowOpened | BaseOutcome::Migrated => None,
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
        let rate = shared.rate();
        if rate != self.rate {
            // The host changed its rate: the next START says so, and the
            // mode follows (Opus only at 48 kHz).
            self.rate = rate;
            if self.wants_opus() != self.encoder.is_some() {
                self.choose_mode(mm_time);
            }
        }
        while self.base.out.len() < MAX_QUEUED_AUDIO_BYTES {
            let Some(item) = shared.pop(self.conn) else {
                break;
            };
            match item {
                PlaybackItem::Start => self.send_start(mm_time),
                PlaybackItem::Data(data) => {
                    if self.started {
                        self.send_data(&data, mm_time);
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
        tracing::debug!(rate = self.rate, "playback start");
        self.started = true;
        self.base.send(&Start {
            channels: CHANNELS,
            format: audio::FMT_S16,
            frequency: self.rate,
            time: mm_time,
        });
    }

    /// One packet of the host's PCM, encoded in Opus mode. A packet libopus
    /// cannot encode (it never refuses a whole packet) is dropped.
    fn send_data(&mut self, pcm: &[u8], mm_time: u32) {
        let encoded;
        let data = match &mut self.encoder {
            None => pcm,
            Some(encoder) => match encoder.encode(pcm) {
                Ok(packet) => {
                    encoded = packet;
                    &encoded
                }
                Err(e) => {
                    tracing::warn!(error = %e, "playback packet dropped");
                    return;
                }
            },
        };
        tracing::trace!(time = mm_time, len = data.len(), "playback data");
        self.base.send(&Data { time: mm_time, data });
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
        channel_with(p, conn, caps, true)
    }

    fn channel_with(p: &PlaybackHandle, conn: u64, caps: &[u32], compression: bool) -> PlaybackChannel {
        PlaybackChannel::start(
            ChannelBase::new(HeaderKind::Mini, Instant::now()),
            conn,
            &Caps::with(caps),
            &p.shared,
            1000,
            compression,
        )
    }

    fn mode(f: &spice_proto::Frame) -> u16 {
        assert_eq!(f.msg_type, server_type::MODE);
        u16::from_le_bytes([f.body[4], f.body[5]])
    }

    #[test]
    fn opus_only_when_compression_is_on_and_the_client_decodes_it() {
        let p = PlaybackHandle::new();
        let cases = [
            (&[playback_cap::OPUS][..], true, audio::MODE_OPUS),
            (&[playback_cap::VOLUME][..], true, audio::MODE_RAW),
            (&[playback_cap::OPUS][..], false, audio::MODE_RAW),
        ];
        for (conn, (caps, compression, expected)) in (1..).zip(cases) {
            let mut ch = channel_with(&p, conn, caps, compression);
            let f = frames(&mut ch);
            assert_eq!(mode(&f[0]), expected, "caps {caps:?}, compression {compression}");
        }
    }

    #[test]
    fn a_compression_change_sends_mode_only_when_the_mode_changes() {
        let p = PlaybackHandle::new();
        let mut opus = channel(&p, 1, &[playback_cap::OPUS]);
        assert_eq!(mode(&frames(&mut opus)[0]), audio::MODE_OPUS);
        opus.set_compression(true, 0);
        assert!(frames(&mut opus).is_empty(), "no change, no MODE");
        opus.set_compression(false, 0);
        assert_eq!(mode(&frames(&mut opus)[0]), audio::MODE_RAW);
        p.start();
        p.write(&[[1, 2]; FRAMES_PER_PACKET]);
        opus.produce(&p.shared, 0);
        let f = frames(&mut opus);
        assert_eq!(f[1].body.len(), 4 + PACKET_BYTES, "raw data after the change");
        opus.set_compression(true, 0);
        assert_eq!(mode(&frames(&mut opus)[0]), audio::MODE_OPUS);

        let mut raw = channel(&p, 2, &[]);
        frames(&mut raw);
        raw.set_compression(false, 0);
        raw.set_compression(true, 0);
        assert!(frames(&mut raw).is_empty(), "a client without Opus stays raw");
    }

    #[test]
    fn another_rate_goes_raw_and_start_says_it() {
        let p = PlaybackHandle::new();
        p.set_rate(44_100);
        let mut ch = channel(&p, 1, &[playback_cap::OPUS]);
        assert_eq!(mode(&frames(&mut ch)[0]), audio::MODE_RAW, "Opus only at 48 kHz");
        p.start();
        ch.produce(&p.shared, 0);
        let f = frames(&mut ch);
        assert_eq!(f[0].msg_type, server_type::START);
        assert_eq!(&f[0].body[6..10], &44_100u32.to_le_bytes());
        // Back at 48 kHz the mode follows.
        p.set_rate(48_000);
        ch.produce(&p.shared, 0);
        assert_eq!(mode(&frames(&mut ch)[0]), audio::MODE_OPUS);
    }

    #[test]
    fn opus_packets_decode_to_the_hosts_sine() {
        use crate::audio::opus::tests::{rms_error, sine};
        let p = PlaybackHandle::new();
        let mut ch = channel(&p, 1, &[playback_cap::OPUS]);
        assert_eq!(mode(&frames(&mut ch)[0]), audio::MODE_OPUS);
        p.start();
        let pcm = sine(0..FRAMES_PER_PACKET * 30, 1000.0);
        let written: Vec<[i16; 2]> = pcm
            .chunks_exact(4)
            .map(|b| [i16::from_le_bytes([b[0], b[1]]), i16::from_le_bytes([b[2], b[3]])])
            .collect();
        let mut decoder = crate::audio::OpusDecoder::new().unwrap();
        let mut decoded = Vec::new();
        for chunk in written.chunks(FRAMES_PER_PACKET) {
            p.write(chunk);
            ch.produce(&p.shared, 0);
            for f in frames(&mut ch) {
                if f.msg_type == server_type::DATA {
                    let packet = &f.body[4..];
                    assert!(packet.len() < PACKET_BYTES / 4, "{} bytes", packet.len());
                    decoded.extend_from_slice(decoder.decode(packet).unwrap());
                }
            }
        }
        assert_eq!(decoded.len(), pcm.len(), "one packet per 480 frames");
        assert_ne!(decoded, pcm, "lossy, so not raw");
        let delay = 312 * 4;
        let (err, sig) = rms_error(&decoded[delay..], &pcm[..pcm.len() - delay]);
        assert!(err < sig / 10.0, "error {err} against signal {sig}");
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
