//! Differential tests through the C ABI.
//!
//! `tests/c_host/host.c` is a small host compiled against the real `spice.h`
//! that drives `libspice-server.so.1` the way QEMU's simple display does
//! (poll loop behind `SpiceCoreInterface`, keyboard, mouse, tablet, playback,
//! record, a QXL instance fed with 32-pixel DRAW_COPY strips, and on request a
//! "vdagent" char device that behaves like QEMU's spicevmc chardev). Every
//! scenario runs twice with the same assertions: against our library
//! (`cargo xtask capi`) and against Debian's C library, selected at run time
//! with `LD_LIBRARY_PATH`, with the real spice-gtk client on the other end.
//! Test names end in `::ours` or `::debian`.
//!
//! `SPICE_CAPI_LIB_DIR=<dir>` skips the build and takes our library from
//! `<dir>/libspice-server.so.1` (empty: `target/release`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spice_interop::agent::cap;
use spice_interop::gtk::SpiceGtk;
use spice_interop::html5::Html5;
use spice_proto::agent::{message_type, PORT_CLIENT, PORT_SERVER};

#[path = "c_host/harness.rs"]
mod harness;
use harness::*;

/// Host options for scenarios about input, audio and the cursor: the primary
/// surface exists but stays black, so the QXL worker draws nothing. With our
/// library every cross-thread draw risks the LOST WAKE-UP bug (see below),
/// after which nothing the host asks of the server is carried out until the
/// client sends something; these scenarios test other things and must not
/// depend on it. The display scenarios draw, and catch that bug.
const STILL: &[&str] = &["--picture", "0"];

/// The client's primary surface equals the host's picture, pixel for pixel.
fn assert_picture(lib: Lib, host: &mut Host, gtk: &mut SpiceGtk, what: &str) {
    let (w, h, expected) = host.picture();
    let diff = gtk.wait_surface(w, h, &expected, T);
    if diff == 0 {
        return;
    }
    let detail = match gtk.surface() {
        Some((cw, ch, got)) if (cw, ch) == (w, h) => describe_difference(w, &expected, &got),
        Some((cw, ch, _)) => format!("the client's surface is {cw}x{ch}"),
        None => "no client surface".into(),
    };
    host.cmd("stats");
    let counts = host
        .events("counts")
        .last()
        .map(|v| v.to_string())
        .unwrap_or_default();
    panic!(
        "{lib:?}, {what}: the client's {w}x{h} surface differs from the host's picture in {diff} pixels; {detail}; host: {counts}"
    );
}

/// Where two packed pictures differ: the bounding box and the differing
/// 32-pixel column strips with their row ranges.
fn describe_difference(width: u32, expected: &[u8], got: &[u8]) -> String {
    let w = width as usize;
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    let mut strips = std::collections::BTreeMap::<usize, (usize, usize, usize)>::new();
    let mut poisoned = 0;
    for (i, (a, b)) in expected.chunks(4).zip(got.chunks(4)).enumerate() {
        if a != b {
            // host.c fills released bitmaps with 0xA5: those pixels were read after release.
            poisoned += usize::from(b[..3] == [0xA5; 3]);
            let (x, y) = (i % w, i / w);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            let e = strips.entry(x / 32).or_insert((y, y, 0));
            (e.0, e.1, e.2) = (e.0.min(y), e.1.max(y), e.2 + 1);
        }
    }
    let strips: Vec<String> = strips
        .iter()
        .map(|(s, (top, bottom, n))| format!("x {}..{} rows {top}..={bottom} ({n} px)", s * 32, s * 32 + 32))
        .collect();
    format!(
        "differences within x {x0}..={x1}, y {y0}..={y1}, {poisoned} of them 0xA5 (read after release); by strip: {strips:?}"
    )
}

/// Every command handed to the server was released exactly once.
fn assert_all_released(lib: Lib, events: &[Value]) {
    for name in ["counts-after-destroy-primary", "counts-after-remove"] {
        let counts = events
            .iter()
            .find(|v| v["event"] == name)
            .unwrap_or_else(|| panic!("{lib:?}: no {name}"));
        assert_eq!(
            counts["draw_released"], counts["draw_sent"],
            "{lib:?}: {name}: every DRAW released once: {counts}"
        );
        assert_eq!(
            counts["cursor_released"], counts["cursor_sent"],
            "{lib:?}: {name}: every CURSOR released once: {counts}"
        );
        assert_eq!(counts["double_releases"], 0, "{lib:?}: {counts}");
        assert_eq!(counts["bad_releases"], 0, "{lib:?}: {counts}");
    }
}

fn scancodes(host: &mut Host, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        match host.wait(T, |v| v["event"] == "scancode") {
            Some(v) => got.push(v["byte"].as_u64().unwrap() as u8),
            None => break,
        }
    }
    got
}

fn connect_with_audio(gtk: &mut SpiceGtk, host: &Host) {
    let addr = host.addr();
    gtk.send(json!({
        "cmd": "connect",
        "uri": format!("spice://{}:{}", addr.ip(), addr.port()),
        "audio": true,
    }));
}

fn wait_channel_open(gtk: &mut SpiceGtk, lib: Lib, kind: &str) {
    let open = gtk.wait(T, |v| {
        v["event"] == "channel-event" && v["type"] == kind && v["code"] == "opened"
    });
    assert!(
        open.is_some(),
        "{lib:?}: {kind} did not open; seen {:#?}",
        gtk.seen
    );
}

