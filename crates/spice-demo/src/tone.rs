//! Key-click tones: a short sine burst played through the server's playback
//! channel whenever a character is typed.
//!
//! A [`Beeper`] thread plays like a sound card would: it writes one packet
//! every 10 ms while there is something to play, starts playback for a tone
//! and stops it after a moment of silence (stopping at once would cut off what
//! the client still has buffered).

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use spice_server::{PlaybackHandle, StereoFrame, FRAMES_PER_PACKET, PLAYBACK_RATE};

/// Pitch of the key tone (A4).
pub const TONE_HZ: u32 = 440;
/// Length of the key tone.
pub const TONE_MS: u32 = 150;
/// Peak amplitude, about a quarter of full scale.
const AMPLITUDE: f32 = 8000.0;
/// Fade in and out over this long, so the tone does not click.
const FADE_MS: u32 = 5;
/// Silence played after a tone before playback stops.
const TAIL: Duration = Duration::from_millis(300);

/// `duration_ms` of a sine at `hz`, both channels alike, faded in and out.
pub fn tone(hz: u32, duration_ms: u32, rate: u32) -> Vec<StereoFrame> {
    let len = (u64::from(rate) * u64::from(duration_ms) / 1000) as usize;
    let fade = ((rate * FADE_MS / 1000) as usize).clamp(1, len.max(1));
    (0..len)
        .map(|i| {
            let phase = 2.0 * std::f32::consts::PI * hz as f32 * i as f32 / rate as f32;
            let edge = i.min(len - 1 - i);
            let gain = (edge as f32 / fade as f32).min(1.0);
            let s = (phase.sin() * AMPLITUDE * gain).round() as i16;
            [s, s]
        })
        .collect()
}

/// Plays the key tone on request from its own thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct Beeper {
    tx: Sender<()>,
}

impl Beeper {
    /// Starts the player thread, which ends when every `Beeper` is dropped.
    pub fn spawn(playback: PlaybackHandle) -> std::io::Result<Self> {
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("beeper".into())
            .spawn(move || play(&playback, &rx))?;
        Ok(Self { tx })
    }

    /// Plays the tone from the start; never waits.
    pub fn beep(&self) {
        let _ = self.tx.send(());
    }
}

fn play(playback: &PlaybackHandle, rx: &Receiver<()>) {
    let key_tone = tone(TONE_HZ, TONE_MS, PLAYBACK_RATE);
    let period = Duration::from_millis(1000 * FRAMES_PER_PACKET as u64 / u64::from(PLAYBACK_RATE));
    let silence = [[0i16; 2]; FRAMES_PER_PACKET];
    let mut pos = key_tone.len();
    let mut quiet_since = Instant::now();
    let mut next = Instant::now();
    loop {
        // Idle: sleep until a key is typed.
        let wait = if playback.is_active() {
            next.saturating_duration_since(Instant::now())
        } else {
            Duration::MAX
        };
        match rx.recv_timeout(wait) {
            Ok(()) => {
                while rx.try_recv().is_ok() {}
                pos = 0;
                if !playback.is_active() {
                    playback.start();
                    next = Instant::now();
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                playback.stop();
                return;
            }
        }
        let now = Instant::now();
        if now < next {
            continue;
        }
        // Far behind (the machine was suspended, say): skip rather than burst.
        next = if now - next > 4 * period { now } else { next } + period;
        if pos < key_tone.len() {
            let end = (pos + FRAMES_PER_PACKET).min(key_tone.len());
            let mut packet = key_tone[pos..end].to_vec();
            packet.resize(FRAMES_PER_PACKET, [0, 0]);
            playback.write(&packet);
            pos = end;
            quiet_since = now;
        } else if now - quiet_since < TAIL {
            playback.write(&silence);
        } else {
            playback.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_has_the_right_length_pitch_and_fades() {
        let t = tone(TONE_HZ, TONE_MS, PLAYBACK_RATE);
        assert_eq!(t.len(), 7200);
        assert!(t.iter().all(|[l, r]| l == r));
        assert_eq!(t[0], [0, 0]);
        assert!(t[t.len() - 1][0].abs() < 200, "faded out");
        let peak = t.iter().map(|f| f[0].unsigned_abs()).max().unwrap();
        assert!((7900..=8000).contains(&peak), "peak {peak}");
        // Rising zero crossings: 440 Hz over 150 ms is 66 cycles.
        let rising = t.windows(2).filter(|w| w[0][0] < 0 && w[1][0] >= 0).count();
        assert!((65..=67).contains(&rising), "{rising} cycles");
    }

    #[test]
    fn beeper_starts_playback_and_stops_after_the_tail() {
        let playback = PlaybackHandle::new();
        let beeper = Beeper::spawn(playback.clone()).unwrap();
        assert!(!playback.is_active());
        beeper.beep();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !playback.is_active() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(playback.is_active(), "a beep starts playback");
        while playback.is_active() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !playback.is_active(),
            "playback stops after the tone and its tail"
        );
    }
}
