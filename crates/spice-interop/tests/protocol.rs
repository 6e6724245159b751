//! Protocol behaviour a well-behaved client never shows: link errors, stalls,
//! garbage, and a client that stops reading.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use spice_interop::pattern::{Canvas, DRAG_STEPS};
use spice_interop::raw::{link_request, read_exact_timeout, wait_closed, LinkOutcome, RawClient, Screen};
use spice_proto::consts::common_cap;
use spice_proto::msg::{base, display, main};
use spice_proto::wire::Writer;
use spice_proto::{ChannelType, HeaderKind, LinkError};
use spice_server::{DisplayHandle, RunningServer, ServerBuilder};

const T: Duration = Duration::from_secs(10);

fn server(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> (RunningServer, DisplayHandle) {
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    Canvas::new(64, 48, 1).publish(&display);
    let server = configure(ServerBuilder::new().port(0).display(display.clone()))
        .spawn()
        .unwrap();
    (server, display)
}

/// Sends raw bytes and returns the error word of the link reply the server answers with.
fn reply_error_for(addr: SocketAddr, bytes: &[u8]) -> u32 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(bytes).unwrap();
    let mut reply = [0u8; 16 + 178];
    read_exact_timeout(&mut s, &mut reply, T).expect("a link reply");
    assert_eq!(&reply[..4], b"REDQ");
    let error = u32::from_le_bytes(reply[16..20].try_into().unwrap());
    assert!(wait_closed(&mut s, T), "connection closed after the error");
    error
}

fn session(addr: SocketAddr) -> (RawClient, u32) {
    let mut main = RawClient::link(addr, ChannelType::Main, 0, 0, "").expect("main links");
    let init = main.recv_type(main::server_type::INIT, T).expect("MAIN_INIT");
    (main, u32::from_le_bytes(init.body[..4].try_into().unwrap()))
}

#[test]
fn link_errors_reach_the_client_and_close_the_connection() {
    let (s, _) = server(|b| b.password("pw"));
    let addr = s.local_addr();
    assert_eq!(
        reply_error_for(addr, b"GET / HTTP/1.1\r\n\r\n"),
        LinkError::InvalidMagic.code()
    );
    let mut bad_version = link_request(ChannelType::Main, 0, 0, &[]);
    bad_version[4] = 1;
    assert_eq!(
        reply_error_for(addr, &bad_version),
        LinkError::VersionMismatch.code()
    );
    let mut bad_size = link_request(ChannelType::Main, 0, 0, &[]);
    bad_size[12..16].copy_from_slice(&100_000u32.to_le_bytes());
    assert_eq!(reply_error_for(addr, &bad_size), LinkError::InvalidData.code());
    let mut bad_caps = link_request(ChannelType::Main, 0, 0, &[common_cap::AUTH_SPICE]);
    bad_caps[16 + 6..16 + 10].copy_from_slice(&5000u32.to_le_bytes());
    assert_eq!(reply_error_for(addr, &bad_caps), LinkError::InvalidData.code());

    assert_eq!(
        RawClient::link(addr, ChannelType::Main, 0, 0, "wrong").err(),
        Some(LinkOutcome::ResultError(LinkError::PermissionDenied.code()))
    );
    let (_main, id) = {
        let mut main = RawClient::link(addr, ChannelType::Main, 0, 0, "pw").expect("right password links");
        let init = main.recv_type(main::server_type::INIT, T).expect("MAIN_INIT");
        (main, u32::from_le_bytes(init.body[..4].try_into().unwrap()))
    };
    assert_eq!(
        RawClient::link(addr, ChannelType::Display, 0, id ^ 1, "pw").err(),
        Some(LinkOutcome::ResultError(LinkError::BadConnectionId.code()))
    );
    // A channel that does not exist is refused in the link reply, before
    // any key is made for it.
    assert_eq!(
        RawClient::link(addr, ChannelType::Playback, 0, id, "pw").err(),
        Some(LinkOutcome::ReplyError(LinkError::ChannelNotAvailable.code()))
    );
    assert!(RawClient::link(addr, ChannelType::Display, 0, id, "pw").is_ok());
}

