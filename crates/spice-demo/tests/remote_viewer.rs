//! The README's promise, checked: the demo shows its live test card in the
//! stock `remote-viewer`, here inside a private Xvfb server.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// A child process killed (by PID) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Xvfb on a display number it picks itself.
fn xvfb() -> (Proc, String) {
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x1024x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb starts (apt-get install xvfb)");
    let mut out = child.stdout.take().expect("piped");
    let proc = Proc(child);
    let mut number = String::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).is_ok_and(|n| n == 1) && byte[0] != b'\n' {
        number.push(byte[0] as char);
    }
    assert!(!number.is_empty(), "Xvfb reported its display");
    (proc, format!(":{}", number.trim()))
}

/// Screenshot of the whole X screen as packed RGB, through GDK from Debian's Python.
fn screenshot(display: &str, path: &std::path::Path) -> Vec<u8> {
    let script = "import gi,sys\ngi.require_version('Gdk','3.0')\nfrom gi.repository import Gdk\n\
w=Gdk.get_default_root_window()\npb=Gdk.pixbuf_get_from_window(w,0,0,w.get_width(),w.get_height())\n\
open(sys.argv[1],'wb').write(pb.get_pixels() if pb.get_rowstride()==pb.get_width()*pb.get_n_channels() else b'')\n";
    let status = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(path)
        .env("DISPLAY", display)
        .status()
        .expect("python3 with gir1.2-gtk-3.0");
    assert!(status.success());
    std::fs::read(path).expect("screenshot file")
}

/// Pixels close to an RGB colour.
fn count_colour(rgb: &[u8], colour: [u8; 3]) -> usize {
    rgb.chunks_exact(3)
        .filter(|p| p.iter().zip(colour).all(|(a, b)| a.abs_diff(b) < 24))
        .count()
}

#[test]
fn remote_viewer_shows_the_live_test_card() {
    let (_x, display) = xvfb();
    let (_demo, addr) = common::start_demo(&[]);
    let uri = format!("spice://{addr}");

    let viewer = Command::new("remote-viewer")
        .arg(&uri)
        .env("DISPLAY", &display)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("remote-viewer starts (apt-get install virt-viewer)");
    let _viewer = Proc(viewer);

    // The card's yellow and blue bars must fill a good part of the screen.
    let dir = std::env::temp_dir().join(format!("rv-shot-{}", std::process::id()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut first = Vec::new();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let shot = screenshot(&display, &dir);
        if count_colour(&shot, [0xC0, 0xC0, 0x00]) > 20_000
            && count_colour(&shot, [0x00, 0x00, 0xC0]) > 20_000
        {
            first = shot;
            break;
        }
    }
    assert!(!first.is_empty(), "remote-viewer never showed the test card");

    // And it is live: the clock and the bouncing square keep changing it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut changed = false;
    while !changed && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        changed = screenshot(&display, &dir) != first;
    }
    let _ = std::fs::remove_file(&dir);
    assert!(changed, "the picture in remote-viewer does not move");
}
