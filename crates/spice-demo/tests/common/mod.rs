//! Starting the demo binary for the integration tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};

/// The demo process; killed by PID when dropped.
pub struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the demo on a free port with `args` and returns the address it prints.
///
/// The demo's log (some tests provoke its warnings, such as a wrong password)
/// goes through the test's captured output, which the harness shows only
/// when the test fails.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn start_demo(args: &[&str]) -> (Demo, SocketAddr) {
    let (demo, uri) = start_demo_uri(args);
    let address = uri.trim_start_matches("spice://");
    (demo, address.parse().expect("host:port"))
}

/// As [`start_demo`], returning the `spice://` URI the demo prints whole
/// (with a TLS port it carries a query: `?port=…&tls-port=…`).
#[allow(dead_code)]
pub fn start_demo_uri(args: &[&str]) -> (Demo, String) {
    let (demo, uri, _) = start_demo_with_output(args);
    (demo, uri)
}

/// As [`start_demo_uri`], also returning the rest of the demo's standard
/// output (what `--stats` prints).
#[allow(dead_code)]
pub fn start_demo_with_output(args: &[&str]) -> (Demo, String, BufReader<ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spice-demo"))
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("demo starts");
    let stderr = child.stderr.take().expect("piped stderr");
    // Threads inherit the test's output capture, so `eprintln!` here is captured.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("demo: {line}");
        }
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let demo = Demo(child);
    let mut line = String::new();
    let mut stdout = BufReader::new(stdout);
    stdout.read_line(&mut line).expect("demo prints its URI");
    let uri = line
        .split_whitespace()
        .find(|w| w.starts_with("spice://"))
        .expect("a spice:// URI")
        .to_owned();
    (demo, uri, stdout)
}