#[test]
fn expired_password_is_refused() {
    let (s, _) = server(|b| b.password_with_lifetime("pw", Duration::from_millis(200)));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        RawClient::link(s.local_addr(), ChannelType::Main, 0, 0, "pw").err(),
        Some(LinkOutcome::ResultError(LinkError::PermissionDenied.code()))
    );
}

#[test]
fn stalled_links_are_dropped_after_the_timeout() {
    let (s, _) = server(|b| b.link_timeout(Duration::from_millis(300)));
    let mut silent = TcpStream::connect(s.local_addr()).unwrap();
    let mut half = TcpStream::connect(s.local_addr()).unwrap();
    half.write_all(&link_request(ChannelType::Main, 0, 0, &[])[..10])
        .unwrap();
    let start = Instant::now();
    assert!(
        wait_closed(&mut silent, Duration::from_secs(5)),
        "silent client dropped"
    );
    assert!(
        wait_closed(&mut half, Duration::from_secs(5)),
        "half-linked client dropped"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "not before the timeout"
    );
    // A linked channel is not subject to the link timeout.
    let (mut main, _) = session(s.local_addr());
    std::thread::sleep(Duration::from_millis(600));
    main.send(main::client_type::ATTACH_CHANNELS, &[]);
    assert!(main.recv_type(main::server_type::CHANNELS_LIST, T).is_some());
}

#[test]
fn full_header_client_is_served_with_full_headers() {
    let (s, _) = server(|b| b);
    let mut main = RawClient::link_with(s.local_addr(), ChannelType::Main, 0, 0, "", false, &[]).unwrap();
    assert_eq!(main.header(), HeaderKind::Full);
    let init = main
        .recv_type(main::server_type::INIT, T)
        .expect("INIT framed with the full header");
    assert_eq!(init.body.len(), 32);
    main.send(main::client_type::ATTACH_CHANNELS, &[]);
    let list = main.recv_type(main::server_type::CHANNELS_LIST, T).unwrap();
    assert_eq!(list.body, [3, 0, 0, 0, 2, 0, 4, 0, 3, 0]);
}

#[test]
fn garbage_never_stops_the_server() {
    let (s, _) = server(|b| b.link_timeout(Duration::from_millis(500)));
    let addr = s.local_addr();
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut noise = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    // Random bytes before and after a valid link header.
    for i in 0..40 {
        let mut c = TcpStream::connect(addr).unwrap();
        let mut bytes = if i % 2 == 0 {
            Vec::new()
        } else {
            link_request(ChannelType::Main, 0, 0, &[0, 1, 3])
        };
        let cut = bytes.len() * (i % 5) / 4;
        bytes.truncate(cut);
        bytes.extend(noise(1 + i * 37));
        let _ = c.write_all(&bytes);
    }
    // Malformed messages on linked channels.
    let (mut main, id) = session(addr);
    main.send(main::client_type::MOUSE_MODE_REQUEST, &[1]);
    assert!(
        wait_closed(&mut main.stream, T),
        "truncated message closes the channel"
    );
    let (mut main, id2) = session(addr);
    assert_ne!(id, id2);
    let mut inputs = RawClient::link(addr, ChannelType::Inputs, 0, id2, "").unwrap();
    let mut huge = Vec::new();
    HeaderKind::Mini.encode(0, 101, u32::MAX, &mut huge);
    inputs.stream.write_all(&huge).unwrap();
    assert!(
        wait_closed(&mut inputs.stream, T),
        "oversized message closes the channel"
    );
    // The session's main channel is unaffected, and new clients are served.
    main.send(main::client_type::ATTACH_CHANNELS, &[]);
    assert!(main.recv_type(main::server_type::CHANNELS_LIST, T).is_some());
    let (_main3, _) = session(addr);
}

