//! Live migration of a running QEMU 7.2 VM from one QEMU process to
//! another on loopback, with a spice-gtk client that follows it without
//! reconnecting by hand: semi-seamless migration, as libvirt and QEMU's
//! monitor drive it. The source QEMU gets `client_migrate_info` (SPICE
//! tells the client MIGRATE_BEGIN with the destination's address; the
//! client links every channel to the destination under the same session
//! and answers MIGRATE_CONNECTED, after which the library calls QEMU's
//! `migrate_connect_complete`), then `migrate` to the destination started
//! with `-incoming` (the library sends MIGRATE_END when QEMU calls
//! `spice_server_migrate_end`, the client says MIGRATE_END to the
//! destination, which starts the session there; the source reports
//! `SPICE_MIGRATE_COMPLETED` once the client left it).
//!
//! Each test checks: the migration completes and the destination runs;
//! the source emits `SPICE_MIGRATE_COMPLETED`; the client's channels end up
//! on the destination (QMP `query-spice` lists them there and none on the
//! source) without the client's session ever disconnecting; the client
//! shows the VM's screen (SeaBIOS's "No bootable device." on `-vga qxl`)
//! pixel-equal to what it showed before, in the same cursor phase; and it
//! goes on getting the blinking cursor's updates from the destination.
//!
//! Run for our library on both sides and mixed with Debian's C library on
//! either side (the protocol is the same both ways), on SeaBIOS (the qxl
//! device in VGA mode) and on the harness's Linux guest (the qxl DRM
//! driver: native mode, surfaces in guest memory, drawn there by the
//! source at `vm_stop` and taken from there by the destination, whose
//! QEMU recreates the primary with `KEEP_DATA`). One more test takes the
//! switch-host path: a proxy holds the client's links to the destination
//! until the VM has moved. The SeaBIOS tests run QEMU with
//! `seamless-migration=on`, as libvirt does: a C source offers seamless
//! migration, which our destination declines, so the client goes
//! semi-seamless; the Linux guest tests keep QEMU's default (off). Needs
//! `qemu-system-x86`, `python3-gi`, `gir1.2-spiceclientglib-2.0`; one test
//! at a time (two QEMUs and a client each on two cores).

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spice_interop::gtk::SpiceGtk;
use spice_interop::guest::LinuxGuest;
use spice_interop::qemu::seabios::NO_BOOTABLE_DEVICE;
use spice_interop::qemu::{free_loopback_port, Library, Picture, Qemu};
use spice_interop::qmp::Qmp;

const T: Duration = Duration::from_secs(30);

/// spice-gtk's `SpiceSessionMigration` values.
const NONE: u64 = 0;
const SWITCHING: u64 = 1;
const MIGRATING: u64 = 2;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A QEMU with its QMP socket.
struct Vm {
    qemu: Qemu,
    qmp: Qmp,
    socket: std::path::PathBuf,
}

