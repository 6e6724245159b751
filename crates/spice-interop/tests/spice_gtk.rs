//! The stock spice-gtk client against our server.

use std::time::Duration;

use serde_json::json;
use spice_interop::devices::{recording, DeviceEvent, Recorder, RecordingDevices};
use spice_interop::gtk::SpiceGtk;
use spice_interop::pattern::{Canvas, DRAG_STEPS};
use spice_server::{CursorImage, DisplayHandle, Leds, RunningServer, ServerBuilder};

const T: Duration = Duration::from_secs(20);

struct Host {
    server: RunningServer,
    display: DisplayHandle,
    devices: RecordingDevices,
    events: Recorder,
}

fn host(canvas: &Canvas, configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Host {
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let (devices, events) = recording();
    let builder = ServerBuilder::new()
        .port(0)
        .name("interop test")
        .display(display.clone())
        .keyboard(devices.clone())
        .tablet(devices.clone());
    let server = configure(builder).spawn().expect("server starts");
    Host {
        server,
        display,
        devices,
        events,
    }
}

fn assert_surface(gtk: &mut SpiceGtk, canvas: &Canvas, what: &str) {
    let diff = gtk.wait_surface(canvas.width, canvas.height, &canvas.packed(), T);
    assert_eq!(
        diff, 0,
        "{what}: client surface differs from the host framebuffer in {diff} pixels"
    );
}

#[test]
fn primary_surface_is_pixel_exact_after_damage_and_resize() {
    let mut canvas = Canvas::new(320, 240, 7);
    let h = host(&canvas, |b| b);
    let mut gtk = SpiceGtk::start();
    gtk.connect(h.server.local_addr(), None);
    let created = gtk.expect("primary-create", T);
    assert_eq!(
        (created["width"].as_u64(), created["height"].as_u64()),
        (Some(320), Some(240))
    );
    gtk.expect("mark", T);
    assert_surface(&mut gtk, &canvas, "initial picture");

    for _ in 0..40 {
        let rect = canvas.scribble();
        h.display.update(&canvas.frame(), &[rect]).unwrap();
    }
    assert_surface(&mut gtk, &canvas, "after 40 damage updates");

    let mut bigger = Canvas::new(400, 300, 99);
    bigger.publish(&h.display);
    let created = gtk
        .wait(T, |v| v["event"] == "primary-create" && v["width"] == 400)
        .expect("resize reaches the client");
    assert_eq!(created["height"], 300);
    assert_surface(&mut gtk, &bigger, "after resize");
    let rect = bigger.scribble();
    h.display.update(&bigger.frame(), &[rect]).unwrap();
    assert_surface(&mut gtk, &bigger, "damage after resize");
    assert!(gtk.has_seen("primary-destroy"), "old surface destroyed on resize");
    gtk.quit();
}

#[test]
fn typed_text_arrives_as_set1_scancodes() {
    let canvas = Canvas::new(64, 48, 1);
    let h = host(&canvas, |b| b);
    let mut gtk = SpiceGtk::start();
    gtk.connect(h.server.local_addr(), None);
    gtk.wait_inputs_ready(None, T);
    // "hi" then Right Ctrl (E0 1D) then keypad Enter (E0 1C).
    for code in [0x23u32, 0x17, 0x11D, 0x11C] {
        gtk.send(json!({"cmd": "key_press", "code": code}));
        gtk.send(json!({"cmd": "key_release", "code": code}));
    }
    let expected = [
        0x23, 0xA3, 0x17, 0x97, 0xE0, 0x1D, 0xE0, 0x9D, 0xE0, 0x1C, 0xE0, 0x9C,
    ];
    let got = h.events.scancodes(expected.len(), T);
    assert_eq!(got, expected);
    gtk.quit();
}

#[test]
fn tablet_receives_absolute_positions_clicks_and_wheel() {
    let canvas = Canvas::new(200, 100, 2);
    let h = host(&canvas, |b| b);
    assert!(
        h.events
            .wait_for(T, |e| *e == DeviceEvent::LogicalSize(200, 100))
            .is_some(),
        "tablet learns the display size"
    );
    let mut gtk = SpiceGtk::start();
    gtk.connect(h.server.local_addr(), None);
    gtk.wait_inputs_ready(Some(2), T);
    gtk.send(json!({"cmd": "position", "x": 150, "y": 60, "buttons": 0}));
    assert_eq!(
        h.events.wait_for(T, |e| matches!(e, DeviceEvent::Position(..))),
        Some(DeviceEvent::Position(150, 60, 0))
    );
    gtk.send(json!({"cmd": "button_press", "button": 1, "buttons": 1}));
    gtk.send(json!({"cmd": "button_release", "button": 1, "buttons": 0}));
    gtk.send(json!({"cmd": "button_press", "button": 3, "buttons": 4}));
    gtk.send(json!({"cmd": "button_release", "button": 3, "buttons": 0}));
    gtk.send(json!({"cmd": "button_press", "button": 4, "buttons": 8}));
    gtk.send(json!({"cmd": "button_release", "button": 4, "buttons": 0}));
    let mut got = Vec::new();
    while got.len() < 6 {
        match h.events.wait_for(T, |e| {
            matches!(e, DeviceEvent::Buttons(_) | DeviceEvent::Wheel(_))
        }) {
            Some(e) => got.push(e),
            None => break,
        }
    }
    use DeviceEvent::{Buttons, Wheel};
    assert_eq!(
        got,
        [
            Buttons(1),
            Buttons(0),
            Buttons(4),
            Buttons(0),
            Wheel(-1),
            Buttons(0)
        ]
    );
    gtk.quit();
}

#[test]
fn wrong_password_is_refused_and_right_one_accepted() {
    let canvas = Canvas::new(64, 48, 3);
    let h = host(&canvas, |b| b.password("s3cret"));
    let mut bad = SpiceGtk::start();
    bad.connect(h.server.local_addr(), Some("guess"));
    let event = bad.expect("channel-event", T);
    assert_eq!(event["code"], "error-auth", "{event}");
    assert!(
        event["error"]
            .as_str()
            .is_some_and(|m| m.to_lowercase().contains("auth")),
        "the client explains the failure: {event}"
    );
    bad.quit();

    let mut good = SpiceGtk::start();
    good.connect(h.server.local_addr(), Some("s3cret"));
    good.expect("mark", T);
    assert_surface(&mut good, &canvas, "after authenticating");
    good.quit();
}

#[test]
fn reconnecting_client_gets_the_full_current_picture() {
    let mut canvas = Canvas::new(160, 120, 4);
    let h = host(&canvas, |b| b);
    let mut first = SpiceGtk::start();
    first.connect(h.server.local_addr(), None);
    first.expect("mark", T);
    assert_surface(&mut first, &canvas, "first connection");
    first.quit();

    // The picture changes while nobody watches.
    for _ in 0..5 {
        let rect = canvas.scribble();
        h.display.update(&canvas.frame(), &[rect]).unwrap();
    }
    let mut second = SpiceGtk::start();
    second.connect(h.server.local_addr(), None);
    second.expect("mark", T);
    assert_surface(&mut second, &canvas, "after reconnecting");
    second.quit();
}

#[test]
fn second_client_replaces_the_first() {
    let canvas = Canvas::new(64, 48, 5);
    let h = host(&canvas, |b| b);
    let mut first = SpiceGtk::start();
    first.connect(h.server.local_addr(), None);
    first.expect("mark", T);
    let mut second = SpiceGtk::start();
    second.connect(h.server.local_addr(), None);
    second.expect("mark", T);
    // The first client's channels are closed by the server.
    let closed = first.wait(T, |v| {
        v["event"] == "session-disconnected"
            || (v["event"] == "channel-event" && v["type"] == "MainChannel" && v["code"] != "opened")
    });
    assert!(
        closed.is_some(),
        "first client was not disconnected: {:#?}",
        first.seen
    );
    assert_surface(&mut second, &canvas, "second client");
    second.quit();
}

#[test]
fn cursor_shape_and_hide_reach_the_client() {
    let canvas = Canvas::new(64, 48, 6);
    let h = host(&canvas, |b| b);
    let mut gtk = SpiceGtk::start();
    gtk.connect(h.server.local_addr(), None);
    gtk.expect("mark", T);
    let argb = vec![0xFF; 12 * 20 * 4];
    h.display
        .set_cursor(CursorImage::new(12, 20, 3, 4, argb).unwrap());
    let set = gtk.expect("cursor-set", T);
    assert_eq!(
        (
            set["width"].as_u64(),
            set["height"].as_u64(),
            set["hot_x"].as_u64(),
            set["hot_y"].as_u64()
        ),
        (Some(12), Some(20), Some(3), Some(4))
    );
    h.display.hide_cursor();
    gtk.expect("cursor-hide", T);
    gtk.quit();
}

#[test]
fn keyboard_leds_are_synced_both_ways() {
    let canvas = Canvas::new(64, 48, 8);
    let h = host(&canvas, |b| b);
    // The guest has Num and Caps Lock on before the client arrives.
    h.devices.set_guest_leds(Leds::NUM_LOCK | Leds::CAPS_LOCK);
    let mut gtk = SpiceGtk::start();
    gtk.connect(h.server.local_addr(), None);
    gtk.wait_inputs_ready(None, T);
    // spice-gtk sends its own lock state (none lit) as soon as the channel is up:
    // the guest's Num and Caps Lock are toggled to match.
    assert_eq!(h.events.scancodes(4, T), [0x45, 0xC5, 0x3A, 0xBA]);
    // Guest to client.
    h.server
        .handle()
        .set_keyboard_leds(Leds::NUM_LOCK | Leds::CAPS_LOCK);
    let m = gtk.wait(T, |v| v["event"] == "key-modifiers" && v["modifiers"] == 6);
    assert!(
        m.is_some(),
        "client saw the guest's Num and Caps Lock: {:#?}",
        gtk.seen
    );
    // Client to guest: the client has only Scroll Lock on, so all three toggle.
    gtk.send(json!({"cmd": "set_key_locks", "locks": 1}));
    let got = h.events.scancodes(6, T);
    assert_eq!(got, [0x46, 0xC6, 0x45, 0xC5, 0x3A, 0xBA]);
    gtk.quit();
}

#[test]
fn server_mouse_mode_sends_relative_motion_and_cursor_moves() {
    let canvas = Canvas::new(64, 48, 9);
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let (devices, events) = recording();
    // No tablet: only server mouse mode is possible.
    let server = ServerBuilder::new()
        .port(0)
        .display(display.clone())
        .keyboard(devices.clone())
        .mouse(devices)
        .spawn()
        .unwrap();
    let mut gtk = SpiceGtk::start();
    gtk.connect(server.local_addr(), None);
    gtk.wait_inputs_ready(Some(1), T);
    gtk.send(json!({"cmd": "motion", "dx": 5, "dy": -3, "buttons": 0}));
    assert_eq!(
        events.wait_for(T, |e| matches!(e, DeviceEvent::Motion(..))),
        Some(DeviceEvent::Motion(5, -3, 0, 0))
    );
    // Enough motion to need MOUSE_MOTION_ACKs: spice-gtk stops sending without them.
    for _ in 0..40 {
        gtk.send(json!({"cmd": "motion", "dx": 1, "dy": 1, "buttons": 0}));
    }
    let mut moved = 0;
    while moved < 40 {
        match events.wait_for(T, |e| matches!(e, DeviceEvent::Motion(..))) {
            Some(DeviceEvent::Motion(dx, dy, _, _)) => moved += dx.min(dy),
            _ => break,
        }
    }
    assert_eq!(moved, 40, "all relative motion arrived");
    gtk.send(json!({"cmd": "button_press", "button": 5, "buttons": 16}));
    assert_eq!(
        events.wait_for(T, |e| matches!(e, DeviceEvent::Motion(..))),
        Some(DeviceEvent::Motion(0, 0, 1, 16)),
        "wheel down is dz=+1"
    );
    display.set_cursor(CursorImage::new(2, 2, 0, 0, vec![0xFF; 16]).unwrap());
    gtk.expect("cursor-set", T);
    display.move_cursor(30, 20);
    let moved = gtk.expect("cursor-move", T);
    assert_eq!((moved["x"].as_i64(), moved["y"].as_i64()), (Some(30), Some(20)));
    gtk.quit();
}

#[test]
fn key_scancode_messages_and_session_identity() {
    let canvas = Canvas::new(64, 48, 10);
    let uuid = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8,
    ];
    let h = host(&canvas, |b| b.name("vm-under-test").uuid(uuid));
    let mut gtk = SpiceGtk::start();
    gtk.connect(h.server.local_addr(), None);
    gtk.wait_inputs_ready(None, T);
    // With the KEY_SCANCODE capability, press and release travel in one message.
    gtk.send(json!({"cmd": "key_press_and_release", "code": 0x1e}));
    gtk.send(json!({"cmd": "key_press_and_release", "code": 0x148}));
    assert_eq!(h.events.scancodes(6, T), [0x1e, 0x9e, 0xE0, 0x48, 0xE0, 0xC8]);
    gtk.send(json!({"cmd": "session_info"}));
    let info = gtk.expect("session-info", T);
    assert_eq!(info["name"], "vm-under-test");
    assert_eq!(info["uuid"], "123456789abcdef00102030405060708");
    assert_eq!(info["mouse_mode"], 2, "client mouse mode with a tablet");
    gtk.quit();
}

