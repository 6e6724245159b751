//! Typing in the demo sounds a tone on the real spice-gtk client.

use std::time::Duration;

mod common;

use common::start_demo;
use serde_json::json;
use spice_interop::gtk::SpiceGtk;

const T: Duration = Duration::from_secs(20);

#[test]
fn typing_a_character_plays_a_tone() {
    let (_demo, addr) = start_demo(&["--width", "320", "--height", "240"]);
    let mut gtk = SpiceGtk::start();
    gtk.send(json!({
        "cmd": "connect",
        "uri": format!("spice://{}:{}", addr.ip(), addr.port()),
        "audio": true,
    }));
    gtk.wait(T, |v| {
        v["event"] == "channel-event" && v["type"] == "PlaybackChannel" && v["code"] == "opened"
    })
    .unwrap_or_else(|| panic!("playback channel opens; seen: {:#?}", gtk.seen));
    gtk.wait_inputs_ready(None, T);

    gtk.send(json!({"cmd": "key_press", "code": 0x1e})); // 'a'
    gtk.send(json!({"cmd": "key_release", "code": 0x1e}));
    let start = gtk.expect("playback-start", T);
    assert_eq!((&start["channels"], &start["rate"]), (&json!(2), &json!(48_000)));
    gtk.expect("playback-stop", T);

    let path = std::env::temp_dir().join(format!("spice-demo-tone-{}.pcm", std::process::id()));
    gtk.send(json!({"cmd": "playback_dump", "path": path}));
    gtk.expect("playback-dumped", T);
    let pcm = std::fs::read(&path).expect("dumped PCM");
    let _ = std::fs::remove_file(&path);
    let samples: Vec<i16> = pcm
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    // 150 ms of tone and some silence after it.
    assert!(samples.len() >= 2 * 7200, "{} samples", samples.len());
    // spice-gtk announces Opus, which the demo uses by default (as the C
    // server's playback compression): the tone's peak (8000) comes back
    // within a few percent, and the silence after it near zero.
    let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    assert!((7600..=8400).contains(&peak), "peak {peak}");
    let tail = samples[samples.len() - 960..]
        .iter()
        .map(|s| s.unsigned_abs())
        .max();
    assert!(tail.is_some_and(|t| t < 100), "ends in silence: {tail:?}");
    gtk.quit();
}
