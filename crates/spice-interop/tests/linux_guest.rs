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
use spice_interop::guest::LinuxGuest;
use spice_interop::qemu::{Library, Picture, Qemu};

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
        let guest = LinuxGuest::get();
        let append = format!("{} vt.global_cursor_default=0", guest.append());
        let mut args = vec!["-vga", "qxl", "-m", "256", "-smp", "1"];
        args.extend_from_slice(extra);
        let mut qemu = Qemu::start_linux(library, guest, &append, "disable-ticketing=on", &args);
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