/// The host's PCM pattern (`pcm_seed`/`pcm_next` in host.c): xorshift32, one
/// stereo frame per value, left in the low 16 bits, little endian.
fn pcm_pattern(frames: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    let mut out = Vec::with_capacity(frames * 4);
    for _ in 0..frames {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// Scenarios: each runs against both libraries with the same assertions.

/// 640x480 at start, three rounds of updates, two resizes with updates after
/// them: the client's surface is the host's picture each time, the channel
/// infos stay readable, and every command is released once.
fn picture(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, &[]);
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    let created = gtk.expect("primary-create", T);
    assert_eq!(
        (created["width"].as_u64(), created["height"].as_u64()),
        (Some(640), Some(480))
    );
    gtk.expect("mark", T);
    assert_picture(lib, &mut host, &mut gtk, "after start");

    // What QEMU's query-spice reads: the infos kept since INITIALIZED.
    host.cmd("query");
    let channels: Vec<(u64, String)> = host
        .events("query-channel")
        .iter()
        .map(|v| {
            (
                v["type"].as_u64().unwrap(),
                v["peer"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for kind in [1, 2] {
        assert!(
            channels.contains(&(kind, "127.0.0.1".to_owned())),
            "{lib:?}: channel type {kind} from 127.0.0.1 in query: {channels:?}"
        );
    }
    for event in host.events("channel") {
        assert_eq!(event["peer"], "127.0.0.1", "{lib:?}: ADDR_EXT peer: {event}");
    }

    for round in 0..3 {
        host.cmd("update 12");
        assert_picture(lib, &mut host, &mut gtk, &format!("after update round {round}"));
    }

    host.cmd("resize 800 600");
    let created = gtk.wait(T, |v| v["event"] == "primary-create" && v["width"] == 800);
    assert!(
        created.is_some_and(|v| v["height"] == 600),
        "{lib:?}: resize reaches the client"
    );
    assert_picture(lib, &mut host, &mut gtk, "after resize to 800x600");
    host.cmd("update 8");
    assert_picture(lib, &mut host, &mut gtk, "after resize and updates");

    host.cmd("resize 333 211");
    let created = gtk.wait(T, |v| v["event"] == "primary-create" && v["width"] == 333);
    assert!(created.is_some(), "{lib:?}: second resize reaches the client");
    assert_picture(
        lib,
        &mut host,
        &mut gtk,
        "after resize to 333x211 (not a multiple of 32)",
    );
    host.cmd("fill 300 200 33 11 99");
    assert_picture(lib, &mut host, &mut gtk, "after a fill at the bottom-right edge");

    gtk.quit();
    let events = host.quit();
    assert_all_released(lib, &events);
}

/// `spice_server_vm_stop` stops command processing (QEMU pauses the VM) and
/// `vm_start` resumes it; nothing queued meanwhile is lost.
fn vm_stop(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, &["--width", "320", "--height", "240"]);
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.expect("mark", T);
    assert_picture(lib, &mut host, &mut gtk, "before vm_stop");
    host.cmd("vm_stop");
    host.cmd("stats");
    let before = host.events("counts").last().unwrap()["draw_sent"].clone();
    host.cmd("update 6");
    std::thread::sleep(Duration::from_millis(300));
    host.cmd("stats");
    let stopped = (*host.events("counts").last().unwrap()).clone();
    assert_eq!(
        stopped["draw_sent"], before,
        "{lib:?}: no command taken while stopped: {stopped}"
    );
    assert!(stopped["draw_queued"].as_u64() > Some(0), "{lib:?}: {stopped}");
    host.cmd("vm_start");
    assert_picture(lib, &mut host, &mut gtk, "after vm_start");
    gtk.quit();
    let events = host.quit();
    assert_all_released(lib, &events);
}

/// The host's `cpu` report: the library's CPU time on the main thread (in its
/// watch and timer callbacks) and on its "SPICE Worker" threads.
fn cpu_report(host: &mut Host) -> Value {
    host.cmd("cpu");
    (*host.events("cpu").last().unwrap()).clone()
}

/// Encoding and sending the display happen on the display's worker thread,
/// not on the host's main loop (QEMU's, which holds the big QEMU lock): with
/// a client taking a stream of large updates, the library's work on the main
/// thread is a small fraction of its worker's.
fn display_work_off_the_main_thread(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, &["--width", "1024", "--height", "768"]);
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.expect("mark", T);
    assert_picture(lib, &mut host, &mut gtk, "after start");
    let before = cpu_report(&mut host);
    for round in 0..12 {
        host.cmd("update 40");
        assert_picture(lib, &mut host, &mut gtk, &format!("after update round {round}"));
    }
    let after = cpu_report(&mut host);
    let used = |key: &str| after[key].as_i64().unwrap() - before[key].as_i64().unwrap();
    let (main_us, worker_us) = (used("lib_main_us"), used("worker_us"));
    eprintln!("{lib:?}: library CPU while updating: main thread {main_us} us, SPICE Worker {worker_us} us");
    assert_eq!(after["workers"], 1, "{lib:?}: one SPICE Worker thread: {after}");
    assert!(
        worker_us >= 5_000,
        "{lib:?}: the worker did the display work ({worker_us} us)"
    );
    assert!(
        main_us * 10 <= worker_us,
        "{lib:?}: the main thread ran {main_us} us of library work against the worker's {worker_us} us"
    );
    gtk.quit();
    let events = host.quit();
    assert_all_released(lib, &events);
}

/// No device callback before `spice_server_vm_start`, after `vm_stop`, or
/// before a memslot exists (QEMU's qxl device calls that a server bug and
/// its interrupts are lost), through start-up, a client, updates and a
/// stop/start cycle. Ours only: the C server starts its worker when the
/// device is added and polls the rings before the VM runs.
fn no_device_callbacks_while_stopped(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, &["--width", "320", "--height", "200"]);
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.expect("mark", T);
    host.cmd("update 4");
    assert_picture(lib, &mut host, &mut gtk, "after updates");
    host.cmd("vm_stop");
    host.cmd("update 4");
    std::thread::sleep(Duration::from_millis(400));
    host.cmd("vm_start");
    assert_picture(lib, &mut host, &mut gtk, "after vm_start");
    let report = cpu_report(&mut host);
    let stopped = host.events("qxl-callback-while-stopped");
    assert!(
        stopped.is_empty() && report["stopped_callbacks"] == 0,
        "{lib:?}: device callbacks while the VM was stopped or before a memslot: {stopped:#?}"
    );
    assert!(
        !host.events("qxl-client-caps").is_empty(),
        "{lib:?}: the device heard a client came"
    );
    gtk.quit();
    host.quit();
}

/// The device hears that a client came and that it left
/// (`set_client_capabilities`, which QEMU's qxl passes on to the guest in
/// its ROM's `client_present`), each change once: nothing more while the
/// picture changes, though the worker looks at its clients at every turn of
/// its loop. Ours only: the C library (0.15.1) tells the device twice that
/// a client came and never that it left.
fn device_hears_clients_come_and_go(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, &["--width", "320", "--height", "200"]);
    let present = |p: u64| move |v: &Value| v["event"] == "qxl-client-caps" && v["present"] == p;
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.expect("mark", T);
    assert!(
        host.seen_or_wait(0, T, present(1)).is_some(),
        "{lib:?}: the device did not hear a client came; seen {:#?}",
        host.seen
    );
    for _ in 0..5 {
        host.cmd("update 4");
        assert_picture(lib, &mut host, &mut gtk, "while the client watches");
    }
    gtk.quit();
    assert!(
        host.wait(T, present(0)).is_some(),
        "{lib:?}: the device did not hear the client left; seen {:#?}",
        host.seen
    );
    host.cmd("update 4");
    host.drain(Duration::from_millis(300));
    let reports: Vec<_> = host
        .events("qxl-client-caps")
        .iter()
        .map(|v| v["present"].as_u64())
        .collect();
    // The first is the VM's start, before any client.
    assert_eq!(
        reports,
        [Some(0), Some(1), Some(0)],
        "{lib:?}: what the device was told of clients"
    );
    host.quit();
}

/// A host that adds its memslot, creates the primary surface and starts the
/// VM from inside `attached_worker`, as upstream spice's test display does:
/// the instance takes those calls there, and the picture reaches the client.
fn setup_inside_attached_worker(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(
        lib,
        &["--width", "320", "--height", "200", "--setup-in-attached", "1"],
    );
    assert!(
        !host.events("qxl-attached-worker").is_empty(),
        "{lib:?}: attached_worker called"
    );
    let created = host.events("primary-created");
    assert_eq!(
        created.len(),
        1,
        "{lib:?}: the primary made inside attached_worker"
    );
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.expect("mark", T);
    assert_picture(lib, &mut host, &mut gtk, "after start");
    host.cmd("update 4");
    assert_picture(lib, &mut host, &mut gtk, "after updates");
    gtk.quit();
    let events = host.quit();
    assert_all_released(lib, &events);
}

/// A device whose notifications get lost (a guest filling its ring without
/// the wakeup ever coming, as with QEMU's one-vCPU TCG) still has its
/// commands taken: the worker looks at a sleeping ring now and then. Ours
/// only: the C server waits for the wakeup forever.
fn lost_wakeups_only_delay(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, &["--width", "320", "--height", "200"]);
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.expect("mark", T);
    assert_picture(lib, &mut host, &mut gtk, "before wakeups are lost");
    // Let the worker go to sleep on both rings first.
    std::thread::sleep(Duration::from_millis(200));
    host.cmd("drop_wakeups 1");
    for round in 0..3 {
        host.cmd("update 6");
        let started = Instant::now();
        assert_picture(
            lib,
            &mut host,
            &mut gtk,
            &format!("round {round} without wakeups"),
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{lib:?}: a lost wakeup cost {:?}",
            started.elapsed()
        );
    }
    gtk.quit();
    host.quit();
}

