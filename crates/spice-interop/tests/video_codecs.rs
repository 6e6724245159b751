//! VP8 and H.264 streams with the stock spice-gtk client, which decodes them
//! through GStreamer (vp8dec, avdec_h264): with the codec first in the
//! server's list, the stream goes in that codec; what the client shows in
//! the middle of the video is one of the host's recent frames, close to the
//! source (so spice-gtk decoded our frames); a frame costs under a quarter
//! of an MJPEG frame's bytes; and the area is exact once the video stops.

use std::time::{Duration, Instant};

use spice_codec::quality::psnr_rgb32;
use spice_interop::gtk::SpiceGtk;
use spice_interop::pattern::Canvas;
use spice_server::{DisplayHandle, Rect, ServerBuilder, StreamingVideo, VideoCodec};

const T: Duration = Duration::from_secs(30);
/// Frames of video played, at 25 fps.
const FRAMES: u32 = 100;
/// The frame at which the client's picture is sampled (the stream starts
/// after about 10 frames).
const SAMPLE_AT: u32 = 70;
const AREA: Rect = Rect {
    x: 96,
    y: 64,
    width: 320,
    height: 240,
};

/// What one playback showed.
struct Playback {
    /// The codec of the live stream, as the server's stats said mid-video.
    codec: Option<VideoCodec>,
    /// Display bytes the client read for the video.
    bytes: u64,
    /// Stream frames and their bytes, as the server counted them.
    stream_frames: u64,
    stream_bytes: u64,
    /// The host frame closest to the client's picture of the area at
    /// `SAMPLE_AT`, and how close (PSNR, dB).
    best_frame: u32,
    best_psnr: f64,
}

/// The area's pixels of a packed xRGB picture `width` wide.
fn crop(packed: &[u8], width: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(AREA.area() as usize * 4);
    for y in AREA.y..AREA.y + AREA.height {
        let start = (y * width + AREA.x) as usize * 4;
        out.extend_from_slice(&packed[start..start + AREA.width as usize * 4]);
    }
    out
}

fn play(codecs: &[VideoCodec]) -> Playback {
    spice_interop::init_logging();
    let mut canvas = Canvas::stripes(640, 480, 5);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let server = ServerBuilder::new()
        .port(0)
        .streaming_video(StreamingVideo::All)
        .video_codecs(codecs)
        .display(display.clone())
        .spawn()
        .expect("server starts");
    let mut gtk = SpiceGtk::start();
    gtk.connect(server.local_addr(), None);
    gtk.expect("primary-create", T);
    assert_eq!(
        gtk.wait_surface(canvas.width, canvas.height, &canvas.packed(), T),
        0
    );
    let before = gtk.display_bytes(T);

    let mut codec = None;
    let mut sample = None;
    let start = Instant::now();
    for t in 0..FRAMES {
        canvas.video_frame(AREA, t);
        display.update(&canvas.frame(), &[AREA]).expect("update");
        if t == SAMPLE_AT {
            codec = server
                .handle()
                .stats()
                .clients
                .iter()
                .flat_map(|c| &c.channels)
                .find_map(|c| c.display.as_ref()?.stream)
                .map(|s| s.codec);
            sample = gtk.surface();
        }
        let next = start + Duration::from_millis(40) * (t + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    assert_eq!(
        gtk.wait_surface(canvas.width, canvas.height, &canvas.packed(), T),
        0,
        "{codecs:?}: exact once the video stops"
    );
    let bytes = gtk.display_bytes(T) - before;
    let stats = server
        .handle()
        .stats()
        .clients
        .iter()
        .flat_map(|c| &c.channels)
        .find_map(|c| c.display.clone())
        .expect("display stats");
    gtk.quit();
    drop(server);

    // Which of the host's frames does the client's picture show?
    let (width, _, pixels) = sample.expect("the client's picture mid-video");
    let shown = crop(&pixels, width);
    let mut reference = Canvas::stripes(640, 480, 5);
    let (best_frame, best_psnr) = (0..=SAMPLE_AT)
        .map(|t| {
            reference.video_frame(AREA, t);
            (t, psnr_rgb32(&crop(&reference.packed(), 640), &shown))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("frames");
    eprintln!(
        "{codecs:?}: stream {codec:?}, {} frames in {} bytes ({bytes} display bytes in all), \
         shows frame {best_frame} at {best_psnr:.1} dB",
        stats.stream_frames, stats.stream_bytes
    );
    Playback {
        codec,
        bytes,
        stream_frames: stats.stream_frames,
        stream_bytes: stats.stream_bytes,
        best_frame,
        best_psnr,
    }
}

fn streams_in(codec: VideoCodec, mjpeg: &Playback) {
    let run = play(&[codec, VideoCodec::Mjpeg]);
    assert_eq!(
        run.codec,
        Some(codec),
        "spice-gtk announces {codec:?} and gets it"
    );
    // The client decoded the stream: it shows a frame from well after the
    // stream began, close to the source.
    assert!(
        run.best_frame > 30 && run.best_psnr > 28.0,
        "{codec:?}: the client shows frame {} at {:.1} dB",
        run.best_frame,
        run.best_psnr
    );
    // Per frame, a fraction of MJPEG's bytes.
    let per_frame = |p: &Playback| p.stream_bytes as f64 / p.stream_frames.max(1) as f64;
    assert!(run.stream_frames > 40, "{codec:?}: {} frames", run.stream_frames);
    assert!(
        per_frame(&run) * 4.0 < per_frame(mjpeg),
        "{codec:?}: {:.0} bytes a frame against MJPEG's {:.0}",
        per_frame(&run),
        per_frame(mjpeg)
    );
    assert!(
        run.bytes < mjpeg.bytes,
        "{codec:?}: {} display bytes, MJPEG {}",
        run.bytes,
        mjpeg.bytes
    );
}

#[test]
fn spice_gtk_plays_vp8_and_h264_streams() {
    let mjpeg = play(&[VideoCodec::Mjpeg]);
    assert_eq!(mjpeg.codec, Some(VideoCodec::Mjpeg));
    assert!(mjpeg.best_psnr > 28.0, "MJPEG: {:.1} dB", mjpeg.best_psnr);
    streams_in(VideoCodec::Vp8, &mjpeg);
    streams_in(VideoCodec::H264, &mjpeg);
}
