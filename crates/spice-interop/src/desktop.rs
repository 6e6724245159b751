//! A booted [`XorgGuest`] with spice-gtk watching: commands over the
//! serial port, pictures of what the client shows, and the comparison of
//! the desktop as the two libraries show it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::gtk::SpiceGtk;
use crate::qemu::{Library, Picture, Qemu};
use crate::xorg_guest::XorgGuest;

/// Time for the guest to reach its desktop under TCG.
pub const BOOT: Duration = Duration::from_secs(240);

/// A booted X guest and the client watching it. QEMU and the client are
/// killed (by PID) when dropped.
#[derive(Debug)]
pub struct Desktop {
    /// QEMU with the guest.
    pub qemu: Qemu,
    /// spice-gtk, connected.
    pub gtk: SpiceGtk,
    /// The screen size the guest reported when its desktop was up.
    pub size: (u32, u32),
    /// From QEMU's start to the guest's desktop.
    pub booted_in: Duration,
}

impl Desktop {
    /// Boots the guest with `library` and `smp` vCPUs, waits until its
    /// desktop is up (Xorg running, the windows mapped) and connects
    /// spice-gtk.
    pub fn boot(library: &Library, smp: u32) -> Self {
        Self::boot_with(library, smp, &[], "")
    }

    /// As [`Desktop::boot`], with more QEMU arguments (`-global`, `-trace`)
    /// and words for the kernel command line.
    pub fn boot_with(library: &Library, smp: u32, extra: &[&str], kernel: &str) -> Self {
        Self::boot_spice(library, smp, extra, kernel, "disable-ticketing=on")
    }

    /// As [`Desktop::boot_with`], with `spice` for QEMU's `-spice` option
    /// after the port and address (`disable-ticketing=on,agent-mouse=off`).
    pub fn boot_spice(library: &Library, smp: u32, extra: &[&str], kernel: &str, spice: &str) -> Self {
        let guest = XorgGuest::get();
        let args = guest.qemu_args(smp);
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        let append = format!("{} {kernel}", guest.linux.append());
        let mut qemu = Qemu::start_linux(library, &guest.linux, &append, spice, &args);
        qemu.assert_library();
        let ready = qemu.serial_wait("GUEST READY", BOOT).unwrap_or_else(|| {
            panic!(
                "{} library: the X guest did not come up; serial:\n{}\nQEMU stderr:\n{}",
                library.name(),
                qemu.serial_log(),
                qemu.stderr()
            )
        });
        let booted_in = qemu.started.elapsed();
        let size = parse_size(ready.trim_start_matches("GUEST READY "))
            .unwrap_or_else(|| panic!("{} library: screen size in {ready:?}", library.name()));
        let mut gtk = SpiceGtk::start();
        gtk.send(json!({
            "cmd": "connect",
            "uri": format!("spice://{}:{}", qemu.addr.ip(), qemu.addr.port()),
        }));
        Self {
            qemu,
            gtk,
            size,
            booted_in,
        }
    }