#[test]
fn devices_and_displays_can_come_and_go_while_a_client_is_connected() {
    let canvas = Canvas::new(64, 48, 12);
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let (devices, events) = recording();
    let server = ServerBuilder::new().port(0).display(display).spawn().unwrap();
    let mut gtk = SpiceGtk::start();
    let addr = server.local_addr();
    gtk.send(
        json!({"cmd": "connect", "uri": format!("spice://{}:{}", addr.ip(), addr.port()), "audio": true}),
    );
    gtk.wait_inputs_ready(Some(1), T);
    assert!(server.handle().is_server_mouse());

    // A tablet appears: client mouse mode becomes possible and the client takes it.
    server.handle().set_tablet(Some(Box::new(devices.clone())));
    let mode = gtk.wait(T, |v| v["event"] == "mouse-mode" && v["mode"] == 2);
    assert!(
        mode.is_some(),
        "client switched to client mouse mode: {:#?}",
        gtk.seen
    );
    gtk.send(json!({"cmd": "position", "x": 7, "y": 9, "buttons": 0}));
    assert_eq!(
        events.wait_for(T, |e| matches!(e, DeviceEvent::Position(..))),
        Some(DeviceEvent::Position(7, 9, 0))
    );
    assert!(!server.handle().is_server_mouse());

    // It goes away again: back to server mode.
    server.handle().set_tablet(None);
    assert!(gtk
        .wait(T, |v| v["event"] == "mouse-mode" && v["mode"] == 1)
        .is_some());

    // A second display shows up as new channels with their own surface.
    let second = DisplayHandle::new();
    let other = Canvas::new(80, 60, 13);
    other.publish(&second);
    server.handle().add_display(1, second);
    let created = gtk.wait(T, |v| v["event"] == "primary-create" && v["width"] == 80);
    assert!(created.is_some(), "second display's surface: {:#?}", gtk.seen);

    // Audio playback added later is announced too, and plays.
    let playback = spice_server::PlaybackHandle::new();
    server.handle().set_playback(Some(playback.clone()));
    let channel = gtk.wait(T, |v| {
        v["event"] == "channel-new" && v["type"] == "PlaybackChannel"
    });
    assert!(channel.is_some(), "playback channel announced: {:#?}", gtk.seen);
    gtk.wait(T, |v| {
        v["event"] == "channel-event" && v["type"] == "PlaybackChannel" && v["code"] == "opened"
    });
    playback.start();
    assert!(gtk.wait(T, |v| v["event"] == "playback-start").is_some());
    gtk.quit();
}

