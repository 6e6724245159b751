//! Video streams with the stock spice-gtk client: an area of the host's
//! display that keeps changing goes as an MJPEG stream (far fewer bytes
//! than lossless images) under `StreamingVideo::All` and `Filter`, and when
//! the video stops the area is sent again losslessly, so the client ends
//! pixel-exact. With `Off`, every frame goes lossless. A frame is encoded
//! without the display's lock held, so the host's updates never wait for it,
//! and a frame a deferred drawing shares is encoded where its pixels lie.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use spice_interop::gtk::SpiceGtk;
use spice_interop::pattern::Canvas;
use spice_server::jpeg::{CodecError, ImageRef, JpegEncoder};
use spice_server::{
    DeferredDraw, DisplayHandle, Rect, RunningServer, ServerBuilder, SharedPixels, StreamingVideo,
};

const T: Duration = Duration::from_secs(30);
/// Frames of video played, at 25 fps.
const FRAMES: u32 = 75;

/// Plays the video and returns the display bytes the client read for it,
/// once its picture is exactly the host's again.
fn play(mode: StreamingVideo) -> u64 {
    play_with(mode, DisplayHandle::new(), JpegEncoder::default())
}

/// Serves `display`, showing `canvas`, to spice-gtk, with frames encoded
/// by `jpeg`, once the client has the first picture.
fn serve(
    mode: StreamingVideo,
    display: &DisplayHandle,
    canvas: &Canvas,
    jpeg: JpegEncoder,
) -> (RunningServer, SpiceGtk) {
    canvas.publish(display);
    let server = ServerBuilder::new()
        .port(0)
        .streaming_video(mode)
        .jpeg_encoder(jpeg)
        .display(display.clone())
        .spawn()
        .expect("server starts");
    let mut gtk = SpiceGtk::start();
    gtk.connect(server.local_addr(), None);
    gtk.expect("primary-create", T);
    let diff = gtk.wait_surface(canvas.width, canvas.height, &canvas.packed(), T);
    assert_eq!(diff, 0, "{mode:?}: first picture");
    (server, gtk)
}