/// A client asks for another size (spice-gtk's monitors configuration, sent
/// to the guest agent): a QXL device that takes such requests gets it, on the
/// host's main thread, and the agent does not; a device that does not take
/// them leaves it to the agent. Ours hands the agent the form spice-vdagentd
/// accepts (no physical sizes: it refuses a message longer than its
/// monitors); the C server forwards the client's message as it is.
fn client_monitors_config(lib: Lib) {
    for device_takes in [true, false] {
        let _serial = serial();
        let flag = if device_takes { "1" } else { "0" };
        let mut args = STILL.to_vec();
        args.extend(["--monitors-config", flag]);
        let mut host = Host::start(lib, &args);
        let added = agent_add(lib, &mut host, "monitors config");
        let mut gtk = SpiceGtk::start();
        gtk.connect(host.addr(), None);
        expect_agent_update(lib, &mut gtk, true, "agent present");
        expect_client_caps(lib, &mut host, added, "monitors config");
        agent_announce(lib, &mut host, "monitors config");
        gtk.expect("mark", T);
        let from = host.seen.len();
        gtk.send(json!({"cmd": "monitors_config", "width": 800, "height": 600}));
        let sent = gtk.expect("monitors-config-sent", T);
        assert_eq!(sent["sent"], true, "{lib:?}: spice-gtk sent the configuration");
        let to_agent = |v: &Value| is_agent_msg(v, PORT_CLIENT, message_type::MONITORS_CONFIG);
        if device_takes {
            let got = host.seen_or_wait(from, T, |v| v["event"] == "qxl-monitors-config");
            let got = got.unwrap_or_else(|| panic!("{lib:?}: the device got no monitors configuration"));
            assert_eq!(
                (&got["n"], &got["width"], &got["height"], &got["main"]),
                (&json!(1), &json!(800), &json!(600), &json!(1)),
                "{lib:?}: one 800x600 monitor, on the main thread: {got}"
            );
            host.drain(Duration::from_millis(300));
            assert!(
                !host.seen[from..].iter().any(to_agent),
                "{lib:?}: the agent got the configuration the device took"
            );
        } else {
            let got = host.seen_or_wait(from, T, to_agent);
            let got = got.unwrap_or_else(|| panic!("{lib:?}: the agent got no monitors configuration"));
            assert_eq!(
                (&got["monitors"], &got["width"], &got["height"]),
                (&json!(1), &json!(800), &json!(600)),
                "{lib:?}: the agent's configuration: {got}"
            );
            if lib == Lib::Ours {
                assert_eq!(
                    (&got["size"], &got["flags"]),
                    (&json!(8 + 20), &json!(1)),
                    "ours: the agent gets monitors only, as spice-vdagentd checks: {got}"
                );
            }
            assert!(
                host.events("qxl-monitors-config").is_empty(),
                "{lib:?}: a device that does not take configurations got one"
            );
        }
        gtk.quit();
        host.quit();
    }
}

/// `spice_qxl_update_area` (sync) renders what was drawn into the primary
/// surface's memory, which the host owns (QEMU's qxl device reads it back for
/// its own console).
fn primary_memory(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, &["--width", "200", "--height", "120"]);
    host.cmd("update 5");
    let deadline = Instant::now() + T;
    loop {
        host.cmd("stats");
        let counts = (*host.events("counts").last().unwrap()).clone();
        if counts["dirty"] == 0 && counts["draw_queued"] == 0 && counts["draw_sent"] == counts["draw_made"] {
            break;
        }
        assert!(Instant::now() < deadline, "{lib:?}: commands not taken: {counts}");
        std::thread::sleep(Duration::from_millis(50));
    }
    host.cmd("update_area");
    let memory = host.events("primary-memory")[0].clone();
    assert_eq!(
        memory["match"], memory["pixels"],
        "{lib:?}: the primary's memory holds the picture after update_area: {memory}"
    );
    let events = host.quit();
    assert_all_released(lib, &events);
}

/// Typed keys, including E0 keys, reach `push_scan_freg` as set-1 bytes, both
/// as KEY_DOWN/KEY_UP and as KEY_SCANCODE messages.
fn keys(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, STILL);
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.wait_inputs_ready(None, T);
    // "h", "i", Right Ctrl (E0 1D), keypad Enter (E0 1C).
    for code in [0x23u32, 0x17, 0x11D, 0x11C] {
        gtk.send(json!({"cmd": "key_press", "code": code}));
        gtk.send(json!({"cmd": "key_release", "code": code}));
    }
    let expected = [
        0x23, 0xA3, 0x17, 0x97, 0xE0, 0x1D, 0xE0, 0x9D, 0xE0, 0x1C, 0xE0, 0x9C,
    ];
    assert_eq!(
        scancodes(&mut host, expected.len()),
        expected,
        "{lib:?}: KEY_DOWN/KEY_UP"
    );
    // "a" and Up (E0 48), press and release in one message each.
    gtk.send(json!({"cmd": "key_press_and_release", "code": 0x1e}));
    gtk.send(json!({"cmd": "key_press_and_release", "code": 0x148}));
    assert_eq!(
        scancodes(&mut host, 6),
        [0x1e, 0x9e, 0xE0, 0x48, 0xE0, 0xC8],
        "{lib:?}: KEY_SCANCODE"
    );
    gtk.quit();
    host.quit();
}

/// Keys still held when the client goes away are released for the guest (the
/// C server's `InputsChannel::release_keys` on disconnect), so no key sticks.
fn held_keys(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, STILL);
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.wait_inputs_ready(None, T);
    gtk.send(json!({"cmd": "key_press", "code": 0x1e}));
    gtk.send(json!({"cmd": "key_press", "code": 0x11D}));
    assert_eq!(scancodes(&mut host, 3), [0x1e, 0xE0, 0x1D], "{lib:?}: presses");
    gtk.quit();
    assert_eq!(
        scancodes(&mut host, 3),
        [0x9e, 0xE0, 0x9D],
        "{lib:?}: the held keys are released when the client disconnects"
    );
    host.quit();
}

const INPUT_EVENTS: [&str; 6] = [
    "tablet-position",
    "tablet-buttons",
    "tablet-wheel",
    "mouse-motion",
    "mouse-buttons",
    "qemu-buttons",
];

