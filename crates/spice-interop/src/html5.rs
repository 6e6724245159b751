//! spice-html5 (Debian's `spice-html5` package) in headless Chromium, driven
//! through `clients/spice_html5_driver.py` (selenium and chromedriver). Its
//! WebSocket goes straight to the SPICE port, which detects WebSocket.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::gtk::PYTHON;

fn driver_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients/spice_html5_driver.py")
}

/// Time for one driver command (a page load, a script, a click).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The id of spice-html5's canvas for the primary surface (surface 0).
pub const PRIMARY: &str = "spice_surface_0";

/// JS that returns `[width, height, hex]` of a canvas as packed xRGB rows
/// (B, G, R, 0 per pixel, as [`crate::pattern::Canvas::packed`]), or null.
const CANVAS_JS: &str = r#"
var c = document.getElementById(arguments[0]);
if (!c) return null;
var d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
var hex = [];
for (var i = 0; i < 256; i++) hex.push((i < 16 ? '0' : '') + i.toString(16));
var out = new Array(d.length);
for (var i = 0; i < d.length; i += 4) {
    out[i] = hex[d[i + 2]]; out[i + 1] = hex[d[i + 1]]; out[i + 2] = hex[d[i]]; out[i + 3] = '00';
}
return [c.width, c.height, out.join('')];
"#;

/// JS that describes spice-html5's audio element while it plays: the bytes
/// of WebM it was given and the element's clock, or null between `START`
/// and the first data (and after `STOP`, which removes it).
const AUDIO_JS: &str = r#"
var a = document.querySelector('#spice-screen audio');
if (!a || !a.spiceconn) return null;
var p = a.spiceconn;
return {current_time: a.currentTime, ready_state: a.readyState, paused: a.paused,
        buffered: a.buffered.length ? a.buffered.end(a.buffered.length - 1) : 0,
        bytes_written: p.bytes_written || 0, error: a.error ? a.error.code : null};
"#;

/// One headless Chromium with spice-html5, in a child process (the driver,
/// which starts chromedriver and Chromium and quits them). Killed by PID
/// when dropped.
#[derive(Debug)]
pub struct Html5 {
    child: Child,
    /// Closed on drop: the driver then quits Chromium and chromedriver.
    stdin: Option<ChildStdin>,
    replies: Receiver<Value>,
    /// Console lines read while reopening (see `open_on_c_library`), kept
    /// for `console`.
    kept_console: Vec<String>,
}

impl Html5 {
    /// Starts the driver: an HTTP server for spice-html5's files on
    /// 127.0.0.1 and a fresh Chromium profile.
    pub fn start() -> Self {
        let mut child = Command::new(PYTHON)
            .arg(driver_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start /usr/bin/python3 with the spice-html5 driver (apt-get install chromium chromium-driver python3-selenium spice-html5)");
        let (stdin, rx) = crate::gtk::driver_pipes(&mut child, "html5");
        let mut html5 = Self {
            child,
            stdin: Some(stdin),
            replies: rx,
            kept_console: Vec::new(),
        };
        let ready = html5.reply("start");
        assert_eq!(ready["event"], "ready", "{ready}");
        html5
    }

    fn reply(&mut self, what: &str) -> Value {
        match self.replies.recv_timeout(COMMAND_TIMEOUT) {
            Ok(v) => v,
            Err(e) => panic!("no reply from the spice-html5 driver to {what}: {e}"),
        }
    }

    /// Sends a command and returns its reply, panicking on an error reply.
    pub fn command(&mut self, command: Value) -> Value {
        let stdin = self.stdin.as_mut().expect("driver running");
        writeln!(stdin, "{command}").expect("driver stdin");
        stdin.flush().expect("driver stdin");
        let v = self.reply(&command.to_string());
        assert_ne!(v["event"], "error", "{command}: {v}");
        v
    }

    /// Loads spice_auto.html, which connects to the SPICE `port` on 127.0.0.1.
    pub fn open(&mut self, port: u16, password: &str) {
        self.command(json!({"cmd": "open", "port": port, "password": password}));
    }

    /// Runs JS in the page (a function body: `return …`).
    pub fn eval(&mut self, js: &str) -> Value {
        self.command(json!({"cmd": "eval", "js": js}))["value"].take()
    }

    fn eval_with(&mut self, js: &str, arg: &str) -> Value {
        let wrapped = format!("return (function() {{ {js} }}).apply(null, [{}]);", json!(arg));
        self.eval(&wrapped)
    }

    /// The pixels of a canvas: `(width, height, packed xRGB with X zeroed)`.
    pub fn canvas(&mut self, id: &str) -> Option<(u32, u32, Vec<u8>)> {
        let v = self.eval_with(CANVAS_JS, id);
        let w = v.get(0)?.as_u64()? as u32;
        let h = v.get(1)?.as_u64()? as u32;
        let hex = v.get(2)?.as_str()?.as_bytes();
        let px = hex
            .chunks_exact(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap_or("zz"), 16).unwrap_or(0))
            .collect();
        Some((w, h, px))
    }

