//! The benchmark host (`benches/host/bench_host.c`): compiling it, and running
//! it against one library.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// Where Debian keeps the C library.
pub const DEBIAN_DIR: &str = "/usr/lib/x86_64-linux-gnu";
/// The shared object both libraries are loaded as.
pub const SONAME: &str = "libspice-server.so.1";

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/spice-bench sits two levels below the workspace root")
        .to_path_buf()
}

/// One library under test: a directory holding `libspice-server.so.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// Short name for tables: `ours` or `C`.
    pub name: String,
    /// The directory given to the host as `LD_LIBRARY_PATH`.
    pub dir: PathBuf,
}

impl Library {
    /// Ours, from a directory holding the `cargo xtask capi` output.
    pub fn ours(dir: impl Into<PathBuf>) -> Self {
        Self {
            name: "ours".into(),
            dir: dir.into(),
        }
    }

    /// Debian's C library (libspice-server1).
    pub fn debian() -> Self {
        Self {
            name: "C".into(),
            dir: PathBuf::from(DEBIAN_DIR),
        }
    }

    /// The file the host must have mapped once it has loaded this library.
    pub fn file(&self) -> Result<PathBuf> {
        let path = self.dir.join(SONAME);
        std::fs::canonicalize(&path).with_context(|| format!("{}", path.display()))
    }
}

