//! SPICE over Unix stream sockets with the stock spice-gtk client (its
//! `unix-path` session property): the Rust API's `ServerBuilder::listen_unix`,
//! listening sockets the host made (`ServerBuilder::listen_socket`),
//! a socket the host accepted and handed over with `ServerHandle::add_client`,
//! and QEMU 7.2 started with `-spice unix=on,addr=PATH` on our library.
//! Socket paths live in a per-test temporary directory.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use spice_interop::gtk::SpiceGtk;
use spice_interop::pattern::Canvas;
use spice_server::{DisplayHandle, ServerBuilder};

const T: Duration = Duration::from_secs(20);

/// A fresh directory for one test's sockets, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("spice-unix-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn connect_unix(gtk: &mut SpiceGtk, path: &Path) {
    gtk.send(json!({
        "cmd": "connect",
        "uri": "spice://localhost",
        "props": {"unix-path": path.display().to_string()},
    }));
}

fn assert_surface(gtk: &mut SpiceGtk, canvas: &Canvas, what: &str) {
    let diff = gtk.wait_surface(canvas.width, canvas.height, &canvas.packed(), T);
    assert_eq!(diff, 0, "{what}: client surface differs in {diff} pixels");
}

#[test]
fn spice_gtk_connects_to_the_rust_api_over_a_unix_socket() {
    spice_interop::init_logging();
    let dir = TempDir::new("api");
    let path = dir.0.join("spice.sock");
    // A socket left by an earlier run (nobody listens on it) is replaced.
    drop(UnixListener::bind(&path).expect("stale socket"));
    let mut canvas = Canvas::new(320, 240, 5);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let server = ServerBuilder::new()
        .listen_unix(&path)
        .display(display.clone())
        .spawn()
        .expect("server starts on the unix socket");
    let mut gtk = SpiceGtk::start();
    connect_unix(&mut gtk, &path);
    gtk.expect("primary-create", T);
    assert_surface(&mut gtk, &canvas, "over a unix socket");
    // Updates keep flowing on the display thread's Unix stream.
    for _ in 0..10 {
        let rect = canvas.scribble();
        display.update(&canvas.frame(), &[rect]).unwrap();
    }
    assert_surface(&mut gtk, &canvas, "after updates");
    gtk.quit();

    // A regular file at the path is not deleted: the server refuses to start.
    let file = dir.0.join("not-a-socket");
    std::fs::write(&file, b"keep me").unwrap();
    let refused = ServerBuilder::new().listen_unix(&file).spawn();
    assert!(refused.is_err(), "listening over a regular file must fail");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    drop(server);
}

#[test]
fn a_unix_socket_the_host_accepted_is_served_through_add_client() {
    spice_interop::init_logging();
    let dir = TempDir::new("add");
    let path = dir.0.join("host.sock");
    let canvas = Canvas::new(256, 128, 9);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let server = ServerBuilder::new()
        .no_listen()
        .no_auth()
        .display(display.clone())
        .spawn()
        .expect("server starts");
    // The host's own listener: every connection (one per channel) is
    // handed over, until the test says stop.
    let listener = UnixListener::bind(&path).expect("host socket");
    let handle = server.handle();
    let handed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let accepting = {
        let (handed, stop) = (handed.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { break };
                handle.add_client(stream, false);
                handed.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let mut gtk = SpiceGtk::start();
    connect_unix(&mut gtk, &path);
    gtk.expect("primary-create", T);
    assert_surface(&mut gtk, &canvas, "over a handed-over unix socket");
    let n = handed.load(Ordering::SeqCst);
    assert!(n >= 2, "main and display channels handed over ({n})");
    gtk.quit();
    stop.store(true, Ordering::SeqCst);
    // Wakes the accepting thread, which then stops.
    let _ = std::os::unix::net::UnixStream::connect(&path);
    accepting.join().expect("accepting thread");
    drop(server);
}

/// Sockets the host made listen itself (`ServerBuilder::listen_socket`, the
/// C API's `spice_server_set_listen_socket_fd`): a TCP one whose port the
/// server reports, and a Unix one; spice-gtk is served on both.
#[test]
fn the_server_accepts_on_listening_sockets_the_host_made() {
    spice_interop::init_logging();
    let canvas = Canvas::new(200, 120, 3);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("host's TCP listener");
    let addr = tcp.local_addr().unwrap();
    let server = ServerBuilder::new()
        .port(1) // ignored: the host's socket is used instead
        .listen_socket(tcp)
        .display(display.clone())
        .spawn()
        .expect("server starts on the host's TCP socket");
    assert_eq!(server.local_addr(), addr, "the address of the host's socket");
    let mut gtk = SpiceGtk::start();
    gtk.connect(addr, None);
    gtk.expect("primary-create", T);
    assert_surface(&mut gtk, &canvas, "over the host's TCP listener");
    gtk.quit();
    drop(server);

    let dir = TempDir::new("fd");
    let path = dir.0.join("host-made.sock");
    let unix = UnixListener::bind(&path).expect("host's unix listener");
    let server = ServerBuilder::new()
        .listen_socket(unix)
        .display(display.clone())
        .spawn()
        .expect("server starts on the host's unix socket");
    let mut gtk = SpiceGtk::start();
    connect_unix(&mut gtk, &path);
    gtk.expect("primary-create", T);
    assert_surface(&mut gtk, &canvas, "over the host's unix listener");
    gtk.quit();
    drop(server);
}

#[test]
fn qemu_serves_spice_on_a_unix_socket_with_our_library() {
    use spice_interop::qemu::{Library, Qemu};
    let dir = TempDir::new("qemu");
    let path = dir.0.join("qemu-spice.sock");
    let qemu = Qemu::start_unix(&Library::rust(), &path, "disable-ticketing=on", &["-vga", "std"]);
    qemu.assert_library();
    let mut gtk = SpiceGtk::start();
    connect_unix(&mut gtk, &path);
    let created = gtk.expect("primary-create", T);
    assert!(created["width"].as_u64().unwrap_or(0) > 0, "{created}");
    // SeaBIOS's text screen arrives (lines with lit cells).
    let shown = spice_interop::desktop::eventually(T, Duration::from_millis(200), || {
        spice_interop::qemu::Picture::of(&mut gtk).is_some_and(|p| p.text_lines().iter().any(|&n| n > 0))
    });
    assert!(shown, "SeaBIOS's screen arrives over the unix socket");
    gtk.quit();
    drop(qemu);
}