#[test]
fn slow_client_never_blocks_the_host_and_catches_up_exactly() {
    let (s, display) = server(|b| b);
    let addr = s.local_addr();
    let (_main, id) = session(addr);
    let mut chan = RawClient::link(addr, ChannelType::Display, 0, id, "").unwrap();
    let mut init = Vec::new();
    Writer::new(&mut init).u8(1).u64(0).u8(0).i32(0);
    chan.send(display::client_type::INIT, &init);
    chan.send(base::client_type::ACK_SYNC, &1u32.to_le_bytes());

    // The client reads nothing while the host produces far more than any buffer holds.
    let mut canvas = Canvas::new(640, 480, 42);
    canvas.publish(&display);
    let start = Instant::now();
    let updates = 400;
    for _ in 0..updates {
        let rect = canvas.scribble();
        display.update(&canvas.frame(), &[rect]).unwrap();
    }
    let host_time = start.elapsed();
    assert!(
        host_time < Duration::from_secs(30),
        "host was held up: {host_time:?}"
    );

    // Now the client catches up, acknowledging as spice-gtk does.
    let mut screen = Screen::default();
    let expected = canvas.packed();
    let mut received = 0u32;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Some(frame) = chan.recv(Duration::from_millis(500)) else {
            if screen.pixels == expected {
                break;
            }
            continue;
        };
        received += 1;
        if received % spice_interop::raw::ACK_WINDOW == 0 {
            chan.send(base::client_type::ACK, &[]);
        }
        screen.apply(&frame).unwrap();
    }
    assert_eq!((screen.width, screen.height), (640, 480));
    assert_eq!(
        spice_interop::pattern::diff_count(&screen.pixels, &expected),
        0,
        "final picture is exact"
    );
    assert!(
        screen.draws < updates,
        "damage coalesced while the client was behind ({} draws for {updates} updates)",
        screen.draws
    );
}

#[test]
fn authentication_can_change_at_runtime() {
    let (s, _) = server(|b| b);
    let addr = s.local_addr();
    let settle = || std::thread::sleep(Duration::from_millis(150));
    assert!(
        RawClient::link(addr, ChannelType::Main, 0, 0, "anything").is_ok(),
        "no auth at first"
    );

    s.handle().set_auth(spice_server::Auth::Password {
        password: "fresh".into(),
        lifetime: None,
    });
    settle();
    let denied = Some(LinkOutcome::ResultError(LinkError::PermissionDenied.code()));
    assert_eq!(
        RawClient::link(addr, ChannelType::Main, 0, 0, "anything").err(),
        denied
    );
    assert!(RawClient::link(addr, ChannelType::Main, 0, 0, "fresh").is_ok());

    s.handle().expire_password();
    settle();
    assert_eq!(
        RawClient::link(addr, ChannelType::Main, 0, 0, "fresh").err(),
        denied
    );

    s.handle().set_auth(spice_server::Auth::None);
    settle();
    assert!(RawClient::link(addr, ChannelType::Main, 0, 0, "").is_ok());
}

/// Message types of the display channel up to and including the next MARK.
fn display_sequence(chan: &mut RawClient, screen: &mut Screen) -> Vec<u16> {
    let mut types = Vec::new();
    while let Some(frame) = chan.recv(T) {
        screen.apply(&frame).unwrap();
        types.push(frame.msg_type);
        if frame.msg_type == display::server_type::MARK {
            break;
        }
    }
    types
}