/// Client mouse mode: positions, clicks of each button and the wheel, as the
/// host's callbacks receive them. Returns the raw callback sequence.
fn tablet_session(lib: Lib) -> Vec<Value> {
    let _serial = serial();
    let mut host = Host::start(lib, STILL);
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.wait_inputs_ready(Some(2), T);
    let sized = |v: &Value| v["event"] == "tablet-size" && v["width"] == 640 && v["height"] == 480;
    assert!(
        host.seen.iter().any(sized) || host.wait(T, sized).is_some(),
        "{lib:?}: the tablet learns the primary's size"
    );
    host.drain(Duration::from_millis(200));
    let start = host.seen.len();

    gtk.send(json!({"cmd": "position", "x": 100, "y": 50, "buttons": 0}));
    assert!(
        host.wait(T, |v| v["event"] == "tablet-position").is_some(),
        "{lib:?}: position"
    );
    // Protocol buttons: left=1, middle=2, right=3, up=4, down=5; masks L=1, M=2, R=4, U=8, D=16.
    for (button, mask) in [(1, 1), (3, 4), (2, 2), (4, 8), (5, 16)] {
        gtk.send(json!({"cmd": "button_press", "button": button, "buttons": mask}));
        gtk.send(json!({"cmd": "button_release", "button": button, "buttons": 0}));
    }
    // A drag: left held while moving.
    gtk.send(json!({"cmd": "button_press", "button": 1, "buttons": 1}));
    gtk.send(json!({"cmd": "position", "x": 300, "y": 200, "buttons": 1}));
    gtk.send(json!({"cmd": "button_release", "button": 1, "buttons": 0}));
    let mut qemu = Vec::new();
    while qemu.len() < 13 {
        match host.wait(Duration::from_secs(5), |v| v["event"] == "qemu-buttons") {
            Some(v) => qemu.push(v["state"].as_u64().unwrap()),
            None => break,
        }
    }
    host.drain(Duration::from_millis(500));
    // QEMU's view (spice-input.c): left=1, right=2, middle=4, wheel up 0x10, down 0x20.
    assert_eq!(
        qemu,
        [1, 0, 2, 0, 4, 0, 0x10, 0, 0x20, 0, 1, 0],
        "{lib:?}: button states as QEMU derives them"
    );
    let positions: Vec<(i64, i64, i64)> = host.seen[start..]
        .iter()
        .filter(|v| v["event"] == "tablet-position")
        .map(|v| {
            (
                v["x"].as_i64().unwrap(),
                v["y"].as_i64().unwrap(),
                v["buttons"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        positions,
        [(100, 50, 0), (300, 200, 1)],
        "{lib:?}: absolute positions"
    );
    assert!(
        host.seen[start..].iter().all(|v| v["event"] != "mouse-motion"),
        "{lib:?}: no relative motion in client mouse mode"
    );
    let raw = host.seen[start..]
        .iter()
        .filter(|v| INPUT_EVENTS.iter().any(|e| v["event"] == *e))
        .cloned()
        .collect();
    gtk.quit();
    host.quit();
    raw
}

fn tablet(lib: Lib) {
    tablet_session(lib);
}

/// Server mouse mode (no tablet): relative motion, clicks and the wheel reach
/// the mouse interface. Returns the raw callback sequence.
fn mouse_session(lib: Lib) -> Vec<Value> {
    let _serial = serial();
    let mut host = Host::start(lib, &["--tablet", "0", "--picture", "0"]);
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.wait_inputs_ready(Some(1), T);
    host.cmd("query");
    let query = host.events("query-end")[0].clone();
    assert_eq!(query["server_mouse"], 1, "{lib:?}: spice_server_is_server_mouse");
    host.drain(Duration::from_millis(200));
    let start = host.seen.len();

    gtk.send(json!({"cmd": "motion", "dx": 5, "dy": -3, "buttons": 0}));
    assert!(
        host.wait(T, |v| v["event"] == "mouse-motion").is_some(),
        "{lib:?}: motion"
    );
    for (button, mask) in [(1, 1), (3, 4), (2, 2), (4, 8), (5, 16)] {
        gtk.send(json!({"cmd": "button_press", "button": button, "buttons": mask}));
        gtk.send(json!({"cmd": "button_release", "button": button, "buttons": 0}));
    }
    gtk.send(json!({"cmd": "button_press", "button": 1, "buttons": 1}));
    gtk.send(json!({"cmd": "motion", "dx": 7, "dy": 4, "buttons": 1}));
    gtk.send(json!({"cmd": "button_release", "button": 1, "buttons": 0}));
    let mut qemu = Vec::new();
    while qemu.len() < 12 {
        match host.wait(Duration::from_secs(5), |v| v["event"] == "qemu-buttons") {
            Some(v) => qemu.push(v["state"].as_u64().unwrap()),
            None => break,
        }
    }
    host.drain(Duration::from_millis(500));
    assert_eq!(
        qemu,
        [1, 0, 2, 0, 4, 0, 0x10, 0, 0x20, 0, 1, 0],
        "{lib:?}: button states as QEMU derives them"
    );
    let events = &host.seen[start..];
    let (dx, dy): (i64, i64) = events
        .iter()
        .filter(|v| v["event"] == "mouse-motion")
        .fold((0, 0), |(x, y), v| {
            (x + v["dx"].as_i64().unwrap(), y + v["dy"].as_i64().unwrap())
        });
    assert_eq!((dx, dy), (12, 1), "{lib:?}: relative motion adds up");
    assert!(
        events
            .iter()
            .all(|v| !v["event"].as_str().unwrap_or_default().starts_with("tablet")),
        "{lib:?}: no tablet calls without a tablet"
    );
    let raw = events
        .iter()
        .filter(|v| INPUT_EVENTS.iter().any(|e| v["event"] == *e))
        .cloned()
        .collect();
    gtk.quit();
    host.quit();
    raw
}

fn mouse(lib: Lib) {
    mouse_session(lib);
}

/// A cursor SET reaches the client with its size, hot spot and pixels; the
/// SET and MOVE commands are released by the sync destroy at the end.
fn cursor(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, STILL);
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.expect("mark", T);
    host.cmd("cursor 12 20 3 4 100 80 150 90");
    let queued = host.events("cursor-queued")[0].clone();
    let set = gtk.expect("cursor-set", T);
    assert_eq!(
        (&set["width"], &set["height"], &set["hot_x"], &set["hot_y"]),
        (&json!(12), &json!(20), &json!(3), &json!(4)),
        "{lib:?}: {set}"
    );
    assert_eq!(
        set["crc32"], queued["rgba_crc32"],
        "{lib:?}: the client got the cursor's pixels (as RGBA)"
    );
    // A second shape replaces the first (and lets the server release it).
    host.cmd("cursor 32 32 16 16 10 10 20 20");
    let set = gtk.wait(T, |v| v["event"] == "cursor-set" && v["width"] == 32);
    assert!(set.is_some(), "{lib:?}: second cursor shape");
    gtk.quit();
    let events = host.quit();
    assert_all_released(lib, &events);
    let counts = events
        .iter()
        .find(|v| v["event"] == "counts-after-destroy-primary")
        .unwrap();
    assert_eq!(counts["cursor_sent"], 4, "{lib:?}: {counts}");
}

/// `get_leds` at connect and `spice_server_kbd_leds` later reach the client as
/// key modifiers; the client's own lock state comes back as toggle keys.
fn leds(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, STILL);
    host.cmd("leds_get 2");
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.wait_inputs_ready(None, T);
    let first = gtk.wait(T, |v| v["event"] == "key-modifiers");
    assert_eq!(
        first.map(|v| v["modifiers"].clone()),
        Some(json!(2)),
        "{lib:?}: INPUTS_INIT carries get_leds"
    );
    host.cmd("leds_get 6");
    host.cmd("kbd_leds 6");
    assert!(
        gtk.wait(T, |v| v["event"] == "key-modifiers" && v["modifiers"] == 6)
            .is_some(),
        "{lib:?}: Num and Caps Lock reach the client; seen {:#?}",
        gtk.seen
    );
    host.cmd("leds_get 1");
    host.cmd("kbd_leds 1");
    assert!(
        gtk.wait(T, |v| v["event"] == "key-modifiers" && v["modifiers"] == 1)
            .is_some(),
        "{lib:?}: Scroll Lock alone reaches the client"
    );
    // The client has no lock on: Scroll Lock is toggled in the guest.
    gtk.send(json!({"cmd": "set_key_locks", "locks": 0}));
    assert_eq!(scancodes(&mut host, 2), [0x46, 0xC6], "{lib:?}: lock sync");
    gtk.quit();
    host.quit();
}

/// Playback: 10 packets of a known pattern, paced like QEMU's audio timer.
/// `opus` lets spice-gtk offer Opus (QEMU's default playback compression is on).
fn playback_session(lib: Lib, opus: bool) -> Vec<u8> {
    playback_session_at(lib, opus, 48000)
}

/// As [`playback_session`], the host playing at `rate`.
fn playback_session_at(lib: Lib, opus: bool, rate: u32) -> Vec<u8> {
    let _serial = serial();
    let rate_arg = rate.to_string();
    let mut host = Host::start(lib, &[STILL, &["--audio-rate", &rate_arg]].concat());
    let mut gtk = if opus {
        SpiceGtk::start()
    } else {
        SpiceGtk::start_with_env(&[("SPICE_DISABLE_OPUS", "1")])
    };
    connect_with_audio(&mut gtk, &host);
    wait_channel_open(&mut gtk, lib, "PlaybackChannel");
    let frames = 10 * 480;
    host.cmd(&format!("playback {frames} 3"));
    let start = gtk.expect("playback-start", T);
    assert_eq!(
        (&start["channels"], &start["rate"]),
        (&json!(2), &json!(rate)),
        "{lib:?}"
    );
    let done = host.expect("playback-done");
    assert_eq!(
        (&done["frames"], &done["packets"]),
        (&json!(frames), &json!(10)),
        "{lib:?}: {done}"
    );
    gtk.expect("playback-stop", T);
    let path = host.dir.join("playback.pcm");
    gtk.send(json!({"cmd": "playback_dump", "path": path}));
    gtk.expect("playback-dumped", T);
    let received = std::fs::read(&path).expect("client PCM");
    gtk.quit();
    host.quit();
    received
}

fn playback(lib: Lib) {
    let received = playback_session(lib, false);
    let expected = pcm_pattern(10 * 480, 3);
    assert_eq!(received.len(), expected.len(), "{lib:?}: raw PCM length");
    assert!(
        received == expected,
        "{lib:?}: the client played exactly the host's samples"
    );
}

/// With Opus on offer (QEMU's defaults), both libraries compress: the client
/// gets the same amount of (lossy, so not exact) audio.
fn playback_opus(lib: Lib) {
    let received = playback_session(lib, true);
    let expected = pcm_pattern(10 * 480, 3);
    assert_eq!(received.len(), expected.len(), "{lib:?}: decoded PCM length");
    assert!(received != expected, "{lib:?}: Opus, so not the raw samples");
}

/// A host at 44.1 kHz: the client is told that rate and, Opus being only for
/// 48 kHz, gets raw PCM, exact, though it offers Opus.
fn playback_44100(lib: Lib) {
    let received = playback_session_at(lib, true, 44100);
    assert!(
        received == pcm_pattern(10 * 480, 3),
        "{lib:?}: raw PCM at 44.1 kHz, exact"
    );
}

/// The same host audio through both libraries decodes to the same bytes in
/// spice-gtk: ours encodes with libopus as the C server does (48 kHz stereo,
/// `OPUS_APPLICATION_AUDIO`, default bitrate, one packet per 480 frames).
/// Over the pixels where two packed pictures differ: how many, and their
/// mean absolute difference per colour channel.
fn lossy_pixels(a: &[u8], b: &[u8]) -> (usize, f64) {
    assert_eq!(a.len(), b.len());
    let (mut sum, mut off) = (0u64, 0usize);
    for (pa, pb) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        let d: u64 = (0..3).map(|c| u64::from(pa[c].abs_diff(pb[c]))).sum();
        if d > 0 {
            sum += d;
            off += 1;
        }
    }
    (off, sum as f64 / (3 * off.max(1)) as f64)
}

