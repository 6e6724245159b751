//! A video stream's rate follows the client's link: spice-gtk watches a
//! video through a proxy that shapes what the server sends; once the
//! stream runs, the link drops to 1 Mbit/s (20 ms late, small socket
//! buffers): the stream's frame rate drops and its bit rate stays near the
//! link's, and its JPEG quality stays below what the same video reaches on
//! a link that stays fast (there it climbs after a run of prompt frames);
//! both end pixel-exact once the video stops. What the
//! stream did is read from `ServerHandle::stats`.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::SockRef;
use spice_interop::gtk::SpiceGtk;
use spice_interop::pattern::Canvas;
use spice_server::{DisplayHandle, Rect, ServerBuilder, StreamingVideo};

const T: Duration = Duration::from_secs(60);

/// A link from the server to its clients of `rate` bytes per second (none:
/// as fast as loopback), each chunk arriving `delay` late; the other
/// direction is plain. All the connections through it share the rate, as
/// a client's channels share its line.
struct SlowLink {
    addr: SocketAddr,
    pace: Arc<Mutex<Pace>>,
}

/// When the shaped direction may send its next byte.
struct Pace {
    rate: Option<f64>,
    delay: Duration,
    next: Instant,
}

impl SlowLink {
    fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listens");
        let addr = listener.local_addr().unwrap();
        let pace = Arc::new(Mutex::new(Pace {
            rate: None,
            delay: Duration::ZERO,
            next: Instant::now(),
        }));
        let shared = pace.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(target) else {
                    break;
                };
                // Small buffers on both sides of the proxy: the backlog
                // waits in the server, as on a real slow line.
                let _ = SockRef::from(&server).set_recv_buffer_size(32 * 1024);
                let _ = SockRef::from(&client).set_send_buffer_size(32 * 1024);
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || copy(c2, s2, None));
                let pace = shared.clone();
                std::thread::spawn(move || copy(server, client, Some(pace)));
            }
        });
        Self { addr, pace }
    }

    /// From now on, `rate` bytes per second, each chunk `delay` late.
    fn slow_down(&self, rate: u64, delay: Duration) {
        let mut p = self.pace.lock().unwrap();
        p.rate = Some(rate as f64);
        p.delay = delay;
        p.next = Instant::now();
    }
}

