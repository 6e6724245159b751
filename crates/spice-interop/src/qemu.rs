//! Unmodified QEMU (Debian's `qemu-system-x86_64`) serving SPICE through a
//! chosen `libspice-server.so.1`: ours (`cargo xtask capi`) or Debian's C one.
//!
//! QEMU's SPICE code lives in modules under `/usr/lib/x86_64-linux-gnu/qemu/`
//! with no RPATH, so `LD_LIBRARY_PATH=<dir>` swaps the library in. Every
//! [`Qemu`] reads `/proc/PID/maps` once SPICE listens and records which
//! library file the process really mapped, so a test can prove it compared the
//! two libraries and not one library twice.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The emulator, from PATH.
pub const QEMU: &str = "qemu-system-x86_64";

/// Debian's C library (`libspice-server1`), as the dynamic loader names it.
pub const DEBIAN_LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/libspice-server.so.1";

/// Which `libspice-server.so.1` QEMU loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Library {
    /// Ours: `DIR/libspice-server.so.1`, loaded through `LD_LIBRARY_PATH=DIR`.
    Rust(PathBuf),
    /// Debian's C library, loaded with `LD_LIBRARY_PATH` removed.
    Debian,
}

impl Library {
    /// Ours, built by [`build_rust_library`].
    pub fn rust() -> Self {
        Self::Rust(build_rust_library().to_path_buf())
    }

    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Rust(_) => "rust",
            Self::Debian => "C",
        }
    }

    /// The file QEMU must map (symlinks resolved, as `/proc/PID/maps` shows it).
    pub fn expected_file(&self) -> PathBuf {
        let path = match self {
            Self::Rust(dir) => dir.join("libspice-server.so.1"),
            Self::Debian => PathBuf::from(DEBIAN_LIBRARY),
        };
        std::fs::canonicalize(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .expect("crates/spice-interop sits two levels below the workspace root")
        .to_path_buf()
}

/// Builds our `libspice-server.so.1` once per process with `cargo xtask capi`
/// (quick when up to date) and returns the directory holding it.
pub fn build_rust_library() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let started = Instant::now();
        let out = Command::new(env!("CARGO"))
            .current_dir(workspace_root())
            .args(["xtask", "capi"])
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run `cargo xtask capi`");
        assert!(out.status.success(), "`cargo xtask capi` failed: {}", out.status);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let library = PathBuf::from(
            stdout
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .expect("`cargo xtask capi` prints the library path")
                .trim(),
        );
        assert!(library.is_file(), "{} was not built", library.display());
        eprintln!("built {} in {:?}", library.display(), started.elapsed());
        library.parent().expect("library has a directory").to_path_buf()
    })
}

/// Whether KVM can be used (`/dev/kvm` opens read-write).
pub fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// A QEMU process with SPICE on a free loopback port. Killed (by PID) when dropped.
#[derive(Debug)]
pub struct Qemu {
    child: Child,
    /// The library it was asked to load.
    pub library: Library,
    /// The SPICE listening address.
    pub addr: SocketAddr,
    /// Every `libspice-server` file the process mapped (from `/proc/PID/maps`).
    pub mapped: Vec<PathBuf>,
    /// When the process was started.
    pub started: Instant,
    /// How long until SPICE accepted connections.
    pub ready_after: Duration,
    stderr_path: PathBuf,
    log_path: PathBuf,
    serial: Option<Serial>,
}

/// The guest's serial port, when QEMU runs a Linux guest ([`Qemu::start_linux`]).
#[derive(Debug)]
struct Serial {
    input: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line seen so far.
    seen: Vec<String>,
}

/// How to start QEMU.
struct Launch<'a> {
    spice: &'a str,
    args: &'a [&'a str],
    /// Accelerator; KVM when usable, else TCG, when not given.
    accel: Option<&'static str>,
    /// The serial port on QEMU's stdin and stdout (else `-serial none`).
    serial: bool,
    /// SPICE on a Unix socket at this path (`unix=on,addr=PATH`) instead of
    /// a loopback port.
    unix: Option<&'a Path>,
    /// More environment for QEMU (the library's log settings, say).
    env: &'a [(&'a str, &'a str)],
}

/// QEMU arguments for an HDA sound card on QEMU's SPICE audio backend
/// (which sets the playback rate to 48 kHz, so Opus is offered).
pub const SOUND_CARD: &[&str] = &[
    "-audiodev",
    "spice,id=snd0",
    "-device",
    "intel-hda",
    "-device",
    "hda-output,audiodev=snd0",
];

/// A loopback port free at the time of asking.
pub fn free_loopback_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

