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
