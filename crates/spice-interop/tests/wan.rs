//! The WAN image codecs (JPEG, zlib-GLZ) on the wire and in spice-gtk.
//!
//! A raw client counts the image types the display channel sends (and
//! decodes zlib-GLZ with its own GLZ window); spice-gtk shows the frames:
//! close to the host's pixels with JPEG, which is lossy, and exactly with
//! zlib-GLZ.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use spice_interop::gtk::SpiceGtk;
use spice_interop::pattern::Canvas;
use spice_interop::raw::{RawClient, Screen, ACK_WINDOW};
use spice_proto::msg::display::{client_type as display_client, image_type, server_type as display_server};
use spice_proto::msg::{base, main};
use spice_proto::wire::{Reader, Writer};
use spice_proto::ChannelType;
use spice_server::{DisplayHandle, ImageCompression, RunningServer, ServerBuilder, WanCompression};

const T: Duration = Duration::from_secs(20);

fn server(
    canvas: &Canvas,
    configure: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> (RunningServer, DisplayHandle) {
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let server = configure(
        ServerBuilder::new()
            .port(0)
            .name("wan test")
            .display(display.clone()),
    )
    .spawn()
    .expect("server starts");
    (server, display)
}

/// A photo-like canvas: smooth colour fields with a little noise, which the
/// policy sends as QUIC (and so as JPEG when JPEG is on).
fn photo(width: u32, height: u32, seed: u64) -> Canvas {
    let mut c = Canvas::new(width, height, seed);
    let mut n = seed | 1;
    for y in 0..height {
        for x in 0..width {
            n ^= n << 13;
            n ^= n >> 7;
            n ^= n << 17;
            let noise = (n % 7) as f32 - 3.0;
            let (fx, fy, s) = (x as f32, y as f32, seed as f32);
            let r = 128.0 + 60.0 * (fx * 0.031 + s).sin() + 40.0 * (fy * 0.017 + fx * 0.005).cos();
            let g = 110.0 + 70.0 * (fy * 0.023 + s).sin() * (fx * 0.011).cos();
            let b = 90.0 + 50.0 * ((fx + fy) * 0.013 + s).sin();
            let px = |v: f32| (v + noise).clamp(0.0, 255.0) as u8;
            let i = y as usize * c.stride + x as usize * 4;
            c.data[i..i + 4].copy_from_slice(&[px(b), px(g), px(r), 0]);
        }
    }
    c
}

/// Mean absolute error per colour channel and PSNR (dB) of `got` against `want`
/// (packed xRGB).
fn error(want: &[u8], got: &[u8]) -> (f64, f64) {
    assert_eq!(want.len(), got.len());
    let (mut abs, mut sq, mut n) = (0f64, 0f64, 0f64);
    for (a, b) in want.chunks_exact(4).zip(got.chunks_exact(4)) {
        for c in 0..3 {
            let d = f64::from(a[c]) - f64::from(b[c]);
            abs += d.abs();
            sq += d * d;
            n += 1.0;
        }
    }
    let psnr = if sq == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / (sq / n)).log10()
    };
    (abs / n, psnr)
}

