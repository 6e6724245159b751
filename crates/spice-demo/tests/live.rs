//! The demo binary served to the real spice-gtk client.

use std::time::{Duration, Instant};

mod common;

use serde_json::json;
use spice_interop::gtk::SpiceGtk;

const T: Duration = Duration::from_secs(20);

fn distinct_colours(pixels: &[u8]) -> usize {
    let mut seen: Vec<&[u8]> = pixels.chunks(4).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

#[test]
fn demo_shows_a_live_test_card_and_reacts_to_input() {
    let (_demo, addr) = common::start_demo(&["--width", "640", "--height", "480"]);
    let mut gtk = SpiceGtk::start();
    gtk.connect(addr, None);
    gtk.expect("mark", T);
    let (w, h, first) = gtk.surface().expect("surface");
    assert_eq!((w, h), (640, 480));
    assert!(distinct_colours(&first) > 8, "a test card, not a blank screen");

    // The picture moves on its own (bouncing square, clock).
    let deadline = Instant::now() + T;
    let mut changed = false;
    while !changed && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        changed = gtk.surface().is_some_and(|(_, _, px)| px != first);
    }
    assert!(changed, "the test card is live");

    // Caps Lock pressed in the client lights the guest's LED, which the demo reports back.
    gtk.wait_inputs_ready(Some(2), T);
    gtk.send(json!({"cmd": "key_press", "code": 0x3a}));
    gtk.send(json!({"cmd": "key_release", "code": 0x3a}));
    let leds = gtk.wait(T, |v| {
        v["event"] == "key-modifiers" && v["modifiers"].as_u64().is_some_and(|m| m & 4 != 0)
    });
    assert!(leds.is_some(), "caps lock LED came back: {:#?}", gtk.seen);
    gtk.quit();
}

#[test]
fn demo_with_password_refuses_a_wrong_one() {
    let (_demo, addr) = common::start_demo(&["--width", "640", "--height", "480", "--password", "letmein"]);
    let mut gtk = SpiceGtk::start();
    gtk.connect(addr, Some("nope"));
    let event = gtk.expect("channel-event", T);
    assert_eq!(event["code"], "error-auth");
    gtk.quit();
    let mut gtk = SpiceGtk::start();
    gtk.connect(addr, Some("letmein"));
    gtk.expect("mark", T);
    gtk.quit();
}

#[test]
fn demo_prints_what_it_sent_each_client_with_stats() {
    use std::io::BufRead;
    let (_demo, uri, mut stdout) =
        common::start_demo_with_output(&["--width", "320", "--height", "240", "--stats", "1"]);
    let addr = uri.trim_start_matches("spice://").parse().expect("host:port");
    let mut gtk = SpiceGtk::start();
    gtk.connect(addr, None);
    gtk.expect("mark", T);
    // A report lists the client's channels, the display's images among them.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + T;
    let mut seen = Vec::new();
    let display_line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            panic!("no display line in the stats: {seen:#?}");
        };
        if line.contains("display:0 out") && line.contains("frames") {
            break line;
        }
        seen.push(line);
    };
    assert!(seen.iter().any(|l| l.starts_with("client ")), "{seen:#?}");
    let messages: u64 = display_line
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(messages > 0, "{display_line}");
    gtk.quit();
}

#[test]
fn demo_with_multiple_clients_serves_two_viewers_at_once() {
    let (_demo, addr) = common::start_demo(&["--width", "320", "--height", "240", "--multiple-clients"]);
    let mut first = SpiceGtk::start();
    first.connect(addr, None);
    first.expect("mark", T);
    let mut second = SpiceGtk::start();
    second.connect(addr, None);
    second.expect("mark", T);
    // Caps Lock from the second viewer lights the LED both see.
    second.wait_inputs_ready(Some(2), T);
    second.send(json!({"cmd": "key_press", "code": 0x3a}));
    second.send(json!({"cmd": "key_release", "code": 0x3a}));
    for (name, gtk) in [("first", &mut first), ("second", &mut second)] {
        let leds = gtk.wait(T, |v| {
            v["event"] == "key-modifiers" && v["modifiers"].as_u64().is_some_and(|m| m & 4 != 0)
        });
        assert!(
            leds.is_some(),
            "the {name} viewer sees caps lock: {:#?}",
            gtk.seen
        );
        assert!(
            !gtk.seen.iter().any(|v| v["event"] == "session-disconnected"),
            "the {name} viewer stays"
        );
    }
    // Both keep getting the live picture.
    for gtk in [&mut first, &mut second] {
        let (_, _, before) = gtk.surface().expect("surface");
        let deadline = Instant::now() + T;
        let mut changed = false;
        while !changed && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            changed = gtk.surface().is_some_and(|(_, _, px)| px != before);
        }
        assert!(changed, "the test card stays live for each viewer");
    }
    first.quit();
    second.quit();
}