/// GLZ images refer to earlier ones in spice-gtk's window: a scrolling
/// terminal (each frame mostly the previous one moved up), repainted
/// content, then a second client (a new session: a new, empty window on both
/// sides) that scrolls on.
#[test]
fn glz_window_is_pixel_exact_in_spice_gtk_across_scrolls_and_clients() {
    use spice_server::ImageCompression;
    for setting in [ImageCompression::Glz, ImageCompression::AutoGlz] {
        let mut canvas = Canvas::stripes(320, 200, 3);
        let h = host(&canvas, |b| b.image_compression(setting));
        let mut gtk = SpiceGtk::start();
        gtk.connect(h.server.local_addr(), None);
        gtk.expect("mark", T);
        assert_surface(&mut gtk, &canvas, &format!("{setting:?}: first picture"));
        for k in 0..40 {
            let rect = canvas.scroll_up(3 + k % 11);
            h.display.update(&canvas.frame(), &[rect]).unwrap();
            if k % 10 == 9 {
                // The same content again: one reference per band.
                h.display.update(&canvas.frame(), &[rect]).unwrap();
                assert_surface(&mut gtk, &canvas, &format!("{setting:?}: after {k} scrolls"));
            }
        }
        gtk.quit();

        let mut second = SpiceGtk::start();
        second.connect(h.server.local_addr(), None);
        second.expect("mark", T);
        assert_surface(&mut second, &canvas, &format!("{setting:?}: second client"));
        for k in 0..20 {
            let rect = canvas.scroll_up(1 + k % 5);
            h.display.update(&canvas.frame(), &[rect]).unwrap();
        }
        assert_surface(
            &mut second,
            &canvas,
            &format!("{setting:?}: second client after scrolls"),
        );
        second.quit();
    }
}

