//! SASL authentication with the stock spice-gtk client (its `username` and
//! `password` session properties), through Cyrus SASL on both ends: our
//! server with `spice-capi`'s Cyrus binding through the Rust API, and QEMU
//! 7.2 with `-spice sasl=on` on our library and on Debian's C one.
//!
//! Cyrus is set up once per process, so every test here shares one
//! configuration: a temporary directory named by `SASL_CONF_PATH` with
//! `spice.conf` (the library's default app name) and `qemu.conf` (QEMU's),
//! both pointing at one sasldb made with `saslpasswd2`. On plain TCP the
//! server asks for a security layer of 56 bits or more, as the C server
//! does, so DIGEST-MD5 with its encryption layer is what spice-gtk picks;
//! over TLS it picks SCRAM-SHA-256 and no layer runs.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use spice_interop::devices::{recording, DeviceEvent, Recorder};
use spice_interop::gtk::SpiceGtk;
use spice_interop::pattern::Canvas;
use spice_interop::pki::TestPki;
use spice_server::{DisplayHandle, RunningServer, ServerBuilder, TlsConfig};

const T: Duration = Duration::from_secs(20);
const USER: &str = "alice";
const PASSWORD: &str = "correct horse";

/// The process's SASL configuration directory, made once.
fn sasl_conf() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("spice-sasl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let db = dir.join("sasldb2");
        for app in ["spice", "qemu"] {
            std::fs::write(
                dir.join(format!("{app}.conf")),
                format!(
                    "mech_list: digest-md5 scram-sha-256 plain\nsasldb_path: {}\n",
                    db.display()
                ),
            )
            .expect("SASL configuration");
        }
        let mut child = Command::new("saslpasswd2")
            .args(["-f", &db.display().to_string(), "-a", "spice", "-c", "-p", USER])
            .env("SASL_CONF_PATH", &dir)
            .stdin(Stdio::piped())
            .spawn()
            .expect("saslpasswd2 runs (apt-get install sasl2-bin)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(PASSWORD.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "saslpasswd2 made the sasldb");
        // Read by Cyrus in this process (sasl_server_init) and by the QEMU
        // processes the tests start.
        std::env::set_var("SASL_CONF_PATH", &dir);
        dir
    })
}

fn host(canvas: &Canvas, tls: Option<&TestPki>) -> (RunningServer, Recorder) {
    spice_interop::init_logging();
    sasl_conf();
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let (devices, events) = recording();
    let mut builder = ServerBuilder::new()
        .port(0)
        .sasl(spice_capi::CyrusSasl)
        .display(display)
        .keyboard(devices.clone())
        .tablet(devices);
    if let Some(pki) = tls {
        let config =
            TlsConfig::from_pem_files(pki.dir.join("server-cert.pem"), pki.dir.join("server-key.pem"))
                .expect("certificate and key load");
        builder = builder.tls(0, config);
    }
    (builder.spawn().expect("server starts"), events)
}

fn connect(gtk: &mut SpiceGtk, port: u16, password: &str, extra: Value) {
    let mut props = json!({"username": USER, "password": password});
    if let (Value::Object(props), Value::Object(extra)) = (&mut props, extra) {
        props.extend(extra);
    }
    gtk.send(json!({
        "cmd": "connect",
        "uri": format!("spice://127.0.0.1:{port}"),
        "props": props,
    }));
}

fn assert_surface(gtk: &mut SpiceGtk, canvas: &Canvas, what: &str) {
    let diff = gtk.wait_surface(canvas.width, canvas.height, &canvas.packed(), T);
    assert_eq!(diff, 0, "{what}: client surface differs in {diff} pixels");
}

/// The client gives up with an authentication error.
fn expect_auth_error(gtk: &mut SpiceGtk) {
    let event = gtk.expect("channel-event", T);
    assert_eq!(event["code"], "error-auth", "{event}");
    assert!(!gtk.has_seen("primary-create"), "no display after a refusal");
}