impl Vm {
    /// With `linux`, QEMU boots the harness's Linux guest (Debian's kernel,
    /// its console on the qxl DRM driver, no blinking cursor) under TCG;
    /// SPICE allows seamless migration when `path` is [`Path::Seamless`].
    fn start(library: &Library, role: &str, incoming: Option<u16>, linux: bool, path: Path) -> Self {
        let socket = std::env::temp_dir().join(format!("spice-qmp-{}-{role}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let qmp_arg = format!("unix:{},server=on,wait=off", socket.display());
        let incoming_arg = incoming.map(|p| format!("tcp:127.0.0.1:{p}"));
        let mut args = vec!["-vga", "qxl", "-qmp", &qmp_arg];
        if let Some(arg) = &incoming_arg {
            args.extend(["-incoming", arg]);
        }
        let spice = if path == Path::Seamless {
            "disable-ticketing=on,seamless-migration=on"
        } else {
            "disable-ticketing=on"
        };
        let qemu = if linux {
            let guest = LinuxGuest::get();
            let append = format!("{} vt.global_cursor_default=0", guest.append());
            args.extend(["-m", "256", "-smp", "1"]);
            Qemu::start_linux(library, guest, &append, spice, &args)
        } else {
            Qemu::start_with_spice(library, spice, &args)
        };
        qemu.assert_library();
        let qmp = Qmp::connect(&socket, T).unwrap_or_else(|e| panic!("{role} QMP: {e}"));
        Self { qemu, qmp, socket }
    }

    /// How many SPICE channels QEMU lists as connected.
    fn spice_channels(&mut self) -> usize {
        let spice = self.qmp.execute("query-spice", json!({})).expect("query-spice");
        spice["channels"].as_array().map_or(0, Vec::len)
    }

    fn status(&mut self) -> String {
        let status = self.qmp.execute("query-status", json!({})).expect("query-status");
        status["status"].as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Polls the client until it shows the SeaBIOS screen with the cursor in
/// phase `cursor` (any phase when `None`).
fn wait_screen(gtk: &mut SpiceGtk, cursor: Option<bool>, what: &str) -> Picture {
    let deadline = Instant::now() + T;
    let mut last: Option<Picture> = None;
    loop {
        if let Some(picture) = Picture::of(gtk) {
            let wanted =
                matches!(picture.shows(NO_BOOTABLE_DEVICE), Some(phase) if cursor.is_none_or(|c| c == phase));
            // The same picture twice in a row: a screenshot taken between two
            // updates of one change (a cursor blink drawn in two frames) is
            // not the screen yet.
            let settled = last.as_ref().is_some_and(|l| l.diff(&picture) == 0);
            if wanted && settled {
                return picture;
            }
            last = Some(picture);
        }
        if Instant::now() >= deadline {
            let lines = last.as_ref().map(Picture::text_lines);
            panic!(
                "{what}: the client did not show the SeaBIOS screen (cursor {cursor:?}) within {T:?}; \
                 its text lines: {lines:?}; last events: {:?}",
                &gtk.seen[gtk.seen.len().saturating_sub(8)..]
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Which way the client is to follow the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// QEMU with `seamless-migration=on` (as libvirt starts it): the client
    /// links to the destination ahead (MIGRATE_BEGIN_SEAMLESS,
    /// DST_DO_SEAMLESS answered with ACK), and at the end each channel
    /// moves with its state (MIGRATE, FLUSH_MARK, MIGRATE_DATA passed on
    /// to the destination): the client keeps its surfaces and caches.
    Seamless,
    /// QEMU's default: it links to the destination ahead (MIGRATE_BEGIN,
    /// MIGRATE_CONNECTED), then on MIGRATE_END resets its channels and the
    /// destination starts the session (INIT, a new primary surface).
    SemiSeamless,
    /// Its links to the destination are held (by a proxy in between) until
    /// the VM has moved, so the source finds it unconnected at the end and
    /// tells it MIGRATE_SWITCH_HOST: it reconnects there from scratch.
    SwitchHost,
}

/// A loopback TCP proxy to `to` that holds every connection until opened.
struct GateProxy {
    port: u16,
    open: Arc<AtomicBool>,
}

impl GateProxy {
    fn start(to: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let open = Arc::new(AtomicBool::new(false));
        let gate = open.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let gate = gate.clone();
                std::thread::spawn(move || {
                    while !gate.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let Ok(server) = TcpStream::connect(to) else {
                        return;
                    };
                    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                        return;
                    };
                    let pipe = |mut from: TcpStream, mut to: TcpStream| {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(Shutdown::Write);
                        })
                    };
                    pipe(client, server);
                    pipe(server2, client2);
                });
            }
        });
        Self { port, open }
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Moves the VM from `source` to `destination` (started with `-incoming
/// tcp:127.0.0.1:PORT`) with the client following along `path`, checking
/// that the migration completes, the destination runs, the source reports
/// `SPICE_MIGRATE_COMPLETED` and the client's channels end up on the
/// destination and none on the source.
fn move_vm(
    what: &str,
    source: &mut Vm,
    destination: &mut Vm,
    gtk: &mut SpiceGtk,
    migration_port: u16,
    path: Path,
) {
    let channels = source.spice_channels();
    let proxy = (path == Path::SwitchHost).then(|| GateProxy::start(destination.qemu.addr));
    let client_port = proxy.as_ref().map_or(destination.qemu.addr.port(), |p| p.port);
    source
        .qmp
        .execute(
            "client_migrate_info",
            json!({ "protocol": "spice", "hostname": "127.0.0.1", "port": client_port }),
        )
        .unwrap_or_else(|e| panic!("{what}: client_migrate_info: {e}"));
    if path != Path::SwitchHost {
        // QEMU does not wait for the client (a VM this small migrates in
        // about a second): start once the client has linked to the
        // destination, as it does in time with a VM of any size. Its
        // answer to the source follows at once.
        let migrating = |e: &Value| e["event"] == "migration-state" && e["state"] == MIGRATING;
        assert!(
            gtk.seen.iter().any(migrating) || gtk.wait(T, migrating).is_some(),
            "{what}: the client never connected to the destination"
        );
    }
    source
        .qmp
        .execute(
            "migrate",
            json!({ "uri": format!("tcp:127.0.0.1:{migration_port}") }),
        )
        .unwrap_or_else(|e| panic!("{what}: migrate: {e}"));
    wait_until(
        &format!("{what}: the migration to complete"),
        Duration::from_secs(120),
        || {
            let state = source.qmp.execute("query-migrate", json!({})).unwrap_or_default();
            assert_ne!(state["status"], "failed", "{what}: migration failed: {state}");
            state["status"] == "completed"
        },
    );
    wait_until(&format!("{what}: the destination to run"), T, || {
        destination.status() == "running"
    });
    if let Some(proxy) = &proxy {
        proxy.open();
    }
    assert!(
        source.qmp.wait_event("SPICE_MIGRATE_COMPLETED", T),
        "{what}: the source's SPICE_MIGRATE_COMPLETED (the library's migrate_end_complete); events: {:?}",
        source.qmp.events
    );

    // The client's session moved: its channels are on the destination.
    let channels = channels.max(3);
    let deadline = Instant::now() + T;
    loop {
        let (on_destination, on_source) = (destination.spice_channels(), source.spice_channels());
        if on_destination >= channels && on_source == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the client's {channels} channels did not move within {T:?}: \
             {on_destination} on the destination, {on_source} on the source"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn migrate(source_library: Library, destination_library: Library, path: Path) {
    let _serial = serial();
    let what = format!(
        "{} to {} ({path:?})",
        source_library.name(),
        destination_library.name()
    );
    let mut source = Vm::start(&source_library, "source", None, false, path);
    let migration_port = free_loopback_port();
    let mut destination = Vm::start(
        &destination_library,
        "destination",
        Some(migration_port),
        false,
        path,
    );
    assert_eq!(
        destination.status(),
        "inmigrate",
        "{what}: the destination waits for the VM"
    );

    let mut gtk = SpiceGtk::start();
    gtk.send(json!({
        "cmd": "connect",
        "uri": format!("spice://127.0.0.1:{}", source.qemu.addr.port()),
    }));
    let before = wait_screen(&mut gtk, None, &format!("{what}: before migrating"));
    let phase = before.shows(NO_BOOTABLE_DEVICE);
    let channels = source.spice_channels();
    assert!(
        channels >= 3,
        "{what}: the client's channels on the source: {channels}"
    );
    assert_eq!(
        destination.spice_channels(),
        0,
        "{what}: nothing on the destination yet"
    );

    move_vm(
        &what,
        &mut source,
        &mut destination,
        &mut gtk,
        migration_port,
        path,
    );
    let after = wait_screen(&mut gtk, phase, &format!("{what}: after migrating"));
    assert_eq!(
        after.diff(&before),
        0,
        "{what}: the screen after migrating, same cursor phase, is pixel-equal to the one before"
    );
    // And it keeps following the running VM: the cursor's other phase.
    wait_screen(
        &mut gtk,
        phase.map(|p| !p),
        &format!("{what}: the cursor blinking after migrating"),
    );
    let states: Vec<u64> = gtk
        .seen
        .iter()
        .filter(|e| e["event"] == "migration-state")
        .filter_map(|e| e["state"].as_u64())
        .collect();
    match path {
        Path::Seamless | Path::SemiSeamless => {
            assert_eq!(states, [MIGRATING, NONE], "{what}: the client's migration states");
            assert!(
                !gtk.has_seen("session-disconnected"),
                "{what}: the client's session never disconnected"
            );
        }
        Path::SwitchHost => {
            assert!(
                states.contains(&SWITCHING),
                "{what}: the client switched host: {states:?}"
            );
            assert_eq!(
                states.last(),
                Some(&NONE),
                "{what}: the client's migration states"
            );
        }
    }
    assert!(source.qemu.is_alive() && destination.qemu.is_alive());
    gtk.quit();
}

#[test]
fn vm_migrates_seamlessly_between_two_qemus_on_our_library() {
    migrate(Library::rust(), Library::rust(), Path::Seamless);
}

#[test]
fn vm_migrates_semi_seamlessly_between_two_qemus_on_our_library() {
    migrate(Library::rust(), Library::rust(), Path::SemiSeamless);
}

#[test]
fn client_follows_a_vm_seamlessly_from_our_library_to_the_c_library() {
    migrate(Library::rust(), Library::Debian, Path::Seamless);
}

#[test]
fn client_follows_a_vm_seamlessly_from_the_c_library_to_ours() {
    migrate(Library::Debian, Library::rust(), Path::Seamless);
}

#[test]
fn client_follows_a_vm_semi_seamlessly_from_the_c_library_to_ours() {
    migrate(Library::Debian, Library::rust(), Path::SemiSeamless);
}

#[test]
fn client_not_connected_in_time_is_switched_to_the_destination() {
    migrate(Library::rust(), Library::rust(), Path::SwitchHost);
}

/// The client's picture once it stopped changing for a second.
fn settled(gtk: &mut SpiceGtk, what: &str) -> Picture {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last: Option<(Picture, Instant)> = None;
    loop {
        if let Some(p) = Picture::of(gtk) {
            match &last {
                Some((q, since)) if *q == p => {
                    if since.elapsed() > Duration::from_secs(1) {
                        return p;
                    }
                }
                _ => last = Some((p, Instant::now())),
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the client's picture never settled"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A real Linux guest (its console on the qxl DRM driver, so surfaces live
/// in guest memory: the source draws everything into them at `vm_stop`,
/// and the destination's QEMU creates the primary with `KEEP_DATA` and
/// replays the device's command log) moves; the client shows the console
/// it showed before, pixel-equal, and then what the guest prints on the
/// destination.
fn linux_guest_migrates(source_library: Library, destination_library: Library, path: Path) {
    let _serial = serial();
    let what = &format!(
        "{} to {}, Linux guest ({path:?})",
        source_library.name(),
        destination_library.name()
    );
    let mut source = Vm::start(&source_library, "source", None, true, path);
    let ready = source.qemu.serial_wait("GUEST READY", Duration::from_secs(180));
    assert!(
        ready.is_some(),
        "{what}: the guest did not boot; serial:\n{}",
        source.qemu.serial_log()
    );
    let migration_port = free_loopback_port();
    let mut destination = Vm::start(
        &destination_library,
        "destination",
        Some(migration_port),
        true,
        path,
    );
    let mut gtk = SpiceGtk::start();
    gtk.send(json!({
        "cmd": "connect",
        "uri": format!("spice://127.0.0.1:{}", source.qemu.addr.port()),
    }));
    source.qemu.serial_send("scroll 60");
    assert!(
        source.qemu.serial_wait("GUEST DONE scroll", T).is_some(),
        "{what}: scroll"
    );
    let before = settled(&mut gtk, what);
    assert!(
        before.pixels.chunks_exact(4).any(|px| px[..3] != [0, 0, 0]),
        "{what}: the console shows text before migrating"
    );

    move_vm(
        what,
        &mut source,
        &mut destination,
        &mut gtk,
        migration_port,
        path,
    );

    let deadline = Instant::now() + T;
    let mut after = Picture::of(&mut gtk);
    while after.as_ref().is_none_or(|p| p.diff(&before) != 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = Picture::of(&mut gtk);
    }
    if let (Some(a), Ok(dir)) = (&after, std::env::var("MIGRATION_PICTURES")) {
        let _ = a.save_ppm(&std::path::Path::new(&dir).join("after.ppm"));
        let _ = before.save_ppm(&std::path::Path::new(&dir).join("before.ppm"));
    }
    assert_eq!(
        after.as_ref().map(|p| p.diff(&before)),
        Some(0),
        "{what}: the console after migrating is pixel-equal to the one before"
    );
    // The guest runs on the destination, and the client shows it.
    destination.qemu.serial_send("scroll 7");
    assert!(
        destination.qemu.serial_wait("GUEST DONE scroll", T).is_some(),
        "{what}: the guest answers on the destination; serial:\n{}",
        destination.qemu.serial_log()
    );
    let moved = settled(&mut gtk, what);
    assert_ne!(
        moved, before,
        "{what}: the client shows the destination's console scrolling"
    );
    gtk.quit();
}

#[test]
fn a_linux_guest_on_qxl_migrates_between_our_libraries_and_the_client_shows_its_console() {
    linux_guest_migrates(Library::rust(), Library::rust(), Path::SemiSeamless);
}

#[test]
fn a_linux_guest_on_qxl_migrates_seamlessly_between_our_libraries() {
    linux_guest_migrates(Library::rust(), Library::rust(), Path::Seamless);
}

#[test]
fn a_linux_guest_on_qxl_migrates_from_the_c_library_to_ours() {
    linux_guest_migrates(Library::Debian, Library::rust(), Path::SemiSeamless);
}

#[test]
fn a_linux_guest_on_qxl_migrates_from_our_library_to_the_c_library() {
    linux_guest_migrates(Library::rust(), Library::Debian, Path::SemiSeamless);
}
