//! spice-html5 (Debian's package) in headless Chromium against our server,
//! its WebSocket straight to the SPICE port: the picture in its canvas, keys
//! and a click reaching the host, Opus audio played by its media element.
//! The C host side by side with Debian's library is in
//! `spice-capi/tests/c_host.rs` (`html5`); QEMU in `qemu_html5` below.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spice_interop::devices::{recording, DeviceEvent};
use spice_interop::html5::Html5;
use spice_interop::pattern::Canvas;
use spice_interop::pcm;
use spice_server::{DisplayHandle, PlaybackHandle, ServerBuilder, StereoFrame, FRAMES_PER_PACKET};

const T: Duration = Duration::from_secs(30);

/// Writes a 440 Hz sine to `playback` in 10 ms packets at the pace a sound
/// card would, until `stop` is set.
fn play_sine(playback: PlaybackHandle, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let begin = Instant::now();
        let mut k = 0;
        while !stop.load(Ordering::Relaxed) {
            let pcm = pcm::sine(k * FRAMES_PER_PACKET, FRAMES_PER_PACKET, 440.0);
            let frames: Vec<StereoFrame> = pcm
                .chunks_exact(4)
                .map(|b| [i16::from_le_bytes([b[0], b[1]]), i16::from_le_bytes([b[2], b[3]])])
                .collect();
            playback.write(&frames);
            k += 1;
            let due = begin + Duration::from_millis(10 * k as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    })
}

#[test]
fn spice_html5_shows_the_picture_sends_input_and_plays_opus() {
    spice_interop::init_logging();
    let mut canvas = Canvas::new(320, 240, 5);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let (devices, events) = recording();
    let playback = PlaybackHandle::new();
    let server = ServerBuilder::new()
        .port(0)
        .name("html5 test")
        .display(display.clone())
        .keyboard(devices.clone())
        .tablet(devices.clone())
        .playback(playback.clone())
        .spawn()
        .expect("server starts");

    let mut html5 = Html5::start();
    html5.open(server.local_addr().port(), "");
    let diff = html5.wait_canvas(320, 240, &canvas.packed(), T);
    assert_eq!(
        diff,
        0,
        "canvas differs from the host's picture in {diff} pixels; console: {:#?}",
        html5.console()
    );

    // Damage after the first picture arrives too.
    for _ in 0..10 {
        let rect = canvas.scribble();
        display.update(&canvas.frame(), &[rect]).unwrap();
    }
    let diff = html5.wait_canvas(320, 240, &canvas.packed(), T);
    assert_eq!(diff, 0, "after damage: {diff} pixels differ");

    // Typing: set-1 scancodes, press and release ('a' = 0x1e, 'b' = 0x30).
    html5.type_text("ab");
    assert_eq!(
        events.scancodes(4, T),
        [0x1e, 0x9e, 0x30, 0xb0],
        "console: {:#?}",
        html5.console()
    );

    // A click: spice-html5 uses client mouse mode with the tablet, so the
    // host sees the position, then the left button down and up.
    // (Chromium rounds WebDriver's offset from the element's centre, and
    // the page's border moves it: a pixel or two.)
    html5.click(100, 50);
    assert!(
        events
            .wait_for(
                T,
                |e| matches!(e, DeviceEvent::Position(x, y, _) if x.abs_diff(100) <= 2 && y.abs_diff(50) <= 2)
            )
            .is_some(),
        "pointer at (100, 50)"
    );
    assert!(
        events.wait_for(T, |e| *e == DeviceEvent::Buttons(1)).is_some(),
        "left button pressed"
    );
    assert!(
        events.wait_for(T, |e| *e == DeviceEvent::Buttons(0)).is_some(),
        "left button released"
    );

    // Opus audio: spice-html5 wraps the packets in WebM for a media element,
    // whose clock advances as it plays them.
    playback.start();
    let stop = Arc::new(AtomicBool::new(false));
    let player = play_sine(playback.clone(), stop.clone());
    let audio = html5.wait_audio_time(0.5, T);
    stop.store(true, Ordering::Relaxed);
    player.join().unwrap();
    playback.stop();
    assert!(
        audio["current_time"].as_f64().unwrap_or(0.0) > 0.5,
        "the audio element played the host's Opus: {audio}; console: {:#?}",
        html5.console()
    );
    assert!(audio["bytes_written"].as_u64().unwrap_or(0) > 1000, "{audio}");
    assert!(audio["error"].is_null(), "{audio}");
    html5.quit();
}
