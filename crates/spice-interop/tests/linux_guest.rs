//! A real Linux guest under unmodified QEMU 7.2, with our library and with
//! Debian's C library side by side: Debian's kernel on the qxl DRM driver,
//! its console on fbcon over the qxl framebuffer, one vCPU under TCG (built
//! by [`spice_interop::guest::LinuxGuest`] from Debian's packages), and the
//! real spice-gtk client watching.
//!
//! Slow (each guest boots in a few seconds of TCG), so one test at a time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;
use spice_interop::gtk::SpiceGtk;
use spice_interop::guest::{self, LinuxGuest};
use spice_interop::qemu::{Library, Picture, Qemu};
use spice_proto::msg::display::{VIDEO_CODEC_H264, VIDEO_CODEC_VP8};

const BOOT: Duration = Duration::from_secs(180);
const T: Duration = Duration::from_secs(60);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A booted guest and the client watching it.
struct Vm {
    qemu: Qemu,
    gtk: SpiceGtk,
    /// The framebuffer size the guest reported.
    size: (u32, u32),
}

impl Vm {
    /// Boots the guest with `library` (no blinking cursor, so screens compare
    /// exactly) and connects spice-gtk once the console is on the qxl framebuffer.
    fn boot(library: &Library) -> Self {
        Self::boot_with(library, &[])
    }

    /// As [`Vm::boot`], with more QEMU arguments.
    fn boot_with(library: &Library, extra: &[&str]) -> Self {
        Self::boot_full(library, "disable-ticketing=on", extra, false)
    }

    /// As [`Vm::boot_with`], with QEMU's `-spice` options after the port
    /// (`spice`); `audio` enables the client's audio channels.
    fn boot_full(library: &Library, spice: &str, extra: &[&str], audio: bool) -> Self {
        Self::boot_env(library, spice, extra, audio, &[])
    }

    /// As [`Vm::boot_full`], with more environment for QEMU.
    fn boot_env(library: &Library, spice: &str, extra: &[&str], audio: bool, env: &[(&str, &str)]) -> Self {
        let guest = LinuxGuest::get();
        let append = format!("{} vt.global_cursor_default=0", guest.append());
        let mut args = vec!["-vga", "qxl", "-m", "256", "-smp", "1"];
        args.extend_from_slice(extra);
        let mut qemu = Qemu::start_linux_with_env(library, guest, &append, spice, &args, env);
        qemu.assert_library();
        let ready = qemu.serial_wait("GUEST READY", BOOT).unwrap_or_else(|| {
            panic!(
                "{} library: the guest did not come up; serial:\n{}\nQEMU stderr:\n{}",
                library.name(),
                qemu.serial_log(),
                qemu.stderr()
            )
        });
        let size = ready
            .trim_start_matches("GUEST READY ")
            .split_once(',')
            .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)))
            .unwrap_or_else(|| panic!("framebuffer size in {ready:?}"));
        let mut gtk = SpiceGtk::start();
        gtk.send(json!({
            "cmd": "connect",
            "uri": format!("spice://{}:{}", qemu.addr.ip(), qemu.addr.port()),
            "audio": audio,
        }));
        Self { qemu, gtk, size }
    }

    fn name(&self) -> &'static str {
        self.qemu.library.name()
    }

    /// Runs a guest command and waits until the guest says it is done.
    fn run(&mut self, command: &str, timeout: Duration) {
        let word = command.split_whitespace().next().unwrap_or_default().to_owned();
        self.qemu.serial_send(command);
        if self
            .qemu
            .serial_wait(&format!("GUEST DONE {word}"), timeout)
            .is_none()
        {
            panic!(
                "{} library: the guest did not finish {command:?}; serial:\n{}",
                self.name(),
                self.qemu.serial_log()
            );
        }
    }

    /// The client's picture once it has the guest's framebuffer size.
    fn picture(&mut self) -> Option<Picture> {
        Picture::of(&mut self.gtk).filter(|p| (p.width, p.height) == self.size)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.gtk.send(json!({"cmd": "quit"}));
        }
    }
}

