//! The display channel driven by hand, with time passed in: the host's
//! frames, the client's link and the produce rounds all step on one
//! simulated clock, so what depends on timing is tested deterministically.

use std::time::{Duration, Instant};

use spice_proto::msg::base::client_type as base_client;
use spice_proto::msg::display::{client_type, server_type};
use spice_proto::wire::Writer;
use spice_proto::{Caps, Deframer, Frame, HeaderKind};

use super::*;
use crate::display::{DisplayHandle, Frame as HostFrame};

/// One step of the simulated clock.
const STEP: Duration = Duration::from_millis(10);

/// The client's end of the channel: a link that carries at most
/// `bytes_per_step` each step, and what arrived over it.
struct SlowClient {
    deframer: Deframer,
    bytes_per_step: usize,
    received: Vec<u16>,
    since_ack: u32,
}

impl SlowClient {
    fn new(bytes_per_step: usize) -> Self {
        Self {
            deframer: Deframer::new(HeaderKind::Mini, 64 << 20),
            bytes_per_step,
            received: Vec::new(),
            since_ack: 0,
        }
    }

    /// Carries one step's bytes from the channel's queue and acknowledges
    /// every window of messages, as spice-gtk does.
    fn step(&mut self, ch: &mut DisplayChannel, now: Instant) {
        let n = ch.base.out.len().min(self.bytes_per_step);
        self.deframer.push(&ch.base.out.pending()[..n]);
        ch.base.out.consume(n);
        while let Some(frame) = self.deframer.next_frame().expect("well-formed server messages") {
            if frame.msg_type == spice_proto::msg::base::server_type::SET_ACK {
                let generation = u32::from_le_bytes(frame.body[..4].try_into().unwrap());
                send(ch, base_client::ACK_SYNC, &generation.to_le_bytes(), now);
            }
            self.received.push(frame.msg_type);
            self.since_ack += 1;
            if self.since_ack == crate::channel::ACK_WINDOW {
                self.since_ack = 0;
                send(ch, base_client::ACK, &[], now);
            }
        }
    }

    fn got(&self, msg_type: u16) -> bool {
        self.received.contains(&msg_type)
    }
}

fn send(ch: &mut DisplayChannel, msg_type: u16, body: &[u8], now: Instant) {
    let frame = Frame {
        msg_type,
        body: body.to_vec(),
    };
    ch.handle(&frame, now).expect("a valid client message");
}

/// A channel of `display` whose client has sent DISPLAY_INIT.
fn initialized_channel(display: &DisplayHandle, now: Instant) -> DisplayChannel {
    let mut ch = DisplayChannel::start(
        ChannelBase::new(HeaderKind::Mini, now),
        1,
        0,
        &Caps::default(),
        &display.shared,
    );
    let mut init = Vec::new();
    Writer::new(&mut init).u8(1).u64(1 << 20).u8(1).i32(0);
    send(&mut ch, client_type::INIT, &init, now);
    ch
}

/// Fills `area` of a `width`-pixel picture with noise, which no lossless
/// coder shrinks much.
fn noise(pixels: &mut [u8], width: u32, area: Rect, seed: &mut u64) {
    for y in area.y..area.y + area.height {
        let row = (y * width + area.x) as usize * 4;
        for px in pixels[row..row + area.width as usize * 4].chunks_exact_mut(8) {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            px.copy_from_slice(&seed.to_le_bytes());
        }
    }
}

/// A large area that changes every frame, on a link too slow to carry its
/// lossless frames: a frame of it is still being sent when the next one
/// comes, so no frame ever ends. The detector must still be asked while
/// the frame is in progress, or the area, a full-screen video in a guest,
/// never becomes a stream (it went as lossless images for good).
#[test]
fn a_large_video_becomes_a_stream_while_its_lossless_frame_is_still_going_out() {
    let (width, height) = (1024u32, 768u32);
    let area = Rect::new(96, 96, 832, 576);
    let mut pixels = vec![0x20u8; (width * height * 4) as usize];
    let display = DisplayHandle::new();
    let t0 = Instant::now();
    fn frame(pixels: &[u8], width: u32, height: u32) -> HostFrame<'_> {
        HostFrame {
            width,
            height,
            stride: width as usize * 4,
            data: pixels,
        }
    }
    display
        .update_at(
            &frame(&pixels, width, height),
            &[Rect::new(0, 0, width, height)],
            t0,
        )
        .unwrap();
    let mut ch = initialized_channel(&display, t0);
    let settings = DisplaySettings {
        streaming: StreamingVideo::All,
        ..DisplaySettings::default()
    };
    // The first picture, flat, goes out whole.
    let mut client = SlowClient::new(usize::MAX);
    ch.produce(&display.shared, settings, t0, true);
    client.step(&mut ch, t0);
    assert!(client.got(server_type::SURFACE_CREATE) && ch.base.out.is_empty());
    // Then 4.8 MB/s: a noise frame of the area (1.9 MB raw) takes far
    // longer to send than the 40 ms until the next.
    client.bytes_per_step = 48_000;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (mut frame_started, mut frame_ended) = (false, false);
    let mut video_frames = 0;
    for step in 1..150u32 {
        let now = t0 + STEP * step;
        if step % 4 == 0 {
            // 25 frames a second.
            noise(&mut pixels, width, area, &mut seed);
            display
                .update_at(&frame(&pixels, width, height), &[area], now)
                .unwrap();
            video_frames += 1;
        }
        client.step(&mut ch, now);
        ch.produce(&display.shared, settings, now, true);
        if ch.stream.is_some() {
            break;
        }
        // Once the first lossless frame of the video is under way, it never
        // ends: the condition the test is about.
        frame_started |= ch.frame_in_progress;
        frame_ended |= frame_started && !ch.frame_in_progress;
    }
    assert!(
        frame_started && !frame_ended,
        "the link kept up, so the test did not hold a frame in progress"
    );
    let stream = ch.stream.as_ref().map(|s| s.area);
    assert!(
        stream.is_some(),
        "no stream after {video_frames} video frames: the detector was not asked mid-frame"
    );
    let stream = stream.unwrap();
    assert!(
        stream.area() * 10 >= area.area() * 9 && area.contains(&stream),
        "the stream {stream:?} covers the video {area:?}"
    );
    // Ten frames over 280 ms make a cell hot: the stream starts soon after
    // the tenth, not frames later.
    assert!(
        video_frames <= 13,
        "the stream started after {video_frames} video frames"
    );
}
