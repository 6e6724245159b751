//! The demo with `--tls-cert`/`--tls-key`: spice-gtk opens the URI it prints
//! and, with every channel TLS-only (`--tls-channel default`), sees the card.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use spice_interop::gtk::SpiceGtk;

const T: Duration = Duration::from_secs(20);

/// Killed by PID when dropped.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn demo_serves_tls_with_its_certificate_and_key() {
    let dir = std::env::temp_dir().join(format!("spice-demo-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca-cert.pem",
        "-days",
        "2",
        "-subj",
        "/CN=demo test CA",
    ]);
    openssl(&dir, &ca);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let mut req = vec!["req"];
    req.extend(ec);
    req.extend(["-keyout", "key.pem", "-out", "req.csr", "-subj", "/CN=127.0.0.1"]);
    openssl(&dir, &req);
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            "ca-cert.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_spice-demo"))
        .args([
            "--port",
            "0",
            "--tls-port",
            "0",
            "--width",
            "320",
            "--height",
            "240",
        ])
        .arg("--tls-cert")
        .arg(dir.join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.join("key.pem"))
        .args(["--tls-channel", "default"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("demo starts");
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("demo: {line}");
        }
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let _demo = Demo(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("demo prints its URI");
    let uri = line
        .split_whitespace()
        .find(|w| w.starts_with("spice://"))
        .expect("a spice:// URI")
        .to_owned();
    assert!(uri.contains("tls-port="), "the URI names the TLS port: {uri}");

    let mut gtk = SpiceGtk::start();
    gtk.send(json!({
        "cmd": "connect",
        "uri": uri,
        "props": {"ca-file": dir.join("ca-cert.pem").display().to_string()},
    }));
    gtk.expect("mark", T);
    let (w, h, _) = gtk.surface().expect("surface");
    assert_eq!((w, h), (320, 240));
    gtk.quit();
    let _ = std::fs::remove_dir_all(&dir);
}