#[test]
fn every_lossless_image_format_is_pixel_exact_in_spice_gtk() {
    use spice_server::ImageCompression;
    for setting in [
        ImageCompression::Off,
        ImageCompression::Lz,
        ImageCompression::Lz4,
        ImageCompression::AutoGlz,
        ImageCompression::Glz,
    ] {
        let mut canvas = Canvas::new(257, 131, 21);
        let h = host(&canvas, |b| b.image_compression(setting));
        let mut gtk = SpiceGtk::start();
        gtk.connect(h.server.local_addr(), None);
        gtk.expect("mark", T);
        assert_surface(&mut gtk, &canvas, &format!("{setting:?}: first picture"));
        for _ in 0..10 {
            let rect = canvas.scribble();
            h.display.update(&canvas.frame(), &[rect]).unwrap();
        }
        assert_surface(&mut gtk, &canvas, &format!("{setting:?}: after updates"));
        gtk.quit();
    }
}

#[test]
fn pictures_shown_again_come_from_spice_gtk_pixmap_cache() {
    use spice_server::{ImageCompression, Rect};
    // Five pictures in turn, into a cache with room for four: spice-gtk must
    // add, find and drop images exactly as the server mirrors them (a
    // reference to a dropped image would leave a hole or stall the channel).
    // UI-like pictures (cached on first sight): stripes with noisy patches.
    let canvases: Vec<Canvas> = (0..5)
        .map(|i| {
            let mut c = Canvas::stripes(160, 100, 40 + i);
            for _ in 0..3 {
                c.scribble();
            }
            c
        })
        .collect();
    // AutoLz: with GLZ, a picture sent again after its eviction would still
    // be small (it refers into the GLZ window), and misses could not be told
    // from hits by their size.
    let h = host(&canvases[0], |b| b.image_compression(ImageCompression::AutoLz));
    let mut gtk = SpiceGtk::start();
    gtk.connect_with_cache(h.server.local_addr(), 4 * 160 * 100 * 4);
    gtk.expect("mark", T);
    assert_surface(&mut gtk, &canvases[0], "first picture");
    let full = Rect::new(0, 0, 160, 100);
    // Hits: 0 at step 4 and 6 (used again, so 1 is evicted for 4), 4 at step 8.
    let sequence = [1, 2, 3, 0, 4, 0, 1, 4];
    let hits = [false, false, false, true, false, true, false, true];
    for (step, (&which, &hit)) in sequence.iter().zip(&hits).enumerate() {
        let before = gtk.display_bytes(T);
        h.display.update(&canvases[which].frame(), &[full]).unwrap();
        assert_surface(
            &mut gtk,
            &canvases[which],
            &format!("step {step}, picture {which}"),
        );
        let bytes = gtk.display_bytes(T) - before;
        if hit {
            assert!(bytes < 400, "step {step}: a cached picture took {bytes} bytes");
        } else {
            assert!(bytes > 2000, "step {step}: a new picture took only {bytes} bytes");
        }
    }
    gtk.quit();
}

