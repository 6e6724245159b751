//! Unmodified QEMU 7.2 (Debian's `qemu-system-x86_64`) with our
//! `libspice-server.so.1` against the same QEMU with Debian's C library, seen
//! through the real spice-gtk client. Differential: every scenario runs once per
//! library, at the same time, and what the client sees must be the same.
//!
//! How to run: `cargo test -p spice-interop --test qemu`. Each test first runs
//! `cargo xtask capi` (once per test process; a few seconds when up to date),
//! which links `target/release/libspice-server.so.1`. Each QEMU is started by
//! [`spice_interop::qemu::Qemu`]: `-display none -nic none -monitor none
//! -serial none`, no disk (SeaBIOS only), SPICE on a free 127.0.0.1 port
//! without a ticket, `-accel kvm` when `/dev/kvm` opens read-write, else
//! `-accel tcg`. Ours is loaded with `LD_LIBRARY_PATH=target/release`, the C
//! one with `LD_LIBRARY_PATH` removed; every test asserts from
//! `/proc/PID/maps` that each QEMU mapped exactly the library it was meant to.
//! Needs `qemu-system-x86`, `python3-gi` and `gir1.2-spiceclientglib-2.0`.
//! Tests run one at a time (a lock in this file): each has two or three
//! QEMUs and as many Python clients, and the machines have two cores. Set
//! `SPICE_RS_LOG=debug` to get our library's log in QEMU's stderr, which a
//! failing test keeps in a temporary file (the path is printed).
//!
//! Pictures are compared by polling: both clients' primary surfaces are dumped
//! again and again until they are pixel-equal and show the expected screen.
//! SeaBIOS leaves a blinking text cursor; instead of masking it, a settled
//! screen must be seen pixel-equal in both blink phases (cursor drawn and
//! cursor erased), so a library that drops either update fails. Screens are
//! recognised by their text layout ([`Picture::text_lines`]: per 9x16 text row,
//! the length of the text), checked against the known SeaBIOS 1.16.2 screens.
//!
//! What each test proves:
//! - `vga_std_seabios_screen_is_pixel_equal`: with `-vga std`, the client's
//!   720x400 surface showing "No bootable device." is pixel-equal between the
//!   libraries in both cursor phases, the client is offered the same channels,
//!   and afterwards each client goes on getting updates (the blinking cursor:
//!   at least 8 in 5 s; about 18 arrive), so the display has not stalled.
//!   (A wake-up lost in `WakeReceiver::drain` used to freeze our display for
//!   good in one QEMU run in three to six.)
//! - `vga_qxl_seabios_screen_is_pixel_equal`: the same with `-vga qxl` (the QXL
//!   device in VGA mode).
//! - `many_spice_options_and_a_password`: QEMU with a password and most other
//!   `-spice` options (compression, streaming, agent options, seamless
//!   migration) starts and serves with both libraries: a wrong password is
//!   refused, the right one shows the display, QEMU stays up.
//! - `vga_virtio_seabios_screen_is_pixel_equal`: the same with `-vga virtio`
//!   (virtio-vga, whose 2D output also goes through QEMU's simple display).
//! - `escape_opens_the_seabios_boot_menu`: with `-boot
//!   menu=on,splash-time=15000`, once "Press ESC for boot menu." shows, the
//!   client sends ESC (set-1 scancode 0x01 press and release); SeaBIOS's boot
//!   menu appears, pixel-equal between the libraries in both cursor phases,
//!   and QEMU's input core saw the same key events (`-trace
//!   input_event_key*`: esc down, esc up). The screen before ESC must differ
//!   from the one after, and a third QEMU (our library) that gets no key must
//!   still show "Press ESC" then, so the menu can only come from the key: the
//!   test fails if no key is sent.
//! - `two_clients_at_once_with_spice_debug_allow_mc`: with
//!   `SPICE_DEBUG_ALLOW_MC=1` in QEMU's environment (both libraries), two
//!   clients watch each QEMU at once; the second presses ESC at SeaBIOS's
//!   prompt, and all four clients then show the same boot menu in both
//!   cursor phases, each QEMU saw one press and release, nobody was
//!   disconnected.
//! - `qemu_survives_repeated_connects`: ten clients in a row per library
//!   connect, wait for the settled picture and go away (even cycles disconnect
//!   and quit, odd ones are killed, which drops the sockets mid-session); each
//!   QEMU is still running and a final client gets the full picture,
//!   pixel-equal between the libraries and to the first client's.
//! - `server_mouse_mode_motion_clicks_and_wheel_reach_qemu_as_with_c`: no
//!   tablet, so server mouse mode (1); a motion (5, -3), a left click and a
//!   wheel notch reach QEMU's input core (`-trace input_*`) as relative motion
//!   and buttons, and the event sequence is the same as with the C library,
//!   which hands a button press to the mouse as `motion(0, 0, dz, buttons)`
//!   (QEMU traces a zero motion after the button) and a release as
//!   `buttons(buttons)`.
//! - `usb_tablet_gives_client_mouse_mode_when_it_is_qemus_pointer`: with
//!   `-device usb-ehci -device usb-tablet`, QEMU adds its SPICE tablet
//!   interface only once the tablet is its active pointer. On the default
//!   `pc` machine the PS/2 mouse stays active until a guest driver polls the
//!   tablet, which SeaBIOS never does, so the mode stays server (1) with both
//!   libraries. With `-machine pc,i8042=off` (no PS/2 devices) the tablet is
//!   the active pointer from the start: QEMU adds the tablet interface, the
//!   client ends in client mouse mode (2), and on the settled screen a click
//!   at (100, 50) and a wheel notch reach QEMU's input core as absolute
//!   0x11c6, 0xfff (QEMU scales to 0..0x7fff over the logical size the server
//!   gives the tablet: 720x400) and button events; the traces are equal
//!   between the libraries. Whether the guest sees the click cannot be
//!   observed without guest software: SeaBIOS drives only boot-protocol USB
//!   HID devices and the tablet is not one.
//! - `audio_device_gives_a_playback_channel`: `-audiodev spice,id=snd0 -device
//!   intel-hda -device hda-output,audiodev=snd0` loads, and a client with audio
//!   enabled is offered a playback channel by both libraries (and the same
//!   channel set).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spice_interop::gtk::SpiceGtk;
use spice_interop::qemu::seabios::{BOOT_MENU, NO_BOOTABLE_DEVICE, PRESS_ESC};
use spice_interop::qemu::{Library, Picture, Qemu};

