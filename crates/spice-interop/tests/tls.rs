//! TLS with the stock spice-gtk client: the CA and host checks, a wrong CA,
//! channels that must come over TLS (`NEED_SECURED` moves the client to the
//! TLS port), an encrypted key through the C API, and QEMU 7.2's
//! `tls-port=`/`x509-dir=` with our library.
//!
//! Certificates are made per test with the `openssl` command line in a
//! temporary directory: a CA, a server certificate for `localhost` and
//! 127.0.0.1 signed by it (QEMU's `x509-dir` names: `ca-cert.pem`,
//! `server-cert.pem`, `server-key.pem`), and a second, unrelated CA.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use serde_json::{json, Value};
use spice_interop::gtk::SpiceGtk;
use spice_interop::pattern::Canvas;
use spice_interop::pki::TestPki;
use spice_server::{DisplayHandle, RunningServer, Security, SecurityPolicy, ServerBuilder, TlsConfig};

const T: Duration = Duration::from_secs(20);

/// The PKI's server certificate and key, for the Rust API.
fn server_config(pki: &TestPki) -> TlsConfig {
    TlsConfig::from_pem_files(pki.dir.join("server-cert.pem"), pki.dir.join("server-key.pem"))
        .expect("certificate and key load")
}

fn host(canvas: &Canvas, pki: &TestPki, policy: SecurityPolicy) -> (RunningServer, DisplayHandle) {
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let server = ServerBuilder::new()
        .port(0)
        .tls(0, server_config(pki))
        .channel_security(policy)
        .display(display.clone())
        .spawn()
        .expect("server starts");
    (server, display)
}

/// Connects to the plain port with `tls-port` (when given) and `props`.
fn connect(gtk: &mut SpiceGtk, plain: SocketAddr, tls: Option<SocketAddr>, props: Value) {
    let mut props = props;
    if let Some(tls) = tls {
        props["tls-port"] = json!(tls.port().to_string());
    }
    gtk.send(json!({
        "cmd": "connect",
        "uri": format!("spice://127.0.0.1:{}", plain.port()),
        "props": props,
    }));
}

/// Connects to the TLS port only (no plain port in the session).
fn connect_tls_only(gtk: &mut SpiceGtk, tls: SocketAddr, props: Value) {
    let mut props = props;
    props["tls-port"] = json!(tls.port().to_string());
    gtk.send(json!({
        "cmd": "connect",
        "uri": "spice://127.0.0.1",
        "props": props,
    }));
}

fn assert_surface(gtk: &mut SpiceGtk, canvas: &Canvas, what: &str) {
    let diff = gtk.wait_surface(canvas.width, canvas.height, &canvas.packed(), T);
    assert_eq!(diff, 0, "{what}: client surface differs in {diff} pixels");
}

