//! The C host of the differential tests (`host.c` with `scene.c`), compiled
//! once per test process and run against our library or Debian's: shared by
//! `c_host.rs` and `qxl_differential.rs` (not every test uses every item).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const T: Duration = Duration::from_secs(20);
/// Where Debian keeps the C library.
pub const DEBIAN_DIR: &str = "/usr/lib/x86_64-linux-gnu";
pub const SONAME: &str = "libspice-server.so.1";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/spice-capi sits two levels below the workspace root")
        .to_path_buf()
}

/// The library under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lib {
    /// Ours, built by `cargo xtask capi`.
    Ours,
    /// Debian's libspice-server1 (the C implementation).
    Debian,
}

impl Lib {
    pub fn dir(self) -> PathBuf {
        match self {
            Lib::Ours => our_lib_dir().to_path_buf(),
            Lib::Debian => PathBuf::from(DEBIAN_DIR),
        }
    }

    /// The file `/proc/self/maps` must show once the host has loaded it.
    pub fn file(self) -> PathBuf {
        let path = self.dir().join(SONAME);
        std::fs::canonicalize(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// Builds our library once per test process (or takes it from `SPICE_CAPI_LIB_DIR`).
pub fn our_lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace_root();
        if let Some(dir) = std::env::var_os("SPICE_CAPI_LIB_DIR") {
            let dir = if dir.is_empty() {
                root.join("target/release")
            } else {
                PathBuf::from(dir)
            };
            assert!(
                dir.join(SONAME).exists(),
                "SPICE_CAPI_LIB_DIR: no {SONAME} in {}",
                dir.display()
            );
            return dir;
        }
        let out = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["xtask", "capi"])
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo xtask capi");
        assert!(out.status.success(), "cargo xtask capi failed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let built = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        assert!(
            built.ends_with(SONAME) && built.exists(),
            "cargo xtask capi printed {stdout:?}"
        );
        built.parent().unwrap().to_path_buf()
    })
}

/// Compiles `host.c` once per test process, linked against Debian's library
/// so that it imports the upstream symbol versions, as QEMU's modules do.
pub fn host_binary() -> &'static Path {
    static HOST: OnceLock<PathBuf> = OnceLock::new();
    HOST.get_or_init(|| {
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c_host");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_host");
        std::fs::create_dir_all(&dir).unwrap();
        // Built under a private name and renamed into place, so test processes
        // running at the same time never see a half-written binary.
        let building = dir.join(format!("host.{}", std::process::id()));
        let binary = dir.join("host");
        let cflags = Command::new("pkg-config")
            .args(["--cflags", "spice-server"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|| "-I/usr/include/spice-server -I/usr/include/spice-1".into());
        let cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-std=gnu11", "-O1", "-g", "-Wall", "-Wextra"])
            .args(cflags.split_whitespace())
            .arg("-o")
            .arg(&building)
            .arg(sources.join("host.c"))
            .arg(sources.join("scene.c"))
            .arg(format!("-L{DEBIAN_DIR}"))
            .args([&format!("-l:{SONAME}"), "-lpthread"])
            .output()
            .expect("a C compiler (cc)");
        assert!(
            cc.status.success(),
            "compiling host.c against spice.h failed (apt-get install libspice-server-dev):\n{}",
            String::from_utf8_lossy(&cc.stderr)
        );
        std::fs::rename(&building, &binary).unwrap();
        // The host must import versioned symbols, or it would not test symbol versioning.
        let imports = dynamic_symbols(&binary, false);
        assert!(
            imports.contains(&("SPICE_SERVER_0.6.0".to_string(), "spice_server_new".to_string())),
            "host does not import spice_server_new@SPICE_SERVER_0.6.0: {imports:?}"
        );
        binary
    })
}

/// Runs one scenario at a time: each one starts a server, a client and audio
/// timers, and two cores are not enough to run them side by side reliably.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Events the host prints only when something is wrong.
pub const PROBLEMS: [&str; 6] = [
    "core-off-thread",
    "core-error",
    "qxl-unexpected",
    "record-error",
    "fatal",
    "error",
];

/// A running `host` process. Killed (by PID) if dropped before `quit`.
pub struct Host {
    pub lib: Lib,
    pub child: Child,
    pub stdin: ChildStdin,
    pub events: Receiver<Value>,
    /// Every event so far, in order.
    pub seen: Vec<Value>,
    pub port: u16,
    pub dir: PathBuf,
    /// Every non-empty line the host wrote on stderr (the library's logging).
    pub stderr_lines: Arc<Mutex<Vec<String>>>,
}

impl Host {
    pub fn start(lib: Lib, args: &[&str]) -> Self {
        let binary = host_binary();
        for _attempt in 0..3 {
            let mut host = Self::spawn(lib, binary, args);
            if host.wait_ready() {
                return host;
            }
            // The port was taken between probing and binding: try another one.
            host.kill();
        }
        panic!("{lib:?}: the host did not start");
    }