#[test]
fn scrolling_by_copy_bits_is_pixel_exact_in_spice_gtk() {
    // Distinct rows scrolled like a terminal: the server sends COPY_BITS and
    // the new lines; spice-gtk must end up with the host's exact picture.
    let mut canvas = Canvas::new(400, 300, 77);
    let h = host(&canvas, |b| b);
    let mut gtk = SpiceGtk::start();
    gtk.connect(h.server.local_addr(), None);
    gtk.expect("mark", T);
    assert_surface(&mut gtk, &canvas, "first picture");
    let before = gtk.display_bytes(T);
    for k in 0..60u32 {
        let rect = canvas.scroll_up(2 + k % 13);
        h.display.update(&canvas.frame(), &[rect]).unwrap();
        if k % 20 == 19 {
            assert_surface(&mut gtk, &canvas, &format!("after {} scrolls", k + 1));
        }
    }
    assert_surface(&mut gtk, &canvas, "after the scrolls");
    // The new lines only (about 100 KB here; 60 whole pictures would be
    // several times that).
    let bytes = gtk.display_bytes(T) - before;
    assert!(bytes < 200_000, "60 scrolls took {bytes} bytes");
    gtk.quit();
}

#[test]
fn host_copies_in_every_direction_are_pixel_exact_in_spice_gtk() {
    // A window dragged over the desktop by the host's own copies
    // (DisplayHandle::copy_area, a guest's COPY_BITS), overlapping their
    // sources in every direction, with drawing in between: spice-gtk makes
    // the same copies and ends on the host's exact picture.
    use spice_server::Rect;
    let mut canvas = Canvas::new(400, 300, 21);
    let mut win = canvas.scribble_at(Rect::new(60, 50, 160, 110));
    let h = host(&canvas, |b| b);
    let mut gtk = SpiceGtk::start();
    gtk.connect(h.server.local_addr(), None);
    gtk.expect("mark", T);
    assert_surface(&mut gtk, &canvas, "first picture");
    let before = gtk.display_bytes(T);
    for (k, (dx, dy)) in DRAG_STEPS.iter().cycle().take(40).enumerate() {
        let (x, y) = ((win.x as i32 + dx) as u32, (win.y as i32 + dy) as u32);
        canvas.copy_area(win, x, y);
        h.display.copy_area(win, x, y);
        win = Rect::new(x, y, win.width, win.height);
        if k % 6 == 5 {
            let r = canvas.scribble_at(Rect::new(win.x + 20, win.y + 30, 40, 16));
            h.display.update(&canvas.frame(), &[r]).unwrap();
        }
        if k % 13 == 12 {
            assert_surface(&mut gtk, &canvas, &format!("after {} copies", k + 1));
        }
    }
    assert_surface(&mut gtk, &canvas, "after the copies");
    // The drawings only (6 x 40 x 16 noise pixels): 40 windows of noise as
    // images would be over 2 MB.
    let bytes = gtk.display_bytes(T) - before;
    assert!(bytes < 100_000, "40 copies took {bytes} bytes");
    gtk.quit();
}

