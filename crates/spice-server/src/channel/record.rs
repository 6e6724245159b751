//! The record channel: audio from the client's microphone to the host, raw
//! PCM or Opus. The client chooses (`MODE`); the server offers
//! `SPICE_RECORD_CAP_OPUS`, as the C server at 48 kHz, and decodes, so the
//! host always reads PCM.

use std::time::Instant;

use spice_proto::consts::{audio, record_cap};
use spice_proto::msg::record::{Mute, RecordClientMessage, Start, Stop, Volume};
use spice_proto::{Caps, DecodeError, Frame};

use super::{BaseOutcome, ChannelBase};
use crate::audio::{OpusDecoder, RecordItem, RecordShared, CHANNELS, OPUS_RATE};

/// What the record channel needs from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordEvent<'a> {
    /// S16LE stereo samples for the host (decoded in Opus mode).
    Samples(&'a [u8]),
    /// The client is leaving.
    Disconnect,
}

#[derive(Debug)]
pub(crate) struct RecordChannel {
    pub(crate) base: ChannelBase,
    /// Link id, which identifies this channel to the shared record state.
    conn: u64,
    volume_cap: bool,
    /// The client's data mode (`SPICE_AUDIO_DATA_MODE_*`); raw until it says otherwise.
    mode: u16,
    /// Whether the client was last sent `START` (rather than `STOP`).
    started: bool,
    /// The decoder while the client sends Opus.
    decoder: Option<OpusDecoder>,
    /// The host's frames per second, as last read.
    rate: u32,
}

impl RecordChannel {
    /// Registers as the record client and sends the volume if the host set
    /// one, and `START` if recording is under way.
    pub(crate) fn start(base: ChannelBase, conn: u64, client_caps: &Caps, shared: &RecordShared) -> Self {
        let snapshot = shared.attach_client(conn);
        let mut ch = Self {
            base,
            conn,
            volume_cap: client_caps.has(record_cap::VOLUME),
            mode: audio::MODE_RAW,
            started: false,
            decoder: None,
            rate: shared.rate(),
        };
        if let Some(volume) = &snapshot.volume {
            ch.send_volume(volume);
        }
        if snapshot.volume.is_some() || snapshot.mute {
            ch.send_mute(snapshot.mute);
        }
        if snapshot.active {
            ch.send_start();
        }
        ch
    }

    /// The link id the shared state knows this channel by.
    pub(crate) fn conn(&self) -> u64 {
        self.conn
    }