    /// The library's short name.
    pub fn name(&self) -> &'static str {
        self.qemu.library.name()
    }

    /// Runs a guest command (see `guest/xorg/session.sh`) and returns the
    /// lines it printed, up to and including its `GUEST DONE` line. Panics
    /// with the serial log if the guest does not finish within `timeout`.
    pub fn command(&mut self, command: &str, timeout: Duration) -> Vec<String> {
        let word = command.split_whitespace().next().unwrap_or_default().to_owned();
        let done = format!("GUEST DONE {word}");
        self.qemu.serial_send(command);
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.qemu.serial_wait("GUEST ", left) else {
                panic!(
                    "{} library: the guest did not finish {command:?} within {timeout:?} (QEMU alive: {}); serial:\n{}\nQEMU's threads:\n{}",
                    self.name(),
                    self.qemu.is_alive(),
                    self.qemu.serial_log(),
                    self.qemu.threads_report()
                );
            };
            let finished = line.starts_with(&done);
            lines.push(line);
            if finished {
                return lines;
            }
        }
    }

    /// The screen's current size in the guest, as `xrandr` reports it.
    pub fn guest_mode(&mut self) -> (u32, u32) {
        let lines = self.command("xrandr", Duration::from_secs(60));
        lines
            .iter()
            .find_map(|l| l.strip_prefix("GUEST XRANDR ").and_then(parse_size))
            .unwrap_or_else(|| panic!("{} library: no screen size in {lines:?}", self.name()))
    }

    /// The first connected output's preferred mode after a probe.
    pub fn preferred_mode(&mut self) -> Option<(u32, u32)> {
        let lines = self.command("preferred", Duration::from_secs(60));
        lines
            .iter()
            .find_map(|l| l.strip_prefix("GUEST PREFERRED ").and_then(parse_size))
    }

    /// The client's picture, whatever its size.
    pub fn picture(&mut self) -> Option<Picture> {
        Picture::of(&mut self.gtk)
    }

    /// The client's picture once it has been `(width, height)` and the same
    /// for `quiet` (the guest's windows have drawn); the last picture seen
    /// after `timeout`.
    pub fn settled_picture(
        &mut self,
        size: (u32, u32),
        quiet: Duration,
        timeout: Duration,
    ) -> Option<Picture> {
        let deadline = Instant::now() + timeout;
        let mut last: Option<(Picture, Instant)> = None;
        loop {
            let now = Instant::now();
            match (self.picture(), &last) {
                (Some(p), Some((prev, since))) if p == *prev && now.duration_since(*since) >= quiet => {
                    return Some(p);
                }
                (Some(p), Some((prev, _))) if p == *prev => {}
                (Some(p), _) if (p.width, p.height) == size => last = Some((p, now)),
                _ => {}
            }
            if now >= deadline {
                return last.map(|(p, _)| p);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The client's picture once it differs from `from`; `None` after
    /// `timeout`.
    pub fn changed_picture(&mut self, from: &Picture, timeout: Duration) -> Option<Picture> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = self.picture() {
                if p != *from {
                    return Some(p);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `text` through spice-gtk's key events (PC scancodes, a US
    /// layout; [`scancode`] lists the characters), one character at a
    /// time: each is sent once the client's picture shows the previous one
    /// (a focused xterm echoes every key; QEMU's PS/2 keyboard queue drops
    /// keys that come faster than the guest reads them). Panics if a key
    /// changes nothing within `per_key`.
    pub fn type_keys(&mut self, text: &str, per_key: Duration) {
        const SHIFT: u32 = 0x2a;
        let mut shown = self.picture();
        for c in text.chars() {
            let (code, shift) = scancode(c).unwrap_or_else(|| panic!("no scancode for {c:?}"));
            if shift {
                self.gtk.send(json!({"cmd": "key_press", "code": SHIFT}));
            }
            self.gtk.send(json!({"cmd": "key_press", "code": code}));
            self.gtk.send(json!({"cmd": "key_release", "code": code}));
            if shift {
                self.gtk.send(json!({"cmd": "key_release", "code": SHIFT}));
            }
            let before = shown.take();
            shown = match before {
                Some(before) => Some(self.changed_picture(&before, per_key).unwrap_or_else(|| {
                    panic!(
                        "{} library: typing {c:?} of {text:?} changed nothing on the screen within {per_key:?}",
                        self.name()
                    )
                })),
                None => self.picture(),
            };
        }
    }

    /// The lines of QEMU's stderr that report a server bug.
    pub fn server_bugs(&self) -> Vec<String> {
        self.qemu
            .stderr()
            .lines()
            .filter(|l| l.contains("spice-server bug"))
            .map(str::to_owned)
            .collect()
    }

    /// Has spice-gtk ask for display 0 at `size` (its monitors
    /// configuration), once it sees the guest's agent; panics unless the
    /// request was sent.
    pub fn request_client_size(&mut self, size: (u32, u32), timeout: Duration) {
        let name = self.name();
        let agent = |v: &serde_json::Value| v["event"] == "agent-update" && v["connected"] == true;
        let connected = self.gtk.seen.iter().any(agent) || self.gtk.wait(timeout, agent).is_some();
        assert!(connected, "{name} library: spice-gtk sees the guest's agent");
        self.gtk
            .send(json!({"cmd": "monitors_config", "width": size.0, "height": size.1}));
        let sent = self.gtk.wait(timeout, |v| v["event"] == "monitors-config-sent");
        assert!(
            sent.is_some_and(|v| v["sent"] == true),
            "{name} library: spice-gtk sent the request"
        );
    }

    /// Waits until the guest's output prefers `size` (a client's resize
    /// request reached the qxl driver), sets that mode as a desktop
    /// environment would, and panics unless Xorg then runs at `size`.
    pub fn take_preferred_mode(&mut self, size: (u32, u32), timeout: Duration) {
        let mut preferred = None;
        let learned = eventually(timeout, Duration::from_millis(500), || {
            preferred = self.preferred_mode();
            preferred == Some(size)
        });
        assert!(
            learned,
            "{} library: the guest's preferred mode is {preferred:?}, not {}x{}",
            self.name(),
            size.0,
            size.1
        );
        self.command("auto", timeout);
        assert_eq!(self.guest_mode(), size, "{} library: Xorg's mode", self.name());
    }

    /// Panics unless QEMU is running and reported no server bug.
    pub fn assert_healthy(&mut self) {
        assert!(
            self.qemu.is_alive(),
            "{} library: QEMU exited; stderr:\n{}",
            self.name(),
            self.qemu.stderr()
        );
        let bugs = self.server_bugs();
        assert!(
            bugs.is_empty(),
            "{} library: QEMU reported server bugs: {bugs:#?}",
            self.name()
        );
    }

    /// Powers the guest off and closes the client.
    pub fn off(mut self) {
        self.qemu.serial_send("off");
        self.qemu.serial_wait("GUEST DONE off", Duration::from_secs(30));
        self.gtk.send(json!({"cmd": "quit"}));
    }
}

/// Holds the desktop guests of one test binary to one test at a time (each
/// boots a TCG guest per library; two tests at once would starve both).
pub fn one_test_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls `check` every `every` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, every: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// `"WxH"` as numbers.
pub fn parse_size(text: &str) -> Option<(u32, u32)> {
    let (w, h) = text.trim().split_once('x')?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

/// The PC (set 1, XT) scancode of a character on a US keyboard, and
/// whether it needs Shift: letters, digits, space, Enter (`\n`) and the
/// punctuation of the main block.
pub fn scancode(c: char) -> Option<(u32, bool)> {
    const ROWS: [(&str, &str, u32); 4] = [
        ("1234567890-=", "!@#$%^&*()_+", 0x02),
        ("qwertyuiop[]", "QWERTYUIOP{}", 0x10),
        ("asdfghjkl;'`", "ASDFGHJKL:\"~", 0x1e),
        ("\\zxcvbnm,./", "|ZXCVBNM<>?", 0x2b),
    ];
    match c {
        ' ' => return Some((0x39, false)),
        '\n' => return Some((0x1c, false)),
        _ => {}
    }
    ROWS.iter().find_map(|(plain, shifted, first)| {
        let at = |keys: &str| keys.chars().position(|k| k == c).map(|i| first + i as u32);
        at(plain)
            .map(|code| (code, false))
            .or_else(|| at(shifted).map(|code| (code, true)))
    })
}

/// Pixels of `p` that differ from its most common colour: zero for a
/// uniform screen, a real desktop has many.
pub fn non_background(p: &Picture) -> usize {
    let mut counts = std::collections::HashMap::new();
    for px in p.pixels.chunks_exact(4) {
        *counts.entry([px[0], px[1], px[2]]).or_insert(0usize) += 1;
    }
    let most = counts.values().copied().max().unwrap_or(0);
    (p.pixels.len() / 4) - most
}

/// The desktop as spice-gtk shows it with the C library and with ours.
#[derive(Debug)]
pub struct DesktopComparison {
    /// With Debian's C library.
    pub c: Picture,
    /// With our library.
    pub ours: Picture,
    /// Pixels that differ (all of them if the sizes differ).
    pub differing: usize,
    /// `differing` over the pixels of the larger picture.
    pub share: f64,
    /// Where the two pictures were saved (PPM).
    pub saved: [PathBuf; 2],
    /// The smallest rectangle holding every differing pixel, `(x, y,
    /// width, height)` (same-size pictures only).
    pub bounds: Option<(u32, u32, u32, u32)>,
    /// The largest difference of one colour channel between the pictures.
    pub max_delta: u8,
    /// Pixels that differ by more than 1 in some channel (rounding apart).
    pub beyond_rounding: usize,
    /// The first few differing pixels: `(x, y, C's B G R, ours)`.
    pub samples: Vec<(u32, u32, [u8; 3], [u8; 3])>,
}

impl DesktopComparison {
    /// Compares the two pictures and saves them as `NAME-c.ppm` and
    /// `NAME-rust.ppm` in `dir` for looking at.
    pub fn new(c: Picture, ours: Picture, dir: &Path, name: &str) -> Self {
        let differing = c.diff(&ours);
        let total = (c.width * c.height).max(ours.width * ours.height).max(1);
        let saved = [
            dir.join(format!("{name}-c.ppm")),
            dir.join(format!("{name}-rust.ppm")),
        ];
        for (picture, path) in [&c, &ours].into_iter().zip(&saved) {
            if let Err(e) = picture.save_ppm(path) {
                eprintln!("cannot save {}: {e}", path.display());
            }
        }
        let mut bounds: Option<(u32, u32, u32, u32)> = None;
        let (mut max_delta, mut beyond_rounding, mut samples) = (0u8, 0usize, Vec::new());
        if (c.width, c.height) == (ours.width, ours.height) {
            for (i, (a, b)) in c
                .pixels
                .chunks_exact(4)
                .zip(ours.pixels.chunks_exact(4))
                .enumerate()
            {
                if a == b {
                    continue;
                }
                let (x, y) = (i as u32 % c.width, i as u32 / c.width);
                let delta = (0..3).map(|k| a[k].abs_diff(b[k])).max().unwrap_or(0);
                max_delta = max_delta.max(delta);
                if delta > 1 {
                    beyond_rounding += 1;
                }
                if samples.len() < 8 {
                    samples.push((x, y, [a[0], a[1], a[2]], [b[0], b[1], b[2]]));
                }
                bounds = Some(match bounds {
                    None => (x, y, x, y),
                    Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
                });
            }
        }
        Self {
            c,
            ours,
            differing,
            share: differing as f64 / f64::from(total),
            saved,
            bounds: bounds.map(|(x0, y0, x1, y1)| (x0, y0, x1 - x0 + 1, y1 - y0 + 1)),
            max_delta,
            beyond_rounding,
            samples,
        }
    }

    /// One line for the test's output.
    pub fn summary(&self) -> String {
        format!(
            "C {}x{} vs ours {}x{}: {} pixels differ ({:.2}%); pictures in {} and {}",
            self.c.width,
            self.c.height,
            self.ours.width,
            self.ours.height,
            self.differing,
            self.share * 100.0,
            self.saved[0].display(),
            self.saved[1].display()
        )
    }

    /// Where and by how much the pictures differ: the bounding box, the
    /// largest channel difference, the pixels beyond ±1, the first few
    /// differing pixels (B G R, C's then ours).
    pub fn details(&self) -> String {
        match self.bounds {
            None if self.differing == 0 => "equal".to_owned(),
            None => "sizes differ".to_owned(),
            Some((x, y, w, h)) => format!(
                "{} differ within {w}x{h} at ({x},{y}); largest channel difference {}, {} pixels beyond ±1; first (x, y, C BGR, ours BGR): {:?}",
                self.differing, self.max_delta, self.beyond_rounding, self.samples
            ),
        }
    }

    /// Panics unless the two libraries showed the same pixels.
    pub fn assert_equal(&self) {
        assert_eq!(self.differing, 0, "the desktops differ: {}", self.summary());
    }

    /// Whether the pictures are the same size and differ, if at all, by at
    /// most 1 per channel on at most `off_by_one` pixels.
    pub fn within(&self, off_by_one: usize) -> bool {
        let same_size = (self.c.width, self.c.height) == (self.ours.width, self.ours.height);
        same_size && self.beyond_rounding == 0 && self.differing <= off_by_one
    }

    /// Panics unless the pictures are the same size and differ, if at all,
    /// by at most 1 per channel on at most `off_by_one` pixels (rounding of
    /// pixman's compositing between the client's renderer and ours).
    pub fn assert_within(&self, off_by_one: usize) {
        assert!(
            self.within(off_by_one),
            "the desktops differ beyond ±1 on {off_by_one} pixels: {}; {}",
            self.summary(),
            self.details()
        );
    }
}