/// Paints `rect` of `canvas` with `f(x, y) -> [b, g, r]` and returns it.
fn paint(
    canvas: &mut Canvas,
    rect: spice_server::Rect,
    f: impl Fn(u32, u32) -> [u8; 3],
) -> spice_server::Rect {
    for y in rect.y..rect.y + rect.height {
        for x in rect.x..rect.x + rect.width {
            let [b, g, r] = f(x, y);
            let i = y as usize * canvas.stride + x as usize * 4;
            canvas.data[i..i + 4].copy_from_slice(&[b, g, r, 0]);
        }
    }
    rect
}

#[test]
fn varied_content_is_pixel_exact_in_spice_gtk_with_every_lossless_setting() {
    use spice_server::{ImageCompression, Rect};
    let hash = |x: u32, y: u32| {
        let mut h = (x.wrapping_mul(0x9E37_79B1) ^ y.wrapping_mul(0x85EB_CA77)).wrapping_add(0x27D4_EB2F);
        h ^= h >> 15;
        h = h.wrapping_mul(0x2C1B_3C6D);
        h ^ (h >> 12)
    };
    // What a desktop shows, one kind per update: text, UI, a photo, a
    // gradient, a few-colour (palette-like) icon, tiny and odd-sized areas.
    type Painter = Box<dyn Fn(u32, u32) -> [u8; 3]>;
    let updates: Vec<(&str, Rect, Painter)> = vec![
        (
            "text",
            Rect::new(10, 10, 301, 97),
            Box::new(|x, y| {
                let ink = (x % 6 < 2 && y % 12 < 9) || (y % 12 == 4 && x % 11 < 7);
                if ink {
                    [30, 30, 40]
                } else {
                    [250, 250, 245]
                }
            }),
        ),
        (
            "ui",
            Rect::new(320, 0, 200, 150),
            Box::new(|x, y| match (x % 100, y % 50) {
                (0 | 99, _) | (_, 0 | 49) => [90, 90, 90],
                (_, 1..=12) => [200, 120, 40],
                _ => [236, 236, 236],
            }),
        ),
        (
            "photo",
            Rect::new(0, 160, 256, 192),
            Box::new(move |x, y| {
                let n = (hash(x, y) % 9) as u8;
                [
                    ((x / 2) as u8).wrapping_add(n),
                    ((y + x / 4) as u8).wrapping_add(n),
                    120u8.wrapping_add((x * y / 300) as u8).wrapping_add(n),
                ]
            }),
        ),
        (
            "gradient",
            Rect::new(260, 160, 260, 192),
            Box::new(|x, y| [(x - 260) as u8, (y - 160) as u8, ((x + y) / 3) as u8]),
        ),
        (
            "palette icon",
            Rect::new(100, 120, 48, 48),
            Box::new(move |x, y| {
                [[0, 0, 0], [255, 255, 255], [0, 128, 255], [40, 200, 40]][(hash(x / 4, y / 4) % 4) as usize]
            }),
        ),
        ("one pixel", Rect::new(519, 351, 1, 1), Box::new(|_, _| [1, 2, 3])),
        (
            "2x3",
            Rect::new(5, 300, 2, 3),
            Box::new(|x, y| [(x as u8).wrapping_mul(70), (y as u8).wrapping_mul(80), 200]),
        ),
        (
            "odd strip",
            Rect::new(33, 7, 257, 3),
            Box::new(move |x, y| [hash(x, y) as u8, 7, 9]),
        ),
        (
            "column",
            Rect::new(510, 20, 1, 300),
            Box::new(|_, y| [y as u8, 0, 255]),
        ),
    ];
    for setting in [
        ImageCompression::Off,
        ImageCompression::AutoGlz,
        ImageCompression::AutoLz,
        ImageCompression::Quic,
        ImageCompression::Glz,
        ImageCompression::Lz,
        ImageCompression::Lz4,
    ] {
        let mut canvas = Canvas::new(520, 352, 5);
        let h = host(&canvas, |b| b.image_compression(setting));
        let mut gtk = SpiceGtk::start();
        gtk.connect(h.server.local_addr(), None);
        gtk.expect("mark", T);
        assert_surface(&mut gtk, &canvas, &format!("{setting:?}: first picture"));
        for (what, rect, f) in &updates {
            let rect = paint(&mut canvas, *rect, f);
            h.display.update(&canvas.frame(), &[rect]).unwrap();
            assert_surface(&mut gtk, &canvas, &format!("{setting:?}: {what}"));
        }
        gtk.quit();
    }
}
