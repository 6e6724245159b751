//! Video stream detection, per display, from the damage alone.
//!
//! A framebuffer host gives no hint that an area plays a video, so, as the C
//! server does with the guest's draw commands, an area is taken for a video
//! when it keeps changing: the surface is cut into `CELL`-pixel cells,
//! the damage the host reports marks the cells it touches (changes closer
//! than `SAME_FRAME` are one frame: a host hands a frame over in several
//! rectangles or commands), and a cell changed in `START_FRAMES` frames in
//! a row over at least `START_SPAN`, each within `MAX_GAP` of the one
//! before, is hot. Detection follows
//! the host's damage as it comes, not what each client was sent: on a slow
//! link a client gets the changes merged and late, which must not hide the
//! video it needs a stream for most. The largest connected group of hot cells, if at least
//! `MIN_AREA` pixels, is the candidate stream area; under
//! [`StreamingVideo::Filter`] its pixels must also look photographic, so a
//! scrolling terminal stays lossless.
//!
//! A stream ends after `TIMEOUT` without a change inside it; the area is
//! then sent again losslessly, so the final picture is exact. No I/O and no
//! clock here: time is passed in.

use std::time::{Duration, Instant};

use super::region::Rect;

/// Side of a detection cell, in pixels.
pub(crate) const CELL: u32 = 32;
/// Consecutive frames that must change a cell before it counts as video,
/// over at least [`START_SPAN`]: a third of a second at 30 fps. The C
/// server waits for 20 frames (`RED_STREAM_FRAMES_START_CONDITION`); every
/// frame before the stream goes lossless, a photographic frame costing
/// the bytes of six MJPEG or fifty VP8 stream frames, so waiting is most
/// of what a short video costs.
pub(crate) const START_FRAMES: u16 = 10;
/// How long a cell must keep changing before it counts as video, however
/// high the frame rate: desktop animations (window and menu effects, 150
/// to 250 ms even at 60 fps) stay lossless.
pub(crate) const START_SPAN: Duration = Duration::from_millis(280);
/// Longest pause between two changes of a cell that still continues its run
/// (the C server's `RED_STREAM_DETECTION_MAX_DELTA`).
pub(crate) const MAX_GAP: Duration = Duration::from_millis(200);
/// Changes of a cell closer than this are one frame.
pub(crate) const SAME_FRAME: Duration = Duration::from_millis(10);
/// Smallest stream, in pixels (the C server's `RED_STREAM_MIN_SIZE`).
pub(crate) const MIN_AREA: u64 = 96 * 96;
/// A stream with no change for this long ends (`RED_STREAM_TIMEOUT`).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(1);
/// Shortest interval between two frames of a stream (the C server's 30 fps cap).
pub(crate) const MIN_FRAME_INTERVAL: Duration = Duration::from_millis(33);
/// The JPEG qualities a stream moves between, lowest first: the C
/// server's MJPEG samples (`mjpeg_quality_samples`), which top out at 80.
/// Higher costs the encoder and the client's decoder more for a frame that
/// is replaced 40 ms later.
const QUALITIES: [u8; 7] = [20, 30, 40, 50, 60, 70, 80];
/// A stream starts at quality 70.
const START_QUALITY: usize = 5;
/// Frames this far apart, and [`HELD_BACK_FACTOR`] times the stream's
/// usual pace, were held back by the link.
const CONGESTED_DELAY: Duration = Duration::from_millis(150);
/// See [`CONGESTED_DELAY`].
const HELD_BACK_FACTOR: u32 = 3;
/// Frames in a row at the usual pace before the quality goes up a step.
const PROMPT_FRAMES_TO_RAISE: u32 = 30;
/// Shortest time between two steps down, so one burst costs one step.
const STEP_DOWN_INTERVAL: Duration = Duration::from_millis(250);

/// When to send lossy video streams (QEMU's `streaming-video`, the C API's
/// `spice_server_set_streaming_video`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamingVideo {
    /// Never: everything lossless.
    Off,
    /// Areas that keep changing with photographic content.
    #[default]
    Filter,
    /// Any area that keeps changing.
    All,
}