    fn spawn(lib: Lib, binary: &Path, args: &[&str]) -> Self {
        let port = free_port();
        let mut child = Command::new(binary)
            .args(["--port", &port.to_string()])
            .args(args)
            .env("LD_LIBRARY_PATH", lib.dir())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the C host");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("host[{lib:?}] stdout: {line}"),
                }
            }
        });
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&stderr_lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !line.trim().is_empty() {
                    eprintln!("host[{lib:?}] stderr: {line}");
                    kept.lock().unwrap().push(line);
                }
            }
        });
        let dir = std::env::temp_dir().join(format!("spice-c-host-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            lib,
            child,
            stdin,
            events: rx,
            seen: Vec::new(),
            port,
            dir,
            stderr_lines,
        }
    }

    /// Checks which library was loaded, then waits for "ready".
    fn wait_ready(&mut self) -> bool {
        let lib = self.expect("library");
        let loaded = PathBuf::from(lib["path"].as_str().unwrap_or_default());
        assert_eq!(
            std::fs::canonicalize(&loaded).ok(),
            Some(self.lib.file()),
            "{:?}: the host loaded {} instead",
            self.lib,
            loaded.display()
        );
        match self.wait(T, |v| v["event"] == "ready" || v["event"] == "fatal") {
            Some(v) if v["event"] == "ready" => true,
            Some(_) => false,
            None => panic!("{:?}: host not ready; seen {:#?}", self.lib, self.seen),
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        (Ipv4Addr::LOCALHOST, self.port).into()
    }

    pub fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("host stdin");
        self.stdin.flush().expect("host stdin");
    }

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

    /// The first event from `self.seen[from..]` on that matches `want`, seen or yet to come.
    pub fn seen_or_wait(
        &mut self,
        from: usize,
        timeout: Duration,
        mut want: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        match self.seen[from..].iter().find(|v| want(v)) {
            Some(v) => Some(v.clone()),
            None => self.wait(timeout, want),
        }
    }

    pub fn expect(&mut self, event: &str) -> Value {
        match self.wait(T, |v| v["event"] == event) {
            Some(v) => v,
            None => panic!(
                "{:?}: no {event:?} from the host; seen {:#?}",
                self.lib, self.seen
            ),
        }
    }

    /// Runs a command and waits until the host has carried it out.
    pub fn cmd(&mut self, line: &str) {
        let name = line.split_whitespace().next().unwrap_or_default().to_owned();
        self.send(line);
        let done = self.wait(T, |v| {
            (v["event"] == "ok" || v["event"] == "error") && v["cmd"] == name.as_str()
        });
        match done {
            Some(v) if v["event"] == "ok" => {}
            other => panic!(
                "{:?}: command {line:?} failed: {other:?}; seen {:#?}",
                self.lib, self.seen
            ),
        }
    }

    /// Takes every event that arrives within `quiet` of the previous one.
    pub fn drain(&mut self, quiet: Duration) {
        while self.wait(quiet, |_| true).is_some() {}
    }

    pub fn events(&self, event: &str) -> Vec<&Value> {
        self.seen.iter().filter(|v| v["event"] == event).collect()
    }

    /// The host's picture as packed BGRX rows with X zeroed.
    pub fn picture(&mut self) -> (u32, u32, Vec<u8>) {
        let path = self.dir.join("picture.raw");
        self.cmd(&format!("dump {}", path.display()));
        let dumped = self
            .seen
            .iter()
            .rev()
            .find(|v| v["event"] == "dumped")
            .cloned()
            .unwrap();
        let data = std::fs::read(&path).expect("dumped picture");
        let (w, h) = (
            dumped["width"].as_u64().unwrap() as u32,
            dumped["height"].as_u64().unwrap() as u32,
        );
        assert_eq!(data.len(), w as usize * h as usize * 4);
        (w, h, data)
    }

    /// Ends the host: sync destroy of the primary, removal of every interface,
    /// `spice_server_destroy`. Returns every event seen.
    pub fn quit(mut self) -> Vec<Value> {
        self.send("quit");
        let lib = self.lib;
        if self.wait(T, |v| v["event"] == "exit").is_none() {
            panic!("{lib:?}: the host did not exit; seen {:#?}", self.seen);
        }
        let deadline = Instant::now() + T;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{lib:?}: host process hangs after quit"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        self.drain(Duration::from_millis(100));
        assert!(status.success(), "{lib:?}: host exited with {status}");
        let problems: Vec<&Value> = self
            .seen
            .iter()
            .filter(|v| PROBLEMS.iter().any(|p| v["event"] == *p))
            .collect();
        assert!(
            problems.is_empty(),
            "{lib:?}: the host reported problems: {problems:#?}"
        );
        // spice_server_destroy gives back every timer and watch of the host's core.
        let destroyed = self.events("destroyed").first().map(|v| (*v).clone());
        assert_eq!(
            destroyed
                .as_ref()
                .map(|v| (&v["timers_left"], &v["watches_left"])),
            Some((&json!(0), &json!(0))),
            "{lib:?}: core timers and watches left after spice_server_destroy: {destroyed:?}"
        );
        std::mem::take(&mut self.seen)
    }

    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `(version, name)` of the dynamic symbols `objdump -T` lists: the defined
/// ones (functions and version nodes) or the imported ones.
pub fn dynamic_symbols(path: &Path, defined: bool) -> Vec<(String, String)> {
    let out = Command::new("objdump")
        .arg("-T")
        .arg(path)
        .output()
        .expect("objdump (binutils)");
    assert!(out.status.success(), "objdump -T {}", path.display());
    let mut symbols: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| (l.contains(" DF ") || l.contains(" DO ")) && l.contains("*UND*") != defined)
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let name = fields.last()?.to_string();
            let version = fields.get(fields.len().checked_sub(2)?)?;
            Some((version.trim_matches(['(', ')']).to_string(), name))
        })
        .collect();
    symbols.sort();
    symbols
}
