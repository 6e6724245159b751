//! The record channel and the host's record handle: [`record_sequence`].

use std::collections::VecDeque;
use std::time::Instant;

use spice_proto::consts::{audio, record_cap};
use spice_proto::msg::record::{server_type, RecordClientMessage, MAX_RECORD_DATA};
use spice_proto::{Caps, Frame, HeaderKind};

use super::{le16, le32, ClientView, Cursor, Grammar, Step};
use crate::audio::opus::MAX_DECODED_FRAMES;
use crate::audio::{RecordHandle, StereoFrame, CHANNELS, RECORD_BUFFER_FRAMES, RECORD_RATE};
use crate::channel::record::{RecordChannel, RecordEvent};
use crate::channel::ChannelBase;

/// Bits of the configuration byte of [`record_sequence`].
pub mod config {
    /// Mini headers (else full ones).
    pub const MINI_HEADER: u8 = 1 << 0;
    /// The client has `RECORD_CAP_VOLUME`.
    pub const VOLUME_CAP: u8 = 1 << 1;
    /// The host started recording before the client connected.
    pub const ACTIVE: u8 = 1 << 2;
    /// The host set a volume before the client connected.
    pub const VOLUME: u8 = 1 << 3;
    /// The host muted before the client connected.
    pub const MUTE: u8 = 1 << 4;
}

/// Host actions of [`record_sequence`] (`0x80 | action`). After each, the
/// channel sends what the host asked for, as the server does when woken.
pub mod action {
    /// `RecordHandle::start`.
    pub const START: u8 = 0;
    /// `RecordHandle::stop`.
    pub const STOP: u8 = 1;
    /// `RecordHandle::set_volume`: one byte follows, the number of channels
    /// (low two bits), then a byte per channel for its level.
    pub const VOLUME: u8 = 2;
    /// `RecordHandle::set_mute`: one byte follows, muted if odd.
    pub const MUTE: u8 = 3;
    /// `RecordHandle::read`: one byte follows, 64 frames per unit are read.
    pub const READ: u8 = 4;
    /// The client's socket takes everything queued.
    pub const DRAIN: u8 = 5;
    /// The channel closes if open, else the client links a new one.
    pub const TOGGLE_CHANNEL: u8 = 6;
    /// The client sends a `DATA` message of `256 * n` frames (one byte `n`
    /// follows; at most what a message holds), so that inputs of a few
    /// kilobytes can fill the host's buffer.
    pub const BULK_DATA: u8 = 7;
}

/// As the link stage's `max_client_message(Record)`.
const MAX_RECORD_MESSAGE: usize = MAX_RECORD_DATA + 64;

/// The record channel and the host's [`RecordHandle`] driven by client
/// messages and host calls (configuration byte: [`config`]; host actions:
/// [`action`]).
///
/// Invariants: the client is sent only `START` (2 channels, S16, 48 kHz)
/// and `STOP`, alternately and starting with `START`, so that after each
/// host call it has been told exactly whether the host records; and
/// `VOLUME` (never empty) and `MUTE` only with the volume capability, with
/// what the host set. Captured samples are the `DATA` bytes after the
/// timestamp in raw mode, whole frames libopus decoded (at most 120 ms per
/// packet) in Opus mode, where a packet it refuses closes the channel, and
/// nothing in other modes; the host keeps them only while
/// it records (whole frames, and at most [`RECORD_BUFFER_FRAMES`], the
/// oldest dropped and counted) and reads them back unchanged and in order.
pub fn record_sequence(data: &[u8]) {
    let Some((&config, steps)) = data.split_first() else {
        return;
    };
    let handle = RecordHandle::new();
    if config & config::ACTIVE != 0 {
        handle.start();
    }
    let volume = (config & config::VOLUME != 0).then(|| vec![0x1234, 0x5678]);
    if let Some(levels) = &volume {
        handle.set_volume(levels);
    }
    let mute = config & config::MUTE != 0;
    if mute {
        handle.set_mute(true);
    }
    let start = Instant::now();
    let mut run = Record {
        config,
        header: if config & config::MINI_HEADER != 0 {
            HeaderKind::Mini
        } else {
            HeaderKind::Full
        },
        now: start,
        handle,
        channel: None,
        links: 0,
        ring: VecDeque::new(),
        overrun: 0,
        volume,
        mute,
        start,
        bulk_counter: 0,
    };
    run.open();
    let mut cursor = Cursor::new(steps);
    while let Some(step) = cursor.step(Grammar::Messages) {
        match step {
            Step::Client { msg_type, body } => run.client_message(msg_type, body),
            Step::Wait(d) => run.now += d,
            Step::Host(a) => run.host(a, &mut cursor),
            Step::AgentToken(_) | Step::AgentStart(_) => {}
        }
        run.check_output();
        assert!(run.handle.available() <= RECORD_BUFFER_FRAMES);
        assert_eq!(run.handle.available(), run.ring.len(), "frames kept");
        assert_eq!(run.handle.overrun_frames(), run.overrun, "frames dropped");
    }
}