/// The client's picture with JPEG images on (QEMU's
/// `image-compression=quic,jpeg-wan-compression=always`) once the host's
/// updates have settled: `(pixels, pixels off, their mean abs error)`.
fn jpeg_session(lib: Lib) -> (usize, usize, f64) {
    let _serial = serial();
    let mut host = Host::start(lib, &["--jpeg", "1"]);
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.expect("primary-create", T);
    gtk.expect("mark", T);
    host.cmd("update 6");
    let (w, h, expected) = host.picture();
    // Lossy, so the surface never equals the picture: wait until it stops changing.
    let mut last: Option<Vec<u8>> = None;
    let deadline = Instant::now() + T;
    let settled = loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = gtk.surface().filter(|s| (s.0, s.1) == (w, h)).map(|s| s.2);
        if let Some(surface) = now.as_ref().filter(|_| now == last) {
            break surface.clone();
        }
        assert!(Instant::now() < deadline, "{lib:?}: the client's surface settles");
        last = now;
    };
    let (off, error) = lossy_pixels(&expected, &settled);
    gtk.quit();
    let events = host.quit();
    assert_all_released(lib, &events);
    (expected.len() / 4, off, error)
}

/// JPEG images under the C ABI come from libjpeg at the C server's quality:
/// where spice-gtk's picture differs from the host's (noise, JPEG's worst
/// case), it differs as much as with the C library; as there, the whole
/// picture a client gets at connection is lossless; and only what the host
/// painted goes lossy, not the untouched pixels between its rectangles that
/// merged damage would cover (C codes each drawn strip).
#[test]
fn jpeg_images_as_close_as_the_c_librarys() {
    let (pixels, ours_off, ours) = jpeg_session(Lib::Ours);
    let (_, c_off, c) = jpeg_session(Lib::Debian);
    eprintln!("of {pixels} pixels: ours {ours_off} off by {ours:.2} on average, C {c_off} off by {c:.2}");
    assert!(
        ours_off > 0 && c_off > 0,
        "both lossy: ours {ours_off}, C {c_off} pixels off"
    );
    assert!(
        ours_off < pixels / 2 && c_off < pixels / 2,
        "the picture at connection is lossless, the updates lossy: ours {ours_off}, C {c_off} of {pixels} pixels off"
    );
    assert!(
        ours_off * 10 <= c_off * 11,
        "no more pixels lossy than with C: ours {ours_off}, C {c_off}"
    );
    assert!(
        (ours - c).abs() <= c * 0.1,
        "ours {ours:.2} within a tenth of C's {c:.2} mean abs error on the lossy pixels"
    );
}

#[test]
fn playback_opus_decodes_equal_to_the_c_library() {
    let ours = playback_session(Lib::Ours, true);
    let debian = playback_session(Lib::Debian, true);
    assert_eq!(ours.len(), debian.len());
    assert!(
        ours == debian,
        "spice-gtk decoded the same audio from both libraries"
    );
}

/// Record: the client sends 10 packets (more than the C server's half-buffer
/// threshold of 4096 frames) and the host reads exactly them.
fn record(lib: Lib) {
    let (pcm, recorded) = record_session(lib, false);
    assert!(
        recorded == pcm,
        "{lib:?}: the host recorded exactly the client's samples"
    );
}

/// With Opus (spice-gtk records in Opus when the server offers it, as both
/// do at 48 kHz) the host reads as many frames, lossy, and the same bytes
/// from both libraries since both decode with libopus.
#[test]
fn record_opus_equals_the_c_library() {
    let (pcm, ours) = record_session(Lib::Ours, true);
    let (_, debian) = record_session(Lib::Debian, true);
    assert!(ours != pcm, "Opus, so not the raw samples");
    assert!(ours == debian, "both libraries decoded the same audio");
}

/// The client records 10 packets of the PCM pattern; returns them and what the
/// host read. `opus` lets spice-gtk record in Opus.
fn record_session(lib: Lib, opus: bool) -> (Vec<u8>, Vec<u8>) {
    let _serial = serial();
    let mut host = Host::start(lib, STILL);
    let mut gtk = if opus {
        SpiceGtk::start()
    } else {
        SpiceGtk::start_with_env(&[("SPICE_DISABLE_OPUS", "1")])
    };
    connect_with_audio(&mut gtk, &host);
    wait_channel_open(&mut gtk, lib, "RecordChannel");
    host.cmd("record_start");
    let start = gtk.expect("record-start", T);
    assert_eq!(
        (&start["channels"], &start["rate"]),
        (&json!(2), &json!(48000)),
        "{lib:?}"
    );
    let frames = 10 * 480;
    let pcm = pcm_pattern(frames, 5);
    gtk.send(json!({"cmd": "record_send", "hex": hex(&pcm), "time": 1000}));
    gtk.expect("record-sent", T);
    let got = host.wait(T, |v| {
        v["event"] == "record-samples" && v["total"].as_u64() >= Some(frames as u64)
    });
    assert!(
        got.is_some(),
        "{lib:?}: the host read {frames} frames; seen {:#?}",
        host.events("record-samples")
    );
    host.cmd("record_stop");
    let path = host.dir.join("record.pcm");
    host.cmd(&format!("record_dump {}", path.display()));
    let recorded = std::fs::read(&path).unwrap();
    assert_eq!(recorded.len(), pcm.len(), "{lib:?}: recorded length");
    gtk.quit();
    host.quit();
    (pcm, recorded)
}