/// [`play`] on `display`, its frames encoded by `jpeg`.
fn play_with(mode: StreamingVideo, display: DisplayHandle, jpeg: JpegEncoder) -> u64 {
    let mut canvas = Canvas::stripes(640, 480, 3);
    let (server, mut gtk) = serve(mode, &display, &canvas, jpeg);
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

/// The display [`probing_jpeg`] checks.
static PROBED: OnceLock<DisplayHandle> = OnceLock::new();
/// Frames [`probing_jpeg`] checked, and of those the ones it encoded while
/// the display's lock was held.
static CHECKED: AtomicUsize = AtomicUsize::new(0);
static UNDER_LOCK: AtomicUsize = AtomicUsize::new(0);
/// Frames checked: each one under the lock costs the test the wait below.
const CHECKS: usize = 3;

/// The built-in JPEG encoder, which first checks (for the first
/// [`CHECKS`] frames) that another thread can take the display's lock
/// meanwhile, as the host's update would: that thread asks the display its
/// size, and is waited for up to 5 s.
fn probing_jpeg(image: &ImageRef, quality: u8, out: &mut Vec<u8>) -> Result<usize, CodecError> {
    if let Some(display) = PROBED.get() {
        if CHECKED.fetch_add(1, Ordering::SeqCst) < CHECKS {
            let display = display.clone();
            let (done, answered) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = display.size();
                let _ = done.send(());
            });
            if answered.recv_timeout(Duration::from_secs(5)).is_err() {
                UNDER_LOCK.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    spice_server::jpeg::encode_rgb32(image, quality, out)
}

/// A small stream's frames are encoded on the display thread; that must
/// not be done with the display's lock held, or every update of the host's
/// (which takes the lock) would wait for a frame's encoding.
#[test]
fn a_streams_frames_are_encoded_with_the_displays_lock_free() {
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    assert!(PROBED.set(display.clone()).is_ok(), "one test probes");
    play_with(
        StreamingVideo::All,
        display,
        JpegEncoder::new("probing", probing_jpeg),
    );
    let checked = CHECKED.load(Ordering::SeqCst);
    assert!(
        checked >= CHECKS,
        "only {checked} frames were JPEG-encoded: no stream?"
    );
    assert_eq!(
        UNDER_LOCK.load(Ordering::SeqCst),
        0,
        "frames encoded while the display's lock was held (of {CHECKS} checked)"
    );
}

/// How the deferred video frames of [`shared_frames`] were read.
#[derive(Default)]
struct Reads {
    /// Rows drawn into the picture.
    filled: AtomicUsize,
    /// Rows copied out for a stream frame.
    copied: AtomicUsize,
    /// Frames encoded from the shared pixels.
    encoded: AtomicUsize,
    /// Of those, frames encoded on a stream encoder thread.
    on_encoder_thread: AtomicUsize,
}

/// A video frame (packed rows of its area) drawn later, sharing its pixels.
struct SharedFrameSource {
    pixels: Arc<Vec<u8>>,
    width: u32,
    reads: Arc<Reads>,
}

impl DeferredDraw for SharedFrameSource {
    fn fill_row(&mut self, row: u32, dst: &mut [u8]) -> bool {
        self.reads.filled.fetch_add(1, Ordering::SeqCst);
        let at = (row * self.width * 4) as usize;
        dst.copy_from_slice(&self.pixels[at..at + dst.len()]);
        true
    }

    fn append_row(&mut self, row: u32, len: usize, out: &mut Vec<u8>) -> bool {
        self.reads.copied.fetch_add(1, Ordering::SeqCst);
        let at = (row * self.width * 4) as usize;
        out.extend_from_slice(&self.pixels[at..at + len]);
        true
    }

    fn share(&self) -> Option<Arc<dyn SharedPixels>> {
        Some(Arc::new(SharedFrameSource {
            pixels: self.pixels.clone(),
            width: self.width,
            reads: self.reads.clone(),
        }))
    }
}

impl SharedPixels for SharedFrameSource {
    fn encode_jpeg(&self, rect: Rect, quality: u8, out: &mut Vec<u8>) -> Result<usize, CodecError> {
        self.reads.encoded.fetch_add(1, Ordering::SeqCst);
        if std::thread::current().name() == Some("SPICE stream encoder") {
            self.reads.on_encoder_thread.fetch_add(1, Ordering::SeqCst);
        }
        let stride = self.width as usize * 4;
        let start = rect.y as usize * stride + rect.x as usize * 4;
        let image = ImageRef {
            width: rect.width,
            height: rect.height,
            stride,
            data: &self.pixels[start..],
        };
        spice_server::jpeg::encode_rgb32(&image, quality, out)
    }
}

/// What [`shared_frames`] plays.
#[derive(Clone, Copy)]
enum Content {
    /// [`Canvas::video_frame`]: photographic, every pixel changes.
    Photographic,
    /// One colour a frame: every pixel changes, and a lossless frame of a
    /// large area costs little even in a debug build, so the stream starts
    /// on time while other tests load the machine.
    Flat,
}

/// Plays video drawn later ([`DisplayHandle::draw_later`]) from a source
/// that shares its pixels, in `area` of a `width`x`height` display, and
/// checks what [`a_shared_frame_is_encoded_where_its_pixels_lie`] says, with
/// at least `min_encoded` of the frames encoded from the shared pixels;
/// returns how the frames were read.
fn shared_frames(width: u32, height: u32, area: Rect, min_encoded: u32, content: Content) -> Arc<Reads> {
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    let mut canvas = Canvas::stripes(width, height, 5);
    let (server, mut gtk) = serve(StreamingVideo::All, &display, &canvas, JpegEncoder::default());
    let reads = Arc::new(Reads::default());
    let start = Instant::now();
    for t in 0..FRAMES {
        let pixels: Vec<u8> = match content {
            Content::Photographic => {
                canvas.video_frame(area, t);
                let whole = canvas.packed();
                (area.y..area.y + area.height)
                    .flat_map(|y| {
                        let at = ((y * width + area.x) * 4) as usize;
                        whole[at..at + area.width as usize * 4].to_vec()
                    })
                    .collect()
            }
            Content::Flat => {
                let colour = [(t * 3) as u8, (t * 5) as u8, 200 - t as u8, 0];
                canvas.fill(area, colour);
                colour.repeat((area.width * area.height) as usize)
            }
        };
        let source = SharedFrameSource {
            pixels: Arc::new(pixels),
            width: area.width,
            reads: reads.clone(),
        };
        display.draw_later(area.x, area.y, area.width, area.height, Box::new(source));
        let next = start + Duration::from_millis(40) * (t + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let diff = gtk.wait_surface(width, height, &canvas.packed(), T);
    assert_eq!(
        diff, 0,
        "{area:?}: the last frame, lossless, once the video stops"
    );
    let (encoded, copied) = (
        reads.encoded.load(Ordering::SeqCst),
        reads.copied.load(Ordering::SeqCst),
    );
    assert!(
        encoded as u32 >= min_encoded,
        "{area:?}: only {encoded} of {FRAMES} frames were encoded from the shared pixels"
    );
    assert_eq!(copied, 0, "{area:?}: rows copied out for stream frames");
    assert!(
        reads.filled.load(Ordering::SeqCst) > 0,
        "{area:?}: the last frame was drawn for the lossless picture"
    );
    gtk.quit();
    drop(server);
    reads
}

/// A host whose video frames are drawn later ([`DisplayHandle::draw_later`])
/// from a source that shares its pixels: the stream's frames are encoded
/// from them where they lie (no row is copied out for a frame), the client
/// gets the stream, and once the video stops the area is drawn and sent
/// losslessly, so the client ends pixel-exact. A small stream's frames are
/// encoded on the display's thread.
#[test]
fn a_shared_frame_is_encoded_where_its_pixels_lie() {
    // On the stream detector's grid, so the stream's area is the drawing's
    // (a stream reaching past a drawing copies its frames from the picture).
    let reads = shared_frames(
        640,
        480,
        Rect::new(96, 64, 320, 256),
        FRAMES / 2,
        Content::Photographic,
    );
    assert_eq!(
        reads.on_encoder_thread.load(Ordering::SeqCst),
        0,
        "a small stream is encoded on the display's thread"
    );
}

/// The same for a stream larger than 640x480, whose frames are encoded on
/// a thread of their own: they too are read where the drawing keeps them,
/// on that thread, instead of being copied out under the display's lock.
/// (That a lossless frame which never ends still asks for a stream is
/// tested on a simulated clock in `spice-server`'s
/// `channel/display/tests.rs`, where timing does not depend on the build.)
#[test]
fn a_large_streams_shared_frames_are_read_on_its_encoder_thread() {
    // Photographic frames this large took a debug build's display thread
    // so long losslessly (QUIC under the display's lock) that the host's
    // frames came late and merged, and the area never looked like video.
    let reads = shared_frames(1024, 768, Rect::new(64, 64, 832, 576), FRAMES / 2, Content::Flat);
    let (encoded, threaded) = (
        reads.encoded.load(Ordering::SeqCst),
        reads.on_encoder_thread.load(Ordering::SeqCst),
    );
    assert_eq!(threaded, encoded, "frames encoded off the stream's thread");
}