/// Waits for the main channel's error event; `None` if the client connected instead.
fn main_error(gtk: &mut SpiceGtk) -> Option<String> {
    let event = gtk.wait(T, |v| {
        v["event"] == "primary-create"
            || (v["event"] == "channel-event"
                && v["type"] == "MainChannel"
                && v["code"].as_str().is_some_and(|c| c.starts_with("error")))
    })?;
    (event["event"] == "channel-event").then(|| event["code"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn spice_gtk_connects_over_tls_checking_the_ca_and_host() {
    let pki = TestPki::new("ok");
    let canvas = Canvas::new(320, 240, 3);
    let mut policy = SecurityPolicy::default();
    // Everything must be encrypted: a display seen at all came over TLS.
    policy.set_default(Security::TLS);
    let (server, display) = host(&canvas, &pki, policy);
    let tls = server.tls_local_addr().expect("TLS port");
    let mut gtk = SpiceGtk::start();
    // The host name from the URI (127.0.0.1) is checked against the
    // certificate's subjectAltName by spice-gtk, as the CA signature.
    connect_tls_only(&mut gtk, tls, json!({"ca-file": pki.path("ca-cert.pem")}));
    gtk.expect("primary-create", T);
    assert_surface(&mut gtk, &canvas, "over TLS");
    // Damage keeps flowing through the display thread's TLS stream.
    let mut canvas = canvas;
    for _ in 0..20 {
        let rect = canvas.scribble();
        display.update(&canvas.frame(), &[rect]).unwrap();
    }
    assert_surface(&mut gtk, &canvas, "after damage over TLS");
    gtk.quit();

    // The subject check: the right subject connects...
    let mut gtk = SpiceGtk::start();
    connect_tls_only(
        &mut gtk,
        tls,
        json!({"ca-file": pki.path("ca-cert.pem"), "cert-subject": "O=spice-rs,CN=localhost"}),
    );
    assert_eq!(main_error(&mut gtk), None, "right subject");
    gtk.quit();
    // ... a wrong one does not.
    let mut gtk = SpiceGtk::start();
    connect_tls_only(
        &mut gtk,
        tls,
        json!({"ca-file": pki.path("ca-cert.pem"), "cert-subject": "O=spice-rs,CN=elsewhere"}),
    );
    assert_eq!(
        main_error(&mut gtk).as_deref(),
        Some("error-tls"),
        "wrong subject"
    );
    gtk.quit();
}

#[test]
fn spice_gtk_refuses_a_server_its_ca_did_not_sign() {
    let pki = TestPki::new("wrong-ca");
    let canvas = Canvas::new(160, 120, 5);
    let (server, _display) = host(&canvas, &pki, SecurityPolicy::default());
    let tls = server.tls_local_addr().expect("TLS port");
    let mut gtk = SpiceGtk::start();
    connect_tls_only(&mut gtk, tls, json!({"ca-file": pki.path("other-ca-cert.pem")}));
    assert_eq!(main_error(&mut gtk).as_deref(), Some("error-tls"));
    assert!(!gtk.has_seen("primary-create"));
    gtk.quit();
    // The same server and client with the right CA: the refusal was the CA's.
    let mut gtk = SpiceGtk::start();
    connect_tls_only(&mut gtk, tls, json!({"ca-file": pki.path("ca-cert.pem")}));
    assert_eq!(main_error(&mut gtk), None);
    gtk.quit();
}

#[test]
fn a_plain_link_to_a_tls_only_channel_is_moved_to_the_tls_port() {
    let pki = TestPki::new("secured");
    let canvas = Canvas::new(200, 150, 11);
    let mut policy = SecurityPolicy::default();
    policy.set_named("display", Security::TLS).unwrap();
    policy.set_named("main", Security::TLS).unwrap();
    let (server, _display) = host(&canvas, &pki, policy);
    let tls = server.tls_local_addr().expect("TLS port");
    let ca = json!({"ca-file": pki.path("ca-cert.pem")});

    // Without a TLS port the client cannot follow NEED_SECURED.
    let mut gtk = SpiceGtk::start();
    connect(&mut gtk, server.local_addr(), None, ca.clone());
    assert!(
        main_error(&mut gtk).is_some(),
        "a plain main channel must be refused when main is TLS-only"
    );
    gtk.quit();

    // With one, the client goes to the TLS port and ends up connected:
    // main and display over TLS (the others may stay plain).
    let mut gtk = SpiceGtk::start();
    connect(&mut gtk, server.local_addr(), Some(tls), ca);
    gtk.expect("primary-create", T);
    assert_surface(&mut gtk, &canvas, "after NEED_SECURED");
    gtk.quit();
}

#[test]
fn an_encrypted_key_opens_with_its_password_and_what_rustls_lacks_is_refused() {
    use spice_server::{TlsError, TlsFiles};
    spice_interop::init_logging();
    let pki = TestPki::new("keys");
    let files = |key: &str, password: Option<&str>| TlsFiles {
        cert: pki.dir.join("server-cert.pem"),
        key: pki.dir.join(key),
        key_password: password.map(str::to_owned),
        ca: Some(pki.dir.join("ca-cert.pem")),
        ..TlsFiles::default()
    };
    let wrong = files("server-key-enc.pem", Some("wrong")).load();
    assert!(matches!(wrong, Err(TlsError::Decrypt(_))), "{wrong:?}");
    let none = files("server-key-enc.pem", None).load();
    assert!(matches!(none, Err(TlsError::NeedPassword)), "{none:?}");
    let traditional = files("server-key-trad.pem", Some("s3cret")).load();
    assert!(
        matches!(traditional, Err(TlsError::TraditionalEncryption)),
        "{traditional:?}"
    );
    let other_key = files("ca-key.pem", None).load();
    assert!(
        matches!(other_key, Err(TlsError::Rustls(_))),
        "a key that does not match: {other_key:?}"
    );
    let rc4 = TlsFiles {
        ciphers: Some("RC4-SHA:DES-CBC3-SHA".into()),
        ..files("server-key.pem", None)
    }
    .load();
    assert!(matches!(rc4, Err(TlsError::NoCipherSuite(_))), "{rc4:?}");
    let dh = TlsFiles {
        dh_params: Some(pki.dir.join("ca-cert.pem")),
        ..files("server-key.pem", None)
    }
    .load();
    assert!(matches!(dh, Err(TlsError::NoDhParams(_))), "{dh:?}");

    // The right password, and a cipher list of one TLS 1.2 suite: spice-gtk
    // connects.
    let tls = TlsFiles {
        ciphers: Some("ECDHE-ECDSA-AES128-GCM-SHA256:!aNULL".into()),
        ..files("server-key-enc.pem", Some("s3cret"))
    }
    .load()
    .expect("encrypted key opens with its password");
    let canvas = Canvas::new(160, 120, 9);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let server = ServerBuilder::new()
        .port(0)
        .tls(0, tls)
        .display(display)
        .spawn()
        .expect("server starts");
    let mut gtk = SpiceGtk::start();
    connect_tls_only(
        &mut gtk,
        server.tls_local_addr().expect("TLS port"),
        json!({"ca-file": pki.path("ca-cert.pem")}),
    );
    gtk.expect("primary-create", T);
    assert_surface(&mut gtk, &canvas, "with the encrypted key");
    gtk.quit();
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free loopback port")
}

#[test]
fn qemu_serves_tls_from_x509_dir_with_our_library() {
    use spice_interop::qemu::{Library, Qemu};
    let pki = TestPki::new("qemu");
    let library = Library::rust();
    let tls_port = free_port();
    let spice = format!(
        "tls-port={tls_port},x509-dir={},tls-channel=main,tls-channel=display,disable-ticketing=on",
        pki.dir.display()
    );
    let qemu = Qemu::start_with_spice(&library, &spice, &["-vga", "std"]);
    qemu.assert_library();
    let tls = SocketAddr::from((Ipv4Addr::LOCALHOST, tls_port));
    let ca = json!({"ca-file": pki.path("ca-cert.pem")});

    // Main and display are TLS-only: the client starts on the plain port,
    // is sent to the TLS port, and sees SeaBIOS.
    let mut gtk = SpiceGtk::start();
    connect(&mut gtk, qemu.addr, Some(tls), ca);
    let created = gtk.expect("primary-create", T);
    assert!(created["width"].as_u64().unwrap_or(0) > 0);
    gtk.quit();

    // Without the TLS port the client cannot follow: main is TLS-only.
    let mut gtk = SpiceGtk::start();
    connect(&mut gtk, qemu.addr, None, json!({}));
    assert!(main_error(&mut gtk).is_some(), "plain main channel refused");
    gtk.quit();

    // A wrong CA is refused by the client.
    let mut gtk = SpiceGtk::start();
    connect_tls_only(&mut gtk, tls, json!({"ca-file": pki.path("other-ca-cert.pem")}));
    assert_eq!(main_error(&mut gtk).as_deref(), Some("error-tls"));
    gtk.quit();
    drop(qemu);

    // The key encrypted, with QEMU's x509-key-password (everything over TLS).
    let tls_port = free_port();
    let spice = format!(
        "tls-port={tls_port},x509-dir={dir},x509-key-file={dir}/server-key-enc.pem,\
         x509-key-password=s3cret,tls-channel=default,disable-ticketing=on",
        dir = pki.dir.display()
    );
    let qemu = Qemu::start_with_spice(&library, &spice, &["-vga", "std"]);
    qemu.assert_library();
    let mut gtk = SpiceGtk::start();
    connect_tls_only(
        &mut gtk,
        SocketAddr::from((Ipv4Addr::LOCALHOST, tls_port)),
        json!({"ca-file": pki.path("ca-cert.pem")}),
    );
    gtk.expect("primary-create", T);
    gtk.quit();
    drop(qemu);

    // A wrong key password: QEMU does not start (our log says why).
    let spice = format!(
        "tls-port={},x509-dir={dir},x509-key-file={dir}/server-key-enc.pem,\
         x509-key-password=wrong,disable-ticketing=on",
        free_port(),
        dir = pki.dir.display()
    );
    let started = std::panic::catch_unwind(|| {
        Qemu::start_with_spice(&library, &spice, &["-vga", "std"]);
    });
    let message = started
        .err()
        .and_then(|p| p.downcast_ref::<String>().cloned())
        .expect("QEMU must not start with a wrong key password");
    assert!(
        message.contains("cannot decrypt the private key"),
        "the reason is logged: {message}"
    );
}

/// Reads until the server closes the connection; `None` if it is still open
/// at `deadline`.
fn closed_within(stream: &mut std::net::TcpStream, within: Duration) -> Option<Duration> {
    use std::io::Read;
    let start = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < within {
        stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn stalled_or_garbage_handshakes_are_dropped_without_holding_up_others() {
    use std::io::Write;
    spice_interop::init_logging();
    let pki = TestPki::new("stall");
    let canvas = Canvas::new(160, 120, 13);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let server = ServerBuilder::new()
        .port(0)
        .tls(0, server_config(&pki))
        .link_timeout(Duration::from_millis(1500))
        .display(display)
        .spawn()
        .expect("server starts");
    let tls = server.tls_local_addr().expect("TLS port");

    // One client sends half a ClientHello record header and stops; another
    // sends a plain SPICE link header to the TLS port.
    let mut stalled = std::net::TcpStream::connect(tls).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x00]).unwrap();
    let mut garbage = std::net::TcpStream::connect(tls).unwrap();
    garbage
        .write_all(b"REDQ\x02\x00\x00\x00\x02\x00\x00\x00")
        .unwrap();

    // Meanwhile a real client links and gets the picture.
    let mut gtk = SpiceGtk::start();
    connect_tls_only(&mut gtk, tls, json!({"ca-file": pki.path("ca-cert.pem")}));
    gtk.expect("primary-create", T);
    assert_surface(&mut gtk, &canvas, "beside a stalled handshake");

    let after = closed_within(&mut garbage, Duration::from_secs(1));
    assert!(
        after.is_some(),
        "a non-TLS client on the TLS port is closed at once"
    );
    let after = closed_within(&mut stalled, Duration::from_secs(5));
    assert!(
        after.is_some(),
        "a handshake that stalls is dropped by the link timeout"
    );
    gtk.quit();
}

#[test]
fn channel_security_changed_while_running_applies_to_new_links() {
    let pki = TestPki::new("live");
    let canvas = Canvas::new(160, 120, 17);
    let (server, _display) = host(&canvas, &pki, SecurityPolicy::default());
    let mut gtk = SpiceGtk::start();
    connect(&mut gtk, server.local_addr(), None, json!({}));
    assert_eq!(main_error(&mut gtk), None, "plain links are accepted by default");
    gtk.quit();

    let mut policy = SecurityPolicy::default();
    policy.set_default(Security::TLS);
    server.handle().set_channel_security(policy);
    let mut gtk = SpiceGtk::start();
    connect(&mut gtk, server.local_addr(), None, json!({}));
    assert!(
        main_error(&mut gtk).is_some(),
        "plain main refused once TLS is required"
    );
    gtk.quit();
}