/// Pixels that are not black: the console shows text.
fn lit(p: &Picture) -> usize {
    p.pixels.chunks_exact(4).filter(|px| px[..3] != [0, 0, 0]).count()
}

/// The console of a Linux guest that scrolled a few hundred lines shows the
/// same pixels in spice-gtk with either library, and QEMU never reports a
/// server bug (a device callback while the VM was stopped).
#[test]
fn scrolled_console_of_a_linux_guest_is_pixel_equal_with_both_libraries() {
    let _serial = serial();
    let mut vms = [Vm::boot(&Library::rust()), Vm::boot(&Library::Debian)];
    for vm in &mut vms {
        let size = vm.size;
        let created = vm.gtk.wait(T, |v| {
            v["event"] == "primary-create" && v["width"] == size.0 && v["height"] == size.1
        });
        assert!(
            created.is_some(),
            "{} library: no {}x{} surface in spice-gtk; seen {:?}",
            vm.name(),
            size.0,
            size.1,
            vm.gtk.seen
        );
    }
    for vm in &mut vms {
        vm.run("scroll 400", T * 3);
    }
    let deadline = Instant::now() + T;
    loop {
        let pictures: Vec<Option<Picture>> = vms.iter_mut().map(Vm::picture).collect();
        if let [Some(a), Some(b)] = &pictures[..] {
            if a == b && lit(a) > 10_000 {
                eprintln!(
                    "console equal in both clients: {}x{}, {} lit pixels",
                    a.width,
                    a.height,
                    lit(a)
                );
                break;
            }
        }
        if Instant::now() >= deadline {
            let mut report = String::from("the two clients' consoles differ:\n");
            for (vm, p) in vms.iter().zip(&pictures) {
                let path = std::env::temp_dir().join(format!("linux-guest-{}.ppm", vm.name()));
                if let Some(p) = p {
                    let _ = p.save_ppm(&path);
                    report += &format!("  {}: {} lit pixels, {}\n", vm.name(), lit(p), path.display());
                } else {
                    report += &format!("  {}: no picture of the framebuffer's size\n", vm.name());
                }
            }
            if let [Some(a), Some(b)] = &pictures[..] {
                report += &format!("  {} pixels differ\n", a.diff(b));
            }
            panic!("{report}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ours = &vms[0];
    assert!(
        !ours.qemu.stderr().contains("spice-server bug"),
        "QEMU reported a server bug with our library:\n{}",
        ours.qemu.stderr()
    );
    for vm in &mut vms {
        vm.qemu.serial_send("off");
    }
}

/// Scrolls the guest's console for a few seconds with QEMU's
/// `streaming-video=all` (the whole screen changes many times a second, so
/// it goes as a stream), spice-gtk preferring the stream codecs `prefer`
/// (`SPICE_VIDEO_CODEC_TYPE_*`, as spicy's menu sets them; QEMU 7.2 has no
/// option for the server's list); returns the client's picture once it
/// settled, and what QEMU printed.
fn play_guest_video(library: &Library, streaming: &str, prefer: &[u8]) -> (Picture, String) {
    play_in_guest(library, streaming, prefer, &["scroll 4000"])
}

/// Boots the guest with `streaming-video={streaming}`, spice-gtk preferring
/// `prefer`, runs the guest `commands` one after the other, and returns
/// the client's picture once it settled, and what QEMU printed.
fn play_in_guest(library: &Library, streaming: &str, prefer: &[u8], commands: &[&str]) -> (Picture, String) {
    // Our library's display-channel debug lines (the stream's codec) go to
    // QEMU's stderr through GLib.
    let env = [
        ("G_MESSAGES_DEBUG", "Spice"),
        ("SPICE_RS_LOG", "spice_server::channel::display=debug"),
    ];
    let spice = format!("disable-ticketing=on,streaming-video={streaming}");
    let mut vm = Vm::boot_env(library, &spice, &[], false, &env);
    let size = vm.size;
    assert!(
        vm.gtk
            .wait(T, |v| v["event"] == "primary-create" && v["width"] == size.0)
            .is_some(),
        "{}: no surface",
        vm.name()
    );
    if !prefer.is_empty() {
        vm.gtk.send(json!({"cmd": "video_codecs", "codecs": prefer}));
        let answer = vm.gtk.expect("video-codecs", T);
        assert_eq!(answer["ok"], true, "{}: spice-gtk sent its preference", vm.name());
    }
    for command in commands {
        let started = Instant::now();
        vm.run(command, T * 3);
        // `video N F` plays at F frames a second, as a player paces it:
        // frame i is not written before i/F s.
        if let ["video", frames, fps] = command.split_whitespace().collect::<Vec<_>>()[..] {
            let (frames, fps): (u32, u32) = (frames.parse().unwrap(), fps.parse().unwrap());
            let least = Duration::from_secs_f64(f64::from(frames - 1) / f64::from(fps));
            assert!(
                started.elapsed() >= least,
                "{}: {command:?} took {:?}, less than the {least:?} its pace asks",
                vm.name(),
                started.elapsed()
            );
        }
    }
    // Settled: the same picture for a second and a half (the stream ends a
    // second after the last frame and its area goes again losslessly).
    let deadline = Instant::now() + T;
    let mut last: Option<(Picture, Instant)> = None;
    let picture = loop {
        std::thread::sleep(Duration::from_millis(250));
        let Some(p) = vm.picture() else { continue };
        match &last {
            Some((q, since)) if *q == p => {
                if since.elapsed() >= Duration::from_millis(1500) || Instant::now() >= deadline {
                    break p;
                }
            }
            _ => last = Some((p, Instant::now())),
        }
    };
    let stderr = vm.qemu.stderr();
    vm.qemu.serial_send("off");
    (picture, stderr)
}

/// A Linux guest's busy screen reaches spice-gtk through unmodified QEMU
/// as a stream: MJPEG by default, VP8 or H.264 (through GStreamer) when the
/// client prefers them, as our library's log says; each time the client
/// ends with the same pixels as with the C library, since the area goes
/// again losslessly when the changes stop. The C library's picture is
/// taken without streams: its VP8 stream can fall seconds behind a busy
/// TCG guest, long enough for a stale frame to pass for the settled one.
#[test]
fn a_guests_busy_screen_streams_as_vp8_h264_and_mjpeg_and_ends_as_with_c() {
    let _serial = serial();
    let (reference, _) = play_guest_video(&Library::Debian, "off", &[]);
    assert!(
        lit(&reference) > 10_000,
        "the C library's client shows the console"
    );
    for (prefer, codec) in [
        (&[VIDEO_CODEC_VP8][..], "Vp8"),
        (&[VIDEO_CODEC_H264][..], "H264"),
        (&[][..], "Mjpeg"),
    ] {
        let (picture, stderr) = play_guest_video(&Library::rust(), "all", prefer);
        let starts: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("video stream starts"))
            .collect();
        assert!(
            starts.iter().any(|l| l.contains(&format!("codec={codec}"))),
            "{codec}: a {codec} stream; the library logged {starts:?}"
        );
        assert!(
            !stderr.contains("spice-server bug"),
            "{codec}: QEMU reported a server bug:\n{stderr}"
        );
        if picture.diff(&reference) != 0 {
            let dir = std::env::temp_dir();
            let _ = picture.save_ppm(&dir.join(format!("guest-stream-{codec}.ppm")));
            let _ = reference.save_ppm(&dir.join("guest-stream-reference.ppm"));
        }
        assert_eq!(
            picture.diff(&reference),
            0,
            "{codec}: the final picture is the C library's (both saved in {})",
            std::env::temp_dir().display()
        );
    }
}

/// QEMU's `streaming-video=filter` (stream only what looks like video): a
/// video played in the guest (photographic frames written into the
/// framebuffer, as a framebuffer player does) reaches spice-gtk as a
/// stream over exactly the video's band, in MJPEG and, when spice-gtk
/// prefers them, VP8 and H.264, while the console's scrolling text before
/// it stays lossless; each time the final picture is the C library's. The
/// MJPEG run plays the video paced at 25 frames a second, as the benchmark
/// does, and takes at least the time that pace asks.
#[test]
fn a_guests_video_streams_under_streaming_video_filter_and_its_text_does_not() {
    let _serial = serial();
    let commands = ["scroll 2000", "video 150"];
    // The benchmark's video plays at 25 frames a second: MJPEG (its codec)
    // streams that one, ending on the same frame (the 50th and the 150th
    // are both the tenth picture).
    let paced = ["scroll 2000", "video 50 25"];
    let (reference, _) = play_in_guest(&Library::Debian, "off", &[], &commands);
    let band = format!(
        "x: 0, y: {}, width: {}, height: {}",
        guest::VIDEO_TOP,
        guest::VIDEO_WIDTH,
        guest::VIDEO_ROWS
    );
    for (prefer, codec) in [
        (&[][..], "Mjpeg"),
        (&[VIDEO_CODEC_VP8][..], "Vp8"),
        (&[VIDEO_CODEC_H264][..], "H264"),
    ] {
        let played = if codec == "Mjpeg" { &paced } else { &commands };
        let (picture, stderr) = play_in_guest(&Library::rust(), "filter", prefer, played);
        let starts: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("video stream starts"))
            .collect();
        assert!(
            !starts.is_empty()
                && starts
                    .iter()
                    .all(|l| l.contains(&band) && l.contains(&format!("codec={codec}"))),
            "{codec}: {codec} streams over the video's band ({band}) and nowhere else; the library logged {starts:?}"
        );
        assert!(
            !stderr.contains("spice-server bug"),
            "{codec}: QEMU reported a server bug:\n{stderr}"
        );
        if picture.diff(&reference) != 0 {
            let dir = std::env::temp_dir();
            let _ = picture.save_ppm(&dir.join(format!("guest-filter-video-{codec}.ppm")));
            let _ = reference.save_ppm(&dir.join("guest-filter-video-reference.ppm"));
        }
        assert_eq!(
            picture.diff(&reference),
            0,
            "{codec}: the final picture is the C library's (both saved in {})",
            std::env::temp_dir().display()
        );
    }
}

/// QEMU's agent port: virtio-serial with a spicevmc chardev named vdagent.
const AGENT_PORT: &[&str] = &[
    "-device",
    "virtio-serial-pci",
    "-chardev",
    "spicevmc,id=vdagent,name=vdagent",
    "-device",
    "virtserialport,chardev=vdagent,name=com.redhat.spice.0",
];

/// A client asking for another size (spice-gtk's monitors configuration, as
/// when its window is resized) reaches the guest's qxl driver through QEMU's
/// device: the driver offers the size as its connector's preferred mode.
#[test]
fn a_client_resize_request_reaches_the_guests_qxl_driver() {
    let _serial = serial();
    for library in [Library::rust(), Library::Debian] {
        let mut vm = Vm::boot_with(&library, AGENT_PORT);
        vm.run("agent", T);
        let agent = |v: &serde_json::Value| v["event"] == "agent-update" && v["connected"] == true;
        let connected = vm.gtk.seen.iter().any(agent) || vm.gtk.wait(T, agent).is_some();
        assert!(connected, "{} library: spice-gtk sees the agent", vm.name());
        vm.gtk
            .send(json!({"cmd": "monitors_config", "width": 800, "height": 600}));
        let sent = vm.gtk.wait(T, |v| v["event"] == "monitors-config-sent");
        assert!(
            sent.is_some_and(|v| v["sent"] == true),
            "{} library: sent",
            vm.name()
        );
        let deadline = Instant::now() + T;
        loop {
            vm.qemu.serial_send("modes");
            let mode = vm
                .qemu
                .serial_wait("GUEST MODES card0-Virtual-1", T)
                .unwrap_or_default();
            vm.qemu.serial_wait("GUEST DONE modes", T);
            if mode.ends_with(" 800x600") {
                eprintln!("{} library: {mode}", vm.name());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} library: the guest's preferred mode did not become 800x600: {mode:?}; serial:\n{}",
                vm.name(),
                vm.qemu.serial_log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        vm.qemu.serial_send("off");
    }
}

/// The monitors spice-gtk reports once it reports `count` of them.
fn wait_monitors(vm: &mut Vm, count: usize) -> (Vec<[u64; 5]>, u64) {
    match vm.gtk.wait_monitors(count, T) {
        Some(m) => m,
        None => panic!(
            "{} library: spice-gtk never showed {count} monitors: {:#?}; serial:\n{}",
            vm.name(),
            vm.gtk.seen,
            vm.qemu.serial_log()
        ),
    }
}

/// A qxl device with two outputs (`qxl-vga,max_outputs=2`): the guest's
/// qxl driver tells the device its monitors, and spice-gtk sees what it
/// said — one monitor of two at first, then two once the client enables a
/// second display (as remote-viewer's Displays menu does) and the guest's
/// driver lights its second output. Both libraries report the same.
#[test]
fn the_heads_of_a_two_output_qxl_device_reach_spice_gtk() {
    let _serial = serial();
    let mut reports = Vec::new();
    for library in [Library::rust(), Library::Debian] {
        let mut extra = AGENT_PORT.to_vec();
        extra.extend(["-vga", "none", "-device", "qxl-vga,max_outputs=2"]);
        let mut vm = Vm::boot_with(&library, &extra);
        vm.run("agent", T);
        let agent = |v: &serde_json::Value| v["event"] == "agent-update" && v["connected"] == true;
        let connected = vm.gtk.seen.iter().any(agent) || vm.gtk.wait(T, agent).is_some();
        assert!(connected, "{} library: spice-gtk sees the agent", vm.name());
        // The first picture may come before the driver's monitors config:
        // the guest's own word is the one with the device's two outputs.
        let deadline = Instant::now() + T;
        let (one, max) = loop {
            vm.gtk.send(json!({"cmd": "monitors"}));
            let (one, max) = wait_monitors(&mut vm, 1);
            if max == 2 || Instant::now() >= deadline {
                break (one, max);
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let (w, h) = (u64::from(vm.size.0), u64::from(vm.size.1));
        assert_eq!(one, [[0, 0, 0, w, h]], "{} library", vm.name());
        assert_eq!(max, 2, "{} library: the device's two outputs", vm.name());
        vm.gtk
            .send(json!({"cmd": "monitors_config", "displays": [[0, 0, w, h], [w, 0, w, h]]}));
        let (two, _) = wait_monitors(&mut vm, 2);
        eprintln!("{} library: {one:?} then {two:?}", vm.name());
        assert_eq!(two[0], [0, 0, 0, w, h], "{} library", vm.name());
        assert_eq!(two[1][0], 1, "{} library: the second head", vm.name());
        // Each monitor's pixels: the same text on both libraries, in the
        // picture that holds both heads.
        vm.run("scroll 40", T);
        let extent = two.iter().map(|m| m[1] + m[3]).max().unwrap_or(0);
        let deadline = Instant::now() + T;
        let mut last: Option<Picture> = None;
        let picture = loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = Picture::of(&mut vm.gtk).filter(|p| u64::from(p.width) >= extent);
            if let Some(settled) = now.as_ref().filter(|_| now == last) {
                break settled.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{} library: no settled picture {extent} wide",
                vm.name()
            );
            last = now;
        };
        let heads: Vec<Vec<u8>> = two
            .iter()
            .map(|&[_, x, y, w, h]| {
                (y..y + h)
                    .flat_map(|row| {
                        let at = ((row * u64::from(picture.width) + x) * 4) as usize;
                        picture.pixels[at..at + w as usize * 4].to_vec()
                    })
                    .collect()
            })
            .collect();
        let colours = |px: &[u8]| {
            let mut c: Vec<&[u8]> = px.chunks(4).collect();
            c.sort_unstable();
            c.dedup();
            c.len()
        };
        assert!(
            colours(&heads[0]) > 1,
            "{} library: text on the first monitor",
            vm.name()
        );
        reports.push((one, two, heads));
        vm.qemu.serial_send("off");
    }
    assert_eq!(
        reports[0], reports[1],
        "ours (left) and C (right) report the same monitors"
    );
}

/// Two qxl devices (`-vga qxl -device qxl`): the guest's qxl driver drives
/// both, and spice-gtk gets a display channel for each with its own
/// primary surface, the same with both libraries.
#[test]
fn two_qxl_devices_are_two_displays_in_spice_gtk() {
    let _serial = serial();
    let mut shown = Vec::new();
    for library in [Library::rust(), Library::Debian] {
        let mut vm = Vm::boot_with(&library, &["-device", "qxl"]);
        let mut primaries = std::collections::BTreeMap::new();
        let deadline = Instant::now() + T;
        while primaries.len() < 2 && Instant::now() < deadline {
            if let Some(v) = vm
                .gtk
                .wait(Duration::from_secs(1), |v| v["event"] == "primary-create")
            {
                let size = (
                    v["width"].as_u64().unwrap_or(0),
                    v["height"].as_u64().unwrap_or(0),
                );
                primaries.insert(v["channel_id"].as_u64().unwrap_or(u64::MAX), size);
            }
        }
        eprintln!("{} library: primaries {primaries:?}", vm.name());
        let ids: Vec<u64> = primaries.keys().copied().collect();
        assert_eq!(ids, [0, 1], "{} library: a surface on each display", vm.name());
        assert_eq!(
            primaries[&0],
            (u64::from(vm.size.0), u64::from(vm.size.1)),
            "{} library: the console on the first",
            vm.name()
        );
        shown.push(primaries);
        vm.qemu.serial_send("off");
    }
    assert_eq!(shown[0], shown[1], "ours (left) and C (right)");
}

/// What spice-gtk decoded of the guest's tone: its frequency, level and
/// how many distinct sample values the left channel took.
#[derive(Debug)]
struct Heard {
    hz: f64,
    rms: f64,
    distinct: usize,
    seconds: f64,
}

/// The guest plays a 500 Hz square wave (unsigned 8-bit mono at 8 kHz into
/// the kernel's OSS emulation over the HDA driver); QEMU hands it to the
/// library at 48 kHz; spice-gtk, which announces Opus, gets it as Opus
/// (playback compression is on by default in both libraries) and decodes
/// it. With either library the client hears 500 Hz at the same level. A
/// square wave sent raw decodes to a few sample values (its plateaus and
/// the resampler's steps: 8 here); Opus rings on every edge, so thousands
/// of distinct values show the lossy codec carried it. A third run, ours
/// with QEMU's `playback-compression=off`, is the control: raw PCM, the
/// same tone, a handful of values.
#[test]
fn a_guests_sound_reaches_spice_gtk_as_opus_with_both_libraries() {
    let _serial = serial();
    let mut heard = Vec::new();
    let runs = [
        (Library::rust(), "disable-ticketing=on", true),
        (Library::Debian, "disable-ticketing=on", true),
        (
            Library::rust(),
            "disable-ticketing=on,playback-compression=off",
            false,
        ),
    ];
    for (library, spice, opus) in runs {
        let mut vm = Vm::boot_full(&library, spice, spice_interop::qemu::SOUND_CARD, true);
        let open = |v: &serde_json::Value| {
            v["event"] == "channel-event" && v["type"] == "PlaybackChannel" && v["code"] == "opened"
        };
        let opened = vm.gtk.seen.iter().any(open) || vm.gtk.wait(T, open).is_some();
        assert!(
            opened,
            "{} library: spice-gtk opens a playback channel",
            vm.name()
        );
        vm.run("tone 3", T);
        let start = vm
            .gtk
            .seen
            .iter()
            .find(|v| v["event"] == "playback-start")
            .cloned()
            .or_else(|| vm.gtk.wait(T, |v| v["event"] == "playback-start"))
            .unwrap_or_else(|| {
                panic!(
                    "{} library: no playback-start; serial:\n{}",
                    vm.name(),
                    vm.qemu.serial_log()
                )
            });
        assert_eq!(
            (&start["channels"], &start["rate"]),
            (&json!(2), &json!(48_000)),
            "{} library: playback format",
            vm.name()
        );
        let stopped =
            vm.gtk.has_seen("playback-stop") || vm.gtk.wait(T, |v| v["event"] == "playback-stop").is_some();
        assert!(
            stopped,
            "{} library: playback stops when the guest closes the device",
            vm.name()
        );
        let path = std::env::temp_dir().join(format!(
            "spice-guest-tone-{}-{}.pcm",
            std::process::id(),
            vm.name()
        ));
        vm.gtk.send(json!({"cmd": "playback_dump", "path": path}));
        vm.gtk.expect("playback-dumped", T);
        let pcm = std::fs::read(&path).expect("dumped PCM");
        let _ = std::fs::remove_file(&path);
        let left = spice_interop::pcm::channel(&pcm, 0);
        // The tone's middle: the device's start and end are ramps and silence.
        let loud: Vec<f64> = {
            let first = left.iter().position(|v| v.abs() > 1000.0).unwrap_or(0);
            let last = left.iter().rposition(|v| v.abs() > 1000.0).unwrap_or(0);
            left.get(first + 4800..last.saturating_sub(4800))
                .unwrap_or_default()
                .to_vec()
        };
        let mut values: Vec<i64> = loud.iter().map(|v| *v as i64).collect();
        values.sort_unstable();
        values.dedup();
        let h = Heard {
            hz: spice_interop::pcm::frequency(&loud),
            rms: spice_interop::pcm::rms(&loud),
            distinct: values.len(),
            seconds: loud.len() as f64 / spice_interop::pcm::RATE,
        };
        eprintln!("{} library ({spice}): heard {h:?}", vm.name());
        assert!(
            h.seconds > 1.5,
            "{} library: most of the 3 s tone arrived: {h:?}",
            vm.name()
        );
        assert!(
            (h.hz - 500.0).abs() < 10.0,
            "{} library: the tone's frequency: {h:?}",
            vm.name()
        );
        assert!(h.rms > 2000.0, "{} library: the tone's level: {h:?}", vm.name());
        if opus {
            assert!(
                h.distinct > 200,
                "{} library: decoded from Opus, not raw: {h:?}",
                vm.name()
            );
        } else {
            assert!(
                h.distinct < 50,
                "{} library: raw PCM with compression off: {h:?}",
                vm.name()
            );
        }
        vm.qemu.serial_send("off");
        heard.push(h);
    }
    for other in &heard[1..] {
        let ratio = heard[0].rms / other.rms;
        assert!(
            (0.8..1.25).contains(&ratio),
            "the same level in every run: {heard:?}"
        );
    }
}

/// spice-html5 (which plays only Opus, through a media element) hears the
/// guest's tone with either library: its WebSocket goes straight to the
/// SPICE port of QEMU, whose guest plays the square wave while the page is
/// open, and the audio element's clock runs past a second without error.
#[test]
fn a_guests_sound_plays_in_spice_html5_with_both_libraries() {
    let _serial = serial();
    for library in [Library::rust(), Library::Debian] {
        let mut vm = Vm::boot_full(
            &library,
            "disable-ticketing=on",
            spice_interop::qemu::SOUND_CARD,
            false,
        );
        let mut html5 = spice_interop::html5::Html5::start();
        // One client at a time: the page replaces spice-gtk.
        match library {
            Library::Debian => html5.open_on_c_library(vm.qemu.addr.port(), ""),
            _ => html5.open(vm.qemu.addr.port(), ""),
        }
        let deadline = Instant::now() + T;
        while html5.canvas(spice_interop::html5::PRIMARY).is_none() {
            assert!(
                Instant::now() < deadline,
                "{} library: spice-html5 never showed the console; console: {:#?}",
                vm.name(),
                html5.console()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        vm.qemu.serial_send("tone 8");
        let audio = html5.wait_audio_time(1.0, T);
        assert!(
            audio["current_time"].as_f64().unwrap_or(0.0) > 1.0,
            "{} library: spice-html5's audio element played the guest's Opus: {audio}; console: {:#?}",
            vm.name(),
            html5.console()
        );
        assert!(audio["bytes_written"].as_u64().unwrap_or(0) > 1000, "{audio}");
        assert!(audio["error"].is_null(), "{audio}");
        assert!(
            vm.qemu.serial_wait("GUEST DONE tone", T).is_some(),
            "{} library: the guest finished playing; serial:\n{}",
            vm.name(),
            vm.qemu.serial_log()
        );
        html5.quit();
        vm.qemu.serial_send("off");
    }
}