#[derive(Debug)]
struct Open {
    channel: RecordChannel,
    view: ClientView,
    /// The client was last sent `START` (not `STOP`).
    told_started: bool,
    /// Volume and mute messages the host's calls should have sent.
    controls: VecDeque<(u16, Vec<u8>)>,
    /// The client's data mode, as it last said.
    mode: u16,
}

#[derive(Debug)]
struct Record {
    config: u8,
    header: HeaderKind,
    now: Instant,
    handle: RecordHandle,
    channel: Option<Open>,
    links: u64,
    /// What the host should read: the frames kept, oldest first.
    ring: VecDeque<StereoFrame>,
    overrun: u64,
    /// The volume and mute the host last set, which a new channel is told.
    volume: Option<Vec<u16>>,
    mute: bool,
    /// When the oracle started, for the client's time stamps.
    start: Instant,
    /// The last sample of [`action::BULK_DATA`], so every frame differs.
    bulk_counter: i16,
}

impl Record {
    fn volume_cap(&self) -> bool {
        self.config & config::VOLUME_CAP != 0
    }

    /// A record channel links (`RecordChannel::start`).
    fn open(&mut self) {
        self.links += 1;
        let caps = if self.volume_cap() {
            Caps::with(&[record_cap::VOLUME])
        } else {
            Caps::new()
        };
        let base = ChannelBase::new(self.header, self.now);
        let channel = RecordChannel::start(base, self.links, &caps, &self.handle.shared);
        let mut controls = VecDeque::new();
        if self.volume_cap() {
            if let Some(levels) = self.volume.as_deref().filter(|l| !l.is_empty()) {
                controls.push_back((server_type::VOLUME, volume_body(levels)));
            }
            if self.volume.is_some() || self.mute {
                controls.push_back((server_type::MUTE, vec![u8::from(self.mute)]));
            }
        }
        self.channel = Some(Open {
            channel,
            view: ClientView::new(self.header),
            told_started: false,
            controls,
            mode: audio::MODE_RAW,
        });
        self.check_output();
    }

    fn close(&mut self) {
        self.check_output();
        if let Some(open) = self.channel.take() {
            open.channel.detach(&self.handle.shared);
        }
        assert!(!self.handle.has_client());
    }

    fn client_message(&mut self, msg_type: u16, body: &[u8]) {
        let Some(open) = &mut self.channel else {
            return;
        };
        if body.len() > MAX_RECORD_MESSAGE {
            return self.close();
        }
        let frame = Frame {
            msg_type,
            body: body.to_vec(),
        };
        let decoded = RecordClientMessage::decode(msg_type, body);
        let conn = open.channel.conn();
        let event = match open.channel.handle(&frame, self.now) {
            Ok(event) => event,
            Err(e) => {
                if !matches!(decoded, Ok(RecordClientMessage::Data { .. })) || open.mode != audio::MODE_OPUS {
                    assert_eq!(decoded, Err(e), "the channel and the decoder disagree");
                }
                // Else a packet libopus refuses, which closes the channel as in C.
                return self.close();
            }
        };
        match (
            decoded.expect("the channel took a message the decoder refuses"),
            event,
        ) {
            (RecordClientMessage::Data { data, .. }, Some(RecordEvent::Samples(samples))) => {
                if open.mode == audio::MODE_OPUS {
                    assert_eq!(samples.len() % 4, 0, "opus decodes to whole frames");
                    assert!(
                        samples.len() <= MAX_DECODED_FRAMES * 4,
                        "at most 120 ms per packet"
                    );
                } else {
                    assert_eq!(open.mode, audio::MODE_RAW, "samples in mode {}", open.mode);
                    assert_eq!(samples, data);
                    assert_eq!(samples, &body[4..], "samples are what follows the time stamp");
                }
                // As the server's dispatch: to the host's record buffer.
                let kept = self.handle.shared.push_pcm(conn, samples);
                let frames: Vec<StereoFrame> = samples
                    .chunks_exact(4)
                    .map(|b| [i16::from_le_bytes([b[0], b[1]]), i16::from_le_bytes([b[2], b[3]])])
                    .collect();
                if self.handle.is_active() {
                    assert_eq!(kept, frames.len(), "frames kept while recording");
                    self.ring.extend(frames);
                    let excess = self.ring.len().saturating_sub(RECORD_BUFFER_FRAMES);
                    self.ring.drain(..excess);
                    self.overrun += excess as u64;
                } else {
                    assert_eq!(kept, 0, "frames kept while not recording");
                }
            }
            (RecordClientMessage::Data { .. }, None) => {
                assert!(
                    open.mode != audio::MODE_RAW && open.mode != audio::MODE_OPUS,
                    "samples dropped in mode {}",
                    open.mode
                );
            }
            (RecordClientMessage::Mode { mode, .. }, None) => open.mode = mode,
            (
                RecordClientMessage::Base(spice_proto::msg::base::BaseClientMessage::Disconnecting {
                    ..
                }),
                event,
            ) => {
                assert_eq!(event, Some(RecordEvent::Disconnect));
                self.close();
            }
            (
                RecordClientMessage::Base(_)
                | RecordClientMessage::StartMark { .. }
                | RecordClientMessage::Unknown(_),
                None,
            ) => {}
            (message, event) => panic!("{message:?} gave {event:?}"),
        }
    }