/// spice-html5 (Debian's, in headless Chromium) over WebSocket on the SPICE
/// port: the host's picture in its canvas, typing and a click reaching the
/// host, and the host's audio played as Opus by its media element.
fn html5(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, &[]);
    let mut browser = Html5::start();
    match lib {
        Lib::Ours => browser.open(host.addr().port(), ""),
        Lib::Debian => browser.open_on_c_library(host.addr().port(), ""),
    }
    let (w, h, expected) = host.picture();
    let diff = browser.wait_canvas(w, h, &expected, T);
    assert_eq!(
        diff,
        0,
        "{lib:?}: spice-html5's canvas differs from the host's picture in {diff} pixels; console: {:#?}",
        browser.console()
    );
    host.cmd("update 12");
    let (w, h, expected) = host.picture();
    let diff = browser.wait_canvas(w, h, &expected, T);
    assert_eq!(diff, 0, "{lib:?}: after an update, {diff} pixels differ");

    browser.type_text("ab");
    assert_eq!(scancodes(&mut host, 4), [0x1e, 0x9e, 0x30, 0xb0], "{lib:?}: keys");
    // A pixel or two off: WebDriver's offset from the element's centre.
    browser.click(100, 50);
    let near = |v: &Value| {
        v["event"] == "tablet-position"
            && v["x"].as_i64().is_some_and(|x| (x - 100).abs() <= 2)
            && v["y"].as_i64().is_some_and(|y| (y - 50).abs() <= 2)
    };
    assert!(host.wait(T, near).is_some(), "{lib:?}: pointer position");
    for state in [1, 0] {
        assert!(
            host.wait(T, |v| v["event"] == "qemu-buttons" && v["state"] == state)
                .is_some(),
            "{lib:?}: left button state {state}"
        );
    }

    // Three seconds of the host's audio, paced like QEMU's audio timer.
    host.cmd(&format!("playback {} 7", 300 * 480));
    let audio = browser.wait_audio_time(0.3, T);
    assert!(
        audio["current_time"].as_f64().unwrap_or(0.0) > 0.3,
        "{lib:?}: spice-html5 played the Opus stream: {audio}; console: {:#?}",
        browser.console()
    );
    assert!(audio["error"].is_null(), "{lib:?}: {audio}");
    browser.quit();
    host.quit();
}

/// `spice_server_set_ticket`: a wrong password is refused, the right one shows the picture.
fn password(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(
        lib,
        &["--password", "s3cret", "--width", "200", "--height", "100"],
    );
    let mut bad = SpiceGtk::start();
    bad.connect(host.addr(), Some("guess"));
    let event = bad.expect("channel-event", T);
    assert_eq!(event["code"], "error-auth", "{lib:?}: {event}");
    bad.quit();
    let mut good = SpiceGtk::start();
    good.connect(host.addr(), Some("s3cret"));
    good.expect("mark", T);
    assert_picture(lib, &mut host, &mut good, "after authenticating");
    good.quit();
    host.quit();
}

/// spice-gtk connects through its `unix-path` (no TCP).
fn connect_unix(gtk: &mut SpiceGtk, path: &Path) {
    gtk.send(serde_json::json!({
        "cmd": "connect",
        "uri": "spice://localhost",
        "props": {"unix-path": path.display().to_string()},
    }));
}