impl Qemu {
    /// Starts `qemu-system-x86_64 -display none -nic none -monitor none -serial
    /// none -spice port=P,addr=127.0.0.1,disable-ticketing=on` plus `args`,
    /// with `-accel kvm` when `/dev/kvm` is usable and `-accel tcg` otherwise,
    /// and waits until the SPICE port accepts a connection. QEMU's own log
    /// (`-D`, where `-trace` output goes) is kept for [`Qemu::log`].
    pub fn start(library: &Library, args: &[&str]) -> Self {
        Self::start_with_spice(library, "disable-ticketing=on", args)
    }

    /// As [`Qemu::start`], with `spice` instead of `disable-ticketing=on` after
    /// the port and address in the `-spice` option.
    pub fn start_with_spice(library: &Library, spice: &str, args: &[&str]) -> Self {
        Self::launch(
            library,
            &Launch {
                spice,
                args,
                accel: None,
                serial: false,
                unix: None,
                env: &[],
            },
        )
    }

    /// As [`Qemu::start`], with more environment for QEMU (the library's
    /// own switches, such as `SPICE_DEBUG_ALLOW_MC`).
    pub fn start_with_env(library: &Library, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch(
            library,
            &Launch {
                spice: "disable-ticketing=on",
                args,
                accel: None,
                serial: false,
                unix: None,
                env,
            },
        )
    }

    /// As [`Qemu::start_with_spice`], SPICE listening on a Unix socket at
    /// `path` (`-spice unix=on,addr=PATH,` then `spice`); ready once the
    /// socket accepts a connection. [`Qemu::addr`] is then meaningless.
    pub fn start_unix(library: &Library, path: &Path, spice: &str, args: &[&str]) -> Self {
        Self::launch(
            library,
            &Launch {
                spice,
                args,
                accel: None,
                serial: false,
                unix: Some(path),
                env: &[],
            },
        )
    }

    /// Boots `guest` (`-kernel`, `-initrd`, the kernel command line `append`,
    /// which should start with [`crate::guest::LinuxGuest::append`]) under TCG, which
    /// boots Linux wherever QEMU runs (KVM may not run a Linux guest inside
    /// another VM), with the guest's serial port on pipes for
    /// [`Qemu::serial_send`] and [`Qemu::serial_wait`]. `spice` and `args` as
    /// in [`Qemu::start_with_spice`].
    pub fn start_linux(
        library: &Library,
        guest: &crate::guest::LinuxGuest,
        append: &str,
        spice: &str,
        args: &[&str],
    ) -> Self {
        Self::start_linux_with_env(library, guest, append, spice, args, &[])
    }

    /// As [`Qemu::start_linux`], with more environment for QEMU.
    pub fn start_linux_with_env(
        library: &Library,
        guest: &crate::guest::LinuxGuest,
        append: &str,
        spice: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let kernel = guest.kernel.display().to_string();
        let initrd = guest.initrd.display().to_string();
        let mut all: Vec<&str> = vec![
            "-kernel",
            &kernel,
            "-initrd",
            &initrd,
            "-append",
            append,
            "-no-reboot",
        ];
        all.extend_from_slice(args);
        Self::launch(
            library,
            &Launch {
                spice,
                args: &all,
                accel: Some("tcg"),
                serial: true,
                unix: None,
                env,
            },
        )
    }

    fn launch(library: &Library, launch: &Launch<'_>) -> Self {
        let mut last_error = String::new();
        // A port found free can be taken before QEMU binds it: retry then.
        for _ in 0..3 {
            match Self::try_start(library, launch) {
                Ok(q) => return q,
                Err(e) => last_error = e,
            }
        }
        panic!(
            "QEMU with the {} library did not start: {last_error}",
            library.name()
        );
    }

