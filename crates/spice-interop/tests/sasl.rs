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
/// QEMU boots its firmware first: more time, on a loaded machine.
const TQ: Duration = Duration::from_secs(60);
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
        let mut child = Command::new("/usr/sbin/saslpasswd2")
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

/// A spice-gtk client with the right credentials, through its `unix-path`.
fn connect_unix(path: &std::path::Path) -> SpiceGtk {
    let mut gtk = SpiceGtk::start();
    gtk.send(json!({
        "cmd": "connect",
        "uri": "spice://localhost",
        "props": {"unix-path": path.display().to_string(), "username": USER, "password": PASSWORD},
    }));
    gtk
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

#[test]
fn over_a_unix_socket_the_security_layer_is_required_too() {
    // As in the C server, only TLS waives the layer: a Unix socket's client
    // negotiates DIGEST-MD5's as a TCP one does.
    spice_interop::init_logging();
    sasl_conf();
    let dir = std::env::temp_dir().join(format!("spice-sasl-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spice.sock");
    let canvas = Canvas::new(96, 64, 14);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let server = ServerBuilder::new()
        .listen_unix(&path)
        .sasl(spice_capi::CyrusSasl)
        .display(display)
        .spawn()
        .expect("server starts on the unix socket");
    let mut gtk = connect_unix(&path);
    gtk.expect("primary-create", T);
    assert_surface(&mut gtk, &canvas, "SASL over a unix socket");
    gtk.quit();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
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
    let created = good.expect("primary-create", TQ);
    assert!(
        created["width"].as_u64().is_some_and(|w| w > 0),
        "{}: the guest's screen: {created}",
        library.name()
    );
    good.wait_inputs_ready(None, TQ);
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

// ---- The exchange's bytes, with a raw client and a scripted authenticator ----

mod raw {
    use std::io::Write;
    use std::net::{SocketAddr, TcpStream};

    use spice_interop::raw::{link_request, read_exact_timeout, wait_closed};
    use spice_proto::consts::common_cap::{AUTH_SASL, AUTH_SPICE, MINI_HEADER, PROTOCOL_AUTH_SELECTION};
    use spice_proto::{ChannelType, LinkError};
    use spice_server::sasl::{SaslConnInfo, SaslError, SaslServer, SaslSession, SaslStep};
    use spice_server::{DisplayHandle, RunningServer, ServerBuilder};

    use super::T;

    /// One mechanism, "FAKE": the start's data must be "alice\0pw"; done in
    /// one step with a security layer of `ssf` bits that changes nothing.
    struct Fake {
        ssf: u32,
    }

    impl SaslServer for Fake {
        fn session(&self, _: &SaslConnInfo) -> Result<Box<dyn SaslSession>, SaslError> {
            Ok(Box::new(FakeSession { ssf: self.ssf }))
        }
    }

    struct FakeSession {
        ssf: u32,
    }

    impl SaslSession for FakeSession {
        fn mechanisms(&mut self) -> Result<String, SaslError> {
            Ok(",FAKE,".into())
        }
        fn start(&mut self, mechanism: &str, data: Option<&[u8]>) -> Result<SaslStep, SaslError> {
            assert_eq!(mechanism, "FAKE");
            match data {
                Some(b"alice\0pw") => Ok(SaslStep::Done(b"welcome".to_vec())),
                _ => Err(SaslError("bad credentials".into())),
            }
        }
        fn step(&mut self, _: Option<&[u8]>) -> Result<SaslStep, SaslError> {
            Err(SaslError("no steps".into()))
        }
        fn ssf(&self) -> Result<u32, SaslError> {
            Ok(self.ssf)
        }
        fn encode(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), SaslError> {
            out.extend_from_slice(plain);
            Ok(())
        }
        fn decode(&mut self, wire: &[u8], out: &mut Vec<u8>) -> Result<(), SaslError> {
            out.extend_from_slice(wire);
            Ok(())
        }
    }

    fn server(ssf: u32) -> RunningServer {
        spice_interop::init_logging();
        ServerBuilder::new()
            .port(0)
            .sasl(Fake { ssf })
            .display(DisplayHandle::new())
            .spawn()
            .expect("server starts")
    }

    fn read(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        read_exact_timeout(s, &mut buf, T).unwrap_or_else(|e| panic!("{n} bytes: {e}"));
        buf
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// Reads a whole link reply: its error and first common caps word.
    fn link_reply(s: &mut TcpStream) -> (u32, u32) {
        let header = read(s, 16);
        assert_eq!(&header[..4], b"REDQ");
        let body = read(s, u32_at(&header, 12) as usize);
        let common_words = u32_at(&body, 4 + 162);
        let caps_offset = u32_at(&body, 4 + 162 + 8) as usize;
        let caps = if common_words > 0 {
            u32_at(&body, caps_offset)
        } else {
            0
        };
        assert!(
            body[4..4 + 162].iter().all(|&b| b == 0),
            "no ticket key with SASL"
        );
        (u32_at(&body, 0), caps)
    }

    /// Links main up to the mechanism list; returns the socket.
    fn offered(addr: SocketAddr) -> TcpStream {
        offered_after(addr).0
    }

    /// As [`offered`], with how long the mechanism list took to come.
    fn offered_after(addr: SocketAddr) -> (TcpStream, std::time::Duration) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&link_request(
            ChannelType::Main,
            0,
            0,
            &[PROTOCOL_AUTH_SELECTION, AUTH_SPICE, AUTH_SASL, MINI_HEADER],
        ))
        .unwrap();
        let (error, caps) = link_reply(&mut s);
        assert_eq!(error, 0);
        let expected = 1 << PROTOCOL_AUTH_SELECTION | 1 << AUTH_SASL | 1 << MINI_HEADER;
        assert_eq!(caps, expected, "SASL offered instead of the ticket");
        s.write_all(&AUTH_SASL.to_le_bytes()).unwrap();
        let asked = std::time::Instant::now();
        let len = u32_at(&read(&mut s, 4), 0) as usize;
        let waited = asked.elapsed();
        assert_eq!(read(&mut s, len), b",FAKE,");
        (s, waited)
    }

    fn start(s: &mut TcpStream, mech: &[u8], data: &[u8]) {
        let mut msg = (mech.len() as u32).to_le_bytes().to_vec();
        msg.extend_from_slice(mech);
        msg.extend_from_slice(&(data.len() as u32 + 1).to_le_bytes());
        msg.extend_from_slice(data);
        msg.push(0);
        s.write_all(&msg).unwrap();
    }

    #[test]
    fn a_complete_exchange_is_followed_by_the_link_result() {
        let server = server(128);
        let mut s = offered(server.local_addr());
        start(&mut s, b"FAKE", b"alice\0pw");
        let reply = read(&mut s, 4 + 8 + 1 + 4 + 4);
        assert_eq!(u32_at(&reply, 0), 8, "the data's length counts its NUL");
        assert_eq!(&reply[4..12], b"welcome\0");
        assert_eq!(reply[12], 1, "complete");
        assert_eq!(u32_at(&reply, 13), 0, "authenticated");
        assert_eq!(u32_at(&reply, 17), LinkError::Ok.code(), "linked");
        // The channel follows (through the fake's transparent layer).
        let first = read(&mut s, 6);
        assert!(u32_at(&first, 2) > 0, "a first main message: {first:?}");
    }

    #[test]
    fn a_weak_security_layer_on_plain_tcp_gets_the_c_servers_rejection() {
        let server = server(0);
        let mut s = offered(server.local_addr());
        start(&mut s, b"FAKE", b"alice\0pw");
        let reply = read(&mut s, 4 + 8 + 1);
        assert_eq!(reply[12], 1);
        let rejection = read(&mut s, 8 + 22);
        assert_eq!(u32_at(&rejection, 0), 1);
        assert_eq!(u32_at(&rejection, 4), 22);
        assert_eq!(&rejection[8..], b"Authentication failed\0");
        assert!(wait_closed(&mut s, T));
    }

    #[test]
    fn failures_close_as_the_c_server_does() {
        let server = server(128);
        let addr = server.local_addr();

        // Wrong credentials: closed without a word.
        let mut s = offered(addr);
        start(&mut s, b"FAKE", b"alice\0guess");
        assert!(wait_closed(&mut s, T));

        // A mechanism not offered: an INVALID_DATA link reply.
        let mut s = offered(addr);
        start(&mut s, b"PLAIN", b"x");
        assert_eq!(link_reply(&mut s).0, LinkError::InvalidData.code());
        assert!(wait_closed(&mut s, T));

        // A mechanism name over 100 bytes: closed.
        let mut s = offered(addr);
        s.write_all(&101u32.to_le_bytes()).unwrap();
        assert!(wait_closed(&mut s, T));

        // The ticket instead of SASL: an INVALID_DATA link reply.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&link_request(
            ChannelType::Main,
            0,
            0,
            &[PROTOCOL_AUTH_SELECTION, AUTH_SPICE],
        ))
        .unwrap();
        assert_eq!(link_reply(&mut s).0, 0);
        s.write_all(&AUTH_SPICE.to_le_bytes()).unwrap();
        assert_eq!(link_reply(&mut s).0, LinkError::InvalidData.code());
        assert!(wait_closed(&mut s, T));

        // A client that cannot select a mechanism: VERSION_MISMATCH after the reply.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&link_request(ChannelType::Main, 0, 0, &[AUTH_SPICE]))
            .unwrap();
        assert_eq!(link_reply(&mut s).0, 0);
        assert_eq!(link_reply(&mut s).0, LinkError::VersionMismatch.code());
        assert!(wait_closed(&mut s, T));
    }

    #[test]
    fn failed_exchanges_slow_down_the_next_from_that_peer() {
        let server = server(128);
        let addr = server.local_addr();
        let (_, fresh) = offered_after(addr);
        for _ in 0..2 {
            let mut s = offered(addr);
            start(&mut s, b"FAKE", b"alice\0guess");
            assert!(wait_closed(&mut s, T));
        }
        // The password throttle holds the third exchange back (250 ms, then
        // twice that after the second failure), as it does tickets.
        let (mut s, held) = offered_after(addr);
        assert!(
            held >= std::time::Duration::from_millis(250),
            "the list came after {held:?} (a fresh peer's after {fresh:?})"
        );
        // The right password still gets in, and clears the record (a third
        // failure would hold the next list back a second).
        start(&mut s, b"FAKE", b"alice\0pw");
        let reply = read(&mut s, 4 + 8 + 1 + 4 + 4);
        assert_eq!(u32_at(&reply, 13), 0);
        let (_, after) = offered_after(addr);
        assert!(after < std::time::Duration::from_millis(500), "{after:?}");
    }

    #[test]
    fn a_client_handed_over_with_auth_waived_uses_the_ticket() {
        let server = server(128);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        server.handle().add_client(accepted, true);
        let linked = spice_interop::raw::RawClient::link_on(client, ChannelType::Main, 0, 0, "", true, &[]);
        assert!(linked.is_ok(), "the ticket path, no SASL: {linked:?}");
    }
}

/// QEMU with `-spice unix=on,...,sasl=on` on our library: a Unix socket's
/// client authenticates (with the security layer). Debian's C library
/// refuses every such client: it hands Cyrus the address "localhost;",
/// which `sasl_server_new` rejects ("sasl context setup failed -7").
#[test]
fn qemu_serves_sasl_clients_on_a_unix_socket_with_our_library() {
    use spice_interop::qemu::{Library, Qemu};
    spice_interop::init_logging();
    sasl_conf();
    let path = std::env::temp_dir().join(format!("spice-sasl-qemu-{}.sock", std::process::id()));
    let qemu = Qemu::start_unix(&Library::rust(), &path, "sasl=on", &["-vga", "std"]);
    qemu.assert_library();
    let mut gtk = connect_unix(&path);
    gtk.expect("primary-create", TQ);
    gtk.wait_inputs_ready(None, TQ);
    gtk.quit();
    drop(qemu);
    let _ = std::fs::remove_file(&path);
}
