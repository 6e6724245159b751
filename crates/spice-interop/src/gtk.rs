//! The real spice-gtk client, driven through `clients/spice_gtk_driver.py`.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Debian's Python, which has `gi` and SpiceClientGLib.
pub const PYTHON: &str = "/usr/bin/python3";

fn driver_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients/spice_gtk_driver.py")
}

/// The stdin of a driver process (one JSON command per line), and its
/// stdout's JSON lines as they come. Its other output goes through
/// `eprintln!` prefixed with `label`: in a test the reader threads inherit the
/// harness's output capture, shown only if the test fails (the client's GLib
/// warnings, some provoked on purpose, such as a link the server refuses).
pub(crate) fn driver_pipes(child: &mut Child, label: &'static str) -> (ChildStdin, Receiver<Value>) {
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !line.is_empty() {
                eprintln!("{label}: {line}");
            }
        }
    });
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            match serde_json::from_str::<Value>(&line) {
                Ok(v) => {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                Err(_) => eprintln!("{label} driver: {line}"),
            }
        }
    });
    (stdin, rx)
}

/// One spice-gtk session in a child process. Killed (by PID) when dropped.
#[derive(Debug)]
pub struct SpiceGtk {
    child: Child,
    stdin: ChildStdin,
    events: Receiver<Value>,
    /// Every event seen so far, in order, for assertions and failure messages.
    pub seen: Vec<Value>,
}

impl SpiceGtk {
    /// Starts the driver and waits until it is ready.
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// Starts the driver with extra environment variables for the client, such
    /// as `SPICE_DISABLE_OPUS=1` (spice-gtk then asks for raw PCM audio).
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(PYTHON);
        command
            .arg(driver_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("G_MESSAGES_DEBUG", "")
            // The test machines have no sound card: keep GStreamer's
            // autoaudiosink/src off OpenAL (gstreamer1.0-plugins-bad, needed
            // for H.264), which tries ALSA's missing default device, so the
            // client falls back to a fake sink as it did before.
            .env("GST_PLUGIN_FEATURE_RANK", "openalsink:NONE,openalsrc:NONE");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .expect("start /usr/bin/python3 with the spice-gtk driver (apt-get install python3-gi gir1.2-spiceclientglib-2.0)");
        let (stdin, rx) = driver_pipes(&mut child, "client");
        let mut gtk = Self {
            child,
            stdin,
            events: rx,
            seen: Vec::new(),
        };
        gtk.expect("ready", Duration::from_secs(20));
        gtk
    }

    /// Sends a command.
    pub fn send(&mut self, command: Value) {
        writeln!(self.stdin, "{command}").expect("driver stdin");
        self.stdin.flush().expect("driver stdin");
    }

    /// Connects to `addr`, optionally with a password.
    pub fn connect(&mut self, addr: SocketAddr, password: Option<&str>) {
        let mut cmd = json!({"cmd": "connect", "uri": format!("spice://{}:{}", addr.ip(), addr.port())});
        if let Some(p) = password {
            cmd["password"] = json!(p);
        }
        self.send(cmd);
    }

    /// Connects to `addr` with a pixmap cache of `bytes` (spice-gtk's
    /// `cache-size`; DISPLAY_INIT offers a quarter of it, in pixels).
    pub fn connect_with_cache(&mut self, addr: SocketAddr, bytes: u32) {
        self.send(json!({
            "cmd": "connect",
            "uri": format!("spice://{}:{}", addr.ip(), addr.port()),
            "cache_size": bytes,
        }));
    }

    /// Bytes the display channel has read so far (`total-read-bytes`).
    pub fn display_bytes(&mut self, timeout: Duration) -> u64 {
        self.send(json!({"cmd": "stats"}));
        let stats = self.expect("stats", timeout);
        stats["channels"]
            .as_array()
            .and_then(|channels| {
                channels
                    .iter()
                    .find(|c| c["type"] == "DisplayChannel" && c["id"] == 0)
            })
            .and_then(|c| c["total_read_bytes"].as_u64())
            .expect("stats of display channel 0")
    }

    /// The client process's id (for measuring its CPU).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Takes the next event without waiting.
    pub fn poll(&mut self) -> Option<Value> {
        let v = self.events.try_recv().ok()?;
        self.seen.push(v.clone());
        Some(v)
    }