#[test]
fn spice_gtk_authenticates_with_digest_md5_and_its_security_layer() {
    let canvas = Canvas::new(320, 200, 11);
    let (server, events) = host(&canvas, None);
    let mut gtk = SpiceGtk::start();
    connect(&mut gtk, server.local_addr().port(), PASSWORD, json!({}));
    gtk.expect("primary-create", T);
    // The display channel runs on its display thread, through the layer.
    assert_surface(&mut gtk, &canvas, "after SASL");
    gtk.wait_inputs_ready(None, T);
    gtk.send(json!({"cmd": "key_press_and_release", "code": 0x1e}));
    assert_eq!(events.scancodes(2, T), [0x1e, 0x9e], "a key reaches the host");
    gtk.quit();
}

#[test]
fn a_wrong_password_is_refused() {
    let canvas = Canvas::new(64, 48, 12);
    let (server, _events) = host(&canvas, None);
    let mut gtk = SpiceGtk::start();
    connect(&mut gtk, server.local_addr().port(), "wrong", json!({}));
    expect_auth_error(&mut gtk);
    gtk.quit();

    // An unknown user too.
    let mut gtk = SpiceGtk::start();
    gtk.send(json!({
        "cmd": "connect",
        "uri": format!("spice://127.0.0.1:{}", server.local_addr().port()),
        "props": {"username": "mallory", "password": PASSWORD},
    }));
    expect_auth_error(&mut gtk);
    gtk.quit();
}

#[test]
fn over_tls_sasl_needs_no_security_layer() {
    let pki = TestPki::new("sasl");
    let canvas = Canvas::new(160, 120, 13);
    let (server, events) = host(&canvas, Some(&pki));
    let tls = server.tls_local_addr().expect("a TLS port");
    let mut gtk = SpiceGtk::start();
    // Only the TLS port: every channel authenticates over TLS.
    let props = json!({
        "username": USER,
        "password": PASSWORD,
        "tls-port": tls.port().to_string(),
        "ca-file": pki.path("ca-cert.pem"),
    });
    gtk.send(json!({"cmd": "connect", "uri": "spice://127.0.0.1", "props": props}));
    gtk.expect("primary-create", T);
    assert_surface(&mut gtk, &canvas, "SASL over TLS");
    gtk.wait_inputs_ready(None, T);
    gtk.send(json!({"cmd": "key_press_and_release", "code": 0x30}));
    assert_eq!(events.scancodes(2, T), [0x30, 0xb0]);
    assert!(
        events
            .drain()
            .iter()
            .all(|e| !matches!(e, DeviceEvent::Scancode(_))),
        "nothing else typed"
    );
    gtk.quit();
}

/// QEMU with `-spice sasl=on` (app name "qemu"): the right password shows
/// the guest's screen, a wrong one is refused, on either library.
fn qemu_sasl(library: &spice_interop::qemu::Library) {
    use spice_interop::qemu::Qemu;
    spice_interop::init_logging();
    sasl_conf();
    let qemu = Qemu::start_with_spice(library, "sasl=on", &["-vga", "std"]);
    qemu.assert_library();
    let port = qemu.addr.port();

    let mut bad = SpiceGtk::start();
    connect(&mut bad, port, "wrong", json!({}));
    expect_auth_error(&mut bad);
    bad.quit();

    let mut good = SpiceGtk::start();
    connect(&mut good, port, PASSWORD, json!({}));
    let created = good.expect("primary-create", T);
    assert!(
        created["width"].as_u64().is_some_and(|w| w > 0),
        "{}: the guest's screen: {created}",
        library.name()
    );
    good.wait_inputs_ready(None, T);
    good.quit();
    drop(qemu);
}

#[test]
fn qemu_serves_sasl_clients_on_our_library() {
    qemu_sasl(&spice_interop::qemu::Library::rust());
}

#[test]
fn qemu_serves_sasl_clients_on_debians_library_alike() {
    qemu_sasl(&spice_interop::qemu::Library::Debian);
}