/// Copies `from` to `to`, paced and delayed if asked, until either closes.
fn copy(mut from: TcpStream, mut to: TcpStream, pace: Option<Arc<Mutex<Pace>>>) {
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(pace) = &pace {
            let due = {
                let mut p = pace.lock().unwrap();
                p.rate.map(|rate| {
                    let start = p.next.max(Instant::now());
                    p.next = start + Duration::from_secs_f64(n as f64 / rate);
                    p.next + p.delay
                })
            };
            if let Some(due) = due {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// What one run of the video showed.
#[derive(Debug)]
struct Run {
    /// The stream's lowest JPEG quality in the second half of the video.
    lowest_quality: u8,
    /// Stream frames and bytes sent in that half.
    frames: u64,
    bytes: u64,
    /// How long that half lasted.
    played: Duration,
}

/// A server streaming any area that keeps changing, with a 640x480 picture.
fn video_server(seed: u64) -> (spice_server::RunningServer, DisplayHandle, Canvas) {
    spice_interop::init_logging();
    let canvas = Canvas::stripes(640, 480, seed);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let server = ServerBuilder::new()
        .port(0)
        .streaming_video(StreamingVideo::All)
        .display(display.clone())
        .spawn()
        .expect("server starts");
    (server, display, canvas)
}

/// The display channel's figures, once it has them.
fn display_stats(handle: &spice_server::ServerHandle) -> Option<spice_server::DisplayStats> {
    handle
        .stats()
        .clients
        .iter()
        .flat_map(|c| &c.channels)
        .find_map(|c| c.display.clone())
}

/// Plays 8 s of a 320x240 video at 25 fps to spice-gtk through the proxy;
/// after 3 s (the stream runs) the link drops to `slow` bytes per second if
/// given. Checks the client ends pixel-exact.
fn play(slow: Option<u64>) -> Run {
    let (server, display, mut canvas) = video_server(21);
    let handle = server.handle();
    let link = SlowLink::start(server.local_addr());
    let mut gtk = SpiceGtk::start();
    gtk.connect(link.addr, None);
    assert_eq!(
        gtk.wait_surface(640, 480, &canvas.packed(), T),
        0,
        "{slow:?}: first picture"
    );

    let area = Rect::new(64, 64, 320, 240);
    let start = Instant::now();
    let mut lowest = u8::MAX;
    let mut half = None;
    for t in 0..200 {
        if t == 75 {
            let d = display_stats(&handle).expect("display figures");
            assert!(
                d.stream.is_some(),
                "{slow:?}: the stream runs before the link changes: {d:?}"
            );
            if let Some(rate) = slow {
                link.slow_down(rate, Duration::from_millis(20));
            }
            half = Some((Instant::now(), d.stream_frames, d.stream_bytes));
        }
        let rect = canvas.video_frame(area, t);
        display.update(&canvas.frame(), &[rect]).unwrap();
        if half.is_some() {
            if let Some(s) = display_stats(&handle).and_then(|d| d.stream) {
                lowest = lowest.min(s.quality);
            }
        }
        let next = start + Duration::from_millis(40) * (t + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let (since, frames, bytes) = half.expect("the video's second half");
    let d = display_stats(&handle).expect("display figures");
    let run = Run {
        lowest_quality: lowest,
        frames: d.stream_frames - frames,
        bytes: d.stream_bytes - bytes,
        played: since.elapsed(),
    };
    assert_eq!(
        gtk.wait_surface(640, 480, &canvas.packed(), T),
        0,
        "{slow:?}: exact once the video stops"
    );
    gtk.quit();
    run
}

#[test]
fn a_stream_follows_a_link_that_slows_down_and_ends_exact() {
    const RATE: u64 = 125_000; // 1 Mbit/s
    let fast = play(None);
    let slow = play(Some(RATE));
    eprintln!("fast link: {fast:?}\n1 Mbit/s: {slow:?}");
    assert!(fast.frames > 60, "the stream ran on the fast link: {fast:?}");
    assert!(slow.frames > 10, "the stream went on on the slow link: {slow:?}");
    // A stream starts at quality 70 and climbs only after a run of prompt
    // frames, which a slow link never gives.
    assert!(
        slow.lowest_quality <= 70 && slow.lowest_quality <= fast.lowest_quality,
        "the slow link's stream does not gain quality: {slow:?} vs {fast:?}"
    );
    assert!(
        slow.frames * 4 < fast.frames * 3,
        "the frame rate follows the link: {slow:?} vs {fast:?}"
    );
    // What the stream sent fits the link, with room for what the socket
    // buffers and the client's ACK window hold.
    let budget = RATE as f64 * slow.played.as_secs_f64() * 1.3 + 512.0 * 1024.0;
    assert!(
        (slow.bytes as f64) < budget,
        "{} stream bytes in {:?} on a {RATE} B/s link",
        slow.bytes,
        slow.played
    );
}

/// A raw client's main channel and its display channel (with `caps`),
/// initialised (no caches) and acknowledging from the start.
fn raw_display(
    addr: std::net::SocketAddr,
    caps: &[u32],
) -> (spice_interop::raw::RawClient, spice_interop::raw::RawClient) {
    use spice_interop::raw::RawClient;
    use spice_proto::msg::display::client_type;
    use spice_proto::msg::{base, main};
    use spice_proto::wire::Writer;
    use spice_proto::ChannelType;

    let mut main_link = RawClient::link(addr, ChannelType::Main, 0, 0, "").expect("main links");
    let init = main_link
        .recv_type(main::server_type::INIT, T)
        .expect("MAIN_INIT");
    let session = u32::from_le_bytes(init.body[..4].try_into().unwrap());
    let mut screen =
        RawClient::link_with(addr, ChannelType::Display, 0, session, "", true, caps).expect("display links");
    let mut body = Vec::new();
    Writer::new(&mut body).u8(1).u64(0).u8(0).i32(0);
    screen.send(client_type::INIT, &body);
    screen.send(base::client_type::ACK_SYNC, &1u32.to_le_bytes());
    (main_link, screen)
}

/// A client with the `STREAM_REPORT` capability is asked for reports on
/// each stream (window 5 frames, 1 s, as C); when it reports it cannot play
/// the stream (no frames, `u32::MAX` drops), the stream ends, the area comes
/// losslessly, and no stream starts again for it while the video plays on.
#[test]
fn a_client_that_cannot_play_a_stream_gets_the_area_lossless() {
    use spice_proto::consts::display_cap;
    use spice_proto::msg::base;
    use spice_proto::msg::display::{client_type, server_type};
    use spice_proto::wire::Writer;

    let (server, display, mut canvas) = video_server(22);
    let (_main, mut screen) = raw_display(server.local_addr(), &[display_cap::STREAM_REPORT]);

    let area = Rect::new(64, 64, 320, 240);
    let start = Instant::now();
    let mut seen: Vec<u16> = Vec::new();
    let mut activation = None;
    let mut refused_at = None;
    let mut received = 0u32;
    for t in 0..150u32 {
        let rect = canvas.video_frame(area, t);
        display.update(&canvas.frame(), &[rect]).unwrap();
        let next = start + Duration::from_millis(40) * (t + 1);
        while let Some(frame) = screen.recv(next.saturating_duration_since(Instant::now())) {
            received += 1;
            if received % 20 == 0 {
                screen.send(base::client_type::ACK, &[]);
            }
            if refused_at.is_some() {
                seen.push(frame.msg_type);
            }
            if frame.msg_type == server_type::STREAM_ACTIVATE_REPORT && activation.is_none() {
                let word = |i: usize| u32::from_le_bytes(frame.body[i * 4..i * 4 + 4].try_into().unwrap());
                activation = Some([word(0), word(1), word(2), word(3)]);
                // "Cannot play": no frames, every frame dropped.
                let mut report = Vec::new();
                let mut w = Writer::new(&mut report);
                w.u32(word(0))
                    .u32(word(1))
                    .u32(0)
                    .u32(0)
                    .u32(0)
                    .u32(u32::MAX)
                    .i32(0)
                    .u32(0);
                screen.send(client_type::STREAM_REPORT, &report);
                refused_at = Some(t);
            }
            if Instant::now() >= next {
                break;
            }
        }
    }
    let [_, _, window, timeout] = activation.expect("the stream's reports were activated");
    assert_eq!((window, timeout), (5, 1000));
    let refused_at = refused_at.unwrap();
    assert!(
        refused_at < 100,
        "the stream started while the video played (frame {refused_at})"
    );
    let destroyed = seen.iter().position(|&m| m == server_type::STREAM_DESTROY);
    let destroyed = destroyed.unwrap_or_else(|| panic!("STREAM_DESTROY after the refusal: {seen:?}"));
    assert!(
        seen[destroyed..].contains(&server_type::DRAW_COPY),
        "the area again, lossless: {seen:?}"
    );
    assert!(
        !seen.contains(&server_type::STREAM_CREATE),
        "no stream again for this client: {seen:?}"
    );
    assert!(
        !seen[destroyed..].contains(&server_type::STREAM_DATA),
        "no stream frames after the end: {seen:?}"
    );
}

/// A client that changes its preferred stream codecs twice in a row, while
/// a stream runs and just before the video stops, still gets the stream's
/// area again losslessly (the second change, with no stream left to end,
/// must not cancel the first's resend).
#[test]
fn preferred_codecs_changed_twice_still_resend_the_area() {
    use spice_proto::msg::base;
    use spice_proto::msg::display::{client_type, server_type, VIDEO_CODEC_MJPEG};

    let (server, display, mut canvas) = video_server(23);
    let (_main, mut screen) = raw_display(server.local_addr(), &[]);

    let area = Rect::new(64, 64, 320, 240);
    let start = Instant::now();
    let mut received = 0u32;
    let mut streaming = false;
    let mut t = 0u32;
    // Play until the stream runs, then a few frames more.
    let mut frames_left = None;
    while frames_left != Some(0) && t < 200 {
        let rect = canvas.video_frame(area, t);
        display.update(&canvas.frame(), &[rect]).unwrap();
        t += 1;
        frames_left = frames_left.map(|n: u32| n - 1);
        let next = start + Duration::from_millis(40) * t;
        while let Some(frame) = screen.recv(next.saturating_duration_since(Instant::now())) {
            received += 1;
            if received % 20 == 0 {
                screen.send(base::client_type::ACK, &[]);
            }
            if frame.msg_type == server_type::STREAM_CREATE && !streaming {
                streaming = true;
                frames_left = Some(5);
            }
            if Instant::now() >= next {
                break;
            }
        }
    }
    assert!(streaming, "a stream started");
    // The video stops; the client changes its mind twice at once.
    screen.send(client_type::PREFERRED_VIDEO_CODEC_TYPE, &[1, VIDEO_CODEC_MJPEG]);
    screen.send(client_type::PREFERRED_VIDEO_CODEC_TYPE, &[1, VIDEO_CODEC_MJPEG]);
    let mut destroyed = false;
    let mut covered = 0u64;
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Some(frame) = screen.recv(deadline.saturating_duration_since(Instant::now())) {
        received += 1;
        if received % 20 == 0 {
            screen.send(base::client_type::ACK, &[]);
        }
        match frame.msg_type {
            server_type::STREAM_DESTROY => destroyed = true,
            // The draw's box: surface id, then top, left, bottom, right.
            server_type::DRAW_COPY if destroyed => {
                let word =
                    |i: usize| i32::from_le_bytes(frame.body[4 + i * 4..8 + i * 4].try_into().unwrap());
                let (top, left, bottom, right) = (word(0), word(1), word(2), word(3));
                let drawn = Rect::new(
                    left as u32,
                    top as u32,
                    (right - left) as u32,
                    (bottom - top) as u32,
                );
                covered += drawn.intersection(&area).map_or(0, |r| r.area());
            }
            _ => {}
        }
        if destroyed && covered >= area.area() {
            break;
        }
    }
    assert!(destroyed, "the stream ended on the preference change");
    assert!(
        covered >= area.area(),
        "the stream's area came again losslessly: {covered} of {} pixels",
        area.area()
    );
}
