//! Video streams with the stock spice-gtk client: an area of the host's
//! display that keeps changing goes as an MJPEG stream (far fewer bytes
//! than lossless images) under `StreamingVideo::All` and `Filter`, and when
//! the video stops the area is sent again losslessly, so the client ends
//! pixel-exact. With `Off`, every frame goes lossless.

use std::time::{Duration, Instant};

use spice_interop::gtk::SpiceGtk;
use spice_interop::pattern::Canvas;
use spice_server::{DisplayHandle, Rect, ServerBuilder, StreamingVideo};

const T: Duration = Duration::from_secs(30);
/// Frames of video played, at 25 fps.
const FRAMES: u32 = 75;

/// Plays the video and returns the display bytes the client read for it,
/// once its picture is exactly the host's again.
fn play(mode: StreamingVideo) -> u64 {
    let mut canvas = Canvas::stripes(640, 480, 3);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let server = ServerBuilder::new()
        .port(0)
        .streaming_video(mode)
        .display(display.clone())
        .spawn()
        .expect("server starts");
    let mut gtk = SpiceGtk::start();
    gtk.connect(server.local_addr(), None);
    gtk.expect("primary-create", T);
    let diff = gtk.wait_surface(canvas.width, canvas.height, &canvas.packed(), T);
    assert_eq!(diff, 0, "{mode:?}: first picture");
    let before = gtk.display_bytes(T);
    let area = Rect::new(96, 64, 320, 240);
    let start = Instant::now();
    for t in 0..FRAMES {
        let rect = canvas.video_frame(area, t);
        display.update(&canvas.frame(), &[rect]).expect("update");
        let next = start + Duration::from_millis(40) * (t + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let stopped = Instant::now();
    let diff = gtk.wait_surface(canvas.width, canvas.height, &canvas.packed(), T);
    assert_eq!(
        diff, 0,
        "{mode:?}: the last frame, lossless, once the video stops"
    );
    let bytes = gtk.display_bytes(T) - before;
    eprintln!(
        "{mode:?}: {bytes} display bytes for {FRAMES} frames, exact {:?} after the last",
        stopped.elapsed()
    );
    gtk.quit();
    drop(server);
    bytes
}

#[test]
fn a_changing_area_goes_as_a_video_stream_and_ends_pixel_exact() {
    spice_interop::init_logging();
    let off = play(StreamingVideo::Off);
    let all = play(StreamingVideo::All);
    let filter = play(StreamingVideo::Filter);
    assert!(
        all * 2 < off,
        "streaming (all) should send far fewer bytes than lossless: {all} vs {off}"
    );
    assert!(
        filter * 2 < off,
        "a photographic video is streamed under filter too: {filter} vs {off}"
    );
}