    /// Waits for an event matching `want`; `None` on timeout.
    pub fn wait(&mut self, timeout: Duration, mut want: impl FnMut(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if want(&v) {
                        return Some(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// The display channel's monitors once spice-gtk reports `count` of them
    /// (its `monitors` property, sent on every change): `[id, x, y, width,
    /// height]` each, and its `monitors-max`.
    pub fn wait_monitors(&mut self, count: usize, timeout: Duration) -> Option<(Vec<[u64; 5]>, u64)> {
        let event = self.wait(timeout, |v| {
            v["event"] == "monitors" && v["monitors"].as_array().is_some_and(|m| m.len() == count)
        })?;
        let monitors = event["monitors"]
            .as_array()?
            .iter()
            .map(|m| ["id", "x", "y", "width", "height"].map(|f| m[f].as_u64().unwrap_or(u64::MAX)))
            .collect();
        Some((monitors, event["max"].as_u64().unwrap_or(0)))
    }

    /// Waits for an event by name, panicking with the event log on timeout.
    pub fn expect(&mut self, event: &str, timeout: Duration) -> Value {
        match self.wait(timeout, |v| v["event"] == event) {
            Some(v) => v,
            None => panic!("no {event:?} event within {timeout:?}; seen: {:#?}", self.seen),
        }
    }

    /// Whether an event by this name was already seen.
    pub fn has_seen(&self, event: &str) -> bool {
        self.seen.iter().any(|v| v["event"] == event)
    }

    /// Waits until the inputs channel is open and the given mouse mode is active.
    pub fn wait_inputs_ready(&mut self, mouse_mode: Option<u64>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut inputs = self.seen.iter().any(is_inputs_open);
        let mut mode_ok = mouse_mode.is_none_or(|m| {
            self.seen
                .iter()
                .rev()
                .find(|v| v["event"] == "mouse-mode")
                .is_some_and(|v| v["mode"] == m)
        });
        while !(inputs && mode_ok) {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("inputs not ready; seen: {:#?}", self.seen));
            let Some(v) = self.wait(left, |_| true) else {
                continue;
            };
            inputs |= is_inputs_open(&v);
            if let Some(m) = mouse_mode {
                if v["event"] == "mouse-mode" {
                    mode_ok = v["mode"] == m;
                }
            }
        }
    }

    /// Dumps the client's primary surface: `(width, height, packed xRGB with X zeroed)`.
    pub fn surface(&mut self) -> Option<(u32, u32, Vec<u8>)> {
        let path = std::env::temp_dir().join(format!(
            "spice-gtk-{}-{}.raw",
            std::process::id(),
            self.child.id()
        ));
        self.send(json!({"cmd": "dump", "path": path}));
        let v = self.wait(Duration::from_secs(10), |v| {
            v["event"] == "dumped" || v["event"] == "error"
        })?;
        if v["event"] != "dumped" {
            return None;
        }
        let data = std::fs::read(&path).ok()?;
        let _ = std::fs::remove_file(&path);
        let (w, h, stride) = (
            v["width"].as_u64()? as u32,
            v["height"].as_u64()? as u32,
            v["stride"].as_u64()? as usize,
        );
        Some((w, h, crate::pattern::pack(&data, w, h, stride)))
    }

    /// Polls the client's surface until it equals `expected` (packed, X zeroed).
    /// Returns the last difference count on timeout (0 means equal).
    pub fn wait_surface(&mut self, width: u32, height: u32, expected: &[u8], timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let diff = match self.surface() {
                Some((w, h, px)) if (w, h) == (width, height) => crate::pattern::diff_count(&px, expected),
                Some(_) | None => usize::MAX,
            };
            if diff == 0 || Instant::now() >= deadline {
                return diff;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Closes the session and stops the driver.
    pub fn quit(mut self) {
        self.send(json!({"cmd": "disconnect"}));
        self.send(json!({"cmd": "quit"}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn is_inputs_open(v: &Value) -> bool {
    v["event"] == "channel-event" && v["type"] == "InputsChannel" && v["code"] == "opened"
}

impl Drop for SpiceGtk {
    fn drop(&mut self) {
        // Only our own child, by PID.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