/// Polls spice-gtk's surface until it is within `max_mae` of `want`;
/// returns the last (MAE, PSNR).
fn wait_close(gtk: &mut SpiceGtk, canvas: &Canvas, max_mae: f64) -> (f64, f64) {
    let want = canvas.packed();
    let deadline = Instant::now() + T;
    loop {
        let e = match gtk.surface() {
            Some((w, h, px)) if (w, h) == (canvas.width, canvas.height) => error(&want, &px),
            _ => (f64::INFINITY, 0.0),
        };
        if e.0 <= max_mae || Instant::now() >= deadline {
            return e;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The image type of a DRAW_COPY body.
fn draw_copy_image_type(body: &[u8]) -> Option<u8> {
    // surface (4), box (16), clip type (1) with no clip, then the image offset.
    let mut r = Reader::new(body);
    r.take(20, "surface and box").ok()?;
    if r.u8("clip").ok()? != 0 {
        return None;
    }
    let offset = r.u32("image offset").ok()? as usize;
    // The image descriptor: id (8), then the type.
    body.get(offset + 8).copied()
}

/// A main channel that answers pings like a client, holding back the pong
/// of the net test's padded ping by `delay` (a slow link).
struct Main {
    /// Kept open: closing the main channel ends the session.
    _chan: RawClient,
    session_id: u32,
}

impl Main {
    fn link(addr: SocketAddr, padded_pong_delay: Duration) -> Self {
        let mut chan = RawClient::link(addr, ChannelType::Main, 0, 0, "").expect("main links");
        let init = chan.recv_type(main::server_type::INIT, T).expect("MAIN_INIT");
        let session_id = u32::from_le_bytes(init.body[..4].try_into().unwrap());
        let mut pings = 0;
        while pings < 3 {
            let Some(f) = chan.recv(T) else { break };
            if f.msg_type != base::server_type::PING {
                continue;
            }
            pings += 1;
            if f.body.len() > 12 {
                std::thread::sleep(padded_pong_delay);
            }
            // PONG echoes the id and timestamp.
            chan.send(base::client_type::PONG, &f.body[..12]);
        }
        assert_eq!(pings, 3, "the net test's three pings");
        Self {
            _chan: chan,
            session_id,
        }
    }
}

/// A raw display channel with a GLZ window (if `glz_window` > 0) that
/// applies what it can and counts every image type.
struct Display {
    chan: RawClient,
    screen: Screen,
    kinds: BTreeMap<u8, u32>,
    received: u32,
}

impl Display {
    fn link(addr: SocketAddr, session_id: u32, glz_window: i32) -> Self {
        let mut chan = RawClient::link(addr, ChannelType::Display, 0, session_id, "").expect("display links");
        let mut init = Vec::new();
        Writer::new(&mut init).u8(1).u64(0).u8(1).i32(glz_window);
        chan.send(display_client::INIT, &init);
        let screen = if glz_window > 0 {
            Screen::with_glz()
        } else {
            Screen::default()
        };
        Self {
            chan,
            screen,
            kinds: BTreeMap::new(),
            received: 0,
        }
    }

    /// Reads until `done` holds (after a MARK or any message), or the timeout.
    fn read_until(&mut self, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + T;
        while !done(self) && Instant::now() < deadline {
            let Some(frame) = self.chan.recv(Duration::from_millis(200)) else {
                continue;
            };
            self.received += 1;
            if self.received % ACK_WINDOW == 0 {
                self.chan.send(base::client_type::ACK, &[]);
            }
            if frame.msg_type == display_server::DRAW_COPY {
                let kind = draw_copy_image_type(&frame.body).expect("a DRAW_COPY with an image");
                *self.kinds.entry(kind).or_default() += 1;
                // The test client does not decode JPEG; spice-gtk does below.
                if kind == image_type::JPEG {
                    continue;
                }
            }
            self.screen.apply(&frame).unwrap();
        }
    }
}

/// For a raw client on a link whose padded ping comes back after `delay`:
/// the image types of the first picture of `start` (always lossless, as the
/// C server sends a surface to a client that connects), then those of an
/// update that replaces it with `next`, and the client's screen after it
/// (not drawn where the update went as JPEG, which the raw client does not
/// decode).
fn first_update(
    start: &Canvas,
    next: &Canvas,
    delay: Duration,
    configure: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> (BTreeMap<u8, u32>, BTreeMap<u8, u32>, Screen) {
    let (s, display) = server(start, configure);
    let main = Main::link(s.local_addr(), delay);
    let mut d = Display::link(s.local_addr(), main.session_id, 0);
    d.read_until(|d| d.screen.marks > 0);
    let first = std::mem::take(&mut d.kinds);
    next.publish(&display);
    d.read_until(|d| !d.kinds.is_empty());
    (first, d.kinds, d.screen)
}

/// The image types of the first picture of `canvas` for a raw client on a
/// link whose padded ping comes back after `delay`.
fn first_picture(
    canvas: &Canvas,
    delay: Duration,
    glz_window: i32,
    configure: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> (BTreeMap<u8, u32>, Screen) {
    let (s, _display) = server(canvas, configure);
    let main = Main::link(s.local_addr(), delay);
    let mut d = Display::link(s.local_addr(), main.session_id, glz_window);
    d.read_until(|d| d.screen.marks > 0);
    (d.kinds, d.screen)
}

#[test]
fn jpeg_replaces_quic_for_photographic_images_as_set_and_on_slow_links() {
    use image_type::{JPEG, QUIC};
    let (start, next) = (photo(240, 160, 1), photo(240, 160, 2));
    let fast = Duration::ZERO;
    // 250 KiB in 400 ms: about 5 Mbps, a low-bandwidth link.
    let slow = Duration::from_millis(400);
    let only = |kind| BTreeMap::from([(kind, 1)]);
    let jpeg = |setting| {
        move |b: ServerBuilder| {
            b.image_compression(ImageCompression::AutoGlz)
                .jpeg_compression(setting)
        }
    };
    let updates = |delay, setting| {
        let (first, update, _) = first_update(&start, &next, delay, jpeg(setting));
        // The picture at connection is lossless whatever the setting.
        assert_eq!(first, only(QUIC), "{setting:?}: first picture");
        update
    };
    assert_eq!(updates(fast, WanCompression::Always), only(JPEG));
    assert_eq!(updates(slow, WanCompression::Never), only(QUIC));
    // Auto follows the net test.
    assert_eq!(updates(fast, WanCompression::Auto), only(QUIC));
    assert_eq!(updates(slow, WanCompression::Auto), only(JPEG));
    // Non-photographic content stays lossless whatever the setting.
    let stripes = Canvas::stripes(240, 160, 2);
    let (_, kinds, screen) = first_update(&start, &stripes, fast, jpeg(WanCompression::Always));
    assert_eq!(kinds, only(image_type::LZ_RGB));
    assert_eq!(
        spice_interop::pattern::diff_count(&screen.pixels, &stripes.packed()),
        0
    );
}

#[test]
fn jpeg_images_come_from_the_configured_encoder() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    fn counted(
        image: &spice_server::jpeg::ImageRef,
        quality: u8,
        out: &mut Vec<u8>,
    ) -> Result<usize, spice_server::jpeg::CodecError> {
        CALLS.fetch_add(1, Ordering::SeqCst);
        spice_server::jpeg::encode_rgb32(image, quality, out)
    }
    let (_, kinds, _) = first_update(&photo(240, 160, 3), &photo(240, 160, 4), Duration::ZERO, |b| {
        b.jpeg_compression(WanCompression::Always)
            .jpeg_encoder(spice_server::jpeg::JpegEncoder::new("counted", counted))
    });
    assert_eq!(kinds, BTreeMap::from([(image_type::JPEG, 1)]));
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        1,
        "the one JPEG image came from the host's encoder"
    );
}

#[test]
fn zlib_glz_goes_to_clients_with_a_window_and_is_exact() {
    use image_type::{GLZ_RGB, LZ_RGB, ZLIB_GLZ_RGB};
    let canvas = Canvas::stripes(240, 160, 3);
    let zlib = |setting| {
        move |b: ServerBuilder| {
            b.image_compression(ImageCompression::Glz)
                .zlib_glz_compression(setting)
        }
    };
    for (setting, window, kind) in [
        (WanCompression::Always, 1 << 20, ZLIB_GLZ_RGB),
        (WanCompression::Never, 1 << 20, GLZ_RGB),
        (WanCompression::Auto, 1 << 20, GLZ_RGB),
        // No window (spice-html5): LZ, with or without zlib-GLZ.
        (WanCompression::Always, 0, LZ_RGB),
    ] {
        let (kinds, screen) = first_picture(&canvas, Duration::ZERO, window, zlib(setting));
        assert_eq!(kinds, BTreeMap::from([(kind, 1)]), "{setting:?}, window {window}");
        assert_eq!(
            spice_interop::pattern::diff_count(&screen.pixels, &canvas.packed()),
            0,
            "{setting:?}, window {window}"
        );
    }
    let slow = Duration::from_millis(400);
    let (kinds, _) = first_picture(&canvas, slow, 1 << 20, zlib(WanCompression::Auto));
    assert_eq!(kinds, BTreeMap::from([(ZLIB_GLZ_RGB, 1)]), "auto on a slow link");
}

/// spice-gtk decodes the JPEG images: the photo arrives close to the host's
/// pixels (not exact: JPEG is lossy), and so do later photographic updates.
#[test]
fn spice_gtk_shows_jpeg_images_close_to_the_original() {
    let mut canvas = photo(320, 200, 4);
    let (s, display) = server(&canvas, |b| {
        b.image_compression(ImageCompression::AutoGlz)
            .jpeg_compression(WanCompression::Always)
    });
    let mut gtk = SpiceGtk::start();
    gtk.connect(s.local_addr(), None);
    gtk.expect("mark", T);
    // The picture at connection is lossless, as the C server sends it.
    let (mae, _) = wait_close(&mut gtk, &canvas, 0.0);
    assert_eq!(mae, 0.0, "first picture exact");

    // A new photo over most of the screen.
    canvas = {
        let next = photo(320, 200, 9);
        let mut c = canvas.clone();
        for y in 20..180 {
            let i = y * c.stride + 30 * 4;
            c.data[i..i + 260 * 4].copy_from_slice(&next.data[i..i + 260 * 4]);
        }
        c
    };
    display
        .update(&canvas.frame(), &[spice_server::Rect::new(30, 20, 260, 160)])
        .unwrap();
    let (mae, psnr) = wait_close(&mut gtk, &canvas, 2.5);
    eprintln!("after an update in spice-gtk: MAE {mae:.2}, PSNR {psnr:.1} dB");
    assert!(
        mae <= 2.5 && psnr >= 35.0,
        "after an update: MAE {mae:.2}, PSNR {psnr:.1} dB"
    );
    assert_ne!(mae, 0.0, "JPEG is lossy: an exact picture means it was not used");
    gtk.quit();
}

/// spice-gtk inflates ZLIB_GLZ_RGB and keeps its GLZ window in step: frames
/// are pixel-exact across scrolls, and the raw client saw zlib-GLZ.
#[test]
fn spice_gtk_shows_zlib_glz_images_pixel_exact() {
    let mut canvas = Canvas::stripes(320, 200, 5);
    let (s, display) = server(&canvas, |b| {
        b.image_compression(ImageCompression::Glz)
            .zlib_glz_compression(WanCompression::Always)
    });
    let mut gtk = SpiceGtk::start();
    gtk.connect(s.local_addr(), None);
    gtk.expect("mark", T);
    let exact = |gtk: &mut SpiceGtk, canvas: &Canvas, what: &str| {
        let diff = gtk.wait_surface(canvas.width, canvas.height, &canvas.packed(), T);
        assert_eq!(diff, 0, "{what}: {diff} pixels differ");
    };
    exact(&mut gtk, &canvas, "first picture");
    for k in 0..20 {
        let rect = canvas.scroll_up(3 + k % 7);
        display.update(&canvas.frame(), &[rect]).unwrap();
    }
    exact(&mut gtk, &canvas, "after scrolls");
    gtk.quit();

    let main = Main::link(s.local_addr(), Duration::ZERO);
    let mut d = Display::link(s.local_addr(), main.session_id, 1 << 20);
    d.read_until(|d| d.screen.marks > 0);
    assert_eq!(d.kinds, BTreeMap::from([(image_type::ZLIB_GLZ_RGB, 1)]));
    assert_eq!(
        spice_interop::pattern::diff_count(&d.screen.pixels, &canvas.packed()),
        0
    );
}