#[test]
fn display_start_and_resize_follow_the_c_server_sequence() {
    use display::server_type::{DRAW_COPY, MARK, MONITORS_CONFIG, SURFACE_CREATE, SURFACE_DESTROY};
    let (s, display) = server(|b| b);
    let addr = s.local_addr();
    let (_main, id) = session(addr);
    let monitors_cap = spice_proto::consts::display_cap::MONITORS_CONFIG;
    let mut chan =
        RawClient::link_with(addr, ChannelType::Display, 0, id, "", true, &[monitors_cap]).unwrap();
    let set_ack = chan.recv(T).expect("SET_ACK first");
    assert_eq!(set_ack.msg_type, base::server_type::SET_ACK);
    let mut init = Vec::new();
    Writer::new(&mut init).u8(1).u64(0).u8(0).i32(0);
    chan.send(display::client_type::INIT, &init);

    let mut screen = Screen::default();
    let types = display_sequence(&mut chan, &mut screen);
    assert_eq!(types, [SURFACE_CREATE, DRAW_COPY, MONITORS_CONFIG, MARK]);

    let big = Canvas::new(700, 500, 3);
    big.publish(&display);
    let types = display_sequence(&mut chan, &mut screen);
    assert_eq!(
        types,
        [SURFACE_DESTROY, SURFACE_CREATE, DRAW_COPY, MONITORS_CONFIG, MARK],
        "the whole new picture goes out as one image"
    );
    assert_eq!(
        spice_interop::pattern::diff_count(&screen.pixels, &big.packed()),
        0
    );
    assert_eq!((screen.width, screen.height), (700, 500));
}

#[test]
fn monitors_config_describes_the_surface() {
    let (s, display) = server(|b| b);
    Canvas::new(320, 200, 4).publish(&display);
    let (_main, id) = session(s.local_addr());
    let monitors_cap = spice_proto::consts::display_cap::MONITORS_CONFIG;
    let mut chan = RawClient::link_with(
        s.local_addr(),
        ChannelType::Display,
        0,
        id,
        "",
        true,
        &[monitors_cap],
    )
    .unwrap();
    let mut init = Vec::new();
    Writer::new(&mut init).u8(1).u64(0).u8(0).i32(0);
    chan.send(display::client_type::INIT, &init);
    let mc = chan
        .recv_type(display::server_type::MONITORS_CONFIG, T)
        .expect("MONITORS_CONFIG");
    let words: Vec<u32> = mc.body[4..]
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(&mc.body[..4], &[1, 0, 1, 0], "one head of at most one");
    assert_eq!(
        words,
        [0, 0, 320, 200, 0, 0, 0],
        "monitor 0 on surface 0, 320x200 at 0,0"
    );
}

#[test]
fn empty_password_refuses_everyone() {
    let (s, _) = server(|b| b.password(""));
    assert_eq!(
        RawClient::link(s.local_addr(), ChannelType::Main, 0, 0, "").err(),
        Some(LinkOutcome::ResultError(LinkError::PermissionDenied.code()))
    );
}

