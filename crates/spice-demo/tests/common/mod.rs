//! Starting the demo binary for the integration tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// The demo process; killed by PID when dropped.
pub struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the demo on a free port with `args` and returns the address it prints.
pub fn start_demo(args: &[&str]) -> (Demo, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spice-demo"))
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("demo starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let demo = Demo(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("demo prints its URI");
    let uri = line
        .split_whitespace()
        .find(|w| w.starts_with("spice://"))
        .expect("a spice:// URI");
    (
        demo,
        uri.trim_start_matches("spice://").parse().expect("host:port"),
    )
}
