//! A QEMU Machine Protocol client on a Unix socket (`-qmp
//! unix:PATH,server=on,wait=off`): commands and their answers, events kept.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One QMP connection, past capability negotiation.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Every event received so far, in order.
    pub events: Vec<Value>,
}

impl Qmp {
    /// Connects (retrying until `timeout`: QEMU creates the socket as it
    /// starts) and leaves capability negotiation.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, String> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => return Err(format!("{}: {e}", path.display())),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut qmp = Self {
            reader: BufReader::new(stream),
            writer,
            events: Vec::new(),
        };
        // QEMU can write an event before the greeting: one raised (say
        // SPICE_CONNECTED, from the harness's readiness probe) between the
        // socket's accept and the monitor's handling of the new connection.
        let greeting = loop {
            let line = qmp.read()?;
            if line.get("event").is_some() {
                qmp.events.push(line);
                continue;
            }
            break line;
        };
        if greeting.get("QMP").is_none() {
            return Err(format!("not a QMP greeting: {greeting}"));
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn read(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("QMP socket closed".into()),
            Ok(_) => serde_json::from_str(&line).map_err(|e| format!("bad QMP line {line:?}: {e}")),
            Err(e) => Err(format!("QMP read: {e}")),
        }
    }

    /// Runs `command` with `arguments`; its `return` value, or the error's description.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, String> {
        let mut line = json!({ "execute": command, "arguments": arguments }).to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| format!("QMP write: {e}"))?;
        loop {
            let reply = self.read()?;
            if reply.get("event").is_some() {
                self.events.push(reply);
            } else if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            } else if let Some(err) = reply.get("error") {
                return Err(format!("{command}: {}", err["desc"]));
            }
        }
    }

    /// Whether event `name` was received (polling QEMU until `timeout`).
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.events.iter().any(|e| e["event"] == name) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // Any command brings the events queued before its answer.
            let _ = self.execute("query-status", json!({}));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
