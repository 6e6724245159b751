//! spice-html5 (Debian's package) in headless Chromium against our server,
//! its WebSocket straight to the SPICE port: the picture in its canvas, keys
//! and a click reaching the host, Opus audio played by its media element,
//! video streams (MJPEG into its canvas, VP8 through its video element).
//! The C host side by side with Debian's library is in
//! `spice-capi/tests/c_host.rs` (`html5`); QEMU 7.2 below, on our library
//! and then on Debian's (SeaBIOS only, so no audio there: nothing in the
//! guest plays any; a Linux guest's sound in spice-html5 is tested in
//! `tests/linux_guest.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spice_interop::devices::{recording, DeviceEvent};
use spice_interop::gtk::SpiceGtk;
use spice_interop::html5::Html5;
use spice_interop::pattern::Canvas;
use spice_interop::pcm;
use spice_interop::qemu::{Library, Picture, Qemu};
use spice_server::{DisplayHandle, PlaybackHandle, ServerBuilder, FRAMES_PER_PACKET};

const T: Duration = Duration::from_secs(30);

/// Writes a 440 Hz sine to `playback` in 10 ms packets at the pace a sound
/// card would, until `stop` is set.
fn play_sine(playback: PlaybackHandle, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let begin = Instant::now();
        let mut k = 0;
        while !stop.load(Ordering::Relaxed) {
            playback.write(&pcm::frames(&pcm::sine(
                k * FRAMES_PER_PACKET,
                FRAMES_PER_PACKET,
                440.0,
            )));
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

/// A wrong password is refused (spice-html5 then prompts for one); the page
/// loaded again with the right one shows the picture.
#[test]
fn spice_html5_is_refused_a_wrong_password_and_links_with_the_right_one() {
    spice_interop::init_logging();
    let canvas = Canvas::new(160, 120, 8);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let server = ServerBuilder::new()
        .port(0)
        .password("s3cret")
        .display(display.clone())
        .spawn()
        .expect("server starts");
    let mut html5 = Html5::start();
    let port = server.local_addr().port();
    html5.open(port, "wrong");
    let deadline = Instant::now() + T;
    let mut console = Vec::new();
    while !console.iter().any(|l: &String| l.contains("Permission denied")) {
        assert!(Instant::now() < deadline, "no refusal; console: {console:#?}");
        std::thread::sleep(Duration::from_millis(200));
        console.extend(html5.console());
    }
    html5.open(port, "s3cret");
    let diff = html5.wait_canvas(160, 120, &canvas.packed(), T);
    assert_eq!(diff, 0, "console: {:#?}", html5.console());
    html5.quit();
}

/// SeaBIOS 1.16.2's "No bootable device." screen as text line lengths
/// ([`Picture::text_lines`]), as in `qemu.rs`.
const NO_BOOTABLE_DEVICE: &[u32] = &[40, 25, 41, 0, 22, 41, 0, 22, 50, 19];

/// Whether a picture shows "No bootable device." (the blinking cursor, a lone
/// cell below the text, drawn or not).
fn settled(p: &Picture) -> bool {
    let lines = p.text_lines();
    lines.len() > NO_BOOTABLE_DEVICE.len()
        && lines[..NO_BOOTABLE_DEVICE.len()] == *NO_BOOTABLE_DEVICE
        && lines[NO_BOOTABLE_DEVICE.len()..].iter().all(|&n| n <= 1)
}

/// QEMU's `-trace` lines starting with `prefix`, once at least `want` came.
fn wait_trace(qemu: &Qemu, prefix: &str, want: usize) -> Vec<String> {
    let deadline = Instant::now() + T;
    loop {
        let lines: Vec<String> = qemu
            .log()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(String::from)
            .collect();
        if lines.len() >= want || Instant::now() >= deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn spice_html5_on_qemu_shows_what_spice_gtk_shows_and_types_and_clicks() {
    spice_interop::init_logging();
    // Ours, then Debian's C library the same way, for comparison.
    for library in [Library::rust(), Library::Debian] {
        qemu_session(&library);
    }
}

fn qemu_session(library: &Library) {
    let name = library.name();
    let qemu = Qemu::start(
        library,
        &[
            "-vga",
            "std",
            "-trace",
            "enable=input_event_key*",
            "-trace",
            "enable=input_event_btn",
        ],
    );
    qemu.assert_library();

    // What spice-gtk shows once SeaBIOS settles: both phases of its blinking
    // cursor, collected for two seconds.
    let mut gtk = SpiceGtk::start();
    gtk.connect(qemu.addr, None);
    let mut shown: Vec<Picture> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut settled_at = None;
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        let picture = Picture::of(&mut gtk);
        lines = picture.as_ref().map(Picture::text_lines).unwrap_or_default();
        if let Some(p) = picture.filter(settled) {
            settled_at.get_or_insert_with(Instant::now);
            if !shown.contains(&p) {
                shown.push(p);
            }
        }
        if settled_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !shown.is_empty(),
        "{name}: spice-gtk never showed the settled SeaBIOS screen; last text lines {lines:?}"
    );
    gtk.quit();

    // spice-html5 replaces it (one client at a time) and must show the same.
    let mut html5 = Html5::start();
    match library {
        Library::Debian => html5.open_on_c_library(qemu.addr.port(), ""),
        _ => html5.open(qemu.addr.port(), ""),
    }
    let deadline = Instant::now() + T;
    let mut last = None;
    let same = loop {
        let canvas = html5
            .canvas(spice_interop::html5::PRIMARY)
            .map(|(width, height, pixels)| Picture {
                width,
                height,
                pixels,
            });
        if canvas.as_ref().is_some_and(|c| shown.contains(c)) {
            break true;
        }
        last = canvas;
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        same,
        "{name}: spice-html5's canvas never equalled spice-gtk's surface: {:?} pixels differ; console: {:#?}",
        last.map(|c| shown.iter().map(|s| s.diff(&c)).min()),
        html5.console()
    );

    // Typing reaches QEMU's input core as one press and release.
    html5.type_text("a");
    let keys = wait_trace(&qemu, "input_event_key", 2);
    assert!(
        keys.len() >= 2
            && keys.iter().any(|l| l.ends_with("down 1"))
            && keys.iter().any(|l| l.ends_with("down 0")),
        "{name}: QEMU traced {keys:?}"
    );
    // A click (server mouse mode: the PS/2 mouse) reaches it as left button events.
    html5.click(100, 50);
    let buttons = wait_trace(&qemu, "input_event_btn", 2);
    assert!(
        buttons
            .iter()
            .any(|l| l.contains("left") && l.ends_with("down 1"))
            && buttons
                .iter()
                .any(|l| l.contains("left") && l.ends_with("down 0")),
        "{name}: QEMU traced {buttons:?}"
    );
    html5.quit();
}

/// The colour channels of `area` in packed pictures of `width` pixels a row.
fn crop(packed: &[u8], width: u32, area: spice_server::Rect) -> Vec<u8> {
    let row = width as usize * 4;
    (area.y..area.y + area.height)
        .flat_map(|y| {
            let start = y as usize * row + area.x as usize * 4;
            packed[start..start + area.width as usize * 4].to_vec()
        })
        .collect()
}

/// A video in spice-html5 (Debian's, in headless Chromium) goes as a
/// stream it plays: MJPEG frames drawn into its canvas, VP8 through the
/// `<video>` element it lays over the canvas (Chromium's MediaSource); the
/// area is exact once the video stops, and the video element is gone.
#[test]
fn spice_html5_plays_mjpeg_and_vp8_streams_and_ends_exact() {
    use spice_server::{Rect, StreamingVideo, VideoCodec};
    spice_interop::init_logging();
    let (width, height) = (480, 320);
    let area = Rect::new(64, 32, 320, 240);
    for codec in [VideoCodec::Mjpeg, VideoCodec::Vp8] {
        let mut canvas = Canvas::new(width, height, 11);
        let display = DisplayHandle::new();
        canvas.publish(&display);
        let server = ServerBuilder::new()
            .port(0)
            .streaming_video(StreamingVideo::Filter)
            .video_codecs(&[codec])
            .display(display.clone())
            .spawn()
            .expect("server starts");
        let handle = server.handle();
        let mut html5 = Html5::start();
        html5.open(server.local_addr().port(), "");
        assert_eq!(
            html5.wait_canvas(width, height, &canvas.packed(), T),
            0,
            "{codec:?}: first picture; console: {:#?}",
            html5.console()
        );

        // Three seconds at 25 fps; the last two are looked at.
        let start = Instant::now();
        let (mut live, mut shown) = (None, Vec::new());
        let mut recent: Vec<Vec<u8>> = Vec::new();
        for t in 0..75u32 {
            canvas.video_frame(area, t);
            display.update(&canvas.frame(), &[area]).unwrap();
            recent.push(crop(&canvas.packed(), width, area));
            if recent.len() > 12 {
                recent.remove(0);
            }
            if let Some(stream) = handle
                .stats()
                .clients
                .first()
                .and_then(|c| c.channels.iter().find(|ch| ch.channel == "display"))
                .and_then(|ch| ch.display.as_ref())
                .and_then(|d| d.stream)
            {
                live = live.or(Some(stream.codec));
            }
            if t >= 25 && t % 10 == 0 {
                match codec {
                    // The canvas shows a recent frame, lossy.
                    VideoCodec::Mjpeg => {
                        if let Some((_, _, px)) = html5.canvas(spice_interop::html5::PRIMARY) {
                            let got = crop(&px, width, area);
                            let best = recent
                                .iter()
                                .map(|f| spice_codec::quality::psnr_rgb32(f, &got))
                                .fold(0.0, f64::max);
                            shown.push(best);
                        }
                    }
                    // A playing video element over the area.
                    _ => {
                        let v = html5.eval(
                            "var v = document.querySelector('video'); \
                             return v ? [v.readyState, v.currentTime, v.videoWidth] : null;",
                        );
                        if let Some(state) = v.as_array() {
                            let ready = state[0].as_u64().unwrap_or(0);
                            let width = state[2].as_u64().unwrap_or(0);
                            shown.push(if ready >= 2 && width == 320 { 1.0 } else { 0.0 });
                        }
                    }
                }
            }
            let next = start + Duration::from_millis(40) * (t + 1);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        assert_eq!(live, Some(codec), "{codec:?}: the server streamed in it");
        match codec {
            VideoCodec::Mjpeg => assert!(
                shown.iter().any(|&p| p > 25.0 && p < 100.0),
                "the canvas showed lossy frames of the video: {shown:?} dB"
            ),
            _ => assert!(
                shown.contains(&1.0),
                "a VP8 video element played: {shown:?}; console: {:#?}",
                html5.console()
            ),
        }
        assert_eq!(
            html5.wait_canvas(width, height, &canvas.packed(), T),
            0,
            "{codec:?}: exact after the video; console: {:#?}",
            html5.console()
        );
        if codec == VideoCodec::Vp8 {
            let deadline = Instant::now() + T;
            while html5.eval("return document.querySelector('video') !== null;") == serde_json::json!(true) {
                assert!(
                    Instant::now() < deadline,
                    "the video element stays after the stream"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        html5.quit();
    }
}