    fn host(&mut self, a: u8, cursor: &mut Cursor<'_>) {
        let cap = self.volume_cap();
        let was_active = self.handle.is_active();
        let controls = self.channel.as_mut().map(|open| &mut open.controls);
        match a {
            action::START => self.handle.start(),
            action::STOP => self.handle.stop(),
            action::VOLUME => {
                let n = cursor.byte().unwrap_or(0) & 3;
                let levels: Vec<u16> = cursor
                    .bytes(usize::from(n))
                    .iter()
                    .map(|&b| u16::from(b) * 257)
                    .collect();
                self.handle.set_volume(&levels);
                if let (true, false, Some(controls)) = (cap, levels.is_empty(), controls) {
                    controls.push_back((server_type::VOLUME, volume_body(&levels)));
                }
                self.volume = Some(levels);
            }
            action::MUTE => {
                let mute = cursor.byte().unwrap_or(0) & 1 != 0;
                self.handle.set_mute(mute);
                if let (true, Some(controls)) = (cap, controls) {
                    controls.push_back((server_type::MUTE, vec![u8::from(mute)]));
                }
                self.mute = mute;
            }
            action::READ => {
                let n = usize::from(cursor.byte().unwrap_or(0)) * 64;
                let mut out = vec![[0i16; 2]; n];
                let read = self.handle.read(&mut out);
                let expected: Vec<StereoFrame> = self.ring.drain(..n.min(self.ring.len())).collect();
                assert_eq!(&out[..read], expected.as_slice(), "frames read");
            }
            action::DRAIN => {
                self.check_output();
                if let Some(open) = &mut self.channel {
                    open.view.drain(&mut open.channel.base.out);
                }
            }
            action::TOGGLE_CHANNEL => match self.channel {
                Some(_) => self.close(),
                None => self.open(),
            },
            _ => {}
        }
        if a == action::BULK_DATA {
            let n = usize::from(cursor.byte().unwrap_or(0)) * 256;
            let frames = n.min(MAX_RECORD_DATA / 4);
            let mut body = self
                .now
                .saturating_duration_since(self.start)
                .as_millis()
                .to_le_bytes()[..4]
                .to_vec();
            for _ in 0..frames {
                self.bulk_counter = self.bulk_counter.wrapping_add(1);
                body.extend(self.bulk_counter.to_le_bytes());
                body.extend(self.bulk_counter.wrapping_neg().to_le_bytes());
            }
            self.client_message(spice_proto::msg::record::client_type::DATA, &body);
        }
        // The server's wakeup: the channel sends what the host asked for.
        if let Some(open) = &mut self.channel {
            open.channel.produce(&self.handle.shared);
        }
        // Starting anew forgets what was captured before.
        if a == action::START && !was_active {
            self.ring.clear();
        }
    }

    fn check_output(&mut self) {
        let active = self.handle.is_active();
        let Some(open) = &mut self.channel else {
            return;
        };
        for frame in open.view.frames(&open.channel.base.out) {
            let body = frame.body.as_slice();
            match frame.msg_type {
                server_type::START => {
                    assert!(!open.told_started, "START twice");
                    open.told_started = true;
                    assert_eq!(body.len(), 10);
                    assert_eq!(le32(body, 0), CHANNELS);
                    assert_eq!(le16(body, 4), audio::FMT_S16);
                    assert_eq!(le32(body, 6), RECORD_RATE);
                }
                server_type::STOP => {
                    assert!(open.told_started, "STOP without START");
                    open.told_started = false;
                }
                server_type::VOLUME | server_type::MUTE => {
                    assert!(
                        self.config & config::VOLUME_CAP != 0,
                        "volume without the capability"
                    );
                    let expected = open
                        .controls
                        .pop_front()
                        .expect("a volume or mute the host did not set");
                    assert_eq!((frame.msg_type, body), (expected.0, expected.1.as_slice()));
                }
                other => panic!("unexpected record channel message {other}"),
            }
        }
        assert!(
            open.controls.is_empty(),
            "volume or mute not sent: {:?}",
            open.controls
        );
        assert_eq!(
            open.told_started, active,
            "the client told recording is {}",
            open.told_started
        );
    }
}

/// A `VOLUME` body: the number of levels, then each (little endian).
fn volume_body(levels: &[u16]) -> Vec<u8> {
    let mut body = vec![levels.len() as u8];
    body.extend(levels.iter().flat_map(|l| l.to_le_bytes()));
    body
}
