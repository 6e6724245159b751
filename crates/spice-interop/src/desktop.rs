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
        let guest = XorgGuest::get();
        let args = guest.qemu_args(smp);
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        let append = format!("{} {kernel}", guest.linux.append());
        let mut qemu = Qemu::start_linux(library, &guest.linux, &append, "disable-ticketing=on", &args);
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
                    "{} library: the guest did not finish {command:?} within {timeout:?} (QEMU alive: {}); serial:\n{}",
                    self.name(),
                    self.qemu.is_alive(),
                    self.qemu.serial_log()
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

    /// The lines of QEMU's stderr that report a server bug.
    pub fn server_bugs(&self) -> Vec<String> {
        self.qemu
            .stderr()
            .lines()
            .filter(|l| l.contains("spice-server bug"))
            .map(str::to_owned)
            .collect()
    }

    /// Powers the guest off and closes the client.
    pub fn off(mut self) {
        self.qemu.serial_send("off");
        self.qemu.serial_wait("GUEST DONE off", Duration::from_secs(30));
        self.gtk.send(json!({"cmd": "quit"}));
    }
}

/// `"WxH"` as numbers.
pub fn parse_size(text: &str) -> Option<(u32, u32)> {
    let (w, h) = text.trim().split_once('x')?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
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
        Self {
            c,
            ours,
            differing,
            share: differing as f64 / f64::from(total),
            saved,
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

    /// Panics unless the two libraries showed the same pixels.
    pub fn assert_equal(&self) {
        assert_eq!(self.differing, 0, "the desktops differ: {}", self.summary());
    }
}