/// Unix sockets through the C ABI: the library listens on a path
/// (`spice_server_set_addr` with `SPICE_ADDR_FLAG_UNIX_ONLY`, QEMU's
/// `unix=on`), replacing a stale socket left there; then the host accepts
/// on its own Unix socket and hands each connection to
/// `spice_server_add_client`; last, the host makes a socket listen and hands
/// it over with `spice_server_set_listen_socket_fd`. spice-gtk connects by
/// `unix-path` each time and sees the host's picture.
fn unix_sockets(lib: Lib) {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("spice-unix-{}-{lib:?}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let listen = dir.join("spice.sock");
    // A stale socket from an earlier run (bound, then closed: nobody listens).
    drop(std::os::unix::net::UnixListener::bind(&listen).unwrap());
    let size = ["--width", "320", "--height", "240"];
    let mut args = size.to_vec();
    let listen_arg = listen.display().to_string();
    args.extend(["--unix-listen", &listen_arg]);
    let mut host = Host::start(lib, &args);
    let mut gtk = SpiceGtk::start();
    connect_unix(&mut gtk, &listen);
    gtk.expect("mark", T);
    assert_picture(lib, &mut host, &mut gtk, "over the library's unix socket");
    gtk.quit();
    host.quit();

    let accept = dir.join("host.sock");
    let accept_arg = accept.display().to_string();
    let mut args = size.to_vec();
    args.extend(["--accept", &accept_arg]);
    let mut host = Host::start(lib, &args);
    let mut gtk = SpiceGtk::start();
    connect_unix(&mut gtk, &accept);
    gtk.expect("mark", T);
    assert_picture(lib, &mut host, &mut gtk, "over sockets the host accepted");
    let added = host.events("add-client");
    assert!(
        added.len() >= 2 && added.iter().all(|v| v["rc"] == 0),
        "{lib:?}: main and display channels handed over: {added:?}"
    );
    gtk.quit();
    host.quit();

    // A socket the host made listen, given with spice_server_set_listen_socket_fd
    // (no port): served, and still the host's to close after destroy.
    let given = dir.join("given.sock");
    let given_arg = given.display().to_string();
    let mut args = size.to_vec();
    args.extend(["--listen-fd", &given_arg]);
    let mut host = Host::start(lib, &args);
    let set = host.events("listen-fd");
    assert!(
        set.len() == 1 && set[0]["rc"] == 0,
        "{lib:?}: spice_server_set_listen_socket_fd: {set:?}"
    );
    let mut gtk = SpiceGtk::start();
    connect_unix(&mut gtk, &given);
    gtk.expect("mark", T);
    assert_picture(lib, &mut host, &mut gtk, "over the host's listening socket");
    gtk.quit();
    let seen = host.quit();
    let destroyed = seen.iter().find(|v| v["event"] == "destroyed");
    assert_eq!(
        destroyed.map(|v| &v["listen_fd_open"]),
        Some(&serde_json::json!(1)),
        "{lib:?}: the host's listening socket was closed by the library: {destroyed:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// The guest agent port: host.c's "vdagent" char device, QEMU-like (guest data
// offered through spice_server_char_device_wakeup, `state` as be_open).

/// More `VD_AGENT_CLIPBOARD_GRAB`s than the agent's 10-message token window.
const GRABS: usize = 50;

/// `(port, type)` of an `agent-msg` line: a message written to the device.
fn is_agent_msg(v: &Value, port: u32, message_type: u32) -> bool {
    v["event"] == "agent-msg" && v["port"] == port && v["type"] == message_type
}

/// `(connected, in_add, in_remove)` of every `state` call seen from `from` on.
fn agent_states(host: &Host, from: usize) -> Vec<(u64, u64, u64)> {
    host.seen[from..]
        .iter()
        .filter(|v| v["event"] == "agent-state")
        .map(|v| {
            (
                v["connected"].as_u64().unwrap(),
                v["in_add"].as_u64().unwrap(),
                v["in_remove"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Runs `agent_add` and checks the C server's behaviour: `state(1)` once,
/// from inside `spice_server_add_interface` (QEMU drops what the guest writes
/// until then). Returns where its events start in `host.seen`.
fn agent_add(lib: Lib, host: &mut Host, what: &str) -> usize {
    let from = host.seen.len();
    host.cmd("agent_add");
    assert_eq!(
        agent_states(host, from),
        [(1, 1, 0)],
        "{lib:?}, {what}: sif->state(sin, 1) once, inside spice_server_add_interface"
    );
    from
}

/// Runs `agent_remove`: `state(0)` once, from inside `spice_server_remove_interface`
/// (the C server's `reds_reset_vdp`), never after it.
fn agent_remove(lib: Lib, host: &mut Host) {
    let from = host.seen.len();
    host.cmd("agent_remove");
    assert_eq!(
        agent_states(host, from),
        [(0, 0, 1)],
        "{lib:?}: sif->state(sin, 0) once, inside spice_server_remove_interface"
    );
}

/// Waits until the client's capabilities reach the device (spice-gtk sends them
/// right after AGENT_START): `VD_AGENT_ANNOUNCE_CAPABILITIES` on `VDP_CLIENT_PORT`
/// asking for the agent's, with clipboard by demand and selections.
fn expect_client_caps(lib: Lib, host: &mut Host, from: usize, what: &str) {
    let caps = host.seen_or_wait(from, T, |v| {
        is_agent_msg(v, PORT_CLIENT, message_type::ANNOUNCE_CAPABILITIES)
    });
    let Some(caps) = caps else {
        panic!(
            "{lib:?}, {what}: the client's capabilities did not reach the device's write; seen {:#?}",
            host.events("agent-msg")
        );
    };
    let word = caps["caps"].as_u64().unwrap_or_default();
    assert_eq!(caps["request"], 1, "{lib:?}, {what}: {caps}");
    assert_eq!(caps["protocol"], 1, "{lib:?}, {what}: VD_AGENT_PROTOCOL: {caps}");
    for bit in [cap::CLIPBOARD_BY_DEMAND, cap::CLIPBOARD_SELECTION] {
        assert!(
            word & (1 << bit) != 0,
            "{lib:?}, {what}: client cap {bit}: {caps}"
        );
    }
}

fn expect_agent_update(lib: Lib, gtk: &mut SpiceGtk, connected: bool, what: &str) {
    let seen = gtk.wait(T, |v| v["event"] == "agent-update" && v["connected"] == connected);
    assert!(
        seen.is_some(),
        "{lib:?}, {what}: no agent-update connected={connected} at the client; seen {:#?}",
        gtk.seen
    );
}

/// The guest agent announces its capabilities (clipboard by demand, with
/// selections), as spice-vdagent does once the client's arrive.
fn agent_announce(lib: Lib, host: &mut Host, what: &str) {
    let from = host.seen.len();
    host.cmd(&format!(
        "agent_caps 0 {} {} {}",
        cap::MONITORS_CONFIG,
        cap::CLIPBOARD_BY_DEMAND,
        cap::CLIPBOARD_SELECTION
    ));
    assert_drained(lib, host, from, 1, what);
}

/// The guest's data offered since `from` was taken `offers` offers, each read
/// whole inside the `spice_server_char_device_wakeup` that offered it: QEMU's
/// `spice_chr_write` otherwise leaves the port blocked until the server happens
/// to read again.
fn assert_drained(lib: Lib, host: &mut Host, from: usize, offers: usize, what: &str) {
    let flushed = host.seen_or_wait(from, T, |v| v["event"] == "agent-flushed");
    let Some(flushed) = flushed else {
        panic!(
            "{lib:?}, {what}: the guest's data was not all taken; seen {:#?}",
            host.seen[from..].to_vec()
        );
    };
    let made: Vec<(u64, u64)> = host.seen[from..]
        .iter()
        .filter(|v| v["event"] == "agent-offer")
        .map(|v| (v["len"].as_u64().unwrap(), v["read"].as_u64().unwrap()))
        .collect();
    let partial: Vec<_> = made.iter().filter(|(len, read)| len != read).collect();
    assert!(
        partial.is_empty() && made.len() == offers,
        "{lib:?}, {what}: {offers} offers, each read inside char_device_wakeup; got {} offers, \
         partly read (len, read): {partial:?}; {flushed}",
        made.len()
    );
}

/// The guest agent grabs the clipboard `n` times, in one guest write or one
/// write per message (spice-vdagent's way); the client sees exactly these
/// grabs, and every write is read inside the wakeup that offered it.
fn agent_grabs(lib: Lib, host: &mut Host, gtk: &mut SpiceGtk, n: usize, one_write: bool, what: &str) {
    let before = gtk.seen.iter().filter(|v| v["event"] == "clipboard-grab").count();
    let from = host.seen.len();
    host.cmd(&format!("agent_grab {n} 0 1 {}", u8::from(one_write)));
    assert_drained(lib, host, from, if one_write { 1 } else { n }, what);
    let mut grabs = 0;
    while grabs < n {
        match gtk.wait(T, |v| v["event"] == "clipboard-grab") {
            Some(v) => {
                assert_eq!(
                    (&v["selection"], &v["ntypes"]),
                    (&json!(0), &json!(1)),
                    "{lib:?}, {what}: {v}"
                );
                grabs += 1;
            }
            None => break,
        }
    }
    assert_eq!(grabs, n, "{lib:?}, {what}: clipboard grabs at the client");
    // Nothing more (say, grabs made before the client started the agent).
    let _ = gtk.wait(Duration::from_millis(200), |_| false);
    let total = gtk.seen.iter().filter(|v| v["event"] == "clipboard-grab").count();
    assert_eq!(total - before, n, "{lib:?}, {what}: no other grabs at the client");
}

/// The agent port added before the client connects: what the guest writes
/// with no client is read and dropped; the client sees the agent, traffic flows
/// both ways (more messages than the agent's 10-message token window, written
/// one by one and in one write), the port is removed and added again while the
/// client stays, and the agent hears of the client's departure.
fn agent(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, STILL);
    let added = agent_add(lib, &mut host, "before the client");
    let from = host.seen.len();
    host.cmd("agent_grab 3 0 1 0");
    assert_drained(lib, &mut host, from, 3, "no client yet");
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    expect_agent_update(lib, &mut gtk, true, "agent present at connect");
    expect_client_caps(lib, &mut host, added, "first client");
    agent_announce(lib, &mut host, "first agent");
    agent_grabs(lib, &mut host, &mut gtk, GRABS, false, "one write per grab");
    agent_grabs(
        lib,
        &mut host,
        &mut gtk,
        2 * GRABS,
        true,
        "all grabs in one write",
    );

    agent_remove(lib, &mut host);
    expect_agent_update(lib, &mut gtk, false, "port removed");
    let added = agent_add(lib, &mut host, "re-added");
    expect_agent_update(lib, &mut gtk, true, "port added again");
    expect_client_caps(lib, &mut host, added, "re-added");
    agent_announce(lib, &mut host, "re-added agent");
    agent_grabs(lib, &mut host, &mut gtk, 3, false, "re-added agent");

    let from = host.seen.len();
    gtk.quit();
    let bye = host.wait(T, |v| {
        is_agent_msg(v, PORT_SERVER, message_type::CLIENT_DISCONNECTED)
    });
    assert!(
        bye.is_some_and(|v| v["size"] == 0),
        "{lib:?}: VD_AGENT_CLIENT_DISCONNECTED (empty) on VDP_SERVER_PORT when the client left; seen {:#?}",
        host.seen[from..].to_vec()
    );
    host.drain(Duration::from_millis(300));
    let from = host.seen.len();
    let events = host.quit();
    // Written to the device in all: the client's capabilities twice, then the farewell.
    let written: Vec<(u64, u64)> = events
        .iter()
        .filter(|v| v["event"] == "agent-msg")
        .map(|v| (v["port"].as_u64().unwrap(), v["type"].as_u64().unwrap()))
        .collect();
    let (client, server) = (u64::from(PORT_CLIENT), u64::from(PORT_SERVER));
    let caps = u64::from(message_type::ANNOUNCE_CAPABILITIES);
    assert_eq!(
        written,
        [
            (client, caps),
            (client, caps),
            (server, u64::from(message_type::CLIENT_DISCONNECTED))
        ],
        "{lib:?}: messages written to the device"
    );
    let removed = events.iter().find(|v| v["event"] == "removed").unwrap();
    assert_eq!(removed["agent"], 0, "{lib:?}: {removed}");
    let states: Vec<_> = events[from..]
        .iter()
        .filter(|v| v["event"] == "agent-state")
        .map(|v| (v["connected"].clone(), v["in_remove"].clone()))
        .collect();
    assert_eq!(
        states,
        [(json!(0), json!(1))],
        "{lib:?}: state(0) when removed at exit"
    );
    assert!(
        events.iter().all(|v| v["event"] != "agent-after-remove"),
        "{lib:?}: no device callback after spice_server_remove_interface"
    );
}

/// The agent port added while a client is connected (QEMU adds it when the
/// guest's spice-vdagent opens the port, usually after the client came).
fn agent_late(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, STILL);
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.wait_inputs_ready(None, T);
    assert!(
        !gtk.seen
            .iter()
            .any(|v| v["event"] == "agent-update" && v["connected"] == true),
        "{lib:?}: no agent yet"
    );
    let added = agent_add(lib, &mut host, "while connected");
    expect_agent_update(lib, &mut gtk, true, "agent added while connected");
    expect_client_caps(lib, &mut host, added, "agent added while connected");
    agent_announce(lib, &mut host, "agent added while connected");
    agent_grabs(lib, &mut host, &mut gtk, 12, false, "agent added while connected");
    gtk.quit();
    let bye = host.wait(T, |v| {
        is_agent_msg(v, PORT_SERVER, message_type::CLIENT_DISCONNECTED)
    });
    assert!(bye.is_some(), "{lib:?}: VD_AGENT_CLIENT_DISCONNECTED");
    host.quit();
}

/// Client mouse mode with the agent port attached and `spice_server_set_agent_mouse(1)`
/// (QEMU's default, agent-mouse=on): the C server sends the client's pointer to
/// the agent as `VD_AGENT_MOUSE_STATE` on `VDP_SERVER_PORT` (buttons as
/// `VD_AGENT_*BUTTON_MASK`, left = 2) and not to the tablet.
fn agent_mouse(lib: Lib) {
    let _serial = serial();
    let mut host = Host::start(lib, STILL);
    let added = agent_add(lib, &mut host, "agent mouse");
    let mut gtk = SpiceGtk::start();
    gtk.connect(host.addr(), None);
    gtk.wait_inputs_ready(Some(2), T);
    expect_client_caps(lib, &mut host, added, "agent mouse");
    agent_announce(lib, &mut host, "agent mouse");
    host.drain(Duration::from_millis(200));
    let from = host.seen.len();
    gtk.send(json!({"cmd": "position", "x": 100, "y": 50, "buttons": 0}));
    gtk.send(json!({"cmd": "button_press", "button": 1, "buttons": 1}));
    gtk.send(json!({"cmd": "button_release", "button": 1, "buttons": 0}));
    host.drain(Duration::from_millis(1000));
    let events = &host.seen[from..];
    let states: Vec<(u64, u64, u64)> = events
        .iter()
        .filter(|v| is_agent_msg(v, PORT_SERVER, message_type::MOUSE_STATE))
        .map(|v| {
            let n = |k: &str| v[k].as_u64().unwrap_or(u64::MAX);
            (n("x"), n("y"), n("buttons"))
        })
        .collect();
    let tablet: Vec<&Value> = events
        .iter()
        .filter(|v| v["event"].as_str().unwrap_or_default().starts_with("tablet-"))
        .collect();
    assert!(
        states.contains(&(100, 50, 2)) && states.last() == Some(&(100, 50, 0)) && tablet.is_empty(),
        "{lib:?}: the pointer goes to the agent (VD_AGENT_MOUSE_STATE (x, y, buttons): {states:?}), \
         not to the tablet ({tablet:?})"
    );
    gtk.quit();
    host.quit();
}

/// One test per library for each scenario: `<scenario>::ours` and
/// `<scenario>::debian`, with the same assertions.
///
/// These tests found four differences of ours, all fixed since: lost main-loop
/// wake-ups (`spice-server` `waker.rs` re-armed before draining), keys held at
/// disconnect not released, press callbacks unlike the C server's
/// (`wheel(0)` / `motion(0, 0, 0)`), and nothing rendered into the primary
/// surface's memory on `update_area`. The agent port scenarios found three
/// more, fixed too: `state(1)` / `state(0)` not called inside
/// `spice_server_add_interface` / `remove_interface` (the removal's never
/// reached the host), and a guest write of more than 64 chunks left partly
/// unread with nothing to read it again (QEMU's port stayed blocked); and the
/// agent mouse (client-mode pointer to the agent as `VD_AGENT_MOUSE_STATE`).
macro_rules! for_both_libraries {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn ours() {
                super::$scenario(super::Lib::Ours)
            }

            #[test]
            fn debian() {
                super::$scenario(super::Lib::Debian)
            }
        }
    )*};
}

for_both_libraries!(
    html5,
    unix_sockets,
    agent_mouse,
    picture,
    vm_stop,
    display_work_off_the_main_thread,
    setup_inside_attached_worker,
    client_monitors_config,
    primary_memory,
    keys,
    held_keys,
    tablet,
    mouse,
    cursor,
    leds,
    playback,
    playback_opus,
    playback_44100,
    record,
    password,
    agent,
    agent_late,
);

#[test]
fn no_device_callbacks_while_stopped_ours() {
    no_device_callbacks_while_stopped(Lib::Ours);
}

#[test]
fn device_hears_clients_come_and_go_ours() {
    device_hears_clients_come_and_go(Lib::Ours);
}

#[test]
fn lost_wakeups_only_delay_ours() {
    lost_wakeups_only_delay(Lib::Ours);
}

/// Callback events as short strings, e.g. `tablet-wheel buttons=1 wheel=0`.
fn compact(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|v| {
            let mut s = v["event"].as_str().unwrap_or_default().to_owned();
            if let Some(fields) = v.as_object() {
                for (k, v) in fields.iter().filter(|(k, _)| *k != "event") {
                    s.push_str(&format!(" {k}={v}"));
                }
            }
            s
        })
        .collect()
}

/// The raw callback sequence of the tablet scenario, ours against the C library's.
#[test]
fn tablet_callbacks_equal_the_c_library() {
    let ours = compact(&tablet_session(Lib::Ours));
    let debian = compact(&tablet_session(Lib::Debian));
    assert_eq!(
        ours, debian,
        "tablet callbacks: ours (left) vs Debian's C library (right)"
    );
}

/// The raw callback sequence of the server-mouse scenario, ours against the C library's.
#[test]
fn mouse_callbacks_equal_the_c_library() {
    let ours = compact(&mouse_session(Lib::Ours));
    let debian = compact(&mouse_session(Lib::Debian));
    assert_eq!(
        ours, debian,
        "mouse callbacks: ours (left) vs Debian's C library (right)"
    );
}

// ---------------------------------------------------------------------------
// The shared object itself.

/// The version definitions (`readelf -V`): each node and its parent.
fn version_definitions(path: &Path) -> Vec<String> {
    let out = Command::new("readelf")
        .args(["-V", "-W"])
        .arg(path)
        .output()
        .expect("readelf");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .skip_while(|l| !l.starts_with("Version definition section"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("Version"))
        .filter_map(|l| {
            l.split_once("Name: ")
                .map(|(_, n)| format!("node {n}"))
                .or_else(|| l.split_once("Parent 1: ").map(|(_, p)| format!("  parent {p}")))
        })
        .collect()
}

#[test]
fn exported_symbols_and_versions_equal_the_c_library() {
    let ours = Lib::Ours.file();
    let debian = Lib::Debian.file();
    let (ours_syms, debian_syms) = (dynamic_symbols(&ours, true), dynamic_symbols(&debian, true));
    let functions = ours_syms.iter().filter(|(v, n)| v != n).count();
    assert_eq!(functions, 97, "97 exported functions");
    let missing: Vec<_> = debian_syms.iter().filter(|s| !ours_syms.contains(s)).collect();
    let extra: Vec<_> = ours_syms.iter().filter(|s| !debian_syms.contains(s)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "(version, name) pairs: missing from ours {missing:?}, only in ours {extra:?}"
    );
    assert_eq!(
        version_definitions(&ours),
        version_definitions(&debian),
        "version nodes and their parents"
    );
    let soname = |p: &Path| {
        let out = Command::new("readelf").arg("-d").arg(p).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.contains("(SONAME)"))
            .map(|l| l.split_whitespace().last().unwrap_or_default().to_owned())
    };
    assert_eq!(soname(&ours), Some(format!("[{SONAME}]")));
    assert_eq!(soname(&ours), soname(&debian));
}