    /// Handles one client message. A `DATA` packet that is not valid Opus in
    /// Opus mode closes the channel, as in the C server.
    pub(crate) fn handle<'f>(
        &'f mut self,
        frame: &'f Frame,
        now: Instant,
    ) -> Result<Option<RecordEvent<'f>>, DecodeError> {
        Ok(match RecordClientMessage::decode(frame.msg_type, &frame.body)? {
            RecordClientMessage::Base(base) => match self.base.handle_base(base, now) {
                BaseOutcome::Disconnect => Some(RecordEvent::Disconnect),
                BaseOutcome::Continue | BaseOutcome::WindowOpened | BaseOutcome::Migrated => None,
            },
            RecordClientMessage::Data { time, data } => {
                if self.mode == audio::MODE_RAW {
                    tracing::trace!(time, len = data.len(), "record data");
                    Some(RecordEvent::Samples(data))
                } else if let Some(decoder) = &mut self.decoder {
                    tracing::trace!(time, len = data.len(), "record opus data");
                    let pcm = decoder.decode(data).map_err(|e| {
                        tracing::debug!(error = %e, "record packet is not opus");
                        DecodeError::Invalid {
                            what: "record opus packet",
                            value: data.len() as u64,
                        }
                    })?;
                    Some(RecordEvent::Samples(pcm))
                } else {
                    tracing::trace!(
                        mode = self.mode,
                        len = data.len(),
                        "record data in an unsupported mode dropped"
                    );
                    None
                }
            }
            RecordClientMessage::Mode { time, mode, .. } => {
                self.decoder = None;
                if mode == audio::MODE_RAW {
                    tracing::debug!(time, "record client uses raw PCM");
                } else if mode == audio::MODE_OPUS && self.rate != OPUS_RATE {
                    // The client should not: its START said another rate.
                    tracing::debug!(
                        rate = self.rate,
                        "record client chose opus at a rate without it; data ignored"
                    );
                } else if mode == audio::MODE_OPUS {
                    tracing::debug!(time, "record client uses opus");
                    match OpusDecoder::new() {
                        Ok(decoder) => self.decoder = Some(decoder),
                        Err(e) => tracing::warn!(error = %e, "no opus decoder; record data ignored"),
                    }
                } else {
                    tracing::debug!(
                        mode,
                        "record client chose a mode other than raw; its data will be ignored"
                    );
                }
                self.mode = mode;
                None
            }
            RecordClientMessage::StartMark { time } => {
                tracing::debug!(time, "record start mark");
                None
            }
            RecordClientMessage::Unknown(t) => {
                tracing::debug!(msg_type = t, "ignoring unknown record message");
                None
            }
        })
    }

    /// Sends the control messages the host queued.
    pub(crate) fn produce(&mut self, shared: &RecordShared) {
        self.rate = shared.rate();
        while let Some(item) = shared.pop(self.conn) {
            match item {
                RecordItem::Start => self.send_start(),
                RecordItem::Stop => {
                    if self.started {
                        tracing::debug!("record stop");
                        self.started = false;
                        self.base.send(&Stop);
                    }
                }
                RecordItem::Volume(volume) => self.send_volume(&volume),
                RecordItem::Mute(mute) => self.send_mute(mute),
            }
        }
    }

    /// No longer the record client.
    pub(crate) fn detach(&self, shared: &RecordShared) {
        shared.detach_client(self.conn);
    }

    fn send_start(&mut self) {
        if self.started {
            return;
        }
        tracing::debug!(rate = self.rate, "record start");
        self.started = true;
        self.base.send(&Start {
            channels: CHANNELS,
            format: audio::FMT_S16,
            frequency: self.rate,
        });
    }

    fn send_volume(&mut self, volume: &[u16]) {
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
    use crate::audio::RecordHandle;
    use spice_proto::msg::record::{client_type, server_type};
    use spice_proto::{Deframer, HeaderKind};

    fn sent(ch: &mut RecordChannel) -> Vec<spice_proto::Frame> {
        let mut d = Deframer::new(HeaderKind::Mini, 1 << 16);
        d.push(ch.base.out.pending());
        let n = ch.base.out.len();
        ch.base.out.consume(n);
        std::iter::from_fn(|| d.next_frame().unwrap()).collect()
    }

    fn channel(r: &RecordHandle, caps: &[u32]) -> RecordChannel {
        RecordChannel::start(
            ChannelBase::new(HeaderKind::Mini, Instant::now()),
            1,
            &Caps::with(caps),
            &r.shared,
        )
    }

    fn frame(msg_type: u16, body: Vec<u8>) -> Frame {
        Frame { msg_type, body }
    }

    #[test]
    fn start_and_stop_reach_the_client_once_each() {
        let r = RecordHandle::new();
        let mut ch = channel(&r, &[record_cap::VOLUME]);
        assert!(sent(&mut ch).is_empty());
        r.start();
        r.start();
        r.set_volume(&[5]);
        r.stop();
        ch.produce(&r.shared);
        let f = sent(&mut ch);
        let types: Vec<u16> = f.iter().map(|f| f.msg_type).collect();
        assert_eq!(
            types,
            [server_type::START, server_type::VOLUME, server_type::STOP]
        );
        assert_eq!(f[0].body, [2, 0, 0, 0, 1, 0, 0x80, 0xbb, 0, 0]);
    }

    #[test]
    fn connecting_while_recording_sends_start() {
        let r = RecordHandle::new();
        r.set_mute(true);
        r.start();
        let mut ch = channel(&r, &[]);
        let types: Vec<u16> = sent(&mut ch).iter().map(|f| f.msg_type).collect();
        assert_eq!(
            types,
            [server_type::START],
            "no MUTE without the VOLUME capability"
        );
    }

    #[test]
    fn raw_data_becomes_samples_and_celt_is_ignored() {
        let r = RecordHandle::new();
        let mut ch = channel(&r, &[]);
        let now = Instant::now();
        let data = frame(client_type::DATA, vec![9, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(
            ch.handle(&frame(client_type::MODE, vec![0, 0, 0, 0, 1, 0]), now),
            Ok(None)
        );
        assert_eq!(
            ch.handle(&frame(client_type::START_MARK, vec![0, 0, 0, 0]), now),
            Ok(None)
        );
        assert_eq!(
            ch.handle(&data, now),
            Ok(Some(RecordEvent::Samples(&[1, 2, 3, 4])))
        );
        ch.handle(&frame(client_type::MODE, vec![0, 0, 0, 0, 2, 0]), now)
            .unwrap();
        assert_eq!(ch.handle(&data, now), Ok(None), "celt is not decoded");
        assert!(ch.handle(&frame(client_type::DATA, vec![1]), now).is_err());
        assert_eq!(ch.conn(), 1);
    }

    #[test]
    fn opus_data_is_decoded_and_garbage_closes_the_channel() {
        use crate::audio::opus::tests::{rms_error, sine};
        use crate::audio::{OpusEncoder, FRAMES_PER_PACKET};
        let r = RecordHandle::new();
        let mut ch = channel(&r, &[]);
        let now = Instant::now();
        ch.handle(&frame(client_type::MODE, vec![0, 0, 0, 0, 3, 0]), now)
            .unwrap();
        let mut encoder = OpusEncoder::new().unwrap();
        let pcm = sine(0..FRAMES_PER_PACKET * 20, 500.0);
        let mut decoded = Vec::new();
        for chunk in pcm.chunks(FRAMES_PER_PACKET * 4) {
            let mut body = vec![0; 4];
            body.extend(encoder.encode(chunk).unwrap());
            match ch.handle(&frame(client_type::DATA, body), now) {
                Ok(Some(RecordEvent::Samples(s))) => decoded.extend_from_slice(s),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(decoded.len(), pcm.len());
        let delay = 312 * 4;
        let (err, sig) = rms_error(&decoded[delay..], &pcm[..pcm.len() - delay]);
        assert!(err < sig / 10.0, "error {err} against signal {sig}");
        assert_eq!(
            ch.handle(&frame(client_type::DATA, vec![0, 0, 0, 0]), now),
            Ok(Some(RecordEvent::Samples(&[]))),
            "an empty packet is no audio"
        );
        assert!(ch
            .handle(&frame(client_type::DATA, vec![0, 0, 0, 0, 0xff, 0x3f]), now)
            .is_err());
        // Back to raw: bytes pass as they are.
        ch.handle(&frame(client_type::MODE, vec![0, 0, 0, 0, 1, 0]), now)
            .unwrap();
        assert_eq!(
            ch.handle(&frame(client_type::DATA, vec![0, 0, 0, 0, 1, 2, 3, 4]), now),
            Ok(Some(RecordEvent::Samples(&[1, 2, 3, 4])))
        );
    }

    #[test]
    fn another_rate_is_in_start_and_opus_is_not_decoded_then() {
        let r = RecordHandle::new();
        r.set_rate(44_100);
        r.start();
        let mut ch = channel(&r, &[]);
        let f = sent(&mut ch);
        assert_eq!(&f[0].body[6..10], &44_100u32.to_le_bytes());
        let now = Instant::now();
        ch.handle(&frame(client_type::MODE, vec![0, 0, 0, 0, 3, 0]), now)
            .unwrap();
        assert_eq!(
            ch.handle(&frame(client_type::DATA, vec![0, 0, 0, 0, 0xfc]), now),
            Ok(None),
            "no decoder at 44.1 kHz"
        );
    }
}