/// Builds our library with `cargo xtask capi` and returns its directory.
pub fn build_our_library() -> Result<PathBuf> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&root)
        .args(["xtask", "capi"])
        .stderr(Stdio::inherit())
        .output()
        .context("run cargo xtask capi")?;
    if !out.status.success() {
        bail!("cargo xtask capi failed");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let built = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    if !(built.ends_with(SONAME) && built.exists()) {
        bail!("cargo xtask capi printed {stdout:?}");
    }
    Ok(built.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// Compiles `benches/host/bench_host.c` into `out_dir/bench_host`, linked
/// against Debian's library (so it imports the upstream symbol versions, as
/// QEMU does); `LD_LIBRARY_PATH` picks the library at run time.
pub fn compile_host(out_dir: &Path) -> Result<PathBuf> {
    let source_dir = workspace_root().join("benches/host");
    let source = source_dir.join("bench_host.c");
    std::fs::create_dir_all(out_dir)?;
    let binary = out_dir.join("bench_host");
    // Built under a private name and renamed into place, so that processes
    // building at the same time never run a half-written binary.
    let building = out_dir.join(format!("bench_host.{}", std::process::id()));
    let cflags = Command::new("pkg-config")
        .args(["--cflags", "spice-server"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|| "-I/usr/include/spice-server -I/usr/include/spice-1".into());
    let cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=gnu11", "-O2", "-g", "-Wall", "-Wextra"])
        .args(cflags.split_whitespace())
        .arg("-I")
        .arg(&source_dir)
        .arg("-o")
        .arg(&building)
        .arg(&source)
        .arg(format!("-L{DEBIAN_DIR}"))
        .args([&format!("-l:{SONAME}"), "-lpthread", "-lm"])
        .output()
        .context("a C compiler (cc)")?;
    if !cc.status.success() {
        bail!(
            "compiling bench_host.c against spice.h failed (apt-get install libspice-server-dev):\n{}",
            String::from_utf8_lossy(&cc.stderr)
        );
    }
    std::fs::rename(&building, &binary)?;
    Ok(binary)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(5930)
}

/// Events the host prints only when something is wrong.
const PROBLEMS: [&str; 3] = ["core-off-thread", "qxl-unexpected", "fatal"];

/// The host process's CPU at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostCpu {
    /// Every thread, ended ones too.
    pub total_s: f64,
    /// The library's part of it: the library's own threads, and its calls,
    /// timers and watches on the host's main thread.
    pub library_s: Option<f64>,
}

/// A running host. Killed (by its PID, through `Child`) if dropped before `quit`.
pub struct Host {
    /// The library it runs against.
    pub lib: Library,
    /// The port the server listens on.
    pub port: u16,
    /// Every event seen so far, in order.
    pub seen: Vec<Value>,
    child: Child,
    stdin: ChildStdin,
    events: Receiver<Value>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Host {
    /// Starts the host and waits for "ready" (retrying on another port if the
    /// one probed was taken in between).
    pub fn start(binary: &Path, lib: &Library, args: &[String]) -> Result<Self> {
        let mut last = anyhow!("not started");
        for _attempt in 0..3 {
            let mut host = Self::spawn(binary, lib, args)?;
            match host.wait_ready() {
                Ok(()) => return Ok(host),
                Err(e) => {
                    host.kill();
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn spawn(binary: &Path, lib: &Library, args: &[String]) -> Result<Self> {
        let port = free_port();
        let mut child = Command::new(binary)
            .args(["--port", &port.to_string()])
            .args(args)
            .env("LD_LIBRARY_PATH", &lib.dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = channel();
        // GLib's default handler writes info and debug lines to stdout: with
        // SPICE_BENCH_HOST_LOG they go to that file too (see below).
        let log_file = || {
            std::env::var_os("SPICE_BENCH_HOST_LOG").and_then(|path| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .ok()
            })
        };
        let mut stdout_copy = log_file();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                } else if let Some(file) = &mut stdout_copy {
                    use std::io::Write as _;
                    let _ = writeln!(file, "{line}");
                }
            }
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        // SPICE_BENCH_HOST_LOG=<file>: also append everything the host and the
        // library write on stderr there (with SPICE_RS_LOG=debug, say, to see
        // what our library does during a scenario).
        let mut copy = log_file();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(file) = &mut copy {
                    use std::io::Write as _;
                    let _ = writeln!(file, "{line}");
                }
                if line.trim().is_empty() {
                    continue;
                }
                let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                // Keep the last lines only: a chatty library must not grow this.
                if log.len() >= 200 {
                    log.remove(0);
                }
                log.push(line);
            }
        });
        Ok(Self {
            lib: lib.clone(),
            port,
            seen: Vec::new(),
            child,
            stdin,
            events: rx,
            stderr: log,
        })
    }

    fn wait_ready(&mut self) -> Result<()> {
        let t = Duration::from_secs(20);
        let lib = self
            .wait(t, |v| v["event"] == "library")
            .ok_or_else(|| anyhow!("{}: no \"library\" event; {}", self.lib.name, self.log_tail()))?;
        let loaded = PathBuf::from(lib["path"].as_str().unwrap_or_default());
        let want = self.lib.file()?;
        if std::fs::canonicalize(&loaded).ok().as_ref() != Some(&want) {
            bail!(
                "{}: the host loaded {:?} instead of {}",
                self.lib.name,
                loaded,
                want.display()
            );
        }
        match self.wait(t, |v| v["event"] == "ready" || v["event"] == "fatal") {
            Some(v) if v["event"] == "ready" => Ok(()),
            other => bail!(
                "{}: host not ready ({other:?}); {}",
                self.lib.name,
                self.log_tail()
            ),
        }
    }

    /// The host's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The "ready" event.
    pub fn ready(&self) -> Option<&Value> {
        self.seen.iter().find(|v| v["event"] == "ready")
    }

    /// Sends one command line.
    pub fn send(&mut self, line: &str) -> Result<()> {
        writeln!(self.stdin, "{line}").context("host stdin")?;
        self.stdin.flush().context("host stdin")
    }

    /// Waits for an event matching `want`; `None` on timeout or exit.
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
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Runs a command and waits for its "ok".
    pub fn cmd(&mut self, line: &str) -> Result<()> {
        let name = line.split_whitespace().next().unwrap_or_default().to_owned();
        self.send(line)?;
        match self.wait(Duration::from_secs(20), |v| {
            (v["event"] == "ok" || v["event"] == "error") && v["cmd"] == name.as_str()
        }) {
            Some(v) if v["event"] == "ok" => Ok(()),
            other => bail!("{}: command {line:?} failed: {other:?}", self.lib.name),
        }
    }

    /// The host process's CPU so far, to the microsecond (the host's
    /// `getrusage` and thread clocks); the total from `/proc` (10 ms clock
    /// ticks), and no library share, if the host does not answer.
    pub fn cpu(&mut self) -> HostCpu {
        let counts = self
            .send("stats")
            .ok()
            .and_then(|()| self.wait(Duration::from_secs(20), |v| v["event"] == "counts"));
        let us = |key: &str| {
            counts
                .as_ref()
                .and_then(|v| v[key].as_i64())
                .filter(|us| *us >= 0)
        };
        let all = us("cpu_us");
        let total = all.map(|us| us as f64 / 1e6);
        // The library's threads are every thread but the main one (the host
        // starts none); on the main thread, what it timed in the library.
        let library = match (all, us("main_cpu_us"), us("library_main_us")) {
            (Some(all), Some(main), Some(in_library)) => {
                Some((all - main).max(0) as f64 / 1e6 + in_library as f64 / 1e6)
            }
            _ => None,
        };
        HostCpu {
            total_s: total
                .or_else(|| crate::procfs::cpu_seconds(self.pid()))
                .unwrap_or_default(),
            library_s: library,
        }
    }

    /// Problems the host reported so far (events that only come when something is wrong).
    pub fn problems(&self) -> Vec<Value> {
        self.seen
            .iter()
            .filter(|v| PROBLEMS.iter().any(|p| v["event"] == *p))
            .cloned()
            .collect()
    }

    /// The last lines the host (or the library) wrote on stderr.
    pub fn log_tail(&self) -> String {
        let log = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let from = log.len().saturating_sub(20);
        log[from..].join("\n")
    }

    /// Ends the host ("quit": destroy the primary, remove the QXL interface,
    /// spice_server_destroy) and waits for it to exit; kills it if it hangs.
    /// Returns the "counts" event of the exit.
    pub fn quit(mut self) -> Result<Value> {
        self.send("quit")?;
        let counts = self.wait(Duration::from_secs(20), |v| v["event"] == "counts");
        let exited = self.wait(Duration::from_secs(20), |v| v["event"] == "exit");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() || exited.is_none() {
                    bail!(
                        "{}: host exited with {status}; {}",
                        self.lib.name,
                        self.log_tail()
                    );
                }
                break;
            }
            if Instant::now() >= deadline {
                self.kill();
                bail!("{}: host hangs after quit; {}", self.lib.name, self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        counts.ok_or_else(|| anyhow!("{}: no counts at quit", self.lib.name))
    }

    fn kill(&mut self) {
        // Only our own child, by PID.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}