    fn try_start(library: &Library, launch: &Launch<'_>) -> Result<Self, String> {
        let port = free_loopback_port();
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let tmp = std::env::temp_dir();
        let tag = format!("spice-qemu-{}-{port}", std::process::id());
        let stderr_path = tmp.join(format!("{tag}.stderr"));
        let log_path = tmp.join(format!("{tag}.log"));
        let _ = std::fs::remove_file(&log_path);
        let stderr = File::create(&stderr_path).map_err(|e| format!("{}: {e}", stderr_path.display()))?;
        let accel = launch.accel.unwrap_or(if kvm_usable() { "kvm" } else { "tcg" });
        let serial = if launch.serial { "stdio" } else { "none" };
        let mut cmd = Command::new(QEMU);
        cmd.args(["-accel", accel])
            .args([
                "-display", "none", "-nic", "none", "-monitor", "none", "-serial", serial,
            ])
            .arg("-spice")
            .arg(match launch.unix {
                Some(path) => format!("unix=on,addr={},{}", path.display(), launch.spice),
                None => format!("port={port},addr=127.0.0.1,{}", launch.spice),
            })
            .arg("-D")
            .arg(&log_path)
            .args(launch.args)
            .stderr(stderr);
        if launch.serial {
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        } else {
            cmd.stdin(Stdio::null()).stdout(Stdio::null());
        }
        cmd.envs(launch.env.iter().copied());
        match library {
            Library::Rust(dir) => cmd.env("LD_LIBRARY_PATH", dir),
            Library::Debian => cmd.env_remove("LD_LIBRARY_PATH"),
        };
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn {QEMU} (apt-get install qemu-system-x86): {e}"))?;
        let serial = match (child.stdin.take(), child.stdout.take()) {
            (Some(input), Some(output)) => {
                let (tx, lines) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    use std::io::BufRead;
                    for line in std::io::BufReader::new(output).lines() {
                        let Ok(line) = line else { break };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                });
                Some(Serial {
                    input,
                    lines,
                    seen: Vec::new(),
                })
            }
            _ => None,
        };
        let mut q = Self {
            child,
            library: library.clone(),
            addr,
            mapped: Vec::new(),
            started,
            ready_after: Duration::ZERO,
            stderr_path,
            log_path,
            serial,
        };
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = q.child.try_wait() {
                return Err(format!("exited with {status}; stderr:\n{}", q.stderr()));
            }
            let ready = match launch.unix {
                Some(path) => std::os::unix::net::UnixStream::connect(path).is_ok(),
                None => TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
            };
            if ready {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "SPICE port {port} (or unix socket {:?}) not accepting; stderr:\n{}",
                    launch.unix,
                    q.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        q.ready_after = started.elapsed();
        q.mapped = q.mapped_spice_libraries();
        Ok(q)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one line to the guest's serial port ([`Qemu::start_linux`] only).
    pub fn serial_send(&mut self, line: &str) {
        use std::io::Write;
        let serial = self.serial.as_mut().expect("QEMU was started with a serial port");
        writeln!(serial.input, "{line}").expect("write to the guest's serial port");
        serial.input.flush().expect("write to the guest's serial port");
    }

    /// Waits for a serial line starting with `prefix` (lines seen before this
    /// call are not looked at again); returns it, or `None` after `timeout`
    /// or when QEMU exits. Lines starting with `GUEST ERROR` fail at once.
    pub fn serial_wait(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        let serial = self.serial.as_mut().expect("QEMU was started with a serial port");
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = serial.lines.recv_timeout(left).ok()?;
            serial.seen.push(line.clone());
            assert!(
                !line.starts_with("GUEST ERROR"),
                "the guest reported an error: {line}"
            );
            if line.starts_with(prefix) {
                return Some(line);
            }
        }
    }

    /// Every serial line seen so far.
    pub fn serial_log(&self) -> String {
        self.serial
            .as_ref()
            .map(|s| s.seen.join("\n"))
            .unwrap_or_default()
    }

    /// Where QEMU's threads are, for a guest that stopped answering: each
    /// thread's name, state, kernel wait channel and CPU ticks, then every
    /// thread's stack as `gdb` (when installed) prints it. Our library
    /// carries its symbols, so its worker's stack names the function it
    /// waits in.
    pub fn threads_report(&self) -> String {
        use std::fmt::Write as _;
        let pid = self.pid();
        let mut out = String::new();
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.filter_map(Result::ok).map(|t| t.path()).collect::<Vec<_>>())
            .unwrap_or_default();
        for task in tasks {
            let read = |f: &str| std::fs::read_to_string(task.join(f)).unwrap_or_default();
            let stat = read("stat");
            // Fields after the command name: state, ..., utime (14), stime (15).
            let fields: Vec<&str> = stat
                .rfind(')')
                .map(|at| stat[at + 1..].split_whitespace().collect())
                .unwrap_or_default();
            let field = |i: usize| fields.get(i).copied().unwrap_or("?");
            let _ = writeln!(
                out,
                "{:<16} state {} wchan {:<24} utime {} stime {}",
                read("comm").trim_end(),
                field(0),
                read("wchan"),
                field(11),
                field(12)
            );
        }
        let gdb = Command::new("timeout")
            .args([
                "60",
                "gdb",
                "-p",
                &pid.to_string(),
                "-batch",
                "-ex",
                "thread apply all bt 20",
            ])
            .stdin(Stdio::null())
            .output();
        match gdb {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout);
                for line in text.lines().filter(|l| !l.starts_with("[New LWP")) {
                    let _ = writeln!(out, "{line}");
                }
            }
            Ok(o) => {
                let _ = writeln!(out, "(gdb: {})", String::from_utf8_lossy(&o.stderr).trim());
            }
            Err(e) => {
                let _ = writeln!(out, "(no stacks: gdb: {e})");
            }
        }
        out
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The distinct `libspice-server` files in `/proc/PID/maps` now.
    pub fn mapped_spice_libraries(&self) -> Vec<PathBuf> {
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", self.pid())).unwrap_or_default();
        let mut found: Vec<PathBuf> = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .filter(|p| p.contains("libspice-server"))
            .map(PathBuf::from)
            .collect();
        found.sort();
        found.dedup();
        found
    }

    /// Panics unless the process mapped exactly the library it was asked to load.
    pub fn assert_library(&self) {
        let want = self.library.expected_file();
        assert_eq!(
            self.mapped,
            vec![want.clone()],
            "QEMU (pid {}) should map only {} ({} library)",
            self.pid(),
            want.display(),
            self.library.name()
        );
    }

    /// Everything QEMU (and a library logging to stderr) wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// QEMU's log file (`-D`): the output of `-trace` events.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        // Only our own child, by PID.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "QEMU ({} library, pid {}) stderr kept in {}, log in {}",
                self.library.name(),
                self.child.id(),
                self.stderr_path.display(),
                self.log_path.display()
            );
        } else {
            let _ = std::fs::remove_file(&self.stderr_path);
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

/// A client's primary surface: packed xRGB rows, X bytes zeroed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 4` bytes, B G R 0.
    pub pixels: Vec<u8>,
}