const T: Duration = Duration::from_secs(30);

/// One test at a time: see the top comment.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// One QEMU and the spice-gtk client watching it.
struct Side {
    qemu: Qemu,
    gtk: SpiceGtk,
}

impl Side {
    fn start(library: &Library, args: &[&str]) -> Self {
        let qemu = Qemu::start(library, args);
        qemu.assert_library();
        let gtk = client(&qemu, false);
        Self { qemu, gtk }
    }

    fn name(&self) -> &'static str {
        self.qemu.library.name()
    }

    fn send(&mut self, cmd: Value) {
        self.gtk.send(cmd);
    }
}

fn client(qemu: &Qemu, audio: bool) -> SpiceGtk {
    let mut gtk = SpiceGtk::start();
    gtk.send(json!({
        "cmd": "connect",
        "uri": format!("spice://{}:{}", qemu.addr.ip(), qemu.addr.port()),
        "audio": audio,
    }));
    gtk
}

/// Ours and the C library, same arguments, started together.
fn both(args: &[&str]) -> Vec<Side> {
    vec![
        Side::start(&Library::rust(), args),
        Side::start(&Library::Debian, args),
    ]
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Panics with what each side shows, saving the pictures as PPM files.
fn fail(sides: &[(&Qemu, &SpiceGtk)], pictures: &[Option<Picture>], message: &str) -> ! {
    let mut report = format!("{message}\n");
    for (i, ((qemu, gtk), picture)) in sides.iter().zip(pictures).enumerate() {
        let name = qemu.library.name();
        match picture {
            Some(p) => {
                let path =
                    std::env::temp_dir().join(format!("spice-qemu-{}-{i}-{name}.ppm", std::process::id(),));
                let _ = p.save_ppm(&path);
                report += &format!(
                    "{name} library: {}x{} text lines {:?}, saved as {}\n",
                    p.width,
                    p.height,
                    p.text_lines(),
                    path.display()
                );
            }
            None => report += &format!("{name} library: no primary surface\n"),
        }
        report += &format!(
            "  QEMU stderr (last lines):\n{}\n  client events (last): {:?}\n",
            tail(&qemu.stderr(), 30),
            &gtk.seen[gtk.seen.len().saturating_sub(8)..]
        );
    }
    if let [Some(a), Some(b), ..] = pictures {
        report += &format!("pixels differing between the first two: {}\n", a.diff(b));
    }
    panic!("{report}");
}

/// Polls every side's client until all show the same picture of `screen`, in
/// both cursor phases when `both_phases`. Returns the pictures seen equal
/// (cursor erased first, then drawn; just one without `both_phases`).
///
/// Each QEMU blinks its cursor on its own clock, so the two sides are compared
/// phase by phase: each side's latest picture with the cursor erased against
/// the other's, and likewise with it drawn, never requiring both guests to be
/// in the same phase at the same instant.
fn settle_equal(sides: &mut [Side], what: &str, screen: &[u32], both_phases: bool) -> Vec<Picture> {
    let mut views: Vec<(&Qemu, &mut SpiceGtk)> = sides.iter_mut().map(|s| (&s.qemu, &mut s.gtk)).collect();
    settle_equal_on(&mut views, what, screen, both_phases)
}

/// [`settle_equal`] over clients that may share a QEMU.
fn settle_equal_on(
    sides: &mut [(&Qemu, &mut SpiceGtk)],
    what: &str,
    screen: &[u32],
    both_phases: bool,
) -> Vec<Picture> {
    let started = Instant::now();
    let deadline = started + T;
    // latest[side][phase]: the side's last picture of `screen` in that phase.
    let mut latest: Vec<[Option<Picture>; 2]> = vec![[None, None]; sides.len()];
    let equal_in = |latest: &[[Option<Picture>; 2]], phase: usize| -> Option<Picture> {
        let first = latest.first()?[phase].clone()?;
        latest
            .iter()
            .all(|side| side[phase].as_ref() == Some(&first))
            .then_some(first)
    };
    loop {
        let pictures: Vec<Option<Picture>> = sides.iter_mut().map(|(_, gtk)| Picture::of(gtk)).collect();
        for (side, picture) in latest.iter_mut().zip(&pictures) {
            if let Some(picture) = picture {
                if let Some(cursor) = picture.shows(screen) {
                    side[usize::from(cursor)] = Some(picture.clone());
                }
            }
        }
        let equal = [equal_in(&latest, 0), equal_in(&latest, 1)];
        match (&equal, both_phases) {
            ([Some(off), Some(on)], true) => {
                eprintln!(
                    "{what}: equal in both cursor phases after {:?}",
                    started.elapsed()
                );
                return vec![off.clone(), on.clone()];
            }
            ([Some(one), _] | [_, Some(one)], false) => {
                eprintln!("{what}: equal after {:?}", started.elapsed());
                return vec![one.clone()];
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            let seen = equal.iter().map(Option::is_some).collect::<Vec<_>>();
            let pairs: Vec<_> = sides.iter().map(|(qemu, gtk)| (*qemu, &**gtk)).collect();
            fail(
                &pairs,
                &pictures,
                &format!("{what}: not equal within {T:?} (equal seen [cursor off, on]: {seen:?})"),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The channel types the client was offered.
fn channels(gtk: &SpiceGtk) -> BTreeSet<String> {
    gtk.seen
        .iter()
        .filter(|v| v["event"] == "channel-new")
        .filter_map(|v| v["type"].as_str().map(String::from))
        .collect()
}

fn assert_same_channels(sides: &[Side]) {
    let sets: Vec<_> = sides.iter().map(|s| channels(&s.gtk)).collect();
    assert!(
        sets.windows(2).all(|w| w[0] == w[1]),
        "channels offered differ: {:?}",
        sides.iter().map(Side::name).zip(&sets).collect::<Vec<_>>()
    );
}

/// SeaBIOS's cursor goes on blinking: every client must go on getting updates.
fn keeps_updating(sides: &mut [Side], what: &str) {
    let window = Duration::from_secs(5);
    let marks: Vec<usize> = sides.iter().map(|s| s.gtk.seen.len()).collect();
    std::thread::sleep(window);
    for (side, mark) in sides.iter_mut().zip(marks) {
        while side.gtk.poll().is_some() {}
        let updates = side.gtk.seen[mark..]
            .iter()
            .filter(|v| v["event"] == "invalidate")
            .count();
        eprintln!("{what}: {} library, {updates} updates in {window:?}", side.name());
        assert!(
            updates >= 8,
            "{what}: the {} library's client got {updates} updates in {window:?} while the cursor blinks",
            side.name()
        );
    }
}

fn seabios_screen_is_pixel_equal(vga: &str) {
    let _serial = serial();
    let mut sides = both(&["-vga", vga]);
    let pictures = settle_equal(
        &mut sides,
        &format!("-vga {vga}: No bootable device"),
        NO_BOOTABLE_DEVICE,
        true,
    );
    assert_eq!((pictures[0].width, pictures[0].height), (720, 400));
    assert_ne!(pictures[0], pictures[1], "the cursor phases differ");
    keeps_updating(&mut sides, &format!("-vga {vga}"));
    for side in &mut sides {
        let created = side
            .gtk
            .seen
            .iter()
            .rev()
            .find(|v| v["event"] == "primary-create")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            (
                created["width"].as_u64(),
                created["height"].as_u64(),
                created["format"].as_u64()
            ),
            (Some(720), Some(400), Some(32)),
            "{}: last primary surface",
            side.name()
        );
        assert!(side.qemu.is_alive());
    }
    if vga == "qxl" {
        // What a harness prints for a guest that stopped answering: every
        // QEMU thread, and their stacks, ours named down to its functions.
        let ours = sides.iter().find(|s| s.name() == "rust").expect("our side");
        let report = ours.qemu.threads_report();
        let threads = report.lines().filter(|l| l.contains(" state ")).count();
        assert!(threads >= 3, "QEMU's threads listed: {report}");
        assert!(
            report.contains("spice_server::") || report.contains("spice_capi::"),
            "our library's frames on a thread's stack: {report}"
        );
    }
    assert_same_channels(&sides);
    for side in sides {
        side.gtk.quit();
    }
}

#[test]
fn vga_std_seabios_screen_is_pixel_equal() {
    seabios_screen_is_pixel_equal("std");
}

#[test]
fn vga_qxl_seabios_screen_is_pixel_equal() {
    seabios_screen_is_pixel_equal("qxl");
}

#[test]
fn vga_virtio_seabios_screen_is_pixel_equal() {
    seabios_screen_is_pixel_equal("virtio");
}

/// QEMU's `-trace` lines whose event name starts with `prefix`.
fn trace(qemu: &Qemu, prefix: &str) -> Vec<String> {
    qemu.log()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.trim_end().to_string())
        .collect()
}

/// Waits until every QEMU has traced `want` lines starting with `prefix`.
fn wait_trace(sides: &[Side], prefix: &str, want: usize) -> Vec<Vec<String>> {
    let deadline = Instant::now() + T;
    loop {
        let traces: Vec<_> = sides.iter().map(|s| trace(&s.qemu, prefix)).collect();
        if traces.iter().all(|t| t.len() >= want) || Instant::now() >= deadline {
            return traces;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn escape_opens_the_seabios_boot_menu() {
    let _serial = serial();
    let args = [
        "-vga",
        "std",
        "-boot",
        "menu=on,splash-time=15000",
        "-trace",
        "enable=input_event_key*",
    ];
    let mut sides = both(&args);
    // A control that gets no key.
    let mut control = vec![Side::start(&Library::rust(), &args)];
    for side in sides.iter_mut().chain(&mut control) {
        side.gtk.wait_inputs_ready(None, T);
    }
    let before = settle_equal(&mut sides, "Press ESC for boot menu", PRESS_ESC, false).remove(0);
    for side in &mut sides {
        side.send(json!({"cmd": "key_press", "code": 0x01}));
        side.send(json!({"cmd": "key_release", "code": 0x01}));
    }
    let after = settle_equal(&mut sides, "boot menu after ESC", BOOT_MENU, true);
    for picture in &after {
        assert!(
            picture.diff(&before) > 0,
            "the screen after ESC must differ from the one before"
        );
    }
    // SeaBIOS would leave the prompt on its own after 15 s: the control, which
    // got no key, must still show it, and must have had less than that.
    let control_qemu_age = control[0].qemu.started.elapsed();
    assert!(
        control_qemu_age < Duration::from_secs(14),
        "the control ran {control_qemu_age:?}, too close to the 15 s menu timeout to prove anything"
    );
    settle_equal(
        &mut control,
        "control without a key still at Press ESC",
        PRESS_ESC,
        false,
    );

    let keys = wait_trace(&sides, "input_event_key", 2);
    assert!(
        keys[0] == keys[1] && keys[0].len() == 2,
        "key events seen by QEMU's input core differ or are not one press and release: {:?}",
        sides.iter().map(Side::name).zip(&keys).collect::<Vec<_>>()
    );
    assert!(
        keys[0][0].ends_with("down 1") && keys[0][1].ends_with("down 0"),
        "{keys:?}"
    );
    assert!(trace(&control[0].qemu, "input_event_key").is_empty());
    eprintln!("QEMU traced: {:?}", keys[0]);
    for side in sides.into_iter().chain(control) {
        side.gtk.quit();
    }
}

#[test]
fn two_clients_at_once_with_spice_debug_allow_mc() {
    let _serial = serial();
    let args = [
        "-vga",
        "qxl",
        "-boot",
        "menu=on,splash-time=15000",
        "-trace",
        "enable=input_event_key*",
    ];
    let env = [("SPICE_DEBUG_ALLOW_MC", "1")];
    let qemus = [
        Qemu::start_with_env(&Library::rust(), &args, &env),
        Qemu::start_with_env(&Library::Debian, &args, &env),
    ];
    let mut clients: Vec<SpiceGtk> = Vec::new();
    for qemu in &qemus {
        qemu.assert_library();
        for _ in 0..2 {
            clients.push(client(qemu, false));
        }
    }
    for gtk in &mut clients {
        gtk.wait_inputs_ready(None, T);
    }
    let mut views: Vec<(&Qemu, &mut SpiceGtk)> = clients
        .iter_mut()
        .enumerate()
        .map(|(i, gtk)| (&qemus[i / 2], gtk))
        .collect();
    let before = settle_equal_on(&mut views, "Press ESC, two clients per QEMU", PRESS_ESC, false).remove(0);
    // The second client of each QEMU presses ESC; every client sees the menu.
    for (_, gtk) in views.iter_mut().skip(1).step_by(2) {
        gtk.send(json!({"cmd": "key_press", "code": 0x01}));
        gtk.send(json!({"cmd": "key_release", "code": 0x01}));
    }
    let after = settle_equal_on(&mut views, "boot menu, two clients per QEMU", BOOT_MENU, true);
    assert!(after.iter().all(|p| p.diff(&before) > 0), "the screen changed");
    drop(views);
    for qemu in &qemus {
        let deadline = Instant::now() + T;
        let mut keys = trace(qemu, "input_event_key");
        while keys.len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            keys = trace(qemu, "input_event_key");
        }
        assert!(
            keys.len() == 2 && keys[0].ends_with("down 1") && keys[1].ends_with("down 0"),
            "{} library: QEMU saw one press and release: {keys:?}",
            qemu.library.name()
        );
    }
    for (i, gtk) in clients.iter().enumerate() {
        assert!(
            !gtk.seen.iter().any(|v| v["event"] == "session-disconnected"),
            "client {i} stayed connected"
        );
    }
    for mut qemu in qemus {
        assert!(qemu.is_alive(), "{} library: QEMU runs", qemu.library.name());
    }
    for gtk in clients {
        gtk.quit();
    }
}

#[test]
fn qemu_survives_repeated_connects() {
    let _serial = serial();
    let mut sides = both(&["-vga", "std"]);
    let reference = settle_equal(&mut sides, "first client", NO_BOOTABLE_DEVICE, true);
    let mut qemus = Vec::new();
    for side in sides {
        side.gtk.quit();
        qemus.push(side.qemu);
    }
    let started = Instant::now();
    for cycle in 0..10 {
        for qemu in &mut qemus {
            let mut gtk = client(qemu, false);
            let deadline = Instant::now() + T;
            loop {
                let picture = Picture::of(&mut gtk);
                if picture.as_ref().is_some_and(|p| reference.contains(p)) {
                    break;
                }
                if Instant::now() >= deadline {
                    fail(
                        &[(qemu, &gtk)],
                        &[picture],
                        &format!("cycle {cycle}: the client never got the picture"),
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if cycle % 2 == 0 {
                gtk.quit();
            } else {
                drop(gtk); // killed: its sockets close without a goodbye
            }
            assert!(
                qemu.is_alive(),
                "cycle {cycle}: QEMU with the {} library died",
                qemu.library.name()
            );
        }
    }
    eprintln!("10 connect cycles per library in {:?}", started.elapsed());
    let mut sides: Vec<Side> = qemus
        .into_iter()
        .map(|qemu| {
            let gtk = client(&qemu, false);
            Side { qemu, gtk }
        })
        .collect();
    let last = settle_equal(&mut sides, "final client", NO_BOOTABLE_DEVICE, true);
    assert_eq!(last, reference, "the final picture is the first one");
    for side in &mut sides {
        assert!(side.qemu.is_alive(), "QEMU with the {} library died", side.name());
    }
    for side in sides {
        side.gtk.quit();
    }
}

/// Waits for the client to report `mode` as the mouse mode, and then that it
/// stays there for a moment.
fn wait_mouse_mode(side: &mut Side, mode: u64, what: &str) {
    side.gtk.wait_inputs_ready(Some(mode), T);
    // A later switch would show up as another event; give it time to arrive.
    let _ = side.gtk.wait(Duration::from_millis(1500), |_| false);
    let last = side
        .gtk
        .seen
        .iter()
        .rev()
        .find(|v| v["event"] == "mouse-mode")
        .map(|v| v["mode"].clone());
    assert_eq!(
        last,
        Some(json!(mode)),
        "{what}: {} library's mouse mode",
        side.name()
    );
}

const INPUT_TRACE: &str = "enable=input_*";

/// Left click, then one wheel notch up (press and release of button 4).
fn click_and_wheel(side: &mut Side) {
    side.send(json!({"cmd": "button_press", "button": 1, "buttons": 1}));
    side.send(json!({"cmd": "button_release", "button": 1, "buttons": 0}));
    side.send(json!({"cmd": "button_press", "button": 4, "buttons": 0}));
    side.send(json!({"cmd": "button_release", "button": 4, "buttons": 0}));
}

/// QEMU's input trace of every side, once each has seen `buttons` button events.
fn input_traces(sides: &[Side], buttons: usize) -> Vec<Vec<String>> {
    wait_trace(sides, "input_event_btn", buttons);
    // Let anything after the last button event arrive too.
    std::thread::sleep(Duration::from_millis(300));
    sides.iter().map(|s| trace(&s.qemu, "input_")).collect()
}

#[test]
fn server_mouse_mode_motion_clicks_and_wheel_reach_qemu_as_with_c() {
    let _serial = serial();
    let mut sides = both(&["-vga", "std", "-trace", INPUT_TRACE]);
    for side in &mut sides {
        wait_mouse_mode(side, 1, "no tablet");
        side.send(json!({"cmd": "motion", "dx": 5, "dy": -3, "buttons": 0}));
        click_and_wheel(side);
    }
    let traces = input_traces(&sides, 4);
    eprintln!("server mode, QEMU traced (rust): {:?}", traces[0]);
    eprintln!("server mode, QEMU traced (C):    {:?}", traces[1]);
    for (side, trace) in sides.iter().zip(&traces) {
        for want in [
            "input_event_rel con -1, axis x, value 5",
            "input_event_rel con -1, axis y, value -3",
            "input_event_btn con -1, button left, down 1",
            "input_event_btn con -1, button left, down 0",
            "input_event_btn con -1, button wheel-up, down 1",
            "input_event_btn con -1, button wheel-up, down 0",
        ] {
            assert!(
                trace.iter().any(|l| l == want),
                "{}: no {want:?} in {trace:?}",
                side.name()
            );
        }
        assert!(
            !trace.iter().any(|l| l.starts_with("input_mouse_mode")),
            "{trace:?}"
        );
    }
    // The C server hands a button press to the mouse as motion(0, 0, dz, buttons)
    // (QEMU: button, zero motion, sync) and a release as buttons(buttons).
    assert_eq!(
        traces[0], traces[1],
        "QEMU's input events differ between the rust (left) and C (right) libraries"
    );
    for side in sides {
        side.gtk.quit();
    }
}

#[test]
fn usb_tablet_gives_client_mouse_mode_when_it_is_qemus_pointer() {
    let _serial = serial();
    let tablet = ["-device", "usb-ehci", "-device", "usb-tablet"];

    // Behind the PS/2 mouse, QEMU keeps the PS/2 mouse as its active pointer
    // (no guest driver polls the tablet), so it adds no tablet interface.
    let mut sides = both(&[&["-vga", "std", "-trace", INPUT_TRACE][..], &tablet[..]].concat());
    for side in &mut sides {
        wait_mouse_mode(side, 1, "usb-tablet with the PS/2 mouse");
        assert!(trace(&side.qemu, "input_mouse_mode").is_empty());
    }
    for side in sides {
        side.gtk.quit();
    }

    // No PS/2 devices: the tablet is QEMU's pointer, QEMU adds the tablet
    // interface, client mouse mode, absolute positions.
    let args = [
        &["-machine", "pc,i8042=off", "-vga", "std", "-trace", INPUT_TRACE][..],
        &tablet[..],
    ]
    .concat();
    let mut sides = both(&args);
    // The click lands on the settled 720x400 screen (before SeaBIOS switches
    // to text mode the surface is QEMU's initial 640x480).
    settle_equal(
        &mut sides,
        "usb-tablet: No bootable device",
        NO_BOOTABLE_DEVICE,
        false,
    );
    for side in &mut sides {
        wait_mouse_mode(side, 2, "usb-tablet without PS/2");
        side.send(json!({"cmd": "position", "x": 100, "y": 50, "buttons": 0}));
        click_and_wheel(side);
    }
    let traces = input_traces(&sides, 4);
    eprintln!("client mode, QEMU traced: {:?}", traces[1]);
    assert_eq!(
        traces[0], traces[1],
        "QEMU's input events differ between the rust (left) and C (right) libraries"
    );
    let want = [
        "input_mouse_mode absolute 1",
        // 100 * 0x7fff / 720 and 50 * 0x7fff / 400: the 720x400 logical size.
        "input_event_abs con -1, axis x, value 0x11c6",
        "input_event_abs con -1, axis y, value 0xfff",
        "input_event_sync",
        "input_event_btn con -1, button left, down 1",
        "input_event_sync",
        "input_event_btn con -1, button left, down 0",
        "input_event_sync",
        "input_event_btn con -1, button wheel-up, down 1",
        "input_event_sync",
        "input_event_btn con -1, button wheel-up, down 0",
        "input_event_sync",
    ];
    assert_eq!(traces[1], want, "QEMU's input events with the C library");
    for side in sides {
        side.gtk.quit();
    }
}

#[test]
fn audio_device_gives_a_playback_channel() {
    let _serial = serial();
    let args = [&["-vga", "std"], spice_interop::qemu::SOUND_CARD].concat();
    let mut sides = Vec::new();
    for library in [Library::rust(), Library::Debian] {
        let qemu = Qemu::start(&library, &args);
        qemu.assert_library();
        let gtk = client(&qemu, true);
        sides.push(Side { qemu, gtk });
    }
    for side in &mut sides {
        side.gtk
            .wait(T, |v| {
                v["event"] == "channel-new" && v["type"] == "PlaybackChannel"
            })
            .unwrap_or_else(|| {
                panic!(
                    "{} library: no playback channel; seen {:?}",
                    side.name(),
                    side.gtk.seen
                )
            });
        side.gtk.wait_inputs_ready(None, T);
        let _ = side.gtk.wait(Duration::from_secs(1), |_| false);
        assert!(side.qemu.is_alive());
    }
    assert_same_channels(&sides);
    eprintln!("channels: {:?}", channels(&sides[0].gtk));
    for side in sides {
        side.gtk.quit();
    }
}

/// QEMU's other `-spice` options reach entry points that either take effect or
/// are refused with a log line; either way QEMU must start and serve. Here with
/// a password: a wrong one is refused, the right one shows the picture.
#[test]
fn many_spice_options_and_a_password() {
    let _serial = serial();
    let spice = "password-secret=sec0,image-compression=quic,jpeg-wan-compression=always,\
                 zlib-glz-wan-compression=never,playback-compression=off,streaming-video=filter,\
                 agent-mouse=off,disable-copy-paste=on,disable-agent-file-xfer=on,seamless-migration=on";
    let args = ["-object", "secret,id=sec0,data=s3cret", "-vga", "std"];
    for library in [Library::rust(), Library::Debian] {
        let mut qemu = Qemu::start_with_spice(&library, spice, &args);
        qemu.assert_library();
        let uri = format!("spice://{}:{}", qemu.addr.ip(), qemu.addr.port());
        let mut bad = SpiceGtk::start();
        bad.send(json!({"cmd": "connect", "uri": uri, "password": "wrong"}));
        let refused = bad.wait(T, |v| v["event"] == "channel-event" && v["code"] == "error-auth");
        assert!(
            refused.is_some(),
            "{}: wrong password refused: {:#?}",
            library.name(),
            bad.seen
        );
        bad.quit();
        let mut good = SpiceGtk::start();
        good.send(json!({"cmd": "connect", "uri": uri, "password": "s3cret"}));
        let created = good.wait(T, |v| v["event"] == "primary-create");
        assert!(
            created.is_some(),
            "{}: right password shows the display: {:#?}",
            library.name(),
            good.seen
        );
        good.quit();
        assert!(qemu.is_alive(), "{}: QEMU still running", library.name());
    }
}