    /// Polls the primary canvas until it is `width` x `height` and equals
    /// `expected` (packed, X zeroed); returns the last difference count (0:
    /// equal, `usize::MAX`: no canvas of that size).
    pub fn wait_canvas(&mut self, width: u32, height: u32, expected: &[u8], timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let diff = match self.canvas(PRIMARY) {
                Some((w, h, px)) if (w, h) == (width, height) => crate::pattern::diff_count(&px, expected),
                _ => usize::MAX,
            };
            if diff == 0 || Instant::now() >= deadline {
                return diff;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Left click at `(x, y)` of the primary canvas.
    pub fn click(&mut self, x: u32, y: u32) {
        self.command(json!({"cmd": "click", "id": PRIMARY, "x": x, "y": y}));
    }

    /// Types `text` into the primary canvas (key down and up per character).
    pub fn type_text(&mut self, text: &str) {
        self.command(json!({"cmd": "keys", "id": PRIMARY, "text": text}));
    }

    /// The audio element's state while playback runs (see `AUDIO_JS`), or null.
    pub fn audio(&mut self) -> Value {
        self.eval(AUDIO_JS)
    }

    /// Waits until the audio element's clock passed `seconds`; returns its
    /// last state (null if there never was one).
    pub fn wait_audio_time(&mut self, seconds: f64, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let a = self.audio();
            let t = a["current_time"].as_f64().unwrap_or(0.0);
            if t > seconds || Instant::now() >= deadline {
                return a;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The browser console's lines since last asked, for failure messages.
    pub fn console(&mut self) -> Vec<String> {
        let mut lines = std::mem::take(&mut self.kept_console);
        lines.extend(self.new_console_lines());
        lines
    }

    fn new_console_lines(&mut self) -> Vec<String> {
        let v = self.command(json!({"cmd": "console"}));
        v["lines"]
            .as_array()
            .map(|a| a.iter().filter_map(|l| l.as_str().map(String::from)).collect())
            .unwrap_or_default()
    }

    /// `open` for a server on Debian's C library, which refuses about one
    /// link in 256 from spice-html5: the page sends a ciphertext below
    /// 2^1016 as 127 bytes padded with a zero at the end, which the C server
    /// cannot decrypt (ours shifts it back, see `spice_proto::ticket`).
    /// spice-html5 links all its channels within a second of loading; if one
    /// was refused in the first three seconds the page is loaded again, at
    /// most three times. Never used for our library, where such a refusal
    /// is a bug the test must see.
    pub fn open_on_c_library(&mut self, port: u16, password: &str) {
        for _ in 0..3 {
            self.open(port, password);
            let deadline = Instant::now() + Duration::from_secs(3);
            let mut refused = false;
            while !refused && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(250));
                let lines = self.new_console_lines();
                refused = lines.iter().any(|l| l.contains("Permission denied"));
                self.kept_console.extend(lines);
            }
            if !refused {
                return;
            }
            eprintln!("the C library refused a spice-html5 link (short ticket); reloading the page");
        }
    }

    /// Quits Chromium and the driver.
    pub fn quit(self) {
        drop(self);
    }
}

impl Drop for Html5 {
    fn drop(&mut self) {
        // End of input makes the driver quit Chromium and chromedriver (its
        // children); only if it hangs is it killed, by PID.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