/// SeaBIOS 1.16.2 (Debian's, which QEMU 7.2 loads) screens as text line
/// lengths ([`Picture::text_lines`]).
pub mod seabios {
    /// "SeaBIOS (version 1.16.2-debian-1.16.2-1)" and the boot attempts, ending
    /// with "No bootable device.".
    pub const NO_BOOTABLE_DEVICE: &[u32] = &[40, 25, 41, 0, 22, 41, 0, 22, 50, 19];
    /// The banner, then "Press ESC for boot menu.".
    pub const PRESS_ESC: &[u32] = &[40, 0, 24];
    /// The above, then "Select boot device:" and three entries.
    pub const BOOT_MENU: &[u32] = &[40, 0, 24, 0, 19, 0, 20, 19, 47];
}

/// Text cell size of the 720x400 VGA text mode (80x25 cells of 9x16 pixels).
pub const CELL: (u32, u32) = (9, 16);

impl Picture {
    /// Dumps the client's current primary surface.
    pub fn of(gtk: &mut crate::gtk::SpiceGtk) -> Option<Self> {
        let (width, height, pixels) = gtk.surface()?;
        Some(Self {
            width,
            height,
            pixels,
        })
    }

    /// Whether any pixel in the cell at text `row`, `col` is not black.
    pub fn cell_lit(&self, row: u32, col: u32) -> bool {
        let (cw, ch) = CELL;
        (row * ch..(row + 1) * ch).any(|y| {
            let start = (y * self.width + col * cw) as usize * 4;
            self.pixels[start..start + cw as usize * 4]
                .iter()
                .any(|&b| b != 0)
        })
    }

    /// For a 720x400 text screen, per text row, how many cells up to the last
    /// lit one: a cheap fingerprint of which lines of text are on the screen
    /// and how long they are. Empty for other sizes.
    pub fn text_lines(&self) -> Vec<u32> {
        if (self.width, self.height) != (720, 400) {
            return Vec::new();
        }
        let (cols, rows) = (self.width / CELL.0, self.height / CELL.1);
        (0..rows)
            .map(|r| {
                (0..cols)
                    .rev()
                    .find(|&c| self.cell_lit(r, c))
                    .map_or(0, |c| c + 1)
            })
            .collect()
    }

    /// Whether the picture shows the text screen `lines` (see [`seabios`]),
    /// and if so whether the blinking cursor (a lone lit cell at the start
    /// of an otherwise empty row) is drawn.
    pub fn shows(&self, lines: &[u32]) -> Option<bool> {
        let got = self.text_lines();
        if got.is_empty() {
            return None;
        }
        let mut cursor = false;
        for (row, &n) in got.iter().enumerate() {
            let want = lines.get(row).copied().unwrap_or(0);
            if n == want {
                continue;
            }
            if want == 0 && n == 1 && !cursor {
                cursor = true;
                continue;
            }
            return None;
        }
        Some(cursor)
    }

    /// How many pixels differ from `other` (all of them if the sizes differ).
    pub fn diff(&self, other: &Self) -> usize {
        if (self.width, self.height) != (other.width, other.height) {
            return (self.width * self.height).max(other.width * other.height) as usize;
        }
        crate::pattern::diff_count(&self.pixels, &other.pixels)
    }

    /// Writes the picture as a binary PPM (for looking at a failure).
    pub fn save_ppm(&self, path: &Path) -> std::io::Result<()> {
        let mut out = format!("P6\n{} {}\n255\n", self.width, self.height).into_bytes();
        for px in self.pixels.chunks_exact(4) {
            out.extend_from_slice(&[px[2], px[1], px[0]]);
        }
        std::fs::write(path, out)
    }
}