impl StreamingVideo {
    /// From `SPICE_STREAM_VIDEO_*` (1 off, 2 all, 3 filter).
    pub fn from_wire(value: i32) -> Option<Self> {
        match value {
            1 => Some(Self::Off),
            2 => Some(Self::All),
            3 => Some(Self::Filter),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    /// The frame that last changed the cell.
    last: Option<Instant>,
    /// The first frame of the current run.
    run_start: Option<Instant>,
    /// Frames in a row that changed it.
    run: u16,
}

/// Which areas of one client's surface keep changing.
#[derive(Debug, Default)]
pub(crate) struct Detector {
    columns: u32,
    rows: u32,
    cells: Vec<Cell>,
}

impl Detector {
    /// Forgets everything: a new surface of `width` x `height`.
    pub(crate) fn reset(&mut self, width: u32, height: u32) {
        self.columns = width.div_ceil(CELL);
        self.rows = height.div_ceil(CELL);
        self.cells = vec![Cell::default(); (self.columns * self.rows) as usize];
    }

    /// Damage the host reported at `now`.
    pub(crate) fn observe(&mut self, damage: &[Rect], now: Instant) {
        for rect in damage {
            let (x0, y0) = (rect.x / CELL, rect.y / CELL);
            let x1 = (rect.right().div_ceil(u64::from(CELL)) as u32).min(self.columns);
            let y1 = (rect.bottom().div_ceil(u64::from(CELL)) as u32).min(self.rows);
            for y in y0..y1 {
                for x in x0..x1 {
                    let cell = &mut self.cells[(y * self.columns + x) as usize];
                    if cell
                        .last
                        .is_some_and(|t| now.saturating_duration_since(t) < SAME_FRAME)
                    {
                        continue; // already counted in this frame
                    }
                    let continues = cell
                        .last
                        .is_some_and(|t| now.saturating_duration_since(t) <= MAX_GAP);
                    if continues {
                        cell.run = cell.run.saturating_add(1);
                    } else {
                        cell.run = 1;
                        cell.run_start = Some(now);
                    }
                    cell.last = Some(now);
                }
            }
        }
    }

    fn hot(&self, index: usize, now: Instant) -> bool {
        let cell = self.cells[index];
        let (Some(start), Some(last)) = (cell.run_start, cell.last) else {
            return false;
        };
        cell.run >= START_FRAMES
            && last.saturating_duration_since(start) >= START_SPAN
            && now.saturating_duration_since(last) <= MAX_GAP
    }

    /// The bounding box of the largest connected group of hot cells, if
    /// big enough for a stream (clipped to `width` x `height`).
    pub(crate) fn candidate(&self, now: Instant, width: u32, height: u32) -> Option<Rect> {
        let mut seen = vec![false; self.cells.len()];
        let mut best: Option<(usize, Rect)> = None;
        let mut stack = Vec::new();
        for start in 0..self.cells.len() {
            if seen[start] || !self.hot(start, now) {
                continue;
            }
            seen[start] = true;
            stack.push(start);
            let (mut count, mut bounds) = (0usize, None::<Rect>);
            while let Some(i) = stack.pop() {
                count += 1;
                let (x, y) = (i as u32 % self.columns, i as u32 / self.columns);
                let cell = Rect::new(x * CELL, y * CELL, CELL, CELL);
                bounds = Some(bounds.map_or(cell, |b| b.union(&cell)));
                let neighbours = [
                    (x > 0).then(|| i - 1),
                    (x + 1 < self.columns).then(|| i + 1),
                    (y > 0).then(|| i - self.columns as usize),
                    (y + 1 < self.rows).then(|| i + self.columns as usize),
                ];
                for n in neighbours.into_iter().flatten() {
                    if !seen[n] && self.hot(n, now) {
                        seen[n] = true;
                        stack.push(n);
                    }
                }
            }
            if let Some(bounds) = bounds {
                if best.as_ref().is_none_or(|(c, _)| count > *c) {
                    best = Some((count, bounds));
                }
            }
        }
        let area = best?.1.clip(width, height);
        (area.area() >= MIN_AREA).then_some(area)
    }
}

/// A stream's JPEG quality, following the link. The display channel sends
/// a frame when the area changed and the client's link has room (its ACK
/// window and the socket's queue); a link that does not keep up shows as
/// frames going far apart compared with the stream's usual pace, and then
/// the quality goes down a step. A run of frames at the usual pace raises
/// it a step. The frame rate follows on its own: while the link is busy,
/// changes merge and fewer frames go.
#[derive(Debug, Clone)]
pub(crate) struct RateControl {
    quality: usize,
    /// The usual time between two frames (a moving average of the gaps
    /// that were not held back).
    pace: Option<Duration>,
    last_frame: Option<Instant>,
    prompt_frames: u32,
    last_step_down: Option<Instant>,
}

impl Default for RateControl {
    fn default() -> Self {
        Self {
            quality: START_QUALITY,
            pace: None,
            last_frame: None,
            prompt_frames: 0,
            last_step_down: None,
        }
    }
}

impl RateControl {
    /// The quality for the next frame.
    pub(crate) fn quality(&self) -> u8 {
        QUALITIES[self.quality]
    }

    /// When the last frame went, if one did.
    pub(crate) fn last_frame(&self) -> Option<Instant> {
        self.last_frame
    }

    /// A frame goes at `now`.
    pub(crate) fn on_frame(&mut self, now: Instant) {
        let gap = self.last_frame.map(|t| now.saturating_duration_since(t));
        self.last_frame = Some(now);
        let Some(gap) = gap else {
            return;
        };
        let held_back = self
            .pace
            .is_some_and(|pace| gap >= CONGESTED_DELAY.max(pace * HELD_BACK_FACTOR));
        if held_back {
            if self.step_down(now) {
                tracing::debug!(quality = self.quality(), ?gap, "stream quality down");
            }
            return;
        }
        self.pace = Some(self.pace.map_or(gap, |pace| (pace * 7 + gap) / 8));
        self.prompt_frames += 1;
        if self.prompt_frames >= PROMPT_FRAMES_TO_RAISE && self.quality + 1 < QUALITIES.len() {
            self.quality += 1;
            self.prompt_frames = 0;
            tracing::debug!(quality = self.quality(), "stream quality up");
        }
    }
}

impl RateControl {
    /// A client's `STREAM_REPORT` on the stream's last frames: a quarter or
    /// more of them dropped, or the last one late for its display time,
    /// means the client cannot keep up at this rate: [`Self::step_down`].
    pub(crate) fn on_client_report(&mut self, frames: u32, drops: u32, last_frame_delay: i32, now: Instant) {
        if frames == 0 {
            return;
        }
        let struggling = u64::from(drops) * 4 >= u64::from(frames) || last_frame_delay < 0;
        if !struggling {
            return;
        }
        if self.step_down(now) {
            tracing::debug!(
                quality = self.quality(),
                frames,
                drops,
                last_frame_delay,
                "stream quality down on the client's report"
            );
        }
    }

    /// The link struggles: the run towards a step up starts over, and the
    /// quality goes down a step unless it did within [`STEP_DOWN_INTERVAL`]
    /// (one burst costs one step). Returns whether it went down.
    fn step_down(&mut self, now: Instant) -> bool {
        self.prompt_frames = 0;
        let may_step = self
            .last_step_down
            .is_none_or(|t| now.saturating_duration_since(t) >= STEP_DOWN_INTERVAL);
        if !may_step || self.quality == 0 {
            return false;
        }
        self.quality -= 1;
        self.last_step_down = Some(now);
        true
    }
}

/// Frames between two of a client's stream reports (C's `RED_STREAM_CLIENT_REPORT_WINDOW`).
pub(crate) const REPORT_WINDOW: u32 = 5;
/// Milliseconds at most between two reports (C's `RED_STREAM_CLIENT_REPORT_TIMEOUT`).
pub(crate) const REPORT_TIMEOUT_MS: u32 = 1000;

/// The milliseconds of the multimedia clock: the main channel gives the
/// client this clock (less its latency) in `MAIN_INIT`, and stream frames
/// are stamped with it. One epoch for the process, so display threads and
/// the main context agree.
pub(crate) fn mm_time(now: Instant) -> u32 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    now.saturating_duration_since(epoch).as_millis() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(detector: &mut Detector, start: Instant, n: u32, every: Duration, damage: &[Rect]) -> Instant {
        let mut now = start;
        for _ in 0..n {
            now += every;
            detector.observe(damage, now);
        }
        now
    }

    #[test]
    fn client_reports_of_drops_or_late_frames_step_the_quality_down() {
        let t = Instant::now();
        let mut r = RateControl::default();
        let start = r.quality();
        r.on_client_report(5, 0, 40, t);
        assert_eq!(r.quality(), start, "all played in time");
        r.on_client_report(0, 0, -5, t);
        assert_eq!(r.quality(), start, "no frames: nothing to judge");
        r.on_client_report(5, 2, 40, t);
        assert!(r.quality() < start, "drops");
        let once = r.quality();
        r.on_client_report(5, 0, -30, t + STEP_DOWN_INTERVAL / 2);
        assert_eq!(r.quality(), once, "one step per interval");
        r.on_client_report(5, 0, -30, t + STEP_DOWN_INTERVAL);
        assert!(r.quality() < once, "late frames");
    }

    #[test]
    fn a_region_changing_every_frame_becomes_a_candidate() {
        let mut d = Detector::default();
        d.reset(640, 480);
        let video = Rect::new(100, 70, 200, 150);
        let t0 = Instant::now();
        let now = frames(
            &mut d,
            t0,
            u32::from(START_FRAMES) - 1,
            Duration::from_millis(40),
            &[video],
        );
        assert_eq!(d.candidate(now, 640, 480), None, "not yet: too few frames");
        let now = frames(&mut d, now, 1, Duration::from_millis(40), &[video]);
        let area = d.candidate(now, 640, 480).expect("a stream area");
        assert!(area.contains(&video), "{area:?} covers the video");
        assert!(
            area.area() <= Rect::new(96, 64, 224, 192).area(),
            "{area:?} only the cells it touches"
        );
        // Once the changes stop, the area cools down.
        assert_eq!(d.candidate(now + MAX_GAP * 2, 640, 480), None);
    }

    #[test]
    fn a_short_animation_at_a_high_frame_rate_is_not_video() {
        // A window effect: 250 ms at 60 fps is 15 frames, more than
        // START_FRAMES, but not for long enough.
        let mut d = Detector::default();
        d.reset(640, 480);
        let window = Rect::new(100, 70, 300, 200);
        let t0 = Instant::now();
        let every = Duration::from_micros(16_667);
        let now = frames(&mut d, t0, 15, every, &[window]);
        assert_eq!(d.candidate(now, 640, 480), None, "250 ms of animation");
        // The same at 60 fps for longer is video.
        let now = frames(&mut d, now, 5, every, &[window]);
        assert!(d.candidate(now, 640, 480).is_some(), "333 ms of change");
    }

    #[test]
    fn slow_or_small_changes_are_not_video() {
        let mut d = Detector::default();
        d.reset(640, 480);
        let t0 = Instant::now();
        // A clock: once a second.
        let now = frames(
            &mut d,
            t0,
            40,
            Duration::from_secs(1),
            &[Rect::new(0, 0, 200, 200)],
        );
        assert_eq!(d.candidate(now, 640, 480), None);
        // A blinking cursor: fast enough but tiny.
        let now = frames(
            &mut d,
            now,
            40,
            Duration::from_millis(50),
            &[Rect::new(300, 300, 8, 16)],
        );
        assert_eq!(d.candidate(now, 640, 480), None);
    }

    #[test]
    fn the_largest_group_wins_and_damage_outside_the_surface_is_ignored() {
        let mut d = Detector::default();
        d.reset(640, 480);
        let big = Rect::new(320, 200, 300, 250);
        let small = Rect::new(0, 0, 100, 100);
        let beyond = Rect::new(600, 460, 4000, 4000);
        let now = frames(
            &mut d,
            Instant::now(),
            30,
            Duration::from_millis(33),
            &[small, big, beyond],
        );
        let area = d.candidate(now, 640, 480).expect("a stream area");
        assert!(area.contains(&big) && !area.touches(&small), "{area:?}");
        assert!(
            area.right() <= 640 && area.bottom() <= 480,
            "{area:?} clipped to the surface"
        );
    }

    #[test]
    fn quality_follows_the_link() {
        let mut rate = RateControl::default();
        let start = rate.quality();
        let mut now = Instant::now();
        // The usual pace: 25 fps.
        for _ in 0..10 {
            now += Duration::from_millis(40);
            rate.on_frame(now);
        }
        assert_eq!(rate.quality(), start);
        // A slow link: frames go far apart; one step per STEP_DOWN_INTERVAL.
        now += Duration::from_millis(400);
        rate.on_frame(now);
        assert_eq!(rate.quality(), QUALITIES[START_QUALITY - 1], "a step down");
        for _ in 0..20 {
            now += Duration::from_millis(300);
            rate.on_frame(now);
        }
        assert_eq!(rate.quality(), QUALITIES[0], "down to the floor, not below");
        // The link recovers: frames at the pace raise it again, a step per run.
        for _ in 0..PROMPT_FRAMES_TO_RAISE * 10 {
            now += Duration::from_millis(40);
            rate.on_frame(now);
        }
        assert_eq!(rate.quality(), *QUALITIES.last().unwrap(), "up to the ceiling");
        // A slow video (8 fps) is not a slow link.
        let mut slow_video = RateControl::default();
        for _ in 0..100 {
            now += Duration::from_millis(125);
            slow_video.on_frame(now);
        }
        assert!(slow_video.quality() >= start, "{}", slow_video.quality());
    }

    #[test]
    fn wire_values_of_the_setting() {
        assert_eq!(StreamingVideo::from_wire(1), Some(StreamingVideo::Off));
        assert_eq!(StreamingVideo::from_wire(2), Some(StreamingVideo::All));
        assert_eq!(StreamingVideo::from_wire(3), Some(StreamingVideo::Filter));
        assert_eq!(StreamingVideo::from_wire(0), None);
    }
}