#[test]
fn host_can_hand_over_clients_without_a_listening_socket() {
    let (s, _) = server(|b| b.no_listen().password("secret"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Authentication waived for a socket the host vouches for.
    let client = TcpStream::connect(addr).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    s.handle().add_client(accepted, true);
    let mut main = RawClient::link_on(client, ChannelType::Main, 0, 0, "wrong", true, &[]).expect("links");
    assert!(main.recv_type(main::server_type::INIT, T).is_some());
    // Without the waiver the password still counts.
    let client = TcpStream::connect(addr).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    s.handle().add_client(accepted, false);
    assert_eq!(
        RawClient::link_on(client, ChannelType::Main, 0, 0, "wrong", true, &[]).err(),
        Some(LinkOutcome::ResultError(LinkError::PermissionDenied.code()))
    );
}

/// Links a display channel with `caps`, sends DISPLAY_INIT, and returns the
/// image kinds of the first picture and whether it is pixel-exact.
fn first_picture_kinds(
    configure: impl FnOnce(ServerBuilder) -> ServerBuilder,
    caps: &[u32],
) -> (std::collections::BTreeMap<u8, u32>, bool) {
    let (s, display) = server(configure);
    let canvas = Canvas::stripes(200, 120, 5);
    canvas.publish(&display);
    let (_main, id) = session(s.local_addr());
    let mut chan = RawClient::link_with(s.local_addr(), ChannelType::Display, 0, id, "", true, caps).unwrap();
    let mut init = Vec::new();
    Writer::new(&mut init).u8(1).u64(0).u8(0).i32(0);
    chan.send(display::client_type::INIT, &init);
    let mut screen = Screen::default();
    display_sequence(&mut chan, &mut screen);
    let exact = spice_interop::pattern::diff_count(&screen.pixels, &canvas.packed()) == 0;
    (screen.kinds, exact)
}

#[test]
fn image_compression_follows_the_setting_and_the_client() {
    use display::image_type::{BITMAP, LZ4, LZ_RGB};
    use spice_proto::consts::display_cap::LZ4_COMPRESSION;
    use spice_server::ImageCompression;
    let only = |kind: u8| std::iter::once((kind, 1)).collect::<std::collections::BTreeMap<u8, u32>>();
    // The default (auto) compresses losslessly with LZ.
    assert_eq!(first_picture_kinds(|b| b, &[]), (only(LZ_RGB), true));
    // Off sends raw bitmaps.
    assert_eq!(
        first_picture_kinds(|b| b.image_compression(ImageCompression::Off), &[]),
        (only(BITMAP), true)
    );
    // LZ4 only to a client that decodes it; LZ to one that does not (spice-html5).
    assert_eq!(
        first_picture_kinds(|b| b.image_compression(ImageCompression::Lz4), &[LZ4_COMPRESSION]),
        (only(LZ4), true)
    );
    assert_eq!(
        first_picture_kinds(|b| b.image_compression(ImageCompression::Lz4), &[]),
        (only(LZ_RGB), true)
    );
    assert_eq!(
        first_picture_kinds(|b| b.image_compression(ImageCompression::Quic), &[]),
        (only(display::image_type::QUIC), true)
    );
}

/// A raw display-channel client past DISPLAY_INIT, with its screen and the
/// count of messages its ACKs follow.
struct DisplayClient {
    chan: RawClient,
    screen: Screen,
    /// Messages since SET_ACK, as spice-gtk counts them for its ACKs.
    received: u32,
}

impl DisplayClient {
    /// Links display channel 0 of session `id`, syncs ACKs, sends
    /// DISPLAY_INIT offering a pixmap cache of `cache_pixels` and a GLZ
    /// window of `window` pixels, and reads the first picture.
    fn open(addr: SocketAddr, id: u32, cache_pixels: i64, window: i32) -> Self {
        let mut chan = RawClient::link(addr, ChannelType::Display, 0, id, "").unwrap();
        chan.send(base::client_type::ACK_SYNC, &1u32.to_le_bytes());
        let mut init = Vec::new();
        Writer::new(&mut init)
            .u8(1)
            .u64(cache_pixels as u64)
            .u8(1)
            .i32(window);
        chan.send(display::client_type::INIT, &init);
        let mut screen = if window > 0 {
            Screen::with_glz()
        } else {
            Screen::default()
        };
        let start = display_sequence(&mut chan, &mut screen);
        let received = start
            .iter()
            .skip_while(|t| **t != base::server_type::SET_ACK)
            .skip(1)
            .count() as u32;
        Self {
            chan,
            screen,
            received,
        }
    }

    /// Applies messages, ACKing as spice-gtk does, until the screen equals
    /// `expected` or `timeout` has passed; `what` names a failure to apply.
    fn pump_until(&mut self, expected: &[u8], timeout: Duration, what: &str) {
        let deadline = Instant::now() + timeout;
        while self.screen.pixels != expected && Instant::now() < deadline {
            let Some(frame) = self.chan.recv(Duration::from_millis(200)) else {
                continue;
            };
            self.received += 1;
            if self.received % spice_interop::raw::ACK_WINDOW == 0 {
                self.chan.send(base::client_type::ACK, &[]);
            }
            self.screen
                .apply(&frame)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}

#[test]
fn glz_goes_to_clients_that_offer_a_window_and_refers_to_earlier_images() {
    use display::image_type::{GLZ_RGB, LZ_RGB};
    use spice_server::ImageCompression;
    for (setting, window) in [
        (ImageCompression::AutoGlz, 0),
        (ImageCompression::AutoGlz, 3 << 20),
        (ImageCompression::Glz, 1 << 20),
        (ImageCompression::Glz, 0),
    ] {
        let (s, display) = server(|b| b.image_compression(setting));
        let mut canvas = Canvas::stripes(200, 120, 5);
        canvas.publish(&display);
        let (_main, id) = session(s.local_addr());
        let mut client = DisplayClient::open(s.local_addr(), id, 0, window);
        for _ in 0..12 {
            let rect = canvas.scroll_up(5);
            display.update(&canvas.frame(), &[rect]).unwrap();
        }
        let expected = canvas.packed();
        client.pump_until(&expected, Duration::from_secs(20), "scrolls");
        let screen = &client.screen;
        assert_eq!(
            spice_interop::pattern::diff_count(&screen.pixels, &expected),
            0,
            "{setting:?}, window {window}: final picture is exact"
        );
        let kind = if window > 0 { GLZ_RGB } else { LZ_RGB };
        assert_eq!(
            screen.kinds.keys().copied().collect::<Vec<_>>(),
            [kind],
            "{setting:?}, window {window}"
        );
        if window > 0 {
            // Every image is in the client's window (nothing was evicted).
            let glz = screen.glz.as_ref().unwrap();
            assert_eq!(glz.images() as u32, screen.draws);
        }
    }
}

/// Shows `canvases` in the order of `sequence`, each as a full update, to a
/// raw display client that offered a pixmap cache of `cache_pixels`, and
/// checks every picture arrives exactly. Returns the client's screen.
fn show_in_turn(canvases: &[Canvas], sequence: &[usize], cache_pixels: i64) -> Screen {
    use spice_server::{ImageCompression, Rect};
    let (s, display) = server(|b| b.image_compression(ImageCompression::AutoLz));
    canvases[sequence[0]].publish(&display);
    let (_main, id) = session(s.local_addr());
    let mut client = DisplayClient::open(s.local_addr(), id, cache_pixels, 0);
    for (step, &which) in sequence.iter().enumerate() {
        let canvas = &canvases[which];
        if step > 0 {
            let full = Rect::new(0, 0, canvas.width, canvas.height);
            display.update(&canvas.frame(), &[full]).unwrap();
        }
        let expected = canvas.packed();
        client.pump_until(&expected, T, &format!("step {step}"));
        assert_eq!(
            client.screen.pixels, expected,
            "step {step} (canvas {which}) is exact"
        );
    }
    client.screen
}

/// UI-like content that is not tiny once encoded: stripes with a few noisy
/// rectangles (icons, thumbnails).
fn ui_picture(width: u32, height: u32, seed: u64) -> Canvas {
    let mut canvas = Canvas::stripes(width, height, seed);
    for _ in 0..3 {
        canvas.scribble();
    }
    canvas
}

#[test]
fn content_seen_before_comes_from_the_pixmap_cache() {
    use display::image_type::{FROM_CACHE, LZ_RGB, QUIC};
    // Two pictures shown in turn. The stripes (UI, LZ) are cached at once;
    // the gradient (photographic, QUIC) on its second showing, so frames
    // that never come back do not fill the client's cache.
    let two = [Canvas::stripes(160, 100, 1), Canvas::new(160, 100, 2)];
    let screen = show_in_turn(&two, &[0, 1, 0, 1, 0, 1, 0], 1 << 20);
    assert_eq!(screen.draws, 7);
    assert_eq!(screen.kinds.get(&LZ_RGB), Some(&1), "{:?}", screen.kinds);
    assert_eq!(screen.kinds.get(&QUIC), Some(&2), "{:?}", screen.kinds);
    assert_eq!(screen.kinds.get(&FROM_CACHE), Some(&4), "{:?}", screen.kinds);
    assert_eq!(screen.cache.len(), 2);

    // Photographic pictures that never repeat are never cached.
    let frames: Vec<Canvas> = (0..6).map(|i| Canvas::new(160, 100, 30 + i)).collect();
    let screen = show_in_turn(&frames, &[0, 1, 2, 3, 4, 5], 1 << 20);
    assert_eq!(screen.kinds.get(&QUIC), Some(&6), "{:?}", screen.kinds);
    assert!(screen.cache.is_empty(), "{} images cached", screen.cache.len());

    // A client that offers no cache gets every picture encoded again.
    let screen = show_in_turn(&two, &[0, 1, 0, 1], 0);
    assert_eq!(screen.kinds.get(&FROM_CACHE), None);
    assert!(screen.cache.is_empty());

    // A cache with room for four pictures of 16,000 pixels, and five shown
    // in turn: the least recently used one is dropped before each new one
    // (the test client fails on a reference to an image it does not hold, or
    // a drop of one it never had), and the client never holds more than it
    // offered.
    let five: Vec<Canvas> = (0..5).map(|i| ui_picture(160, 100, 10 + i)).collect();
    let capacity = 4 * 160 * 100;
    let screen = show_in_turn(&five, &[0, 1, 2, 3, 0, 4, 0, 1, 4], capacity);
    // 0 hits once, then 4 evicts 1 (0 was used since), 0 hits, 1 evicts 2, 4 hits.
    assert_eq!(screen.kinds.get(&FROM_CACHE), Some(&3), "{:?}", screen.kinds);
    assert!(screen.max_cached_pixels <= capacity as usize);
    assert_eq!(screen.cache.len(), 4);
}

#[test]
fn client_preferred_compression_overrides_the_server_setting() {
    use display::image_type::{BITMAP, LZ_RGB, QUIC};
    for (preferred, expected) in [(1u8, BITMAP), (4, QUIC), (6, LZ_RGB), (0, LZ_RGB), (99, LZ_RGB)] {
        let (s, display) = server(|b| b);
        let canvas = Canvas::stripes(200, 120, 5);
        canvas.publish(&display);
        let (_main, id) = session(s.local_addr());
        let mut chan = RawClient::link(s.local_addr(), ChannelType::Display, 0, id, "").unwrap();
        chan.send(display::client_type::PREFERRED_COMPRESSION, &[preferred]);
        let mut init = Vec::new();
        Writer::new(&mut init).u8(1).u64(0).u8(0).i32(0);
        chan.send(display::client_type::INIT, &init);
        let mut screen = Screen::default();
        display_sequence(&mut chan, &mut screen);
        assert_eq!(screen.pixels, canvas.packed(), "preferred {preferred}: exact");
        assert_eq!(
            screen.kinds.keys().copied().collect::<Vec<_>>(),
            [expected],
            "preferred {preferred} (invalid values keep the server's auto)"
        );
    }
}

/// Reads until the client shows `expected`, and checks it is exact.
fn pump_exact(client: &mut DisplayClient, expected: &[u8], what: &str) {
    client.pump_until(expected, T, what);
    assert!(client.screen.pixels == expected, "{what}: picture is exact");
}

#[test]
fn scrolled_content_travels_as_copy_bits_and_unchanged_rows_are_skipped() {
    use spice_server::Rect;
    let (s, display) = server(|b| b);
    // Distinct rows (a vertical gradient), scrolled like a terminal.
    let mut canvas = Canvas::new(300, 200, 9);
    canvas.publish(&display);
    let (_main, id) = session(s.local_addr());
    let mut client = DisplayClient::open(s.local_addr(), id, 0, 0);
    let first_picture = client.screen.drawn_pixels;
    let mut scrolled = 0;
    for k in 0..30u32 {
        let rows = 4 + k % 9;
        scrolled += rows;
        let rect = canvas.scroll_up(rows);
        display.update(&canvas.frame(), &[rect]).unwrap();
        // Sometimes several scrolls pile up before the client reads them.
        if k % 3 == 2 {
            pump_exact(&mut client, &canvas.packed(), &format!("after scroll {k}"));
        }
    }
    pump_exact(&mut client, &canvas.packed(), "after the scrolls");
    assert!(
        client.screen.copy_bits >= 10,
        "{} COPY_BITS",
        client.screen.copy_bits
    );
    // Only the new lines went as images: far less than a picture per scroll.
    let drawn = client.screen.drawn_pixels - first_picture;
    assert!(
        drawn <= u64::from(scrolled + 30 * 4) * 300,
        "{drawn} pixels drawn for {scrolled} new rows"
    );

    // Damage over rows that did not change sends nothing for them.
    let before = client.screen.drawn_pixels;
    let dirty = canvas.scribble();
    display
        .update(&canvas.frame(), &[Rect::new(0, 0, 300, 200)])
        .unwrap();
    pump_exact(
        &mut client,
        &canvas.packed(),
        "after a scribble reported as full damage",
    );
    assert!(
        client.screen.drawn_pixels - before <= u64::from(dirty.height + 4) * 300,
        "{} pixels drawn for {} changed rows",
        client.screen.drawn_pixels - before,
        dirty.height
    );
}

#[test]
fn host_copies_travel_as_copy_bits_in_any_direction() {
    use spice_server::Rect;
    let (s, display) = server(|b| b);
    let mut canvas = Canvas::new(320, 240, 5);
    // Distinct content to move: a noisy window over the gradient.
    let mut win = canvas.scribble_at(Rect::new(40, 40, 120, 90));
    canvas.publish(&display);
    let (_main, id) = session(s.local_addr());
    let mut client = DisplayClient::open(s.local_addr(), id, 0, 0);
    let first_picture = client.screen.drawn_pixels;
    // The window dragged a few pixels at a time in every direction (each
    // copy overlaps its source), something drawn into it now and then,
    // which the following copies carry along before the client got it.
    let mut drawn_by_host = 0;
    for (k, (dx, dy)) in DRAG_STEPS.iter().cycle().take(32).enumerate() {
        let (x, y) = ((win.x as i32 + dx) as u32, (win.y as i32 + dy) as u32);
        canvas.copy_area(win, x, y);
        display.copy_area(win, x, y);
        win = Rect::new(x, y, win.width, win.height);
        if k % 4 == 3 {
            let r = canvas.scribble_at(Rect::new(win.x + 10, win.y + 10, 30, 12));
            display.update(&canvas.frame(), &[r]).unwrap();
            drawn_by_host += r.area();
        }
        if k % 5 == 4 {
            pump_exact(&mut client, &canvas.packed(), &format!("after copy {k}"));
        }
    }
    pump_exact(&mut client, &canvas.packed(), "after the copies");
    assert_eq!(client.screen.copy_bits, 32, "every copy went as a COPY_BITS");
    // Only what the host drew went as images (a drawing carried by a copy
    // before it was sent goes once, at its new place), never the window.
    let drawn = client.screen.drawn_pixels - first_picture;
    assert!(
        drawn <= drawn_by_host,
        "{drawn} pixels sent as images for {drawn_by_host} drawn"
    );
}

#[test]
fn damage_larger_than_many_produce_rounds_arrives_without_another_update() {
    use spice_server::Rect;
    let (s, display) = server(|b| b);
    let mut canvas = Canvas::new(2048, 1536, 3);
    canvas.publish(&display);
    let (_main, id) = session(s.local_addr());
    let mut client = DisplayClient::open(s.local_addr(), id, 0, 0);
    // 12 MB of noise, which no encoder shrinks: far more than the server
    // queues per round, so it goes out over many rounds of the loop, driven
    // by the socket alone (the host sends no further update).
    let mut seed = 0x1234_5678_9abc_def0u64;
    for byte in canvas.data.iter_mut() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *byte = seed as u8;
    }
    display
        .update(&canvas.frame(), &[Rect::new(0, 0, 2048, 1536)])
        .unwrap();
    let expected = canvas.packed();
    client.pump_until(&expected, Duration::from_secs(30), "the noise");
    let screen = &client.screen;
    assert!(
        screen.pixels == expected,
        "the whole update arrived: {} draws, {} frames, {} pixels differ",
        screen.draws,
        client.received,
        spice_interop::pattern::diff_count(&screen.pixels, &expected)
    );
    assert!(screen.draws > 20, "{} images: sent in bands", screen.draws);
}
